// The plain-language report of one analysis: drafted in the background (by an LLM, or from the results
// with the template), then edited, signed and amended by a clinician, each step a new version.
// Every text goes in as text (textContent), never as markup: neither an LLM's reply nor the patient
// text a draft may quote can ever run in the page.
import { get, request } from "./api.js";
import { field, formatDate, h, replace, userText } from "./dom.js";

const POLL_MS = 1500;
// An LLM that is rate limited or retrying can take longer: after 20 s, ask less often (each look is
// a GET of the analysis, audited as a view).
const SLOW_POLL_MS = 5000;
const SLOW_AFTER_MS = 20_000;

/** The Report card of analysis `a` (its `report` as GET /api/analyses/{id} or the upload's 201 gives it). */
export function reportCard(ctx, a) {
  const id = a.id;
  let report = a.report ?? { status: "pending", versions: [] };
  let mode = null;              // null (reading), "edit" (a draft) or "amend" (a signed report)
  let signing = null;           // what the open sign dialog signs: { kind: "sign" | "amend", text }

  const badge = h("span#report-status.badge");
  const source = h("p#report-source.report-source");
  const hint = h("p#report-hint.hint");
  // Announcements (draft ready, saved, signed); the visible status is the badge.
  const live = h("p#report-live.visually-hidden", { role: "status" });
  const error = h("p#report-error.error", { role: "alert" });
  const body = h("div#report-body.report-body");

  const textarea = h("textarea#report-editor-text", { name: "text", rows: "14", dir: "auto", spellcheck: "true" });
  const editorField = field("Report text", textarea, "Plain text. Leave a blank line between paragraphs.");
  const save = h("button#report-save.button-primary", { type: "submit", text: "Save draft" });
  const cancel = h("button#report-cancel.button-secondary", { type: "button", text: "Cancel" });
  const editor = h("form#report-editor.report-editor", { hidden: true, novalidate: true, "aria-label": "Edit the draft report" },
    editorField, h("div.report-actions", {}, save, cancel));

  // While the draft is pending a clinician need not wait: their own text becomes version 1, and a draft
  // that arrives after it is kept in the history as a late draft, never replacing it.
  const writeButton = h("button#report-write.button-secondary", { type: "button", text: "Write it yourself" });
  const editButton = h("button#report-edit.button-secondary", { type: "button", text: "Edit draft" });
  const signButton = h("button#report-sign.button-primary", { type: "button", text: "Sign report…" });
  const amendButton = h("button#report-amend.button-secondary", { type: "button", text: "Amend…" });
  const actions = h("div#report-actions.report-actions", {}, writeButton, editButton, signButton, amendButton);

  const dialogTitle = h("h2#report-sign-title");
  const dialogText = h("p#report-sign-text");
  const dialogError = h("p#report-sign-error.error", { role: "alert" });
  const confirm = h("button#report-sign-confirm.button-primary", { type: "button", text: "Sign report" });
  const dialogCancel = h("button#report-sign-cancel.button-secondary", { type: "button", text: "Cancel" });
  const dialog = h("dialog#report-sign-dialog", { "aria-labelledby": "report-sign-title", "aria-describedby": "report-sign-text" },
    dialogTitle, dialogText, dialogError, h("div.dialog-actions", {}, confirm, dialogCancel));

  const versionRows = h("tbody");
  const versionCount = h("span#report-version-count");
  const history = h("details#report-history.report-history", {},
    h("summary", {}, "All versions (", versionCount, ")"),
    h("div.table-wrap", {}, h("table#report-versions.data-table", {},
      h("caption.visually-hidden", { text: "Versions of the report, oldest first" }),
      h("thead", {}, h("tr", {}, ["Version", "Status", "Author or source", "Date", "Text"].map((t) => h("th", { scope: "col", text: t })))),
      versionRows)));

  const section = h("section#report.card.report-card", { "aria-labelledby": "report-heading" },
    h("div.report-head", {}, h("h2#report-heading", { text: "Report", tabindex: "-1" }), badge),
    source, hint, live, error, body, editor, actions, dialog, history);

  const alive = () => ctx.isCurrent() && section.isConnected;
  const say = (text) => { live.textContent = ""; requestAnimationFrame(() => { live.textContent = text; }); };
  const busy = (on) => {
    section.setAttribute("aria-busy", String(on));
    for (const b of [save, confirm, writeButton, editButton, signButton, amendButton]) b.disabled = on;
  };

  function render() {
    const status = report.status;
    section.dataset.status = status;
    section.dataset.version = report.version ?? "";
    badge.className = `badge report-badge report-badge-${status}`;
    replace(badge, statusText(report));
    replace(source, status === "pending" ? null : sourceText(report));
    source.hidden = status === "pending";
    hint.textContent = status === "draft" ? "Unsigned draft: check it against the images and results, edit it as needed, then sign it."
      : status === "signed" ? "Signed. A change is an amendment, signed in turn; every version is kept." : "";
    hint.hidden = !hint.textContent;
    body.setAttribute("aria-busy", String(status === "pending"));
    replace(body, status === "pending"
      ? h("p#report-pending.report-pending", { text: "Drafting the report…" })
      : h("div#report-text.report-text", {}, paragraphs(report.text)));
    writeButton.hidden = status !== "pending";
    editButton.hidden = signButton.hidden = status !== "draft";
    amendButton.hidden = status !== "signed";
    actions.hidden = mode !== null;
    editor.hidden = mode === null;
    if (mode) {
      editor.setAttribute("aria-label", mode === "amend" ? "Amend the signed report" : "Edit the draft report");
      editorField.querySelector("label").textContent = mode === "amend" ? "Amended report text" : "Report text";
      save.textContent = mode === "amend" ? "Sign amendment…" : "Save draft";
    }
    replace(versionRows, report.versions.map(versionRow));
    versionCount.textContent = String(report.versions.length);
    history.hidden = report.versions.length === 0;
  }

  // ---------------------------------------------------------------- pending: poll until the draft is written
  const pollStarted = Date.now();
  let failures = 0;
  function poll() {
    if (report.status !== "pending") return;
    setTimeout(async () => {
      if (!alive()) return;
      try {
        // The report alone: a pending one is not audited, so polling does not fill the audit log.
        const fresh = { report: await get(`/api/analyses/${id}/report`) };
        if (!alive()) return;
        failures = 0;
        error.textContent = "";
        if (fresh.report && fresh.report.status !== "pending") {
          report = fresh.report;
          render();
          // Text being written stays in the editor; saving it makes it the newest version.
          say(mode ? "The draft report is ready; your text is still in the editor." : "The draft report is ready.");
          return;
        }
      } catch (err) {
        if (!alive() || err.status === 401) return;
        if (err.status === 404) { error.textContent = "This analysis was deleted."; return; }
        // A dropped connection or a busy server: keep asking, and say so if it goes on.
        if (++failures >= 3) error.textContent = `The report cannot be loaded just now (${err.message}). Still trying…`;
      }
      poll();
    }, Date.now() - pollStarted > SLOW_AFTER_MS ? SLOW_POLL_MS : POLL_MS);
  }

  /** The newest report from the server (after a conflict): true when it was loaded. */
  async function reload() {
    try {
      const fresh = await get(`/api/analyses/${id}/report`);
      if (!alive()) return false;
      report = fresh;
      return true;
    } catch (err) {
      if (alive() && err.status !== 401) error.textContent = `The report could not be reloaded: ${err.message}`;
      return false;
    }
  }

  // ---------------------------------------------------------------- edit, sign, amend
  function openEditor(kind) {
    mode = kind;
    error.textContent = "";
    textarea.value = report.text ?? "";
    render();
    textarea.focus();
    textarea.setSelectionRange(textarea.value.length, textarea.value.length);
  }
  function closeEditor() {
    const opener = mode === "amend" ? amendButton : report.status === "pending" ? writeButton : editButton;
    mode = null;
    render();
    opener.focus();
  }

  function openSign(kind, text) {
    signing = { kind, text };
    const you = ctx.user.displayName || ctx.user.username;
    dialogError.textContent = "";
    if (kind === "amend") {
      dialogTitle.textContent = "Sign this amendment?";
      dialogText.textContent = `Your amended text becomes version ${report.version + 1}, signed by ${you}. ` +
        "The version signed before stays in the history and the printed report shows the amendment.";
      confirm.textContent = "Sign amendment";
    } else {
      dialogTitle.textContent = "Sign this report?";
      dialogText.textContent = `You sign the text shown (version ${report.version}) as ${you}. ` +
        "After signing it can only be changed by an amendment, which is signed too.";
      confirm.textContent = "Sign report";
    }
    dialog.showModal();
    dialogCancel.focus();   // the safe choice first: a stray Enter does not sign
  }

  /** PUT the draft, or POST sign / amend; a conflict reloads the report and says what changed. */
  async function send(kind, text) {
    const [method, path] = kind === "edit" ? ["PUT", `/api/analyses/${id}/report`] : ["POST", `/api/analyses/${id}/report/${kind}`];
    error.textContent = "";
    busy(true);
    try {
      // No version yet (pending): 0.
      const fresh = await request(method, path, { text, baseVersion: report.version ?? 0 });
      if (!alive()) return;
      report = fresh;
      mode = null;
      if (dialog.open) dialog.close();
      busy(false);
      render();
      say(kind === "edit" ? `Draft saved as version ${report.version}.`
        : kind === "sign" ? `Report signed (version ${report.version}).` : `Amendment signed (version ${report.version}).`);
      (kind === "edit" ? editButton : amendButton).focus();
    } catch (err) {
      busy(false);
      if (!alive() || err.status === 401) return;
      if (err.status !== 409) {
        if (dialog.open) dialogError.textContent = err.message; else error.textContent = err.message;
        return;
      }
      if (dialog.open) dialog.close();
      const before = report.version;
      if (!(await reload())) return;
      // An edit of a draft someone signed meanwhile can only go on as an amendment.
      if (mode) mode = report.status === "signed" ? "amend" : "edit";
      render();
      error.textContent = conflictText(report, before, mode !== null);
      if (mode) textarea.focus(); else section.querySelector("#report-heading").focus();
    }
  }

  writeButton.addEventListener("click", () => openEditor("edit"));
  editButton.addEventListener("click", () => openEditor("edit"));
  amendButton.addEventListener("click", () => openEditor("amend"));
  signButton.addEventListener("click", () => { error.textContent = ""; openSign("sign", report.text ?? ""); });
  cancel.addEventListener("click", () => { error.textContent = ""; closeEditor(); });
  editor.addEventListener("submit", (e) => {
    e.preventDefault();
    if (!textarea.value.trim()) {
      error.textContent = "The report text is empty. Write the report before saving or signing it.";
      textarea.focus();
      return;
    }
    if (mode === "amend") openSign("amend", textarea.value);
    else send("edit", textarea.value);
  });
  confirm.addEventListener("click", () => send(signing.kind, signing.text));
  dialogCancel.addEventListener("click", () => dialog.close());
  dialog.addEventListener("close", () => {
    // Back to the button that opened it, unless focus was placed already (after signing, after a conflict).
    const active = document.activeElement;
    if (!alive() || (active && section.contains(active) && !dialog.contains(active))) return;
    (mode === "amend" ? save : signButton.hidden ? amendButton : signButton).focus();
  });

  // Text typed into the editor and not saved is asked about before the page is left.
  ctx.setLeaveGuard?.(() => alive() && mode !== null && textarea.value !== (report.text ?? "")
    ? "Your changes to the report are not saved." : null);

  render();
  poll();
  return section;
}

