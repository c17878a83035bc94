// main.js - the web interface: who is signed in, the frame around every page,
// and the hash routes (/#/projects, /#/tokens) that pick the page.
import { render } from "preact";
import { useCallback, useEffect, useState } from "preact/hooks";
import "./app.css";
import { api, setCsrf } from "./api.js";
import { html, Lazy } from "./ui.js";
import { Inbox } from "./pages/inbox.js";
import { Admin } from "./pages/admin.js";
import { SignIn } from "./pages/signin.js";
import { Projects } from "./pages/projects.js";
import { Tokens } from "./pages/tokens.js";
import { Project } from "./pages/project.js";
import { Job } from "./pages/job.js";
import { Run } from "./pages/run.js";

function useRoute() {
  const read = () => (location.hash.replace(/^#/, "") || "/projects").split("/").filter(Boolean);
  const [route, setRoute] = useState(read);
  useEffect(() => {
    const on = () => setRoute(read());
    addEventListener("hashchange", on);
    return () => removeEventListener("hashchange", on);
  }, []);
  return route;
}

function Badge({ count }) {
  if (!count) return null;
  return html`<span class="badge" aria-label="${count} unread notifications">${count}</span>`;
}

function Frame({ me, unread, onSignOut, children }) {
  return html`
    <header class="bar">
      <a class="brand" href="#/projects">Convutell</a>
      <nav aria-label="Main">
        <a href="#/projects">Projects</a>
        <a href="#/inbox">Notifications <${Badge} count=${unread} /></a>
        <a href="#/tokens">API tokens</a>
        ${me.admin && html`<a href="#/admin">Administration</a>`}
      </nav>
      <span class="who">${me.user}${me.admin ? " (administrator)" : ""}</span>
      <button class="quiet" onClick=${onSignOut}>Sign out</button>
    </header>
    <main id="main">${children}</main>`;
}

function App() {
  const [me, setMe] = useState(undefined); // undefined: not known yet; null: signed out
  const [unread, setUnread] = useState(0);
  const route = useRoute();
  const signedIn = !!me;

  // The unread count: asked on every page, every 30 s, and after marking read.
  const countUnread = useCallback(() => {
    api("GET", "/notifications/unread-count").then((r) => setUnread(r.unread), () => {});
  }, []);
  useEffect(() => {
    if (!signedIn) return;
    countUnread();
    const timer = setInterval(countUnread, 30000);
    return () => clearInterval(timer);
  }, [signedIn, route.join("/")]);

  const learn = useCallback(async () => {
    const r = await api("GET", "/sessions/current");
    setCsrf(r.csrf_token);
    setMe(r.user ? r : null);
  }, []);
  useEffect(() => {
    learn().catch(() => setMe(null));
  }, [learn]);

  const signOut = async () => {
    await api("DELETE", "/sessions").catch(() => {});
    setCsrf("");
    setMe(null);
    location.hash = "#/projects"; /* the next person starts from the start */
  };
  if (me === undefined) return html`<p class="loading">Loading…</p>`;
  if (me === null) return html`<${SignIn} onSignedIn=${learn} />`;
  let page;
  if (route[0] === "tokens") page = html`<${Tokens} />`;
  else if (route[0] === "admin") page = html`<${Admin} me=${me} />`;
  else if (route[0] === "inbox") page = html`<${Inbox} onRead=${countUnread} />`;
  else if (route[0] === "jobs" && route[1]) page = html`<${Job} id=${route[1]} me=${me} key=${route[1]} />`;
  else if (route[0] === "runs" && route[1]) page = html`<${Run} id=${route[1]} key=${route[1]} />`;
  else if (route[0] === "projects" && route[1] && route[2] === "console")
    page = html`<${Lazy} load=${() => import("./pages/console.js")} name="Console" id=${route[1]} me=${me} key=${route[1]} />`;
  else if (route[0] === "projects" && route[1]) page = html`<${Project} id=${route[1]} me=${me} key=${route[1]} />`;
  else page = html`<${Projects} me=${me} />`;
  return html`<${Frame} me=${me} unread=${unread} onSignOut=${signOut}>${page}<//>`;
}

render(html`<${App} />`, document.getElementById("app"));
