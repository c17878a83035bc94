// project.js - one project: its connections (add with a driver picker, test on
// a worker), its jobs with their last runs, and its members (owners share).
import { useEffect, useState } from "preact/hooks";
import { all, api } from "../api.js";
import { ErrorNote, html, Lazy, may, when } from "../ui.js";
import { Connections } from "./connections.js";
import { Members } from "./members.js";
import { NewJob } from "./job.js";
import { ProjectAudit, Webhooks } from "./webhooks.js";

function schedule(job) {
  const s = job.schedule;
  if (!s) return "—";
  const timing = s.cron ? `cron ${s.cron} (${s.timezone || "UTC"})` : `every ${s.interval_seconds} s`;
  return s.paused ? `${timing}, paused` : timing;
}

// The job's last runs, oldest to newest, as coloured marks.
function Strip({ job }) {
  const [runs, setRuns] = useState(null);
  useEffect(() => {
    api("GET", `/jobs/${job.id}/runs?limit=10`)
      .then((r) => setRuns(r.runs.slice().reverse()))
      .catch(() => setRuns([]));
  }, [job.id]);
  if (runs === null) return html`<span class="muted">…</span>`;
  if (runs.length === 0) return html`<span class="muted">no runs yet</span>`;
  return html`<span class="strip" role="img" aria-label=${`last runs: ${runs.map((r) => r.status).join(", ")}`}>
    ${runs.map((r) => html`<span class="mark ${r.status}" title="${r.status} ${when(r.created_at)}"></span>`)}
  </span>`;
}

function Jobs({ project, role }) {
  const [jobs, setJobs] = useState(null);
  const [error, setError] = useState(null);
  useEffect(() => {
    all(`/projects/${project.id}/jobs`, "jobs").then(setJobs, setError);
  }, [project.id]);
  return html`<section aria-labelledby="jobs-h">
    <h2 id="jobs-h">Jobs</h2>
    ${may(role, "editor") && html`<${NewJob} project=${project} />`}
    <${ErrorNote} error=${error} />
    ${jobs === null
      ? html`<p class="loading">Loading…</p>`
      : jobs.length === 0
      ? html`<p class="empty">No jobs yet.</p>`
      : html`<div class="scroll"><table>
          <thead><tr><th scope="col">Name</th><th scope="col">Kind</th><th scope="col">Schedule</th><th scope="col">Last runs</th></tr></thead>
          <tbody>${jobs.map((j) => html`<tr key=${j.id}>
            <td><a href="#/jobs/${j.id}">${j.name}</a></td><td>${j.kind}</td><td>${schedule(j)}</td><td><${Strip} job=${j} /></td></tr>`)}
          </tbody></table></div>`}
  </section>`;
}

export function Project({ id, me }) {
  const [project, setProject] = useState(null);
  const [members, setMembers] = useState(null);
  const [error, setError] = useState(null);
  const load = async () => {
    try {
      const [p, m] = await Promise.all([api("GET", `/projects/${id}`), all(`/projects/${id}/members`, "items")]);
      setProject(p);
      setMembers(m);
    } catch (err) {
      setError(err);
    }
  };
  useEffect(() => {
    load();
  }, [id]);
  if (error) return html`<h1>Project</h1><${ErrorNote} error=${error} />`;
  if (!project) return html`<p class="loading">Loading…</p>`;
  const mine = members.find((m) => m.user === me.user);
  const role = me.admin ? "owner" : mine ? mine.role : "viewer";
  return html`
    <p class="crumbs"><a href="#/projects">Projects</a> /</p>
    <h1>${project.name} <span class="state ${project.active ? "on" : "off"}">${project.active ? "active" : "inactive"}</span></h1>
    <p class="muted">Your role: <strong>${role}</strong>
      ${may(role, "runner") && html` · <a href="#/projects/${project.id}/console">SQL console</a>`}</p>
    <section aria-labelledby="dash-h">
      <h2 id="dash-h">Dashboard</h2>
      <${Lazy} load=${() => import("./dashboard.js")} name="Dashboard" project=${project} />
    </section>
    <${Connections} project=${project} role=${role} />
    <${Jobs} project=${project} role=${role} />
    <${Members} project=${project} members=${members} role=${role} onChanged=${load} />
    <${Webhooks} project=${project} role=${role} />
    <${ProjectAudit} project=${project} role=${role} />`;
}
