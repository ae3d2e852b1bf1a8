// Grace console: reads /api/*, re-reads on each `applied` event of /api/stream. No dependencies.
"use strict";
const $ = (sel) => document.querySelector(sel);
const state = { token: localStorage.getItem("grace-token") || "", authorized: false,
                why: "checking the operator token…", open: null, busy: false, again: false,
                tab: "overview", stale: false };
window.graceRowSeen = {};  // command_id -> Date.now() when its row first showed a result

function esc(v) {
  if (v === null || v === undefined) return "–";
  return String(v).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;",
    '"': "&quot;", "'": "&#39;" })[c]);
}
function cls(v) { return /^[a-z_]+$/.test(String(v)) ? ` class="${v}"` : ""; }
function cell(v) { return `<td${cls(v)}>${esc(v)}</td>`; }
function table(el, head, rows, empty) {
  el.innerHTML = rows.length
    ? `<tr>${head.map((h) => `<th>${esc(h)}</th>`).join("")}</tr>` + rows.join("")
    : `<tr><td>${esc(empty)}</td></tr>`;
}
async function get(path) {
  const r = await fetch(path, { cache: "no-store" });
  if (!r.ok) throw new Error(`${path}: ${r.status}`);
  return r.json();
}
function headers() {
  const h = { "Content-Type": "application/json" };
  if (state.token) h.Authorization = `Bearer ${state.token}`;
  return h;
}
function say(text) { $("#message").textContent = text; }

function actButton(label, attrs) {
  const dis = state.authorized ? "" : ` disabled title="${esc(state.why)}"`;
  return `<button class="act" ${attrs}${dis}>${esc(label)}</button>`;
}

async function checkAuth() {
  const r = await fetch("/api/auth", { headers: headers(), cache: "no-store" });
  const body = await r.json();
  state.authorized = body.authorized;
  state.why = body.reason;
  const note = $("#authnote");
  note.textContent = body.authorized ? "operator token accepted: actions are enabled" : body.reason;
  note.className = body.authorized ? "note ok" : "note";
  document.querySelectorAll("button.act").forEach((b) => {
    b.disabled = !state.authorized;
    b.title = state.authorized ? "" : state.why;
  });
}

async function act(path, body) {
  const by = localStorage.getItem("grace-by") || "";
  const sent = Object.assign(by ? { by } : {}, body || {});
  const r = await fetch(path, { method: "POST", headers: headers(), body: JSON.stringify(sent) });
  const out = await r.json().catch(() => ({ error: `HTTP ${r.status}` }));
  say(r.ok ? `recorded ${out.type} (log sequence ${out.seq})` : `refused (${r.status}): ${out.error}`);
  if (r.ok) refresh();
  return r.status;
}
window.graceAct = act;

