// Chat attachments the Signal way: a fresh random AES-256-GCM key per file; the server stores only
// iv || ciphertext || tag (an opaque blob bound to one conversation) and the key, the blob's SHA-256,
// the file name, size and type travel inside the end-to-end encrypted message as a pointer:
//   {type: "tau.attachment", id, key, digest, name, size, content_type}   (key, digest: base64)
// The same format is read by tau.client (tau/client/attachments.py).

import { b64d, b64e, concat, equal, random } from "./bytes.js";

export const POINTER = "tau.attachment";
const IV = 12;
const TYPE = /^[a-z0-9][a-z0-9!#$&^_.+-]{0,126}\/[a-z0-9][a-z0-9!#$&^_.+-]{0,126}$/i;

/** A file name safe to offer as a download name: no path, no control characters, not empty. */
export function safeName(name) {
  const clean = String(name || "").replace(/[\u0000-\u001f\u007f/\\]/g, "_").trim().slice(0, 255);
  return clean && clean !== "." && clean !== ".." ? clean : "attachment";
}

/** The pointer as received, or null when it is not a well-formed one (never trusted further). */
export function parsePointer(p) {
  if (!p || typeof p !== "object" || p.type !== POINTER || typeof p.id !== "string" || !/^[\w-]{1,64}$/.test(p.id)) return null;
  try {
    if (b64d(p.key).length !== 32 || b64d(p.digest).length !== 32) return null;
  } catch (err) { return null; }
  const size = Number.isSafeInteger(p.size) && p.size >= 0 ? p.size : null;
  const type = typeof p.content_type === "string" && TYPE.test(p.content_type) ? p.content_type : "application/octet-stream";
  return { type: POINTER, id: p.id, key: p.key, digest: p.digest, name: safeName(p.name), size, content_type: type };
}

/** Encrypt ``bytes``: the blob to upload and the pointer (without its server id). */
export async function seal(bytes, name, contentType) {
  const raw = random(32);
  const iv = random(IV);
  const key = await crypto.subtle.importKey("raw", raw, "AES-GCM", false, ["encrypt"]);
  const sealed = new Uint8Array(await crypto.subtle.encrypt({ name: "AES-GCM", iv }, key, bytes));
  const blob = concat(iv, sealed);
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", blob));
  return { blob, pointer: { type: POINTER, key: b64e(raw), digest: b64e(digest), name: safeName(name), size: bytes.length,
                            content_type: contentType && TYPE.test(contentType) ? contentType : "application/octet-stream" } };
}

export class AttachmentError extends Error {}

/** The plaintext of a downloaded blob: its digest checked first, then AES-GCM's tag. */
export async function open(pointer, blob) {
  const bytes = new Uint8Array(blob);
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
  if (!equal(digest, b64d(pointer.digest))) throw new AttachmentError("the file was changed on the server (digest mismatch)");
  if (bytes.length < IV + 16) throw new AttachmentError("the file is truncated");
  const key = await crypto.subtle.importKey("raw", b64d(pointer.key), "AES-GCM", false, ["decrypt"]);
  let plain;
  try {
    plain = new Uint8Array(await crypto.subtle.decrypt({ name: "AES-GCM", iv: bytes.subarray(0, IV) }, key, bytes.subarray(IV)));
  } catch (err) { throw new AttachmentError("the file does not decrypt"); }
  if (pointer.size !== null && plain.length !== pointer.size) throw new AttachmentError("the file has the wrong size");
  return plain;
}
