// Building DOM nodes. Text always goes in through textContent, never innerHTML, so nothing a
// user typed (patient names, notes) can ever run as markup.

/** h("tag.class#id", {attr: value, onclick: fn}, child, "text", [children]) */
export function h(spec, attrs = {}, ...children) {
  const [, tag = "div", rest = ""] = spec.match(/^([a-z0-9-]*)(.*)$/i);
  const el = document.createElement(tag || "div");
  for (const part of rest.match(/[.#][^.#]+/g) ?? []) {
    if (part[0] === ".") el.classList.add(part.slice(1));
    else el.id = part.slice(1);
  }
  for (const [key, value] of Object.entries(attrs ?? {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on") && typeof value === "function") el.addEventListener(key.slice(2), value);
    else if (key === "dataset") Object.assign(el.dataset, value);
    else if (key === "text") el.textContent = String(value);
    else if (key in el && typeof value !== "string" && key !== "list") el[key] = value;
    else el.setAttribute(key, value === true ? "" : String(value));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children) {
    if (child === undefined || child === null || child === false) continue;
    if (Array.isArray(child)) append(el, child);
    else if (child instanceof Node) el.appendChild(child);
    else el.appendChild(document.createTextNode(String(child)));
  }
}

/** Text a person typed (patient id, name, note), isolated in a <bdi>: right-to-left text in it can
 *  never reorder what stands beside it, and what stands beside it can never reorder it. */
export function userText(value) {
  return h("bdi", { text: value ?? "" });
}

/** The same for text that ends up in an attribute (aria-label): Unicode's FIRST STRONG ISOLATE ...
 *  POP DIRECTIONAL ISOLATE around the value. */
export function isolated(value) {
  return `\u2068${value ?? ""}\u2069`;
}

/** Replaces every child of `el`. */
export function replace(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

/** A labelled form field: <div class="field"><label for=id>…</label><control id=id>…</div>. */
export function field(label, control, hint) {
  const hintEl = hint ? h("p.hint", { id: control.id + "-hint", text: hint }) : null;
  if (hintEl) control.setAttribute("aria-describedby", hintEl.id);
  return h("div.field", {}, h("label", { for: control.id, text: label }), control, hintEl);
}

export function formatPercent(p) {
  return `${(p * 100).toFixed(1)} %`;
}

const dateFormat = new Intl.DateTimeFormat(undefined, {
  year: "numeric", month: "short", day: "2-digit", hour: "2-digit", minute: "2-digit",
});
const secondsFormat = new Intl.DateTimeFormat(undefined, {
  year: "numeric", month: "short", day: "2-digit", hour: "2-digit", minute: "2-digit", second: "2-digit",
});
export function formatDate(iso, { seconds = false } = {}) {
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? String(iso) : (seconds ? secondsFormat : dateFormat).format(d);
}

export function formatBytes(n) {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(0)} KB`;
  return `${(n / 1024 / 1024).toFixed(1)} MB`;
}

/** How a result's label reads: the manifest's title stored with the result, else the label tidied up. */
export function resultLabel(result, label) {
  return result.probabilities.find((p) => p.label === label)?.title ?? labelText(label);
}

/** Sentence-case a model label such as "no_tumor" -> "No tumor". */
export function labelText(label) {
  const text = String(label).replace(/[_-]+/g, " ").trim();
  return text.charAt(0).toUpperCase() + text.slice(1);
}

const dicomDateFormat = new Intl.DateTimeFormat(undefined, { year: "numeric", month: "short", day: "2-digit", timeZone: "UTC" });
/** A DICOM date (DA, YYYYMMDD) as a date a person reads; anything else as it came. */
export function formatDicomDate(value) {
  const m = /^(\d{4})(\d{2})(\d{2})$/.exec(String(value ?? ""));
  if (!m) return String(value ?? "");
  const d = new Date(Date.UTC(Number(m[1]), Number(m[2]) - 1, Number(m[3])));
  return Number.isNaN(d.getTime()) ? String(value) : dicomDateFormat.format(d);
}
