// Mediscope dashboard: boot, the signed-in user, the router and the page shell.
import { get, mayHaveSession, request, setSignedOutHandler } from "./api.js";
import { h, replace } from "./dom.js";
import { renderSignIn } from "./signin.js";
import { renderNewAnalysis } from "./new-analysis.js";
import { renderAnalysis } from "./analysis.js";
import { renderHistory } from "./history.js";
import { renderStudies, renderStudy } from "./studies.js";
import { renderUsers } from "./users.js";
import { renderAudit } from "./audit.js";

const main = document.getElementById("main");
const nav = document.getElementById("main-nav");
const announcer = document.getElementById("announcer");

const state = { user: null, signedOutReason: "" };

// What the current screen would lose on leaving (a report being edited): a function that returns a
// sentence when there are unsaved changes, null otherwise. Set by a screen through ctx, reset per screen.
let leaveGuard = null;
let shownPath = null;

// Path -> screen. Only ids appear in paths: never a patient's name or id (search terms stay in the page).
const routes = [
  { path: /^\/signin$/, screen: "signin", render: renderSignIn, public: true },
  { path: /^\/analyses\/new$/, screen: "new", render: renderNewAnalysis, role: "clinician" },
  { path: /^\/analyses$/, screen: "history", render: renderHistory, role: "clinician" },
  { path: /^\/analyses\/([0-9A-Z]{26})$/, screen: "analysis", render: renderAnalysis, role: "clinician" },
  { path: /^\/studies$/, screen: "studies", render: renderStudies, role: "clinician" },
  // A Study Instance UID: digits and dots, at most 64 characters (PS3.5 9.1).
  { path: /^\/studies\/([0-9][0-9.]{0,63})$/, screen: "study", render: renderStudy, role: "clinician" },
  { path: /^\/admin\/users$/, screen: "users", render: renderUsers, role: "admin" },
  { path: /^\/admin\/audit$/, screen: "audit", render: renderAudit, role: "admin" },
];

const homeOf = (user) => (user.role === "admin" ? "/admin/users" : "/analyses/new");

export function navigate(path, { replace: replaceEntry = false, data } = {}) {
  if (replaceEntry) history.replaceState({}, "", path);
  else history.pushState({}, "", path);
  return show(data);
}

export function announce(text) {
  announcer.textContent = "";
  // A fresh text node so screen readers read a repeated message again.
  requestAnimationFrame(() => { announcer.textContent = text; });
}

let renderSerial = 0;

async function show(data) {
  const serial = ++renderSerial;
  leaveGuard = null;
  let path = location.pathname.replace(/\/+$/, "") || "/";
  if (!state.user && path !== "/signin") {
    history.replaceState({ next: path }, "", "/signin");
    path = "/signin";
  }
  if (state.user && (path === "/" || path === "/signin")) {
    path = homeOf(state.user);
    history.replaceState({}, "", path);
  }
  const route = routes.find((r) => r.path.test(path));
  renderNav(path);
  main.dataset.ready = "false";
  if (!route) return showMessage("notfound", "Page not found", "There is no page at this address.", serial);
  if (!route.public && route.role !== state.user.role) {
    return showMessage("denied", "Not available for your role",
      route.role === "admin" ? "Only administrators can open this page."
                             : "Patient data is for clinicians; administrators manage users and the audit log.", serial);
  }
  main.dataset.screen = route.screen;
  shownPath = path;
  const params = path.match(route.path).slice(1);
  const ctx = {
    user: state.user, main, navigate, announce, data,
    reason: state.signedOutReason,
    isCurrent: () => serial === renderSerial,
    ready: () => { if (serial === renderSerial) main.dataset.ready = "true"; },
    setLeaveGuard: (guard) => { if (serial === renderSerial) leaveGuard = guard; },
    signedIn: (user) => {
      state.user = user;
      state.signedOutReason = "";
      // Back to the page that asked for a sign-in, when this role may open it.
      const next = history.state?.next;
      const target = next && routes.find((r) => r.path.test(next));
      navigate(target && !target.public && target.role === user.role ? next : homeOf(user), { replace: true });
    },
  };
  try {
    await route.render(ctx, ...params);
  } catch (err) {
    if (serial !== renderSerial) return;
    if (err?.status === 401) return;  // the signed-out handler has taken over
    showMessage(route.screen, "Something went wrong", err?.message || String(err), serial);
  }
  if (serial === renderSerial) focusHeading();
}

function showMessage(screen, title, text, serial) {
  main.dataset.screen = screen;
  replace(main, h("h1", { tabindex: "-1", text: title }), h("p.message", { text }),
    state.user ? h("p", {}, h("a", { href: homeOf(state.user), "data-link": true, text: "Go to the start page" })) : null);
  if (serial === renderSerial) main.dataset.ready = "true";
  focusHeading();
}

