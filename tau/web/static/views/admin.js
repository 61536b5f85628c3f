// The Admin view (administrators only): the /admin dashboard inside the app's shell. Its markup is
// read from /admin's own page (one source, never drifting) and its sections are /admin's modules
// (app.js's setup and load, and the modules it imports), calling the admin API through the shell's session: ctx.api
// adds the CSRF header and refreshes the session. The markup is our own static page, parsed inertly
// (DOMParser runs no script); everything the API returns goes in as text nodes, as on /admin.

const MARKUP_IDS = ["notice", "app"];

function stylesheet() {
  const href = new URL("./admin.css", import.meta.url).href;
  if (![...document.querySelectorAll("link[rel=stylesheet]")].some((l) => l.href === href)) {
    const link = document.createElement("link");
    link.rel = "stylesheet";
    link.href = href;
    document.head.append(link);
  }
}

export async function mount(root, ctx) {
  stylesheet();
  const status = document.createElement("p");
  status.setAttribute("role", "status");
  status.textContent = "Loading the admin dashboard…";
  root.replaceChildren(status);
  const page = await fetch("/admin/", { credentials: "same-origin" });
  const doc = new DOMParser().parseFromString(await page.text(), "text/html");
  const [notice, app] = MARKUP_IDS.map((id) => document.importNode(doc.getElementById(id), true));
  const view = document.createElement("div");  // not a second <main>: the shell's is the landmark
  view.className = "admin-view";
  view.id = "app";
  view.append(...app.childNodes);
  const heading = document.createElement("h1");
  heading.textContent = "Administration";
  const pageBox = document.createElement("div");
  pageBox.className = "admin-page";
  pageBox.append(heading, notice, view);
  root.replaceChildren(pageBox);

  const lib = await import("/admin/lib.js");
  const dashboard = await import("/admin/app.js");  // its page boot runs only on /admin itself
  lib.session.request = (path, init) => ctx.api(path, init);
  lib.session.onSignedOut = () => {};  // the shell shows its own sign-in
  dashboard.setup();
  try {
    await dashboard.load();
  } catch (err) {
    if (err.message !== "401") lib.say(`The admin dashboard could not load: ${err.message}`, true);
  }
  return () => { lib.session.request = null; };
}
