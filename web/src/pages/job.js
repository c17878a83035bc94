// job.js - a new job (from its project's page), and a job's own page: its
// definition, "run now", its schedule with the next fire times, and its run
// history filtered by status and trigger, a page at a time.
import { useEffect, useState } from "preact/hooks";
import { api } from "../api.js";
import { CodeField, ErrorNote, html, may, usePaged, when } from "../ui.js";

const KINDS = {
  sql_transfer: "SQL transfer (origin → destination)",
  sql: "SQL statements",
  python: "Python script",
};

// A job's body from its form's fields. For a change (`change`), an optional field left
// empty is null, which removes it (PATCH lays the body over the stored job).
function jobOf(kind, f, change) {
  const body = { name: f.name };
  if (!change) body.kind = kind;
  const opt = (k, v) => {
    if (v !== "" && v !== undefined) body[k] = v;
    else if (change) body[k] = null;
  };
  const num = (v) => (v === "" || v === undefined ? "" : Number(v));
  if (kind === "sql_transfer") {
    Object.assign(body, { query: f.query, destination_table: f.destination_table, mode: f.mode, load_method: f.load_method });
    opt("key", f.key ? f.key.split(",").map((k) => k.trim()).filter(Boolean) : "");
    opt("watermark_column", f.watermark_column);
    opt("batch_rows", num(f.batch_rows));
    opt("checkpoint_column", f.checkpoint_column);
    opt("transform", f.transform);
  } else if (kind === "sql") {
    Object.assign(body, { statements: f.statements, connection: f.connection });
  } else {
    body.script = f.script;
    opt("parameters", f.parameters ? JSON.parse(f.parameters) : "");
  }
  opt("timeout_seconds", num(f.timeout_seconds));
  return body;
}

// A select whose first choice is `value`, for a form read on submit (Preact sets no
// default on a <select>: without this a change would save its first option instead).
function Choice({ name, value, options, label }) {
  return html`<select name=${name} aria-label=${label}>
    ${options.map((o) => {
      const [v, text] = Array.isArray(o) ? o : [o, o];
      return html`<option value=${v} selected=${v === value}>${text}</option>`;
    })}
  </select>`;
}

// The fields of a job of `kind`, filled from `job` (a change) or empty (a new one).
function JobFields({ kind, job = {} }) {
  const v = (k) => (job[k] === undefined || job[k] === null ? "" : job[k]);
  if (kind === "sql_transfer")
    return html`
      <${CodeField} name="query" label="Query on the origin" value=${v("query")} />
      <div class="row">
        <label>Destination table <input name="destination_table" required defaultValue=${v("destination_table")} /></label>
        <label>Mode <${Choice} name="mode" value=${v("mode") || "append"} options=${["append", "replace", "upsert"]} /></label>
        <label>Load method <${Choice} name="load_method" value=${v("load_method") || "auto"}
          options=${["auto", "copy", "load_data", "insert"]} /></label>
      </div>
      <div class="row">
        <label>Key columns (upsert; comma separated) <input name="key" defaultValue=${(job.key || []).join(", ")} /></label>
        <label>Watermark column (incremental) <input name="watermark_column" defaultValue=${v("watermark_column")} /></label>
      </div>
      <div class="row">
        <label>Rows a batch (batches) <input name="batch_rows" type="number" min="1" defaultValue=${v("batch_rows")} /></label>
        <label>Checkpoint column (batches) <input name="checkpoint_column" defaultValue=${v("checkpoint_column")} /></label>
      </div>
      <${CodeField} name="transform" label="Transform (Python, optional)" lang="python" value=${v("transform")} />
      <label>Time limit in seconds (optional) <input name="timeout_seconds" type="number" min="1" defaultValue=${v("timeout_seconds")} /></label>`;
  if (kind === "sql")
    return html`
      <${CodeField} name="statements" label="Statements" value=${v("statements")} />
      <label>Run on <${Choice} name="connection" value=${v("connection") || "destination"} options=${["destination", "origin"]} /></label>
      <label>Time limit in seconds (optional) <input name="timeout_seconds" type="number" min="1" defaultValue=${v("timeout_seconds")} /></label>`;
  return html`
    <${CodeField} name="script" label="Script" lang="python" value=${v("script")} />
    <label>Parameters (JSON object, optional)
      <textarea name="parameters" rows="3" spellcheck=${false} defaultValue=${job.parameters ? JSON.stringify(job.parameters, null, 2) : ""}></textarea></label>
    <label>Time limit in seconds (optional) <input name="timeout_seconds" type="number" min="1" defaultValue=${v("timeout_seconds")} /></label>`;
}

