// tokens.js - the caller's personal API tokens: create (shown once, with a
// copy button), list, revoke.
import { useEffect, useState } from "preact/hooks";
import { all, api } from "../api.js";
import { ErrorNote, html, when } from "../ui.js";

export function Tokens() {
  const [tokens, setTokens] = useState(null);
  const [made, setMade] = useState(null);
  const [copied, setCopied] = useState(false);
  const [error, setError] = useState(null);
  const load = async () => {
    try {
      setTokens(await all("/tokens", "items"));
    } catch (err) {
      setError(err);
    }
  };
  useEffect(() => {
    load();
  }, []);
  const create = async (e) => {
    e.preventDefault();
    const f = new FormData(e.target);
    const body = { name: f.get("name"), scope: f.get("scope") };
    if (f.get("days")) body.expires_in_days = Number(f.get("days"));
    setError(null);
    try {
      setMade(await api("POST", "/tokens", body));
      setCopied(false);
      e.target.reset();
      await load();
    } catch (err) {
      setError(err);
    }
  };
  const revoke = async (id) => {
    try {
      await api("DELETE", `/tokens/${id}`);
      await load();
    } catch (err) {
      setError(err);
    }
  };
  const copy = async () => {
    await navigator.clipboard.writeText(made.token).then(() => setCopied(true), () => {});
  };
  return html`
    <h1>API tokens</h1>
    <form class="card" onSubmit=${create} aria-label="New token">
      <label>Name <input name="name" required maxlength="100" /></label>
      <label>Scope
        <select name="scope"><option value="read">read</option><option value="write">write</option></select></label>
      <label>Expires in days (optional) <input name="days" type="number" min="1" max="3650" /></label>
      <button type="submit">Create token</button>
    </form>
    ${made &&
    html`<div class="card shown-once" role="status">
      <p>Token <strong>${made.name}</strong>: copy it now, it is not shown again.</p>
      <code class="token">${made.token}</code>
      <button onClick=${copy}>${copied ? "Copied" : "Copy"}</button>
    </div>`}
    <${ErrorNote} error=${error} />
    ${tokens === null
      ? html`<p class="loading">Loading…</p>`
      : html`<div class="scroll"><table>
          <thead><tr><th scope="col">Name</th><th scope="col">Scope</th><th scope="col" class="wide">Created</th><th scope="col">Expires</th><th scope="col"><span class="sr">Actions</span></th></tr></thead>
          <tbody>${tokens.map(
            (t) => html`<tr key=${t.id}>
              <td>${t.name}</td><td>${t.scope}</td><td class="wide">${when(t.created_at)}</td><td>${when(t.expires_at)}</td>
              <td><div class="actions"><button class="quiet" onClick=${() => revoke(t.id)}>Revoke</button></div></td>
            </tr>`)}</tbody>
        </table></div>`}`;
}
