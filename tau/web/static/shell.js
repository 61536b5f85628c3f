// The app shell: sign-in (server session in HttpOnly cookies; this script keeps only the CSRF
// token, in memory), navigation, and the views, each an ES module /app/views/NAME.js exporting
// `async function mount(root, ctx)` with ctx = {api(path, init), user: {id, email, is_admin},
// socket(path), upload(path, file, onprogress)}. mount may return a function, called when the view is left.
import {h, notAvailable} from "./dom.js";

const V = new URL(import.meta.url).searchParams.get("v") || "";
const VIEWS = [["mail", "Mail"], ["chat", "Chat"], ["calendar", "Calendar"], ["files", "Files"],
  ["contacts", "Contacts"]];
const ADMIN = ["admin", "Admin"];  // for administrators only (the admin API refuses anyone else: 403)
const views = () => (user && user.is_admin ? [...VIEWS, ADMIN] : VIEWS);
const root = document.getElementById("root");
let csrf = null;
let user = null;
let leave = null;

function post(path, body, headers = {}) {
  return fetch(path, {method: "POST", credentials: "same-origin", body: JSON.stringify(body || {}),
    headers: {"Content-Type": "application/json", ...headers}});
}

async function adopt(response) {
  if (!response.ok) return null;
  const body = await response.json();
  csrf = body.csrf_token;
  const u = body.user;
  return {id: u.id, email: u.address, is_admin: Boolean(u.admin), name: u.display_name || ""};
}

async function resume() {
  return (await adopt(await fetch("/api/session", {credentials: "same-origin"})))
    || (await adopt(await post("/api/session/refresh")));
}

// fetch() with the session: the CSRF header on state-changing calls, one silent refresh on 401.
async function api(path, init = {}) {
  const send = () => {
    const headers = new Headers(init.headers || {});
    const method = (init.method || "GET").toUpperCase();
    if (method !== "GET" && method !== "HEAD") headers.set("X-CSRF-Token", csrf || "");
    return fetch(path, {...init, headers, credentials: "same-origin"});
  };
  let response = await send();
  if (response.status === 401) {
    const again = await adopt(await post("/api/session/refresh"));
    if (!again) { showSignIn("Your session ended. Sign in again."); return response; }
    response = await send();
  }
  if (response.status === 403) {  // a session opened elsewhere (the admin page) without this app's scopes
    const body = await response.clone().json().catch(() => ({}));
    if (body.error === "insufficient_scope") showSignIn("Sign in again to use the app.");
  }
  return response;
}

// A body upload with progress (the Files view's bar): XHR, as fetch() reports no upload progress.
// opts: {method, headers} (a chunk of a resumable upload is a PUT with Content-Range).
function upload(path, file, onprogress, opts = {}) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open(opts.method || "POST", path);
    xhr.withCredentials = true;
    xhr.setRequestHeader("X-CSRF-Token", csrf || "");
    xhr.setRequestHeader("Content-Type", file.type || "application/octet-stream");
    for (const [name, value] of Object.entries(opts.headers || {})) xhr.setRequestHeader(name, value);
    xhr.upload.onprogress = (ev) => onprogress(ev.loaded, ev.total);
    xhr.onload = () => resolve(new Response(xhr.response, {status: xhr.status}));
    xhr.onerror = () => reject(new Error("network error"));
    xhr.send(file);
  });
}

function socket(path) {
  return new WebSocket((location.protocol === "https:" ? "wss://" : "ws://") + location.host + path);
}

function field(label, attrs) {
  const id = "f-" + attrs.name;
  return h("div", {class: "field"}, h("label", {for: id}, label), h("input", {id, ...attrs}));
}

function showSignIn(message = "") {
  if (leave) { try { leave(); } catch (e) { console.error(e); } leave = null; }
  document.title = "Sign in · tau";
  const error = h("p", {class: "error", role: "alert"}, message);
  const totp = h("div", {class: "totp", hidden: true},
    field("One-time code", {name: "totp", autocomplete: "one-time-code", inputmode: "numeric"}),
    h("p", {class: "hint"}, "Two-factor sign-in is on: enter the code from your authenticator app."));
  const form = h("form", {class: "signin panel", "aria-labelledby": "signin-title"},
    h("h1", {id: "signin-title"}, "Sign in to tau"),
    field("Email", {name: "username", type: "email", autocomplete: "username", required: true}),
    field("Password", {name: "password", type: "password", autocomplete: "current-password", required: true}),
    totp, h("button", {type: "submit", class: "primary"}, "Sign in"), error);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    error.textContent = "";
    const data = Object.fromEntries(new FormData(form));
    const button = form.querySelector("button");
    button.disabled = true;
    try {
      const response = await post("/api/session", data);
      const signed = await adopt(response.clone());
      if (signed) { user = signed; showApp(); return; }
      const body = await response.json().catch(() => ({}));
      if (body.error === "totp_required") {
        totp.hidden = false;
        form.querySelector("[name=totp]").focus();
        error.textContent = "Enter your one-time code.";
      } else if (response.status === 429) {
        error.textContent = "Too many attempts. Wait a moment and try again.";
      } else {
        error.textContent = body.error === "invalid_grant" || response.status === 401 || response.status === 400
          ? "Wrong email, password or code." : (body.message || "Sign-in failed.");
      }
    } catch (e) {
      error.textContent = "The server cannot be reached.";
    } finally {
      button.disabled = false;
    }
  });
  root.replaceChildren(h("main", {class: "center"}, form));
  form.querySelector("input").focus();
}

function current() {
  const name = location.hash.replace(/^#\/?/, "").split("/")[0];
  return views().some(([n]) => n === name) ? name : "mail";
}

function showApp() {
  const links = views().map(([name, label]) => h("a", {href: "#" + name, "data-view": name}, label));
  const signOut = h("button", {type: "button", class: "ghost"}, "Sign out");
  signOut.addEventListener("click", async () => {
    await post("/api/session/logout", {}, {"X-CSRF-Token": csrf || ""});
    csrf = null; user = null;
    showSignIn("Signed out.");
  });
  const main = h("main", {id: "view", tabindex: "-1"});
  root.replaceChildren(
    h("header", {class: "top"},
      h("a", {class: "brand", href: "#mail", "aria-label": "tau home"}, "tau"),
      h("nav", {"aria-label": "Apps"}, links),
      h("span", {class: "who"}, h("span", {class: "address"}, user.email), signOut)),
    main);
  route();
}

async function route() {
  const main = document.getElementById("view");
  if (!main || !user) return;
  if (leave) { try { leave(); } catch (e) { console.error(e); } leave = null; }
  const name = current();
  const label = views().find(([n]) => n === name)[1];
  document.title = `${label} · tau`;
  for (const a of document.querySelectorAll("nav a[data-view]")) {
    if (a.dataset.view === name) a.setAttribute("aria-current", "page"); else a.removeAttribute("aria-current");
  }
  main.replaceChildren();
  let module;
  try {
    module = await import(`./views/${name}.js?v=${V}`);
  } catch (e) {
    console.warn(`view ${name}:`, e);
    notAvailable(main, label);
    return;
  }
  if (current() !== name) return;  // the user moved on while it loaded
  const ctx = {api, upload, user: {id: user.id, email: user.email, is_admin: user.is_admin}, socket};
  const done = await module.mount(main, ctx);
  if (typeof done === "function") leave = done;
}

window.addEventListener("hashchange", route);
resume().then((u) => { if (u) { user = u; showApp(); } else showSignIn(); },
  () => showSignIn("The server cannot be reached."));
