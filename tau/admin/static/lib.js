// Shared by the admin page's modules: the cookie session's CSRF token (memory only), the JSON API
// helper and DOM builders. Everything is inserted as text nodes, never as HTML.
export const $ = (id) => document.getElementById(id);
// request: set by a host page with a session of its own (the web app's shell: its fetch adds the CSRF
// header and refreshes the session itself); the /admin page leaves it null and does both here
export const session = {csrf: null, onSignedOut: () => {}, request: null};

export function post(path, body, headers) {
  return fetch(path, {method: "POST", credentials: "same-origin", body: JSON.stringify(body || {}),
    headers: {"Content-Type": "application/json", ...(headers || {})}});
}
export async function adopt(r) {
  if (!r.ok) return false;
  session.csrf = (await r.json()).csrf_token;
  return Boolean(session.csrf);
}
export async function refresh() { return adopt(await post("/api/session/refresh")); }

export async function api(path, opts = {}, retried = false) {
  const headers = {...(opts.headers || {})};
  const method = opts.method || "GET";
  let body = opts.body;
  if (opts.json !== undefined) { body = JSON.stringify(opts.json); headers["Content-Type"] = "application/json"; }
  if (method !== "GET" && !session.request) headers["X-CSRF-Token"] = session.csrf;
  const r = session.request ? await session.request(path, {method, body, headers})
    : await fetch(path, {method, body, headers, credentials: "same-origin"});
  if (r.status === 401 && !retried && !session.request && await refresh()) return api(path, opts, true);
  if (r.status === 401) { session.onSignedOut("Please sign in again."); throw new Error("401"); }
  if (r.status === 204) return null;
  const data = await r.json();
  if (!r.ok && r.status !== 503) throw new Error(data.message || String(r.status));
  return data;
}

export function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (k === "onclick" || k === "onsubmit" || k === "onchange") node[k] = v;
    else if (k === "text") node.textContent = v;
    else if (v !== false && v !== null && v !== undefined) node.setAttribute(k, v === true ? "" : v);
  }
  children.forEach((c) => node.appendChild(c instanceof Node ? c : document.createTextNode(String(c))));
  return node;
}
export function table(id, head, rows) {
  const t = $(id); t.textContent = "";
  const tr = t.insertRow(); head.forEach((h) => tr.appendChild(el("th", {scope: "col", text: h})));
  rows.forEach((cells) => { const r = t.insertRow(); cells.forEach((c) => { const td = r.insertCell();
    if (c instanceof Node) td.appendChild(c); else td.textContent = c === null || c === undefined ? "" : String(c); }); });
}
/** A button; ``name`` is its accessible name when the visible label alone is ambiguous (one per row). */
export function button(label, fn, name) {
  const b = el("button", {type: "button", "aria-label": name || null, text: label});
  b.onclick = async () => {
    b.disabled = true;
    try { await fn(); } catch (err) { if (err.message !== "401") say(String(err.message), true); } finally { b.disabled = false; }
  };
  return b;
}
export function actions(...buttons) { const s = el("span", {class: "actions"}); buttons.forEach((b) => s.appendChild(b)); return s; }
/** Show what just happened (or went wrong) in the page's live region. */
export function say(text, bad = false) { const n = $("notice"); n.textContent = text; n.className = bad ? "bad" : "ok"; }
/** A form's submit handler: its fields as an object, errors to the live region. */
export function onSubmit(id, fn) {
  $(id).onsubmit = async (e) => {
    e.preventDefault();
    const form = e.target;
    const data = Object.fromEntries(new FormData(form));
    for (const box of form.querySelectorAll("input[type=checkbox]")) data[box.name] = box.checked;
    try { if (await fn(data, form) !== false) form.reset(); } catch (err) { if (err.message !== "401") say(String(err.message), true); }
  };
}
export const size = (n) => n >= 1073741824 ? (n / 1073741824).toFixed(1) + " GiB" : n >= 1048576 ? (n / 1048576).toFixed(1) + " MiB" : Math.round(n / 1024) + " KiB";
/** "5G", "500M", "1.5 GiB", "2048": bytes; "" means the default quota (null). */
export function parseSize(text) {
  const t = String(text || "").trim();
  if (!t) return null;
  const m = /^(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?$/i.exec(t);
  if (!m) throw new Error("quota must look like 500M or 5G");
  return Math.round(Number(m[1]) * 1024 ** " kmgt".indexOf((m[2] || " ").toLowerCase()));
}
/** A quota as the field shows it: "5G", "500M" when exact, else bytes; null is the default (""). */
export function quotaText(n) {
  if (n === null || n === undefined) return "";
  for (const [unit, f] of [["T", 1024 ** 4], ["G", 1024 ** 3], ["M", 1024 ** 2]]) if (n % f === 0 && n >= f) return n / f + unit;
  return String(n);
}
export const when = (t) => t ? new Date(t * 1000).toISOString().replace("T", " ").slice(0, 19) : "";
export const enc = encodeURIComponent;
