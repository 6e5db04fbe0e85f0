// drove's dashboard: one stream of frames ({summary, panel}) from the
// node, read with fetch so the admin token can go in a header. Every
// value from the node is put in the page as text, never as HTML: names,
// keys and errors are whatever a client of the cluster wrote.
"use strict";

const $ = (id) => document.getElementById(id);
const TOKEN_KEY = "drove.dashboard.token";

const state = {
  token: sessionStorage.getItem(TOKEN_KEY) || "",
  view: { panel: location.hash.slice(1) || "cluster" },
  cursors: { registry: [], cache: [] },
  controller: null,
  frames: 0,
  last: null,
  drawn: new Map(),
};
// Tests read how many frames arrived and the last one.
window.droveDashboard = state;

function el(tag, props, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(props || {})) {
    if (k === "class") e.className = v;
    else if (k.startsWith("data-")) e.setAttribute(k, v);
    else if (k === "onclick") e.addEventListener("click", v);
    else e[k] = v;
  }
  for (const kid of kids) e.append(kid instanceof Node ? kid : String(kid ?? ""));
  return e;
}

function headers(json) {
  const h = {};
  if (state.token) h.Authorization = "Bearer " + state.token;
  if (json) h["Content-Type"] = "application/json";
  return h;
}

function toast(text, bad) {
  const t = $("toast");
  t.textContent = text;
  t.className = bad ? "show bad" : "show";
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => (t.className = ""), 4000);
}

// An action: a POST with a JSON body, as the admin API's guard wants.
async function post(path, body, done) {
  try {
    const r = await fetch(path, { method: "POST", headers: headers(true), body: JSON.stringify(body ?? {}) });
    const text = await r.text();
    let answer = null;
    try { answer = text ? JSON.parse(text) : null; } catch (_) { answer = text; }
    if (!r.ok) {
      toast(`${path}: ${r.status} ${(answer && answer.error) || text}`, true);
      return;
    }
    toast(done);
  } catch (e) {
    toast(`${path}: ${e}`, true);
  }
}

const fmt = {
  bytes(n) {
    if (n == null) return "";
    const units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let i = 0;
    while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
    return (i ? n.toFixed(1) : n) + " " + units[i];
  },
  ms(n) {
    if (n == null) return "";
    const s = Math.floor(n / 1000);
    if (s < 60) return s + " s";
    if (s < 3600) return Math.floor(s / 60) + " min " + (s % 60) + " s";
    return Math.floor(s / 3600) + " h " + Math.floor((s % 3600) / 60) + " min";
  },
  rate(n) { return n == null ? "" : n < 10 ? n.toFixed(1) : Math.round(n).toString(); },
  time(ms) { return ms ? new Date(ms).toLocaleTimeString() : ""; },
  num(n) { return n == null ? "" : Number(n).toLocaleString(); },
};

// Replaces a table body's rows only when their data changed, so a row's
// button is not swapped under the pointer every second.
function rows(tbody, items, row) {
  const key = JSON.stringify(items);
  if (state.drawn.get(tbody.id) === key) return;
  state.drawn.set(tbody.id, key);
  tbody.replaceChildren(...items.map(row));
  if (!items.length) tbody.append(el("tr", { class: "empty" }, el("td", { colSpan: 12 }, "nothing here")));
}

function options(select, values, labels) {
  const key = JSON.stringify(values);
  if (select.dataset.values === key) return;
  const keep = select.value;
  select.dataset.values = key;
  select.replaceChildren(...values.map((v, i) => el("option", { value: v }, labels ? labels[i] : v)));
  if (values.includes(keep)) select.value = keep;
}

// A small line chart in plain SVG: one polyline per line, scaled to the
// largest value shown.
function chart(container, series, names, labels) {
  const w = 480, h = 110, pad = 4;
  const n = series.at_ms.length;
  const lines = names.map((name) => series.lines[name] || []);
  const max = Math.max(1e-9, ...lines.flat().filter((v) => v != null));
  const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
  svg.setAttribute("viewBox", `0 0 ${w} ${h}`);
  svg.setAttribute("class", "chart-svg");
  lines.forEach((values, li) => {
    const points = [];
    values.forEach((v, i) => {
      if (v == null) return;
      const x = n > 1 ? pad + (i * (w - 2 * pad)) / (n - 1) : w / 2;
      const y = h - pad - (v / max) * (h - 2 * pad);
      points.push(`${x.toFixed(1)},${y.toFixed(1)}`);
    });
    const p = document.createElementNS("http://www.w3.org/2000/svg", "polyline");
    p.setAttribute("points", points.join(" "));
    p.setAttribute("class", "line line" + li);
    svg.append(p);
  });
  const legend = el("div", { class: "legend" },
    ...names.map((name, i) => {
      const v = lines[i].length ? lines[i][lines[i].length - 1] : null;
      return el("span", { class: "key line" + i }, `${labels[i]}: ${fmt.rate(v)}`);
    }),
    el("span", { class: "max" }, `max ${fmt.rate(max)} · last ${fmt.ms(n * 2000)}`));
  container.replaceChildren(svg, legend);
}

