// One browser device's secrets and sessions, the same state machine as tau/client/device.py: identity,
// signed and one-time prekeys, a session record per peer device, the device lists to encrypt for,
// and the wire format {"v":1,"h":header,"c":ciphertext,"x"?:X3DH header} in base64 JSON.

import { b64d, b64e, fromUtf8, utf8 } from "./bytes.js";
import { Ratchet, RatchetError } from "./ratchet.js";
import { SessionStore, peerKey, safetyNumber } from "./sessions.js";
import { IdentityKey, X3DHError, generateX25519, initiate, respond } from "./x3dh.js";

export const SEEN = 5000;

export class DecryptError extends Error {}

export class DeviceState {
  constructor(user, deviceId, identity) {
    this.user = user;
    this.deviceId = deviceId || (crypto.getRandomValues(new Uint32Array(1))[0] % (2 ** 31 - 2)) + 1;
    this.identity = identity;
    this.signedPrekeys = new Map();  // key id → {priv, pub}
    this.spkId = 0;
    this.oneTime = new Map();
    this.nextOtk = 1;
    this.store = new SessionStore(peerKey(user, this.deviceId));
    this.devices = new Map();        // user → [device ids]
    this.registrations = new Map();  // peer key → registration id
    this.registrationId = 0;
    this.seen = [];
    this.restart = new Set();        // "user|device" whose messages found no session
  }

  static async create(user, deviceId = null) {
    return new DeviceState(user, deviceId, await IdentityKey.generate());
  }

  get me() { return peerKey(this.user, this.deviceId); }

  // -- keys to publish ---------------------------------------------------------------------------
  async rotateSignedPrekey() {
    this.spkId += 1;
    this.signedPrekeys.set(this.spkId, await generateX25519());
    const ids = [...this.signedPrekeys.keys()].sort((a, b) => a - b);
    for (const old of ids.slice(0, -2)) this.signedPrekeys.delete(old);
  }

  async newOneTimePrekeys(count) {
    const out = [];
    for (let i = 0; i < count; i++) {
      const id = this.nextOtk++;
      const pair = await generateX25519();
      this.oneTime.set(id, pair);
      out.push({ key_id: id, public_key: b64e(pair.pub) });
    }
    return out;
  }

  /** A PUT /api/keys body (creates the signed prekey the first time). */
  async upload(oneTime = 50) {
    if (!this.signedPrekeys.size) await this.rotateSignedPrekey();
    const spk = this.signedPrekeys.get(this.spkId).pub;
    return { device_id: this.deviceId, identity_key: b64e(this.identity.public),
             signed_prekey: { key_id: this.spkId, public_key: b64e(spk), signature: b64e(await this.identity.sign(spk)) },
             one_time_prekeys: await this.newOneTimePrekeys(oneTime) };
  }

  // -- sessions ----------------------------------------------------------------------------------
  hasSession(user, device) { return this.store.current(peerKey(user, device)) !== null; }

  learnDevice(user, device) {
    if (user === this.user && device === this.deviceId) return;
    const list = this.devices.get(user) || [];
    if (!list.includes(device)) list.push(device);
    this.devices.set(user, list);
  }

  async startSession(user, bundle) {
    const init = await initiate(this.identity, bundle);
    if (this.registrationId) init.header.rid = this.registrationId;
    const ratchet = await Ratchet.alice(init.sharedKey, init.theirRatchetKey);
    const key = peerKey(user, bundle.device_id);
    await this.store.pin(key, bundle.identity_key);
    this.store.addInitiated(key, { ratchet, ad: init.associatedData, pending: init.header, ek: init.header.ek,
                                   mine: true, ik: bundle.identity_key });
    this.registrations.set(key, bundle.registration_id || 0);
    this.learnDevice(user, bundle.device_id);
  }

  forget(user, device) {
    this.registrations.delete(peerKey(user, device));
    const list = this.devices.get(user) || [];
    if (list.includes(device)) list.splice(list.indexOf(device), 1);
  }

  /** One envelope per known device of members (ours included, this one excluded). */
  async envelopes(members, plaintext) {
    const out = [];
    for (const user of members) {
      for (const device of [...(this.devices.get(user) || [])]) {
        if ((user === this.user && device === this.deviceId) || !this.hasSession(user, device)) continue;
        const env = { user, device_id: device, ciphertext: await this.encrypt(user, device, plaintext) };
        const reg = this.registrations.get(peerKey(user, device));
        if (reg) env.registration_id = reg;
        out.push(env);
      }
    }
    return out;
  }

  /** Apply a device_mismatch answer; returns [user, device] pairs whose bundles to fetch. */
  repair(answer) {
    for (const item of answer.extra || []) this.forget(item.user, item.device_id);
    const fetch = (answer.stale || []).map((i) => [i.user, i.device_id]);
    for (const item of answer.missing || []) {
      if (this.hasSession(item.user, item.device_id)) this.learnDevice(item.user, item.device_id);
      else fetch.push([item.user, item.device_id]);
    }
    for (const [user, device] of fetch) this.forget(user, device);
    return fetch;
  }

