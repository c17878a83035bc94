// dashboard.js - a project's numbers as charts (uPlot, loaded with this page
// only): runs per day by final status, duration p50 and p95, rows moved; from
// GET /projects/{id}/stats.
import { useEffect, useRef, useState } from "preact/hooks";
import uPlot from "uplot";
import { api } from "../api.js";
import { ErrorNote, html } from "../ui.js";

const STATUS_COLORS = { succeeded: "#1a7f37", failed: "#b42318", timed_out: "#e36209", cancelled: "#8c959f" };

function Chart({ title, data, series, width }) {
  const host = useRef(null);
  useEffect(() => {
    if (!host.current) return;
    const plot = new uPlot({ title, width, height: 220, series: [{}, ...series], axes: [{}, { size: 60 }] }, data, host.current);
    return () => plot.destroy();
  }, [data, width]);
  return html`<figure class="chart" ref=${host} aria-label=${title}></figure>`;
}

export function Dashboard({ project }) {
  const [stats, setStats] = useState(null);
  const [error, setError] = useState(null);
  const [width, setWidth] = useState(Math.min(720, innerWidth - 48));
  useEffect(() => {
    const since = new Date(Date.now() - 14 * 86400000).toISOString().slice(0, 10) + "T00:00:00Z";
    api("GET", `/projects/${project.id}/stats?bucket=day&since=${since}`).then(setStats, setError);
    const on = () => setWidth(Math.min(720, innerWidth - 48));
    addEventListener("resize", on);
    return () => removeEventListener("resize", on);
  }, [project.id]);
  if (error) return html`<${ErrorNote} error=${error} />`;
  if (!stats) return html`<p class="loading">Loading…</p>`;
  const b = stats.buckets;
  const x = b.map((k) => Date.parse(k.start) / 1000);
  const statuses = Object.keys(STATUS_COLORS);
  const t = stats.totals;
  return html`<div class="dashboard">
    <p role="status">${`Last 14 days: ${t.total} runs, ${t.runs.succeeded || 0} succeeded, ${t.runs.failed || 0} failed; ` +
      `${t.rows_written} rows written` +
      (t.duration_ms.p50 !== null ? `; duration p50 ${t.duration_ms.p50} ms, p95 ${t.duration_ms.p95} ms` : "") + "."}</p>
    <${Chart} title="Runs per day by status" width=${width}
      data=${[x, ...statuses.map((s) => b.map((k) => k.runs[s] || 0))]}
      series=${statuses.map((s) => ({ label: s, stroke: STATUS_COLORS[s], width: 2 }))} />
    <${Chart} title="Duration (ms)" width=${width}
      data=${[x, b.map((k) => k.duration_ms.p50), b.map((k) => k.duration_ms.p95)]}
      series=${[{ label: "p50", stroke: "#1f5fbf", width: 2 }, { label: "p95", stroke: "#8250df", width: 2 }]} />
    <${Chart} title="Rows moved" width=${width}
      data=${[x, b.map((k) => k.rows_read), b.map((k) => k.rows_written)]}
      series=${[{ label: "read", stroke: "#57606a", width: 2 }, { label: "written", stroke: "#1a7f37", width: 2 }]} />
  </div>`;
}
