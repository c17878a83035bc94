// console.js - the SQL console (loaded on demand, with its editor): one
// statement on the project's origin or destination, run on a worker; the
// result in a grid, truncation said plainly, the time it took, cancel, CSV
// download; saved queries opened, saved, and made into a transfer job.
import { useEffect, useRef, useState } from "preact/hooks";
import { all, api } from "../api.js";
import { ErrorNote, html, may } from "../ui.js";
import { Grid } from "../grid.js";
import { makeEditor, setText, textOf } from "../editor.js";

const FINAL = ["succeeded", "failed", "cancelled", "timed_out"];
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function Result({ result }) {
  if (!result) return null;
  if (result.status !== "succeeded")
    return html`<div class="card failure" role="alert"><strong>${result.status}</strong>
      ${result.error && html`<pre>${result.error.code}: ${result.error.message}</pre>`}</div>`;
  const rows = result.rows || [];
  return html`<div class="result">
    <p role="status">
      ${`${result.columns && result.columns.length ? `${result.row_count} rows` : `${result.rows_affected ?? 0} rows affected`} in ${result.elapsed_ms} ms `}
      ${result.truncated && html`<strong class="warn">truncated: more rows were there than were kept (max rows or 16 MiB)</strong> `}
      <a href="/api/v1/query-runs/${result.id}/rows?format=csv" download="query-${result.id.slice(0, 8)}.csv">Download CSV</a>
    </p>
    ${result.columns && result.columns.length > 0 && html`<${Grid} columns=${result.columns} rows=${rows} />`}
  </div>`;
}

function Saved({ project, role, saved, onOpen, onChanged }) {
  const [error, setError] = useState(null);
  const toJob = async (e, q) => {
    e.preventDefault();
    const f = Object.fromEntries(new FormData(e.target));
    try {
      const job = await api("POST", `/queries/${q.id}/job`, { destination_table: f.destination_table });
      location.hash = `#/jobs/${job.id}`;
    } catch (err) {
      setError(err);
    }
  };
  return html`<section aria-labelledby="saved-h">
    <h2 id="saved-h">Saved queries</h2>
    <${ErrorNote} error=${error} />
    ${saved.length === 0 ? html`<p class="empty">None yet.</p>` : html`<ul class="saved">
      ${saved.map((q) => html`<li key=${q.id}>
        <button class="quiet" onClick=${() => onOpen(q)}>Open ${q.name}</button>
        <span class="muted">${q.connection}</span>
        ${may(role, "editor") && html`<form class="inline" onSubmit=${(e) => toJob(e, q)} aria-label="Make ${q.name} a transfer job">
          <input name="destination_table" required placeholder="destination table" aria-label="Destination table for ${q.name}" />
          <button type="submit" class="quiet">Make a transfer job</button></form>`}
      </li>`)}
    </ul>`}
  </section>`;
}

export function Console({ id, me }) {
  const [project, setProject] = useState(null);
  const [role, setRole] = useState("viewer");
  const [side, setSide] = useState("origin");
  const [running, setRunning] = useState(null); // the query run's id while it runs
  const [result, setResult] = useState(null);
  const [saved, setSaved] = useState([]);
  const [error, setError] = useState(null);
  const host = useRef(null);
  const view = useRef(null);
  const runRef = useRef(null);

  const loadSaved = () => all(`/projects/${id}/queries`, "queries").then(setSaved, setError);
  useEffect(() => {
    (async () => {
      try {
        const [p, m] = await Promise.all([api("GET", `/projects/${id}`), api("GET", `/projects/${id}/members`)]);
        const mine = m.items.find((x) => x.user === me.user);
        setRole(me.admin ? "owner" : mine ? mine.role : "viewer");
        setProject(p);
        await loadSaved();
      } catch (err) {
        setError(err);
      }
    })();
  }, [id]);
  useEffect(() => {
    if (!project || view.current) return;
    view.current = makeEditor(host.current, "SELECT 1", () => runRef.current());
    return () => view.current && view.current.destroy();
  }, [project]);

  const run = async () => {
    const form = document.getElementById("console-limits");
    const limits = Object.fromEntries(new FormData(form));
    setError(null);
    setResult(null);
    try {
      let r = await api("POST", `/projects/${id}/queries/run`, {
        connection: side, sql: textOf(view.current), wait_seconds: 2,
        max_rows: Number(limits.max_rows), timeout_seconds: Number(limits.timeout_seconds),
      });
      setRunning(r.id);
      while (!FINAL.includes(r.status)) {
        await sleep(300);
        r = await api("GET", `/query-runs/${r.id}`);
      }
      setResult(r);
    } catch (err) {
      setError(err);
    }
    setRunning(null);
  };
  runRef.current = run;
  const cancel = () => api("POST", `/query-runs/${running}/cancel`).catch(setError);
  const save = async (e) => {
    e.preventDefault();
    const name = new FormData(e.target).get("name");
    try {
      await api("POST", `/projects/${id}/queries`, { name, sql: textOf(view.current), connection: side });
      e.target.reset();
      await loadSaved();
    } catch (err) {
      setError(err);
    }
  };
  const open = (q) => {
    setSide(q.connection);
    setText(view.current, q.sql);
  };
  if (!project) return html`<h1>SQL console</h1><${ErrorNote} error=${error} />${!error && html`<p class="loading">Loading…</p>`}`;
  return html`
    <p class="crumbs"><a href="#/projects">Projects</a> / <a href="#/projects/${id}">${project.name}</a> /</p>
    <h1>SQL console</h1>
    <form id="console-limits" class="row" onSubmit=${(e) => (e.preventDefault(), run())} aria-label="Query settings">
      <label>Run on <select value=${side} onChange=${(e) => setSide(e.target.value)}>
        <option value="origin">origin</option><option value="destination">destination</option></select></label>
      <label>Max rows <input name="max_rows" type="number" min="1" max="1000000" defaultValue="1000" /></label>
      <label>Time limit (s) <input name="timeout_seconds" type="number" min="1" max="300" defaultValue="30" /></label>
    </form>
    <div class="editor" ref=${host}></div>
    <p class="buttons">
      <button onClick=${run} disabled=${!!running}>Run (Ctrl+Enter)</button>
      ${running && html`<button class="danger" onClick=${cancel}>Cancel</button> <span role="status">running…</span>`}
    </p>
    <${ErrorNote} error=${error} />
    <${Result} result=${result} />
    ${may(role, "editor") && html`<form class="inline card" onSubmit=${save} aria-label="Save the query">
      <label>Name <input name="name" required maxlength="200" /></label>
      <button type="submit">Save query</button></form>`}
    <${Saved} project=${project} role=${role} saved=${saved} onOpen=${open} onChanged=${loadSaved} />`;
}
