// Uploads for the Files view (tau/files/api.py, tau/files/uploadapi.py): small files in one POST,
// files over CHUNKED_ABOVE as a resumable upload — POST /api/uploads, then PUT chunks with
// Content-Range; after a network error it asks the server for the committed offset
// (GET /api/uploads/{id}) and resumes there, so nothing already sent is sent twice.
export const CHUNKED_ABOVE = 8 * 1024 * 1024;
export const CHUNK = 4 * 1024 * 1024;
const RETRIES = 8;

async function failure(resp) {
  let message = `${resp.status}`;
  try { message = (await resp.json()).message || message; } catch { /* not JSON */ }
  return new Error(message);
}

/** One request with upload progress: ctx.upload (XHR) when the shell has it, else fetch. */
function put(ctx, url, body, onprogress, opts) {
  if (ctx.upload) return ctx.upload(url, body, onprogress, opts);
  return ctx.api(url, { method: opts.method || 'POST', body, headers: { 'Content-Type': body.type || 'application/octet-stream', ...(opts.headers || {}) } });
}

const sleep = (ms) => new Promise((r) => { setTimeout(r, ms); });

async function chunked(ctx, path, file, onprogress, onretry) {
  const made = await ctx.api('/api/uploads', { method: 'POST', headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ path, size: file.size, content_type: file.type || '' }) });
  if (made.status !== 201) throw await failure(made);
  const { url } = await made.json();
  let offset = 0;
  let tries = 0;
  for (;;) {
    const end = Math.min(offset + CHUNK, file.size);
    const base = offset;
    let resp = null;
    try {
      resp = await put(ctx, url, file.slice(base, end), (loaded) => onprogress(base + loaded, file.size),
        { method: 'PUT', headers: { 'Content-Range': `bytes ${base}-${end - 1}/${file.size}` } });
    } catch (err) {  // the connection broke: ask where the server is, then go on from there
      if (++tries > RETRIES) throw err;
      onretry(tries);
      await sleep(Math.min(500 * 2 ** (tries - 1), 8000));
      try {
        const state = await ctx.api(url);
        if (state.ok) offset = (await state.json()).offset;
      } catch { /* still offline: the next try asks again */ }
      continue;
    }
    if (resp.status === 201) { onprogress(file.size, file.size); return resp.json(); }
    if (resp.status === 409) {  // a chunk that did arrive before the error: go on from the server's offset
      const body = await resp.json().catch(() => ({}));
      if (body.error !== 'offset_mismatch' || ++tries > RETRIES) throw new Error(body.message || '409');
      offset = Number(body.offset);
      continue;
    }
    if (!resp.ok) throw await failure(resp);
    offset = (await resp.json()).offset;
    tries = 0;
  }
}

/** Upload ``file`` to ``path``; onprogress(loaded, total), onretry(n) when resuming after an error. */
export async function send(ctx, path, file, onprogress, onretry = () => {}) {
  if (file.size > CHUNKED_ABOVE) return chunked(ctx, path, file, onprogress, onretry);
  const url = `/api/files?path=${encodeURIComponent(path)}`;
  const resp = await put(ctx, url, file, onprogress, {});
  if (!resp.ok) throw await failure(resp);
  onprogress(file.size, file.size);
  return resp.json();
}
