// connections.js - a project's connections: the list (strings as the caller's
// role may see them), a form with a driver picker whose password field is
// write-only, and a "Test" that runs SELECT 1 on a worker through the console.
import { useEffect, useRef, useState } from "preact/hooks";
import { all, api } from "../api.js";
import { ErrorNote, html, may } from "../ui.js";

// The drivers this build's workers have (Debian's ODBC packages), and what each needs.
const DRIVERS = {
  postgresql: { label: "PostgreSQL", driver: "PostgreSQL Unicode", port: 5432, server: true },
  mariadb: { label: "MariaDB / MySQL", driver: "MariaDB Unicode", port: 3306, server: true },
  sqlite: { label: "SQLite", driver: "SQLite3", server: false },
  odbc: { label: "Other (an ODBC string)", raw: true },
};

// The ODBC string of the form's fields; a value holding ; or braces is braced.
export function odbcOf(kind, f) {
  const d = DRIVERS[kind];
  if (d.raw) return f.odbc;
  const v = (x) => (/[;{}]/.test(x) ? `{${x.replace(/}/g, "}}")}}` : x);
  if (!d.server) return `Driver=${d.driver};Database=${v(f.database)}`;
  const parts = [`Driver=${d.driver}`, `Server=${v(f.server)}`, `Port=${f.port || d.port}`, `Database=${v(f.database)}`];
  if (f.user) parts.push(`UID=${v(f.user)}`);
  if (f.password) parts.push(`PWD=${v(f.password)}`);
  return parts.join(";");
}

function AddConnection({ project, onMade }) {
  const [kind, setKind] = useState("postgresql");
  const [error, setError] = useState(null);
  const box = useRef(null);
  const d = DRIVERS[kind];
  const submit = async (e) => {
    e.preventDefault();
    const f = Object.fromEntries(new FormData(e.target));
    setError(null);
    try {
      await api("POST", "/connections", { name: f.name, odbc: odbcOf(kind, f), project_id: project.id });
      e.target.reset();
      setKind("postgresql");
      box.current.open = false;
      await onMade();
    } catch (err) {
      setError(err);
    }
  };
  return html`<details class="card" ref=${box}>
    <summary>Add a connection</summary>
    <form onSubmit=${submit} aria-label="Add a connection">
      <label>Name <input name="name" required maxlength="200" /></label>
      <label>Driver
        <select name="kind" value=${kind} onChange=${(e) => setKind(e.target.value)}>
          ${Object.entries(DRIVERS).map(([k, x]) => html`<option value=${k}>${x.label}</option>`)}
        </select></label>
      ${d.raw
        ? html`<label>ODBC connection string <input name="odbc" required autocomplete="off" /></label>`
        : d.server
        ? html`<div class="row">
            <label>Server <input name="server" required /></label>
            <label>Port <input name="port" type="number" min="1" max="65535" placeholder=${d.port} /></label>
          </div>
          <label>Database <input name="database" required /></label>
          <div class="row">
            <label>User <input name="user" autocomplete="off" /></label>
            <label>Password <input name="password" type="password" autocomplete="new-password" /></label>
          </div>`
        : html`<label>Database file on the workers <input name="database" required placeholder="/data/shop.db" /></label>`}
      <${ErrorNote} error=${error} />
      <button type="submit">Add connection</button>
    </form>
  </details>`;
}

// SELECT 1 on the connection, on a worker (the API never connects to it).
function Test({ project, conn }) {
  const [state, setState] = useState(null);
  const test = async () => {
    setState({ busy: true });
    try {
      const r = await api("POST", `/projects/${project.id}/queries/run`, { connection: conn.id, sql: "SELECT 1", wait_seconds: 30 });
      setState(r.status === "succeeded" ? { ok: `works (${Math.round(r.elapsed_ms)} ms)` } : { bad: r.error ? r.error.message : r.status });
    } catch (err) {
      setState({ bad: err.message });
    }
  };
  return html`<span class="test">
    <button class="quiet" onClick=${test} disabled=${state && state.busy}>Test</button>
    <span role="status">${state && state.ok ? html`<span class="good">${state.ok}</span>` : ""}
      ${state && state.bad ? html`<span class="error">${state.bad}</span>` : ""}${state && state.busy ? "testing…" : ""}</span>
  </span>`;
}

export function Connections({ project, role }) {
  const [conns, setConns] = useState(null);
  const [error, setError] = useState(null);
  const load = () => all(`/projects/${project.id}/connections`, "connections").then(setConns, setError);
  useEffect(() => {
    load();
  }, [project.id]);
  const end = (c) =>
    c.id === project.origin_connection_id ? "origin" : c.id === project.destination_connection_id ? "destination" : "";
  return html`<section aria-labelledby="conns-h">
    <h2 id="conns-h">Connections</h2>
    ${may(role, "editor") && html`<${AddConnection} project=${project} onMade=${load} />`}
    <${ErrorNote} error=${error} />
    ${conns === null
      ? html`<p class="loading">Loading…</p>`
      : html`<div class="scroll"><table>
          <thead><tr><th scope="col">Name</th><th scope="col">Used as</th><th scope="col">Connection string</th><th scope="col"><span class="sr">Test</span></th></tr></thead>
          <tbody>${conns.map((c) => html`<tr key=${c.id}>
            <td>${c.name}</td><td>${end(c)}</td><td><code class="odbc">${c.odbc}</code></td>
            <td>${may(role, "runner") && html`<${Test} project=${project} conn=${c} />`}</td></tr>`)}
          </tbody></table></div>`}
  </section>`;
}
