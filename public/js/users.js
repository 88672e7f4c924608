// Administration: the organisation's users (add, disable/enable, reset password).
import { get, request } from "./api.js";
import { field, formatDate, h, replace } from "./dom.js";

export async function renderUsers(ctx) {
  document.title = "Users · Mediscope";
  const status = h("p#users-status.status", { "aria-live": "polite" });
  const tbody = h("tbody");
  const table = h("table#users-table.data-table", {},
    h("caption.visually-hidden", { text: "Users of your organisation" }),
    h("thead", {}, h("tr", {}, ["Username", "Name", "Role", "Status", "Created", "Actions"].map((t) => h("th", { scope: "col", text: t })))),
    tbody);

  const username = h("input#new-username", { name: "username", required: true, maxlength: "64", autocomplete: "off",
    autocapitalize: "none", spellcheck: "false", pattern: "[a-z0-9._@-]{3,64}" });
  const displayName = h("input#new-display-name", { name: "displayName", maxlength: "200", autocomplete: "off" });
  const password = h("input#new-password", { type: "password", name: "password", required: true, minlength: "12", autocomplete: "new-password" });
  const role = h("select#new-role", { name: "role" }, [["clinician", "Clinician"], ["admin", "Administrator"]].map(([value, text]) => h("option", { value, text })));
  const addForm = h("form#user-add-form.card", { novalidate: true, "aria-labelledby": "add-user-heading" },
    h("h2#add-user-heading", { text: "Add a user" }),
    h("div.field-row", {},
      field("Username", username, "3 to 64 of a-z, 0-9 and . _ @ -"),
      field("Full name", displayName)),
    h("div.field-row", {},
      field("Initial password", password, "At least 12 characters. Tell the user in person."),
      field("Role", role)),
    h("button#user-add-submit.button-primary", { type: "submit", text: "Add user" }));

  // Password managers expect the account name next to a new password.
  const dialogUsername = h("input#reset-username", { type: "text", autocomplete: "username", hidden: true, readonly: true,
    "aria-hidden": "true", tabindex: "-1" });
  const dialogPassword = h("input#reset-password", { type: "password", required: true, minlength: "12", autocomplete: "new-password" });
  const dialogError = h("p.error", { role: "alert" });
  const dialogTitle = h("h2#password-dialog-title", { text: "Reset password" });
  const dialog = h("dialog#password-dialog", { "aria-labelledby": "password-dialog-title" },
    h("form", { method: "dialog", novalidate: true }, dialogTitle, dialogUsername,
      field("New password", dialogPassword, "At least 12 characters."), dialogError,
      h("div.dialog-actions", {},
        h("button#reset-password-submit.button-primary", { type: "submit", value: "save", text: "Set password" }),
        h("button#reset-password-cancel.button-secondary", { type: "button", text: "Cancel", onclick: () => dialog.close() }))));

  replace(ctx.main, h("h1", { text: "Users" }), status, h("div.table-wrap", {}, table), addForm, dialog);

  const say = (text, isError = false) => {
    status.textContent = text;
    status.classList.toggle("error", isError);
  };

  async function load() {
    const { users } = await get("/api/users");
    if (!ctx.isCurrent()) return;
    replace(tbody, users.map(row));
    ctx.ready();
  }

  function row(u) {
    const toggle = h("button.user-toggle.button-secondary", { type: "button", text: u.disabled ? "Enable" : "Disable",
      "aria-label": `${u.disabled ? "Enable" : "Disable"} ${u.username}`, disabled: u.id === ctx.user.id });
    toggle.addEventListener("click", () => change(async () => {
      await request("PATCH", `/api/users/${u.id}`, { disabled: !u.disabled });
      return `${u.username} is now ${u.disabled ? "enabled" : "disabled"}.`;
    }));
    const reset = h("button.user-password.button-secondary", { type: "button", text: "Reset password",
      "aria-label": `Reset the password of ${u.username}` });
    reset.addEventListener("click", () => openReset(u));
    return h("tr", { dataset: { username: u.username, userId: u.id } },
      h("td", { text: u.username }),
      h("td", { text: u.displayName ?? "" }),
      h("td", { text: u.role === "admin" ? "Administrator" : "Clinician" }),
      h("td", {}, h("span", { class: u.disabled ? "badge badge-off" : "badge badge-on", text: u.disabled ? "Disabled" : "Active" })),
      h("td", {}, h("time", { datetime: u.createdAt, text: formatDate(u.createdAt) })),
      h("td.row-actions", {}, toggle, reset));
  }

  async function change(action) {
    try {
      const message = await action();
      await load();
      say(message);
    } catch (err) {
      if (err.status !== 401) say(err.message, true);
    }
  }

  let resetUser = null;
  function openReset(u) {
    resetUser = u;
    dialogTitle.textContent = `Reset the password of ${u.username}`;
    dialogUsername.value = u.username;
    dialogPassword.value = "";
    dialogError.textContent = "";
    dialog.showModal();
    dialogPassword.focus();
  }
  dialog.querySelector("form").addEventListener("submit", async (e) => {
    e.preventDefault();
    if (dialogPassword.value.length < 12) { dialogError.textContent = "Use at least 12 characters."; return; }
    try {
      await request("POST", `/api/users/${resetUser.id}/password`, { password: dialogPassword.value });
      dialogPassword.value = "";
      dialog.close();
      say(`The password of ${resetUser.username} was reset.`);
    } catch (err) {
      if (err.status !== 401) dialogError.textContent = err.message;
    }
  });

  addForm.addEventListener("submit", (e) => {
    e.preventDefault();
    const name = username.value.trim().toLowerCase();
    if (!/^[a-z0-9._@-]{3,64}$/.test(name)) { say("The username must be 3 to 64 of a-z, 0-9 and . _ @ -", true); username.focus(); return; }
    if (password.value.length < 12) { say("The initial password needs at least 12 characters.", true); password.focus(); return; }
    change(async () => {
      await request("POST", "/api/users", { username: name, password: password.value, role: role.value,
        displayName: displayName.value.trim() || undefined });
      addForm.reset();
      return `${name} was added.`;
    });
  });

  await load();
}
