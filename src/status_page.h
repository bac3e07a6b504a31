// The status page served at "/": one self-contained HTML document (inline CSS and JS, an inline
// SVG chart, nothing fetched from elsewhere) that renders /api/status every 2 s; laid out to be
// read on a phone as well as on a desktop.
#pragma once

namespace rmq2pg {

inline constexpr const char* kStatusPage = R"HTML(<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>rmq2pg status</title>
<style>
:root { --bg:#f5f6f8; --card:#fff; --fg:#1d2330; --muted:#667085; --line:#e3e6eb;
        --ok:#12805c; --bad:#c62828; --warn:#b26a00; --recv:#3366cc; --comm:#12805c; --dead:#c62828; }
@media (prefers-color-scheme: dark) {
  :root { --bg:#12151b; --card:#1b2029; --fg:#e6e8ec; --muted:#9aa3b2; --line:#2c3340; }
}
* { box-sizing: border-box; }
body { margin:0; font:15px/1.4 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;
       background:var(--bg); color:var(--fg); }
header { display:flex; flex-wrap:wrap; align-items:center; gap:8px 14px; padding:12px 16px;
         background:var(--card); border-bottom:1px solid var(--line); }
header h1 { font-size:18px; margin:0; }
.muted { color:var(--muted); font-size:13px; }
.badge { display:inline-block; padding:2px 9px; border-radius:999px; font-size:13px; font-weight:600;
         color:#fff; background:var(--muted); }
.badge.ok { background:var(--ok); } .badge.bad { background:var(--bad); }
main { padding:12px; display:grid; gap:12px; grid-template-columns:repeat(auto-fit,minmax(min(100%,560px),1fr)); }
.card { background:var(--card); border:1px solid var(--line); border-radius:10px; padding:14px; min-width:0; }
.card h2 { font-size:17px; margin:0 0 2px; overflow-wrap:anywhere; }
.sub { color:var(--muted); font-size:13px; margin-bottom:10px; overflow-wrap:anywhere; }
.stats { display:grid; gap:8px; grid-template-columns:repeat(auto-fit,minmax(110px,1fr)); }
.stat { border:1px solid var(--line); border-radius:8px; padding:8px 10px; }
.stat .label { color:var(--muted); font-size:12px; }
.stat .num { font-size:20px; font-weight:650; font-variant-numeric:tabular-nums; }
.totals { margin:10px 0 0; display:grid; grid-template-columns:repeat(auto-fit,minmax(150px,1fr));
          gap:2px 12px; font-size:13px; }
.totals div { display:flex; justify-content:space-between; border-bottom:1px dotted var(--line); }
.totals span:last-child { font-variant-numeric:tabular-nums; font-weight:600; }
.workers { margin-top:10px; display:flex; flex-wrap:wrap; gap:6px; }
.w { font-size:12px; padding:2px 8px; border-radius:6px; border:1px solid var(--line); }
.w.consuming, .w.writing { border-color:var(--ok); color:var(--ok); }
.w.backing_off, .w.connecting, .w.starting { border-color:var(--warn); color:var(--warn); }
.w.paused, .w.stopped { border-color:var(--bad); color:var(--bad); }
.error { margin-top:10px; padding:8px 10px; border-radius:8px; font-size:13px; overflow-wrap:anywhere;
         background:rgba(198,40,40,.08); border:1px solid rgba(198,40,40,.35); }
.reasons { margin-top:10px; font-size:13px; overflow-wrap:anywhere; }
.reasons div span { display:inline-block; min-width:4em; text-align:right; margin-right:.5em; }
.chart { margin-top:12px; }
.chart svg { width:100%; height:150px; display:block; }
.legend { display:flex; flex-wrap:wrap; gap:4px 14px; font-size:12px; color:var(--muted); }
.legend i { display:inline-block; width:10px; height:3px; margin-right:4px; vertical-align:middle; }
table.streams { margin-top:10px; width:100%; border-collapse:collapse; font-size:13px; }
table.streams th { text-align:left; color:var(--muted); font-weight:600; }
table.streams th, table.streams td { padding:3px 6px; border-bottom:1px solid var(--line); overflow-wrap:anywhere; }
table.streams td.n { text-align:right; font-variant-numeric:tabular-nums; }
table.streams td.none { color:var(--bad); }
#offline { display:none; margin:12px; padding:10px; border-radius:8px; color:#fff; background:var(--bad); }
</style>
</head>
<body>
<header>
  <h1>rmq2pg</h1>
  <span id="health" class="badge">…</span>
  <span id="ready" class="badge">…</span>
  <span class="muted" id="meta">loading…</span>
</header>
<div id="offline"></div>
<main id="pipelines"></main>
<script>
"use strict";
const $ = (id) => document.getElementById(id);
const esc = (s) => String(s).replace(/[&<>"']/g, (c) =>
  ({"&":"&amp;","<":"&lt;",">":"&gt;","\"":"&quot;","'":"&#39;"}[c]));
const fmt = (n) => n === null || n === undefined ? "–" : Number(n).toLocaleString("en-US");
const rate = (n) => n === null || n === undefined ? "–" :
  (n >= 100 ? Math.round(n) : Math.round(n * 10) / 10).toLocaleString("en-US");
const ms = (n) => n === null || n === undefined ? "–" : String(n >= 10 ? Math.round(n) : n.toFixed(1));
const duration = (s) => s < 120 ? s + " s" : s < 7200 ? Math.round(s / 60) + " min" : Math.round(s / 3600) + " h";

function stat(label, value, raw, key, name) {
  return `<div class="stat"><div class="label">${label}</div>` +
    `<div class="num" data-metric="${key}" data-pipeline="${esc(name)}" data-value="${raw ?? ""}">${value}</div></div>`;
}

function chart(history) {
  const W = 600, H = 150, pad = 4;
  if (history.length < 2) return `<div class="muted">collecting samples…</div>`;
  const t0 = history[0].t, t1 = history[history.length - 1].t, span = Math.max(1, t1 - t0);
  let max = 1;
  for (const h of history) max = Math.max(max, h.received, h.committed, h.dead_lettered);
  const line = (key) => history.map((h) =>
    `${((h.t - t0) / span * W).toFixed(1)},${(H - pad - h[key] / max * (H - 2 * pad)).toFixed(1)}`).join(" ");
  return `<svg viewBox="0 0 ${W} ${H}" preserveAspectRatio="none" role="img" aria-label="rates, last ${duration(span)}">` +
    `<line x1="0" y1="${H - pad}" x2="${W}" y2="${H - pad}" stroke="currentColor" stroke-opacity=".2"/>` +
    `<line x1="0" y1="${pad}" x2="${W}" y2="${pad}" stroke="currentColor" stroke-opacity=".1" stroke-dasharray="4 4"/>` +
    `<polyline fill="none" stroke="var(--recv)" stroke-width="2" vector-effect="non-scaling-stroke" points="${line("received")}"/>` +
    `<polyline fill="none" stroke="var(--comm)" stroke-width="2" vector-effect="non-scaling-stroke" points="${line("committed")}"/>` +
    `<polyline fill="none" stroke="var(--dead)" stroke-width="2" vector-effect="non-scaling-stroke" points="${line("dead_lettered")}"/>` +
    `</svg><div class="legend"><span><i style="background:var(--recv)"></i>received/s</span>` +
    `<span><i style="background:var(--comm)"></i>committed/s</span>` +
    `<span><i style="background:var(--dead)"></i>dead-lettered/s</span>` +
    `<span>top: ${rate(max)}/s · last ${duration(span)}</span></div>`;
}

function reasons(d) {
  if (!d.top_reasons_last_hour.length) return "";
  return `<div class="reasons"><b>Dead-lettered in the last hour</b> <span class="muted">${esc(d.queue || "")}</span>` +
    d.top_reasons_last_hour.map((r) => `<div><span>${fmt(r.count)}</span> ${esc(r.reason)}</div>`).join("") + `</div>`;
}

// Streams: per partition the committed offset, the owner (instance and worker), the lag behind
// the broker's end of the stream and the lease changes.
function streams(p) {
  if (!p.streams) return "";
  const rows = p.streams.map((s) =>
    `<tr data-stream="${esc(s.stream)}"><td>${esc(s.stream)}</td>` +
    `<td class="n" data-metric="stream_next_offset" data-value="${s.next_offset ?? ""}">${fmt(s.next_offset)}</td>` +
    (s.owner ? `<td>${esc(s.owner)}</td>` : `<td class="none">none</td>`) +
    `<td class="n" data-metric="stream_lag" data-value="${s.lag ?? ""}" title="${esc(s.end_error || (s.end_offset === null ? "the broker has not told the stream's end yet" : "end offset " + s.end_offset))}">${fmt(s.lag)}</td>` +
    `<td class="n">${fmt(s.lease_changes)}</td></tr>`).join("");
  return `<table class="streams"><thead><tr><th>stream</th><th>committed offset</th><th>owner</th>` +
    `<th>lag</th><th>lease changes</th></tr></thead><tbody>${rows}</tbody></table>` +
    (p.streams_error ? `<div class="error"><b>Stream offsets</b><br>${esc(p.streams_error)}</div>` : "");
}

function card(p) {
  const c = p.counters, q = p.queue_depth;
  const workers = p.workers.map((w) =>
    `<span class="w ${esc(w.state)}" title="in flight ${w.in_flight}">#${w.index} ${esc(w.state)}</span>`).join("");
  const error = p.last_error ? `<div class="error"><b>Last error</b> <span class="muted">${esc(p.last_error.at)}</span><br>${esc(p.last_error.text)}</div>` : "";
  return `<section class="card" data-pipeline="${esc(p.name)}">` +
    `<h2>${esc(p.name)}</h2><div class="sub">${p.streams ? "streams " + esc(p.streams.map((s) => s.stream).join(", ")) : "queue " + esc(p.queue)} → ${esc(p.table)} · ${esc(p.mode)}</div>` +
    `<div class="stats">` +
    stat("committed/s", rate(p.rates.committed), p.rates.committed, "committed_rate", p.name) +
    stat("received/s", rate(p.rates.received), p.rates.received, "received_rate", p.name) +
    stat("dead-lettered/s", rate(p.rates.dead_lettered), p.rates.dead_lettered, "dead_lettered_rate", p.name) +
    stat("queue depth", fmt(q.messages), q.messages, "queue_depth", p.name) +
    stat("dead-letter queue", fmt(p.dead_letters.messages), p.dead_letters.messages, "dead_letter_queue", p.name) +
    stat("in flight", fmt(p.in_flight), p.in_flight, "in_flight", p.name) +
    stat("commit p50 / p99 ms", ms(p.commit_latency_ms.p50) + " / " + ms(p.commit_latency_ms.p99), p.commit_latency_ms.p99, "commit_p99_ms", p.name) +
    `</div><div class="totals">` +
    `<div><span>committed</span><span data-metric="committed" data-pipeline="${esc(p.name)}" data-value="${c.committed}">${fmt(c.committed)}</span></div>` +
    `<div><span>received</span><span>${fmt(c.received)}</span></div>` +
    `<div><span>dead-lettered</span><span>${fmt(c.dead_lettered)}</span></div>` +
    `<div><span>rejected</span><span>${fmt(c.rejected)}</span></div>` +
    `<div><span>redelivered</span><span>${fmt(c.redelivered)}</span></div>` +
    `<div><span>batches</span><span>${fmt(c.batches)}</span></div>` +
    `<div><span>write failures</span><span>${fmt(c.write_failures)}</span></div>` +
    `<div><span>connects AMQP / PG</span><span>${fmt(c.amqp_connects)} / ${fmt(c.pg_connects)}</span></div>` +
    `<div><span>consumers on queue</span><span>${fmt(q.consumers)}</span></div>` +
    `</div>${streams(p)}<div class="workers">${workers}</div>${error}${reasons(p.dead_letters)}` +
    (q.error ? `<div class="error"><b>Queue poll</b><br>${esc(q.error)}</div>` : "") +
    `<div class="chart">${chart(p.history)}</div></section>`;
}

function badge(el, ok, yes, no) {
  el.textContent = ok ? yes : no;
  el.className = "badge " + (ok ? "ok" : "bad");
}

async function refresh() {
  try {
    const res = await fetch("/api/status", {cache: "no-store"});
    if (!res.ok) throw new Error("HTTP " + res.status);
    const s = await res.json();
    badge($("health"), s.healthy, "healthy", "wedged");
    badge($("ready"), s.ready, "ready", "not ready");
    $("meta").textContent = `v${s.version} · up ${duration(s.uptime_s)} · updated ${new Date().toLocaleTimeString()}`;
    $("pipelines").innerHTML = s.pipelines.map(card).join("");
    $("offline").style.display = "none";
  } catch (e) {
    $("offline").textContent = "Cannot reach rmq2pg: " + e.message + " (retrying every 2 s)";
    $("offline").style.display = "block";
  }
}
refresh();
setInterval(refresh, 2000);
</script>
</body>
</html>
)HTML";

}  // namespace rmq2pg
