// The Double Ratchet exactly as tau/client/ratchet.py: KDF_RK = HKDF-SHA256 (salt = root key, info
// "tau ratchet root"), KDF_CK = HMAC-SHA256 with 0x01 (message key) / 0x02 (chain key), message keys
// expanded by HKDF into an AES-256-GCM key and nonce, AD || header as associated data. Decryption runs
// on a copy and commits only on success; skipped keys are kept (MAX_SKIP per chain) for reordering.

import { b64d, b64e, concat, u32be, utf8 } from "./bytes.js";
import { dh, generateX25519, hkdf } from "./x3dh.js";

const subtle = crypto.subtle;
export const MAX_SKIP = 1000;
export const MAX_STORED_SKIPPED = 2000;
const ROOT_INFO = utf8("tau ratchet root");
const MESSAGE_INFO = utf8("tau ratchet message");

export class RatchetError extends Error {}

export async function kdfRk(rk, dhOut) {
  const out = await hkdf(dhOut, rk, ROOT_INFO, 64);
  return [out.slice(0, 32), out.slice(32)];
}

async function hmac(key, byte) {
  const k = await subtle.importKey("raw", key, { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
  return new Uint8Array(await subtle.sign("HMAC", k, Uint8Array.of(byte)));
}

export async function kdfCk(ck) {
  return [await hmac(ck, 0x02), await hmac(ck, 0x01)];
}

async function aead(mk) {
  const okm = await hkdf(mk, new Uint8Array(32), MESSAGE_INFO, 44);
  const key = await subtle.importKey("raw", okm.slice(0, 32), "AES-GCM", false, ["encrypt", "decrypt"]);
  return [key, okm.slice(32)];
}

export async function sealWith(mk, plaintext, aad) {
  const [key, iv] = await aead(mk);
  return new Uint8Array(await subtle.encrypt({ name: "AES-GCM", iv, additionalData: aad }, key, plaintext));
}

async function openWith(mk, ciphertext, aad) {
  const [key, iv] = await aead(mk);
  return new Uint8Array(await subtle.decrypt({ name: "AES-GCM", iv, additionalData: aad }, key, ciphertext));
}

export function headerBytes(header) {
  return concat(b64d(header.dh), u32be(header.pn), u32be(header.n));
}

export class Ratchet {
  constructor() {
    this.dhs = null;   // {priv: CryptoKey, pub: Uint8Array}
    this.dhr = null;   // Uint8Array | null
    this.rk = new Uint8Array(0);
    this.cks = null;
    this.ckr = null;
    this.ns = 0; this.nr = 0; this.pn = 0;
    this.skipped = new Map();  // "dh|n" → message key, oldest first
  }

  /** RatchetInitAlice: Bob's signed prekey is his first ratchet key. */
  static async alice(sk, bobRatchetKey, pair = null) {
    const r = new Ratchet();
    r.dhs = pair || await generateX25519();
    r.dhr = bobRatchetKey;
    [r.rk, r.cks] = await kdfRk(sk, await dh(r.dhs.priv, r.dhr));
    return r;
  }

  static bob(sk, bobRatchetPair) {
    const r = new Ratchet();
    r.dhs = bobRatchetPair;
    r.rk = sk;
    return r;
  }

  async encrypt(plaintext, ad) {
    if (this.cks === null) throw new RatchetError("no sending chain yet");
    const [cks, mk] = await kdfCk(this.cks);
    this.cks = cks;
    const header = { dh: b64e(this.dhs.pub), pn: this.pn, n: this.ns };
    this.ns += 1;
    return [header, await sealWith(mk, plaintext, concat(ad, headerBytes(header)))];
  }

  async decrypt(header, ciphertext, ad) {
    const trial = this.copy();
    let plaintext;
    try {
      plaintext = await trial._decrypt(header, ciphertext, ad);
    } catch (err) {
      throw new RatchetError("message does not decrypt");
    }
    Object.assign(this, trial);
    return plaintext;
  }

  async _decrypt(header, ciphertext, ad) {
    if (typeof header.dh !== "string" || !Number.isInteger(header.n) || !Number.isInteger(header.pn)) {
      throw new TypeError("header");
    }
    const id = `${header.dh}|${header.n}`;
    const aad = concat(ad, headerBytes(header));
    if (this.skipped.has(id)) {
      const mk = this.skipped.get(id);
      this.skipped.delete(id);
      return openWith(mk, ciphertext, aad);
    }
    const their = b64d(header.dh);
    if (this.dhr === null || b64e(their) !== b64e(this.dhr)) {
      await this._skip(header.pn);
      await this._dhRatchet(their);
    }
    await this._skip(header.n);
    const [ckr, mk] = await kdfCk(this.ckr);
    this.ckr = ckr;
    this.nr += 1;
    return openWith(mk, ciphertext, aad);
  }

  async _skip(until) {
    if (this.nr + MAX_SKIP < until) throw new RatchetError("too many skipped messages");
    if (this.ckr === null || this.dhr === null) return;
    while (this.nr < until) {
      const [ckr, mk] = await kdfCk(this.ckr);
      this.ckr = ckr;
      this.skipped.set(`${b64e(this.dhr)}|${this.nr}`, mk);
      this.nr += 1;
      while (this.skipped.size > MAX_STORED_SKIPPED) this.skipped.delete(this.skipped.keys().next().value);
    }
  }

  async _dhRatchet(their) {
    this.pn = this.ns; this.ns = 0; this.nr = 0;
    this.dhr = their;
    [this.rk, this.ckr] = await kdfRk(this.rk, await dh(this.dhs.priv, this.dhr));
    this.dhs = await generateX25519();
    [this.rk, this.cks] = await kdfRk(this.rk, await dh(this.dhs.priv, this.dhr));
  }

  copy() {
    const r = Object.assign(new Ratchet(), this);
    r.skipped = new Map(this.skipped);
    return r;
  }

  /** A structured-cloneable record for IndexedDB (the DH private key stays a CryptoKey). */
  toRecord() {
    return { dhs: this.dhs, dhr: this.dhr, rk: this.rk, cks: this.cks, ckr: this.ckr, ns: this.ns, nr: this.nr,
             pn: this.pn, skipped: [...this.skipped] };
  }

  static fromRecord(d) {
    const r = Object.assign(new Ratchet(), d);
    r.skipped = new Map(d.skipped);
    return r;
  }
}
