// grid.js - a result grid that stays fast at 10,000 rows and more: only the
// rows in view (and a few around them) are in the page at any time.
import { useState } from "preact/hooks";
import { html } from "./ui.js";

const ROW = 30; // px, each row's height (app.css: .grid td)
const VIEW = 420; // px, the grid's height

function cell(v) {
  if (v === null) return html`<span class="null">NULL</span>`;
  return typeof v === "object" ? JSON.stringify(v) : String(v);
}

export function Grid({ columns, rows }) {
  const [top, setTop] = useState(0);
  const first = Math.max(0, Math.floor(top / ROW) - 10);
  const last = Math.min(rows.length, first + Math.ceil(VIEW / ROW) + 20);
  return html`<div class="grid" onScroll=${(e) => setTop(e.currentTarget.scrollTop)} tabindex="0"
      role="region" aria-label="Result rows">
    <table aria-rowcount=${rows.length + 1}>
      <thead><tr>${columns.map((c) => html`<th scope="col" title=${c.type}>${c.name}</th>`)}</tr></thead>
      <tbody>
        ${first > 0 && html`<tr aria-hidden="true" style=${{ height: `${first * ROW}px` }}></tr>`}
        ${rows.slice(first, last).map((r, i) => html`<tr key=${first + i} aria-rowindex=${first + i + 2}>
          ${r.map((v) => html`<td>${cell(v)}</td>`)}</tr>`)}
        ${last < rows.length && html`<tr aria-hidden="true" style=${{ height: `${(rows.length - last) * ROW}px` }}></tr>`}
      </tbody>
    </table>
  </div>`;
}
