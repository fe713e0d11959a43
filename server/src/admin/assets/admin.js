// The live numbers on a site's page: polls /admin/live every 10 s and
// draws connections (blue) and messages a minute (green) for the last hour.
// Numbers only; nothing here is markup.
(function () {
  "use strict";
  var NS = "http://www.w3.org/2000/svg";
  function line(svg, cls, values, max) {
    var path = svg.querySelector("polyline." + cls);
    if (!path) {
      path = document.createElementNS(NS, "polyline");
      path.setAttribute("class", cls);
      svg.appendChild(path);
    }
    var n = values.length;
    var points = values.map(function (v, i) {
      var x = n > 1 ? (i * 600) / (n - 1) : 600;
      var y = 115 - (v / max) * 110;
      return x.toFixed(1) + "," + y.toFixed(1);
    });
    path.setAttribute("points", points.join(" "));
  }
  function refresh(section) {
    fetch(section.getAttribute("data-live"), { credentials: "same-origin" })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (data) {
        if (!data) return;
        section.querySelector('[data-field="connections"]').textContent = String(data.connections);
        section.querySelector('[data-field="per_minute"]').textContent = data.per_minute.toFixed(0);
        var svg = section.querySelector("svg.chart");
        var conns = data.points.map(function (p) { return p.connections; });
        var msgs = data.points.map(function (p) { return p.per_minute; });
        line(svg, "connections", conns, Math.max(1, Math.max.apply(null, conns.concat([1]))));
        line(svg, "messages", msgs, Math.max(1, Math.max.apply(null, msgs.concat([1]))));
      })
      .catch(function () {});
  }
  document.addEventListener("DOMContentLoaded", function () {
    var section = document.querySelector("section.live[data-live]");
    if (!section) return;
    refresh(section);
    setInterval(function () { refresh(section); }, 10000);
  });
})();
