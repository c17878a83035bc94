// job.js - a new job (from its project's page), and a job's own page: its
// definition, "run now", its schedule with the next fire times, and its run
// history filtered by status and trigger, a page at a time.
import { useEffect, useState } from "preact/hooks";
import { api } from "../api.js";
import { ErrorNote, html, may, usePaged, when } from "../ui.js";

const KINDS = {
  sql_transfer: "SQL transfer (origin → destination)",
  sql: "SQL statements",
  python: "Python script",
};

// The body of a new job from its form's fields.
function jobOf(kind, f) {
  const body = { name: f.name, kind };
  if (kind === "sql_transfer") {
    Object.assign(body, { query: f.query, destination_table: f.destination_table, mode: f.mode });
    if (f.key) body.key = f.key.split(",").map((k) => k.trim()).filter(Boolean);
    if (f.watermark_column) body.watermark_column = f.watermark_column;
  } else if (kind === "sql") {
    Object.assign(body, { statements: f.statements, connection: f.connection });
  } else {
    body.script = f.script;
  }
  return body;
}

export function NewJob({ project, onMade }) {
  const [kind, setKind] = useState("sql_transfer");
  const [error, setError] = useState(null);
  const submit = async (e) => {
    e.preventDefault();
    setError(null);
    try {
      const job = await api("POST", `/projects/${project.id}/jobs`, jobOf(kind, Object.fromEntries(new FormData(e.target))));
      location.hash = `#/jobs/${job.id}`;
      if (onMade) onMade(job);
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
      ${kind === "sql_transfer"
        ? html`<label>Query on the origin <textarea name="query" required rows="4" spellcheck=${false}></textarea></label>
          <div class="row">
            <label>Destination table <input name="destination_table" required /></label>
            <label>Mode <select name="mode"><option>append</option><option>replace</option><option>upsert</option></select></label>
          </div>
          <div class="row">
            <label>Key columns (upsert; comma separated) <input name="key" /></label>
            <label>Watermark column (incremental; optional) <input name="watermark_column" /></label>
          </div>`
        : kind === "sql"
        ? html`<label>Statements <textarea name="statements" required rows="6" spellcheck=${false}></textarea></label>
          <label>Run on <select name="connection"><option>destination</option><option>origin</option></select></label>`
        : html`<label>Script <textarea name="script" required rows="10" spellcheck=${false} class="code"></textarea></label>`}
      <${ErrorNote} error=${error} />
      <button type="submit">Create job</button>
    </form>
  </details>`;
}

function Definition({ job }) {
  const shown = ["kind", "query", "destination_table", "mode", "key", "load_method", "watermark_column",
    "batch_rows", "statements", "connection", "script", "timeout_seconds", "version"];
  return html`<dl class="facts">
    ${shown.filter((k) => job[k] !== undefined && job[k] !== null).map((k) => html`
      <dt>${k.replace(/_/g, " ")}</dt>
      <dd>${typeof job[k] === "string" && job[k].includes("\n") ? html`<pre>${job[k]}</pre>` : String(job[k])}</dd>`)}
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
        <label>When ticks were missed <select name="misfire" defaultValue=${c.misfire || "run_once"}>
          <option value="run_once">run once</option><option value="run_all">run each</option><option value="skip">skip them</option></select></label>
        <label>While a run is going <select name="concurrency" defaultValue=${c.concurrency || "allow"}>
          <option value="allow">start another</option><option value="forbid">skip the tick</option><option value="queue">queue it</option></select></label>
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
  const [filter, setFilter] = useState({ status: "", trigger: "" });
  const q = new URLSearchParams({ limit: "20" });
  if (filter.status) q.set("status", filter.status);
  if (filter.trigger) q.set("trigger", filter.trigger);
  const runs = usePaged(`/jobs/${job.id}/runs?${q}`, "runs");
  const pick = (k) => (e) => setFilter({ ...filter, [k]: e.target.value });
  return html`<section aria-labelledby="hist-h">
    <h2 id="hist-h">Runs</h2>
    <div class="row filters">
      <label>Status <select value=${filter.status} onChange=${pick("status")}>
        ${STATUSES.map((s) => html`<option value=${s}>${s || "any"}</option>`)}</select></label>
      <label>Trigger <select value=${filter.trigger} onChange=${pick("trigger")}>
        ${["", "manual", "schedule", "external"].map((s) => html`<option value=${s}>${s || "any"}</option>`)}</select></label>
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
    ${may(role, "runner") && html`<p><button onClick=${runNow}>Run now</button></p>`}
    <${ErrorNote} error=${error} />
    <${Definition} job=${job} />
    <${Schedule} job=${job} role=${role} />
    <${History} job=${job} />`;
}
