/*! Natter widget loader. <script src="https://CHAT/widget.js" data-site="SITE"
 * data-token="..." defer></script>, or Natter.init({token}) later.
 * API: Natter.setToken(t), Natter.open(roomId), Natter.on("unread", fn(count)).
 * Calls made before it loads are queued:
 *   window.Natter = window.Natter || {q: []}; Natter.q.push(["open", "r_1"]);
 * Launcher in a closed shadow root; on first open, an iframe on the chat
 * origin, which gets the token by postMessage to that origin only (never
 * in a URL). Nothing here throws into the page.
 */
(function () {
  "use strict";
  var w = window, d = document;
  if (w.Natter && w.Natter.version) return;
  var queued = (w.Natter && w.Natter.q) || [];
  var origin = "", site = "", token = null, room = null, open = false;
  var host = null, root = null, button = null, frame = null;
  var listeners = { unread: [] };

  // Runs fn, logging instead of throwing: the host page must never break.
  function safe(fn) {
    return function () {
      try { return fn.apply(this, arguments); } catch (e) {
        try { console.warn("natter:", e); } catch (_) {}
      }
    };
  }

  var CSS =
    ":host{all:initial}" +
    ".natter-launcher,.natter-frame{position:fixed;right:20px;z-index:2147483647;margin:0;border:0}" +
    ".natter-launcher{bottom:20px;" +
    "width:56px;height:56px;padding:0;border-radius:50%;" +
    "background:#2563eb;color:#fff;font:600 24px/1 system-ui,sans-serif;" +
    "cursor:pointer;box-shadow:0 4px 14px rgba(0,0,0,.3)}" +
    ".natter-launcher:focus-visible{outline:3px solid #93c5fd;outline-offset:2px}" +
    ".natter-frame{bottom:88px;" +
    "width:370px;height:560px;max-width:calc(100vw - 40px);" +
    "max-height:calc(100vh - 108px);border-radius:12px;" +
    "background:#fff;box-shadow:0 8px 30px rgba(0,0,0,.3)}" +
    ".natter-frame[hidden]{display:none}";

  // Token (and room) to the chat iframe, at the chat origin only.
  function post() {
    var cw = frame && frame.contentWindow;
    if (cw && token) {
      cw.postMessage({ type: "natter:token", token: token }, origin);
      if (room) cw.postMessage({ type: "natter:open", room: room }, origin);
    }
  }

  function draw() {
    if (host || !site || !origin) return;
    host = d.createElement("div");
    host.setAttribute("data-natter", "");
    root = host.attachShadow ? host.attachShadow({ mode: "closed" }) : host;
    var style = d.createElement("style");
    style.textContent = CSS;
    button = d.createElement("button");
    button.type = "button";
    button.className = "natter-launcher";
    button.textContent = "\uD83D\uDCAC";
    button.addEventListener("click", safe(toggle));
    root.append(style, button);
    label();
    d.body.appendChild(host);
  }

  function label() {
    button.setAttribute("aria-expanded", "" + open);
    button.setAttribute("aria-label", (open ? "Close" : "Open") + " chat");
  }

  function toggle() {
    open = !open;
    if (open && !frame) {
      frame = d.createElement("iframe");
      frame.className = "natter-frame";
      frame.title = "Chat";
      // Same-origin: the chat's own origin (socket, storage), not the page's.
      frame.setAttribute("sandbox", "allow-scripts allow-same-origin allow-forms allow-popups");
      frame.addEventListener("load", safe(post));
      frame.src = origin + "/widget/?site=" + encodeURIComponent(site);
      root.appendChild(frame);
    }
    if (frame) frame.hidden = !open;
    label();
  }

  function whenReady(fn) {
    d.body ? fn() : d.addEventListener("DOMContentLoaded", safe(fn));
  }

  // The chat asks again once it listens (load may come first); it also
  // reports the unread count.
  w.addEventListener("message", safe(function (e) {
    var m = e.data;
    if (!frame || e.source !== frame.contentWindow || e.origin !== origin || !m) return;
    if (m.type === "natter:ready") post();
    if (m.type === "natter:unread" && typeof m.count === "number") {
      listeners.unread.forEach(function (fn) { safe(fn)(m.count); });
    }
  }));

  safe(function () {
    var me = d.currentScript;
    if (!me) return;
    origin = new URL(me.src, location.href).origin;
    site = me.getAttribute("data-site") || "";
    token = me.getAttribute("data-token") || null;
    whenReady(draw);
  })();

  w.Natter = {
    version: 1,
    init: safe(function (opts) {
      opts = opts || {};
      if (opts.site) site = String(opts.site);
      if (opts.token) token = String(opts.token);
      whenReady(draw);
      post();
    }),
    setToken: safe(function (t) {
      token = t ? String(t) : null;
      post();
    }),
    open: safe(function (id) {
      room = id ? String(id) : null;
      whenReady(function () {
        draw();
        if (!open && host) toggle();
        post();
      });
    }),
    on: safe(function (name, fn) {
      if (listeners[name] && typeof fn == "function") listeners[name].push(fn);
    })
  };

  queued.forEach(safe(function (call) {
    var f = w.Natter[call[0]];
    if (typeof f == "function") f.apply(null, [].slice.call(call, 1));
  }));
})();
