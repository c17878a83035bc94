// ui.js - what every page shares: htm bound to Preact, and small pieces.
import { h } from "preact";
import { useEffect, useRef, useState } from "preact/hooks";
import { api } from "./api.js";
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

// A count as the reader's locale writes it (5,081,992); "—" when there is none.
export const count = (n) => (n === undefined || n === null ? "—" : Number(n).toLocaleString());

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


// A paginated list (`next` cursors) read a page at a time: the items so far,
// whether there are more, and the error if a page could not be read. A new
// path (other filters) starts again from its first page.
export function usePaged(path, key) {
  const [items, setItems] = useState(null);
  const [next, setNext] = useState(null);
  const [error, setError] = useState(null);
  const load = async (cursor) => {
    const sep = path.includes("?") ? "&" : "?";
    try {
      const page = await api("GET", path + (cursor ? `${sep}cursor=${encodeURIComponent(cursor)}` : ""));
      setItems((old) => (cursor ? old.concat(page[key]) : page[key]));
      setNext(page.next);
      setError(null);
    } catch (err) {
      setError(err);
    }
  };
  useEffect(() => {
    load(null);
  }, [path]);
  return { items, next, error, more: () => load(next), reload: () => load(null) };
}

// A form field of code (SQL or Python) in CodeMirror, loaded on first use; its text goes
// with the form in a hidden input named `name`.
export function CodeField({ name, label, lang = "sql", value = "" }) {
  const host = useRef(null);
  const hidden = useRef(null);
  useEffect(() => {
    let view = null;
    let live = true;
    import("./editor.js").then(({ makeEditor }) => {
      if (!live) return;
      view = makeEditor(host.current, value, null, {
        lang,
        label,
        onChange: (text) => (hidden.current.value = text),
      });
    });
    return () => {
      live = false;
      if (view) view.destroy();
    };
  }, []);
  return html`<div class="field">
    <span class="field-label" aria-hidden="true">${label}</span>
    <div class="editor" ref=${host}></div>
    <input type="hidden" name=${name} value=${value} ref=${hidden} />
  </div>`;
}

// A change through the API followed by `after` (a reload): act(method, path, body) gives
// {value} (the answer) when it worked and null when not; the error is kept for the page.
export function useAction(after) {
  const [error, setError] = useState(null);
  const act = async (method, path, body) => {
    setError(null);
    try {
      const value = await api(method, path, body);
      if (after) await after();
      return { value };
    } catch (err) {
      setError(err);
      return null;
    }
  };
  return [act, error];
}
