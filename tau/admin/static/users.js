// Users: the list with storage use, adding (initial password or invite link) and one account's panel
// (quota, disable/enable, admin flag, 2FA reset, app passwords, delete).
import {$, actions, api, button, enc, onSubmit, parseSize, quotaText, say, size, table, when} from "./lib.js";

let current = null;   // the address whose panel is open
let reloadAll = async () => {};

function state(u) { return u.disabled ? "disabled" : u.invited ? "invited" : "active"; }

export async function loadUsers() {
  const [u, q] = await Promise.all([api("/api/admin/users"), api("/api/admin/quotas")]);
  const usage = Object.fromEntries(q.items.map((x) => [x.address, x]));
  table("users", ["address", "name", "state", "admin", "2FA", "used", "quota", ""], u.items.map((x) => {
    const use = usage[x.address] || {used_bytes: 0, quota_bytes: 0};
    return [x.address, x.display_name, state(x), x.admin ? "yes" : "", x.totp ? "on" : "", size(use.used_bytes),
      use.quota_bytes ? size(use.quota_bytes) : "none",
      button("manage", () => openUser(x.address), "Manage " + x.address)];
  }));
  table("quotas", ["address", "used", "mail", "files", "messages", "quota"], q.items.map((x) => [x.address,
    size(x.used_bytes), size(x.mail_bytes), size(x.file_bytes), x.messages, x.quota_bytes ? size(x.quota_bytes) : "none"]));
  if (current) await openUser(current);
}

async function change(body, done) {
  await api("/api/admin/users/" + enc(current), {method: "PATCH", json: body});
  say(done);
  await reloadAll();
}

export async function openUser(address) {
  const d = await api("/api/admin/users/" + enc(address));
  current = d.address;
  $("account").classList.remove("hidden");
  $("accounttitle").textContent = "Account " + d.address;
  $("accountfacts").textContent = `${state(d)} · ${d.admin ? "administrator" : "user"} · 2FA ${d.totp ? "on" : "off"} · `
    + `${size(d.used_bytes)} used of ${d.effective_quota_bytes ? size(d.effective_quota_bytes) : "no quota"} `
    + `(mail ${size(d.mail_bytes)}, ${d.messages} messages; files ${size(d.file_bytes)})`;
  $("quotafield").value = quotaText(d.quota_bytes);
  const tools = $("accounttools"); tools.textContent = "";
  tools.appendChild(actions(
    d.disabled ? button("Enable account", () => change({disabled: false}, d.address + " enabled"))
      : button("Disable account", () => change({disabled: true}, d.address + " disabled")),
    d.admin ? button("Remove administrator", () => change({admin: false}, d.address + " is no longer an administrator"))
      : button("Make administrator", () => change({admin: true}, d.address + " is an administrator")),
    button("Reset two-factor authentication", async () => {
      const r = await api(`/api/admin/users/${enc(d.address)}/2fa`, {method: "DELETE"});
      say(r.was_enabled ? "2FA reset: the password alone signs in again" : "2FA was not on"); await reloadAll(); }),
    ...(d.has_password ? [] : [button("New invite link", async () => {
      showInvite((await api(`/api/admin/users/${enc(d.address)}/invite`, {method: "POST"})).invite_url); })]),
    button("Delete account", async () => {
      if (!window.confirm("Delete " + d.address + " and all its mail, files and calendars?")) return;
      await api("/api/admin/users/" + enc(d.address), {method: "DELETE"});
      current = null; $("account").classList.add("hidden"); say(d.address + " deleted"); await reloadAll(); })));
  table("apppasswords", ["app password", "created", "last used", ""], d.app_passwords.map((a) => [a.name, when(a.created_at),
    when(a.last_used_at) || "never", button("revoke", async () => {
      await api(`/api/admin/users/${enc(d.address)}/app-passwords/${a.id}`, {method: "DELETE"});
      say(`app password ${a.name} of ${d.address} revoked`); await openUser(d.address); }, `Revoke app password ${a.name}`)]));
}

function showInvite(url) {
  $("invitelink").value = url;
  $("invitebox").classList.remove("hidden");
  say("Invite link created: send it to the new user (valid for 7 days, works once)");
}

export function setupUsers(reload) {
  reloadAll = reload;
  onSubmit("adduser", async (f) => {
    const body = {address: f.address, display_name: f.display_name, admin: f.admin, quota_bytes: parseSize(f.quota)};
    if (f.invite) body.invite = true; else body.password = f.password;
    const u = await api("/api/admin/users", {method: "POST", json: body});
    if (u.invite_url) showInvite(u.invite_url); else say(u.address + " added");
    await reloadAll();
  });
  onSubmit("quotaform", async (f) => {
    await change({quota_bytes: parseSize(f.quota)}, "quota of " + current + " saved");
    return false;
  });
  $("invite").onchange = (e) => { $("newpassword").disabled = e.target.checked; $("newpassword").required = !e.target.checked; };
  $("adduser").addEventListener("reset", () => { $("newpassword").disabled = false; $("newpassword").required = true; });
}
