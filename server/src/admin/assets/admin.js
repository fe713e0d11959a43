// The live numbers on the sites page: polls /admin/live every 10 s, draws
// this node's connections (blue) and messages a minute (green) for the
// last hour, and lists every node's latest. Text only, never markup.
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
        var body = section.querySelector("table.nodes tbody");
        if (body) {
          while (body.firstChild) body.removeChild(body.firstChild);
          data.nodes.forEach(function (node) {
            var row = document.createElement("tr");
            [node.label, String(node.connections), String(node.per_minute),
             new Date(node.seen_at).toISOString().slice(11, 19) + " UTC"].forEach(function (text) {
              var cell = document.createElement("td");
              cell.textContent = text;
              row.appendChild(cell);
            });
            body.appendChild(row);
          });
        }
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