/** The newest version's state: Drafting / Draft / Signed by X on date / Amended: signed by X on date. */
function statusText(r) {
  if (r.status === "pending") return "Drafting…";
  if (r.status === "draft") return "Draft";
  const amended = r.versions.filter((v) => v.status === "signed").length > 1;
  return [amended ? "Amended: signed by " : "Signed by ", userText(r.signedBy ?? "unknown"), " on ",
    h("time", { datetime: r.signedAt, text: formatDate(r.signedAt) })];
}

/** Where a text came from: "Drafted by <model>", "Written from the results (template): <reason>", or its author. */
function origin(source, author) {
  switch (source?.kind) {
    case "llm": return ["Drafted by ", source.model ? userText(source.model) : "a language model"];
    case "template": return [`Written from the results (template)${source.reason ? `: ${source.reason}` : ""}`];
    default: return ["Written by ", userText(author ?? "a clinician")];
  }
}

/** The history's "Author or source" cell: the clinician, or the model, or the template and why. */
function author(v) {
  switch (v.source?.kind) {
    case "llm": return ["LLM: ", userText(v.source.model ?? "unknown model")];
    case "template": return `Template${v.source.reason ? ` (${v.source.reason})` : ""}`;
    default: return userText(v.author ?? "unknown");
  }
}