// ---- panels -------------------------------------------------------------

function renderOverview(s) {
  const c = s.counts;
  const up = s.members.filter((m) => m.status === "up").length;
  const card = (label, value, panel) =>
    el("button", { type: "button", class: "card", onclick: () => show(panel) }, el("b", {}, value), label);
  $("overview").replaceChildren(
    card("members up", `${up} / ${s.members.length}`, "cluster"),
    card("names", fmt.num(c.names), "registry"),
    card("children running", fmt.num(c.children.running), "children"),
    card("topics", fmt.num(c.topics), "pubsub"),
    card("cache keys", `${fmt.num(c.cache_keys)} · ${fmt.bytes(c.cache_bytes)}`, "cache"),
    card("pools", fmt.num(s.pools.length), "pools"),
    card("queues", Array.isArray(s.queues) ? fmt.num(s.queues.length) : "—", "jobs"),
  );
}

function renderCluster(s) {
  rows($("members"), s.members, (m) => {
    const t = m.traffic;
    const r = t ? t.rates : null;
    return el("tr", { "data-member": m.name, class: m.status },
      el("td", {}, m.name + (m.me ? " (this node)" : "")),
      el("td", { class: "status", title: m.reason || "" }, m.reason ? m.status + ": " + m.reason : m.status),
      el("td", { class: "mono" }, m.incarnation),
      el("td", { class: "mono" }, m.addr),
      el("td", { class: "mono" }, m.http),
      el("td", {}, fmt.ms(m.uptime_ms)),
      el("td", {}, m.children ?? ""),
      el("td", {}, t ? `${fmt.num(t.messages_out)} / ${fmt.num(t.messages_in)}` : ""),
      el("td", {}, t ? `${fmt.bytes(t.bytes_out)} / ${fmt.bytes(t.bytes_in)}` : ""),
      el("td", {}, r && r.bytes_out != null ? `${fmt.bytes(r.bytes_out)} / ${fmt.bytes(r.bytes_in)}` : "—"));
  });
  const nodes = s.members.map((m) => m.name);
  options($("children-node"), ["", ...nodes], ["all nodes", ...nodes]);
}

function renderRegistry(p) {
  $("registry-count").textContent = `${fmt.num(p.matched)} names match`;
  $("registry-next").disabled = !p.more;
  state.pageEnd = p.entries.length ? p.entries[p.entries.length - 1].name : null;
  rows($("names"), p.entries, (e) =>
    el("tr", { "data-name": e.name }, el("td", {}, e.name), el("td", {}, e.node),
      el("td", { class: "mono" }, e.actor), el("td", { class: "mono" }, e.meta ?? "")));
  rows($("conflicts"), p.conflicts, (c) =>
    el("tr", {}, el("td", {}, c.name), el("td", {}, fmt.time(c.at_ms)),
      el("td", { class: "mono" }, c.winner), el("td", { class: "mono" }, c.loser)));
}

function renderChildren(p) {
  const c = p.counts;
  $("children-count").textContent =
    `${fmt.num(p.matched)} shown of: ${c.running} running, ${c.restarting} restarting, ${c.stopped} stopped, ${c.given_up} given up`;
  options($("child-type"), p.types);
  $("children-prev").disabled = !p.offset;
  $("children-next").disabled = p.offset + p.children.length >= p.matched;
  rows($("children"), p.children, (ch) =>
    el("tr", { "data-child": ch.id, class: ch.status },
      el("td", { class: "mono" }, ch.id), el("td", {}, ch.type), el("td", {}, ch.name ?? ""),
      el("td", {}, ch.node), el("td", { class: "status" }, ch.status), el("td", {}, ch.restarts),
      el("td", {}, ch.checkpoint_bytes == null ? "" : fmt.bytes(ch.checkpoint_bytes)),
      el("td", {}, el("button", { type: "button", class: "terminate",
        onclick: () => post(`/api/children/${encodeURIComponent(ch.id)}/terminate`, {}, `terminated ${ch.id}`) },
        "Terminate"))));
}

