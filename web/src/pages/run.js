// run.js - one run: its status, trigger, attempts, times, rows and error in
// full; while it runs, live progress and log lines from its event stream
// (GET /runs/{id}/stream, Server-Sent Events) and a cancel button; its log,
// searchable and filtered by stream.
import { useEffect, useRef, useState } from "preact/hooks";
import { api } from "../api.js";
import { count, ErrorNote, html, when } from "../ui.js";

const FINAL = ["succeeded", "failed", "cancelled", "timed_out", "missed", "skipped"];

function Facts({ run }) {
  const rows = [
    ["status", html`<span class="mark ${run.status}"></span> <strong>${run.status}</strong>`],
    ["trigger", run.trigger || "—"],
    ["attempt", `${run.attempt || 0} of ${run.max_attempts || 1}`],
    ["queued", when(run.queued_at || run.created_at)],
    ["started", when(run.started_at)],
    ["ended", when(run.finished_at || run.ended_at)],
    ["rows read", count(run.rows_read)],
    ["rows written", count(run.rows_written)],
  ];
  return html`<dl class="facts">${rows.map(([k, v]) => html`<dt>${k}</dt><dd>${v}</dd>`)}</dl>
    ${run.error && html`<div class="card failure" role="alert"><strong>${run.error.code}</strong>
      <pre>${run.error.message}</pre></div>`}`;
}

// The bar and the time left need the origin's estimate of the rows
// (rows_expected, a planner's guess): past it, only the counts show.
function Progress({ progress, total }) {
  if (!progress) return null;
  const known = total > 0 && progress.rows_read < total;
  const pct = known ? (100 * progress.rows_read) / total : null;
  const eta = known && progress.rows_per_second > 0 ? (total - progress.rows_read) / progress.rows_per_second : null;
  return html`<div class="progress" role="status" aria-live="polite">
    ${pct !== null && html`<progress max="100" value=${pct} aria-label="Rows read"></progress>`}
    <span>${count(progress.rows_read)} rows read${known ? ` of about ${count(total)}` : ""}${", "}${
      count(Math.round(progress.rows_per_second || 0))} rows/s${eta !== null ? `, about ${count(Math.ceil(eta))} s left` : ""}</span>
  </div>`;
}

function Log({ id, live }) {
  const [q, setQ] = useState("");
  const [stream, setStream] = useState("");
  const [lines, setLines] = useState([]);
  const [error, setError] = useState(null);
  const asked = useRef(0); // answers that come back out of order are dropped
  useEffect(() => {
    const mine = ++asked.current;
    const p = new URLSearchParams({ type: "run.log", limit: "1000" });
    if (q) p.set("q", q);
    if (stream) p.set("stream", stream);
    api("GET", `/runs/${id}/events?${p}`).then((r) => mine === asked.current && setLines(r.events), setError);
  }, [id, q, stream, live.length]);
  const search = (e) => {
    e.preventDefault();
    setQ(new FormData(e.target).get("q"));
  };
  return html`<section aria-labelledby="log-h">
    <h2 id="log-h">Log</h2>
    <form class="inline" onSubmit=${search} role="search" aria-label="Search the log">
      <input name="q" type="search" placeholder="text in a line" aria-label="Text to find" />
      <select value=${stream} onChange=${(e) => setStream(e.target.value)} aria-label="Stream">
        <option value="">both streams</option><option value="stdout">stdout</option><option value="stderr">stderr</option>
      </select>
      <button type="submit">Search</button>
    </form>
    <${ErrorNote} error=${error} />
    ${lines.length === 0
      ? html`<p class="empty">${q ? `No line holds “${q}”.` : "No log lines."}</p>`
      : html`<pre class="log" aria-label="Log lines">${lines.map((l) => html`<span class=${l.stream}>${l.line}\n</span>`)}</pre>`}
  </section>`;
}

export function Run({ id }) {
  const [run, setRun] = useState(null);
  const [job, setJob] = useState(null);
  const [progress, setProgress] = useState(null);
  const [live, setLive] = useState([]);
  const [error, setError] = useState(null);
  const source = useRef(null);
  useEffect(() => {
    api("GET", `/runs/${id}`).then((r) => {
      setRun(r);
      api("GET", `/jobs/${r.job_id}`).then(setJob, () => setJob({ id: r.job_id, name: "its job" }));
      if (FINAL.includes(r.status)) return;
      const es = (source.current = new EventSource(`/api/v1/runs/${id}/stream`));
      es.addEventListener("run", (e) => setRun(JSON.parse(e.data)));
      es.addEventListener("progress", (e) => setProgress(JSON.parse(e.data)));
      es.addEventListener("log", (e) => setLive((old) => old.concat([JSON.parse(e.data)])));
      es.addEventListener("end", () => {
        es.close();
        api("GET", `/runs/${id}`).then(setRun, setError);
      });
    }, setError);
    return () => source.current && source.current.close();
  }, [id]);
  const cancel = async () => {
    try {
      await api("POST", `/runs/${id}/cancel`);
    } catch (err) {
      setError(err);
    }
  };
  if (!run) return html`<h1>Run</h1><${ErrorNote} error=${error} />${!error && html`<p class="loading">Loading…</p>`}`;
  const going = !FINAL.includes(run.status);
  return html`
    <p class="crumbs"><a href="#/projects">Projects</a> / ${job && html`<a href="#/jobs/${job.id}">${job.name}</a> /`}</p>
    <h1>Run ${id.slice(0, 8)}</h1>
    <${ErrorNote} error=${error} />
    <${Facts} run=${progress && going ? { ...run, rows_read: progress.rows_read } : run} />
    ${going && html`<${Progress} progress=${progress} total=${(progress && progress.rows_expected) || run.rows_expected} />
      <p><button class="danger" onClick=${cancel}>Cancel the run</button></p>`}
    <${Log} id=${id} live=${live} />`;
}
