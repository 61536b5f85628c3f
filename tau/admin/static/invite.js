// The invite page: the token stays in the URL fragment (never sent to the server with the page
// request, never in a log); the page posts it with the chosen password to /api/invite.
const $ = (id) => document.getElementById(id);
const m = /(?:^#|&)token=([^&]+)/.exec(location.hash);
const token = m ? decodeURIComponent(m[1]) : "";

async function send(body) {
  const r = await fetch("/api/invite", {method: "POST", headers: {"Content-Type": "application/json"},
    body: JSON.stringify({token, ...body}), credentials: "omit"});
  return [r.ok, await r.json()];
}
function result(text, ok) { $("inviteresult").textContent = text; $("inviteresult").className = ok ? "ok" : "bad"; }

async function boot() {
  const [ok, body] = await send({});
  if (!ok) { result(body.message || "This invite link is not valid.", false); $("login").querySelector("button").disabled = true; return; }
  $("invitefor").textContent = "for " + body.address;
}
$("login").onsubmit = async (e) => {
  e.preventDefault();
  if ($("password").value !== $("again").value) { result("The two passwords differ.", false); return; }
  const [ok, body] = await send({password: $("password").value});
  if (!ok) { result(body.message || "Could not set the password.", false); return; }
  e.target.reset();
  $("login").querySelector("button").disabled = true;
  result(`Done: sign in as ${body.address} with your new password.`, true);
};
boot();
