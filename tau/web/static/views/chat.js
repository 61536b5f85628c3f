// The Chat view: conversation list (1:1 and groups) with unread counts and presence, one conversation's
// messages with delivery/read receipts and typing, safety numbers, and a Call button. All crypto runs
// here in the browser (../chat/*.js); the server sees ciphertext only. Text is inserted as text nodes.

import { ChatClient } from "../chat/client.js";
import { bytes } from "../dom.js";

const TYPING_IDLE_MS = 4000;
const PREVIEWABLE = new Set(["image/png", "image/jpeg", "image/gif", "image/webp"]);

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "text") node.textContent = v;
    else if (k === "class") node.className = v;
    else if (v !== null && v !== undefined && v !== false) node.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children) if (c) node.append(c);
  return node;
}

function stylesheet() {
  const href = new URL("./chat.css", import.meta.url).href;
  if (![...document.querySelectorAll("link[rel=stylesheet]")].some((l) => l.href === href)) {
    document.head.append(el("link", { rel: "stylesheet", href }));
  }
}

export async function mount(root, ctx) {
  stylesheet();
  const client = new ChatClient(ctx);
  let current = null;           // open conversation id
  const typingTimers = new Map();
  let typingSent = 0;
  let typingStop = null;

  const status = el("p", { class: "chat-status", role: "status", text: "Starting secure chat…" });
  const list = el("ul", { class: "chat-list", "aria-label": "Conversations" });
  const newChat = el("form", { class: "chat-new", "aria-label": "New chat" },
    el("label", { for: "chat-new-address", text: "Chat with" }),
    el("input", { id: "chat-new-address", name: "address", type: "email", autocomplete: "off", required: true, placeholder: "name@example.com" }),
    el("button", { type: "submit", text: "Start chat" }));
  const newGroup = el("form", { class: "chat-new", "aria-label": "New group" },
    el("label", { for: "chat-group-title", text: "Group name" }),
    el("input", { id: "chat-group-title", name: "title", required: true }),
    el("label", { for: "chat-group-members", text: "Members" }),
    el("input", { id: "chat-group-members", name: "members", required: true, placeholder: "a@example.com, b@example.com" }),
    el("button", { type: "submit", text: "Create group" }));
  const side = el("nav", { class: "chat-side", "aria-label": "Chats" }, el("h2", { text: "Chats" }), list,
    el("details", {}, el("summary", { text: "New chat or group" }), newChat, newGroup));

  const heading = el("h2", { class: "chat-title", text: "No conversation open" });
  const presenceLine = el("p", { class: "chat-presence" });
  const callButton = el("button", { type: "button", text: "Call", disabled: true });
  const safety = el("details", { class: "chat-safety" }, el("summary", { text: "Safety numbers" }));
  const safetyList = el("ul", { "aria-label": "Safety numbers" });
  safety.append(safetyList);
  const log = el("ol", { class: "chat-log", role: "log", "aria-label": "Messages", "aria-live": "polite" });
  const typingLine = el("p", { class: "chat-typing", "aria-live": "polite" });
  const input = el("textarea", { id: "chat-message", rows: "2", disabled: true });
  const sendButton = el("button", { type: "submit", text: "Send", disabled: true });
  const fileInput = el("input", { id: "chat-file", type: "file", disabled: true });
  const composer = el("form", { class: "chat-composer", "aria-label": "Write a message" },
    el("label", { for: "chat-message", text: "Message" }), input, sendButton,
    el("div", { class: "chat-attach" }, el("label", { for: "chat-file", text: "Attach file" }), fileInput));
  const main = el("section", { class: "chat-main", "aria-label": "Conversation" },
    el("header", { class: "chat-head" }, el("div", {}, heading, presenceLine), callButton), safety, log, typingLine, composer);
  const app = el("div", { class: "chat-app" }, side, main);
  root.replaceChildren(status, app);

  const presenceText = (user) => {
    const p = client.presence.get(user);
    return p ? p.status : "offline";
  };

  async function renderList() {
    const { unread, latest } = await client.activity();
    const convs = [...client.conversations.values()].sort(
      (a, b) => (latest.get(b.id) || 0) - (latest.get(a.id) || 0) || Number(b.id) - Number(a.id));
    list.replaceChildren(...convs.map((c) => {
      const n = unread.get(c.id) || 0;
      const title = client.title(c);
      const other = c.kind === "direct" ? title : null;
      const button = el("button", { type: "button", class: "chat-item", "aria-current": c.id === current ? "true" : null,
                                    "data-conversation": c.id },
        el("span", { class: "chat-item-title", text: title }),
        other ? el("span", { class: `chat-dot ${presenceText(other)}`, text: presenceText(other) }) : el("span", { class: "chat-kind", text: "group" }),
        n ? el("span", { class: "chat-unread", "aria-label": `${n} unread`, text: String(n) }) : null);
      button.addEventListener("click", () => open(c.id));
      return el("li", {}, button);
    }));
  }

  function receiptText(m) {
    if (!m.mine || !m.id) return "";
    const others = client.conversations.get(m.conversation)?.members.filter((u) => u !== client.user) || [];
    if (others.length && others.every((u) => m.receipts.read.includes(u))) return "Read";
    if (m.receipts.read.length) return `Read by ${m.receipts.read.join(", ")}`;
    if (m.receipts.delivered.length) return "Delivered";
    return "Sent";
  }

  function messageNode(m) {
    if (m.notice) return el("li", { class: "chat-notice", "data-key": m.key }, el("p", { text: m.notice }));
    const who = m.mine ? "You" : m.from;
    const body = m.error ? el("p", { class: "chat-error", text: `Could not decrypt: ${m.error}` })
      : (m.text || !(m.attachments || []).length) ? el("p", { class: "chat-text", text: m.text }) : null;
    const when = m.timestamp ? new Date(m.timestamp).toLocaleTimeString() : "";
    const files = (m.attachments || []).length
      ? el("ul", { class: "chat-files", "aria-label": "Attachments" },
        ...m.attachments.map((a) => el("li", {}, fileButton(a), PREVIEWABLE.has(a.content_type) ? previewButton(a) : null)))
      : null;
    return el("li", { class: m.mine ? "chat-msg mine" : "chat-msg", "data-key": m.key, "data-id": m.id || "" },
      el("span", { class: "chat-from", text: who }), body, files,
      el("span", { class: "chat-meta" }, el("time", { datetime: m.timestamp || "", text: when }),
        el("span", { class: "chat-receipt", text: receiptText(m) })));
  }

  // an attachment: fetched, digest-checked and decrypted only when asked, then saved under its name
  function fileButton(a) {
    const button = el("button", { type: "button", class: "chat-file", "aria-label": `Download ${a.name}`,
                                  text: a.size === null ? a.name : `${a.name} (${bytes(a.size)})` });
    button.addEventListener("click", async () => {
      button.disabled = true;
      try {
        const url = URL.createObjectURL(await client.fetchAttachment(a));
        const link = el("a", { href: url, download: a.name, hidden: true });
        document.body.append(link);
        link.click();
        link.remove();
        setTimeout(() => URL.revokeObjectURL(url), 60000);
        status.textContent = `Decrypted and saved ${a.name}`;
      } catch (err) {
        status.textContent = `Could not download ${a.name}: ${err.message}`;
      } finally {
        button.disabled = false;
      }
    });
    return button;
  }

  // an image, decrypted here and shown from a blob: URL (the shell's CSP allows blob: images only)
  function previewButton(a) {
    const button = el("button", { type: "button", class: "chat-preview", text: "Preview", "aria-label": `Preview ${a.name}` });
    button.addEventListener("click", async () => {
      button.disabled = true;
      try {
        const url = URL.createObjectURL(await client.fetchAttachment(a));
        const img = el("img", { src: url, alt: a.name, class: "chat-image" });
        img.addEventListener("load", () => URL.revokeObjectURL(url), { once: true });
        button.replaceWith(img);
      } catch (err) {
        button.disabled = false;
        status.textContent = `Could not show ${a.name}: ${err.message}`;
      }
    });
    return button;
  }

  function append(m) {
    const old = log.querySelector(`[data-key="${m.key}"]`);
    const node = messageNode(m);
    if (old) old.replaceWith(node);
    else log.append(node);
    log.scrollTop = log.scrollHeight;
  }

  async function renderSafety() {
    if (!current) return;
    const items = await client.safetyNumbers(current);
    safetyList.replaceChildren(
      el("li", {}, `This browser is device ${client.state.deviceId} of ${client.user}.`),
      ...(items.length ? items.map((s) => el("li", {}, el("strong", { text: `${s.user} device ${s.device}: ` }),
                                             el("code", { text: s.number })))
        : [el("li", { text: "No secure session yet: safety numbers appear after the first message." })]));
  }

  function renderPresence() {
    if (!current) return;
    const conv = client.conversations.get(current);
    const others = conv.members.filter((u) => u !== client.user);
    presenceLine.textContent = others.map((u) => `${u}: ${presenceText(u)}`).join(" · ");
  }

  async function open(id) {
    current = id;
    const conv = await client.conversation(id);
    heading.textContent = client.title(conv);
    callButton.disabled = false;
    input.disabled = false;
    sendButton.disabled = false;
    fileInput.disabled = false;
    typingLine.textContent = "";
    log.replaceChildren(...(await client.history(id)).map(messageNode));
    log.scrollTop = log.scrollHeight;
    renderPresence();
    await renderSafety();
    await client.markRead(id);
    await renderList();
    input.focus();
  }

  client.addEventListener("conversations", () => renderList());
  client.addEventListener("presence", () => { renderList(); renderPresence(); });
  client.addEventListener("message", async (ev) => {
    const m = ev.detail;
    if (m.conversation === current) {
      append(m);
      if (!m.mine && document.visibilityState === "visible") await client.markRead(current);
      if (m.notice || !m.mine) renderSafety();
    }
    renderList();
  });
  client.addEventListener("receipt", (ev) => { if (ev.detail.conversation === current) append(ev.detail); });
  client.addEventListener("typing", (ev) => {
    const f = ev.detail;
    clearTimeout(typingTimers.get(f.conversation + f.user));
    if (f.conversation !== current) return;
    if (f.state === "started") {
      typingLine.textContent = `${f.user} is typing…`;
      typingTimers.set(f.conversation + f.user, setTimeout(() => { typingLine.textContent = ""; }, TYPING_IDLE_MS + 2000));
    } else {
      typingLine.textContent = "";
    }
  });
  client.addEventListener("call", (ev) => {
    // the call page of the server this app came from (the configured public URL may name another host)
    const given = new URL(ev.detail.join_url, location.href);
    const url = new URL(given.pathname + given.search + given.hash, location.origin).href;
    const link = el("a", { href: url, target: "_blank", rel: "noopener", text: "Join the call" });
    status.replaceChildren("Call started: ", link);
    window.open(url, "_blank", "noopener");
  });
  client.addEventListener("connection", (ev) => {
    status.textContent = ev.detail === "open" ? `Connected · end-to-end encrypted · device ${client.state.deviceId}` : "Reconnecting…";
  });
  client.addEventListener("error", (ev) => { status.textContent = `Problem: ${ev.detail}`; });

  newChat.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    try {
      const conv = await client.startDirect(newChat.elements.address.value.trim());
      newChat.reset();
      await open(conv.id);
    } catch (err) { status.textContent = `Could not start the chat: ${err.message}`; }
  });
  newGroup.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const members = newGroup.elements.members.value.split(/[\s,;]+/).filter(Boolean);
    try {
      const conv = await client.createGroup(newGroup.elements.title.value.trim(), members);
      newGroup.reset();
      await open(conv.id);
    } catch (err) { status.textContent = `Could not create the group: ${err.message}`; }
  });

  const stopTyping = () => {
    if (typingSent && current) client.typing(current, false);
    typingSent = 0;
  };
  input.addEventListener("input", () => {
    if (!current) return;
    if (Date.now() - typingSent > TYPING_IDLE_MS) { client.typing(current, true); typingSent = Date.now(); }
    clearTimeout(typingStop);
    typingStop = setTimeout(stopTyping, TYPING_IDLE_MS);
  });
  input.addEventListener("keydown", (ev) => {
    if (ev.key === "Enter" && !ev.shiftKey) { ev.preventDefault(); composer.requestSubmit(); }
  });
  composer.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const text = input.value;
    const file = fileInput.files[0];
    if (!current || (!text.trim() && !file)) return;
    input.value = "";
    clearTimeout(typingStop);
    stopTyping();
    try {
      if (file) {
        status.textContent = `Encrypting and sending ${file.name}…`;
        await client.sendFile(current, file, text);
        fileInput.value = "";
        status.textContent = `Sent ${file.name}, end-to-end encrypted`;
      } else {
        await client.send(current, text);
      }
    } catch (err) {
      input.value = text;
      status.textContent = `Not sent: ${err.message}`;
    }
  });
  callButton.addEventListener("click", () => {
    if (current && !client.startCall(current)) status.textContent = "Not connected: try again in a moment.";
  });
  document.addEventListener("visibilitychange", () => { if (current && document.visibilityState === "visible") client.markRead(current).then(renderList); });

  // one tab per browser device: two tabs advancing the same ratchets from stale copies would break them
  let stopHolding = () => {};
  let waiting = () => {};
  const elsewhere = new Promise((resolve) => { waiting = resolve; });
  const started = new Promise((resolve, reject) => {
    const name = `tau-chat:${client.user}`;
    const hold = async () => {
      try { await client.start(); await renderList(); resolve(); } catch (err) { reject(err); return; }
      await new Promise((release) => { stopHolding = release; });
    };
    if (!navigator.locks) { hold(); return; }
    navigator.locks.request(name, { ifAvailable: true }, async (lock) => {
      if (lock) return hold();
      status.textContent = "Chat is open in another tab of this browser; it continues here when that tab closes.";
      waiting();
      return navigator.locks.request(name, hold);
    });
  });
  await Promise.race([started, elsewhere]);
  return { client, open, unmount: () => { client.close(); stopHolding(); } };
}
