// Contacts view: list, search, create, edit and delete the cards CardDAV serves, through
// /api/contacts (tau/contacts/api.py).
import { h, json, ensureStyles, statusLine, formDialog, confirmDialog } from './viewkit.js';

function values(list) { return (list || []).map((x) => (typeof x === 'string' ? x : x.value)).filter(Boolean); }
function lines(text) { return text.split(/[\n,]/).map((s) => s.trim()).filter(Boolean); }

export async function mount(root, ctx) {
  ensureStyles();
  const state = { q: '', items: [], cursor: null, selected: null };
  const status = statusLine();
  const list = h('ul', { class: 'tv-plain tv-contact-list', 'aria-label': 'Contacts' });
  const more = h('button', { type: 'button', hidden: true, onclick: () => load(true) }, 'Load more');
  const detail = h('section', { class: 'tv-panel tv-detail', 'aria-label': 'Contact details', hidden: true });
  let timer = null;
  const search = h('input', { type: 'search', 'aria-label': 'Search contacts', placeholder: 'Search contacts',
    oninput: () => { clearTimeout(timer); timer = setTimeout(() => { state.q = search.value.trim(); load(false); }, 250); } });

  const view = h('div', { class: 'tv-view tv-contacts', 'aria-busy': 'true' },
    h('div', { class: 'tv-toolbar', role: 'toolbar', 'aria-label': 'Contacts' },
      h('div', { role: 'search', class: 'tv-grow' }, search),
      h('button', { type: 'button', class: 'tv-primary', onclick: () => edit(null) }, 'New contact')),
    status,
    h('div', { class: 'tv-split tv-split-right' }, h('div', {}, list, more), detail));
  root.replaceChildren(view);

  async function load(append, note = '') {
    view.setAttribute('aria-busy', 'true');
    try {
      const params = new URLSearchParams({ limit: '200' });
      if (state.q) params.set('q', state.q);
      if (append && state.cursor) params.set('cursor', state.cursor);
      const page = await json(ctx, `/api/contacts?${params}`);
      state.items = append ? [...state.items, ...page.items] : page.items;
      state.cursor = page.next_cursor;
      status.show(note || (state.q ? `${state.items.length}${state.cursor ? '+' : ''} found` : ''));
    } catch (err) { status.show(`Could not load contacts: ${err.message}`, true); }
    render();
    view.setAttribute('aria-busy', 'false');
  }

  function render() {
    more.hidden = !state.cursor;
    const sorted = [...state.items].sort((a, b) => (a.name || '').localeCompare(b.name || ''));
    if (!sorted.length) { list.replaceChildren(h('li', { class: 'tv-muted' }, state.q ? 'No contacts match.' : 'No contacts yet.')); return; }
    list.replaceChildren(...sorted.map((c) => {
      const email = values(c.emails)[0];
      return h('li', {}, h('button', { type: 'button', class: 'tv-contact', 'aria-current': state.selected === c.id ? 'true' : null, onclick: () => show(c) },
        h('span', { class: 'tv-avatar', 'aria-hidden': 'true' }, (c.name || email || '?').trim().charAt(0).toUpperCase()),
        h('span', { class: 'tv-contact-text' }, h('span', { class: 'tv-what' }, c.name || email || '(no name)'), email ? h('small', {}, email) : null)));
    }));
  }

  function show(c) {
    state.selected = c.id;
    render();
    const rows = [['Email', values(c.emails)], ['Phone', values(c.phones)], ['Organization', c.org ? [c.org] : []], ['Note', c.note ? [c.note] : []]];
    detail.hidden = false;
    detail.replaceChildren(h('h3', {}, c.name || '(no name)'),
      h('dl', {}, rows.filter(([, v]) => v.length).map(([k, v]) => [h('dt', {}, k), v.map((x) => h('dd', {}, k === 'Email' ? h('a', { href: `mailto:${x}` }, x) : x))])),
      h('div', { class: 'tv-actions' },
        h('button', { type: 'button', onclick: () => edit(c), 'aria-label': `Edit ${c.name || 'contact'}` }, 'Edit'),
        h('button', { type: 'button', class: 'tv-danger', onclick: () => remove(c), 'aria-label': `Delete ${c.name || 'contact'}` }, 'Delete')));
  }

  async function edit(c) {
    const r = await formDialog({
      title: c ? `Edit ${c.name || 'contact'}` : 'New contact',
      fields: [
        { name: 'name', label: 'Name', value: c ? c.name : '', required: true, autocomplete: 'off' },
        { name: 'emails', label: 'Email addresses (one per line)', type: 'textarea', rows: 2, value: c ? values(c.emails).join('\n') : '' },
        { name: 'phones', label: 'Phone numbers (one per line)', type: 'textarea', rows: 2, value: c ? values(c.phones).join('\n') : '' },
        { name: 'org', label: 'Organization', value: c && c.org || '' },
        { name: 'note', label: 'Note', type: 'textarea', value: c && c.note || '' },
      ],
      actions: [['save', c ? 'Save' : 'Create']],
    });
    if (!r) return;
    const body = { name: r.values.name, emails: lines(r.values.emails), phones: lines(r.values.phones), org: r.values.org || null, note: r.values.note || null };
    try {
      const saved = c ? await json(ctx, `/api/contacts/${c.id}`, { method: 'PATCH', body })
        : await json(ctx, '/api/contacts', { method: 'POST', body });
      await load(false, c ? 'Saved' : `Created ${saved.name}`);
      show(saved);
    } catch (err) { status.show(err.message, true); }
  }

  async function remove(c) {
    if (!(await confirmDialog(`Delete ${c.name}?`, `Delete the contact “${c.name}”?`))) return;
    try {
      await json(ctx, `/api/contacts/${c.id}`, { method: 'DELETE' });
      detail.hidden = true;
      state.selected = null;
    } catch (err) { status.show(err.message, true); return; }
    await load(false, `Deleted ${c.name}`);
  }

  await load(false);
}
