// inbox.js - the caller's notifications: failed runs (and successes when
// asked for) of their projects, newest first, each linked to its run; mark
// one read, or all of them.
import { useState } from "preact/hooks";
import { api } from "../api.js";
import { ErrorNote, html, usePaged, when } from "../ui.js";

export function Inbox({ onRead }) {
  const [unreadOnly, setUnreadOnly] = useState(false);
  const [error, setError] = useState(null);
  const list = usePaged(`/notifications?limit=50${unreadOnly ? "&unread=true" : ""}`, "notifications");
  const items = list.items;
  const read = async (path) => {
    try {
      await api("POST", path);
      await list.reload();
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
    <${ErrorNote} error=${error || list.error} />
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
    ${list.next && html`<button class="quiet" onClick=${list.more}>More</button>`}`;
}