function renderOverview(o) {
  const d = o.dashboard;
  const badge = $("#state");
  badge.textContent = `${d.system_state} · ${d.health}`;
  badge.className = `badge ${d.system_state}`;
  $("#asof").textContent = d.stale ? `STALE: newest event ${d.as_of}` : `as of ${d.as_of || "–"} (seq ${o.last_seq})`;
  const kv = [["system state", d.system_state], ["health", d.health], ["boot", d.boot_phase],
    ["as of", d.as_of], ["stale", d.stale ? `yes (after ${d.stale_after_s}s)` : "no"],
    ["kernels", `${d.kernels.running} running / ${d.kernels.total} (failed ${d.kernels.failed}, degraded ${d.kernels.degraded}, held ${d.kernels.held})`],
    ["checks", d.triggers.total_checks], ["issues detected", d.triggers.issues_detected],
    ["actions executed", d.triggers.actions_executed], ["last check", d.triggers.last_run],
    ["snapshots", `${d.snapshots.total_snapshots} (${d.snapshots.model_snapshots} model, ${d.snapshots.config_snapshots} config)`],
    ["watchdog tiers", d.watchdogs.tier_count], ["vulnerabilities", d.security.vulnerabilities],
    ["fix tasks", Object.entries(d.fix_tasks).map(([k, v]) => `${k} ${v}`).join(", ")]];
  $("#system").innerHTML = kv.map(([k, v]) => `<tr><th>${esc(k)}</th>${cell(v)}</tr>`).join("");
  table($("#stages"), ["writer", "last event", "age s", "trouble"], o.stages.map((s) =>
    `<tr>${cell(s.component)}${cell(s.last_event)}${cell(s.age_s)}${cell(s.last_trouble)}</tr>`), "no events yet");
  table($("#kernels"), ["kernel", "#", "state", "pid", "restarts", "RSS"], o.kernels.map((k) =>
    `<tr>${cell(k.kernel)}${cell(k.instance)}${cell(k.state)}${cell(k.pid)}${cell(k.restarts)}` +
    `${cell(k.rss_mb === null ? "unknown" : `${k.rss_mb} MB`)}</tr>`), "no kernels");
  table($("#approvals"), ["command", "playbook", "action", "target", "expires in s", "why", ""],
    d.approvals.items.map((a) => `<tr data-command-id="${esc(a.command_id)}">${cell(a.command_id)}${cell(a.playbook)}${cell(a.action)}` +
      `${cell(a.target)}${cell(a.expires_in_s)}${cell(a.reason)}<td>` +
      actButton("Approve", `data-approve="${esc(a.command_id)}"`) + " " +
      actButton("Deny", `data-deny="${esc(a.command_id)}"`) + "</td></tr>"), "none pending");
  table($("#holds"), ["hold", "target", "host", "until", "left s", "by", "reason", ""],
    d.holds.items.map((h) => `<tr>${cell(h.hold_id)}${cell(h.target)}${cell(h.host)}${cell(h.until)}` +
      `${cell(h.left_s)}${cell(`${h.by} (${h.via})`)}${cell(h.reason)}<td>` +
      actButton("Release", `data-release="${esc(h.hold_id)}"`) + "</td></tr>"), "none active");
  table($("#tasks"), ["task", "action", "target", "playbook", "since"], o.open_tasks.map((t) =>
    `<tr>${cell(t.task_id)}${cell(t.action)}${cell(t.target)}${cell(t.playbook)}${cell(t.time)}</tr>`), "none open");
  $("#holdform button").disabled = !state.authorized;
  $("#holdform button").title = state.authorized ? "" : state.why;
}

function renderIncidents(body) {
  const now = Date.now();
  table($("#incidentrows"), ["seq", "time", "host", "finding", "playbook", "decision", "action", "target", "result", "verification"],
    body.items.map((i) => {
      const decision = i.outcome === "suppressed" ? `suppressed: ${i.reason}` : i.outcome;
      if (i.result && i.command_id && !(i.command_id in window.graceRowSeen)) window.graceRowSeen[i.command_id] = now;
      const dur = i.duration_ms !== null ? ` (${i.duration_ms} ms)` : "";
      return `<tr class="incident${state.open === i.seq ? " open" : ""}" data-seq="${i.seq}" data-outcome="${esc(i.outcome)}"` +
        ` data-command-id="${esc(i.command_id)}" data-playbook="${esc(i.playbook)}">${cell(i.seq)}${cell(i.time)}${cell(i.host)}` +
        `${cell(i.finding)}${cell(i.playbook)}<td class="${esc(i.outcome)}">${esc(decision)}</td>${cell(i.action)}` +
        `${cell(i.target)}<td class="${esc(i.result)}">${esc(i.result)}${esc(dur)}</td>${cell(i.verification)}</tr>`;
    }), "no incidents");
}

async function openChain(seq) {
  state.open = seq;
  const body = await get(`/api/incidents/${seq}`);
  $("#chain").innerHTML = `<h2>Chain of decision ${seq}</h2><table>` +
    "<tr><th>seq</th><th>time</th><th>type</th><th>host</th><th>data</th></tr>" +
    body.events.map((e) => `<tr class="chainevent" data-seq="${e.seq}" data-type="${esc(e.type)}">${cell(e.seq)}${cell(e.time)}${cell(e.type)}${cell(e.host)}` +
      `<td><pre>${esc(JSON.stringify(e.data, null, 1))}</pre></td></tr>`).join("") + "</table>";
}

function query() {
  const f = new FormData($("#filters"));
  const q = new URLSearchParams();
  for (const [k, v] of f.entries()) if (v) q.set(k, v);
  return q.toString();
}

