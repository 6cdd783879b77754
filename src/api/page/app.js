// berth's status page: reads /api/v1 and follows it through server-sent
// events (fetch streams, so the bearer token can go in a header). No build
// step, no dependencies.
"use strict";
const API = "/api/v1";
const state = { nodes: new Map(), components: new Map(), containers: new Map(), events: [] };
const $ = (id) => document.getElementById(id);
let token = localStorage.getItem("berth-token") || "";
let streams = [];

function headers() { return token ? { Authorization: "Bearer " + token } : {}; }

// Follows `path?watch=true`, calling onEvent(type, object) for each event.
async function watch(path, onEvent) {
  const ctl = new AbortController();
  streams.push(ctl);
  const sep = path.includes("?") ? "&" : "?";
  for (;;) {
    try {
      const r = await fetch(API + path + sep + "watch=true", { headers: headers(), signal: ctl.signal });
      if (r.status === 401) return signIn();
      const reader = r.body.getReader();
      const dec = new TextDecoder();
      let buf = "";
      live(true);
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buf += dec.decode(value, { stream: true });
        let i;
        while ((i = buf.indexOf("\n\n")) >= 0) {
          const block = buf.slice(0, i);
          buf = buf.slice(i + 2);
          const data = block.split("\n").filter((l) => l.startsWith("data:")).map((l) => l.slice(5).trim()).join("");
          if (data) { const e = JSON.parse(data); onEvent(e.type, e.object); }
        }
      }
    } catch (e) {
      if (ctl.signal.aborted) return;
    }
    live(false);
    await new Promise((r) => setTimeout(r, 2000));
  }
}

function live(on) { const l = $("live"); l.classList.toggle("on", on); l.textContent = on ? "live" : "reconnecting…"; }

function keep(map, key, type, obj) { if (type === "DELETED") map.delete(key); else map.set(key, obj); schedule(); }

// One redraw per animation frame, however many events arrived (a watch
// opens with an ADDED per object).
let drawing = false;
function schedule() {
  if (drawing) return;
  drawing = true;
  requestAnimationFrame(() => { drawing = false; render(); });
}

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  Object.assign(e, attrs || {});
  for (const c of children) e.append(c);
  return e;
}

function nodeStatus(n) {
  const ready = (n.status?.conditions || []).find((c) => c.type === "Ready");
  let s = ready?.status === "True" ? "Ready" : "NotReady";
  if (n.spec?.unschedulable) s += ",Cordoned";
  return s;
}

// "2026-12-04T16:49:08.699879006Z" -> "16:49:08" (the full time is the title).
function shortTime(t) { const m = /T(\d\d:\d\d:\d\d)/.exec(t || ""); return m ? m[1] : (t || ""); }

function render() {
  const tbody = $("nodes").querySelector("tbody");
  tbody.replaceChildren(...[...state.nodes.values()].sort((a, b) => a.metadata.name.localeCompare(b.metadata.name)).map((n) => {
    const s = nodeStatus(n);
    const role = n.metadata.annotations?.["berth/role"] || "";
    return el("tr", {}, el("td", { textContent: n.metadata.name }), el("td", { textContent: s, className: s.startsWith("Ready") ? "ok" : "bad" }),
      el("td", { textContent: role }), el("td", { textContent: n.status?.address || n.spec?.address || "", className: "muted" }));
  }));
  const comps = [...state.components.values()].sort((a, b) => (a.metadata.project + a.metadata.name).localeCompare(b.metadata.project + b.metadata.name));
  $("components").replaceChildren(...comps.map((c) => {
    const st = c.status || {};
    const want = st.replicas ?? c.spec?.placement?.replicas ?? 0;
    const ready = st.readyReplicas || 0, updated = st.updatedReplicas || 0;
    const pct = want ? Math.min(100, Math.round((100 * updated) / want)) : 100;
    const phase = st.rollout?.phase || (ready >= want ? "Complete" : "Progressing");
    const cls = phase === "Complete" ? "ok" : phase === "Failed" || phase === "RolledBack" ? "bad" : "warn";
    return el("div", { className: "comp" },
      el("span", { textContent: c.metadata.project + "/" + c.metadata.name }),
      el("span", { textContent: ready + "/" + want + " ready", className: ready >= want ? "ok" : "warn" }),
      el("div", { className: "bar", title: updated + "/" + want + " updated" }, el("div", { style: "width:" + pct + "%" })),
      el("span", { textContent: phase + (st.rollout?.revision ? " r" + st.rollout.revision : ""), className: cls }));
  }));
  const byNode = new Map();
  for (const c of state.containers.values()) {
    if (!byNode.has(c.node)) byNode.set(c.node, []);
    byNode.get(c.node).push(c);
  }
  $("containers").replaceChildren(...[...byNode.keys()].sort().map((node) => el("div", { className: "node" },
    el("strong", { textContent: node }),
    el("div", { className: "chips" }, ...byNode.get(node).sort((a, b) => a.name.localeCompare(b.name)).map((c) =>
      el("span", { className: "chip " + (c.phase === "ready" && !c.evicting ? "ok" : c.phase === "ready" || c.phase === "starting" || c.phase === "draining" ? "warn" : "bad"),
        textContent: c.project + "/" + c.component + " r" + c.revision + " " + c.phase + (c.evicting ? ",evicting" : ""), title: c.name }))))));
  $("events").replaceChildren(...state.events.slice(-50).reverse().map((e) =>
    el("li", {}, el("span", { className: "muted", textContent: shortTime(e.time) + " ", title: e.time || "" }), (e.reason || "") + " " + (e.message || ""))));
}

// The watches answer a 401 themselves (the token prompt); nothing here throws.
function start() {
  $("login").hidden = true;
  $("board").hidden = false;
  $("logout").hidden = !token;
  watch("/nodes", (t, n) => keep(state.nodes, n.metadata.name, t, n));
  watch("/containers", (t, c) => keep(state.containers, c.node + "/" + c.project + "/" + c.component + "/" + c.id, t, c));
  watch("/components", (t, c) => keep(state.components, c.metadata.project + "/" + c.metadata.name, t, c));
  // Events follow their watch too (an ADDED for each kept event, then each
  // new one), so the list grows without a reload; only the newest are kept.
  watch("/events", (t, e) => {
    if (t !== "ADDED") return;
    state.events.push(e);
    state.events.sort((a, b) => (a.time || "").localeCompare(b.time || ""));
    if (state.events.length > 200) state.events.splice(0, state.events.length - 200);
    schedule();
  });
}

function signIn() {
  streams.forEach((s) => s.abort());
  streams = [];
  $("board").hidden = true;
  $("login").hidden = false;
  if (token) $("login-error").textContent = "That token was not accepted.";
}

$("login").addEventListener("submit", (ev) => {
  ev.preventDefault();
  token = $("token").value.trim();
  localStorage.setItem("berth-token", token);
  start();
});
$("logout").addEventListener("click", () => { localStorage.removeItem("berth-token"); token = ""; location.reload(); });
// Without a token, try anonymous read first; a 401 brings the prompt.
start();
