"use strict";
const $ = (id) => document.getElementById(id);
let token = null;
const m = /(?:^#|&)token=([^&]+)/.exec(location.hash);
if (m) { token = decodeURIComponent(m[1]); sessionStorage.setItem("tau_admin", token); history.replaceState(null, "", "/admin"); }
token = token || sessionStorage.getItem("tau_admin");

async function api(path, opts = {}) {
  const r = await fetch(path, {...opts, headers: {Authorization: "Bearer " + token, ...(opts.headers || {})}});
  if (r.status === 401) { sessionStorage.removeItem("tau_admin"); showLogin("Please sign in again."); throw new Error("401"); }
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
  table("health", ["service", "state"], Object.entries(h.services || {}).map(([k, v]) => [k, status(v)]));
  const q = await api("/api/admin/queue");
  $("queuecounts").textContent = Object.entries(q.counts).map(([k, v]) => k + ": " + v).join(" · ") || "empty";
  table("queue", ["id", "from", "to", "status", "attempts", "next attempt", "last error", ""], q.items.map((r) => {
    const actions = document.createElement("span");
    actions.appendChild(button("retry", async () => { await api("/api/admin/queue/" + r.id + "/retry", {method: "POST"}); load(); }));
    actions.appendChild(button("delete", async () => { await api("/api/admin/queue/" + r.id, {method: "DELETE"}); load(); }));
    return [r.id, r.mail_from, r.rcpt_to.join(", "), r.status, r.attempts, when(r.next_attempt_at), r.last_error, actions]; }));
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
function showLogin(msg) { $("app").classList.add("hidden"); $("login").classList.remove("hidden"); $("loginerror").textContent = msg || ""; }
$("login").onsubmit = async (e) => {
  e.preventDefault();
  const form = new URLSearchParams(new FormData(e.target)); form.set("grant_type", "password");
  const r = await fetch("/oauth2/token", {method: "POST", body: form});
  const body = await r.json();
  if (!r.ok) { $("loginerror").textContent = body.error === "totp_required" ? "Enter your one-time code." : (body.message || "Sign-in failed"); return; }
  token = body.access_token; sessionStorage.setItem("tau_admin", token); start();
};
function start() {
  $("login").classList.add("hidden"); $("app").classList.remove("hidden");
  load().catch((err) => { if (err.message !== "401") { $("who").textContent = String(err.message); } });
}
if (token) start(); else showLogin();
