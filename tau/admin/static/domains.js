// Domains (add, delete; DKIM keys with the TXT record to publish; the DNS check of `tau check`) and
// aliases, catch-alls included ("@domain").
import {$, actions, api, button, el, enc, onSubmit, say, table} from "./lib.js";

let current = null;
let reloadAll = async () => {};

export async function loadDomains() {
  const d = await api("/api/admin/domains");
  table("domains", ["domain", "users", ""], d.items.map((x) => [x.name, x.users, actions(
    button("DNS and DKIM", () => openDomain(x.name), "DNS and DKIM for " + x.name),
    button("delete", async () => {
      await api("/api/admin/domains/" + enc(x.name), {method: "DELETE"});
      if (current === x.name) { current = null; $("domainpanel").classList.add("hidden"); }
      say(x.name + " deleted"); await reloadAll(); }, "Delete domain " + x.name))]));
  const a = await api("/api/admin/aliases");
  table("aliases", ["alias", "delivers to", ""], a.items.map((x) => [x.address.startsWith("@") ? x.address + " (catch-all)" : x.address,
    x.destination, button("delete", async () => {
      await api(`/api/admin/aliases/${enc(x.address)}?destination=${enc(x.destination)}`, {method: "DELETE"});
      say(`alias ${x.address} deleted`); await reloadAll(); }, `Delete alias ${x.address} to ${x.destination}`)]));
  const select = $("aliasdomain"); const keep = select.value; select.textContent = "";
  d.items.forEach((x) => select.appendChild(el("option", {value: x.name, text: x.name})));
  if (keep) select.value = keep;
}

function record(r) { return el("code", {class: "record", text: r}); }

async function showKeys(domain) {
  const k = await api(`/api/admin/domains/${enc(domain)}/dkim`);
  $("dkimnone").classList.toggle("hidden", k.items.length > 0);
  table("dkimkeys", ["selector", "algorithm", "publish at", "TXT record"], k.items.map((x) => [x.selector, x.algorithm, x.name, record(x.value)]));
}

async function showDns(domain, live) {
  $("dnsstate").textContent = live ? "Looking the records up…" : "";
  const r = await api(`/api/admin/domains/${enc(domain)}/dns${live ? "?live=1" : ""}`);
  table("dnscheck", live ? ["name", "type", "value", "check", "found"] : ["name", "type", "value"], r.items.map((x) => {
    const row = [x.name, x.type, record(x.value)];
    if (live) row.push(el("span", {class: x.status === "ok" ? "ok" : "bad", text: x.status}), x.detail);
    return row;
  }));
  $("dnsstate").textContent = live ? (r.failing ? `${r.failing} record(s) missing or wrong` : "Every record is published.") : "";
}

export async function openDomain(domain) {
  current = domain;
  $("domainpanel").classList.remove("hidden");
  $("domaintitle").textContent = "Domain " + domain;
  await Promise.all([showKeys(domain), showDns(domain, false)]);
}

export function setupDomains(reload) {
  reloadAll = reload;
  onSubmit("adddomain", async (f) => {
    const d = await api("/api/admin/domains", {method: "POST", json: {name: f.name}});
    say(d.name + " added"); await reloadAll(); await openDomain(d.name);
  });
  onSubmit("dkimform", async (f) => {
    const body = {algorithm: f.algorithm};
    if (f.selector) body.selector = f.selector;
    const k = await api(`/api/admin/domains/${enc(current)}/dkim`, {method: "POST", json: body});
    say(`DKIM key ${k.selector} made: publish the TXT record at ${k.name}`);
    await showKeys(current);
  });
  $("dnslive").onclick = () => showDns(current, true).catch((err) => say(String(err.message), true));
  onSubmit("addalias", async (f) => {
    const address = f.local.trim() ? `${f.local.trim()}@${f.domain}` : "@" + f.domain;
    await api("/api/admin/aliases", {method: "POST", json: {address, destination: f.destination}});
    say(`${address} now delivers to ${f.destination}`); await reloadAll();
  });
}
