// Files view: browse the tree WebDAV serves, upload with progress (large files chunked and
// resumable), download, rename, move, delete to the trash, restore from it, versions, share links
// (password, expiry, uploads) and their management. Talks to /api/files, /api/trash, /api/uploads and
// /api/shares (tau/files/api.py, trashapi.py, uploadapi.py, shares.py).
import { h, json, all, ensureStyles, statusLine, formDialog, confirmDialog, formatSize } from './viewkit.js';
import { send } from './fileupload.js';

function joinPath(dir, name) { return `${dir === '/' ? '' : dir}/${name}`; }
const when = (iso) => (iso ? new Date(iso).toLocaleString(undefined, { dateStyle: 'medium', timeStyle: 'short' }) : '');

export async function mount(root, ctx) {
  ensureStyles();
  const state = { path: '/', items: [], shares: [], trash: null };
  const status = statusLine();
  const crumbs = h('ol', { class: 'tv-crumbs' });
  const tbody = h('tbody');
  const uploads = h('ul', { class: 'tv-plain tv-uploads', 'aria-label': 'Uploads' });
  const shareList = h('ul', { class: 'tv-plain' });
  const picker = h('input', { type: 'file', multiple: true, class: 'tv-visually-hidden', id: 'tv-upload-input', onchange: () => { upload([...picker.files]); picker.value = ''; } });
  const table = h('table', { class: 'tv-table' },
    h('caption', { class: 'tv-visually-hidden' }, 'Files'),
    h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Name'), h('th', { scope: 'col', class: 'tv-narrow-hide' }, 'Size'),
      h('th', { scope: 'col', class: 'tv-narrow-hide' }, 'Modified'), h('th', { scope: 'col' }, h('span', { class: 'tv-visually-hidden' }, 'Actions')))),
    tbody);
  const listArea = h('div', { class: 'tv-drop' }, table);

  const view = h('div', { class: 'tv-view tv-files', 'aria-busy': 'true' },
    h('div', { class: 'tv-toolbar', role: 'toolbar', 'aria-label': 'Files' },
      h('nav', { 'aria-label': 'Folder path' }, crumbs),
      h('label', { for: 'tv-upload-input', class: 'tv-button tv-primary' }, 'Upload files'), picker,
      h('button', { type: 'button', onclick: newFolder }, 'New folder'),
      h('button', { type: 'button', onclick: () => showTrash() }, 'Trash')),
    status, uploads,
    h('div', { class: 'tv-split tv-split-right' }, listArea,
      h('aside', { class: 'tv-side' }, h('section', { class: 'tv-panel', 'aria-labelledby': 'tv-shares-h' },
        h('h3', { id: 'tv-shares-h' }, 'Share links'), shareList))));
  root.replaceChildren(view);

  listArea.addEventListener('dragover', (ev) => { ev.preventDefault(); listArea.classList.add('tv-over'); });
  listArea.addEventListener('dragleave', () => listArea.classList.remove('tv-over'));
  listArea.addEventListener('drop', (ev) => { ev.preventDefault(); listArea.classList.remove('tv-over'); upload([...ev.dataTransfer.files]); });

  async function open(path, note = '') {
    state.path = path;
    state.trash = null;
    status.show('Loading…');
    view.setAttribute('aria-busy', 'true');
    try {
      state.items = await all(ctx, `/api/files?path=${encodeURIComponent(path)}&limit=1000`);
      status.show(note);
    } catch (err) {
      state.items = [];
      status.show(`Could not open ${path}: ${err.message}`, true);
    }
    render();
    view.setAttribute('aria-busy', 'false');
  }

  function render() {
    if (state.trash) { renderTrash(); return; }
    const parts = state.path.split('/').filter(Boolean);
    crumbs.replaceChildren(h('li', {}, h('button', { type: 'button', class: 'tv-link', onclick: () => open('/'), 'aria-current': parts.length ? null : 'location' }, 'Home')),
      ...parts.map((name, i) => {
        const target = `/${parts.slice(0, i + 1).join('/')}`;
        return h('li', {}, h('button', { type: 'button', class: 'tv-link', onclick: () => open(target), 'aria-current': i === parts.length - 1 ? 'location' : null }, name));
      }));
    const sorted = [...state.items].sort((a, b) => (a.type === b.type ? a.name.localeCompare(b.name) : a.type === 'folder' ? -1 : 1));
    if (!sorted.length) { tbody.replaceChildren(h('tr', {}, h('td', { colspan: '4', class: 'tv-muted' }, 'This folder is empty. Drop files here or use “Upload files”.'))); return; }
    tbody.replaceChildren(...sorted.map(row));
  }

  function row(item) {
    const folder = item.type === 'folder';
    const virtual = item.id === 'shared';
    const name = folder
      ? h('button', { type: 'button', class: 'tv-link tv-name tv-folder', onclick: () => open(item.path) }, item.name)
      : h('button', { type: 'button', class: 'tv-link tv-name tv-file', onclick: () => download(item), 'aria-label': `Download ${item.name}` }, item.name);
    const button = (label, fn, cls) => h('button', { type: 'button', class: cls, onclick: () => fn(item), 'aria-label': `${label} ${item.name}` }, label);
    const actions = virtual ? [] : [folder ? null : button('Download', download), button('Rename', rename), button('Move', moveTo),
      folder ? null : button('Versions', versions), button('Share', share), button('Delete', remove, 'tv-danger')];
    return h('tr', {},
      h('td', { class: 'tv-name-cell' }, name, h('small', { class: 'tv-narrow-only' }, folder ? 'Folder' : formatSize(item.size))),
      h('td', { class: 'tv-narrow-hide' }, folder ? '—' : formatSize(item.size)),
      h('td', { class: 'tv-narrow-hide' }, when(item.modified)),
      h('td', { class: 'tv-actions-cell' }, h('div', { class: 'tv-row-actions' }, actions)));
  }

  async function download(item) {
    status.show(`Downloading ${item.name}…`);
    try {
      const resp = await ctx.api(`/api/files/${item.id}`);
      if (!resp.ok) throw new Error(`${resp.status}`);
      const url = URL.createObjectURL(await resp.blob());
      const a = h('a', { href: url, download: item.name, class: 'tv-visually-hidden' });
      document.body.append(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(url), 60000);
      status.show(`Downloaded ${item.name}`);
    } catch (err) { status.show(`Download failed: ${err.message}`, true); }
  }

  async function upload(files) {
    const done = [];
    for (const file of files) {
      const bar = h('progress', { max: String(file.size || 1), value: '0', 'aria-label': `Uploading ${file.name}` });
      const text = h('span', {}, `${file.name} — 0%`);
      const li = h('li', { class: 'tv-upload' }, text, bar);
      uploads.append(li);
      try {
        await send(ctx, joinPath(state.path, file.name), file, (loaded, total) => {
          bar.max = total || 1; bar.value = loaded;
          text.textContent = `${file.name} — ${Math.round((loaded / (total || 1)) * 100)}%`;
        }, (n) => { text.textContent = `${file.name} — connection lost, resuming (try ${n})…`; });
        text.textContent = `${file.name} — uploaded`;
        done.push(file.name);
        setTimeout(() => li.remove(), 4000);
      } catch (err) {
        text.textContent = `${file.name} — failed: ${err.message}`;
        li.classList.add('tv-error');
      }
    }
    await open(state.path, done.length ? `Uploaded ${done.join(', ')}` : '');
  }

  async function newFolder() {
    const r = await formDialog({ title: 'New folder', fields: [{ name: 'name', label: 'Folder name', required: true }], actions: [['create', 'Create']] });
    if (!r) return;
    await act(() => json(ctx, `/api/files?path=${encodeURIComponent(joinPath(state.path, r.values.name))}&type=folder`, { method: 'POST' }), `Created ${r.values.name}`);
  }

  async function rename(item) {
    const r = await formDialog({ title: `Rename ${item.name}`, fields: [{ name: 'name', label: 'New name', value: item.name, required: true }] });
    if (!r || r.values.name === item.name) return;
    await act(() => json(ctx, `/api/files/${item.id}`, { method: 'PATCH', body: { name: r.values.name } }), `Renamed to ${r.values.name}`);
  }

  async function moveTo(item) {
    const r = await formDialog({ title: `Move ${item.name}`, fields: [{ name: 'folder', label: 'Destination folder', value: state.path, required: true, hint: 'A folder path such as /Documents' }], actions: [['save', 'Move']] });
    if (!r) return;
    const folder = r.values.folder.startsWith('/') ? r.values.folder : `/${r.values.folder}`;
    await act(() => json(ctx, `/api/files/${item.id}`, { method: 'PATCH', body: { path: joinPath(folder.replace(/\/+$/, '') || '/', item.name) } }), `Moved ${item.name} to ${folder}`);
  }

  async function remove(item) {
    if (!(await confirmDialog(`Delete ${item.name}?`, `Move “${item.name}”${item.type === 'folder' ? ' and everything in it' : ''} to the trash? You can restore it from there.`))) return;
    await act(() => json(ctx, `/api/files/${item.id}`, { method: 'DELETE' }), `Deleted ${item.name} (moved to the trash)`);
  }

  // -- the trash -------------------------------------------------------------------------------
  async function showTrash(note = '') {
    status.show('Loading…');
    try {
      state.trash = (await json(ctx, '/api/trash')).items;
      status.show(note);
    } catch (err) { state.trash = []; status.show(`Could not open the trash: ${err.message}`, true); }
    render();
  }

  function renderTrash() {
    crumbs.replaceChildren(h('li', {}, h('button', { type: 'button', class: 'tv-link', onclick: () => open('/') }, 'Home')),
      h('li', {}, h('span', { 'aria-current': 'location' }, 'Trash')));
    if (!state.trash.length) { tbody.replaceChildren(h('tr', {}, h('td', { colspan: '4', class: 'tv-muted' }, 'The trash is empty.'))); return; }
    const button = (label, name, fn, cls) => h('button', { type: 'button', class: cls, onclick: fn, 'aria-label': `${label} ${name}` }, label);
    tbody.replaceChildren(...state.trash.map((t) => h('tr', {},
      h('td', { class: 'tv-name-cell' }, h('span', { class: `tv-name ${t.type === 'folder' ? 'tv-folder' : 'tv-file'}` }, t.name),
        h('small', {}, ` from ${t.path}`)),
      h('td', { class: 'tv-narrow-hide' }, formatSize(t.size)),
      h('td', { class: 'tv-narrow-hide' }, `Deleted ${when(t.deleted_at)}`),
      h('td', { class: 'tv-actions-cell' }, h('div', { class: 'tv-row-actions' },
        button('Restore', t.name, () => trashAct(json(ctx, `/api/trash/${t.id}/restore`, { method: 'POST' }), `Restored ${t.name}`)),
        button('Delete forever', t.name, async () => {
          if (await confirmDialog(`Delete ${t.name} forever?`, `“${t.name}” will be gone for good.`, 'Delete forever')) {
            await trashAct(json(ctx, `/api/trash/${t.id}`, { method: 'DELETE' }), `Deleted ${t.name} forever`);
          }
        }, 'tv-danger'))))),
    h('tr', {}, h('td', { colspan: '4' }, h('button', { type: 'button', class: 'tv-danger', onclick: async () => {
      if (await confirmDialog('Empty the trash?', 'Everything in the trash will be gone for good.', 'Empty trash')) {
        await trashAct(json(ctx, '/api/trash', { method: 'DELETE' }), 'Emptied the trash');
      }
    } }, 'Empty trash'))));
  }

  async function trashAct(promise, done) {
    try { await promise; await showTrash(done); } catch (err) { await showTrash(); status.show(err.message, true); }
  }

  // -- versions --------------------------------------------------------------------------------
  async function versions(item) {
    let list;
    try { list = (await json(ctx, `/api/files/${item.id}/versions`)).items; } catch (err) { status.show(err.message, true); return; }
    let chosen = null;
    const titleId = 'tv-versions-title';
    const rows = list.length ? list.map((v) => h('li', { class: 'tv-share' },
      h('span', {}, `${when(v.modified)} — ${formatSize(v.size)}`),
      h('button', { type: 'button', 'aria-label': `Download version from ${when(v.modified)}`, onclick: () => download({ id: `${item.id}/versions/${v.id}`, name: item.name }) }, 'Download'),
      h('button', { type: 'button', class: 'tv-primary', 'aria-label': `Restore version from ${when(v.modified)}`, onclick: () => { chosen = v; dialog.close(); } }, 'Restore')))
      : [h('li', { class: 'tv-muted' }, 'No earlier versions. Overwriting the file keeps its previous content here.')];
    const dialog = h('dialog', { class: 'tv-dialog', 'aria-labelledby': titleId },
      h('h2', { id: titleId }, `Versions of ${item.name}`), h('ul', { class: 'tv-plain', 'aria-label': 'Versions' }, rows),
      h('div', { class: 'tv-actions' }, h('button', { type: 'button', onclick: () => dialog.close() }, 'Close')));
    const closed = new Promise((resolve) => dialog.addEventListener('close', () => { dialog.remove(); resolve(); }));
    document.body.append(dialog);
    dialog.showModal();
    await closed;
    if (chosen) {
      await act(() => json(ctx, `/api/files/${item.id}/versions/${chosen.id}/restore`, { method: 'POST' }),
        `Restored the version of ${item.name} from ${when(chosen.modified)}`);
    }
  }

  async function act(fn, done) {
    try { await fn(); } catch (err) { await open(state.path); status.show(err.message, true); return; }
    await open(state.path, done);
  }

  async function share(item) {
    const fields = [{ name: 'password', label: 'Password (optional)', type: 'password', autocomplete: 'new-password' },
      { name: 'expires', label: 'Expires on (optional)', type: 'date' }];
    if (item.type === 'folder') fields.push({ name: 'upload', label: 'Allow uploads', type: 'checkbox', value: false });
    const r = await formDialog({ title: `Share ${item.name}`, fields, actions: [['create', 'Create link']] });
    if (!r) return;
    const body = { file_id: item.id };
    if (r.values.password) body.password = r.values.password;
    if (r.values.expires) body.expires_at = new Date(`${r.values.expires}T23:59:59`).toISOString().replace(/\.\d+Z$/, 'Z');
    if (r.values.upload) body.can_upload = true;
    try {
      const made = await json(ctx, '/api/shares', { method: 'POST', body });
      const link = new URL(`/s/${made.token}`, window.location.origin).href;
      status.show(`Share link created for ${item.name}`);
      await formDialog({ title: 'Share link', fields: [{ name: 'link', label: 'Share link', value: link, readonly: true }],
        actions: [['copy', 'Copy link', 'primary']], setup: (inputs) => inputs.link.addEventListener('focus', () => inputs.link.select()) })
        .then((res) => { if (res && navigator.clipboard) navigator.clipboard.writeText(link).catch(() => {}); });
    } catch (err) { status.show(err.message, true); }
    await loadShares();
  }

  async function loadShares() {
    try {
      state.shares = (await all(ctx, '/api/shares')).filter((s) => s.type === 'link');
    } catch { state.shares = []; }
    const names = {};
    await Promise.all([...new Set(state.shares.map((s) => s.file_id))].map(async (id) => {
      try { names[id] = (await json(ctx, `/api/files/${id}?meta=1`)).path; } catch { names[id] = `#${id}`; }
    }));
    if (!state.shares.length) { shareList.replaceChildren(h('li', { class: 'tv-muted' }, 'No share links')); return; }
    shareList.replaceChildren(...state.shares.map((s) => {
      const what = names[s.file_id];
      const notes = [s.has_password ? 'password' : null, s.can_upload ? 'uploads' : null,
        s.expires_at ? `expires ${new Date(s.expires_at).toLocaleDateString()}` : null].filter(Boolean).join(', ');
      return h('li', { class: 'tv-share' }, h('span', {}, what, notes ? h('small', {}, ` (${notes})`) : null),
        h('button', { type: 'button', class: 'tv-danger', 'aria-label': `Revoke link to ${what}`, onclick: async () => {
          try { await json(ctx, `/api/shares/${s.id}`, { method: 'DELETE' }); status.show(`Revoked the link to ${what}`); } catch (err) { status.show(err.message, true); }
          await loadShares();
        } }, 'Revoke'));
    }));
  }

  await Promise.all([open('/'), loadShares()]);
}
