// signin.js - the sign-in form: POST /sessions sets the session cookie.
import { useState } from "preact/hooks";
import { api } from "../api.js";
import { ErrorNote, html } from "../ui.js";

export function SignIn({ onSignedIn }) {
  const [error, setError] = useState(null);
  const [busy, setBusy] = useState(false);
  const submit = async (e) => {
    e.preventDefault();
    const form = new FormData(e.target);
    setBusy(true);
    setError(null);
    try {
      await api("POST", "/sessions", { name: form.get("name"), password: form.get("password") });
      await onSignedIn();
    } catch (err) {
      setError(err);
      setBusy(false);
    }
  };
  return html`
    <main class="signin" id="main">
      <h1>Convutell</h1>
      <form onSubmit=${submit} aria-label="Sign in">
        <label>User name <input name="name" autocomplete="username" required autofocus /></label>
        <label>Password <input name="password" type="password" autocomplete="current-password" required /></label>
        <${ErrorNote} error=${error} />
        <button type="submit" disabled=${busy}>Sign in</button>
      </form>
    </main>`;
}
