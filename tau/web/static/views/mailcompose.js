// Webmail compose: To/Cc/Bcc with address completion from the user's contacts (and the people
// they mailed: the "Collected" book), drafts saved to the Drafts mailbox (IMAP clients see them),
// OpenPGP "Encrypt"/"Sign" offered only when the keys to do so are known, and Send through
// POST /api/emails (which also removes the draft it continues).
import {h} from "../dom.js";

const AUTOSAVE_MS = 2000;
let uid = 0;

const split = (v) => v.split(/[,;]/).map((s) => s.trim()).filter(Boolean);
const bare = (a) => ((a.match(/<([^>]+)>/) || [null, a])[1] || "").trim().toLowerCase();

// env: {ctx, json, send, reader, show, done(note)}; prefill: {to, cc, bcc, subject, text, draftId,
// in_reply_to, references} (a reply names its parents, so it joins the conversation everywhere)
export function openCompose(env, prefill = {}) {
  const {reader, show} = env;
  const error = h("p", {class: "error", role: "alert"});
  const saved = h("span", {class: "hint", role: "status"});
  let draftId = prefill.draftId || null, dirty = false, timer = null, sent = false;
  let saving = Promise.resolve();  // saves run one after another: each replaces the one before

  const toField = addressField(env, "to", "To", prefill.to, true);
  const ccField = addressField(env, "cc", "Cc", prefill.cc);
  const bccField = addressField(env, "bcc", "Bcc", prefill.bcc);
  const crypto = cryptoToggles(env, () => [toField, ccField, bccField].flatMap((f) => split(f.input.value)));
  const body = h("textarea", {id: "c-body", name: "text", rows: "10"});
  body.value = prefill.text || "";
  const subject = h("input", {id: "c-subject", name: "subject", type: "text", value: prefill.subject || ""});
  const files = h("input", {id: "c-files", name: "files", type: "file", multiple: true});
  const saveButton = h("button", {type: "button", class: "ghost"}, "Save draft");
  const form = h("form", {class: "compose", "aria-label": "New message"},
    h("h2", {}, draftId ? "Draft" : "New message"),
    toField.row, ccField.row, bccField.row,
    h("div", {class: "field"}, h("label", {for: "c-subject"}, "Subject"), subject),
    h("div", {class: "field"}, h("label", {for: "c-body"}, "Message"), body),
    h("div", {class: "field"}, h("label", {for: "c-files"}, "Attachments"), files),
    crypto.row,
    h("div", {class: "actions"}, h("button", {type: "submit", class: "primary"}, "Send"), saveButton,
      h("button", {type: "button", class: "ghost", onclick: discard}, "Discard"), saved),
    error);
  subject.value = prefill.subject || "";

  const parents = {};
  if (prefill.in_reply_to) parents.in_reply_to = prefill.in_reply_to;
  if (prefill.references && prefill.references.length) parents.references = prefill.references;
  function fields() {
    return {to: toField.input.value, cc: ccField.input.value, bcc: bccField.input.value,
      subject: subject.value, text: body.value, ...parents};
  }

  // -- drafts -----------------------------------------------------------------------------------
  function saveDraft() {
    clearTimeout(timer);
    saving = saving.then(async () => {
      if (sent || (!dirty && draftId)) return;
      dirty = false;
      try {
        const result = draftId ? await env.send(`/api/emails/drafts/${draftId}`, "PUT", fields())
          : await env.send("/api/emails/drafts", "POST", fields());
        draftId = result.id;
        saved.textContent = `Draft saved at ${new Date().toLocaleTimeString([], {hour: "2-digit", minute: "2-digit"})}.`;
      } catch (e) {
        saved.textContent = "";
        error.textContent = `Draft not saved: ${e.message}`;
      }
    });
    return saving;
  }
  form.addEventListener("input", (event) => {
    if (event.target === files || event.target === document.getElementById("c-passphrase")) return;
    dirty = true;
    clearTimeout(timer);
    timer = setTimeout(saveDraft, AUTOSAVE_MS);
  });
  saveButton.addEventListener("click", () => { dirty = true; saveDraft(); });

  async function discard() {
    clearTimeout(timer);
    sent = true;
    await saving;
    if (draftId) await env.json(`/api/emails/${draftId}`, {method: "DELETE"}).catch(() => {});
    env.done(draftId ? "Draft discarded." : "");
  }

  // -- send -------------------------------------------------------------------------------------
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearTimeout(timer);
    sent = true;  // no draft is saved from here on
    await saving;
    const data = fields();
    const message = {to: split(data.to), cc: split(data.cc), bcc: split(data.bcc), subject: data.subject,
      text: data.text, ...parents, ...crypto.options()};
    if (draftId) message.draft_id = draftId;
    const button = form.querySelector("button[type=submit]");
    button.disabled = true;
    try {
      if (files.files.length) message.attachments = await Promise.all([...files.files].map(encode));
      await env.send("/api/emails", "POST", message);
      env.done("Message sent.");
    } catch (e) {
      sent = false;
      error.textContent = e.message;
      button.disabled = false;
    }
  });

  reader.replaceChildren(form);
  show("read");
  (prefill.to ? body : toField.input).focus();
  // leaving with unsaved changes: keep them as a draft
  return () => { if (dirty && !sent) saveDraft(); };
}

