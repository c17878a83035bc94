// webhooks.js - a project's webhooks (editors): made with a URL, the events to
// send and a secret (or one made up, shown once), switched on or off, deleted;
// each one's deliveries with their attempts. And the project's audit trail
// (owners).
import { useRef, useState } from "preact/hooks";
import { ErrorNote, html, may, useAction, usePaged, when } from "../ui.js";

const EVENTS = ["run.failed", "run.timed_out", "run.succeeded", "run.cancelled", "run.retrying", "run.started"];

function Deliveries({ hook }) {
  const list = usePaged(`/webhooks/${hook.id}/deliveries?limit=20`, "deliveries");
  return html`<div class="deliveries">
    <${ErrorNote} error=${list.error} />
    ${list.items && list.items.length === 0 && html`<p class="empty">No deliveries yet.</p>`}
    ${list.items && list.items.length > 0 && html`<ul aria-label="Deliveries of ${hook.url}">${list.items.map((d) => html`
      <li key=${d.id}><span class="state ${d.status === "delivered" ? "on" : "off"}">${d.status}</span>
        ${d.type} · ${when(d.created_at)} · ${(d.attempts || []).length} attempt(s)
        ${(d.attempts || []).slice(-1).map((a) => html` · last: ${a.status || a.error} in ${a.ms} ms`)}</li>`)}
    </ul>`}
    ${list.next && html`<button class="quiet" onClick=${list.more}>More</button>`}
  </div>`;
}

// Editors' only: nobody else is asked about them (the API would say 403).
export function Webhooks({ project, role }) {
  return may(role, "editor") ? html`<${HookList} project=${project} />` : null;
}

function HookList({ project }) {
  const hooks = usePaged(`/projects/${project.id}/webhooks`, "webhooks");
  const [secret, setSecret] = useState(null);
  const [open, setOpen] = useState(null);
  const box = useRef(null);
  const [act, error] = useAction(hooks.reload);
  const create = async (e) => {
    e.preventDefault();
    const form = e.target;
    const f = new FormData(form);
    const body = { url: f.get("url"), events: f.getAll("events") };
    if (f.get("secret")) body.secret = f.get("secret");
    if (f.get("description")) body.description = f.get("description");
    const done = await act("POST", `/projects/${project.id}/webhooks`, body);
    if (done) {
      const made = done.value;
      setSecret(made.secret ? { url: made.url, secret: made.secret } : null);
      form.reset();
      box.current.open = false;
    }
  };
  return html`<section aria-labelledby="hooks-h">
    <h2 id="hooks-h">Webhooks</h2>
    <details class="card" ref=${box}>
      <summary>Add a webhook</summary>
      <form onSubmit=${create} aria-label="Add a webhook">
        <label>URL <input name="url" type="url" required placeholder="https://hooks.example.com/convutell" /></label>
        <fieldset><legend>Events</legend>
          ${EVENTS.map((ev) => html`<label class="check"><input type="checkbox" name="events" value=${ev}
            defaultChecked=${ev === "run.failed" || ev === "run.timed_out"} /> ${ev}</label>`)}
        </fieldset>
        <label>Secret (16 characters or more; empty: one is made up and shown once)
          <input name="secret" type="password" minlength="16" autocomplete="new-password" /></label>
        <label>Description <input name="description" maxlength="200" /></label>
        <button type="submit">Add webhook</button>
      </form>
    </details>
    ${secret && html`<div class="card shown-once" role="status">
      <p>The secret of <strong>${secret.url}</strong>: keep it now, it is not shown again.</p>
      <code class="token">${secret.secret}</code></div>`}
    <${ErrorNote} error=${error || hooks.error} />
    ${hooks.items && hooks.items.length === 0 && html`<p class="empty">No webhooks.</p>`}
    ${hooks.items && hooks.items.length > 0 && html`<div class="scroll"><table>
      <thead><tr><th scope="col">URL</th><th scope="col">Events</th><th scope="col">State</th><th scope="col"><span class="sr">Actions</span></th></tr></thead>
      <tbody>${hooks.items.map((h) => html`<tr key=${h.id}>
        <td><code class="odbc">${h.url}</code></td><td>${(h.events || []).join(", ")}</td>
        <td><span class="state ${h.active ? "on" : "off"}">${h.active ? "active" : "inactive"}</span></td>
        <td><div class="actions">
          <button class="quiet" onClick=${() => setOpen(open === h.id ? null : h.id)}>Deliveries</button>
          <button class="quiet" onClick=${() => act("PATCH", `/webhooks/${h.id}`, { active: !h.active })}>${h.active ? "Switch off" : "Switch on"}</button>
          <button class="quiet" onClick=${() => act("DELETE", `/webhooks/${h.id}`)}>Delete</button>
        </div></td></tr>
        ${open === h.id && html`<tr><td colspan="4"><${Deliveries} hook=${h} /></td></tr>`}`)}
      </tbody></table></div>`}
  </section>`;
}

// Owners' only, likewise.
export function ProjectAudit({ project, role }) {
  return may(role, "owner") ? html`<${AuditTrail} project=${project} />` : null;
}

function AuditTrail({ project }) {
  const log = usePaged(`/projects/${project.id}/audit?limit=50`, "records");
  return html`<section aria-labelledby="paudit-h">
    <h2 id="paudit-h">Audit trail</h2>
    <${ErrorNote} error=${log.error} />
    <div class="scroll"><table>
      <thead><tr><th scope="col">When</th><th scope="col">Who</th><th scope="col">What</th></tr></thead>
      <tbody>${(log.items || []).map((r, i) => html`<tr key=${i}>
        <td>${when(r.at)}</td><td>${r.user}</td><td><code>${r.action}</code> ${r.status}</td></tr>`)}</tbody>
    </table></div>
    ${log.next && html`<button class="quiet" onClick=${log.more}>More</button>`}
  </section>`;
}
