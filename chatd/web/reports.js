/*
 * The supervision page's reports: requests and abandons per hour (last 24 h) and per day
 * (last 7 days), waits p50/p90 over those days, first response by topic, how chats ended and
 * how people rated them. Drawn as inline SVG (no library, no CDN: the console's CSP stays
 * strict); every chart has its numbers in a table beside it for screen readers and for
 * copying. Reads GET /api/reports (docs/protocol.md, "Reports") when the supervision tab
 * opens, then every minute while it stays open.
 */
(function () {
  "use strict";
  var SVG = "http://www.w3.org/2000/svg";
  var DISPOSITIONS = { answered: "Réponse apportée", redirected: "Réorientée", complaint_advised: "Plainte conseillée",
                       emergency: "Urgence", none: "Sans suite" };
  var timer = null;

  function $(id) { return document.getElementById(id); }
  function el(tag, attrs, text) {
    var e = document.createElement(tag);
    if (attrs) for (var k in attrs) if (attrs[k] != null) e.setAttribute(k, attrs[k]);
    if (text != null) e.textContent = text;
    return e;
  }
  function svgEl(tag, attrs) {
    var e = document.createElementNS(SVG, tag);
    for (var k in attrs) e.setAttribute(k, attrs[k]);
    return e;
  }
  function get(query) {
    return fetch("/api/reports?" + query, { credentials: "same-origin" }).then(function (r) {
      if (!r.ok) throw new Error("HTTP " + r.status);
      return r.json();
    });
  }
  function iso(d) { return d.toISOString().slice(0, 10); }
  function num(v, unit) { return v == null ? "—" : (unit === "s" ? seconds(v) : String(v)); }
  function short(v) { return (Math.round(v * 10) / 10).toString().replace(".", ","); }
  function seconds(s) {
    if (s < 10) return short(s) + " s";
    if (s < 60) return Math.round(s) + " s";
    if (s < 3600) return Math.round(s / 60) + " min";
    return (s / 3600).toFixed(1).replace(".", ",") + " h";
  }

  // A chart: bars (grouped) or lines over time, or bars across categories ("hbar", their
  // names at the left, where long ones fit); its table follows it.
  function chart(id, title, labels, series, kind, unit) {
    var fig = $(id);
    fig.textContent = "";
    fig.appendChild(el("figcaption", { id: id + "-cap" }, title));
    if (kind === "hbar") return hbars(fig, id, title, labels, series, unit);
    var W = 640, H = 200, L = 44, B = 28, T = 8;
    var max = 0;
    series.forEach(function (s) { s.values.forEach(function (v) { if (v != null && v > max) max = v; }); });
    var top = niceMax(max);
    var svg = svgEl("svg", { viewBox: "0 0 " + W + " " + H, "class": "chart", role: "img",
                             "aria-labelledby": id + "-cap", focusable: "false" });
    var plotW = W - L - 8, plotH = H - B - T;
    [0, 0.5, 1].forEach(function (f) {
      var y = T + plotH * (1 - f);
      svg.appendChild(svgEl("line", { x1: L, x2: W - 8, y1: y, y2: y, "class": "grid" }));
      var t = svgEl("text", { x: L - 4, y: y + 4, "class": "tick", "text-anchor": "end" });
      t.textContent = unit === "s" ? seconds(top * f) : short(top * f);
      svg.appendChild(t);
    });
    var step = plotW / Math.max(1, labels.length);
    var every = Math.ceil(labels.length / 12);
    labels.forEach(function (lab, i) {
      if (i % every) return;
      var t = svgEl("text", { x: L + step * (i + 0.5), y: H - 8, "class": "tick", "text-anchor": "middle" });
      t.textContent = lab;
      svg.appendChild(t);
    });
    series.forEach(function (s, k) {
      if (kind === "line") {
        var pts = [];
        s.values.forEach(function (v, i) {
          if (v == null) return;
          pts.push((L + step * (i + 0.5)).toFixed(1) + "," + (T + plotH * (1 - v / top)).toFixed(1));
        });
        if (pts.length) svg.appendChild(svgEl("polyline", { points: pts.join(" "), "class": "line s" + k }));
        pts.forEach(function (p) {
          var xy = p.split(",");
          svg.appendChild(svgEl("circle", { cx: xy[0], cy: xy[1], r: 2.5, "class": "dot s" + k }));
        });
      } else {
        var bw = step * 0.8 / series.length;
        s.values.forEach(function (v, i) {
          if (!v) return;
          var h = plotH * v / top;
          svg.appendChild(svgEl("rect", { x: (L + step * (i + 0.1) + bw * k).toFixed(1), y: (T + plotH - h).toFixed(1),
                                          width: Math.max(1, bw - 1).toFixed(1), height: h.toFixed(1), "class": "bar s" + k }));
        });
      }
    });
    fig.appendChild(svg);
    legendAndTable(fig, title, labels, series, unit);
  }

  function hbars(fig, id, title, labels, series, unit) {
    var W = 640, row = 22, L = 230, T = 4;
    var H = T + row * labels.length + 18;
    var max = 0;
    series[0].values.forEach(function (v) { if (v != null && v > max) max = v; });
    var top = niceMax(max), plotW = W - L - 60;
    var svg = svgEl("svg", { viewBox: "0 0 " + W + " " + H, "class": "chart", role: "img",
                             "aria-labelledby": id + "-cap", focusable: "false" });
    labels.forEach(function (lab, i) {
      var y = T + row * i;
      var t = svgEl("text", { x: L - 6, y: y + row * 0.65, "class": "tick cat", "text-anchor": "end" });
      t.textContent = lab.length > 34 ? lab.slice(0, 33) + "…" : lab;
      svg.appendChild(t);
      var v = series[0].values[i];
      if (v) {
        svg.appendChild(svgEl("rect", { x: L, y: y + 3, width: Math.max(1, plotW * v / top).toFixed(1),
                                        height: row - 6, "class": "bar s0" }));
      }
      var n = svgEl("text", { x: L + (v ? plotW * v / top : 0) + 4, y: y + row * 0.65, "class": "tick" });
      n.textContent = num(v, unit);
      svg.appendChild(n);
    });
    fig.appendChild(svg);
    legendAndTable(fig, title, labels, series, unit);
  }

  function legendAndTable(fig, title, labels, series, unit) {
    var legend = el("p", { "class": "legend" });
    series.forEach(function (s, k) {
      var item = el("span", { "class": "key s" + k }, s.name);
      legend.appendChild(item);
    });
    fig.appendChild(legend);
    // the same numbers, as a table
    var table = el("table", { "class": "numbers" });
    table.appendChild(el("caption", null, title + " — tableau"));
    var head = el("tr");
    head.appendChild(el("th", { scope: "col" }, ""));
    series.forEach(function (s) { head.appendChild(el("th", { scope: "col" }, s.name)); });
    var thead = el("thead"); thead.appendChild(head); table.appendChild(thead);
    var body = el("tbody");
    labels.forEach(function (lab, i) {
      var tr = el("tr");
      tr.appendChild(el("th", { scope: "row" }, lab));
      series.forEach(function (s) { tr.appendChild(el("td", null, num(s.values[i], unit))); });
      body.appendChild(tr);
    });
    table.appendChild(body);
    var details = el("details");
    details.appendChild(el("summary", null, "Voir les chiffres"));
    details.appendChild(table);
    fig.appendChild(details);
  }

  function niceMax(v) {
    if (v <= 0) return 1;
    var p = Math.pow(10, Math.floor(Math.log(v) / Math.LN10));
    var n = v / p;
    return (n <= 1 ? 1 : n <= 2 ? 2 : n <= 5 ? 5 : 10) * p;
  }

  function refresh() {
    var now = new Date();
    var today = iso(now), yesterday = iso(new Date(now.getTime() - 864e5));
    var weekAgo = iso(new Date(now.getTime() - 6 * 864e5));
    Promise.all([
      get("by=hour&from=" + yesterday + "&to=" + today),
      get("by=day&from=" + weekAgo + "&to=" + today),
      get("by=topic&from=" + weekAgo + "&to=" + today),
    ]).then(function (r) {
      var hourNow = now.toISOString().slice(0, 13);
      var hours = r[0].rows.filter(function (x) { return x.key.slice(0, 13) <= hourNow; }).slice(-24);
      var days = r[1].rows, topics = r[2].rows;
      var hourLabels = hours.map(function (x) { return x.key.slice(11, 13) + " h"; });
      var dayLabels = days.map(function (x) { return x.key.slice(8, 10) + "/" + x.key.slice(5, 7); });
      chart("rp-hours", "Demandes et abandons par heure (24 dernières heures, UTC)", hourLabels, [
        { name: "Demandes", values: hours.map(function (x) { return x.requests; }) },
        { name: "Abandons", values: hours.map(function (x) { return x.abandoned; }) }], "bar");
      chart("rp-days", "Demandes, abandons et réponses différées par jour (7 jours)", dayLabels, [
        { name: "Demandes", values: days.map(function (x) { return x.requests; }) },
        { name: "Abandons", values: days.map(function (x) { return x.abandoned; }) },
        { name: "Réponse plus tard", values: days.map(function (x) { return x.async; }) }], "bar");
      chart("rp-waits", "Attente avant un gendarme (médiane et 90 %)", dayLabels, [
        { name: "Médiane", values: days.map(function (x) { return x.wait_p50_s; }) },
        { name: "90 %", values: days.map(function (x) { return x.wait_p90_s; }) }], "line", "s");
      var label = function (t) { return (window.chatdTopicLabel && window.chatdTopicLabel(t.key)) || t.key; };
      chart("rp-first", "Première réponse par sujet (médiane, 7 jours)", topics.map(label), [
        { name: "Première réponse", values: topics.map(function (x) { return x.first_response_p50_s; }) }], "hbar", "s");
      var disp = {};
      days.forEach(function (x) { for (var d in x.dispositions) disp[d] = (disp[d] || 0) + x.dispositions[d]; });
      var dnames = Object.keys(disp).sort();
      chart("rp-dispositions", "Issue des conversations (7 jours)", dnames.map(function (d) { return DISPOSITIONS[d] || d; }), [
        { name: "Conversations", values: dnames.map(function (d) { return disp[d]; }) }], "hbar");
      chart("rp-ratings", "Notes des personnes (moyenne sur 5, par jour)", dayLabels, [
        { name: "Note moyenne", values: days.map(function (x) { return x.rating_avg; }) },
        { name: "Nombre de notes", values: days.map(function (x) { return x.rating_count; }) }], "bar");
      $("rp-updated").textContent = "· mis à jour à " + now.toLocaleTimeString("fr-FR");
      var csv = "/api/reports?by=day&format=csv&from=" + weekAgo + "&to=" + today;
      $("rp-csv").setAttribute("href", csv);
    }).catch(function () { $("rp-updated").textContent = "· rapports indisponibles"; });
  }

  function watch() {
    var view = $("view-supervision");
    if (!view) return;
    new MutationObserver(function () {
      clearInterval(timer);
      if (!view.hidden) { refresh(); timer = setInterval(refresh, 60000); }
    }).observe(view, { attributes: true, attributeFilter: ["hidden"] });
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", watch);
  else watch();
})();
