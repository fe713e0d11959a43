/*! Natter widget loader.
 *
 *   <script src="https://CHAT/widget.js" data-site="SITE" defer></script>
 *   then, once it has run (e.g. on DOMContentLoaded): Natter.init({token: "..."})
 *   or give the token as data-token="..." on the script tag.
 *
 * Draws a launcher button in a closed shadow root (its styles never touch
 * the page's, and the page's never reach it). The first click opens an
 * iframe on CHAT/widget/?site=SITE; the token goes to it by postMessage,
 * addressed to the chat origin only, never in a URL. Natter.setToken(t)
 * hands over a fresh token. Nothing here throws into the host page.
 */
(function () {
  "use strict";
  var w = window;
  var d = document;
  if (w.Natter && w.Natter.version) return; // loaded twice

  var origin = "";
  var site = "";
  var token = null;
  var host = null;
  var root = null;
  var button = null;
  var frame = null;
  var open = false;

  // Runs fn, logging instead of throwing: the host page must never break.
  function safe(fn) {
    return function () {
      try {
        return fn.apply(this, arguments);
      } catch (e) {
        try {
          console.warn("natter:", e);
        } catch (_) {}
      }
    };
  }

  var CSS =
    ":host{all:initial}" +
    ".natter-launcher{position:fixed;right:20px;bottom:20px;z-index:2147483647;" +
    "width:56px;height:56px;margin:0;padding:0;border:0;border-radius:50%;" +
    "background:#2563eb;color:#fff;font:600 24px/1 system-ui,sans-serif;" +
    "cursor:pointer;box-shadow:0 4px 14px rgba(0,0,0,.3)}" +
    ".natter-launcher:focus-visible{outline:3px solid #93c5fd;outline-offset:2px}" +
    ".natter-frame{position:fixed;right:20px;bottom:88px;z-index:2147483647;" +
    "width:370px;height:560px;max-width:calc(100vw - 40px);" +
    "max-height:calc(100vh - 108px);margin:0;border:0;border-radius:12px;" +
    "background:#fff;box-shadow:0 8px 30px rgba(0,0,0,.3)}" +
    ".natter-frame[hidden]{display:none}";

  // Posts the token to the chat iframe, addressed to the chat origin only.
  function post() {
    if (frame && token && frame.contentWindow) {
      frame.contentWindow.postMessage({ type: "natter:token", token: token }, origin);
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
    button.textContent = "\uD83D\uDCAC"; // speech balloon
    button.addEventListener("click", safe(toggle));
    root.appendChild(style);
    root.appendChild(button);
    label();
    d.body.appendChild(host);
  }

  function label() {
    button.setAttribute("aria-expanded", String(open));
    button.setAttribute("aria-label", open ? "Close chat" : "Open chat");
  }

  function toggle() {
    open = !open;
    if (open && !frame) {
      frame = d.createElement("iframe");
      frame.className = "natter-frame";
      frame.title = "Chat";
      // Same-origin is the chat's own origin (for its socket and storage),
      // not the host page's.
      frame.setAttribute("sandbox", "allow-scripts allow-same-origin allow-forms allow-popups");
      frame.addEventListener("load", safe(post));
      frame.src = origin + "/widget/?site=" + encodeURIComponent(site);
      root.appendChild(frame);
    }
    if (frame) frame.hidden = !open;
    label();
  }

  function whenReady(fn) {
    if (d.body) fn();
    else d.addEventListener("DOMContentLoaded", safe(fn));
  }

  // The widget asks again once it listens: the load event may come first.
  w.addEventListener(
    "message",
    safe(function (e) {
      if (frame && e.source === frame.contentWindow && e.origin === origin &&
          e.data && e.data.type === "natter:ready") {
        post();
      }
    })
  );

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
    /** opts.token: the user's token; opts.site overrides data-site. */
    init: safe(function (opts) {
      opts = opts || {};
      if (opts.site) site = String(opts.site);
      if (opts.token) token = String(opts.token);
      whenReady(draw);
      post();
    }),
    /** Hands a fresh token to the open chat (and to the next one). */
    setToken: safe(function (t) {
      token = t ? String(t) : null;
      post();
    })
  };
})();