export function NewJob({ project }) {
  const [kind, setKind] = useState("sql_transfer");
  const [error, setError] = useState(null);
  const submit = async (e) => {
    e.preventDefault();
    setError(null);
    try {
      const job = await api("POST", `/projects/${project.id}/jobs`, jobOf(kind, Object.fromEntries(new FormData(e.target)), false));
      location.hash = `#/jobs/${job.id}`;
    } catch (err) {
      setError(err);
    }
  };
  return html`<details class="card">
    <summary>New job</summary>
    <form onSubmit=${submit} aria-label="New job">
      <label>Name <input name="name" required maxlength="200" /></label>
      <label>Kind
        <select name="kind" value=${kind} onChange=${(e) => setKind(e.target.value)}>
          ${Object.entries(KINDS).map(([k, t]) => html`<option value=${k}>${t}</option>`)}
        </select></label>
      <${JobFields} kind=${kind} key=${kind} />
      <${ErrorNote} error=${error} />
      <button type="submit">Create job</button>
    </form>
  </details>`;
}

// A change of the job, over the version the page read (If-Match): another editor's change
// meanwhile is a 412, said plainly, never overwritten.
function EditJob({ job, onSaved }) {
  const [error, setError] = useState(null);
  const submit = async (e) => {
    e.preventDefault();
    setError(null);
    try {
      const body = jobOf(job.kind, Object.fromEntries(new FormData(e.target)), true);
      onSaved(await api("PATCH", `/jobs/${job.id}`, body, { "If-Match": `"v${job.version}"` }));
    } catch (err) {
      setError(err);
    }
  };
  return html`<form class="card" onSubmit=${submit} aria-label="Edit the job">
    <label>Name <input name="name" required maxlength="200" defaultValue=${job.name} /></label>
    <${JobFields} kind=${job.kind} job=${job} />
    <${ErrorNote} error=${error} />
    <button type="submit">Save the job</button>
  </form>`;
}

function Definition({ job }) {
  const shown = ["kind", "query", "destination_table", "mode", "key", "load_method", "watermark_column",
    "batch_rows", "checkpoint_column", "transform", "statements", "connection", "script", "parameters",
    "timeout_seconds", "version"];
  return html`<dl class="facts">
    ${shown.filter((k) => job[k] !== undefined && job[k] !== null).map((k) => html`
      <dt>${k.replace(/_/g, " ")}</dt>
      <dd>${typeof job[k] === "object" ? html`<pre>${JSON.stringify(job[k], null, 2)}</pre>`
        : typeof job[k] === "string" && job[k].includes("\n") ? html`<pre>${job[k]}</pre>` : String(job[k])}</dd>`)}
  </dl>`;
}

// The fire times of the timing being typed (GET /schedules/preview), a moment after the
// last keystroke; an expression that is not whole yet (not 5 fields) is not asked about.
function usePreview(timing) {
  const [preview, setPreview] = useState(null);
  useEffect(() => {
    const q = new URLSearchParams();
    if (timing.how === "cron") {
      if (timing.cron.trim().split(/\s+/).length !== 5) return setPreview(null);
      q.set("cron", timing.cron.trim());
      q.set("timezone", timing.timezone || "UTC");
    } else {
      if (!/^[1-9][0-9]*$/.test(timing.interval)) return setPreview(null);
      q.set("interval_seconds", timing.interval);
    }
    let live = true;
    const timer = setTimeout(() => {
      api("GET", `/schedules/preview?${q}`).then(
        (r) => live && setPreview({ times: r.next_fire_times }),
        (err) => live && setPreview({ error: err }),
      );
    }, 300);
    return () => {
      live = false;
      clearTimeout(timer);
    };
  }, [timing.how, timing.cron, timing.timezone, timing.interval]);
  return preview;
}

function FireTimes({ times, label }) {
  return html`<ol class="fires" aria-label=${label}>${times.map((t) => html`<li>${when(t)}</li>`)}</ol>`;
}