function focusHeading() {
  const target = main.querySelector("[data-autofocus]") ?? main.querySelector("h1");
  if (!target) return;
  if (target.tagName === "H1") target.setAttribute("tabindex", "-1");
  target.focus();
}

function renderNav(path) {
  if (!state.user) { nav.hidden = true; nav.replaceChildren(); return; }
  const links = state.user.role === "admin"
    ? [["users", "/admin/users", "Users"], ["audit", "/admin/audit", "Audit log"]]
    : [["new", "/analyses/new", "New analysis"], ["history", "/analyses", "History"], ["studies", "/studies", "Studies"]];
  const current = (href) => path === href || (href === "/analyses" && /^\/analyses\/[0-9A-Z]{26}$/.test(path))
    || (href === "/studies" && path.startsWith("/studies/"));
  replace(nav,
    h("ul.nav-links", {}, links.map(([key, href, label]) =>
      h("li", {}, h("a", { href, "data-link": true, dataset: { nav: key }, "aria-current": current(href) ? "page" : null, text: label })))),
    h("div.nav-user", {},
      h("span#whoami", { title: `Signed in as ${state.user.username} (${state.user.role})`,
        text: state.user.displayName || state.user.username }),
      h("span.role-badge", { text: state.user.role }),
      h("button#signout.button-secondary", { type: "button", onclick: signOut, text: "Sign out" })));
  nav.hidden = false;
}

async function signOut() {
  if (!(await mayLeave())) return;
  try { await request("DELETE", "/api/session"); } catch { /* signed out locally either way */ }
  state.user = null;
  state.signedOutReason = "You have signed out.";
  navigate("/signin", { replace: true });
}

setSignedOutHandler(() => {
  if (!state.user) return;
  state.user = null;
  state.signedOutReason = "Your session has ended. Please sign in again.";
  // Remember the page, so signing in again returns to it.
  history.replaceState({ next: location.pathname }, "", "/signin");
  show();
});

// ---------------------------------------------------------------- leaving with unsaved changes
const leaveText = h("p#leave-text");
const leaveStay = h("button#leave-stay.button-primary", { type: "button", text: "Stay on this page" });
const leaveGo = h("button#leave-discard.button-secondary", { type: "button", text: "Leave and discard" });
const leaveDialog = h("dialog#leave-dialog", { "aria-labelledby": "leave-title", "aria-describedby": "leave-text" },
  h("h2#leave-title", { text: "Leave without saving?" }), leaveText, h("div.dialog-actions", {}, leaveStay, leaveGo));
document.body.append(leaveDialog);
leaveStay.addEventListener("click", () => leaveDialog.close("stay"));
leaveGo.addEventListener("click", () => leaveDialog.close("leave"));

/** Resolves true when nothing would be lost, or the user chose to discard it; false to stay. */
function mayLeave() {
  const unsaved = leaveGuard?.();
  if (!unsaved) return Promise.resolve(true);
  if (leaveDialog.open) return Promise.resolve(false);
  const back = document.activeElement;
  leaveText.textContent = `${unsaved} Leave this page and lose them, or stay and save them?`;
  leaveDialog.returnValue = "";
  leaveDialog.showModal();
  leaveStay.focus();   // the safe choice first: a stray Enter keeps the text
  return new Promise((resolve) => {
    leaveDialog.addEventListener("close", () => {
      const leave = leaveDialog.returnValue === "leave";
      if (!leave && back?.isConnected) back.focus();
      resolve(leave);
    }, { once: true });
  });
}

// Closing the tab or reloading: only the browser's own prompt can ask.
window.addEventListener("beforeunload", (e) => {
  if (leaveGuard?.()) { e.preventDefault(); e.returnValue = ""; }
});

// Internal links go through the router (no page load); modified clicks keep browser behaviour.
document.addEventListener("click", async (e) => {
  const a = e.target.closest?.("a[data-link]");
  if (!a || e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
  e.preventDefault();
  const next = new URL(a.href, location.href);
  if (next.pathname !== location.pathname && await mayLeave()) navigate(next.pathname);
});
// Back and forward have already changed the address: asked to stay, the page puts its own back.
window.addEventListener("popstate", async () => {
  const stayingOn = shownPath;
  if (leaveGuard?.() && stayingOn && !(await mayLeave())) {
    history.pushState({}, "", stayingOn);
    return;
  }
  show();
});

async function boot() {
  if (mayHaveSession()) {
    try { state.user = (await get("/api/me")).user; } catch { state.user = null; }
  }
  show();
}
boot();
