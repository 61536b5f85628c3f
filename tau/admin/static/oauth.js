// OAuth clients (what `tau oauth client add|list|remove` does): the secret of a confidential client
// is shown once, right after registering it.
import {$, api, button, el, enc, onSubmit, say, table} from "./lib.js";

let reloadAll = async () => {};

export async function loadClients() {
  const c = await api("/api/admin/oauth/clients");
  table("clients", ["name", "client id", "redirect URIs", "type", ""], c.items.map((x) => [x.name, x.client_id,
    x.redirect_uris.join(" "), x.confidential ? "confidential" : "public", button("remove", async () => {
      await api("/api/admin/oauth/clients/" + enc(x.client_id), {method: "DELETE"});
      say(`client ${x.name} removed`); await reloadAll(); }, "Remove client " + x.name)]));
}

export function setupClients(reload) {
  reloadAll = reload;
  onSubmit("addclient", async (f) => {
    const uris = f.redirect_uris.split(/\s+/).filter(Boolean);
    const c = await api("/api/admin/oauth/clients", {method: "POST",
      json: {name: f.name, redirect_uris: uris, confidential: f.confidential}});
    const out = $("clientsecret"); out.textContent = "";
    out.appendChild(el("span", {text: `client id ${c.client_id}`}));
    if (c.client_secret) out.appendChild(el("span", {text: ` · secret (shown once) ${c.client_secret}`}));
    say(`client ${c.name} registered`); await reloadAll();
  });
}