function renderTopics(p) {
  $("topics-count").textContent = `${fmt.num(p.matched)} topics`;
  rows($("topics"), p.topics, (t) =>
    el("tr", { "data-topic": t.topic }, el("td", {}, t.topic),
      el("td", {}, t.nodes.map((n) => `${n.node}: ${n.subscribers ?? "some"}`).join(", "))));
}

function renderCache(p) {
  $("cache-count").textContent = `${fmt.num(p.matched)} keys match · ${fmt.bytes(p.bytes)} held here`;
  $("cache-next").disabled = !p.more;
  state.pageEnd = p.keys.length ? p.keys[p.keys.length - 1].key : null;
  rows($("keys"), p.keys, (k) =>
    el("tr", { "data-key": k.key }, el("td", {}, k.key), el("td", {}, fmt.bytes(k.bytes)),
      el("td", {}, k.expires_at_ms == null ? "never" : fmt.ms(Math.max(0, k.expires_at_ms - p.now_ms))),
      el("td", {}, k.written_by)));
}

function renderPools(s) {
  options($("bounds-pool"), s.pools.map((p) => p.name));
  const chosen = s.pools.find((p) => p.name === $("bounds-pool").value);
  for (const [id, key] of [["bounds-min", "min"], ["bounds-max", "max"]]) {
    const input = $(id);
    if (chosen && document.activeElement !== input && !input.dataset.edited) input.value = chosen[key];
  }
  const box = $("pools");
  const keep = new Set();
  for (const p of s.pools) {
    keep.add(p.name);
    let card = box.querySelector(`[data-pool="${CSS.escape(p.name)}"]`);
    if (!card) {
      card = el("article", { class: "pool", "data-pool": p.name },
        el("h3", {}, p.name), el("p", { class: "facts" }),
        el("table", {}, el("thead", {}, el("tr", {}, ...["runner", "state", "busy slots", "pid", "age"].map((h) => el("th", {}, h)))),
          el("tbody", { id: "runners-" + p.name })),
        el("div", { class: "chart" }), el("div", { class: "chart" }));
      box.append(card);
    }
    card.querySelector(".facts").textContent =
      `min ${p.min} · max ${p.max} · slots per runner: ${p.max_concurrency} · booting: ${p.booting} · waiting: ${p.waiting}`;
    card.dataset.runners = p.runners.length;
    rows(card.querySelector("tbody"), p.runners, (r) =>
      el("tr", { "data-runner": r.name, class: r.state }, el("td", {}, r.name), el("td", {}, r.state),
        el("td", {}, `${r.busy} / ${p.max_concurrency}`), el("td", {}, r.pid ?? ""), el("td", {}, fmt.ms(r.age_ms))));
    const [calls, boots] = card.querySelectorAll(".chart");
    const k = (what) => `pool:${p.name}:${what}`;
    chart(calls, s.series, [k("calls"), k("boots")], ["calls/s", "boots/s"]);
    chart(boots, s.series, [k("runners"), k("wait_ms")], ["runners", "queue wait ms"]);
  }
  for (const card of [...box.children]) if (!keep.has(card.dataset.pool)) card.remove();
}

const STATES = ["scheduled", "available", "executing", "retryable", "completed", "dead", "cancelled"];

function renderQueues(s) {
  if (!Array.isArray(s.queues)) {
    $("queues").replaceChildren(el("tr", {}, el("td", { colSpan: 10, class: "error" }, s.queues.error)));
    state.drawn.delete("queues");
    return;
  }
  options($("jobs-queue"), s.queues.map((q) => q.queue));
  // The job list needs a queue: the first one, until the user picks one.
  if (state.view.panel === "jobs" && !state.view.queue && $("jobs-queue").value) {
    refine({ queue: $("jobs-queue").value, state: $("jobs-state").value });
  }
  rows($("queues"), s.queues, (q) => {
    const paused = q.paused ? "cluster-wide" : q.paused_nodes.length ? q.paused_nodes.join(", ") : "no";
    const act = (what) => () =>
      post(`/api/jobs/queues/${encodeURIComponent(q.queue)}/${what}`, { scope: $("pause-scope").value }, `${what}d ${q.queue}`);
    return el("tr", { "data-queue": q.queue, class: q.paused ? "paused" : "" },
      el("td", {}, q.queue), el("td", { class: "paused-cell" }, paused),
      ...STATES.map((st) => el("td", { "data-state": st }, q.counts[st] ?? 0)),
      el("td", {}, el("button", { type: "button", class: "pause", onclick: act("pause") }, "Pause"),
        el("button", { type: "button", class: "resume", onclick: act("resume") }, "Resume")));
  });
  chart($("jobs-chart"), s.series, ["jobs:completed", "jobs:retried", "jobs:dead", "events:handled"],
    ["completed", "retried", "dead", "events handled"]);
}