function Schedule({ job, role }) {
  const [current, setCurrent] = useState(undefined);
  const [error, setError] = useState(null);
  const [timing, setTiming] = useState({ how: "cron", cron: "", timezone: "UTC", interval: "" });
  const preview = usePreview(timing);
  useEffect(() => {
    if (!job.schedule) return setCurrent(null); /* the job says it has none: nothing to ask */
    api("GET", `/jobs/${job.id}/schedule`).then((s) => {
      setCurrent(s);
      setTiming(s.cron ? { how: "cron", cron: s.cron, timezone: s.timezone, interval: "" }
                       : { how: "interval", cron: "", timezone: "UTC", interval: String(s.interval_seconds) });
    }, setError);
  }, [job.id]);
  const set = (k) => (e) => setTiming({ ...timing, [k]: e.target.value });
  const put = async (e) => {
    e.preventDefault();
    const f = Object.fromEntries(new FormData(e.target));
    const body = timing.how === "cron" ? { cron: timing.cron.trim(), timezone: timing.timezone || "UTC" }
                                       : { interval_seconds: Number(timing.interval) };
    Object.assign(body, { misfire: f.misfire, concurrency: f.concurrency, paused: f.paused === "on",
                          max_attempts: Number(f.max_attempts), backoff_seconds: Number(f.backoff_seconds) });
    setError(null);
    try {
      setCurrent(await api("PUT", `/jobs/${job.id}/schedule`, body));
    } catch (err) {
      setError(err);
    }
  };
  const remove = async () => {
    try {
      await api("DELETE", `/jobs/${job.id}/schedule`);
      setCurrent(null);
    } catch (err) {
      setError(err);
    }
  };
  const zones = typeof Intl.supportedValuesOf === "function" ? Intl.supportedValuesOf("timeZone") : ["UTC"];
  const c = current || {};
  return html`<section aria-labelledby="sched-h">
    <h2 id="sched-h">Schedule</h2>
    ${current === undefined
      ? html`<p class="loading">Loading…</p>`
      : current === null
      ? html`<p class="empty">Not scheduled.</p>`
      : html`<p>${c.cron ? `cron ${c.cron} (${c.timezone})` : `every ${c.interval_seconds} s`}${c.paused ? ", paused" : ""};
          misfire ${c.misfire}, concurrency ${c.concurrency}, ${c.max_attempts} attempt(s)</p>
        <p>Next runs:</p><${FireTimes} times=${c.next_fire_times || []} label="Next fire times" />
        ${may(role, "editor") && html`<button class="quiet" onClick=${remove}>Remove the schedule</button>`}`}
    ${may(role, "editor") &&
    html`<form class="card" onSubmit=${put} aria-label="Set the schedule">
      <label>Timing
        <select value=${timing.how} onChange=${set("how")}>
          <option value="cron">cron expression</option><option value="interval">every N seconds</option>
        </select></label>
      ${timing.how === "cron"
        ? html`<div class="row">
            <label>Cron (5 fields) <input name="cron" required placeholder="*/5 * * * *" value=${timing.cron} onInput=${set("cron")} /></label>
            <label>Time zone <input name="timezone" list="zones" value=${timing.timezone} onInput=${set("timezone")} /></label>
            <datalist id="zones">${zones.map((z) => html`<option value=${z} />`)}</datalist>
          </div>`
        : html`<label>Seconds <input name="interval" type="number" min="1" required value=${timing.interval} onInput=${set("interval")} /></label>`}
      <div aria-live="polite">
        ${preview && preview.error && html`<${ErrorNote} error=${preview.error} />`}
        ${preview && preview.times && html`<p class="muted">It would fire at:</p><${FireTimes} times=${preview.times} label="Fire times as typed" />`}
      </div>
      <div class="row">
        <label>When ticks were missed <${Choice} name="misfire" value=${c.misfire || "run_once"}
          options=${[["run_once", "run once"], ["run_all", "run each"], ["skip", "skip them"]]} /></label>
        <label>While a run is going <${Choice} name="concurrency" value=${c.concurrency || "allow"}
          options=${[["allow", "start another"], ["forbid", "skip the tick"], ["queue", "queue it"]]} /></label>
      </div>
      <div class="row">
        <label>Attempts <input name="max_attempts" type="number" min="1" max="100" defaultValue=${c.max_attempts || 1} /></label>
        <label>First retry after (s) <input name="backoff_seconds" type="number" min="1" max="86400" defaultValue=${c.backoff_seconds || 60} /></label>
      </div>
      <label class="check"><input name="paused" type="checkbox" defaultChecked=${!!c.paused} /> paused</label>
      <${ErrorNote} error=${error} />
      <button type="submit">Save schedule</button>
    </form>`}
  </section>`;
}

