//! The page: one HTML document with its style and script inline (it must
//! work without reaching anything outside the cluster).
//!
//! The script follows `/api/downloads/events` on the node that served it;
//! when that stream breaks it reconnects to another member it knows of
//! (their `--http` addresses come in the `cluster` events), with
//! credentials, so the session cookie goes along; behind a load balancer
//! it reconnects through the balancer.

/// The page.
pub(crate) const PAGE: &str = r##"<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>drove download manager</title>
<style>
  :root { --ink: #1f1d2b; --muted: #6b6880; --accent: #5b2a86; --ok: #1f7a4d; --bad: #a12b2b; --line: #e6e3ef; }
  * { box-sizing: border-box; }
  [hidden] { display: none !important; }
  body { margin: 0; font: 15px/1.5 system-ui, -apple-system, "Segoe UI", sans-serif; color: var(--ink); background: #f7f6fb; }
  header { padding: 20px 32px; border-bottom: 1px solid var(--line); background: #fff; display: flex; align-items: center; gap: 16px; }
  header h1 { font-size: 19px; margin: 0; }
  header .sub { color: var(--muted); font-size: 13px; }
  main { max-width: 980px; margin: 28px auto; padding: 0 20px; display: grid; grid-template-columns: 1fr 1.1fr; gap: 20px; }
  .card { background: #fff; border: 1px solid var(--line); border-radius: 10px; padding: 20px; }
  .card h2 { font-size: 14px; text-transform: uppercase; letter-spacing: .06em; color: var(--muted); margin: 0 0 14px; }
  button { font: inherit; color: #fff; background: var(--accent); border: 0; border-radius: 6px; padding: 10px 22px; cursor: pointer; }
  button:disabled { opacity: .5; cursor: default; }
  .bar { height: 10px; background: var(--line); border-radius: 5px; overflow: hidden; margin: 12px 0 6px; }
  .bar > div { height: 100%; width: 0; background: var(--accent); transition: width .3s; }
  .state { font-weight: 600; }
  .state.ready { color: var(--ok); } .state.error { color: var(--bad); }
  .muted { color: var(--muted); font-size: 13px; }
  a.file { display: inline-block; margin-top: 10px; color: var(--accent); font-weight: 600; }
  table { width: 100%; border-collapse: collapse; font-size: 14px; }
  td { padding: 5px 0; border-bottom: 1px solid var(--line); }
  td.st { text-align: right; white-space: nowrap; }
  .dot { display: inline-block; width: 8px; height: 8px; border-radius: 4px; margin-right: 8px; background: var(--muted); }
  .dot.up { background: var(--ok); } .dot.down { background: var(--bad); }
  .tag { font-size: 11px; padding: 1px 6px; border-radius: 4px; background: #efe9f7; color: var(--accent); margin-left: 6px; white-space: nowrap; }
  #conn.bad { color: var(--bad); }
</style>
</head>
<body>
<header>
  <div>
    <h1>drove download manager</h1>
    <div class="sub">Served by <b id="served">?</b> &middot; <span id="conn">connecting</span></div>
  </div>
</header>
<main>
  <section class="card">
    <h2>Your report</h2>
    <div id="idle">
      <p class="muted">Generate a CSV report. It is built step by step by a tracker somewhere in the cluster; kill that node and it carries on elsewhere.</p>
      <button id="go">Generate report</button>
    </div>
    <div id="busy" hidden>
      <div><span class="state" id="state">pending</span> <span class="muted" id="pct"></span></div>
      <div class="bar"><div id="fill"></div></div>
      <div class="muted">Download <code id="did"></code>, tracker on <b id="tracker">?</b>, last step rendered by <b id="runner">?</b></div>
      <a class="file" id="link" hidden href="#">Download the file</a>
      <div class="muted" id="err"></div>
    </div>
  </section>
  <section class="card">
    <h2>Cluster</h2>
    <table id="members"></table>
  </section>
</main>
<script>
"use strict";
const $ = (id) => document.getElementById(id);
let base = location.origin;          // the node this page talks to
let members = [];                    // [{name, http, status}]
let shown = null;                    // {id, progress}: never shown backwards
let source = null;
let trackerNode = null;

function render(d, servedBy) {
  $("served").textContent = servedBy || "?";
  if (!d) { shown = null; $("idle").hidden = false; $("busy").hidden = true; $("go").disabled = false; return; }
  if (shown && shown.id === d.id && d.progress < shown.progress) return;
  shown = { id: d.id, progress: d.progress };
  $("idle").hidden = true; $("busy").hidden = false;
  $("state").textContent = d.state; $("state").className = "state " + d.state;
  $("pct").textContent = d.state === "processing" ? d.progress + "%" : "";
  $("fill").style.width = d.progress + "%";
  $("did").textContent = d.id;
  trackerNode = d.tracker_node; $("tracker").textContent = d.tracker_node || "?";
  $("runner").textContent = d.step_runner || "?";
  $("link").hidden = !(d.state === "ready" && d.file_url);
  if (d.file_url) $("link").href = base + d.file_url;
  $("err").textContent = d.error || "";
  renderMembers();
}

function renderMembers() {
  const t = $("members"); t.textContent = "";
  for (const m of members) {
    const tr = document.createElement("tr");
    const name = document.createElement("td");
    const dot = document.createElement("span"); dot.className = "dot " + m.status; name.appendChild(dot);
    name.appendChild(document.createTextNode(m.name));
    if ("http://" + m.http === base) { const s = document.createElement("span"); s.className = "tag"; s.textContent = "serves you"; name.appendChild(s); }
    if (m.name === trackerNode && m.status === "up") { const s = document.createElement("span"); s.className = "tag"; s.textContent = "runs your tracker"; name.appendChild(s); }
    const st = document.createElement("td"); st.className = "st muted"; st.textContent = m.status + " \u00b7 " + m.http;
    tr.appendChild(name); tr.appendChild(st); t.appendChild(tr);
  }
}

function connect() {
  $("conn").textContent = "live"; $("conn").className = "";
  source = new EventSource(base + "/api/downloads/events", { withCredentials: true });
  source.addEventListener("download", (e) => { const m = JSON.parse(e.data); render(m.download, m.served_by); });
  source.addEventListener("cluster", (e) => {
    const c = JSON.parse(e.data);
    members = c.members; $("served").textContent = c.served_by; renderMembers();
  });
  source.onerror = () => { source.close(); failover(); };
}

function failover() {
  $("conn").textContent = "connection lost; reconnecting"; $("conn").className = "bad";
  // Behind a load balancer (the page's origin is no member): reconnect
  // through it, it picks a live node. Otherwise go to another member.
  const direct = members.some((m) => "http://" + m.http === location.origin);
  if (!direct) { base = location.origin; setTimeout(connect, 500); return; }
  const others = members.filter((m) => m.status === "up" && "http://" + m.http !== base);
  if (others.length === 0) { setTimeout(connect, 1000); return; }
  base = "http://" + others[Math.floor(Math.random() * others.length)].http;
  setTimeout(connect, 300);
}

async function call(method, path) {
  try {
    return await fetch(base + path, { method, credentials: "include" });
  } catch (e) {
    return null;
  }
}

$("go").onclick = async () => {
  $("go").disabled = true;
  const r = await call("POST", "/api/downloads");
  if (r && (r.status === 201 || r.status === 409)) {
    const body = await r.json();
    const d = r.status === 201 ? body : body.download;
    if (d) render(d, $("served").textContent);
  } else {
    $("go").disabled = false;
    $("err").textContent = "could not start the download, try again";
  }
};

// The link fetches the file, hands it to the browser, then clears the
// report with a DELETE (a GET changes nothing); the stream then brings the
// button back.
$("link").onclick = async (ev) => {
  ev.preventDefault();
  const r = await call("GET", new URL($("link").href).pathname);
  if (!r || r.status !== 200) {
    $("err").textContent = "could not fetch the file, try again";
    return;
  }
  const blob = await r.blob();
  const name = "report-" + (r.headers.get("x-download-id") || "file") + ".csv";
  await call("DELETE", "/api/downloads/current");
  const save = document.createElement("a");
  save.href = URL.createObjectURL(blob);
  save.download = name;
  document.body.appendChild(save);
  save.click();
  save.remove();
  setTimeout(() => URL.revokeObjectURL(save.href), 60000);
};
connect();
</script>
</body>
</html>
"##;
