// X3DH with tau's choices (tau/client/x3dh.py): X25519, SHA-256, info "tau X3DH", Ed25519 identity keys
// that take part in DH through the RFC 7748 birational map, the private scalar being the first half of
// SHA-512(seed) (what Ed25519 itself uses). Private keys live as non-extractable CryptoKeys.

import { b64d, b64e, concat, utf8 } from "./bytes.js";

const subtle = crypto.subtle;
const P = (1n << 255n) - 19n;
const ED_PKCS8 = Uint8Array.from([0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20]);
const X_PKCS8 = Uint8Array.from([0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x6e, 0x04, 0x22, 0x04, 0x20]);
export const INFO = utf8("tau X3DH");

export class X3DHError extends Error {}

function fromBase64url(text) {
  return b64d(text.replace(/-/g, "+").replace(/_/g, "/") + "=".repeat((4 - (text.length % 4)) % 4));
}

function leToBig(bytes) {
  let n = 0n;
  for (let i = bytes.length - 1; i >= 0; i--) n = (n << 8n) | BigInt(bytes[i]);
  return n;
}

function bigToLe(n) {
  const out = new Uint8Array(32);
  for (let i = 0; i < 32; i++) { out[i] = Number(n & 0xffn); n >>= 8n; }
  return out;
}

function powmod(b, e, m) {
  let r = 1n;
  b %= m;
  while (e > 0n) { if (e & 1n) r = (r * b) % m; b = (b * b) % m; e >>= 1n; }
  return r;
}

/** RFC 7748 section 4.1: Edwards y → Montgomery u. */
export function edToX(pub) {
  if (pub.length !== 32) throw new X3DHError("identity key must be 32 bytes");
  const y = leToBig(pub) & ((1n << 255n) - 1n);
  if (y >= P || y === 1n) throw new X3DHError("invalid identity key");
  const u = (((1n + y) % P) * powmod((1n - y + P) % P, P - 2n, P)) % P;
  return bigToLe(u);
}

/** A key pair for DH: non-extractable private CryptoKey plus raw public bytes. */
export async function generateX25519() {
  const pair = await subtle.generateKey({ name: "X25519" }, false, ["deriveBits"]);
  return { priv: pair.privateKey, pub: new Uint8Array(await subtle.exportKey("raw", pair.publicKey)) };
}

/** Import a raw X25519 private scalar (32 bytes) as a key pair; the raw bytes are not kept. */
export async function importX25519(raw) {
  const tmp = await subtle.importKey("pkcs8", concat(X_PKCS8, raw), { name: "X25519" }, true, ["deriveBits"]);
  const jwk = await subtle.exportKey("jwk", tmp);
  const priv = await subtle.importKey("pkcs8", concat(X_PKCS8, raw), { name: "X25519" }, false, ["deriveBits"]);
  return { priv, pub: fromBase64url(jwk.x) };
}

export async function dh(priv, pub) {
  let key;
  try {
    key = await subtle.importKey("raw", pub, { name: "X25519" }, true, []);
    return new Uint8Array(await subtle.deriveBits({ name: "X25519", public: key }, priv, 256));
  } catch (err) {
    throw new X3DHError("invalid public key");  // low-order points give an error, as in Python
  }
}

export async function hkdf(ikm, salt, info, length) {
  const key = await subtle.importKey("raw", ikm, "HKDF", false, ["deriveBits"]);
  return new Uint8Array(await subtle.deriveBits({ name: "HKDF", hash: "SHA-256", salt, info }, key, length * 8));
}

export async function kdf(material) {
  return hkdf(concat(new Uint8Array(32).fill(0xff), material), new Uint8Array(32), INFO, 32);
}

/** A device's long-term key: Ed25519 for signatures and its X25519 twin for DH, both non-extractable. */
export class IdentityKey {
  constructor(signing, dhKey, pub) {
    this.signing = signing;  // CryptoKey Ed25519 (private)
    this.dh = dhKey;         // CryptoKey X25519 (private)
    this.public = pub;       // Uint8Array(32), the Ed25519 public key
  }

  static async fromSeed(seed) {
    const tmp = await subtle.importKey("pkcs8", concat(ED_PKCS8, seed), { name: "Ed25519" }, true, ["sign"]);
    const pub = fromBase64url((await subtle.exportKey("jwk", tmp)).x);
    const signing = await subtle.importKey("pkcs8", concat(ED_PKCS8, seed), { name: "Ed25519" }, false, ["sign"]);
    const scalar = new Uint8Array(await subtle.digest("SHA-512", seed)).slice(0, 32);
    const twin = await subtle.importKey("pkcs8", concat(X_PKCS8, scalar), { name: "X25519" }, false, ["deriveBits"]);
    seed.fill(0);
    scalar.fill(0);
    return new IdentityKey(signing, twin, pub);
  }

  static async generate() {
    return IdentityKey.fromSeed(crypto.getRandomValues(new Uint8Array(32)));
  }

  async sign(data) {
    return new Uint8Array(await subtle.sign({ name: "Ed25519" }, this.signing, data));
  }

  toRecord() { return { signing: this.signing, dh: this.dh, public: this.public }; }
  static fromRecord(r) { return new IdentityKey(r.signing, r.dh, r.public); }
}

export async function verifyBundle(bundle) {
  let ok = false;
  try {
    const key = await subtle.importKey("raw", b64d(bundle.identity_key), { name: "Ed25519" }, false, ["verify"]);
    const spk = bundle.signed_prekey;
    ok = await subtle.verify({ name: "Ed25519" }, key, b64d(spk.signature), b64d(spk.public_key));
  } catch (err) {
    ok = false;
  }
  if (!ok) throw new X3DHError("signed prekey signature does not verify");
}

/** Alice's side: {sharedKey, associatedData, header, theirRatchetKey}. */
export async function initiate(identity, bundle, ephemeral = null) {
  await verifyBundle(bundle);
  const theirIk = b64d(bundle.identity_key);
  const spk = b64d(bundle.signed_prekey.public_key);
  const ek = ephemeral || await generateX25519();
  const parts = [await dh(identity.dh, spk), await dh(ek.priv, edToX(theirIk)), await dh(ek.priv, spk)];
  const header = { ik: b64e(identity.public), ek: b64e(ek.pub), spk: bundle.signed_prekey.key_id, opk: null };
  const opk = bundle.one_time_prekey;
  if (opk) {
    parts.push(await dh(ek.priv, b64d(opk.public_key)));
    header.opk = opk.key_id;
  }
  return { sharedKey: await kdf(concat(...parts)), associatedData: concat(identity.public, theirIk), header,
           theirRatchetKey: spk };
}

/** Bob's side: [SK, AD] from Alice's initial message header. */
export async function respond(identity, header, signedPrekey, oneTimePrekey) {
  const theirIk = b64d(header.ik);
  const ek = b64d(header.ek);
  const parts = [await dh(signedPrekey.priv, edToX(theirIk)), await dh(identity.dh, ek), await dh(signedPrekey.priv, ek)];
  if (header.opk !== null && header.opk !== undefined) {
    if (!oneTimePrekey) throw new X3DHError("unknown one-time prekey");
    parts.push(await dh(oneTimePrekey.priv, ek));
  }
  return [await kdf(concat(...parts)), concat(theirIk, identity.public)];
}