const STATUSES = ["", "queued", "running", "retrying", "succeeded", "failed", "cancelled", "timed_out", "missed", "skipped"];

function History({ job }) {
  const [filter, setFilter] = useState({ status: "", trigger: "", since: "", until: "" });
  const q = new URLSearchParams({ limit: "20" });
  if (filter.status) q.set("status", filter.status);
  if (filter.trigger) q.set("trigger", filter.trigger);
  // datetime-local fields hold the browser's local time; the API takes RFC 3339.
  if (filter.since) q.set("since", new Date(filter.since).toISOString());
  if (filter.until) q.set("until", new Date(filter.until).toISOString());
  const runs = usePaged(`/jobs/${job.id}/runs?${q}`, "runs");
  const pick = (k) => (e) => setFilter({ ...filter, [k]: e.target.value });
  return html`<section aria-labelledby="hist-h">
    <h2 id="hist-h">Runs</h2>
    <div class="row filters">
      <label>Status <select value=${filter.status} onChange=${pick("status")}>
        ${STATUSES.map((s) => html`<option value=${s}>${s || "any"}</option>`)}</select></label>
      <label>Trigger <select value=${filter.trigger} onChange=${pick("trigger")}>
        ${["", "manual", "schedule", "external"].map((s) => html`<option value=${s}>${s || "any"}</option>`)}</select></label>
      <label>From <input type="datetime-local" value=${filter.since} onChange=${pick("since")} /></label>
      <label>Until <input type="datetime-local" value=${filter.until} onChange=${pick("until")} /></label>
    </div>
    <${ErrorNote} error=${runs.error} />
    <div class="scroll"><table>
      <thead><tr><th scope="col">Run</th><th scope="col">Status</th><th scope="col">Trigger</th><th scope="col">Queued</th><th scope="col">Rows written</th></tr></thead>
      <tbody>${(runs.items || []).map((r) => html`<tr key=${r.id}>
        <td><a href="#/runs/${r.id}">${r.id.slice(0, 8)}</a></td>
        <td><span class="mark ${r.status}"></span> ${r.status}</td><td>${r.trigger || "—"}</td>
        <td>${when(r.queued_at || r.created_at)}</td><td>${r.rows_written ?? "—"}</td></tr>`)}</tbody>
    </table></div>
    ${runs.items && runs.items.length === 0 && html`<p class="empty">No runs.</p>`}
    ${runs.next && html`<button class="quiet" onClick=${runs.more}>More runs</button>`}
  </section>`;
}

export function Job({ id, me }) {
  const [job, setJob] = useState(null);
  const [project, setProject] = useState(null);
  const [role, setRole] = useState("viewer");
  const [error, setError] = useState(null);
  useEffect(() => {
    (async () => {
      try {
        const j = await api("GET", `/jobs/${id}`);
        const [members, p] = await Promise.all([
          api("GET", `/projects/${j.project_id}/members`), api("GET", `/projects/${j.project_id}`)]);
        setProject(p);
        const mine = members.items.find((m) => m.user === me.user);
        setRole(me.admin ? "owner" : mine ? mine.role : "viewer");
        setJob(j);
      } catch (err) {
        setError(err);
      }
    })();
  }, [id]);
  const [editing, setEditing] = useState(false);
  const runNow = async () => {
    try {
      const r = await api("POST", `/jobs/${id}/runs`);
      location.hash = `#/runs/${r.run_id}`;
    } catch (err) {
      setError(err);
    }
  };
  if (!job) return html`<h1>Job</h1><${ErrorNote} error=${error} />${!error && html`<p class="loading">Loading…</p>`}`;
  return html`
    <p class="crumbs"><a href="#/projects">Projects</a> / <a href="#/projects/${job.project_id}">${project.name}</a> /</p>
    <h1>${job.name}</h1>
    <p class="buttons">
      ${may(role, "runner") && html`<button onClick=${runNow}>Run now</button>`}
      ${may(role, "editor") && html`<button class="quiet" onClick=${() => setEditing(!editing)}>${editing ? "Stop editing" : "Edit"}</button>`}
    </p>
    <${ErrorNote} error=${error} />
    ${editing
      ? html`<${EditJob} job=${job} onSaved=${(j) => (setJob(j), setEditing(false))} />`
      : html`<${Definition} job=${job} />`}
    <${Schedule} job=${job} role=${role} />
    <${History} job=${job} />`;
}