// Each refresh reads the header's overview and the open tab only (a hidden page reads nothing
// until it is shown again): an idle console with a page open costs Grace a few queries a batch.
const READS = {
  incidents: () => get(`/api/incidents?${query()}`).then(renderIncidents),
  playbooks: () => get("/api/playbooks").then(renderPlaybooks),
  snapshots: () => get("/api/snapshots").then(renderSnapshots),
};

function renderPlaybooks(pb) {
  table($("#playbookrows"), ["playbook", "target", "fired", "observed", "suppressed (by reason)", "verify failed", "verify passed", "last fired", "budget left", "cooldown until"],
    pb.items.map((p) => `<tr>${cell(p.playbook)}${cell(p.target)}${cell(p.fired)}${cell(p.observed)}` +
      `${cell(`${p.suppressed} ${Object.entries(p.suppressed_by_reason).map(([k, v]) => `${k} ${v}`).join(", ")}`)}` +
      `${cell(p.verify_failed)}${cell(p.verify_passed)}${cell(p.last_fired)}` +
      `${cell(p.budget_max === null ? "—" : `${p.budget_left} of ${p.budget_max} per ${p.budget_per_s} s`)}` +
      `${cell(p.cooldown_until === null ? (p.cooldown_s === null ? "—" : "ready") : p.cooldown_until)}</tr>`), "no playbook has matched yet");
}

function renderSnapshots(sn) {
  table($("#snapshotrows"), ["file", "kind", "last good", "age s", "snapshot", "taken", "pruned", "restores", "last restore"],
    sn.items.map((s) => `<tr>${cell(s.path)}${cell(s.kind)}${cell(s.last_good)}${cell(s.age_s)}${cell(s.last_snapshot)}` +
      `${cell(s.taken)}${cell(s.pruned)}${cell(s.restores)}${cell(s.last_restore)}</tr>`), "no snapshots yet");
}

async function refresh() {
  if (document.hidden) { state.stale = true; return; }
  if (state.busy) { state.again = true; return; }
  state.busy = true;
  try {
    do {
      state.again = false;
      const tab = READS[state.tab];
      await Promise.all([get("/api/overview").then(renderOverview), tab ? tab() : null]);
    } while (state.again);
  } catch (e) {
    say(`cannot read the API: ${e.message}`);
  } finally {
    state.busy = false;
  }
}

document.addEventListener("visibilitychange", () => {
  if (!document.hidden && state.stale) { state.stale = false; refresh(); }
});

function live() {
  const es = new EventSource("/api/stream");
  es.addEventListener("applied", () => refresh());
  es.onopen = () => { $("#live").textContent = "live"; $("#live").className = "live on"; };
  es.onerror = () => { $("#live").textContent = "reconnecting"; $("#live").className = "live off"; };
}

document.addEventListener("click", (ev) => {
  const t = ev.target.closest("button, tr.incident");
  if (!t) return;
  if (t.dataset.tab) {
    document.querySelectorAll("nav button").forEach((b) => b.classList.toggle("on", b === t));
    document.querySelectorAll("main section").forEach((s) => { s.hidden = s.id !== t.dataset.tab; });
    state.tab = t.dataset.tab;
    refresh();
  } else if (t.dataset.approve) {
    act(`/api/approvals/${encodeURIComponent(t.dataset.approve)}/approve`, {});
  } else if (t.dataset.deny) {
    const reason = prompt(`Why must ${t.dataset.deny} not run?`);
    if (reason) act(`/api/approvals/${encodeURIComponent(t.dataset.deny)}/deny`, { reason });
  } else if (t.dataset.release) {
    act(`/api/holds/${encodeURIComponent(t.dataset.release)}/release`, {});
  } else if (t.classList.contains("incident")) {
    openChain(Number(t.dataset.seq));
    document.querySelectorAll("tr.incident").forEach((r) => r.classList.toggle("open", r === t));
  }
});
$("#holdform").addEventListener("submit", (ev) => {
  ev.preventDefault();
  act("/api/holds", Object.fromEntries(new FormData(ev.target).entries()));
});
$("#filters").addEventListener("input", () => refresh());
$("#tokenform").addEventListener("submit", (ev) => {
  ev.preventDefault();
  state.token = $("#token").value.trim();
  localStorage.setItem("grace-token", state.token);
  localStorage.setItem("grace-by", $("#by").value.trim());
  checkAuth().then(refresh);
});
$("#by").value = localStorage.getItem("grace-by") || "";
checkAuth().then(refresh).then(live);
