"use strict";
// The session lives in HttpOnly cookies this script cannot read (tau.http.cookie_session): the page
// holds no bearer token. It keeps only the session's CSRF token, in memory, and sends it with every
// state-changing request; after a reload GET /api/session hands it out again.
const $ = (id) => document.getElementById(id);
let csrf = null;

function post(path, body, headers) {
  return fetch(path, {method: "POST", credentials: "same-origin", body: JSON.stringify(body || {}),
    headers: {"Content-Type": "application/json", ...(headers || {})}});
}
async function adopt(r) {
  if (!r.ok) return false;
  csrf = (await r.json()).csrf_token;
  return Boolean(csrf);
}
async function refresh() { return adopt(await post("/api/session/refresh")); }
async function resume() { return (await adopt(await fetch("/api/session", {credentials: "same-origin"}))) || refresh(); }

async function api(path, opts = {}, retried = false) {
  const headers = {...(opts.headers || {})};
  if ((opts.method || "GET") !== "GET") headers["X-CSRF-Token"] = csrf;
  const r = await fetch(path, {...opts, headers, credentials: "same-origin"});
  if (r.status === 401 && !retried && await refresh()) return api(path, opts, true);
  if (r.status === 401) { showLogin("Please sign in again."); throw new Error("401"); }
  if (r.status === 204) return null;
  const body = await r.json();
  if (!r.ok && r.status !== 503) throw new Error(body.message || r.status);
  return body;
}
function table(id, head, rows) {
  const t = $(id); t.textContent = "";
  const tr = t.insertRow(); head.forEach((h) => { const th = document.createElement("th"); th.textContent = h; tr.appendChild(th); });
  rows.forEach((cells) => { const r = t.insertRow(); cells.forEach((c) => { const td = r.insertCell();
    if (c instanceof Node) td.appendChild(c); else td.textContent = c === null || c === undefined ? "" : String(c); }); });
}
function status(text) { const s = document.createElement("span"); s.textContent = text; s.className = text === "ok" ? "ok" : "bad"; return s; }
function button(label, fn) { const b = document.createElement("button"); b.textContent = label; b.onclick = fn; return b; }
const size = (n) => n >= 1073741824 ? (n / 1073741824).toFixed(1) + " GiB" : n >= 1048576 ? (n / 1048576).toFixed(1) + " MiB" : Math.round(n / 1024) + " KiB";
const when = (t) => t ? new Date(t * 1000).toISOString().replace("T", " ").slice(0, 19) : "";

async function load() {
  const h = await api("/api/admin/health");
  $("who").textContent = "status: " + h.status;
  $("healthstatus").textContent = h.status === "ok" ? "All parts answer." : h.status === "degraded"
    ? "Degraded: an optional part is failing (" + Object.keys(h.degraded || {}).join(", ") + "); the rest serves."
    : "Error: a required part is failing (" + (h.failing || []).join(", ") + "); the node cannot serve.";
  $("healthstatus").className = h.status === "ok" ? "ok" : "bad";
  const why = h.reasons || {};
  table("health", ["service", "state", "reason"], Object.entries(h.services || {}).map(([k, v]) => [k, status(v), why[k] || ""]));
  const q = await api("/api/admin/queue");
  $("queuecounts").textContent = Object.entries(q.counts).map(([k, v]) => k + ": " + v).join(" · ") || "empty";
  const act = (label, path, method) => button(label, async () => { await api(path, {method: method || "POST"}); load(); });
  table("queue", ["id", "from", "to", "state", "attempts", "next attempt", "last error", ""], q.items.map((r) => {
    const actions = document.createElement("span");
    const base = "/api/admin/queue/" + r.id;
    actions.appendChild(act("retry", base + "/retry"));
    if (r.state === "queued") actions.appendChild(act("hold", base + "/hold"));
    if (r.state === "held") actions.appendChild(act("release", base + "/release"));
    actions.appendChild(act("delete", base, "DELETE"));
    return [r.id, r.mail_from, r.rcpt_to.join(", "), r.state, r.attempts, when(r.next_attempt_at), r.last_error, actions]; }));
  const u = await api("/api/admin/users");
  table("users", ["address", "name", "admin", "source", "state"], u.items.map((x) => [x.address, x.display_name, x.admin ? "yes" : "", x.source, x.disabled ? "disabled" : "active"]));
  const qu = await api("/api/admin/quotas");
  table("quotas", ["address", "used", "quota", "messages"], qu.items.map((x) => [x.address, size(x.used_bytes), x.quota_bytes ? size(x.quota_bytes) : "none", x.messages]));
  const d = await api("/api/admin/domains");
  table("domains", ["domain", "users"], d.items.map((x) => [x.name, x.users]));
  const a = await api("/api/admin/aliases");
  table("aliases", ["alias", "destination"], a.items.map((x) => [x.address, x.destination]));
  document.body.dataset.loaded = "yes";
}
function showLogin(msg) {
  csrf = null;
  $("app").classList.add("hidden"); $("logout").classList.add("hidden"); $("login").classList.remove("hidden");
  $("loginerror").textContent = msg || "";
}
$("login").onsubmit = async (e) => {
  e.preventDefault();
  const form = Object.fromEntries(new FormData(e.target));
  const r = await post("/api/session", {...form, scope: "admin"});
  if (!r.ok) {
    const body = await r.json();
    $("loginerror").textContent = body.error === "totp_required" ? "Enter your one-time code." : (body.message || "Sign-in failed");
    return;
  }
  e.target.reset();
  if (await adopt(r)) start();
};
$("logout").onclick = async () => { await post("/api/session/logout", {}, {"X-CSRF-Token": csrf}); showLogin("Signed out."); };
$("retryall").onclick = async () => { await api("/api/admin/queue/retry", {method: "POST"}); load(); };
function start() {
  $("login").classList.add("hidden"); $("app").classList.remove("hidden"); $("logout").classList.remove("hidden");
  load().catch((err) => { if (err.message !== "401") { $("who").textContent = String(err.message); } });
}
async function boot() {
  // an admin link with #token=... (never sent to the server by the browser) becomes a cookie session
  const m = /(?:^#|&)token=([^&]+)/.exec(location.hash);
  if (m) history.replaceState(null, "", "/admin");
  const ok = m ? await adopt(await post("/api/session", {}, {Authorization: "Bearer " + decodeURIComponent(m[1])}))
    : await resume();
  if (ok) start(); else showLogin();
}
boot();