function renderJobs(p) {
  if (p.error) { toast(p.error, true); return; }
  const list = p.jobs || [];
  $("jobs-prev").disabled = !p.offset;
  $("jobs-next").disabled = list.length < 50;
  rows($("jobs"), list, (j) =>
    el("tr", { "data-job": j.id, class: j.state },
      el("td", {}, j.id), el("td", {}, j.worker), el("td", {}, j.state),
      el("td", {}, `${j.attempt} / ${j.max_retries + 1}`), el("td", {}, j.node ?? ""),
      el("td", { class: "mono" }, j.args),
      el("td", {}, el("ul", {}, ...j.errors.map((e) => el("li", {}, `#${e.attempt} on ${e.node}: ${e.error}`)))),
      el("td", {},
        el("button", { type: "button", onclick: () => post(`/api/jobs/${j.id}/retry`, {}, `job ${j.id} retried`) }, "Retry"),
        el("button", { type: "button", onclick: () => post(`/api/jobs/${j.id}/cancel`, {}, `job ${j.id} cancelled`) }, "Cancel"))));
}

function renderEvents(p) {
  if (p.error) return;
  for (const kind of ["pending", "dispatched", "dead"]) {
    const list = Array.isArray(p[kind]) ? p[kind] : [];
    rows($("events-" + kind), list, (e) =>
      el("tr", { "data-event": e.id },
        el("td", {}, e.id), el("td", {}, e.type), el("td", {}, e.state), el("td", {}, fmt.time(e.due_ms)),
        el("td", {}, e.signalled_by),
        el("td", {}, el("ul", {}, ...e.handlers.map((h) =>
          el("li", {}, `${h.handler}: ${h.state}, ${h.attempts} attempt(s)` +
            (h.errors.length ? ` — last error: ${h.errors[h.errors.length - 1].error}` : "")))))));
  }
}

function onFrame(frame) {
  state.frames++;
  state.last = frame;
  const s = frame.summary;
  $("node").textContent = `${s.node} · up ${fmt.ms(s.uptime_ms)}`;
  $("quorum").textContent = s.quorum ? "" : "no quorum";
  setConn("live");
  renderOverview(s);
  renderCluster(s);
  renderPools(s);
  renderQueues(s);
  const p = frame.panel;
  if (!p) return;
  switch (state.view.panel) {
    case "registry": renderRegistry(p); break;
    case "children": renderChildren(p); break;
    case "pubsub": renderTopics(p); break;
    case "cache": renderCache(p); break;
    case "jobs": renderJobs(p); break;
    case "events": renderEvents(p); break;
  }
}

// ---- the stream ---------------------------------------------------------

function setConn(what) {
  const c = $("conn");
  c.textContent = what;
  c.className = "conn " + what;
}

async function connect() {
  if (state.controller) state.controller.abort();
  const controller = new AbortController();
  state.controller = controller;
  const query = new URLSearchParams();
  for (const [k, v] of Object.entries(state.view)) if (v !== undefined && v !== null && v !== "") query.set(k, v);
  try {
    const r = await fetch("/api/dashboard/stream?" + query, { headers: headers(false), signal: controller.signal, cache: "no-store" });
    if (r.status === 401) { showLogin(state.token ? "That token was refused." : ""); return; }
    if (!r.ok) throw new Error(`${r.status} ${await r.text()}`);
    showApp();
    const reader = r.body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += decoder.decode(value, { stream: true });
      let end;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        const data = block.split("\n").filter((l) => l.startsWith("data:")).map((l) => l.slice(5).replace(/^ /, "")).join("\n");
        if (data) onFrame(JSON.parse(data));
      }
    }
    throw new Error("the stream ended");
  } catch (e) {
    if (controller.signal.aborted) return;
    setConn("offline");
    setTimeout(() => { if (state.controller === controller) connect(); }, 1000);
  }
}