  async encrypt(user, device, plaintext) {
    const session = this.store.current(peerKey(user, device));
    if (session === null) throw new Error(`no session with ${peerKey(user, device)}`);
    const [header, ciphertext] = await session.ratchet.encrypt(plaintext, session.ad);
    const wire = { v: 1, h: header, c: b64e(ciphertext) };
    if (session.pending !== null) wire.x = session.pending;
    return b64e(utf8(JSON.stringify(wire)));
  }

  async decrypt(user, device, envelope) {
    let header, ciphertext, prekey;
    try {
      const wire = JSON.parse(fromUtf8(b64d(envelope)));
      header = wire.h;
      ciphertext = b64d(wire.c);
      prekey = wire.x === undefined ? null : wire.x;
      if (!header || typeof header !== "object" || (prekey !== null && (typeof prekey !== "object" || Array.isArray(prekey)))) {
        throw new TypeError("x");
      }
    } catch (err) {
      throw new DecryptError("malformed envelope");
    }
    const key = peerKey(user, device);
    if (prekey !== null) {
      const session = this.store.matchingEk(key, prekey.ek);
      let plaintext;
      if (session === null) plaintext = await this._acceptPrekeyMessage(key, prekey, header, ciphertext);
      else plaintext = await this._with(session, header, ciphertext, "prekey message does not decrypt");
      this.learnDevice(user, device);
      return plaintext;
    }
    for (const session of [...(this.store.records.get(key) || [])]) {
      let plain;
      try {
        plain = await session.ratchet.decrypt(header, ciphertext, session.ad);
      } catch (err) {
        if (err instanceof RatchetError) continue;
        throw err;
      }
      session.pending = null;  // the peer has this session: plain messages on it from now on
      this.store.promote(key, session);
      this.learnDevice(user, device);
      return plain;
    }
    if (!(this.store.records.get(key) || []).length) {
      this.restart.add(key);
      throw new DecryptError("no session with this device (its first message was lost or it was re-installed)");
    }
    throw new DecryptError("no session state decrypts this message (replay, or a session older than the archive)");
  }

  async _with(session, header, ciphertext, reason) {
    try {
      return await session.ratchet.decrypt(header, ciphertext, session.ad);
    } catch (err) {
      throw new DecryptError(reason);
    }
  }

  async _acceptPrekeyMessage(key, header, rheader, ct) {
    const spk = this.signedPrekeys.get(header.spk);
    const opkId = header.opk === undefined ? null : header.opk;
    const opk = opkId !== null ? this.oneTime.get(opkId) : null;
    if (!spk || (opkId !== null && !opk)) throw new DecryptError("initial message names a prekey this device does not have");
    let ratchet, ad, plaintext;
    try {
      let sk;
      [sk, ad] = await respond(this.identity, header, spk, opk);
      ratchet = Ratchet.bob(sk, spk);
      plaintext = await ratchet.decrypt(rheader, ct, ad);
    } catch (err) {
      if (err instanceof X3DHError || err instanceof RatchetError || err instanceof TypeError) {
        throw new DecryptError("initial message does not decrypt");
      }
      throw err;
    }
    if (opkId !== null) this.oneTime.delete(opkId);  // consumed only after a successful decrypt
    const current = await this.store.pin(key, header.ik);
    if (current && Number.isInteger(header.rid) && header.rid > 0) this.registrations.set(key, header.rid);
    this.store.addReceived(key, { ratchet, ad, pending: null, ek: header.ek, mine: false, ik: header.ik }, current);
    return plaintext;
  }

  sessionsToRestart() {
    const out = [...this.restart].sort();
    this.restart = new Set();
    return out.map((k) => { const at = k.lastIndexOf("|"); return [k.slice(0, at), Number(k.slice(at + 1))]; })
      .filter(([u, d]) => !this.hasSession(u, d));
  }

  identityChanges() { return this.store.popChanges(); }

  async safetyNumber(user, device) {
    const identity = this.store.identities.get(peerKey(user, device));
    return identity === undefined ? null : safetyNumber(this.identity.public, identity);
  }

  markSeen(id) {
    if (this.seen.includes(id)) return false;
    this.seen.push(id);
    if (this.seen.length > SEEN) this.seen.splice(0, this.seen.length - SEEN);
    return true;
  }

  // -- persistence (IndexedDB structured clone; CryptoKeys stay non-extractable) ----------------
  toRecord() {
    return { user: this.user, deviceId: this.deviceId, identity: this.identity.toRecord(),
             signedPrekeys: [...this.signedPrekeys], spkId: this.spkId, oneTime: [...this.oneTime],
             nextOtk: this.nextOtk, sessions: this.store.toRecord(), devices: [...this.devices],
             registrations: [...this.registrations], registrationId: this.registrationId, seen: this.seen,
             restart: [...this.restart] };
  }

  static fromRecord(d) {
    const s = new DeviceState(d.user, d.deviceId, IdentityKey.fromRecord(d.identity));
    s.signedPrekeys = new Map(d.signedPrekeys);
    s.spkId = d.spkId;
    s.oneTime = new Map(d.oneTime);
    s.nextOtk = d.nextOtk;
    s.store = SessionStore.fromRecord(s.me, d.sessions);
    s.devices = new Map(d.devices);
    s.registrations = new Map(d.registrations);
    s.registrationId = d.registrationId;
    s.seen = d.seen;
    s.restart = new Set(d.restart);
    return s;
  }
}
