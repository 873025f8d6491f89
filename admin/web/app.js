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

// Times are UTC everywhere, as in the CLI ("2006-01-02 15:04:05Z").
function pad(n) { return String(n).padStart(2, "0"); }
function utc(d) {
  return `${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())} ` +
    `${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())}Z`;
}
function utcTime(d) { return `${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())}Z`; }
function utcHM(d) { return `${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}`; }

// The destination whose last hour is charted besides the busiest: a
// click on its row in the table selects it, a second click clears it.
let selected = "";

function renderStatus(st) {
  const q = st.queue || {};
  const open = (q.queued || 0) + (q.active || 0) + (q.held || 0);
  document.getElementById("status").textContent =
    `${st.ready ? "ready" : "NOT READY"} · ${st.version} · up ${Math.round(st.uptime_seconds)}s · ` +
    `queue: ${q.queued || 0} queued, ${q.active || 0} active, ${q.held || 0} held (${open} open)`;
  document.getElementById("updated").textContent = "updated " + utc(new Date());
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
    if (d.paused_until) state += " until " + utcTime(new Date(d.paused_until));
    const classes = Object.entries(d.last_hour || {}).map(([k, v]) => `${k} ${v}`).join(", ");
    const row = el("tr", { "data-destination": d.name, class: "pick" + (d.name === selected ? " selected" : ""), title: "chart this destination's last hour" },
      el("td", {}, d.name),
      el("td", { class: "text state-" + d.state }, state),
      el("td", { class: "open" }, d.held > 0 ? `${d.open} (${d.held} held)` : d.open),
      el("td", {}, d.state === "idle" ? "" : `${d.concurrency}/${d.max_concurrency}`),
      el("td", {}, d.state === "idle" ? "" : `${rate(d.rate)}/${rate(d.max_rate)}`),
      el("td", { class: "n421" }, d.replies_421_last_hour),
      el("td", { class: "text" }, classes),
      el("td", {}, d.greylist_window),
      el("td", { class: "reply" }, d.last_reply || ""));
    row.addEventListener("click", () => { selected = selected === d.name ? "" : d.name; refresh(); });
    tb.append(row);
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
  const t = i => utc(new Date((chart.start + i * chart.bucket_seconds) * 1000));
  for (const s of chart.series) {
    box.append(el("div", { class: "chart-row" }, el("span", { class: "label" }, s.destination), bars(s, 864, 60, t)));
  }
  for (const s of chart.hour_of_day) {
    hod.append(el("div", { class: "chart-row" }, el("span", { class: "label" }, s.destination), bars(s, 24 * 12, 60, i => `${i}:00 UTC`)));
  }
}

// ---- The control loop: one destination's last hour at 10-second steps.
//
// Two panels share the time axis. Sessions: the concurrency limit as a
// step line over the sessions in use (filled), the configured ceiling
// dashed. Messages/s: deliveries as green bars, the transactions started
// (the rate in use) as a line, and the rate limit as a step line (none
// while unlimited). Above them, one mark per step with 421s (red) and
// with other refusals (orange); behind them, the pauses (red bands, to
// the second) and the probing steps after a pause (amber). Hover a mark
// or a band for its numbers.

const TL = { left: 44, plot: 1080, right: 10, marks: 18, conc: 100, gap: 10, rate: 90, axis: 16 };

// The span shown: the whole hour, or its end, zoomed (ticks every
// tick seconds). The data is the same; only the drawing changes.
const WINDOWS = [
  { label: "1 h", steps: 360, tick: 600 },
  { label: "20 min", steps: 120, tick: 300 },
  { label: "5 min", steps: 30, tick: 60 },
];
let win = WINDOWS[0];
let lastTimeline = null;

// stepPath draws v as a step line: each value holds for its step, and
// the line breaks where skip(v, i) holds (no reading, unlimited).
function stepPath(v, x, y, skip) {
  let d = "", on = false, n = 0;
  for (let i = 0; i < v.length; i++) {
    if (skip(v[i], i)) { on = false; continue; }
    const yi = y(v[i]).toFixed(1);
    d += on ? `V${yi}H${x(i + 1)}` : `M${x(i)} ${yi}H${x(i + 1)}`;
    on = true; n++;
  }
  return [d, n];
}

// areaPath fills from base up to v, step by step.
function areaPath(v, x, y, base, skip) {
  let d = "", n = 0;
  for (let i = 0; i < v.length; i++) {
    if (skip(v[i], i) || v[i] <= 0) continue;
    const yi = y(v[i]).toFixed(1);
    d += `M${x(i)} ${base}V${yi}H${x(i + 1)}V${base}Z`;
    n++;
  }
  return [d, n];
}

