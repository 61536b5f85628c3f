// Developer page for the views without the shell: signs in with the OAuth password grant (the
// token stays in memory) and mounts the view named by ?view=calendar|files|contacts with the same
// ctx the shell gives: {api, user, socket} plus upload(path, file, onprogress) for progress bars.
const VIEWS = new Set(['calendar', 'files', 'contacts', 'chat']);

function context(token, user) {
  const api = (path, init = {}) => fetch(path, { ...init, headers: { ...(init.headers || {}), Authorization: `Bearer ${token}` } });
  const socket = (path) => {
    const url = new URL(path, window.location.href);
    url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
    url.searchParams.set('access_token', token);
    return new WebSocket(url);
  };
  const upload = (path, file, onprogress, opts = {}) => new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open(opts.method || 'POST', path);
    xhr.setRequestHeader('Authorization', `Bearer ${token}`);
    xhr.setRequestHeader('Content-Type', file.type || 'application/octet-stream');
    for (const [name, value] of Object.entries(opts.headers || {})) xhr.setRequestHeader(name, value);
    xhr.upload.onprogress = (ev) => onprogress(ev.loaded, ev.total);
    xhr.onload = () => resolve(new Response(xhr.response, { status: xhr.status }));
    xhr.onerror = () => reject(new Error('network error'));
    xhr.send(file);
  });
  return { api, socket, upload, user };
}

async function signIn(ev) {
  ev.preventDefault();
  const form = ev.target;
  const error = document.getElementById('dev-error');
  const email = form.email.value.trim();
  const resp = await fetch('/oauth2/token', { method: 'POST', headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ grant_type: 'password', username: email, password: form.password.value }) });
  if (!resp.ok) { error.textContent = 'Sign-in failed'; return; }
  const { access_token: token } = await resp.json();
  const name = new URLSearchParams(window.location.search).get('view') || 'calendar';
  if (!VIEWS.has(name)) { error.textContent = 'Unknown view'; return; }
  const root = document.getElementById('dev-root');
  root.replaceChildren();
  const view = await import(`./views/${name}.js`);
  await view.mount(root, context(token, { id: null, email, is_admin: false }));
  document.title = `tau web — ${name}`;
}

document.getElementById('dev-signin').addEventListener('submit', signIn);
