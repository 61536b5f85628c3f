// The browser's messenger client, the behaviour of tau/client/messenger.py: register this browser as a
// device, encrypt once per recipient device (and per our other devices), repair the device lists on a
// device_mismatch answer and retry, decrypt pushed envelopes, keep the plaintext locally, then ack.
// Every state change runs under one lock and is saved before the server is told (ack) or sent to.

import { open as openAttachment, parsePointer, seal } from "./attachments.js";
import { fromUtf8, utf8 } from "./bytes.js";
import { DecryptError, DeviceState } from "./device.js";
import { ChatStore } from "./store.js";

const RETRIES = 5;
const PREKEYS = 50;

export class ApiError extends Error {
  constructor(status, body) {
    super(`${status} ${body.error || "error"}: ${body.message || ""}`);
    this.status = status;
    this.body = body;
    this.error = body.error || "error";
  }
}

export class ChatClient extends EventTarget {
  constructor(ctx) {
    super();
    this.ctx = ctx;
    this.user = ctx.user.email.toLowerCase();
    this.state = null;
    this.store = null;
    this.sock = null;
    this.conversations = new Map();  // id → conversation (members, title, kind, encrypted)
    this.presence = new Map();       // address → {status, last_seen}
    this._chain = Promise.resolve();
    this._order = 0;
    this._unread = new Map();  // conversation → messages not read here
    this._latest = new Map();  // conversation → order of its latest message
    this._closed = false;
    this._backoff = 500;
  }

  locked(fn) {
    const run = this._chain.then(fn);
    this._chain = run.catch(() => {});
    return run;
  }

  emit(type, detail) { this.dispatchEvent(new CustomEvent(type, { detail })); }

  async call(method, path, body) {
    const init = { method, headers: {} };
    if (body !== undefined) {
      init.body = JSON.stringify(body);
      init.headers["Content-Type"] = "application/json";
    }
    const resp = await this.ctx.api(path, init);
    const text = await resp.text();
    let data = {};
    try { data = text ? JSON.parse(text) : {}; } catch (err) { data = { error: "invalid_response" }; }
    if (!resp.ok) throw new ApiError(resp.status, data);
    return data;
  }

  // -- start -------------------------------------------------------------------------------------
  async start() {
    this.store = await ChatStore.open(this.user);
    const saved = await this.store.loadDevice();
    this.state = saved ? DeviceState.fromRecord(saved) : await DeviceState.create(this.user);
    const mine = (await this.call("GET", "/api/keys")).devices || [];
    if (!saved || !mine.some((d) => d.device_id === this.state.deviceId)) await this._register();
    this._unread = new Map();
    this._latest = new Map();
    for (const m of await this.store.all()) {
      this._order = Math.max(this._order, m.order || 0);
      this._count(m);
    }
    await this.refreshConversations();
    this.connect();
  }

  async _register() {
    await this.call("PUT", "/api/keys", await this.state.upload(PREKEYS));
    try {  // our registration id: sent in X3DH headers so peers can be told "stale" after a re-install
      const own = await this.bundles(this.user, this.state.deviceId);
      this.state.registrationId = own.length ? Number(own[0].registration_id) : 0;
    } catch (err) {
      this.state.registrationId = 0;
    }
    await this.save();
  }

  save() { return this.store.saveDevice(this.state.toRecord()); }

  async bundles(user, device) {
    const q = device === undefined ? "" : `?device_id=${device}`;
    return (await this.call("GET", `/api/keys/${encodeURIComponent(user)}${q}`)).devices || [];
  }

  // -- conversations ------------------------------------------------------------------------------
  async refreshConversations() {
    let cursor = null;
    do {
      const page = await this.call("GET", "/api/conversations?limit=200" + (cursor ? `&cursor=${cursor}` : ""));
      for (const c of page.items) this.conversations.set(c.id, c);
      cursor = page.next_cursor;
    } while (cursor);
    await this.refreshPresence();
    this.emit("conversations", null);
  }

  async conversation(id, refresh = false) {
    if (refresh || !this.conversations.has(id)) {
      const known = this.conversations.has(id);
      this.conversations.set(id, await this.call("GET", `/api/conversations/${encodeURIComponent(id)}`));
      if (!known) this.refreshPresence();  // someone new to share presence with
      this.emit("conversations", null);
    }
    return this.conversations.get(id);
  }

  async startDirect(address) {
    const conv = await this.call("POST", "/api/conversations", { kind: "direct", members: [address.toLowerCase()], encrypted: true });
    this.conversations.set(conv.id, conv);
    await this.refreshPresence();
    this.emit("conversations", null);
    return conv;
  }

  async createGroup(title, members) {
    const conv = await this.call("POST", "/api/conversations", { kind: "group", title, encrypted: true,
                                                                 members: members.map((m) => m.toLowerCase()) });
    this.conversations.set(conv.id, conv);
    await this.refreshPresence();
    this.emit("conversations", null);
    return conv;
  }

  title(conv) {
    if (conv.kind === "group") return conv.title || conv.members.join(", ");
    return conv.members.find((m) => m !== this.user) || this.user;
  }

