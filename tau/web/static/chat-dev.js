// Development page for the Chat view until the web shell mounts it: password grant, then mount(root, ctx)
// with the shell's contract (api adds the bearer token, socket opens an authenticated WebSocket).

import { mount } from "./views/chat.js";

async function signIn(email, password) {
  const body = new URLSearchParams({ grant_type: "password", username: email, password });
  const resp = await fetch("/oauth2/token", { method: "POST", body });
  const answer = await resp.json();
  if (!resp.ok) throw new Error(answer.error_description || answer.error || "sign-in failed");
  return answer.access_token;
}

function context(token, me) {
  return {
    user: { id: me.id, email: me.address || me.email, is_admin: Boolean(me.admin) },
    api(path, init = {}) {
      const headers = new Headers(init.headers || {});
      headers.set("Authorization", `Bearer ${token}`);
      return fetch(path, { ...init, headers });
    },
    socket(path) {
      const url = new URL(path, location.href);
      url.protocol = location.protocol === "https:" ? "wss:" : "ws:";
      url.searchParams.set("access_token", token);
      return new WebSocket(url);
    },
  };
}

document.addEventListener("DOMContentLoaded", () => {
  const form = document.getElementById("signin");
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    try {
      const token = await signIn(form.elements.email.value, form.elements.password.value);
      const me = await (await fetch("/api/me", { headers: { Authorization: `Bearer ${token}` } })).json();
      const root = document.getElementById("app");
      window.tauChat = await mount(root, context(token, { ...me, email: me.address || me.email || form.elements.email.value }));
    } catch (err) {
      document.getElementById("signin-error").textContent = String(err.message || err);
    }
  });
});