// -- address completion -------------------------------------------------------------------------
// A combobox (ARIA 1.2 pattern): typing offers matching people; ArrowUp/Down choose, Enter or a
// click completes the address being typed (the text after the last comma).
function addressField(env, name, text, value, required = false) {
  const id = "c-" + name, listId = `${id}-options-${++uid}`;
  const input = h("input", {id, name, type: "text", autocomplete: "off", role: "combobox",
    "aria-autocomplete": "list", "aria-expanded": "false", "aria-controls": listId, required});
  input.value = value || "";
  const options = h("ul", {id: listId, role: "listbox", class: "suggest", "aria-label": "Suggestions", hidden: true});
  let found = [], active = -1, asked = 0, timer = null;

  function close() { options.hidden = true; input.setAttribute("aria-expanded", "false"); input.removeAttribute("aria-activedescendant"); active = -1; }
  function render() {
    options.replaceChildren(...found.map((person, i) => {
      const option = h("li", {role: "option", id: `${listId}-${i}`, "aria-selected": String(i === active)}, person.label);
      option.addEventListener("mousedown", (event) => { event.preventDefault(); pick(i); });
      return option;
    }));
    options.hidden = !found.length;
    input.setAttribute("aria-expanded", String(Boolean(found.length)));
    if (active >= 0) input.setAttribute("aria-activedescendant", `${listId}-${active}`);
  }
  function pick(i) {
    const parts = input.value.split(/[,;]/);
    parts[parts.length - 1] = " " + found[i].label;
    input.value = parts.map((p) => p.trim()).filter(Boolean).join(", ") + ", ";
    found = [];
    close();
    input.focus();
    input.dispatchEvent(new Event("input", {bubbles: true}));
  }
  async function lookup() {
    const word = input.value.split(/[,;]/).pop().trim();
    const ticket = ++asked;
    if (word.length < 2) { found = []; close(); return; }
    const people = await suggestions(env, word).catch(() => []);
    if (ticket !== asked) return;
    const typed = new Set(split(input.value).map(bare));
    found = people.filter((p) => !typed.has(p.address)).slice(0, 8);
    active = found.length ? 0 : -1;
    render();
  }
  input.addEventListener("input", (event) => {
    if (!event.isTrusted) return;
    clearTimeout(timer);
    timer = setTimeout(lookup, 150);
  });
  input.addEventListener("keydown", (event) => {
    if (options.hidden) return;
    if (event.key === "ArrowDown" || event.key === "ArrowUp") {
      event.preventDefault();
      active = (active + (event.key === "ArrowDown" ? 1 : found.length - 1)) % found.length;
      render();
    } else if (event.key === "Enter" && active >= 0) {
      event.preventDefault();
      pick(active);
    } else if (event.key === "Escape") {
      event.stopPropagation();
      close();
    }
  });
  input.addEventListener("blur", () => setTimeout(close, 100));
  const row = h("div", {class: "field combo"}, h("label", {for: id}, text), input, options);
  return {row, input};
}

