/*! Natter widget loader: <script src="https://CHAT/widget.js" data-site="SITE"
 * data-token="..." defer></script>. Options and API (Natter.init, setToken,
 * open, logout, on): the README's Embedding section. A launcher in a shadow
 * root; the chat in an iframe on the chat origin, which gets the token by
 * postMessage to that origin only, never in a URL. It never throws into
 * the page.
 */
(function () {
  "use strict";
  var w = window, d = document;
  if (w.Natter && w.Natter.version) return;
  var queued = (w.Natter && w.Natter.q) || [];
  var origin = "", site = "", token = null, room = null, open = false, cacheMb = null;
  var host = null, root = null, button = null, frame = null, booting = false;
  var listeners = { unread: [], tokenexpired: [], unsent: [], loggedout: [] };
  // A sign-out asked for and not yet confirmed by the chat: {force}.
  var leaving = null;

  // Runs fn, logging instead of throwing: the host page must never break.
  function safe(fn) {
    return function () {
      try { return fn.apply(this, arguments); } catch (e) {
        try { console.warn("natter:", e); } catch (_) {}
      }
    };
  }

  var CSS =
    // Important inside the shadow root wins over the page's important.
    ":host{all:initial!important;display:block!important}" +
    ".natter-launcher,.natter-frame{position:fixed;right:20px;z-index:2147483647;margin:0;border:0}" +
    ".natter-launcher{bottom:20px;" +
    "width:56px;height:56px;padding:0;border-radius:50%;" +
    "background:#2563eb;color:#fff;font:600 24px/1 system-ui,sans-serif;" +
    "display:flex;align-items:center;justify-content:center;" +
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
    if (cw && leaving) cw.postMessage({ type: "natter:logout", force: leaving.force }, origin);
    if (cw && token) {
      cw.postMessage({ type: "natter:token", token: token }, origin);
      if (room) cw.postMessage({ type: "natter:open", room: room }, origin);
      shown();
    }
  }

  // Whether the person can see the chat (open, page visible): only then
  // does it mark messages read.
  function shown() {
    var cw = frame && frame.contentWindow;
    if (cw) cw.postMessage({ type: "natter:view", shown: open && d.visibilityState !== "hidden" }, origin);
  }

  function draw() {
    if (host || !site || !origin) return;
    host = d.createElement("div");
    host.setAttribute("data-natter", "");
    // Open, so that the site's own accessibility and browser tests can see
    // in; isolation comes from the shadow boundary and the iframe.
    root = host.attachShadow ? host.attachShadow({ mode: "open" }) : host;
    var style = d.createElement("style");
    style.textContent = CSS;
    button = d.createElement("button");
    button.type = "button";
    button.className = "natter-launcher";
    button.appendChild(icon());
    button.addEventListener("click", safe(toggle));
    root.append(style, button);
    label();
    d.body.appendChild(host);
    boot();
  }

  // Starts the chat hidden once the page has loaded and is idle, so the
  // page never waits for it.
  function boot() {
    if (booting || frame || !token || !host) return;
    booting = true;
    var later = safe(function () { if (!frame) makeFrame(); });
    var start = safe(function () {
      w.requestIdleCallback ? w.requestIdleCallback(later, { timeout: 1000 }) : setTimeout(later, 200);
    });
    d.readyState === "complete" ? start() : w.addEventListener("load", start);
  }

  function makeFrame() {
    frame = d.createElement("iframe");
    frame.className = "natter-frame";
    frame.title = "Chat";
    frame.hidden = !open;
    // Same-origin: the chat's own origin (socket, storage), not the page's.
    frame.setAttribute("sandbox", "allow-scripts allow-same-origin allow-forms allow-popups");
    frame.addEventListener("load", safe(post));
    frame.src = origin + "/widget/?site=" + encodeURIComponent(site) +
      (cacheMb ? "&file_cache_mb=" + encodeURIComponent(cacheMb) : "");
    root.appendChild(frame);
  }

  // A speech bubble, drawn (an emoji would need a font the page may lack).
  function icon() {
    var ns = "http://www.w3.org/2000/svg";
    var svg = d.createElementNS(ns, "svg");
    svg.setAttribute("viewBox", "0 0 24 24");
    svg.setAttribute("width", "28");
    svg.setAttribute("height", "28");
    svg.setAttribute("aria-hidden", "true");
    var path = d.createElementNS(ns, "path");
    path.setAttribute("fill", "currentColor");
    path.setAttribute("d", "M4 3h16a2 2 0 0 1 2 2v11a2 2 0 0 1-2 2H9l-5 4v-4a2 2 0 0 1-2-2V5a2 2 0 0 1 2-2z");
    svg.appendChild(path);
    return svg;
  }

  function label() {
    button.setAttribute("aria-expanded", "" + open);
    button.setAttribute("aria-label", (open ? "Close" : "Open") + " chat");
  }

  function toggle() {
    open = !open;
    if (open && !frame) makeFrame();
    if (frame) frame.hidden = !open;
    label();
    shown();
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
    if (m.type === "natter:token-expired") {
      listeners.tokenexpired.forEach(function (fn) { safe(fn)(); });
    }
    if (m.type === "natter:unsent" && typeof m.count === "number") {
      leaving = null;
      listeners.unsent.forEach(function (fn) { safe(fn)(m.count); });
    }
    if (m.type === "natter:logged-out") {
      leaving = null;
      listeners.loggedout.forEach(function (fn) { safe(fn)(); });
    }
  }));

  d.addEventListener("visibilitychange", safe(shown));

  safe(function () {
    var me = d.currentScript;
    if (!me) return;
    var chat = me.getAttribute("data-chat");
    origin = new URL(chat || me.src, location.href).origin;
    site = me.getAttribute("data-site") || "";
    token = me.getAttribute("data-token") || null;
    cacheMb = me.getAttribute("data-file-cache-mb");
    whenReady(draw);
  })();

  w.Natter = {
    version: 1,
    init: safe(function (opts) {
      opts = opts || {};
      if (opts.chat && !host) origin = new URL(String(opts.chat), location.href).origin;
      if (opts.site) site = String(opts.site);
      if (opts.token) token = String(opts.token);
      if (opts.fileCacheMb != null) cacheMb = String(opts.fileCacheMb);
      whenReady(function () { draw(); boot(); });
      post();
    }),
    setToken: safe(function (t) {
      token = t ? String(t) : null;
      boot();
      post();
    }),
    // Signs out of the chat in this browser: the connection closes, the
    // user's stored chat is wiped (other tabs sign out too). With messages
    // not yet sent, nothing happens and "unsent" listeners get their
    // number: call again with {force: true} to drop them.
    logout: safe(function (opts) {
      leaving = { force: !!(opts && opts.force) };
      token = null;
      whenReady(function () {
        draw();
        if (!frame) makeFrame();
        post();
      });
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
