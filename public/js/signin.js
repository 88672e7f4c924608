// Sign-in screen.
import { ApiError, request } from "./api.js";
import { field, h, replace } from "./dom.js";

export async function renderSignIn(ctx) {
  document.title = "Sign in · Mediscope";
  const username = h("input#signin-username", { name: "username", "data-autofocus": true, autocomplete: "username", required: true,
    autocapitalize: "none", spellcheck: "false", maxlength: "64" });
  const password = h("input#signin-password", { type: "password", name: "password", autocomplete: "current-password", required: true });
  const error = h("p#signin-error.error", { role: "alert" });
  const info = ctx.reason ? h("p.info", { role: "status", text: ctx.reason }) : null;
  const submit = h("button#signin-submit.button-primary", { type: "submit", text: "Sign in" });
  const form = h("form#signin-form.card.signin-card", { novalidate: true },
    h("h1", { text: "Sign in" }),
    info,
    field("Username", username),
    field("Password", password),
    error,
    submit);
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    error.textContent = "";
    info?.remove();  // "You have signed out" no longer applies once the user tries again
    if (!username.value.trim() || !password.value) {
      error.textContent = "Enter your username and password.";
      (username.value.trim() ? password : username).focus();
      return;
    }
    submit.disabled = true;
    submit.textContent = "Signing in…";
    try {
      const body = await request("POST", "/api/session", { username: username.value.trim(), password: password.value });
      password.value = "";
      ctx.signedIn(body.user);
    } catch (err) {
      submit.disabled = false;
      submit.textContent = "Sign in";
      error.textContent = err instanceof ApiError && err.status === 401 ? "Wrong username or password."
        : err instanceof ApiError && err.status === 429 ? "Too many failed sign-ins. Wait a few minutes and try again."
        : err.message;
      password.select();
      password.focus();
    }
  });
  replace(ctx.main, h("div.signin-page", {}, form,
    h("p.notice.signin-notice", { text: "Mediscope is decision support for qualified clinicians, not a diagnosis." })));
  ctx.ready();
}
