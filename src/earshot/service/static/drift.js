// earshot web page: the drift panel of a machine's page (its drift checks over time, what moved,
// retraining on recent normal snippets). Loaded before app.js; uses its helpers (h, s, api, fmt, when)
// only when called. User data is always set as text, never as HTML.
"use strict";

// Drift score of each stored check against its threshold (dashed; it depends on the window size).
function driftPlot(checks, { width = 1000, height = 180 } = {}) {
  const svg = s("svg", { class: "plot drift-plot", viewBox: `0 0 ${width} ${height}`, preserveAspectRatio: "none", role: "img",
    "aria-label": "drift score over time" });
  if (!checks.length) return svg;
  const pad = 18;
  const hi = Math.max(1e-6, ...checks.map((c) => Math.max(c.score, c.threshold))) * 1.1;
  const t0 = Date.parse(checks[0].computed_at), t1 = Date.parse(checks[checks.length - 1].computed_at);
  const x = (c, i) => pad + (t1 > t0 ? (Date.parse(c.computed_at) - t0) / (t1 - t0) : checks.length > 1 ? i / (checks.length - 1) : 0.5) * (width - 2 * pad);
  const y = (v) => height - pad - (v / hi) * (height - 2 * pad);
  svg.append(s("polyline", { class: "drift-threshold", points: checks.map((c, i) => `${x(c, i)},${y(c.threshold)}`).join(" "), fill: "none",
    stroke: "#c0262d", "stroke-dasharray": "4 3", "stroke-width": 1 }));
  svg.append(s("polyline", { points: checks.map((c, i) => `${x(c, i)},${y(c.score)}`).join(" "), fill: "none", stroke: "#2457c5", "stroke-width": 2 }));
  checks.forEach((c, i) => {
    const dot = s("circle", { class: c.drifted ? "drift-point drifted" : "drift-point", cx: x(c, i), cy: y(c.score), r: 3.5,
      fill: c.drifted ? "#c0262d" : "#2457c5" });
    dot.append(s("title", {}, `${when(c.computed_at)}  drift ${fmt(c.score)} / threshold ${fmt(c.threshold)} · ${c.n} snippets`
      + (c.n_rejected ? ` · ${c.n_rejected} rejected alarms` : "")));
    svg.append(dot);
  });
  svg.append(s("text", { x: 4, y: 12, fill: "#888", "font-size": 11 }, "drift score (KS distance of recent scores to the training reference); dashed: threshold"));
  return svg;
}

function driftVerdict(c) {
  const bands = (c.bands || []).map((b) => h("tr", {}, h("td", {}, `${Math.round(b.lo_hz)}–${Math.round(b.hi_hz)} Hz`),
    h("td", { class: "num" }, `${b.shift_db > 0 ? "+" : ""}${Number(b.shift_db).toFixed(1)} dB`), h("td", { class: "num" }, b.z === null || b.z === undefined ? "–" : Number(b.z).toFixed(1))));
  return h("div", { class: "drift-last" },
    h("p", {}, "Last check ", when(c.computed_at), ": ",
      h("span", { class: `badge ${c.drifted ? "alert" : "ok"}`, id: "drift-verdict" }, c.drifted ? "drifted" : "steady"),
      h("span", { class: "muted" }, ` drift ${fmt(c.score)} / threshold ${fmt(c.threshold)} over ${c.n} snippets`
        + ` (${when(c.window_from)} – ${when(c.window_to)}), ${c.n_rejected} rejected false alarms`
        + (c.reasons && c.reasons.length ? " · " + c.reasons.join("; ") : ""))),
    bands.length ? h("table", { class: "drift-bands" }, h("thead", {}, h("tr", {}, ["mel band that moved", "level shift", "z"].map((t) => h("th", {}, t)))),
      h("tbody", {}, bands)) : h("p", { class: "muted" }, "No band levels for this check."));
}

// "Retrain on recent normal snippets": the training job (POST /machines/{m}/train) with since_days.
function retrainForm(name) {
  const days = h("input", { type: "number", class: "retrain-days", min: 0.01, step: "any", value: 7, style: "width:5rem" });
  const epochs = h("input", { type: "number", class: "retrain-epochs", min: 1, max: 1000, value: 30, style: "width:5rem" });
  const out = h("span", { class: "retrain-progress" });
  async function poll(id) {
    try {
      const j = await api(`/jobs/${id}`);
      out.replaceChildren(h("progress", { max: 1, value: j.progress }), ` job ${j.state}: ${j.stage || ""} ${j.message || ""}`);
      if (j.state === "queued" || j.state === "running") setTimeout(() => poll(id), 1000);
    } catch (e) { showError(out, e); }
  }
  return h("form", { class: "inline retrain-form", onsubmit: async (e) => {
    e.preventDefault();
    try {
      const j = await postJSON(`/machines/${enc(name)}/train`, { since_days: Number(days.value), epochs: Number(epochs.value), model: "autoencoder" });
      out.replaceChildren(` job ${j.state}`); poll(j.id);
    } catch (err) { showError(out, err); }
  } }, h("button", { type: "submit", class: "retrain" }, "Retrain on recent normal snippets"),
    h("label", {}, "of the last ", days, " days,"), h("label", {}, " epochs ", epochs), out);
}

// The panel: filled in when the history arrives; empty-state text says when the first check runs.
function driftPanel(name) {
  const box = h("section", { class: "drift-panel" }, h("p", { class: "muted" }, "loading drift checks…"));
  (async () => {
    try {
      const { checks, every } = await api(`/machines/${enc(name)}/drift/history?limit=200`);
      const last = checks[checks.length - 1];
      box.replaceChildren(
        checks.length ? driftPlot(checks) : h("p", { class: "muted drift-none" }, every
          ? `No drift check yet: one runs after every ${every} snippets scored by the machine's model.`
          : "No drift check yet (background checks are off: GET /machines/{m}/drift?record=true stores one)."),
        last ? driftVerdict(last) : null,
        last && last.drifted ? h("p", { class: "drift-suggest" }, "This machine sounds different from what its model was trained on: "
          + "retraining on its recent normal snippets is suggested (confirm real faults first, so that they are left out).") : null,
        retrainForm(name));
    } catch (e) { showError(box, e); }
  })();
  return box;
}
