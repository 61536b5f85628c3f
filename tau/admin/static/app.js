// The admin page's entry module. The session lives in HttpOnly cookies this script cannot read
// (tau.http.cookie_session): the page holds no bearer token. It keeps only the session's CSRF token,
// in memory (lib.js), and sends it with every state-changing request; after a reload GET /api/session
// hands it out again. Health and the outbound queue are here; users, domains, OAuth clients and
// security events have a module each. The web app's Admin view (tau/web/static/views/admin.js) imports
// this module too, for setup() and load() on the same markup inside the shell: the page's own sign-in
// and boot run only on /admin (where the sign-in form is).
import {$, actions, adopt, api, button, post, refresh, session, table, when} from "./lib.js";
import {loadDomains, setupDomains} from "./domains.js";
import {loadEvents} from "./events.js";
import {loadClients, setupClients} from "./oauth.js";
import {loadUsers, setupUsers} from "./users.js";

async function resume() { return (await adopt(await fetch("/api/session", {credentials: "same-origin"}))) || refresh(); }
function status(text) { const s = document.createElement("span"); s.textContent = text; s.className = text === "ok" ? "ok" : "bad"; return s; }

async function loadHealth() {
  const h = await api("/api/admin/health");
  if ($("who")) $("who").textContent = "status: " + h.status;  // the /admin page's header (the shell has its own)
  $("healthstatus").textContent = h.status === "ok" ? "All parts answer." : h.status === "degraded"
    ? "Degraded: an optional part is failing (" + Object.keys(h.degraded || {}).join(", ") + "); the rest serves."
    : "Error: a required part is failing (" + (h.failing || []).join(", ") + "); the node cannot serve.";
  $("healthstatus").className = h.status === "ok" ? "ok" : "bad";
  const why = h.reasons || {};
  table("health", ["service", "state", "reason"], Object.entries(h.services || {}).map(([k, v]) => [k, status(v), why[k] || ""]));
}

async function loadQueue() {
  const q = await api("/api/admin/queue");
  $("queuecounts").textContent = Object.entries(q.counts).map(([k, v]) => k + ": " + v).join(" · ") || "empty";
  const act = (label, path, id, method) => button(label, async () => { await api(path, {method: method || "POST"}); await load(); },
    `${label} message ${id}`);
  table("queue", ["id", "from", "to", "state", "attempts", "next attempt", "last error", ""], q.items.map((r) => {
    const base = "/api/admin/queue/" + r.id;
    return [r.id, r.mail_from, r.rcpt_to.join(", "), r.state, r.attempts, when(r.next_attempt_at), r.last_error, actions(
      act("retry", base + "/retry", r.id),
      ...(r.state === "queued" ? [act("hold", base + "/hold", r.id)] : []),
      ...(r.state === "held" ? [act("release", base + "/release", r.id)] : []),
      act("delete", base, r.id, "DELETE"))];
  }));
}

export async function load() {
  await loadHealth();  // first: a non-admin's 403 stops here, before anything else is asked
  await Promise.all([loadQueue(), loadUsers(), loadDomains(), loadClients(), loadEvents()]);
  document.body.dataset.loaded = "yes";
}

/** Wire the sections' buttons and forms (once per page that holds their markup). */
export function setup() {
  $("retryall").onclick = async () => { await api("/api/admin/queue/retry", {method: "POST"}); await load(); };
  $("eventsrefresh").onclick = () => loadEvents();
  setupUsers(load);
  setupDomains(load);
  setupClients(load);
}

function showLogin(msg) {
  session.csrf = null;
  $("app").classList.add("hidden"); $("logout").classList.add("hidden"); $("login").classList.remove("hidden");
  $("loginerror").textContent = msg || "";
}

function wirePage() {
  session.onSignedOut = showLogin;
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
  $("logout").onclick = async () => { await post("/api/session/logout", {}, {"X-CSRF-Token": session.csrf}); showLogin("Signed out."); };
  setup();
}

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
if ($("logintitle")) {  // the /admin page itself (not the shell's Admin view)
  wirePage();
  boot();
}
