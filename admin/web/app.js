// sluice dashboard: polls the read-only /v1/dashboard and renders it with
// plain DOM calls (textContent only, so reply texts can never inject markup).
"use strict";

const REFRESH_MS = 5000;

function el(tag, attrs, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  for (const k of kids) e.append(k instanceof Node ? k : document.createTextNode(String(k)));
  return e;
}

function svgEl(tag, attrs) {
  const e = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  return e;
}

function rate(r) { return r > 0 ? r.toFixed(r < 10 ? 2 : 0) : "∞"; }

function renderStatus(st) {
  const q = st.queue || {};
  const open = (q.queued || 0) + (q.active || 0) + (q.held || 0);
  document.getElementById("status").textContent =
    `${st.ready ? "ready" : "NOT READY"} · ${st.version} · up ${Math.round(st.uptime_seconds)}s · ` +
    `queue: ${q.queued || 0} queued, ${q.active || 0} active, ${q.held || 0} held (${open} open)`;
  document.getElementById("updated").textContent = "updated " + new Date().toLocaleTimeString();
}

function renderAlarm(a) {
  const box = document.getElementById("alarm");
  box.hidden = !a.active;
  box.textContent = a.active ? "SENDER-WIDE ALARM: " + a.reason : "";
}

function renderDestinations(dests) {
  const tb = document.querySelector("#destinations tbody");
  tb.replaceChildren();
  if (dests.length === 0) {
    tb.append(el("tr", {}, el("td", { colspan: 9, class: "empty" }, "no destination attempted yet")));
  }
  for (const d of dests) {
    let state = d.state;
    if (d.paused_until) state += " until " + new Date(d.paused_until).toLocaleTimeString();
    const classes = Object.entries(d.last_hour || {}).map(([k, v]) => `${k} ${v}`).join(", ");
    tb.append(el("tr", { "data-destination": d.name },
      el("td", {}, d.name),
      el("td", { class: "text state-" + d.state }, state),
      el("td", { class: "open" }, d.held > 0 ? `${d.open} (${d.held} held)` : d.open),
      el("td", {}, d.state === "idle" ? "" : `${d.concurrency}/${d.max_concurrency}`),
      el("td", {}, d.state === "idle" ? "" : `${rate(d.rate)}/${rate(d.max_rate)}`),
      el("td", { class: "n421" }, d.replies_421_last_hour),
      el("td", { class: "text" }, classes),
      el("td", {}, d.greylist_window),
      el("td", { class: "reply" }, d.last_reply || "")));
  }
}

// bars draws one destination's series as an SVG bar chart: 421s in red
// stacked under the other deferrals in grey.
function bars(series, width, height, labels) {
  const n = series.replies_421.length;
  const bw = width / n;
  let max = 1;
  for (let i = 0; i < n; i++) max = Math.max(max, series.deferred[i], series.replies_421[i]);
  const svg = svgEl("svg", { width, height, viewBox: `0 0 ${width} ${height}`, "data-destination": series.destination });
  let total421 = 0;
  for (let i = 0; i < n; i++) {
    const c421 = series.replies_421[i], cdef = series.deferred[i];
    total421 += c421;
    const other = Math.max(cdef - c421, 0);
    const h421 = (c421 / max) * (height - 2), hdef = (other / max) * (height - 2);
    if (c421 > 0) {
      const r = svgEl("rect", { class: "r421", x: i * bw, y: height - h421, width: Math.max(bw - 1, 1), height: h421, "data-count": c421 });
      r.append(svgEl("title")); r.firstChild.textContent = `${labels(i)}: ${c421} × 421, ${cdef} deferred`;
      svg.append(r);
    }
    if (other > 0) {
      svg.append(svgEl("rect", { class: "rdef", x: i * bw, y: height - h421 - hdef, width: Math.max(bw - 1, 1), height: hdef }));
    }
  }
  svg.setAttribute("data-total-421", total421);
  return svg;
}

function renderChart(chart) {
  const box = document.getElementById("chart"), hod = document.getElementById("hod");
  box.replaceChildren(); hod.replaceChildren();
  document.getElementById("hod-days").textContent = `(UTC, sum of the last ${chart.hour_of_day_days} days)`;
  if (chart.series.length === 0) {
    box.append(el("p", { class: "empty" }, "no delivery attempts recorded since the daemon started"));
    return;
  }
  const t = i => new Date((chart.start + i * chart.bucket_seconds) * 1000).toLocaleTimeString();
  for (const s of chart.series) {
    box.append(el("div", { class: "chart-row" }, el("span", { class: "label" }, s.destination), bars(s, 864, 60, t)));
  }
  for (const s of chart.hour_of_day) {
    hod.append(el("div", { class: "chart-row" }, el("span", { class: "label" }, s.destination), bars(s, 24 * 12, 60, i => `${i}:00 UTC`)));
  }
}

function renderShape(sum) {
  const head = document.querySelector("#shape thead"), body = document.querySelector("#shape tbody");
  head.replaceChildren(el("tr", {}, el("th", {}, "domain"), el("th", {}, "total"), ...sum.buckets.map(b => el("th", {}, b))));
  body.replaceChildren();
  for (const r of [sum.total, ...sum.rows]) {
    body.append(el("tr", { "data-domain": r.domain }, el("td", {}, r.domain), el("td", {}, r.total), ...r.counts.map(c => el("td", {}, c))));
  }
}

async function refresh() {
  try {
    const res = await fetch("v1/dashboard", { cache: "no-store" });
    if (!res.ok) throw new Error("HTTP " + res.status);
    const d = await res.json();
    renderStatus(d.status);
    renderAlarm(d.domains.alarm);
    renderDestinations(d.domains.destinations);
    renderChart(d.chart);
    renderShape(d.summary);
    document.body.setAttribute("data-loaded", "1");
  } catch (e) {
    document.getElementById("status").textContent = "cannot reach the daemon: " + e.message;
  }
}

refresh();
setInterval(refresh, REFRESH_MS);
