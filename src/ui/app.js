// The shardd dashboard: one page, no dependencies, talking only to the node that served it.
// Every figure comes from the REST API; nothing is drawn from data the API did not give.
"use strict";

(() => {
  const REFRESH_MS = 1500;
  const HISTORY = "/v1/stats/history?scope=cluster&window=15m&points=90&top=8";
  const HISTORY_EVERY_MS = 5000;  // the monitor's history changes once per sample; no need to ask at every refresh
  const PAGE_ROWS = 200;  // shard rows drawn at once: a page stays quick at any cluster size
  const TOKEN_KEY = "shardd.token";
  const PALETTE = ["#2f6fde", "#e0803a", "#2e9d5b", "#c2417a", "#7b5cc4", "#1fa3a3", "#b5942b", "#d64545", "#5a7d2a",
    "#8c5a3c", "#3f8fd6", "#cf6f9e", "#4c6b8a", "#a0a02a", "#6a3fa0", "#2aa06a", "#d08a2a", "#7a7a7a", "#3aa0c8", "#b04a4a"];

  // ---- state -------------------------------------------------------------------------------
  const state = {
    view: "cluster",
    cluster: null,      // GET /v1/cluster
    shards: [],         // GET /v1/shards
    load: null,         // GET /v1/cluster/load
    ring: null,         // GET /v1/ring?vnodes=true (fetched when the map version changes)
    migrations: [],     // GET /v1/migrations
    events: [],         // GET /v1/events, newest last (the last 500)
    lastEvent: 0,
    plan: null, planTag: null,
    history: null,      // GET /v1/stats/history?scope=cluster (the monitor's stored samples)
    historyAt: 0,
    sort: { key: "shard", dir: 1 },
    page: 0,            // the shards table's page (PAGE_ROWS rows each)
    lookup: null,
  };
  // For the browser test (and the curious): the state, a render of it, a stop of the refresh.
  window.shardd = { state, render: renderAll, stop: () => { clearInterval(timer); timer = null; } };

  // ---- helpers -----------------------------------------------------------------------------
  const $ = (id) => document.getElementById(id);
  function el(tag, attrs, ...children) {
    const e = tag.startsWith("svg:") ? document.createElementNS("http://www.w3.org/2000/svg", tag.slice(4))
      : document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null || v === false) continue;
      if (k === "text") e.textContent = v;
      else if (k === "class") e.setAttribute("class", v);
      else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
      else if (k === "dataset") Object.assign(e.dataset, v);
      else e.setAttribute(k, v === true ? "" : v);
    }
    for (const c of children.flat()) if (c !== null && c !== undefined) e.append(c instanceof Node ? c : String(c));
    return e;
  }
  const INT = new Intl.NumberFormat("en-US", { maximumFractionDigits: 0 });  // one formatter: toLocaleString makes one per call
  const fmtInt = (n) => (n === null || n === undefined) ? "–" : INT.format(Math.round(n));
  function fmtBytes(n) {
    if (n === null || n === undefined) return "–";
    const u = ["B", "KiB", "MiB", "GiB", "TiB"];
    let i = 0;
    while (Math.abs(n) >= 1024 && i < u.length - 1) { n /= 1024; i++; }
    return (i === 0 ? String(Math.round(n)) : n.toFixed(1)) + " " + u[i];
  }
  const fmtRate = (n) => (n === null || n === undefined) ? "–" : (n >= 100 ? INT.format(Math.round(n)) : n.toFixed(1));
  const nodeColour = (id) => {
    const ids = (state.cluster ? state.cluster.nodes.map((n) => n.id) : []).sort();
    const i = ids.indexOf(id);
    return PALETTE[(i < 0 ? 0 : i) % PALETTE.length];
  };
  // A token's place on the circle, 0..1, from its 16 hex digits (the first 13 are exact in a double).
  const tokenFraction = (hex) => parseInt(hex.slice(0, 13), 16) / 2 ** 52;

  // ---- API ---------------------------------------------------------------------------------
  async function api(method, path, body, headers) {
    const h = Object.assign({ Authorization: "Bearer " + sessionStorage.getItem(TOKEN_KEY) }, headers || {});
    if (body !== undefined) h["Content-Type"] = "application/json";
    const r = await fetch(path, { method, headers: h, body: body === undefined ? undefined : JSON.stringify(body) });
    let json = null;
    const text = await r.text();
    try { json = text ? JSON.parse(text) : null; } catch (e) { json = null; }
    if (r.status === 401) { signOut("The token was refused: " + (json && json.detail ? json.detail : r.status)); throw new Error("unauthorized"); }
    return { status: r.status, json, headers: r.headers, text };
  }
  const problem = (r) => (r.json && r.json.detail) ? r.json.detail : ("HTTP " + r.status);

  // ---- confirmation ------------------------------------------------------------------------
  function confirmAction(text) {
    return new Promise((resolve) => {
      $("confirm-text").textContent = text;
      $("confirm").hidden = false;
      const done = (v) => { $("confirm").hidden = true; $("confirm-ok").onclick = $("confirm-cancel").onclick = null; resolve(v); };
      $("confirm-ok").onclick = () => done(true);
      $("confirm-cancel").onclick = () => done(false);
    });
  }
  function showError(msg) { $("error").textContent = msg || ""; }
  async function act(question, fn) {
    if (!(await confirmAction(question))) return;
    try {
      const r = await fn();
      if (r && r.status >= 400) showError(problem(r)); else showError("");
    } catch (e) { if (e.message !== "unauthorized") showError(String(e)); }
    refresh();
  }

  // ---- refresh -----------------------------------------------------------------------------
  let refreshing = false, timer = null;
  async function refresh() {
    if (refreshing || !sessionStorage.getItem(TOKEN_KEY)) return;
    refreshing = true;
    try {
      const [cl, sh, ld, mg, ev] = await Promise.all([
        api("GET", "/v1/cluster"), api("GET", "/v1/shards"), api("GET", "/v1/cluster/load"),
        api("GET", "/v1/migrations"), api("GET", "/v1/events?since=" + state.lastEvent + "&limit=200")]);
      if (cl.status !== 200) { showError("cluster: " + problem(cl)); return; }
      const mapChanged = !state.cluster || state.cluster.map_version !== cl.json.map_version;
      state.cluster = cl.json;
      if (sh.status === 200) state.shards = sh.json.shards;
      if (ld.status === 200) state.load = ld.json;
      if (mg.status === 200) state.migrations = mg.json.migrations;
      if (ev.status === 200 && ev.json.events.length) {
        state.events.push(...ev.json.events);
        if (state.events.length > 500) state.events.splice(0, state.events.length - 500);
        state.lastEvent = ev.json.events[ev.json.events.length - 1].id;
      }
      if (mapChanged || !state.ring) {
        const rg = await api("GET", "/v1/ring?vnodes=true");
        if (rg.status === 200) state.ring = rg.json;
      }
      if (state.view === "load" && Date.now() - state.historyAt >= HISTORY_EVERY_MS) await fetchHistory();
      showError("");
      renderAll();
    } catch (e) {
      if (e.message !== "unauthorized") showError("cannot reach the node: " + e);
    } finally {
      refreshing = false;
    }
  }

  async function fetchHistory() {
    const r = await api("GET", HISTORY);
    if (r.status !== 200) return;
    state.history = r.json;
    state.historyAt = Date.now();
  }
  // The history as chart series: per node (requests/s, p99 ms, bytes stored) and per shard (the
  // busiest across the cluster: requests/s, p99 ms, bytes), each a list of {t, v} without gaps.
  function historySeries() {
    const nodes = { rps: {}, p99: {}, bytes: {} }, shards = { rps: {}, p99: {}, bytes: {} };
    const ranked = [];
    // A series' points, the gaps (null: no requests, or the shard not there yet) left out.
    const line = (ts, vals, scale) => ts.map((t, i) => ({ t, v: vals[i] })).filter((p) => p.v !== null && p.v !== undefined)
      .map((p) => ({ t: p.t, v: p.v * (scale || 1) }));
    for (const n of (state.history && state.history.nodes) || []) {
      if (!n.t) continue;  // a node that did not answer
      nodes.rps[n.node] = line(n.t, n.totals.requests_per_sec);
      nodes.p99[n.node] = line(n.t, n.totals.p99_us, 1 / 1000);
      nodes.bytes[n.node] = line(n.t, n.totals.data_bytes);
      for (const s of n.shards || []) ranked.push({ n, s });
    }
    ranked.sort((a, b) => b.s.requests - a.s.requests);
    for (const { n, s } of ranked.slice(0, 8)) {
      const id = s.index + "/" + s.shard;
      shards.rps[id] = line(n.t, s.reads_per_sec.map((r, i) => (r === null ? null : r + s.writes_per_sec[i])));
      shards.p99[id] = line(n.t, s.p99_us, 1 / 1000);
      shards.bytes[id] = line(n.t, s.bytes);
    }
    const ts = ((state.history && state.history.nodes) || []).flatMap((n) => n.t || []);
    const span = ts.length ? { t0: Math.min(...ts), t1: Math.max(...ts) } : null;
    return { nodes, shards, shardIds: ranked.slice(0, 8).map(({ s }) => s.index + "/" + s.shard), span };
  }
  function shardLoad() {
    const m = new Map();
    for (const n of (state.load && state.load.nodes) || [])
      for (const s of n.shards || []) m.set(s.index + "/" + s.shard, s);
    return m;
  }

  // ---- views -------------------------------------------------------------------------------
  // Only the view on screen is drawn; switching views draws the new one at once.
  const RENDER = { cluster: () => renderCluster(), ring: () => renderRing(), shards: () => renderShards(),
    migrations: () => renderMigrations(), load: () => renderLoad(), rebalance: () => renderPlan(), events: () => renderEvents() };
  function renderAll() {
    renderHeader();
    RENDER[state.view]();
  }

  function renderHeader() {
    const c = state.cluster;
    if (!c) return;
    const b = $("cluster-status");
    b.textContent = c.status;
    b.className = "badge " + c.status;
    b.title = (c.status_reasons || []).join("; ");
    $("cluster-summary").textContent = c.cluster_id + " · map v" + c.map_version + " · controller " + (c.controller || "none") +
      " · " + c.nodes.length + " nodes · " + state.shards.length + " shards";
  }

  function nodeHealth(n) {
    if (n.state === "down" || n.disk_level === "flood") return "red";
    if (n.state !== "up" || n.disk_level === "high" || n.anomalies_open > 0 || n.migrations_in + n.migrations_out > 0) return "yellow";
    return "green";
  }

  function renderCluster() {
    const tb = $("nodes-table").tBodies[0];
    const c = state.cluster;
    if (!c) return;
    const load = new Map(((state.load && state.load.nodes) || []).map((n) => [n.node, n]));
    tb.replaceChildren(...c.nodes.map((n) => {
      const l = load.get(n.id);
      const disk = n.disk_total ? (100 * n.disk_used / n.disk_total).toFixed(1) + "%" : "–";
      return el("tr", { dataset: { node: n.id } },
        el("td", {}, el("span", { class: "dot " + nodeHealth(n), title: nodeHealth(n) })),
        el("td", { class: "text" }, n.id, n.controller ? el("b", { title: "controller", text: " ★ controller" }) : null),
        el("td", { class: "text", text: n.state }),
        el("td", { text: n.weight }),
        el("td", { text: fmtInt(n.shards) }),
        el("td", { text: fmtInt(n.records) }),
        el("td", { text: fmtBytes(n.bytes), title: String(n.bytes) }),
        el("td", { text: disk + (n.disk_level && n.disk_level !== "ok" ? " (" + n.disk_level + ")" : "") }),
        el("td", { text: l ? fmtRate(l.reads_per_sec) : "–" }),
        el("td", { text: l ? fmtRate(l.writes_per_sec) : "–" }),
        el("td", { text: n.migrations_out + " out / " + n.migrations_in + " in" }),
        el("td", {},
          el("button", { class: "quiet", onclick: () => openWeight(n) , text: "Weight" }),
          " ",
          el("button", { class: "quiet", disabled: n.state !== "up" ? true : undefined, text: "Decommission",
            onclick: () => act("Decommission " + n.id + "? Its shards move to the other nodes, then it leaves the cluster.",
              () => api("POST", "/v1/cluster/nodes/" + encodeURIComponent(n.id) + "/decommission", {})) })));
    }));
  }
  function openWeight(n) {
    $("weight-node").textContent = n.id;
    $("weight-value").value = n.weight;
    $("weight-form").hidden = false;
  }

  function ringIndex() {
    const sel = $("ring-index");
    return sel.value || (state.cluster && state.shards.length ? state.shards[0].index : "");
  }
  function fillIndexSelect(sel, withAll) {
    const names = [...new Set(state.shards.map((s) => s.index))].sort();
    const want = (withAll ? [""] : []).concat(names);
    const have = [...sel.options].map((o) => o.value);
    if (have.join("\n") === want.join("\n")) return;
    const keep = sel.value;
    sel.replaceChildren(...want.map((v) => el("option", { value: v, text: v || "all" })));
    if (want.includes(keep)) sel.value = keep;
  }

  function renderRing() {
    fillIndexSelect($("ring-index"), false);
    const svg = $("ring");
    const r = state.ring;
    if (!r || !r.tokens) return;
    const R = 170, parts = [];
    const pos = (f, rad) => [rad * Math.sin(2 * Math.PI * f), -rad * Math.cos(2 * Math.PI * f)];
    parts.push(el("svg:circle", { cx: 0, cy: 0, r: R, fill: "none", stroke: "#ccd2dc", "stroke-width": 1 }));
    // Every vnode: a tick in its node's colour.
    const ids = r.nodes.map((n) => n.id);
    let d = {};
    for (let i = 0; i < r.tokens.length; i++) {
      const id = ids[r.owners[i]];
      const [x1, y1] = pos(tokenFraction(r.tokens[i]), R - 8);
      const [x2, y2] = pos(tokenFraction(r.tokens[i]), R + 8);
      d[id] = (d[id] || "") + "M" + x1.toFixed(1) + " " + y1.toFixed(1) + "L" + x2.toFixed(1) + " " + y2.toFixed(1);
    }
    for (const [id, path] of Object.entries(d))
      parts.push(el("svg:path", { d: path, stroke: nodeColour(id), "stroke-width": 1.2, class: "vnodes", "data-node": id }));
    // The chosen index's shards: arcs outside the ring, coloured by owner.
    const index = ringIndex();
    // Hash shards only (a range index's bounds are keys, not tokens); no end: the top of the ring.
    const isToken = (t) => /^[0-9a-f]{16}$/.test(t);
    const arcs = state.shards.filter((s) => s.index === index && isToken(s.start) && (s.end === null || isToken(s.end)));
    for (const s of arcs) {
      const f0 = tokenFraction(s.start);
      let f1 = s.end === null ? 1 : tokenFraction(s.end);
      if (f1 <= f0) f1 += 1;
      const [x0, y0] = pos(f0, R + 22), [x1, y1] = pos(f1 - 0.001, R + 22);
      const large = f1 - f0 > 0.5 ? 1 : 0;
      const hit = state.lookup && state.lookup.index === index && state.lookup.shard === s.shard;
      parts.push(el("svg:path", {
        d: "M" + x0.toFixed(1) + " " + y0.toFixed(1) + "A" + (R + 22) + " " + (R + 22) + " 0 " + large + " 1 " + x1.toFixed(1) + " " + y1.toFixed(1),
        fill: "none", stroke: nodeColour(s.node), "stroke-width": hit ? 14 : 8, "stroke-opacity": hit ? 1 : 0.75,
        class: "shard-arc" + (hit ? " hit" : ""), "data-shard": s.shard, "data-owner": s.node },
        el("svg:title", { text: index + " shard " + s.shard + " on " + s.node + " (" + s.start + "–" + s.end + ")" })));
    }
    if (state.lookup && state.lookup.index === index) {
      const [x, y] = pos(tokenFraction(state.lookup.token), R + 34);
      parts.push(el("svg:line", { x1: 0, y1: 0, x2: x.toFixed(1), y2: y.toFixed(1), stroke: "#d64545", "stroke-width": 2,
        id: "lookup-token" }));
    }
    parts.push(el("svg:text", { x: 0, y: -4, "text-anchor": "middle", text: r.vnode_count + " vnodes" }));
    parts.push(el("svg:text", { x: 0, y: 14, "text-anchor": "middle", text: index ? arcs.length + " shards of " + index : "" }));
    svg.replaceChildren(...parts);
    $("ring-legend").replaceChildren(...r.nodes.map((n) => {
      const sw = el("span", { class: "swatch" });
      sw.style.background = nodeColour(n.id);
      return el("span", {}, sw, n.id + " " + (100 * n.ownership).toFixed(1) + "%");
    }));
  }

  function shardRows() {
    const idx = $("shards-index").value;
    const q = $("shards-filter").value.trim().toLowerCase();
    const load = shardLoad();
    let rows = state.shards.map((s) => {
      const l = load.get(s.index + "/" + s.shard);
      return Object.assign({}, s, { reads: l ? l.reads_per_sec : null, writes: l ? l.writes_per_sec : null });
    });
    if (idx) rows = rows.filter((s) => s.index === idx);
    if (q) rows = rows.filter((s) => [s.index, s.shard, s.node, s.state, s.start, s.end].join(" ").toLowerCase().includes(q));
    const { key, dir } = state.sort;
    rows.sort((a, b) => {
      const x = a[key], y = b[key];
      if (x === y) return (a.index < b.index ? -1 : a.index > b.index ? 1 : a.shard - b.shard);
      if (x === null || x === undefined) return 1;
      if (y === null || y === undefined) return -1;
      return (x < y ? -1 : 1) * dir;
    });
    return rows;
  }

  function renderShards() {
    fillIndexSelect($("shards-index"), true);
    const all = shardRows();
    const pages = Math.max(1, Math.ceil(all.length / PAGE_ROWS));
    state.page = Math.min(state.page, pages - 1);
    const first = state.page * PAGE_ROWS;
    const rows = all.slice(first, first + PAGE_ROWS);
    $("shards-count").textContent = (all.length ? (first + 1) + "–" + (first + rows.length) : "0") + " of " + fmtInt(all.length) +
      " shards" + (all.length < state.shards.length ? " (" + fmtInt(state.shards.length) + " in all)" : "");
    $("shards-prev").disabled = state.page === 0;
    $("shards-next").disabled = state.page >= pages - 1;
    for (const th of $("shards-table").tHead.rows[0].cells)
      th.className = th.dataset.key === state.sort.key ? (state.sort.dir > 0 ? "asc" : "desc") : "";
    $("shards-table").tBodies[0].replaceChildren(...rows.map((s) => el("tr", { dataset: { index: s.index, shard: s.shard } },
      el("td", { class: "text", text: s.index }),
      el("td", { text: s.shard }),
      el("td", { class: "text", text: (s.start === null ? "−∞" : s.start) + " – " + (s.end === null ? "end" : s.end) }),
      el("td", { class: "text", text: s.node }),
      el("td", { class: "text", text: s.state }),
      el("td", { text: fmtInt(s.records) }),
      el("td", { text: fmtBytes(s.bytes), title: String(s.bytes) }),
      el("td", { text: fmtRate(s.reads) }),
      el("td", { text: fmtRate(s.writes) }),
      el("td", { class: "text" }, el("a", { href: "#", "data-act": "move", text: "move" }), " · ",
        el("a", { href: "#", "data-act": "split", text: "split" })))));
    // Each node's share of the listed shards and bytes.
    const per = new Map();
    let bytes = 0;
    for (const s of all) {
      const p = per.get(s.node) || { shards: 0, bytes: 0 };
      p.shards++; p.bytes += s.bytes || 0; bytes += s.bytes || 0;
      per.set(s.node, p);
    }
    const shares = [...per.entries()].sort((a, b) => a[0] < b[0] ? -1 : 1).map(([id, p]) => {
      const bar = el("span");
      bar.style.width = (100 * p.shards / Math.max(all.length, 1)).toFixed(1) + "%";
      bar.style.background = nodeColour(id);
      return el("div", { "data-node": id }, el("span", { class: "label", text: id }), el("span", { class: "bar" }, bar),
        el("span", { text: p.shards + " shards, " + fmtBytes(p.bytes) + (bytes ? " (" + (100 * p.bytes / bytes).toFixed(0) + "% of bytes)" : "") }));
    });
    $("shares").replaceChildren(...shares);
  }

  function prefillMigrate(s) {
    switchView("migrations");
    $("migrate-index").value = s.index;
    $("migrate-shard").value = s.shard;
  }

  function renderMigrations() {
    fillIndexSelect($("migrate-index"), false);
    const tsel = $("migrate-target");
    const targets = state.cluster ? state.cluster.nodes.filter((n) => n.state === "up").map((n) => n.id) : [];
    if ([...tsel.options].map((o) => o.value).join() !== targets.join()) {
      const keep = tsel.value;
      tsel.replaceChildren(...targets.map((id) => el("option", { value: id, text: id })));
      if (targets.includes(keep)) tsel.value = keep;
    }
    const rows = [...state.migrations].reverse();
    $("migrations-table").tBodies[0].replaceChildren(...rows.map((m) => {
      const finished = ["done", "cancelled", "rolled_back", "failed"].includes(m.phase);
      const fill = el("span");
      fill.style.width = (100 * (m.progress || 0)).toFixed(1) + "%";
      const ctl = (verb, label, question) => el("button", { class: "quiet", text: label, "data-action": verb,
        onclick: () => act(question, () => api("POST", "/v1/migrations/" + encodeURIComponent(m.id) + "/" + verb)) });
      return el("tr", { dataset: { id: m.id, phase: m.phase } },
        el("td", { class: "text", text: m.id }),
        el("td", { class: "text", text: m.index + "/" + m.shard }),
        el("td", { class: "text", text: m.source + " → " + m.target }),
        el("td", { class: "text phase", text: m.phase + (m.paused ? " (paused)" : "") + (m.error ? ": " + m.error : "") }),
        el("td", {}, el("span", { class: "bar" + (m.phase === "done" ? " done" : ""), title: ((m.progress || 0) * 100).toFixed(1) + "%" }, fill),
          " " + fmtBytes(m.bytes_done) + " / " + fmtBytes(m.bytes_total)),
        el("td", { text: finished ? "" : fmtBytes(m.rate_bytes_per_sec) + "/s" }),
        el("td", { text: finished || !m.eta_seconds ? "" : m.eta_seconds.toFixed(1) + " s" }),
        el("td", { class: "text", text: m.priority }),
        el("td", { class: "text", text: m.reason + (m.plan ? " " + m.plan : "") }),
        el("td", {}, finished ? null : [
          m.paused ? ctl("resume", "Resume", "Resume migration " + m.id + "?") : ctl("pause", "Pause", "Pause migration " + m.id + "?"), " ",
          ctl("cancel", "Cancel", "Cancel migration " + m.id + "? It rolls back: the shard stays on " + m.source + ".")]));
    }));
  }

  // A line chart of {id: [{t, v}]}, each line in colourOf(id) and tagged with data-<kind>=id.
  // `span` ({t0, t1}) fixes the time axis, so that charts of one history line up.
  function chart(title, series, field, unit, colourOf, kind, span) {
    const W = 640, H = 150, L = 48, B = 18;
    let max = 0, t0 = Infinity, t1 = -Infinity;
    for (const pts of Object.values(series))
      for (const p of pts) { max = Math.max(max, p.v); t0 = Math.min(t0, p.t); t1 = Math.max(t1, p.t); }
    if (span && span.t1 > span.t0) { t0 = span.t0; t1 = span.t1; }
    if (max <= 0) max = 1;
    if (!(t1 > t0)) { t0 = t1 - 1; }
    const x = (t) => L + (W - L - 8) * (t - t0) / (t1 - t0);
    const y = (v) => 8 + (H - B - 8) * (1 - v / max);
    const parts = [el("svg:text", { x: L, y: 12, text: title + " (max " + fmtRate(max) + " " + unit + ")" }),
      el("svg:line", { x1: L, y1: H - B, x2: W - 8, y2: H - B, stroke: "#ccd2dc" }),
      el("svg:text", { x: 4, y: H - B, text: "0" }), el("svg:text", { x: 4, y: 16, text: fmtRate(max) })];
    for (const [id, pts] of Object.entries(series)) {
      if (!pts.length) continue;
      const d = pts.map((p, i) => (i ? "L" : "M") + x(p.t).toFixed(1) + " " + y(p.v).toFixed(1)).join("");
      parts.push(el("svg:path", { d, fill: "none", stroke: colourOf(id), "stroke-width": 1.5, ["data-" + kind]: id,
        "data-points": pts.length }));
      // Sparse series (a p99 exists only where there were requests): each point as a dot too.
      if (pts.length <= 60)
        for (const p of pts) parts.push(el("svg:circle", { cx: x(p.t).toFixed(1), cy: y(p.v).toFixed(1), r: 2, fill: colourOf(id) }));
    }
    if (t1 > t0) parts.push(el("svg:text", { x: L, y: H - 4, text: new Date(t0).toLocaleTimeString() }),
      el("svg:text", { x: W - 70, y: H - 4, text: new Date(t1).toLocaleTimeString() }));
    return el("svg:svg", { class: "chart", width: W, height: H, viewBox: "0 0 " + W + " " + H, "data-field": field, "data-kind": kind }, parts);
  }

  function renderLoad() {
    if (state.view !== "load") return;
    const { nodes, shards, shardIds, span } = historySeries();
    const shardColour = (id) => PALETTE[(shardIds.indexOf(id) + 7) % PALETTE.length];
    const legend = (ids, colourOf) => el("div", { class: "legend" }, ids.map((id) => {
      const sw = el("span", { class: "swatch" });
      sw.style.background = colourOf(id);
      return el("span", {}, sw, id);
    }));
    const h = state.history;
    const step = h && h.nodes && h.nodes[0] && h.nodes[0].step_ms;
    $("history-note").textContent = h ? "the monitor's last " + h.window + (step ? ", a point every " + (step / 1000).toFixed(1) + " s" : "") : "loading…";
    $("charts").replaceChildren(legend(Object.keys(nodes.rps).sort(), nodeColour),
      chart("requests/s", nodes.rps, "rps", "req/s", nodeColour, "node", span),
      chart("p99 latency", nodes.p99, "p99", "ms", nodeColour, "node", span),
      chart("bytes stored", nodes.bytes, "bytes", "B", nodeColour, "node", span));
    $("shard-charts").replaceChildren(legend(shardIds, shardColour),
      chart("requests/s", shards.rps, "rps", "req/s", shardColour, "shard", span),
      chart("p99 latency", shards.p99, "p99", "ms", shardColour, "shard", span),
      chart("bytes", shards.bytes, "bytes", "B", shardColour, "shard", span));
    const hot = [...shardLoad().values()].sort((a, b) => (b.reads_per_sec + b.writes_per_sec) - (a.reads_per_sec + a.writes_per_sec)).slice(0, 10);
    const owner = new Map(state.shards.map((s) => [s.index + "/" + s.shard, s.node]));
    $("hot-shards").tBodies[0].replaceChildren(...hot.map((s) => el("tr", {},
      el("td", { class: "text", text: s.index + "/" + s.shard }), el("td", { class: "text", text: owner.get(s.index + "/" + s.shard) || "" }),
      el("td", { text: fmtRate(s.reads_per_sec) }), el("td", { text: fmtRate(s.writes_per_sec) }), el("td", { text: fmtBytes(s.bytes) }))));
  }

  function renderPlan() {
    const p = state.plan;
    $("plan-apply").disabled = !p || !p.moves || (!p.moves.length && !(p.splits || []).length);
    if (!p) return;
    const dl = $("plan-summary");
    const item = (k, v) => [el("dt", { text: k }), el("dd", { text: v })];
    dl.replaceChildren(...[
      item("plan", p.id + " of map v" + p.map_version + " (" + p.strategy + ", threshold " + p.threshold + ")"),
      item("summary", p.summary || ""),
      item("moves", String(p.moves.length) + ((p.splits || []).length ? ", splits " + p.splits.length : "")),
      item("to move", fmtBytes(p.bytes_to_move) + ", " + fmtInt(p.records_to_move) + " records"),
      item("skew", p.skew_before.toFixed(3) + " → " + p.skew_after.toFixed(3)),
      item("max ratio", p.max_ratio_before.toFixed(3) + " → " + p.max_ratio_after.toFixed(3)),
    ].flat());
    $("plan-moves").tBodies[0].replaceChildren(...p.moves.map((m) => el("tr", {},
      el("td", { class: "text", text: m.index + "/" + m.shard }), el("td", { class: "text", text: m.source }),
      el("td", { class: "text", text: m.target }), el("td", { text: fmtBytes(m.bytes) }), el("td", { class: "text", text: m.why || m.reason || "" }))));
    $("plan-nodes").tBodies[0].replaceChildren(...(p.nodes || []).map((n) => el("tr", {},
      el("td", { class: "text", text: n.node }), el("td", { text: n.ratio_before.toFixed(3) }), el("td", { text: n.ratio_after.toFixed(3) }),
      el("td", { text: n.shards_before }), el("td", { text: n.shards_after }), el("td", { text: fmtBytes(n.bytes_before) }),
      el("td", { text: fmtBytes(n.bytes_after) }))));
  }

  function renderEvents() {
    if (state.view !== "events") return;
    const items = state.events.slice().reverse().slice(0, 200).map((e) => el("li", { "data-id": e.id, "data-type": e.type },
      el("span", { class: "when", text: new Date(e.unix_ms).toLocaleTimeString() }), el("span", { class: "type", text: e.type }),
      e.summary || ""));
    $("events-list").replaceChildren(...items);
  }

  // ---- wiring ------------------------------------------------------------------------------
  function switchView(v) {
    state.view = v;
    for (const b of document.querySelectorAll("#tabs button")) b.classList.toggle("active", b.dataset.view === v);
    for (const s of document.querySelectorAll(".view")) s.hidden = s.id !== "view-" + v;
    location.hash = v;
    if (v === "load") fetchHistory().then(renderLoad);
    renderAll();
  }
  for (const b of document.querySelectorAll("#tabs button")) b.addEventListener("click", () => switchView(b.dataset.view));
  for (const th of document.querySelectorAll("#shards-table th[data-key]"))
    th.addEventListener("click", () => {
      state.sort = { key: th.dataset.key, dir: state.sort.key === th.dataset.key ? -state.sort.dir : 1 };
      renderShards();
    });
  $("shards-filter").addEventListener("input", () => { state.page = 0; renderShards(); });
  $("shards-prev").addEventListener("click", () => { state.page = Math.max(0, state.page - 1); renderShards(); });
  $("shards-next").addEventListener("click", () => { state.page++; renderShards(); });
  // A shard row's move and split links: one handler for the table (rows are redrawn often).
  $("shards-table").tBodies[0].addEventListener("click", (e) => {
    const a = e.target.closest("a[data-act]");
    if (!a) return;
    e.preventDefault();
    const tr = a.closest("tr"), s = { index: tr.dataset.index, shard: Number(tr.dataset.shard) };
    if (a.dataset.act === "move") prefillMigrate(s);
    else act("Split shard " + s.shard + " of " + s.index + " in two?",
      () => api("POST", "/v1/shards/" + encodeURIComponent(s.index) + "/" + s.shard + "/split"));
  });
  $("shards-index").addEventListener("change", () => { state.page = 0; renderShards(); });
  $("ring-index").addEventListener("change", renderRing);
  $("weight-close").addEventListener("click", () => { $("weight-form").hidden = true; });
  $("weight-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const id = $("weight-node").textContent, w = Number($("weight-value").value);
    act("Set the weight of " + id + " to " + w + "? Its share of the ring changes at once.", async () => {
      const r = await api("PUT", "/v1/cluster/nodes/" + encodeURIComponent(id), { weight: w });
      if (r.status < 400) $("weight-form").hidden = true;
      return r;
    });
  });
  $("lookup-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    const index = ringIndex(), key = $("lookup-key").value;
    const r = await api("GET", "/v1/ring/lookup?index=" + encodeURIComponent(index) + "&key=" + encodeURIComponent(key));
    if (r.status !== 200) { $("lookup-result").textContent = problem(r); state.lookup = null; }
    else {
      state.lookup = r.json;
      $("lookup-result").textContent = "token " + r.json.token + " → shard " + r.json.shard + " on " + r.json.owner;
    }
    renderRing();
  });
  $("migrate-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const index = $("migrate-index").value, shard = Number($("migrate-shard").value), target = $("migrate-target").value;
    const body = { target, priority: $("migrate-priority").value };
    const mib = $("migrate-rate").value;
    if (mib !== "" && Number(mib) > 0) body.max_bytes_per_sec = Math.round(Number(mib) * 1048576);
    act("Move shard " + shard + " of " + index + " to " + target + "?",
      () => api("POST", "/v1/shards/" + encodeURIComponent(index) + "/" + shard + "/migrate", body));
  });
  $("plan-make").addEventListener("click", async () => {
    const r = await api("POST", "/v1/rebalance/plan");
    if (r.status !== 200) { $("plan-status").textContent = problem(r); return; }
    state.plan = r.json;
    state.planTag = r.headers.get("ETag");
    $("plan-status").textContent = "plan " + r.json.id + " made at map v" + r.json.map_version;
    renderPlan();
  });
  $("plan-apply").addEventListener("click", () => {
    const p = state.plan;
    if (!p) return;
    act("Apply plan " + p.id + ": " + p.moves.length + " moves, " + fmtBytes(p.bytes_to_move) + "? It applies only if the map is still v" +
      p.map_version + ".", async () => {
      const r = await api("POST", "/v1/rebalance/plans/" + encodeURIComponent(p.id) + "/apply", undefined, { "If-Match": state.planTag || ('"' + p.map_version + '"') });
      $("plan-status").textContent = r.status === 202
        ? "applied: " + r.json.migrations.length + " migrations queued" + (r.json.skipped.length ? ", skipped: " + r.json.skipped.join("; ") : "")
        : "not applied: " + problem(r);
      if (r.status === 202) { state.plan = null; $("plan-apply").disabled = true; }
      return r;
    });
  });
  $("plan-explain").addEventListener("click", async () => {
    const r = await api("GET", "/v1/rebalance/explain?format=text");
    $("plan-explain-text").hidden = false;
    $("plan-explain-text").textContent = r.status === 200 ? r.text : problem(r);
  });

  function signOut(why) {
    sessionStorage.removeItem(TOKEN_KEY);
    clearInterval(timer);
    timer = null;
    $("app").hidden = true;
    $("tabs").hidden = $("logout").hidden = true;
    $("login").hidden = false;
    $("login-error").textContent = why || "";
  }
  function signedIn() {
    $("login").hidden = true;
    $("app").hidden = false;
    $("tabs").hidden = $("logout").hidden = false;
    const v = (location.hash || "#cluster").slice(1);
    switchView(document.querySelector('#tabs button[data-view="' + v + '"]') ? v : "cluster");
    refresh();
    if (!timer) timer = setInterval(refresh, REFRESH_MS);
  }
  $("logout").addEventListener("click", () => signOut(""));
  $("login-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    const token = $("token").value.trim();
    const r = await fetch("/v1/cluster", { headers: { Authorization: "Bearer " + token } });
    if (r.status !== 200) { $("login-error").textContent = "token refused (HTTP " + r.status + ")"; return; }
    sessionStorage.setItem(TOKEN_KEY, token);
    $("token").value = "";
    signedIn();
  });
  if (sessionStorage.getItem(TOKEN_KEY)) signedIn(); else signOut("");
})();
