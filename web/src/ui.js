// ui.js - what every page shares: htm bound to Preact, and small pieces.
import { h } from "preact";
import { useEffect, useState } from "preact/hooks";
import htm from "htm";

export const html = htm.bind(h);

// An error from the API (ApiError) as the user should read it: which field, why.
export function ErrorNote({ error }) {
  if (!error) return null;
  return html`<p class="error" role="alert">
    ${error.field ? html`<strong>${error.field}</strong>: ` : ""}${error.message}
  </p>`;
}

export function when(iso) {
  if (!iso) return "—";
  const d = new Date(iso);
  return d.toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" });
}

// Whether a role may do what `need` may (viewer < runner < editor < owner).
const RANK = { viewer: 0, runner: 1, editor: 2, owner: 3 };
export const may = (role, need) => RANK[role] >= RANK[need];

// A page loaded on demand (its own chunk): the console and its editor.
export function Lazy({ load, name, ...props }) {
  const [mod, setMod] = useState(null);
  const [failed, setFailed] = useState(null);
  useEffect(() => {
    load().then(setMod, setFailed);
  }, []);
  if (failed) return html`<p class="error" role="alert">This page could not be loaded: ${failed.message}</p>`;
  if (!mod) return html`<p class="loading">Loading…</p>`;
  const Page = mod[name];
  return html`<${Page} ...${props} />`;
}

