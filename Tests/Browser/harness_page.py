"""What the harness knows of the dashboard's pages: the DOM contract the scenarios rely on, and the
scripts it runs in them (the problem collector, the contrast check, the Report card's state)."""


# Runs in every document before its own scripts (Page.addScriptToEvaluateOnNewDocument).
COLLECTOR = r"""
(() => {
  if (window.__mediscopeProblemsInstalled) return;
  window.__mediscopeProblemsInstalled = true;
  const problems = window.__mediscopeProblems = [];
  const push = (p) => { p.page = String(location.href); problems.push(p); };
  window.addEventListener('securitypolicyviolation', (e) => push({
    kind: 'csp', violatedDirective: e.violatedDirective, effectiveDirective: e.effectiveDirective,
    blockedURI: e.blockedURI, sample: e.sample, sourceFile: e.sourceFile, line: e.lineNumber,
  }), true);
  window.addEventListener('error', (e) => {
    const t = e.target;
    if (t && t !== window && t.tagName) {
      push({ kind: 'resource', tag: t.tagName, url: t.currentSrc || t.src || t.href || '' });
    } else {
      push({ kind: 'error', message: String(e.message), sourceFile: e.filename, line: e.lineno,
             stack: e.error && e.error.stack ? String(e.error.stack) : '' });
    }
  }, true);
  window.addEventListener('unhandledrejection', (e) => {
    const r = e.reason;
    push({ kind: 'unhandledrejection', reason: r && r.stack ? String(r.stack) : String(r) });
  });
})();
"""


# The dashboard's DOM contract, per screen (data-screen): what the scenarios rely on. Checked (softly)
# the first time each screen is ready, so a drift between the dashboard and these tests is named.
CONTRACT = {
    "signin": ["form#signin-form", "input#signin-username", "input#signin-password", "button#signin-submit",
               'p#signin-error[role="alert"]'],
    "new": ["form#analysis-form", 'input#scan-file[type="file"]', "div#dropzone", "img#scan-preview", "input#patient-id",
            "input#patient-name", "input#patient-age", "select#patient-sex", "select#modality", "input#body-part",
            "textarea#note", "progress#upload-progress", "p#upload-status[aria-live]", "button#analyse-submit"],
    # The clinical note and the body part are there when given (check_analysis_screen checks an upload's): an
    # analysis made from a received DICOM instance has no note, and its file may name no body part.
    "analysis": ["section#analysis[data-analysis-id]", "div#patient-block", "#patient-block #patient-name",
                 "#patient-block #patient-id", "img#scan-image",
                 "article.result[data-result-id]", "article.result h3", "article.result img.heatmap",
                 'article.result input.opacity[type="range"][min="0"][max="100"]', "article.result button.layout-toggle[aria-pressed]",
                 "article.result .prediction", "article.result .confidence", "article.result ul.probabilities > li.prob-row",
                 "li.prob-row .prob-label", "li.prob-row .prob-value", "table#timings", "p#decision-notice", "a#report-link",
                 "section#report[data-status]", "h2#report-heading", "span#report-status", 'p#report-live[role="status"]',
                 'p#report-error[role="alert"]', "#report-body[aria-busy]", "details#report-history", "dialog#report-sign-dialog"],
    "history": ["form#history-search", "input#history-patient-id", "table#history-table", "p#history-empty",
                "button#history-prev", "button#history-next"],
    "studies": ["section#studies[data-polling]", "h1#studies-heading", "p#studies-notice", "button#studies-refresh", "ol#studies-list",
                "div#studies-empty", "p#studies-status", "button#studies-prev", "button#studies-next"],
    "study": ["section#study[data-study-uid][data-polling]", "h1#study-heading", "p#study-notice", "dl#study-facts", "div#study-series",
              "a#study-back", "section.series-detail div.series[data-state]", "table.slices tbody tr[data-state]"],
    "users": ["table#users-table", "dialog#password-dialog", "input#reset-password", "button#reset-password-submit",
              "form#user-add-form", "#new-username", "#new-display-name", "#new-password", "select#new-role",
              "button#user-add-submit", "p#users-status[aria-live]"],
    "audit": ["form#audit-filters", "#audit-action", "#audit-outcome", "#audit-record", 'input#audit-since[type="date"]',
              'input#audit-until[type="date"]', "button#audit-apply", "table#audit-table", "button#audit-more"],
    "denied": [],
}
SIGNED_IN = ["nav#main-nav", "span#whoami", "button#signout"]
SELECT_VALUES = {"select#patient-sex": {"unknown", "female", "male", "other"}, "select#modality": {"MRI", "CT"}}


