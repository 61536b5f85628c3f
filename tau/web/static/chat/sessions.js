// Session records per peer device, the rules of tau/client/sessions.py (Signal's SessionRecord): current
// session first plus archived ones; a simultaneous initiation keeps the session started by the device
// whose "user|device" sorts first; identities are pinned on first use and changes are reported.

import { b64d, b64e } from "./bytes.js";
import { Ratchet } from "./ratchet.js";

export const ARCHIVED = 40;

export const peerKey = (user, device) => `${user}|${device}`;

/** Six groups of five digits from SHA-512 of an identity key (base64). */
export async function fingerprint(identityB64) {
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-512", b64d(identityB64)));
  const groups = [];
  for (let i = 0; i < 30; i += 5) {
    let n = 0;
    for (let j = 0; j < 5; j++) n = n * 256 + digest[i + j];
    groups.push(String(n % 100000).padStart(5, "0"));
  }
  return groups.join(" ");
}

/** Both fingerprints, the smaller first: the same number on both devices. */
export async function safetyNumber(myIdentity, theirIdentityB64) {
  const both = [await fingerprint(b64e(myIdentity)), await fingerprint(theirIdentityB64)];
  return both.sort().join(" ");
}

export class SessionStore {
  constructor(me) {
    this.me = me;
    this.records = new Map();     // peer key → [session], current first
    this.identities = new Map();  // peer key → pinned identity (base64)
    this.changes = [];
    this.retired = new Map();     // peer key → identities it had before
  }

  current(key) {
    const record = this.records.get(key);
    return record && record.length ? record[0] : null;
  }

  matchingEk(key, ek) {
    return (this.records.get(key) || []).find((s) => s.ek === ek) || null;
  }

  async pin(key, identity) {
    const old = this.identities.get(key);
    if ((this.retired.get(key) || []).includes(identity)) return false;
    if (old !== undefined && old !== identity) {
      const at = key.lastIndexOf("|");
      this.changes.push({ user: key.slice(0, at), device_id: Number(key.slice(at + 1)),
                          old: await fingerprint(old), new: await fingerprint(identity) });
      const retired = this.retired.get(key) || [];
      retired.push(old);
      this.retired.set(key, retired.slice(-ARCHIVED));
    }
    this.identities.set(key, identity);
    return true;
  }

  addInitiated(key, session) { this._insert(key, session, 0); }

  addReceived(key, session, currentIdentity = true) {
    const cur = this.current(key);
    const simultaneous = cur !== null && cur.mine && cur.pending !== null && cur.ik === session.ik;
    const archive = cur !== null && (!currentIdentity || (simultaneous && this.me < key));
    this._insert(key, session, archive ? 1 : 0);
  }

  promote(key, session) {
    if (session.ik !== null && session.ik !== undefined && session.ik !== this.identities.get(key)) return;
    const record = this.records.get(key);
    record.splice(record.indexOf(session), 1);
    record.unshift(session);
  }

  _insert(key, session, index) {
    const record = this.records.get(key) || [];
    record.splice(index, 0, session);
    record.length = Math.min(record.length, 1 + ARCHIVED);
    this.records.set(key, record);
  }

  popChanges() {
    const out = this.changes;
    this.changes = [];
    return out;
  }

  toRecord() {
    const records = {};
    for (const [k, v] of this.records) records[k] = v.map((s) => ({ ...s, ratchet: s.ratchet.toRecord() }));
    return { records, identities: Object.fromEntries(this.identities), changes: this.changes,
             retired: Object.fromEntries(this.retired) };
  }

  static fromRecord(me, d) {
    const store = new SessionStore(me);
    for (const [k, v] of Object.entries(d.records || {})) {
      store.records.set(k, v.map((s) => ({ ...s, ratchet: Ratchet.fromRecord(s.ratchet) })));
    }
    store.identities = new Map(Object.entries(d.identities || {}));
    store.changes = d.changes || [];
    store.retired = new Map(Object.entries(d.retired || {}));
    return store;
  }
}
