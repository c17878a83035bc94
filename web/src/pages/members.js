// members.js - who a project belongs to: owners share it with a user by name,
// change a member's role or remove them; everyone else reads the list.
import { ErrorNote, html, may, useAction } from "../ui.js";

const ROLES = ["viewer", "runner", "editor", "owner"];

function RolePicker({ name, value, onChange, label }) {
  return html`<select name=${name} value=${value} onChange=${onChange} aria-label=${label}>
    ${ROLES.map((r) => html`<option value=${r}>${r}</option>`)}
  </select>`;
}

export function Members({ project, members, role, onChanged }) {
  const [act, error] = useAction(onChanged);
  const owner = may(role, "owner");
  const share = async (e) => {
    e.preventDefault();
    const f = Object.fromEntries(new FormData(e.target));
    const form = e.target;
    if (await act("POST", `/projects/${project.id}/members`, { user: f.user, role: f.role })) form.reset();
  };
  const base = `/projects/${project.id}/members/`;
  return html`<section aria-labelledby="members-h">
    <h2 id="members-h">Members</h2>
    ${owner &&
    html`<form class="inline card" onSubmit=${share} aria-label="Share the project">
      <label>User name <input name="user" required maxlength="64" /></label>
      <label>Role <${RolePicker} name="role" value="viewer" /></label>
      <button type="submit">Share</button>
    </form>`}
    <${ErrorNote} error=${error} />
    <div class="scroll"><table>
      <thead><tr><th scope="col">User</th><th scope="col">Role</th><th scope="col"><span class="sr">Actions</span></th></tr></thead>
      <tbody>${members.map((m) => html`<tr key=${m.user}>
        <td>${m.user}</td>
        <td>${owner
          ? html`<${RolePicker} value=${m.role} label="Role of ${m.user}"
              onChange=${(e) => act("PATCH", base + encodeURIComponent(m.user), { role: e.target.value })} />`
          : m.role}</td>
        <td><div class="actions">${owner &&
          html`<button class="quiet" onClick=${() => act("DELETE", base + encodeURIComponent(m.user))}>Remove</button>`}</div></td>
      </tr>`)}</tbody>
    </table></div>
  </section>`;
}