  async refreshPresence() {
    const users = [...new Set([...this.conversations.values()].flatMap((c) => c.members))]
      .filter((u) => u !== this.user).slice(0, 200);
    if (!users.length) return;
    try {
      const items = (await this.call("GET", `/api/presence?users=${users.map(encodeURIComponent).join(",")}`)).items;
      for (const p of items) this.presence.set(p.user, p);
      this.emit("presence", null);
    } catch (err) { /* presence is decoration */ }
  }

  // -- sending -------------------------------------------------------------------------------------
  async send(conversationId, text, attachments = []) {
    const payload = utf8(JSON.stringify({ body: text, attachments, sent_at: Date.now() }));
    return this.locked(async () => {
      let members = (await this.conversation(conversationId)).members;
      for (let attempt = 0; attempt < RETRIES; attempt++) {
        const envelopes = await this.state.envelopes(members, payload);
        let result;
        try {
          result = await this.call("POST", "/api/messages", { conversation: conversationId, device_id: this.state.deviceId, envelopes });
        } catch (err) {
          if (!(err instanceof ApiError) || err.error !== "device_mismatch" || attempt === RETRIES - 1) {
            await this.save();
            throw err;
          }
          members = (await this.conversation(conversationId, true)).members;
          for (const [user, device] of this.state.repair(err.body)) {
            for (const bundle of await this.bundles(user, device)) await this.state.startSession(user, bundle);
          }
          continue;
        }
        await this.save();
        const changes = this.state.identityChanges();
        await this._notices(result.conversation, result.id, changes);
        const message = { key: `m${result.id}`, id: result.id, conversation: result.conversation, from: this.user,
                          from_device: this.state.deviceId, timestamp: result.timestamp, text, mine: true,
                          attachments: attachments.map(parsePointer).filter(Boolean),
                          receipts: { delivered: [], read: [] }, read: true, order: ++this._order };
        await this.store.putMessages([message]);
        this._count(message);
        this.emit("message", message);
        return message;
      }
      throw new Error("unreachable");
    });
  }

  /** Encrypt a file here, upload the ciphertext (bound to the conversation), send its pointer. */
  async sendFile(conversationId, file, text = "") {
    const { blob, pointer } = await seal(new Uint8Array(await file.arrayBuffer()), file.name, file.type);
    const resp = await this.ctx.api(`/api/messages/attachments?conversation=${encodeURIComponent(conversationId)}`,
                                    { method: "POST", body: blob, headers: { "Content-Type": "application/octet-stream" } });
    const data = await resp.json().catch(() => ({ error: "invalid_response" }));
    if (!resp.ok) throw new ApiError(resp.status, data);
    return this.send(conversationId, text, [{ ...pointer, id: data.id }]);
  }

  /** Download an attachment's ciphertext, check its digest, decrypt: a Blob of the file. */
  async fetchAttachment(pointer) {
    const resp = await this.ctx.api(`/api/messages/attachments/${encodeURIComponent(pointer.id)}`);
    if (!resp.ok) throw new ApiError(resp.status, await resp.json().catch(() => ({})));
    const plain = await openAttachment(pointer, await resp.arrayBuffer());
    return new Blob([plain], { type: pointer.content_type });
  }

  // -- receiving -------------------------------------------------------------------------------------
  connect() {
    if (this._closed) return;
    const sock = this.ctx.socket(`/ws/messages?device_id=${this.state.deviceId}`);
    this.sock = sock;
    sock.onopen = () => { this._backoff = 500; this.emit("connection", "open"); };
    sock.onmessage = (ev) => {
      let frame;
      try { frame = JSON.parse(ev.data); } catch (err) { return; }
      this._frame(frame);
    };
    sock.onclose = () => {
      if (this.sock === sock) this.sock = null;
      this.emit("connection", "closed");
      if (!this._closed) setTimeout(() => this.connect(), this._backoff);
      this._backoff = Math.min(this._backoff * 2, 10000);
    };
  }

  close() {
    this._closed = true;
    if (this.sock) this.sock.close();
  }

  sendFrame(frame) {
    if (this.sock && this.sock.readyState === WebSocket.OPEN) {
      this.sock.send(JSON.stringify(frame));
      return true;
    }
    return false;
  }

  _frame(frame) {
    switch (frame.type) {
      case "message":
        this.locked(() => this._message(frame)).catch((err) => this.emit("error", String(err)));
        break;
      case "receipt":
        this.locked(() => this._receipt(frame));
        break;
      case "typing":
        this.emit("typing", frame);
        break;
      case "presence":
        this.presence.set(frame.user, frame);
        this.emit("presence", frame);
        break;
      case "conversation":
        this.conversations.set(frame.id, frame);
        this.refreshPresence();
        this.emit("conversations", null);
        break;
      case "prekeys_low":
        this.locked(async () => { await this.call("PUT", "/api/keys", await this.state.upload(PREKEYS)); await this.save(); });
        break;
      case "call.started":
        this.emit("call", frame);
        break;
      case "synced":
        this.emit("synced", frame);
        break;
      case "error":
        this.emit("error", `${frame.error || ""} ${frame.message || ""}`);
        break;
      default:
        break;
    }
  }

