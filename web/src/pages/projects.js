// projects.js - the caller's projects: create (with their two connections),
// rename, activate or deactivate, delete after a confirmation.
import { useEffect, useRef, useState } from "preact/hooks";
import { all, api } from "../api.js";
import { ErrorNote, html, when } from "../ui.js";

// One end of a new project: its connection's name and ODBC string.
function End({ side, legend, example }) {
  return html`<fieldset>
    <legend>${legend}</legend>
    <label>Connection name <input name="${side}_name" required /></label>
    <label>ODBC connection string
      <input name="${side}_odbc" required placeholder=${example} autocomplete="off" /></label>
  </fieldset>`;
}

function NewProject({ onMade }) {
  const [error, setError] = useState(null);
  const [busy, setBusy] = useState(false);
  const box = useRef(null);
  const submit = async (e) => {
    e.preventDefault();
    const f = new FormData(e.target);
    setBusy(true);
    setError(null);
    try {
      const origin = await api("POST", "/connections", { name: f.get("origin_name"), odbc: f.get("origin_odbc") });
      const dest = await api("POST", "/connections", { name: f.get("dest_name"), odbc: f.get("dest_odbc") });
      await api("POST", "/projects", {
        name: f.get("name"),
        origin_connection_id: origin.id,
        destination_connection_id: dest.id,
      });
      e.target.reset();
      box.current.open = false;
      await onMade();
    } catch (err) {
      setError(err);
    }
    setBusy(false);
  };
  return html`
    <details class="card" ref=${box}>
      <summary>New project</summary>
      <form onSubmit=${submit} aria-label="New project">
        <label>Name <input name="name" required maxlength="200" /></label>
        <${End} side="origin" legend="Origin (where data is read)"
          example="Driver=SQLite3;Database=/data/shop.db" />
        <${End} side="dest" legend="Destination (where data is written)"
          example="Driver=PostgreSQL Unicode;Server=db;Database=dw;UID=etl;PWD=…" />
        <${ErrorNote} error=${error} />
        <button type="submit" disabled=${busy}>Create project</button>
      </form>
    </details>`;
}

// Each project's summary (last run, failures of the day, next scheduled run), asked a
// few at a time so that a long list does not flood the API.
function useSummaries(projects) {
  const [got, setGot] = useState({});
  useEffect(() => {
    if (!projects) return;
    let live = true;
    const queue = projects.map((p) => p.id);
    const worker = async () => {
      while (live && queue.length) {
        const id = queue.shift();
        const s = await api("GET", `/projects/${id}/summary`).catch(() => null);
        if (live && s) setGot((old) => ({ ...old, [id]: s }));
      }
    };
    for (let i = 0; i < 6; i++) worker();
    return () => {
      live = false;
    };
  }, [projects]);
  return got;
}

function Summary({ s }) {
  if (!s) return html`<td>…</td><td>…</td><td class="wide">…</td>`;
  return html`
    <td>${s.last_run
      ? html`<a href="#/runs/${s.last_run.id}"><span class="mark ${s.last_run.status}"></span> ${s.last_run.status}</a>
        <span class="muted"> ${when(s.last_run.ended_at)}</span>`
      : html`<span class="muted">none in 30 days</span>`}</td>
    <td class=${s.failures_24h ? "error" : ""}>${s.failures_24h}</td>
    <td class="wide">${s.next_run ? html`${when(s.next_run.at)} <span class="muted">(${s.next_run.job})</span>` : "—"}</td>`;
}

function Row({ p, summary, onChanged, onError }) {
  const [renaming, setRenaming] = useState(false);
  const [confirming, setConfirming] = useState(false);
  const change = async (body) => {
    try {
      await api("PATCH", `/projects/${p.id}`, body);
      setRenaming(false);
      await onChanged();
    } catch (err) {
      onError(err);
    }
  };
  const remove = async () => {
    try {
      await api("DELETE", `/projects/${p.id}`);
      await onChanged();
    } catch (err) {
      onError(err);
    }
  };
  const rename = (e) => {
    e.preventDefault();
    change({ name: new FormData(e.target).get("name") });
  };
  return html`
    <tr>
      <td>
        ${renaming
          ? html`<form class="inline" onSubmit=${rename} aria-label="Rename ${p.name}">
              <input name="name" value=${p.name} required aria-label="New name" />
              <button type="submit">Save</button>
              <button type="button" class="quiet" onClick=${() => setRenaming(false)}>Cancel</button>
            </form>`
          : html`<a class="name" href="#/projects/${p.id}">${p.name}</a>`}
      </td>
      <td><span class="state ${p.active ? "on" : "off"}">${p.active ? "active" : "inactive"}</span></td>
      <${Summary} s=${summary} />
      <td><div class="actions">
        ${confirming
          ? html`<span role="alert">Delete ${p.name} and its jobs?</span>
              <button class="danger" onClick=${remove}>Delete</button>
              <button class="quiet" onClick=${() => setConfirming(false)}>Keep</button>`
          : html`<button class="quiet" onClick=${() => setRenaming(true)}>Rename</button>
              <button class="quiet" onClick=${() => change({ active: !p.active })}>
                ${p.active ? "Deactivate" : "Activate"}</button>
              <button class="quiet" onClick=${() => setConfirming(true)}>Delete…</button>`}
      </div></td>
    </tr>`;
}

export function Projects() {
  const [projects, setProjects] = useState(null);
  const [error, setError] = useState(null);
  const summaries = useSummaries(projects);
  const load = async () => {
    try {
      setProjects(await all("/projects", "projects"));
      setError(null);
    } catch (err) {
      setError(err);
    }
  };
  useEffect(() => {
    load();
  }, []);
  return html`
    <h1>Projects</h1>
    <${NewProject} onMade=${load} />
    <${ErrorNote} error=${error} />
    ${projects === null
      ? html`<p class="loading">Loading…</p>`
      : projects.length === 0
      ? html`<p class="empty">No projects yet: create one above.</p>`
      : html`<div class="scroll"><table>
          <thead><tr><th scope="col">Name</th><th scope="col">State</th><th scope="col">Last run</th><th scope="col">Failures, 24 h</th><th scope="col" class="wide">Next run</th><th scope="col"><span class="sr">Actions</span></th></tr></thead>
          <tbody>${projects.map((p) => html`<${Row} key=${p.id} p=${p} summary=${summaries[p.id]} onChanged=${load} onError=${setError} />`)}</tbody>
        </table></div>`}`;
}
