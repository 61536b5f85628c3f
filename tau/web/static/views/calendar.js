// Calendar view: week and month of the user's calendars (own and shared), events and tasks,
// simple recurrence rules, invitations answered through the server (iTIP), video calls.
// Talks only to /api/calendars and /api/events (tau/calendar/api.py).
import { h, json, all, ensureStyles, statusLine, formDialog, confirmDialog, pad } from './viewkit.js';

const DAY = 86400000;
const FREQS = [['', 'Does not repeat'], ['DAILY', 'Daily'], ['WEEKLY', 'Weekly'], ['MONTHLY', 'Monthly'], ['YEARLY', 'Yearly']];
const ZONE = Intl.DateTimeFormat().resolvedOptions().timeZone || 'UTC';

function ymd(d) { return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}`; }
function localInput(d) { return `${ymd(d)}T${pad(d.getHours())}:${pad(d.getMinutes())}`; }
function hm(d) { return `${pad(d.getHours())}:${pad(d.getMinutes())}`; }
function startOfDay(d) { return new Date(d.getFullYear(), d.getMonth(), d.getDate()); }
function addDays(d, n) { return new Date(d.getFullYear(), d.getMonth(), d.getDate() + n, d.getHours(), d.getMinutes()); }
function startOfWeek(d) { const s = startOfDay(d); return addDays(s, -((s.getDay() + 6) % 7)); }

/** An API time (RFC 3339 UTC, floating local, or a date) as a local Date; all-day when a date. */
function parseTime(text) {
  if (!text) return null;
  if (text.length === 10) { const [y, m, d] = text.split('-').map(Number); return new Date(y, m - 1, d); }
  return new Date(text);
}

function parseRule(rule) {
  const parts = Object.fromEntries((rule || '').split(';').filter(Boolean).map((p) => p.split('=')));
  const simple = Object.keys(parts).every((k) => k === 'FREQ' || k === 'COUNT') &&
    FREQS.some(([f]) => f && f === parts.FREQ);
  return { simple, freq: parts.FREQ || '', count: parts.COUNT || '' };
}

function safeUrl(text) {
  try { const u = new URL(text); return ['https:', 'http:'].includes(u.protocol) ? u.href : null; } catch { return null; }
}

export async function mount(root, ctx) {
  ensureStyles();
  const me = (ctx.user && ctx.user.email || '').toLowerCase();
  const state = { mode: 'week', anchor: new Date(), calendars: [], hidden: new Set(), events: [], tasks: [] };
  const status = statusLine();
  const heading = h('h2', { class: 'tv-range', 'aria-live': 'polite' });
  const weekBtn = h('button', { type: 'button', 'aria-pressed': 'true', onclick: () => setMode('week') }, 'Week');
  const monthBtn = h('button', { type: 'button', 'aria-pressed': 'false', onclick: () => setMode('month') }, 'Month');
  const grid = h('div', { class: 'tv-cal-body' });
  const calList = h('ul', { class: 'tv-plain' });
  const inviteList = h('ul', { class: 'tv-plain' });
  const taskList = h('ul', { class: 'tv-plain' });
  const invites = h('section', { class: 'tv-panel', 'aria-labelledby': 'tv-inv-h', hidden: true },
    h('h3', { id: 'tv-inv-h' }, 'Invitations'), inviteList);

  const view = h('div', { class: 'tv-view tv-calendar', 'aria-busy': 'true' },
    h('div', { class: 'tv-toolbar', role: 'toolbar', 'aria-label': 'Calendar' },
      h('button', { type: 'button', onclick: () => move(-1), 'aria-label': 'Previous' }, '‹'),
      h('button', { type: 'button', onclick: () => { state.anchor = new Date(); refresh(); } }, 'Today'),
      h('button', { type: 'button', onclick: () => move(1), 'aria-label': 'Next' }, '›'),
      heading,
      h('span', { class: 'tv-seg', role: 'group', 'aria-label': 'View' }, weekBtn, monthBtn),
      h('button', { type: 'button', class: 'tv-primary', onclick: () => editEvent(null, 'event') }, 'New event'),
      h('button', { type: 'button', onclick: () => editEvent(null, 'todo') }, 'New task')),
    status,
    h('div', { class: 'tv-split' },
      h('aside', { class: 'tv-side' },
        invites,
        h('section', { class: 'tv-panel', 'aria-labelledby': 'tv-cals-h' }, h('h3', { id: 'tv-cals-h' }, 'Calendars'), calList),
        h('section', { class: 'tv-panel', 'aria-labelledby': 'tv-tasks-h' }, h('h3', { id: 'tv-tasks-h' }, 'Tasks'), taskList)),
      grid));
  root.replaceChildren(view);

  function setMode(mode) {
    state.mode = mode;
    weekBtn.setAttribute('aria-pressed', String(mode === 'week'));
    monthBtn.setAttribute('aria-pressed', String(mode === 'month'));
    refresh();
  }

  function move(step) {
    const a = state.anchor;
    state.anchor = state.mode === 'week' ? addDays(a, 7 * step) : new Date(a.getFullYear(), a.getMonth() + step, 1);
    refresh();
  }

  function range() {
    if (state.mode === 'week') { const s = startOfWeek(state.anchor); return [s, addDays(s, 7)]; }
    const first = new Date(state.anchor.getFullYear(), state.anchor.getMonth(), 1);
    const s = startOfWeek(first);
    return [s, addDays(s, 42)];
  }

  function calIndex(name) { return Math.max(0, state.calendars.findIndex((c) => c.name === name)) % 6; }

  async function loadCalendars() {
    if (!state.calendars.length) state.calendars = await all(ctx, '/api/calendars');
  }

  async function refresh(note = '') {
    const [from, to] = range();
    status.show('Loading…');
    view.setAttribute('aria-busy', 'true');
    try {
      await loadCalendars();
      const q = `from=${encodeURIComponent(from.toISOString())}&to=${encodeURIComponent(to.toISOString())}&limit=1000`;
      [state.events, state.tasks] = await Promise.all([all(ctx, `/api/events?${q}`), all(ctx, '/api/events?type=todo&limit=1000')]);
      status.show(note);
    } catch (err) {
      status.show(`Could not load the calendar: ${err.message}`, true);
    }
    render();
    view.setAttribute('aria-busy', 'false');
  }

  function visible(list) { return list.filter((e) => !state.hidden.has(e.calendar)); }

  function render() {
    const [from, to] = range();
    const fmt = new Intl.DateTimeFormat(undefined, state.mode === 'week' ? { day: 'numeric', month: 'short', year: 'numeric' } : { month: 'long', year: 'numeric' });
    heading.textContent = state.mode === 'week' ? `${fmt.format(from)} – ${fmt.format(addDays(to, -1))}` : fmt.format(state.anchor);
    renderCalendars();
    renderInvites();
    renderTasks();
    grid.replaceChildren(state.mode === 'week' ? weekGrid(from) : monthGrid(from));
  }

  function renderCalendars() {
    calList.replaceChildren(...state.calendars.filter((c) => c.components.includes('VEVENT')).map((c) => {
      const shared = c.owner.toLowerCase() !== me;
      const label = shared ? `${c.display_name || c.name} (${c.owner})` : (c.display_name || c.name);
      const box = h('input', { type: 'checkbox', checked: !state.hidden.has(c.name), 'aria-label': `Show ${label}`,
        onchange: () => { if (box.checked) state.hidden.delete(c.name); else state.hidden.add(c.name); render(); } });
      return h('li', { class: `tv-cal-item tv-c${calIndex(c.name)}` }, h('label', {}, box, h('span', { class: 'tv-swatch', 'aria-hidden': 'true' }), label));
    }));
  }

  function myStatus(ev) {
    // my answer to an invitation in one of my own calendars (a shared calendar holds its owner's copy)
    const cal = state.calendars.find((c) => c.name === ev.calendar);
    if (!ev.organizer || ev.organizer === me || !cal || cal.owner.toLowerCase() !== me) return null;
    const mine = (ev.attendees || []).find((a) => a.address === me);
    return mine ? mine.partstat : null;
  }

  function renderInvites() {
    const seen = new Set();
    const pending = state.events.filter((e) => myStatus(e) === 'NEEDS-ACTION' && !seen.has(e.id) && seen.add(e.id));
    invites.hidden = pending.length === 0;
    inviteList.replaceChildren(...pending.map((ev) => h('li', { class: 'tv-invite' },
      h('span', {}, h('strong', {}, ev.summary || '(no title)'), ` · ${ev.organizer}`),
      h('span', { class: 'tv-row-actions' },
        h('button', { type: 'button', class: 'tv-primary', 'aria-label': `Accept ${ev.summary}`, onclick: () => answer(ev, 'ACCEPTED') }, 'Accept'),
        h('button', { type: 'button', 'aria-label': `Decline ${ev.summary}`, onclick: () => answer(ev, 'DECLINED') }, 'Decline')))));
  }

  function renderTasks() {
    const tasks = visible(state.tasks);
    if (!tasks.length) { taskList.replaceChildren(h('li', { class: 'tv-muted' }, 'No tasks')); return; }
    taskList.replaceChildren(...tasks.map((t) => {
      const box = h('input', { type: 'checkbox', checked: t.completed, 'aria-label': `Done: ${t.summary}`,
        onchange: () => save(t.id, { completed: box.checked }, box.checked ? 'Task done' : 'Task reopened') });
      const due = t.due ? parseTime(t.due) : null;
      return h('li', { class: t.completed ? 'tv-task tv-done' : 'tv-task' }, box,
        h('button', { type: 'button', class: 'tv-link', onclick: () => editEvent(t, 'todo') }, t.summary || '(no title)'),
        due ? h('small', {}, due.toLocaleDateString()) : null);
    }));
  }

  function eventsOn(day) {
    const start = startOfDay(day).getTime();
    const end = start + DAY;
    return visible(state.events).filter((e) => {
      const s = parseTime(e.start).getTime();
      const en = e.end ? parseTime(e.end).getTime() : s;
      return s < end && (en > start || s === start);
    }).sort((a, b) => parseTime(a.start) - parseTime(b.start));
  }

  function chip(ev) {
    const allDay = ev.start.length === 10;
    const when = allDay ? 'All day' : hm(parseTime(ev.start));
    const st = myStatus(ev);
    return h('li', {}, h('button', { type: 'button', class: `tv-event tv-c${calIndex(ev.calendar)}${st === 'DECLINED' ? ' tv-declined' : ''}`,
      onclick: () => editEvent(ev, 'event') },
    h('span', { class: 'tv-when' }, when), ' ', h('span', { class: 'tv-what' }, ev.summary || '(no title)'),
    ev.rrule || ev.recurrence_id ? h('span', { class: 'tv-badge', title: 'Repeats' }, ' ↻') : null,
    ev.conference ? h('span', { class: 'tv-badge', title: 'Video call' }, ' ☎') : null));
  }

  function weekGrid(from) {
    const today = ymd(new Date());
    const days = [];
    for (let i = 0; i < 7; i += 1) {
      const day = addDays(from, i);
      const label = day.toLocaleDateString(undefined, { weekday: 'long', day: 'numeric', month: 'long' });
      const list = eventsOn(day);
      days.push(h('section', { class: ymd(day) === today ? 'tv-day tv-today' : 'tv-day', 'aria-label': label },
        h('h3', {}, h('span', { class: 'tv-dow' }, day.toLocaleDateString(undefined, { weekday: 'short' })), ' ', h('span', { class: 'tv-dnum' }, String(day.getDate()))),
        h('ul', { class: 'tv-plain' }, list.map(chip)),
        h('button', { type: 'button', class: 'tv-add', 'aria-label': `New event on ${label}`, onclick: () => editEvent(null, 'event', day) }, '+')));
    }
    return h('div', { class: 'tv-week' }, days);
  }

  function monthGrid(from) {
    const month = state.anchor.getMonth();
    const today = ymd(new Date());
    const head = [];
    for (let i = 0; i < 7; i += 1) head.push(h('div', { class: 'tv-mhead', 'aria-hidden': 'true' }, addDays(from, i).toLocaleDateString(undefined, { weekday: 'short' })));
    const cells = [];
    for (let i = 0; i < 42; i += 1) {
      const day = addDays(from, i);
      const list = eventsOn(day);
      const label = day.toLocaleDateString(undefined, { weekday: 'long', day: 'numeric', month: 'long' });
      const cls = ['tv-mcell', day.getMonth() !== month ? 'tv-other' : '', ymd(day) === today ? 'tv-today' : ''].join(' ');
      cells.push(h('section', { class: cls, 'aria-label': label },
        h('button', { type: 'button', class: 'tv-dnum tv-link', 'aria-label': `Week of ${label}`, onclick: () => { state.anchor = day; setMode('week'); } }, String(day.getDate())),
        h('ul', { class: 'tv-plain' }, list.slice(0, 3).map(chip)),
        list.length > 3 ? h('button', { type: 'button', class: 'tv-link tv-more', onclick: () => { state.anchor = day; setMode('week'); } }, `+${list.length - 3} more`) : null));
    }
    return h('div', { class: 'tv-month' }, head, cells);
  }

  async function save(id, body, done) {
    try {
      await json(ctx, `/api/events/${id}`, { method: 'PATCH', body });
    } catch (err) { await refresh(); status.show(err.message, true); return; }
    await refresh(done);
  }

  async function answer(ev, partstat) {
    await save(ev.id, { partstat }, partstat === 'ACCEPTED' ? `Accepted “${ev.summary}”` : `Declined “${ev.summary}”`);
  }

  async function editEvent(ev, type, day) {
    const task = type === 'todo';
    try { await loadCalendars(); } catch { /* the server picks the default calendar */ }
    let full = ev;
    if (ev) { try { full = { ...ev, ...(await json(ctx, `/api/events/${ev.id}`)), start: ev.start, end: ev.end, calendar: ev.calendar }; } catch { full = ev; } }
    const writable = state.calendars.filter((c) => c.writable && c.components.includes(task ? 'VTODO' : 'VEVENT'));
    const cal = ev ? state.calendars.find((c) => c.name === ev.calendar) : null;
    const readOnly = ev && cal && !cal.writable;
    const base = day ? new Date(day.getFullYear(), day.getMonth(), day.getDate(), 9) : new Date(Math.ceil(Date.now() / 3600000) * 3600000);
    const startDate = ev && (ev.start || ev.due) ? parseTime(ev.start || ev.due) : base;
    const allDay = Boolean(ev && (ev.start || '').length === 10);
    let endDate = ev && ev.end ? parseTime(ev.end) : new Date(startDate.getTime() + 3600000);
    if (allDay) endDate = addDays(endDate, -1);
    const dueDate = ev && ev.due ? parseTime(ev.due) : null;
    const rule = parseRule(full && full.rrule);
    const freqOptions = rule.simple || !full || !full.rrule ? FREQS : [['keep', `Custom: ${full.rrule}`], ...FREQS];
    const status0 = ev ? myStatus(full) : null;
    const fields = [{ name: 'summary', label: 'Title', value: ev ? ev.summary : '', required: true }];
    if (!ev) fields.push({ name: 'calendar', label: 'Calendar', type: 'select', options: writable.map((c) => [c.name, c.display_name || c.name]) });
    if (task) {
      fields.push({ name: 'due', label: 'Due', type: 'datetime-local', value: dueDate ? localInput(dueDate) : '' });
    } else {
      fields.push({ name: 'allday', label: 'All day', type: 'checkbox', value: allDay },
        { name: 'start', label: 'Starts', type: 'datetime-local', value: localInput(startDate), required: true },
        { name: 'end', label: 'Ends', type: 'datetime-local', value: localInput(endDate), required: true },
        { name: 'freq', label: 'Repeat', type: 'select', options: freqOptions, value: rule.simple ? rule.freq : (full && full.rrule ? 'keep' : '') },
        { name: 'count', label: 'Number of times (empty: forever)', type: 'number', min: '1', value: rule.simple ? rule.count : '' },
        { name: 'location', label: 'Location', value: full && full.location || '' });
    }
    fields.push({ name: 'description', label: 'Description', type: 'textarea', value: full && full.description || '' });
    if (!task && !ev) {
      fields.push({ name: 'attendees', label: 'Invite (email addresses, comma separated)', value: '', autocomplete: 'email' },
        { name: 'conference', label: 'Add video call', type: 'checkbox', value: false });
    }
    const extra = [];
    if (full && full.conference && safeUrl(full.conference)) {
      extra.push(h('p', {}, 'Video call: ', h('a', { href: safeUrl(full.conference), target: '_blank', rel: 'noopener noreferrer' }, 'Join the call')));
    }
    if (full && full.organizer) {
      extra.push(h('p', { class: 'tv-muted' }, `Organizer: ${full.organizer}`),
        h('ul', { class: 'tv-plain tv-attendees', 'aria-label': 'Attendees' }, (full.attendees || []).map((a) => h('li', {}, `${a.address} — ${a.partstat.toLowerCase()}`))));
    }
    if (ev && (ev.rrule || ev.recurrence_id)) extra.push(h('p', { class: 'tv-muted' }, 'Changes apply to every occurrence.'));
    if (readOnly) extra.push(h('p', { class: 'tv-muted' }, 'This calendar is read-only.'));
    const actions = [];
    if (status0) actions.push(['accept', 'Accept', 'primary'], ['decline', 'Decline']);
    if (!readOnly) actions.push(['save', ev ? 'Save' : 'Create']);
    if (ev && !readOnly) actions.push(['delete', 'Delete', 'danger']);
    const title = readOnly ? (task ? 'Task' : 'Event') : ev ? (task ? 'Edit task' : 'Edit event') : (task ? 'New task' : 'New event');
    const result = await formDialog({ title, fields, extra, actions, setup: (inputs) => {
      if (readOnly) for (const input of Object.values(inputs)) input.disabled = true;
      if (!inputs.allday) return;
      const sync = () => { const t = inputs.allday.checked ? 'date' : 'datetime-local';
        for (const name of ['start', 'end']) { const v = inputs[name].value; inputs[name].type = t; inputs[name].value = t === 'date' ? v.slice(0, 10) : (v.length === 10 ? `${v}T09:00` : v); } };
      inputs.allday.addEventListener('change', sync);
      if (allDay) sync();
    } });
    if (!result || result.action === 'cancel') return;
    const v = result.values;
    try {
      if (result.action === 'accept' || result.action === 'decline') {
        await answer(full, result.action === 'accept' ? 'ACCEPTED' : 'DECLINED');
        return;
      }
      if (result.action === 'delete') {
        if (!(await confirmDialog('Delete?', `Delete “${ev.summary}”${ev.rrule || ev.recurrence_id ? ' and all its occurrences' : ''}?`))) return;
        await json(ctx, `/api/events/${ev.id}`, { method: 'DELETE' });
        await refresh('Deleted');
        return;
      }
      const body = { summary: v.summary, description: v.description };
      if (task) {
        if (v.due) { body.end = `${v.due}:00`; body.timezone = ZONE; }
        if (!ev) body.type = 'todo';
      } else {
        body.location = v.location;
        const initialStart = allDay ? ymd(startDate) : localInput(startDate);
        const initialEnd = allDay ? ymd(endDate) : localInput(endDate);
        if (!ev || v.start !== initialStart || v.end !== initialEnd || v.allday !== allDay) {
          if (v.allday) { body.start = v.start.slice(0, 10); body.end = ymd(addDays(parseTime(v.end.slice(0, 10)), 1)); }
          else { body.start = `${v.start}:00`; body.end = `${v.end}:00`; body.timezone = ZONE; }
        }
        if (v.freq !== 'keep') {
          const rrule = v.freq ? `FREQ=${v.freq}${v.count ? `;COUNT=${Number(v.count)}` : ''}` : '';
          if (rrule || (full && full.rrule)) body.rrule = rrule;
        }
        if (!ev) {
          const people = (v.attendees || '').split(',').map((s) => s.trim()).filter(Boolean);
          if (people.length) body.attendees = people;
          if (v.conference) body.conference = true;
        }
      }
      let note;
      if (ev) {
        await json(ctx, `/api/events/${ev.id}`, { method: 'PATCH', body });
        note = 'Saved';
      } else {
        if (v.calendar) body.calendar = v.calendar;
        await json(ctx, '/api/events', { method: 'POST', body });
        note = task ? 'Task created' : 'Event created';
        if (!task && body.start) state.anchor = parseTime(body.start.length === 10 ? body.start : `${v.start}`);
      }
      await refresh(note);
    } catch (err) {
      await refresh();
      status.show(err.message, true);
    }
  }

  await refresh();
}
