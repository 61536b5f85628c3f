// IndexedDB for one user's browser device: the device state (CryptoKeys stay non-extractable objects) and
// the decrypted history, which exists nowhere else (the server deletes ciphertext once acknowledged).

const VERSION = 1;

function request(req) {
  return new Promise((resolve, reject) => {
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error);
  });
}

export class ChatStore {
  constructor(db) { this.db = db; }

  static async open(user) {
    const req = indexedDB.open(`tau-chat:${user}`, VERSION);
    req.onupgradeneeded = () => {
      const db = req.result;
      db.createObjectStore("device");
      const messages = db.createObjectStore("messages", { keyPath: "key" });
      messages.createIndex("conversation", ["conversation", "order"]);
    };
    return new ChatStore(await request(req));
  }

  async _tx(store, mode, fn) {
    const tx = this.db.transaction(store, mode);
    const out = fn(tx.objectStore(store));
    await new Promise((resolve, reject) => {
      tx.oncomplete = resolve;
      tx.onerror = () => reject(tx.error);
      tx.onabort = () => reject(tx.error);
    });
    return out instanceof IDBRequest ? out.result : out;
  }

  loadDevice() { return this._tx("device", "readonly", (s) => s.get("state")); }
  saveDevice(record) { return this._tx("device", "readwrite", (s) => s.put(record, "state")); }

  putMessages(items) {
    return this._tx("messages", "readwrite", (s) => { for (const m of items) s.put(m); });
  }

  getMessage(key) { return this._tx("messages", "readonly", (s) => s.get(key)); }

  messages(conversation) {
    const range = IDBKeyRange.bound([conversation, -Infinity], [conversation, Infinity]);
    return this._tx("messages", "readonly", (s) => s.index("conversation").getAll(range));
  }

  all() { return this._tx("messages", "readonly", (s) => s.getAll()); }
}
