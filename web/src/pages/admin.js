// admin.js - administrators only: users (create, disable or enable, reset a
// password) and the audit log of every change, newest first.
import { useEffect, useState } from "preact/hooks";
import { all, api } from "../api.js";
import { ErrorNote, html, useAction, usePaged, when } from "../ui.js";

function Users() {
  const [users, setUsers] = useState(null);
  const [made, setMade] = useState(null); // a password the API made up, shown once
  const [error, setError] = useState(null);
  const load = () => all("/users", "items").then(setUsers, setError);
  useEffect(() => {
    load();
  }, []);
  const [act, actError] = useAction(load);
  const create = (e) => {
    e.preventDefault();
    const f = Object.fromEntries(new FormData(e.target));
    const body = { name: f.name, admin: f.admin === "on" };
    if (f.display_name) body.display_name = f.display_name;
    if (f.password) body.password = f.password;
    const form = e.target;
    act("POST", "/users", body).then((done) => {
      if (!done) return;
      setMade(done.value.password ? { user: done.value.name, password: done.value.password } : null);
      form.reset();
    });
  };
  const reset = (e, name) => {
    e.preventDefault();
    const form = e.target;
    act("PATCH", `/users/${encodeURIComponent(name)}`, { password: new FormData(form).get("password") }).then(
      (done) => done && form.reset());
  };
  return html`<section aria-labelledby="users-h">
    <h2 id="users-h">Users</h2>
    <form class="card" onSubmit=${create} aria-label="New user">
      <div class="row">
        <label>User name <input name="name" required maxlength="64" pattern="[a-z0-9][a-z0-9._\\-]*" /></label>
        <label>Display name <input name="display_name" maxlength="200" /></label>
      </div>
      <label>Password (12 or more characters; empty: one is made up and shown once)
        <input name="password" type="password" minlength="12" autocomplete="new-password" /></label>
      <label class="check"><input name="admin" type="checkbox" /> administrator</label>
      <button type="submit">Create user</button>
    </form>
    ${made && html`<div class="card shown-once" role="status">
      <p>The one-time password of <strong>${made.user}</strong>: give it to them now, it is not shown again.</p>
      <code class="token">${made.password}</code></div>`}
    <${ErrorNote} error=${actError || error} />
    ${users === null ? html`<p class="loading">Loading…</p>` : html`<div class="scroll"><table>
      <thead><tr><th scope="col">User</th><th scope="col">Name</th><th scope="col">State</th><th scope="col" class="wide">Created</th><th scope="col"><span class="sr">Actions</span></th></tr></thead>
      <tbody>${users.map((u) => html`<tr key=${u.name}>
        <td>${u.name}${u.admin ? " (administrator)" : ""}</td><td>${u.display_name || ""}</td>
        <td><span class="state ${u.disabled ? "off" : "on"}">${u.disabled ? "disabled" : "active"}</span></td>
        <td class="wide">${when(u.created_at)}</td>
        <td><div class="actions">
          <button class="quiet" onClick=${() => act("PATCH", `/users/${encodeURIComponent(u.name)}`, { disabled: !u.disabled })}>
            ${u.disabled ? "Enable" : "Disable"}</button>
          <form class="inline" onSubmit=${(e) => reset(e, u.name)} aria-label="Reset the password of ${u.name}">
            <input name="password" type="password" minlength="12" required autocomplete="new-password" aria-label="New password for ${u.name}" />
            <button type="submit" class="quiet">Reset password</button></form>
        </div></td></tr>`)}</tbody></table></div>`}
  </section>`;
}

function Audit() {
  const log = usePaged("/audit?limit=50", "records");
  return html`<section aria-labelledby="audit-h">
    <h2 id="audit-h">Audit log</h2>
    <${ErrorNote} error=${log.error} />
    <div class="scroll"><table>
      <thead><tr><th scope="col">When</th><th scope="col">Who</th><th scope="col">What</th><th scope="col">Target</th></tr></thead>
      <tbody>${(log.items || []).map((r, i) => html`<tr key=${i}>
        <td>${when(r.at)}</td><td>${r.user}</td><td><code>${r.action}</code> ${r.status}</td>
        <td><code>${r.target || ""}${r.item ? ` ${r.item}` : ""}</code></td></tr>`)}</tbody>
    </table></div>
    ${log.next && html`<button class="quiet" onClick=${log.more}>More</button>`}
  </section>`;
}

function Health() {
  const [inst, setInst] = useState(null);
  const [error, setError] = useState(null);
  const load = () => api("GET", "/instance").then(setInst, setError);
  useEffect(() => {
    load();
  }, []);
  if (error) return html`<${ErrorNote} error=${error} />`;
  if (!inst) return html`<p class="loading">Loading…</p>`;
  const state = (v) => html`<span class="state ${v === "ok" ? "on" : "off"}">${v}</span>`;
  return html`<section aria-labelledby="health-h">
    <h2 id="health-h">Instance health</h2>
    <dl class="facts">
      <dt>status</dt><dd>${state(inst.status)}</dd>
      <dt>MongoDB</dt><dd>${state(inst.mongodb)}</dd>
      <dt>Kafka</dt><dd>${state(inst.kafka)}</dd>
      <dt>workers seen in the last minute</dt><dd>${inst.workers.length}</dd>
      <dt>schedulers seen in the last minute</dt><dd>${inst.schedulers.length}</dd>
    </dl>
    ${inst.workers.length > 0 && html`<div class="scroll"><table aria-label="Workers">
      <thead><tr><th scope="col">Worker</th><th scope="col">Jobs at once</th><th scope="col">Seen</th></tr></thead>
      <tbody>${inst.workers.map((w) => html`<tr key=${w.id}><td>${w.id}</td><td>${w.slots}</td><td>${when(w.seen_at)}</td></tr>`)}</tbody>
    </table></div>`}
    <div class="scroll"><table aria-label="Consumer lag">
      <thead><tr><th scope="col">Consumer group</th><th scope="col">Topic</th><th scope="col">Lag</th></tr></thead>
      <tbody>${inst.lag.map((g) => html`<tr key=${g.group}><td>${g.group}</td><td>${g.topic}</td>
        <td>${g.error ? html`<span class="error">${g.error}</span>` : g.lag}</td></tr>`)}</tbody>
    </table></div>
    <button class="quiet" onClick=${load}>Look again</button>
  </section>`;
}

export function Admin({ me }) {
  if (!me.admin) return html`<h1>Administration</h1><p class="error" role="alert">This page is for administrators.</p>`;
  return html`<h1>Administration</h1><${Health} /><${Users} /><${Audit} />`;
}