# WCAG AA contrast of every visible text run against the first opaque background behind it:
# 4.5:1, or 3:1 for large text (24 px, or 18.66 px bold). Disabled controls are exempt (WCAG 1.4.3).
CONTRAST_JS = r"""
    const parse = (c) => { const m = c.match(/rgba?\(([^)]+)\)/); if (!m) return null;
      const v = m[1].split(/[ ,/]+/).filter(Boolean).map(Number); return { r: v[0], g: v[1], b: v[2], a: v.length > 3 ? v[3] : 1 }; };
    const lum = ({ r, g, b }) => { const f = (x) => { x /= 255; return x <= 0.03928 ? x / 12.92 : ((x + 0.055) / 1.055) ** 2.4; };
      return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b); };
    const blend = (top, bottom) => ({ r: top.r * top.a + bottom.r * (1 - top.a), g: top.g * top.a + bottom.g * (1 - top.a),
      b: top.b * top.a + bottom.b * (1 - top.a), a: 1 });
    const background = (el) => {
      const layers = [];
      for (let e = el; e; e = e.parentElement) {
        const c = parse(getComputedStyle(e).backgroundColor);
        if (c && c.a > 0) { layers.push(c); if (c.a >= 1) break; }
      }
      let bg = { r: 255, g: 255, b: 255, a: 1 };
      for (const c of layers.reverse()) bg = blend(c, bg);
      return bg;
    };
    const out = [];
    const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
    const seen = new Set();
    while (walker.nextNode()) {
      const el = walker.currentNode.parentElement;
      if (!el || seen.has(el) || !walker.currentNode.textContent.trim()) continue;
      seen.add(el);
      if (!el.getClientRects().length || el.closest('[hidden], .visually-hidden, option, :disabled')) continue;
      const st = getComputedStyle(el);
      if (st.visibility === 'hidden' || Number(st.opacity) === 0) continue;
      const fg0 = parse(st.color); if (!fg0) continue;
      const bg = background(el);
      const fg = blend(fg0, bg);
      const [hi, lo] = [lum(fg), lum(bg)].sort((x, y) => y - x);
      const ratio = (hi + 0.05) / (lo + 0.05);
      const size = parseFloat(st.fontSize), bold = Number(st.fontWeight) >= 700;
      const need = size >= 24 || (bold && size >= 18.66) ? 3 : 4.5;
      if (ratio < need) out.push(`${ratio.toFixed(2)} < ${need}: "${walker.currentNode.textContent.trim().slice(0, 40)}" in ${el.outerHTML.slice(0, 100)}`);
    }
    return out;"""


# What the Report card shows (see public/js/report.js): only what is rendered counts as shown.
REPORT_JS = r"""
    const r = document.querySelector('section#report');
    if (!r) return null;
    const shown = (el) => !!el && el.getClientRects().length > 0;
    const text = (css) => { const e = r.querySelector(css); return shown(e) ? e.innerText.trim() : null; };
    const paras = (el) => el ? [...el.querySelectorAll('p')].map(p => p.textContent) : [];
    return {
      status: r.dataset.status || null, version: r.dataset.version || null,
      badge: text('#report-status'), source: text('#report-source'), pending: text('#report-pending'),
      bodyBusy: r.querySelector('#report-body') ? r.querySelector('#report-body').getAttribute('aria-busy') : null,
      text: text('#report-text'), paragraphs: paras(r.querySelector('#report-text')),
      error: text('#report-error'), live: (r.querySelector('#report-live') || {}).textContent || '',
      shown: Object.fromEntries(['report-edit', 'report-sign', 'report-amend', 'report-editor', 'report-save', 'report-cancel']
        .map(id => [id, shown(r.querySelector('#' + id))])),
      save: text('#report-save'), editorLabel: text('#report-editor label'),
      editorValue: (r.querySelector('#report-editor-text') || {}).value,
      versions: [...r.querySelectorAll('table#report-versions tbody tr')].map(tr => ({
        number: tr.dataset.version, status: tr.dataset.status,
        cells: [...tr.cells].slice(0, 4).map(td => td.textContent.trim()), paragraphs: paras(tr.cells[4]) })),
    };"""
