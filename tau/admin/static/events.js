// Recent security events on this node: failed and throttled logins, rate limits, used invites, admin actions.
import {api, table, when} from "./lib.js";

function what(e) {
  if (e.kind === "admin_action") return `${e.action} ${e.path} → ${e.status}`;
  if (e.kind === "login_throttled") return `locked for ${e.retry_after} s`;
  if (e.kind === "rate_limited") return `too many requests (per ${e.scope}); retry after ${e.retry_after} s`;
  return "";
}

export async function loadEvents() {
  const ev = await api("/api/admin/security-events?limit=100");
  table("events", ["time (UTC)", "event", "account", "address", "detail"], ev.items.map((e) => [when(e.at),
    e.kind.replace("_", " "), e.account || e.actor || (e.scope === "user" ? e.source : ""),
    e.ip || (e.scope === "ip" ? e.source : ""), what(e)]));
}
