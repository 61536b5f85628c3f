// Webmail: folders with unread counts, a paged message list, a reader whose HTML was sanitised
// by the server and is shown in a sandboxed frame (no script, remote images only on request),
// conversations (the server's THREAD=REFERENCES), compose / reply / forward (views/mailcompose.js:
// drafts, address completion, OpenPGP), flag, read, move (also by dragging a message onto a
// folder), archive, delete, search; new mail arrives over /ws/mail.
import {h, bytes} from "../dom.js";
import {openCompose as composeForm} from "./mailcompose.js";

const PAGE = 50;
const NAMES = {INBOX: "Inbox"};
const REMOTE_IMG = /<img\b[^>]*\bsrc\s*=\s*["']?\s*(?:https?:)?\/\//i;

function label(box) { return NAMES[box.name] || box.name; }

function when(iso) {
  if (!iso) return "";
  const d = new Date(iso);
  const today = new Date();
  return d.toDateString() === today.toDateString()
    ? d.toLocaleTimeString([], {hour: "2-digit", minute: "2-digit"})
    : d.toLocaleDateString([], {day: "numeric", month: "short", year: d.getFullYear() === today.getFullYear() ? undefined : "numeric"});
}

// A header as the server decoded it (display names included), as text.
function header(message, name) {
  const found = (message.headers || []).find(([key]) => key.toLowerCase() === name.toLowerCase());
  return found ? found[1] : "";
}

function sender(list) { return (list && list.length) ? list.join(", ") : "(unknown sender)"; }

export async function mount(root, ctx) {
  const state = {box: "INBOX", boxes: [], items: [], cursor: null, q: "", open: null, loading: false};
  const folders = h("ul", {class: "folders"});
  const list = h("ul", {class: "messages", "aria-label": "Messages"});
  const more = h("button", {type: "button", class: "ghost more", hidden: true}, "Load more");
  const status = h("p", {class: "status", role: "status"});
  const reader = h("section", {class: "reader", "aria-label": "Message"});
  const search = h("input", {type: "search", id: "mail-search", name: "q", placeholder: "Search mail"});
  const searchForm = h("form", {role: "search", class: "search"},
    h("label", {for: "mail-search", class: "sr-only"}, "Search mail"), search,
    h("button", {type: "submit", class: "ghost"}, "Search"));
  const compose = h("button", {type: "button", class: "primary"}, "New message");
  const layout = h("div", {class: "mail", "data-pane": "list"},
    h("nav", {class: "side", "aria-label": "Folders"}, compose, folders),
    h("section", {class: "listpane", "aria-label": "Message list"}, searchForm, status, list, more),
    reader);
  root.replaceChildren(layout);
  reader.append(h("p", {class: "empty"}, "Select a message to read it."));

  const show = (pane) => { layout.dataset.pane = pane; };

  async function json(path, init) {
    const response = await ctx.api(path, init);
    if (!response.ok) {
      const body = await response.json().catch(() => ({}));
      throw new Error(body.message || `request failed (${response.status})`);
    }
    return response.status === 204 ? null : response.json();
  }

  function send(path, method, body) {
    return json(path, {method, headers: {"Content-Type": "application/json"}, body: JSON.stringify(body)});
  }

  // -- folders ----------------------------------------------------------------------------------
  async function loadFolders() {
    state.boxes = (await json("/api/mailboxes")).items;
    folders.replaceChildren(...state.boxes.map((box) => {
      const count = box.unread ? h("span", {class: "count", "aria-hidden": "true"}, String(box.unread)) : null;
      const button = h("button", {type: "button", class: "folder",
        "aria-label": box.unread ? `${label(box)}, ${box.unread} unread` : label(box),
        "aria-current": box.name === state.box ? "true" : null}, h("span", {}, label(box)), count);
      button.addEventListener("click", () => { state.box = box.name; state.q = ""; search.value = "";
        loadFolders(); loadList(); show("list"); });
      dropTarget(button, box);
      return h("li", {}, button);
    }));
  }

  // drag a message onto a folder to move it there (the "Move to" menu is the keyboard's way)
  const DRAG = "application/x-tau-message";
  function dropTarget(button, box) {
    const ours = (event) => event.dataTransfer.types.includes(DRAG) && box.name !== state.box;
    button.addEventListener("dragover", (event) => {
      if (!ours(event)) return;
      event.preventDefault();
      event.dataTransfer.dropEffect = "move";
      button.classList.add("drop");
    });
    button.addEventListener("dragleave", () => button.classList.remove("drop"));
    button.addEventListener("drop", async (event) => {
      button.classList.remove("drop");
      const id = event.dataTransfer.getData(DRAG);
      if (!ours(event) || !id) return;
      event.preventDefault();
      try {
        await send(`/api/emails/${id}`, "PATCH", {mailbox: box.name});
      } catch (e) {
        status.textContent = e.message;
        return;
      }
      if (state.open && state.open.id === id) { dropOpen(`Moved to ${label(box)}.`); return; }
      state.items = state.items.filter((item) => item.id !== id);
      renderList();
      status.textContent = `Moved to ${label(box)}.`;
      loadFolders();
    });
  }

  // -- list -------------------------------------------------------------------------------------
  function row(item) {
    const button = h("button", {type: "button", class: "row" + (item.read ? "" : " unread"),
      "aria-current": state.open && state.open.id === item.id ? "true" : null},
      h("span", {class: "from"}, sender(item.from)),
      h("span", {class: "date"}, when(item.date)),
      h("span", {class: "subject"}, (item.starred ? "★ " : "") + (item.subject || "(no subject)")),
      h("span", {class: "preview"}, item.preview || ""));
    button.addEventListener("click", () => openMessage(item.id));
    button.draggable = true;
    button.addEventListener("dragstart", (event) => {
      event.dataTransfer.setData(DRAG, item.id);
      event.dataTransfer.effectAllowed = "move";
    });
    return h("li", {"data-id": item.id}, button);
  }

  function renderList() {
    list.replaceChildren(...state.items.map(row));
    more.hidden = !state.cursor;
    status.textContent = state.items.length ? "" : (state.q ? "No messages match." : "No messages here.");
  }

  async function loadList(append = false) {
    if (state.loading && append) return;
    state.loading = true;
    const params = new URLSearchParams({mailbox: state.box, limit: String(PAGE)});
    if (state.q) params.set("q", state.q);
    if (append && state.cursor) params.set("cursor", state.cursor);
    try {
      const page = await json("/api/emails?" + params);
      state.items = append ? state.items.concat(page.items) : page.items;
      state.cursor = page.next_cursor;
      renderList();
    } catch (e) {
      status.textContent = e.message;
    } finally {
      state.loading = false;
    }
  }

  more.addEventListener("click", () => loadList(true));
  // keyboard: arrows move between messages, Escape leaves the reader (phone layout)
  list.addEventListener("keydown", (event) => {
    if (event.key !== "ArrowDown" && event.key !== "ArrowUp") return;
    const rows = [...list.querySelectorAll("button.row")];
    const at = rows.indexOf(document.activeElement);
    const next = rows[at + (event.key === "ArrowDown" ? 1 : -1)];
    if (next) { event.preventDefault(); next.focus(); }
  });
  reader.addEventListener("keydown", (event) => {
    if (event.key === "Escape" && layout.dataset.pane === "read") {
      show("list");
      const row = state.open && list.querySelector(`li[data-id="${CSS.escape(state.open.id)}"] button`);
      if (row) row.focus();
    }
  });
  list.parentElement.addEventListener("scroll", (event) => {
    const el = event.currentTarget;
    if (state.cursor && el.scrollTop + el.clientHeight > el.scrollHeight - 400) loadList(true);
  });
  searchForm.addEventListener("submit", (event) => {
    event.preventDefault();
    state.q = search.value.trim();
    loadList();
  });

  function patchItem(updated) {
    state.items = state.items.map((item) => item.id === updated.id ? {...item, ...updated} : item);
    renderList();
  }

  // -- reader -----------------------------------------------------------------------------------
  function moveSelect(message) {
    const select = h("select", {id: "move-to"}, h("option", {value: ""}, "Move to…"),
      ...state.boxes.filter((b) => b.name !== message.mailbox).map((b) => h("option", {value: b.name}, label(b))));
    select.addEventListener("change", async () => {
      if (!select.value) return;
      await send(`/api/emails/${message.id}`, "PATCH", {mailbox: select.value});
      dropOpen(`Moved to ${select.value}.`);
    });
    return [h("label", {for: "move-to", class: "sr-only"}, "Move to folder"), select];
  }

  function archiveButton(message) {
    const archive = state.boxes.find((b) => b.special_use === "\\Archive");
    if (!archive || archive.name === message.mailbox) return null;
    return h("button", {type: "button", onclick: async () => {
      await send(`/api/emails/${message.id}`, "PATCH", {mailbox: archive.name});
      dropOpen("Archived.");
    }}, "Archive");
  }

  function readToggle(id) {
    let read = true;  // opening a message reads it
    const button = h("button", {type: "button"}, "Mark unread");
    button.addEventListener("click", async () => {
      patchItem(await send(`/api/emails/${id}`, "PATCH", {read: !read}));
      read = !read;
      button.textContent = read ? "Mark unread" : "Mark read";
      loadFolders();
    });
    return button;
  }

  function dropOpen(note) {
    const id = state.open && state.open.id;
    state.items = state.items.filter((item) => item.id !== id);
    state.open = null;
    renderList();
    reader.replaceChildren(h("p", {class: "empty", role: "status"}, note));
    show("list");
    loadFolders();
  }

  function bodyFrame(message, images) {
    return h("iframe", {class: "body", title: "Message body", sandbox: "allow-popups allow-popups-to-escape-sandbox",
      referrerpolicy: "no-referrer", src: `/api/web/emails/${message.id}/body${images ? "?images=1" : ""}`});
  }

  async function openMessage(id) {
    if (closeCompose) { closeCompose(); closeCompose = null; }  // a compose left half-written stays a draft
    reader.replaceChildren(h("p", {class: "empty", role: "status"}, "Loading…"));
    show("read");
    let message, thread;
    try {
      [message, thread] = await Promise.all([json(`/api/emails/${id}`),
        json(`/api/emails?thread=${encodeURIComponent(id)}`).then((r) => r.items, () => [])]);
    } catch (e) {
      reader.replaceChildren(h("p", {class: "error", role: "alert"}, e.message));
      return;
    }
    if ((message.flags || []).includes("\\Draft") && isDrafts(message.mailbox)) {
      state.open = null;
      renderList();
      closeCompose = composeForm(composeEnv, {to: (message.to || []).join(", "), cc: (message.cc || []).join(", "),
        bcc: header(message, "Bcc"), subject: message.subject || "", text: message.text || "", draftId: id,
        in_reply_to: (header(message, "In-Reply-To").match(/<[^<>\s]+>/) || [])[0],
        references: header(message, "References").match(/<[^<>\s]+>/g) || []});
      return;
    }
    state.open = message;
    if (!message.read) {
      send(`/api/emails/${id}`, "PATCH", {read: true}).then((u) => { patchItem(u); loadFolders(); }, () => {});
    }
    renderList();
    const starred = message.starred;
    const actions = h("div", {class: "actions", role: "toolbar", "aria-label": "Message actions"},
      h("button", {type: "button", class: "ghost back", onclick: () => show("list")}, "Back"),
      h("button", {type: "button", onclick: () => openCompose(reply(message, false))}, "Reply"),
      h("button", {type: "button", onclick: () => openCompose(reply(message, true))}, "Reply all"),
      h("button", {type: "button", onclick: () => openCompose(forward(message))}, "Forward"),
      h("button", {type: "button", "aria-pressed": String(starred), onclick: async () => {
        patchItem(await send(`/api/emails/${id}`, "PATCH", {starred: !starred})); openMessage(id);
      }}, starred ? "Unflag" : "Flag"),
      readToggle(id),
      archiveButton(message),
      ...moveSelect(message),
      h("button", {type: "button", class: "danger", onclick: async () => {
        await json(`/api/emails/${id}`, {method: "DELETE"}); dropOpen("Message deleted.");
      }}, "Delete"));
    const meta = h("dl", {class: "meta"},
      h("dt", {}, "From"), h("dd", {}, header(message, "From") || sender(message.from)),
      h("dt", {}, "To"), h("dd", {}, (message.to || []).join(", ")),
      message.cc && message.cc.length ? [h("dt", {}, "Cc"), h("dd", {}, message.cc.join(", "))] : null,
      h("dt", {}, "Date"), h("dd", {}, message.date ? new Date(message.date).toLocaleString() : ""));
    const content = h("div", {class: "content"});
    if (message.html) {
      content.append(bodyFrame(message, false));
      if (REMOTE_IMG.test(message.html)) {
        const allow = h("button", {type: "button", class: "ghost"}, "Show remote images");
        const notice = h("p", {class: "notice"}, "Remote images are blocked to protect your privacy. ", allow);
        allow.addEventListener("click", () => { notice.remove(); content.replaceChildren(bodyFrame(message, true)); });
        content.prepend(notice);
      }
    } else {
      content.append(h("pre", {class: "text"}, message.text || ""));
    }
    const files = (message.attachments || []).filter((a) => a.filename || a.content_type !== "text/plain");
    const attachments = files.length ? h("section", {class: "attachments", "aria-label": "Attachments"},
      h("h3", {}, "Attachments"),
      h("ul", {}, files.map((a) => h("li", {}, h("a", {href: `/api/emails/${id}/attachments/${a.part}`, download: a.filename || ""},
        a.filename || `attachment ${a.part}`), ` ${bytes(a.size)} `, saveButton(id, a))))) : null;
    const single = [meta, attachments, content].filter(Boolean);
    reader.replaceChildren(actions, h("h2", {class: "subject"}, message.subject || "(no subject)"),
      ...(thread.length > 1 ? [conversation(thread, id, single)] : single));
    reader.querySelector("h2").focus?.();
  }

  // A conversation: every message of the thread in order, the open one in full, the others as
  // their sender, date and first lines (a click opens one).
  function conversation(items, id, single) {
    return h("ol", {class: "thread", "aria-label": `Conversation, ${items.length} messages`}, items.map((item) =>
      item.id === id ? h("li", {class: "current", "aria-current": "true"}, single)
        : h("li", {}, h("button", {type: "button", class: "row peek", onclick: () => openMessage(item.id),
          "aria-label": `Open message from ${sender(item.from)}, ${when(item.date)}`},
          h("span", {class: "from"}, sender(item.from)), h("span", {class: "date"}, when(item.date)),
          h("span", {class: "preview"}, item.preview || "")))));
  }

  // "Save to Files": the server copies the attachment into /Mail attachments/ (tau.flows.mail_cloud)
  function saveButton(id, attachment) {
    const name = attachment.filename || `attachment ${attachment.part}`;
    const button = h("button", {type: "button", class: "ghost", "aria-label": `Save ${name} to Files`}, "Save to Files");
    button.addEventListener("click", async () => {
      button.disabled = true;
      try {
        const saved = await send(`/api/emails/${id}/attachments/${attachment.part}/save`, "POST", {});
        button.replaceWith(h("span", {role: "status"}, `Saved to ${saved.path}`));
      } catch (e) {
        button.replaceWith(h("span", {role: "alert", class: "error"}, e.message));
      }
    });
    return button;
  }

  function quote(message) {
    const text = message.text || "";
    return `\n\nOn ${message.date || ""}, ${sender(message.from)} wrote:\n` +
      text.split("\n").map((line) => "> " + line).join("\n");
  }

  function reply(message, all) {
    const own = ctx.user.email.toLowerCase();
    const bare = (a) => (a.match(/<([^>]+)>/) || [null, a])[1].trim().toLowerCase();
    const to = message.from || [];
    const cc = all ? [...(message.to || []), ...(message.cc || [])].filter((a) => bare(a) !== own) : [];
    const subject = /^re:/i.test(message.subject || "") ? message.subject : `Re: ${message.subject || ""}`;
    return {to: to.join(", "), cc: cc.join(", "), subject, text: quote(message), ...parentsOf(message)};
  }

  // In-Reply-To and References of a reply to ``message`` (RFC 5322 §3.6.4; the last 20 ancestors)
  function parentsOf(message) {
    const id = message.message_id;
    if (!id || !/^<[^<>\s]+>$/.test(id)) return {};
    const refs = (header(message, "References") || header(message, "In-Reply-To")).match(/<[^<>\s]+>/g) || [];
    return {in_reply_to: id, references: [...refs.filter((r) => r !== id), id].slice(-20)};
  }

  function forward(message) {
    const subject = /^fwd?:/i.test(message.subject || "") ? message.subject : `Fwd: ${message.subject || ""}`;
    return {to: "", cc: "", subject, text: `\n\n---------- Forwarded message ----------\nFrom: ${sender(message.from)}\n` +
      `Date: ${message.date || ""}\nSubject: ${message.subject || ""}\n\n${message.text || ""}`};
  }

  // -- compose (views/mailcompose.js) ------------------------------------------------------------
  let closeCompose = null;
  const isDrafts = (name) => (state.boxes.find((b) => b.name === name) || {}).special_use === "\\Drafts";
  const composeEnv = {ctx, json, send, reader, show, done(note) {
    closeCompose = null;
    reader.replaceChildren(note ? h("p", {class: "empty", role: "status"}, note) : "");
    show("list");
    loadFolders();
    if (isDrafts(state.box)) loadList();
  }};
  function openCompose(prefill) {
    if (closeCompose) closeCompose();
    state.open = null;
    closeCompose = composeForm(composeEnv, prefill);
  }
  compose.addEventListener("click", () => openCompose());

  // -- live updates -----------------------------------------------------------------------------
  let sock = null, closed = false, timer = null, retry = 1000;
  function refreshSoon() {
    clearTimeout(timer);
    timer = setTimeout(async () => {
      await loadFolders();
      if (!state.q && state.items.length <= PAGE) await loadList();  // paged further: keep the place
    }, 250);
  }
  function connect() {
    if (closed) return;
    sock = ctx.socket("/ws/mail");
    sock.onopen = () => { retry = 1000; };
    sock.onmessage = (event) => {
      const frame = JSON.parse(event.data);
      if (frame.type === "mailbox") refreshSoon();
    };
    sock.onclose = () => { if (!closed) { setTimeout(connect, retry); retry = Math.min(retry * 2, 60000); } };
  }
  const poll = setInterval(refreshSoon, 120000);  // belt and braces behind the socket

  await Promise.all([loadFolders(), loadList()]);
  connect();
  return () => { closed = true; clearInterval(poll); clearTimeout(timer); if (sock) sock.close(); };
}