  async _message(frame) {
    if (!this.state.markSeen(frame.id)) {  // a redelivery after a lost ack
      await this.save();
      this.sendFrame({ type: "ack", ids: [frame.id] });
      return;
    }
    let text = frame.body === undefined ? null : frame.body;
    let error = null;
    let attachments = [];
    if (frame.encrypted) {
      try {
        const plain = JSON.parse(fromUtf8(await this.state.decrypt(frame.from, frame.from_device, frame.envelope)));
        text = typeof plain.body === "string" ? plain.body : "";
        if (Array.isArray(plain.attachments)) attachments = plain.attachments.slice(0, 32).map(parsePointer).filter(Boolean);
      } catch (err) {
        text = null;
        error = err instanceof DecryptError ? err.message : String(err.message || err);
      }
    }
    const changes = this.state.identityChanges();
    for (const [user, device] of this.state.sessionsToRestart()) {
      try {
        for (const bundle of await this.bundles(user, device)) await this.state.startSession(user, bundle);
      } catch (err) { /* retried with the next message */ }
    }
    if (!this.conversations.has(frame.conversation)) {
      try { await this.conversation(frame.conversation); } catch (err) { /* shown under its id */ }
    }
    const mine = frame.from === this.user;
    const message = { key: `m${frame.id}`, id: frame.id, conversation: frame.conversation, from: frame.from,
                      from_device: frame.from_device, timestamp: frame.timestamp, text, error, mine, attachments,
                      receipts: { delivered: [], read: [] }, read: mine, order: 0 };
    const notices = this._noticeRecords(frame.conversation, frame.id, changes);
    message.order = ++this._order;
    for (const m of [...notices, message]) this._count(m);
    for (const n of notices) this.emit("message", n);
    this.emit("message", message);  // shown at once; acknowledged only once saved (a crash before that replays it)
    await this.save();
    await this.store.putMessages([...notices, message]);
    this.sendFrame({ type: "ack", ids: [frame.id] });
  }

  _noticeRecords(conversation, id, changes) {
    return changes.map((c, i) => ({
      key: `n${id}.${i}`, id: null, conversation, from: c.user, notice:
        `Safety number with ${c.user} device ${c.device_id} changed (re-installed or a new key: verify it) — was ${c.old}, now ${c.new}`,
      text: null, mine: false, read: true, order: ++this._order }));
  }

  async _notices(conversation, id, changes) {
    const notices = this._noticeRecords(conversation, id, changes);
    if (!notices.length) return;
    await this.store.putMessages(notices);
    for (const n of notices) this.emit("message", n);
  }

  async _receipt(frame) {
    const changed = [];
    for (const id of frame.ids) {
      const m = await this.store.getMessage(`m${id}`);
      if (!m || !m.mine || m.from !== this.user) continue;
      const list = m.receipts[frame.kind] || (m.receipts[frame.kind] = []);
      if (!list.includes(frame.user)) list.push(frame.user);
      changed.push(m);
    }
    if (changed.length) {
      await this.store.putMessages(changed);
      for (const m of changed) this.emit("receipt", m);
    }
  }

  // -- the rest ------------------------------------------------------------------------------------
  async history(conversation) {
    return this.store.messages(conversation);
  }

  /** Per conversation: unread messages and the order of the latest one (for sorting the list). */
  async activity() {
    return { unread: this._unread, latest: this._latest };
  }

  _count(m) {
    if (!m.read && !m.mine && !m.notice) this._unread.set(m.conversation, (this._unread.get(m.conversation) || 0) + 1);
    this._latest.set(m.conversation, Math.max(this._latest.get(m.conversation) || 0, m.order || 0));
  }

  /** Mark messages read here and tell their senders (read receipts). */
  async markRead(conversation) {
    return this.locked(async () => {
      if (!this._unread.get(conversation)) return;
      this._unread.set(conversation, 0);
      const unread = (await this.store.messages(conversation)).filter((m) => !m.read && !m.mine);
      if (!unread.length) return;
      for (const m of unread) m.read = true;
      await this.store.putMessages(unread);
      const ids = unread.filter((m) => m.id && m.from !== this.user).map((m) => m.id);
      if (ids.length) this.sendFrame({ type: "receipt", kind: "read", conversation, ids });
    });
  }

  typing(conversation, started) {
    this.sendFrame({ type: "typing", conversation, state: started ? "started" : "stopped" });
  }

  startCall(conversation) {
    return this.sendFrame({ type: "call.start", conversation, ref: `call-${Date.now()}` });
  }

  /** Safety numbers of every device of the conversation's other members we have a session with. */
  async safetyNumbers(conversation) {
    const conv = await this.conversation(conversation);
    const out = [];
    for (const user of conv.members) {
      for (const device of this.state.devices.get(user) || []) {
        const number = await this.state.safetyNumber(user, device);
        if (number) out.push({ user, device, number });
      }
    }
    return out;
  }
}