function titled(node, text) {
  const t = svgEl("title");
  t.textContent = text;
  node.append(t);
  return node;
}

// window cuts the last w.steps steps out of a series.
function windowOf(full, tl, w) {
  const from = Math.max(tl.points - w.steps, 0);
  const s = { destination: full.destination, state: full.state.slice(from), pauses: full.pauses };
  for (const k of ["concurrency", "max_concurrency", "active", "rate", "max_rate", "messages", "sent", "replies_421", "refused"]) {
    s[k] = full[k].slice(from);
  }
  return [s, tl.start + from * tl.step_seconds];
}

function timelineSVG(full, tl, w) {
  const [s, start] = windowOf(full, tl, w);
  const n = s.state.length, step = tl.step_seconds, px = TL.plot / n;
  const W = TL.left + TL.plot + TL.right;
  const cTop = TL.marks, cBot = cTop + TL.conc, rTop = cBot + TL.gap, rBot = rTop + TL.rate, H = rBot + TL.axis;
  const x = i => +(TL.left + i * px).toFixed(1);
  const tOf = i => new Date((start + i * step) * 1000);
  const xOfTime = ms => TL.left + Math.min(Math.max((ms / 1000 - start) / step, 0), n) * px;
  // A gap between the marks of neighbouring steps where there is room,
  // so that a run of throttled steps still reads as steps.
  const markW = px > 6 ? px - 2 : Math.max(px, 2), markX = i => x(i) + px / 2 - markW / 2;
  // Counts per second: the newest step has run only since its start.
  const ran = Math.min(Math.max(Date.parse(tl.now) / 1000 - (start + (n - 1) * step), 1), step);
  const perSec = (c, i) => c / (i === n - 1 ? ran : step);
  const none = v => v < 0;
  const svg = svgEl("svg", { class: "timeline", width: W, height: H, viewBox: `0 0 ${W} ${H}`, "data-destination": s.destination });

  // Behind everything: pauses and probing steps.
  let probing = 0;
  for (let i = 0; i < n; i++) {
    if (s.state[i] !== "h") continue;
    let j = i;
    while (j < n && s.state[j] === "h") j++;
    svg.append(titled(svgEl("rect", { class: "band-probing", x: x(i), y: cTop, width: x(j) - x(i), height: rBot - cTop }),
      `probing (half-open) ${utcTime(tOf(i))} – ${utcTime(tOf(j))}`));
    probing++;
    i = j;
  }
  for (const p of s.pauses) {
    const a = xOfTime(Date.parse(p.from)), b = xOfTime(Date.parse(p.until));
    svg.append(titled(svgEl("rect", { class: "band-" + p.state, x: a, y: cTop, width: Math.max(b - a, 1), height: rBot - cTop }),
      `${p.state} ${utc(new Date(p.from))} – ${utcTime(new Date(p.until))}`));
  }

  // Panel frames and scales.
  let cmax = 1, rmax = 0;
  for (let i = 0; i < n; i++) {
    if (s.concurrency[i] >= 0) cmax = Math.max(cmax, s.concurrency[i], s.max_concurrency[i], s.active[i]);
    rmax = Math.max(rmax, s.rate[i] > 0 ? s.rate[i] : 0, perSec(s.messages[i], i), perSec(s.sent[i], i));
  }
  rmax = nice(rmax * 1.05);
  cmax = nice(cmax);
  const yc = v => cBot - (v / cmax) * (TL.conc - 2);
  const yr = v => rBot - (Math.min(v, rmax) / rmax) * (TL.rate - 2);
  for (const [top, bot, label, hi] of [[cTop, cBot, "sessions", String(cmax)], [rTop, rBot, "msgs/s", String(+rmax.toPrecision(3))]]) {
    svg.append(svgEl("rect", { class: "frame", x: TL.left, y: top, width: TL.plot, height: bot - top }));
    const l = svgEl("text", { class: "axis", x: TL.left - 4, y: top + 10, "text-anchor": "end" }); l.textContent = hi; svg.append(l);
    const z = svgEl("text", { class: "axis", x: TL.left - 4, y: bot, "text-anchor": "end" }); z.textContent = "0"; svg.append(z);
    const name = svgEl("text", { class: "panel", x: TL.left + 4, y: top + 11 }); name.textContent = label; svg.append(name);
  }

  // Sessions: in use (filled), the limit as a step line, the ceiling dashed.
  const [inuse] = areaPath(s.active, x, yc, cBot, none);
  svg.append(svgEl("path", { class: "inuse", d: inuse }));
  const [ceil] = stepPath(s.max_concurrency, x, yc, none);
  svg.append(svgEl("path", { class: "ceiling", d: ceil }));
  const [lim, limN] = stepPath(s.concurrency, x, yc, none);
  svg.append(svgEl("path", { class: "limit conc-limit", d: lim, "data-points": limN }));

  // Messages/s: deliveries, the rate in use, the rate limit.
  const [sent, sentN] = areaPath(s.sent.map(perSec), x, yr, rBot, () => false);
  svg.append(svgEl("path", { class: "sent", d: sent, "data-points": sentN }));
  // Steps before the destination was tracked, or with neither a reading
  // nor an attempt (the daemon was not running), draw no line.
  const quiet = (v, i) => s.state[i] === "." && v === 0;
  const [used, usedN] = stepPath(s.messages.map(perSec), x, yr, quiet);
  svg.append(svgEl("path", { class: "inuse-rate", d: used, "data-points": usedN }));
  const [rl, rlN] = stepPath(s.rate, x, yr, v => v <= 0);
  svg.append(svgEl("path", { class: "limit rate-limit", d: rl, "data-points": rlN }));

  // Refusals as marks above the panels.
  let n421 = 0, nref = 0;
  for (let i = 0; i < n; i++) {
    const a = s.replies_421[i], b = s.refused[i];
    if (a > 0) {
      n421 += a;
      svg.append(titled(svgEl("rect", { class: "mark-421", x: markX(i), y: 1, width: markW, height: 7, "data-count": a }),
        `${utcTime(tOf(i))}: ${a} × 421`));
    }
    if (b > 0) {
      nref += b;
      svg.append(titled(svgEl("rect", { class: "mark-refused", x: markX(i), y: 9, width: markW, height: 7, "data-count": b }),
        `${utcTime(tOf(i))}: ${b} other refusals (deferred, bounced or expired)`));
    }
  }

  // Time axis, UTC.
  const tickEvery = w.tick / step;
  for (let i = 0; i <= n; i++) {
    if ((start / step + i) % tickEvery !== 0) continue;
    svg.append(svgEl("line", { class: "tick", x1: x(i), x2: x(i), y1: cTop, y2: rBot }));
    const t = svgEl("text", { class: "axis", x: x(i), y: H - 3, "text-anchor": i === n ? "end" : i === 0 ? "start" : "middle" });
    t.textContent = utcHM(tOf(i));
    svg.append(t);
  }

  let samples = 0;
  for (const c of s.state) if (c !== ".") samples++;
  svg.setAttribute("data-samples", samples);
  svg.setAttribute("data-marks-421", n421);
  svg.setAttribute("data-marks-refused", nref);
  svg.setAttribute("data-pauses", s.pauses.length);
  svg.setAttribute("data-probing", probing);
  return svg;
}