// People matching ``word`` in the user's contacts and in their collected addresses, one per address.
async function suggestions(env, word) {
  const q = encodeURIComponent(word);
  const books = await Promise.all(["contacts", "collected"].map((book) =>
    env.json(`/api/contacts?q=${q}&addressbook=${book}&limit=20`).then((r) => r.items, () => [])));
  const seen = new Set(), out = [];
  for (const contact of books.flat()) {
    for (const email of contact.emails || []) {
      const address = (email.value || "").trim().toLowerCase();
      if (!address || seen.has(address)) continue;
      seen.add(address);
      const name = (contact.name || "").replace(/[<>",;]/g, "").trim();
      out.push({address, label: name && name.toLowerCase() !== address ? `${name} <${address}>` : address});
    }
  }
  return out;
}

// -- OpenPGP --------------------------------------------------------------------------------------
// "Encrypt" needs a key for every recipient, "Sign" the user's own private key; the server says
// which it has (GET /api/keys/pgp/known). A toggle that cannot work is disabled and says why.
function cryptoToggles(env, recipients) {
  const make = (name, label) => {
    const id = `c-${name}`, why = `c-${name}-why`;
    const box = h("input", {type: "checkbox", id, name, disabled: true, "aria-describedby": why});
    const reason = h("small", {id: why, class: "hint"}, "Checking keys…");
    return {box, reason, row: h("div", {class: "toggle"}, box, h("label", {for: id}, label), " ", reason)};
  };
  const encrypt = make("encrypt", "Encrypt"), sign = make("sign", "Sign");
  const passphrase = h("input", {type: "password", id: "c-passphrase", name: "passphrase", autocomplete: "off"});
  const passRow = h("div", {class: "field", hidden: true}, h("label", {for: "c-passphrase"}, "Key passphrase"), passphrase);
  let asked = 0, timer = null;

  function set(toggle, ok, why) {
    toggle.box.disabled = !ok;
    if (!ok) toggle.box.checked = false;
    toggle.reason.textContent = ok ? "" : why;
  }
  async function check() {
    const wanted = recipients().map(bare).filter((a) => a.includes("@"));
    const ticket = ++asked;
    let known;
    try {
      known = await env.json(`/api/keys/pgp/known?addresses=${encodeURIComponent(wanted.join(","))}`);
    } catch (e) {
      set(encrypt, false, "Keys could not be checked."); set(sign, false, "Keys could not be checked.");
      return;
    }
    if (ticket !== asked) return;
    const missing = wanted.filter((a) => !known.addresses[a]);
    set(encrypt, wanted.length > 0 && !missing.length,
      !wanted.length ? "Add recipients to encrypt." : `No OpenPGP key for ${missing.join(", ")}.`);
    set(sign, known.sign, "Upload your OpenPGP private key to sign.");
    passRow.hidden = !sign.box.checked;
  }
  sign.box.addEventListener("change", () => { passRow.hidden = !sign.box.checked; });
  const row = h("fieldset", {class: "crypto"}, h("legend", {}, "OpenPGP"), encrypt.row, sign.row, passRow);
  const soon = () => { clearTimeout(timer); timer = setTimeout(check, 300); };
  queueMicrotask(() => { row.closest("form")?.addEventListener("input", (e) => { if (e.target.getAttribute("role") === "combobox") soon(); }); });
  check();
  return {
    row,
    options() {
      const out = {};
      if (encrypt.box.checked) out.encrypt = true;
      if (sign.box.checked) { out.sign = true; if (passphrase.value) out.passphrase = passphrase.value; }
      if (out.encrypt || out.sign) out.crypto = "pgp";
      return out;
    },
  };
}

function encode(file) {
  return new Promise((resolve, reject) => {
    const r = new FileReader();
    r.onload = () => resolve({filename: file.name, content_type: file.type || "application/octet-stream",
      content_base64: String(r.result).split(",", 2)[1] || ""});
    r.onerror = () => reject(r.error);
    r.readAsDataURL(file);
  });
}