function show(panel) {
  state.view = { panel };
  if (panel === "jobs") {
    state.view.queue = $("jobs-queue").value || undefined;
    state.view.state = $("jobs-state").value;
  }
  state.cursors = { registry: [], cache: [] };
  location.hash = panel;
  for (const section of document.querySelectorAll(".panel")) section.hidden = section.id !== "panel-" + panel;
  for (const tab of $("tabs").children) tab.classList.toggle("active", tab.dataset.panel === panel);
  connect();
}

// Changes the current view (a search, a page) and reopens the stream.
function refine(changes) {
  Object.assign(state.view, changes);
  for (const [k, v] of Object.entries(changes)) if (v === undefined) delete state.view[k];
  connect();
}

function showLogin(message) {
  $("app").hidden = true;
  $("login").hidden = false;
  $("logout").hidden = true;
  $("login-error").textContent = message;
  setConn("signed out");
}

function showApp() {
  $("login").hidden = true;
  $("app").hidden = false;
  $("logout").hidden = !state.token;
}

function debounce(f) {
  let t;
  return (...a) => { clearTimeout(t); t = setTimeout(() => f(...a), 250); };
}

function wire() {
  const labels = { cluster: "Cluster", registry: "Registry", children: "Children", pubsub: "Pub/sub",
    cache: "Cache", pools: "Pools", jobs: "Jobs", events: "Events" };
  $("tabs").replaceChildren(...Object.entries(labels).map(([panel, label]) =>
    el("button", { type: "button", "data-panel": panel, onclick: () => show(panel) }, label)));
  $("login").addEventListener("submit", (e) => {
    e.preventDefault();
    state.token = $("token").value.trim();
    sessionStorage.setItem(TOKEN_KEY, state.token);
    connect();
  });
  $("logout").addEventListener("click", () => {
    sessionStorage.removeItem(TOKEN_KEY);
    state.token = "";
    if (state.controller) state.controller.abort();
    showLogin("");
  });
  const search = (id) => $(id).addEventListener("input", debounce(() =>
    refine({ q: $(id).value || undefined, after: undefined, offset: undefined })));
  for (const id of ["registry-q", "children-q", "topics-q", "cache-q"]) search(id);
  for (const kind of ["registry", "cache"]) {
    $(kind + "-next").addEventListener("click", () => {
      if (state.pageEnd == null) return;
      state.cursors[kind].push(state.pageEnd);
      refine({ after: state.pageEnd });
    });
    $(kind + "-first").addEventListener("click", () => { state.cursors[kind] = []; refine({ after: undefined }); });
  }
  const step = (id, by) => $(id).addEventListener("click", () =>
    refine({ offset: Math.max(0, (state.view.offset || 0) + by) || undefined }));
  step("children-prev", -50); step("children-next", 50); step("jobs-prev", -50); step("jobs-next", 50);
  $("children-node").addEventListener("change", () => refine({ node: $("children-node").value || undefined, offset: undefined }));
  const jobsView = () => refine({ queue: $("jobs-queue").value || undefined, state: $("jobs-state").value, offset: undefined });
  $("jobs-queue").addEventListener("change", jobsView);
  $("jobs-state").addEventListener("change", jobsView);
  $("start-child").addEventListener("submit", (e) => {
    e.preventDefault();
    let args;
    try { args = JSON.parse($("child-args").value || "null"); } catch (err) { toast("args must be JSON: " + err.message, true); return; }
    const body = { type: $("child-type").value, restart: $("child-restart").value, args };
    if ($("child-name").value) body.name = $("child-name").value;
    post("/api/children", body, `started a ${body.type}`);
  });
  for (const id of ["bounds-min", "bounds-max"]) $(id).addEventListener("input", () => ($(id).dataset.edited = "1"));
  $("bounds-pool").addEventListener("change", () => { delete $("bounds-min").dataset.edited; delete $("bounds-max").dataset.edited; });
  $("bounds").addEventListener("submit", (e) => {
    e.preventDefault();
    const pool = $("bounds-pool").value;
    const body = { min: Number($("bounds-min").value), max: Number($("bounds-max").value) };
    post(`/api/pools/${encodeURIComponent(pool)}/bounds`, body, `${pool}: min ${body.min}, max ${body.max}`).then(() => {
      delete $("bounds-min").dataset.edited;
      delete $("bounds-max").dataset.edited;
    });
  });
  const first = labels[state.view.panel] ? state.view.panel : "cluster";
  show(first);
}

wire();