function plural(n, what) { return `${n} ${what}${n === 1 ? "" : "s"}`; }

// nice rounds a scale's top up to 1, 2 or 5 times a power of ten.
function nice(v) {
  if (!(v > 0)) return 1;
  const p = Math.pow(10, Math.floor(Math.log10(v)));
  for (const m of [1, 2, 5, 10]) if (v <= m * p + 1e-9) return m * p;
  return 10 * p;
}

// lastReading is the newest step with a reading of the policy.
function lastReading(s) {
  for (let i = s.state.length - 1; i >= 0; i--) if (s.state[i] !== ".") return i;
  return -1;
}

function renderWindows() {
  const box = document.getElementById("tl-window");
  box.replaceChildren();
  for (const w of WINDOWS) {
    const b = el("button", { type: "button", "data-window": w.label, class: w === win ? "on" : "" }, w.label);
    b.addEventListener("click", () => { win = w; renderWindows(); if (lastTimeline) renderTimeline(lastTimeline); });
    box.append(b);
  }
}

function renderTimeline(tl) {
  lastTimeline = tl;
  const box = document.getElementById("timeline");
  box.replaceChildren();
  document.getElementById("timeline-note").textContent =
    `(${tl.step_seconds}-second steps, UTC; ${tl.destinations.length} of ${tl.tracked} destinations tracked, at most ${tl.max_tracked}; ` +
    `click a row of the table to chart that destination)`;
  if (tl.destinations.length === 0) {
    box.append(el("p", { class: "empty" }, "no delivery attempts in the last hour"));
  }
  if (selected && !tl.destinations.some(s => s.destination === selected)) {
    box.append(el("p", { class: "empty" }, `${selected}: nothing recorded in the last hour (or not among the destinations tracked)`));
  }
  for (const s of tl.destinations) {
    const sum = a => a.reduce((x, y) => x + y, 0);
    const i = lastReading(s);
    let now = "no reading yet";
    if (i >= 0) {
      const st = { o: "open", h: "probing", p: "paused", s: "suspended" }[s.state[i]];
      now = `${st} · concurrency ${s.concurrency[i]}/${s.max_concurrency[i]}, ${s.active[i]} in use · ` +
        `rate ${rate(s.rate[i])}/s (max ${rate(s.max_rate[i])}/s)`;
    }
    const facts = `last hour: ${sum(s.sent)} delivered, ${sum(s.replies_421)} × 421, ${plural(sum(s.refused), "other refusal")}, ` +
      plural(s.pauses.length, "pause");
    box.append(el("div", { class: "tl-card" + (s.selected ? " selected" : ""), "data-destination": s.destination },
      el("div", { class: "tl-head" }, el("span", { class: "label" }, s.destination), el("span", { class: "tl-now" }, now), el("span", { class: "tl-facts" }, facts)),
      timelineSVG(s, tl, win)));
  }
}

