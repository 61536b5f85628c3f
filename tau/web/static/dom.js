// Tiny DOM helpers shared by the shell and the views. Text always goes in as text nodes, never
// as HTML: names, subjects and addresses come from strangers.

export function h(tag, props = {}, ...kids) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(props || {})) {
    if (value == null || value === false) continue;
    if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
    else if (key === "class") el.className = value;
    else if (key === "text") el.textContent = value;
    else el.setAttribute(key, value === true ? "" : String(value));
  }
  for (const kid of kids.flat()) {
    if (kid == null || kid === false) continue;
    el.append(kid instanceof Node ? kid : document.createTextNode(String(kid)));
  }
  return el;
}

// An honest placeholder for a part of the app that is not built yet.
export function notAvailable(root, title) {
  root.replaceChildren(h("section", {class: "panel empty", "aria-labelledby": "na-title"},
    h("h1", {id: "na-title"}, title),
    h("p", {}, `${title} is not available yet in the web app.`)));
}

export function bytes(n) {
  if (n == null) return "";
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(n < 10240 ? 1 : 0)} KB`;
  return `${(n / 1048576).toFixed(1)} MB`;
}
