// Small DOM helpers shared by the calendar, files and contacts views.
// Everything is built from elements and text nodes, never from HTML strings: names, summaries and
// notes come from other people and must never become markup (the page's CSP forbids inline script
// as a second line of defence).

export function h(tag, props, ...children) {
  const el = document.createElement(tag);
  let value;
  for (const [key, v] of Object.entries(props || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (key === 'class') el.className = v;
    else if (key === 'text') el.textContent = v;
    else if (key === 'value') value = v;
    else if (key.startsWith('on') && typeof v === 'function') el.addEventListener(key.slice(2), v);
    else if (key === 'checked' || key === 'selected' || key === 'disabled' || key === 'required') el[key] = Boolean(v);
    else el.setAttribute(key, v === true ? '' : String(v));
  }
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  if (value !== undefined) el.value = value;
  return el;
}

let uid = 0;
export function nextId(prefix) {
  uid += 1;
  return `${prefix}-${uid}`;
}

/** Link views.css once (the shell may have linked it already). */
export function ensureStyles() {
  const href = new URL('./views.css', import.meta.url).href;
  if ([...document.querySelectorAll('link[rel="stylesheet"]')].some((l) => l.href === href)) return;
  document.head.append(h('link', { rel: 'stylesheet', href }));
}

/** JSON over ctx.api: the parsed body, or an Error carrying the server's message. */
export async function json(ctx, path, init = {}) {
  const opts = { ...init, headers: { ...(init.headers || {}) } };
  if (opts.body !== undefined && typeof opts.body !== 'string' && !(opts.body instanceof Blob)) {
    opts.body = JSON.stringify(opts.body);
    opts.headers['Content-Type'] = 'application/json';
  }
  const resp = await ctx.api(path, opts);
  if (resp.status === 204) return null;
  let body = null;
  try { body = await resp.json(); } catch { body = null; }
  if (!resp.ok) {
    const err = new Error((body && body.message) || `${resp.status} ${resp.statusText}`);
    err.status = resp.status;
    throw err;
  }
  return body;
}

/** Every page of a paginated list ({items, next_cursor}). */
export async function all(ctx, path, max = 20) {
  const items = [];
  let cursor = null;
  for (let i = 0; i < max; i += 1) {
    const sep = path.includes('?') ? '&' : '?';
    const page = await json(ctx, cursor ? `${path}${sep}cursor=${encodeURIComponent(cursor)}` : path);
    items.push(...page.items);
    cursor = page.next_cursor;
    if (!cursor) break;
  }
  return items;
}

/** A status line (role=status) whose text the view replaces; errors get role=alert styling. */
export function statusLine() {
  const el = h('p', { class: 'tv-status', role: 'status', 'aria-live': 'polite' });
  el.show = (text, error = false) => {
    el.textContent = text || '';
    el.classList.toggle('tv-error', Boolean(error));
  };
  return el;
}

function field(spec) {
  const id = nextId('tv-f');
  const common = { id, name: spec.name, required: spec.required };
  let input;
  if (spec.type === 'textarea') input = h('textarea', { ...common, rows: spec.rows || 3, value: spec.value ?? '' });
  else if (spec.type === 'select') {
    input = h('select', common, spec.options.map(([v, label]) => h('option', { value: v }, label)));
    input.value = spec.value ?? spec.options[0]?.[0] ?? '';
  } else if (spec.type === 'checkbox') input = h('input', { ...common, type: 'checkbox', checked: spec.value });
  else input = h('input', { ...common, type: spec.type || 'text', value: spec.value ?? '', min: spec.min,
    placeholder: spec.placeholder, autocomplete: spec.autocomplete || 'off', readonly: spec.readonly });
  const label = h('label', { for: id }, spec.label);
  const row = h('div', { class: spec.type === 'checkbox' ? 'tv-field tv-check' : 'tv-field' },
    spec.type === 'checkbox' ? [input, label] : [label, input], spec.hint ? h('small', {}, spec.hint) : null);
  if (spec.hidden) row.hidden = true;
  return { row, input };
}

/**
 * A modal form: resolves to {action, values, inputs} (action = the button's value) or null when
 * cancelled. ``extra`` adds nodes above the fields; ``setup(inputs, rows)`` wires dynamic behaviour.
 */
export function formDialog({ title, fields = [], actions = [['save', 'Save']], extra = [], setup }) {
  return new Promise((resolve) => {
    const titleId = nextId('tv-t');
    const made = fields.map((spec) => [spec.name, field(spec)]);
    const inputs = Object.fromEntries(made.map(([n, f]) => [n, f.input]));
    const rows = Object.fromEntries(made.map(([n, f]) => [n, f.row]));
    const error = h('p', { class: 'tv-error', role: 'alert' });
    let action = null;
    const buttons = actions.map(([value, label, kind]) => h('button', {
      type: value === 'cancel' ? 'button' : 'submit', class: kind === 'danger' ? 'tv-danger' : (kind === 'primary' || value === 'save' ? 'tv-primary' : ''),
      formnovalidate: value !== 'save' && value !== 'create' ? true : null,
      onclick: (ev) => { action = value; if (value === 'cancel') { ev.preventDefault(); dialog.close(); } },
    }, label));
    buttons.push(h('button', { type: 'button', onclick: () => dialog.close() }, 'Cancel'));
    const form = h('form', { class: 'tv-form' }, extra, made.map(([, f]) => f.row), error,
      h('div', { class: 'tv-actions' }, buttons));
    const dialog = h('dialog', { class: 'tv-dialog', 'aria-labelledby': titleId },
      h('h2', { id: titleId }, title), form);
    let result = null;
    form.addEventListener('submit', (ev) => {
      ev.preventDefault();
      const values = {};
      for (const [name, input] of Object.entries(inputs)) values[name] = input.type === 'checkbox' ? input.checked : input.value;
      result = { action: action || (actions[0] && actions[0][0]) || 'cancel', values, inputs, error };
      dialog.close();
    });
    dialog.addEventListener('close', () => { dialog.remove(); resolve(result); });
    document.body.append(dialog);
    if (setup) setup(inputs, rows);
    dialog.showModal();
  });
}

export async function confirmDialog(title, text, label = 'Delete') {
  const answer = await formDialog({ title, extra: [h('p', {}, text)], actions: [['ok', label, 'danger']] });
  return Boolean(answer);
}

export function pad(n) {
  return String(n).padStart(2, '0');
}

export function formatSize(bytes) {
  if (bytes < 1024) return `${bytes} B`;
  const units = ['KB', 'MB', 'GB', 'TB'];
  let value = bytes / 1024;
  let i = 0;
  while (value >= 1024 && i < units.length - 1) { value /= 1024; i += 1; }
  return `${value.toFixed(value < 10 ? 1 : 0)} ${units[i]}`;
}