// renderLint shows the content lint findings per sender domain over the
// last day (issue 16), each with its hourly counts as small bars, so that
// a campaign's content can be set against the 421s above. Domains,
// evidence and fixes are set as text only.
function renderLint(lint) {
  const section = document.getElementById("lint-section");
  section.hidden = !lint;
  if (!lint) return;
  document.getElementById("lint-note").textContent =
    `(mode ${lint.mode}; hours from ${utcHM(new Date(lint.start))}Z` + (lint.more ? `; ${lint.more} more sender domains not shown)` : ")");
  const tb = document.querySelector("#lint tbody");
  tb.replaceChildren();
  if (lint.senders.length === 0) {
    tb.append(el("tr", {}, el("td", { colspan: 8, class: "empty" }, lint.mode === "off" ? "lint is off" : "no finding in the last 24 h")));
  }
  for (const s of lint.senders) {
    s.by_id.forEach((f, i) => {
      const last = utc(new Date(f.last)) + (f.evidence ? " · " + f.evidence : "");
      tb.append(el("tr", {},
        el("td", {}, i === 0 ? s.domain : ""),
        // warn mode lints a sample when the relay is busy
        // (lint.warn_budget): the counts are out of the linted.
        el("td", {}, i === 0 ? `${s.linted ?? s.messages} / ${s.messages}` : ""),
        el("td", { class: "text" }, f.id),
        el("td", { class: "text sev-" + f.severity }, f.severity),
        el("td", {}, f.count),
        el("td", {}, hourBars(f.hourly)),
        el("td", { class: "reply" }, last),
        el("td", { class: "reply" }, f.fix || "")));
    });
  }
}

// hourBars is a 24-bar SVG of hourly counts, scaled to the largest.
function hourBars(counts) {
  const w = 3, h = 16, max = Math.max(1, ...counts);
  const svg = svgEl("svg", { width: counts.length * w, height: h, class: "hours" });
  counts.forEach((c, i) => {
    if (c === 0) return;
    const bh = Math.max(1, Math.round(c / max * h));
    const r = svgEl("rect", { x: i * w, y: h - bh, width: w - 1, height: bh });
    r.append(svgEl("title", {}));
    r.lastChild.textContent = String(c);
    svg.append(r);
  });
  return svg;
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
    const url = "v1/dashboard" + (selected ? "?timeline=" + encodeURIComponent(selected) : "");
    const res = await fetch(url, { cache: "no-store" });
    if (!res.ok) throw new Error("HTTP " + res.status);
    const d = await res.json();
    renderStatus(d.status);
    renderAlarm(d.domains.alarm);
    renderDestinations(d.domains.destinations);
    renderLint(d.domains.lint);
    renderTimeline(d.timeline);
    renderChart(d.chart);
    renderShape(d.summary);
    document.body.setAttribute("data-loaded", "1");
  } catch (e) {
    document.getElementById("status").textContent = "cannot reach the daemon: " + e.message;
  }
}

renderWindows();
refresh();
setInterval(refresh, REFRESH_MS);
