// inbox.js - the caller's notifications: failed runs (and successes when
// asked for) of their projects, newest first, each linked to its run; mark
// one read, or all of them.
import { useEffect, useState } from "preact/hooks";
import { api } from "../api.js";
import { ErrorNote, html, when } from "../ui.js";

export function Inbox({ onRead }) {
  const [items, setItems] = useState(null);
  const [next, setNext] = useState(null);
  const [unreadOnly, setUnreadOnly] = useState(false);
  const [error, setError] = useState(null);
  const load = async (cursor) => {
    const q = new URLSearchParams({ limit: "50" });
    if (unreadOnly) q.set("unread", "true");
    if (cursor) q.set("cursor", cursor);
    try {
      const page = await api("GET", `/notifications?${q}`);
      setItems((old) => (cursor ? old.concat(page.notifications) : page.notifications));
      setNext(page.next);
    } catch (err) {
      setError(err);
    }
  };
  useEffect(() => {
    load(null);
  }, [unreadOnly]);
  const read = async (path) => {
    try {
      await api("POST", path);
      await load(null);
      onRead();
    } catch (err) {
      setError(err);
    }
  };
  return html`
    <h1>Notifications</h1>
    <div class="buttons">
      <label class="check"><input type="checkbox" checked=${unreadOnly} onChange=${(e) => setUnreadOnly(e.target.checked)} /> unread only</label>
      <button class="quiet" onClick=${() => read("/notifications/read-all")}>Mark all read</button>
    </div>
    <${ErrorNote} error=${error} />
    ${items === null
      ? html`<p class="loading">Loading…</p>`
      : items.length === 0
      ? html`<p class="empty">Nothing to read.</p>`
      : html`<ul class="inbox-list">${items.map((n) => html`<li key=${n.id} class=${n.read ? "read" : "unread"}>
          <span class="mark ${n.status}"></span>
          <a href="#/runs/${n.run_id}">Run ${n.run_id.slice(0, 8)} ${n.status}</a>
          <span class="muted">${when(n.created_at)}${n.attempts > 1 ? `, after ${n.attempts} attempts` : ""}</span>
          ${n.error && html`<span class="why">${n.error.code}: ${n.error.message}</span>`}
          ${!n.read && html`<button class="quiet" onClick=${() => read(`/notifications/${n.id}/read`)}>Mark read</button>`}
        </li>`)}</ul>`}
    ${next && html`<button class="quiet" onClick=${() => load(next)}>More</button>`}`;
}