function sourceText(r) {
  // The report's version: the newest one that is not a late draft (see versionRow).
  const shown = r.versions.filter((v) => !v.late).pop();
  const first = r.versions[0];
  const parts = [origin(r.source, shown?.author)];
  if (r.source?.kind === "clinician" && first && first.source?.kind !== "clinician") {
    parts.push(first.source.kind === "llm"
      ? [" · first drafted by ", first.source.model ? userText(first.source.model) : "a language model"]
      : " · first drafted from the results (template)");
  }
  return parts;
}

function versionRow(v, i, all) {
  const amendment = v.status === "signed" && all.slice(0, i).some((w) => w.status === "signed");
  // A late draft arrived after a clinician had written the report: kept for reading, never the report.
  const status = v.late ? "Late draft (not used)" : v.status === "draft" ? "Draft" : amendment ? "Amendment (signed)" : "Signed";
  return h("tr", { dataset: { version: v.number, status: v.status } },
    h("td", { text: String(v.number) }),
    h("td", { text: status }),
    h("td", {}, author(v)),
    h("td", {}, h("time", { datetime: v.createdAt, text: formatDate(v.createdAt) })),
    h("td", {}, h("details.version-text", {}, h("summary", { text: "Show", "aria-label": `Show the text of version ${v.number}` }),
      paragraphs(v.text))));
}

/** Paragraphs split at blank lines; single line breaks kept by CSS (white-space: pre-line). */
function paragraphs(text) {
  return String(text ?? "").split(/\n[ \t]*\n/).map((p) => p.trim()).filter(Boolean)
    .map((p) => h("p", { text: p, dir: "auto" }));
}

function conflictText(r, before, editing) {
  const now = r.status === "signed" ? `signed by ${r.signedBy ?? "another clinician"}` : "edited";
  const what = `The report changed meanwhile: it was ${now} (version ${r.version}, you had version ${before}). The newest version is shown.`;
  if (!editing) return `${what} Read it before you sign.`;
  return r.status === "signed"
    ? `${what} Your text is still in the editor: it can only be saved as an amendment now.`
    : `${what} Your text is still in the editor: compare it and save again to replace that version.`;
}
