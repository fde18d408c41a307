// earshot web page: machines overview, a machine's page, alerts, "try a sound".
// Plain JS, no network beyond this server; user data is always set as text, never as HTML.
"use strict";

const view = document.getElementById("view");
const keyInput = document.getElementById("api-key");
keyInput.value = localStorage.getItem("earshot.apiKey") || "";
keyInput.addEventListener("change", () => localStorage.setItem("earshot.apiKey", keyInput.value.trim()));
let refreshTimer = null;

// ------------------------------------------------------------------ helpers
function h(tag, attrs, ...children) {
  const el = document.createElementNS(tag === "svg" || attrs?.svg ? "http://www.w3.org/2000/svg" : "http://www.w3.org/1999/xhtml", tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "svg" || v === null || v === undefined || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}
const s = (tag, attrs, ...c) => h(tag, { ...(attrs || {}), svg: true }, ...c);
const fmt = (x, d = 3) => (x === null || x === undefined ? "–" : Number(x).toPrecision(d));
const when = (t) => (t ? new Date(t).toLocaleString() : "–");
const enc = encodeURIComponent;

async function api(path, options = {}) {
  const opts = { ...options, headers: { ...(options.headers || {}) } };
  if (opts.method && opts.method !== "GET") {
    const key = keyInput.value.trim();
    if (key) opts.headers["X-API-Key"] = key;
  }
  const res = await fetch(path, opts);
  let body = null;
  try { body = await res.json(); } catch (e) { body = null; }
  if (!res.ok) {
    let msg = (body && body.detail) || `${res.status} ${res.statusText}`;
    if (res.status === 401) msg += " (enter the API key at the top right)";
    const err = new Error(msg); err.status = res.status; throw err;
  }
  return body;
}
const postJSON = (path, data) => api(path, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(data) });

function uuid() {
  if (crypto.randomUUID) return crypto.randomUUID();
  return Array.from(crypto.getRandomValues(new Uint8Array(16)), (b) => b.toString(16).padStart(2, "0")).join("");
}

function showError(where, err) { where.replaceChildren(h("p", { class: "error", role: "alert" }, err.message || String(err))); }

function setNav(name) {
  document.querySelectorAll("nav a[data-nav]").forEach((a) => a.classList.toggle("active", a.dataset.nav === name));
}

// ------------------------------------------------------------------ plots (inline SVG)
// Scores over snippets: a line, anomalous points in red, the threshold dashed. Log scale when all > 0.
function scorePlot(history, { width = 600, height = 160, spark = false } = {}) {
  const pts = history.filter((p) => p.score !== null && p.score !== undefined);
  const svg = s("svg", { class: spark ? "spark" : "plot", viewBox: `0 0 ${width} ${height}`, preserveAspectRatio: "none", role: "img",
    "aria-label": "score history" });
  if (!pts.length) { svg.append(s("text", { x: 8, y: height / 2, fill: "#888", "font-size": 12 }, "no scores yet")); return svg; }
  const thr = pts.map((p) => p.threshold).filter((t) => t !== null);
  const all = pts.map((p) => p.score).concat(thr);
  const useLog = all.every((v) => v > 0);
  const tf = (v) => (useLog ? Math.log10(v) : v);
  let lo = Math.min(...all.map(tf)), hi = Math.max(...all.map(tf));
  if (hi - lo < 1e-9) { lo -= 1; hi += 1; }
  const pad = spark ? 3 : 16;
  const x = (i) => pad + (pts.length === 1 ? (width - 2 * pad) / 2 : (i * (width - 2 * pad)) / (pts.length - 1));
  const y = (v) => height - pad - ((tf(v) - lo) / (hi - lo)) * (height - 2 * pad);
  if (thr.length) {
    const t = thr[thr.length - 1];
    svg.append(s("line", { x1: 0, x2: width, y1: y(t), y2: y(t), stroke: "#c0262d", "stroke-dasharray": "4 3", "stroke-width": 1 }));
  }
  svg.append(s("polyline", { points: pts.map((p, i) => `${x(i)},${y(p.score)}`).join(" "), fill: "none", stroke: "#2457c5", "stroke-width": spark ? 1.5 : 2 }));
  pts.forEach((p, i) => {
    if (p.is_anomalous || !spark) {
      const c = s("circle", { cx: x(i), cy: y(p.score), r: spark ? 2 : 3, fill: p.is_anomalous ? "#c0262d" : "#2457c5" });
      c.append(s("title", {}, `${when(p.t)}  score ${fmt(p.score)}${p.label ? "  label " + p.label : ""}`));
      svg.append(c);
    }
  });
  if (!spark) svg.append(s("text", { x: 4, y: 12, fill: "#888", "font-size": 11 }, useLog ? "score (log scale); dashed: threshold" : "score; dashed: threshold"));
  return svg;
}

// Per-window timeline of one clip: a bar per bin (red when above the threshold), events shaded.
function timelinePlot(tl, duration) {
  const width = 600, height = 120, pad = 16;
  const svg = s("svg", { class: "plot timeline", viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": "timeline" });
  const end = Math.max(duration || 0, ...tl.points.map((p) => p.end_s));
  const maxv = Math.max(tl.threshold * 1.2, ...tl.points.map((p) => p.score));
  const x = (t) => pad + (t / end) * (width - 2 * pad);
  const y = (v) => height - pad - (Math.max(v, 0) / maxv) * (height - 2 * pad);
  for (const e of tl.events) svg.append(s("rect", { x: x(e.start_s), y: 0, width: Math.max(1, x(e.end_s) - x(e.start_s)), height, fill: "#fde8e8" }));
  for (const p of tl.points) {
    const r = s("rect", { class: "bin", x: x(p.start_s) + 1, y: y(p.score), width: Math.max(1, x(p.end_s) - x(p.start_s) - 2),
      height: height - pad - y(p.score), fill: p.is_anomalous ? "#c0262d" : "#2457c5" });
    r.append(s("title", {}, `${p.start_s}–${p.end_s} s: score ${fmt(p.score)}`));
    svg.append(r);
  }
  svg.append(s("line", { x1: pad, x2: width - pad, y1: y(tl.threshold), y2: y(tl.threshold), stroke: "#c0262d", "stroke-dasharray": "4 3" }));
  svg.append(s("text", { x: pad, y: height - 2, fill: "#888", "font-size": 11 }, "0 s"));
  svg.append(s("text", { x: width - pad, y: height - 2, fill: "#888", "font-size": 11, "text-anchor": "end" }, `${end.toFixed(1)} s`));
  return svg;
}

// ------------------------------------------------------------------ WAV encoding (browser recordings)
function encodeWav(audioBuffer) {
  const n = audioBuffer.length, sr = audioBuffer.sampleRate, chans = audioBuffer.numberOfChannels;
  const mono = new Float32Array(n);
  for (let c = 0; c < chans; c++) { const d = audioBuffer.getChannelData(c); for (let i = 0; i < n; i++) mono[i] += d[i] / chans; }
  const buf = new ArrayBuffer(44 + 2 * n), v = new DataView(buf);
  const str = (o, t) => { for (let i = 0; i < t.length; i++) v.setUint8(o + i, t.charCodeAt(i)); };
  str(0, "RIFF"); v.setUint32(4, 36 + 2 * n, true); str(8, "WAVE"); str(12, "fmt ");
  v.setUint32(16, 16, true); v.setUint16(20, 1, true); v.setUint16(22, 1, true); v.setUint32(24, sr, true);
  v.setUint32(28, sr * 2, true); v.setUint16(32, 2, true); v.setUint16(34, 16, true); str(36, "data"); v.setUint32(40, 2 * n, true);
  for (let i = 0; i < n; i++) { const x = Math.max(-1, Math.min(1, mono[i])); v.setInt16(44 + 2 * i, x < 0 ? x * 0x8000 : x * 0x7fff, true); }
  return new Blob([buf], { type: "audio/wav" });
}

// A record button: MediaRecorder -> decode in the browser -> 16-bit WAV -> onDone(blob).
function recorder(onDone, onError, maxSeconds = 10) {
  const btn = h("button", { type: "button", class: "record" }, "● Record");
  let rec = null, timer = null;
  btn.addEventListener("click", async () => {
    if (rec) { rec.stop(); return; }
    try {
      const stream = await navigator.mediaDevices.getUserMedia({ audio: true });
      const chunks = [];
      rec = new MediaRecorder(stream);
      rec.ondataavailable = (e) => e.data.size && chunks.push(e.data);
      rec.onstop = async () => {
        clearTimeout(timer); stream.getTracks().forEach((t) => t.stop());
        btn.textContent = "● Record"; btn.classList.remove("rec");
        const mime = rec.mimeType; rec = null;
        try {
          const ctx = new AudioContext();
          const audio = await ctx.decodeAudioData(await new Blob(chunks, { type: mime }).arrayBuffer());
          ctx.close();
          onDone(encodeWav(audio), "recording.wav");
        } catch (e) { onError(new Error("could not decode the recording: " + e.message)); }
      };
      rec.start();
      btn.textContent = "■ Stop"; btn.classList.add("rec");
      timer = setTimeout(() => rec && rec.stop(), maxSeconds * 1000);
    } catch (e) { onError(new Error("microphone unavailable: " + e.message + " (recording needs https or localhost)")); }
  });
  return btn;
}

// ------------------------------------------------------------------ pages
async function overview() {
  setNav("machines");
  const [ms, al] = await Promise.all([api("/machines?history=50"), api("/alerts?state=open")]);
  const cards = ms.machines.map((m) => h("div", { class: "card machine", "data-machine": m.name },
    h("div", { class: "row" }, h("a", { class: "title", href: `#/machine/${enc(m.name)}` }, m.name), h("span", { class: `badge ${m.status}` }, m.status)),
    scorePlot(m.history || [], { width: 240, height: 48, spark: true }),
    h("div", { class: "meta" }, `last ${when(m.last_snippet_at)} · score ${fmt(m.last_score)} / threshold ${fmt(m.threshold)} · ${m.n_snippets} snippets`)));
  const newForm = snippetForm(null);
  view.replaceChildren(
    h("h1", {}, "Machines"),
    al.alerts.length ? alertTable(al.alerts, "Open alerts") : h("p", { class: "muted" }, "No open alerts."),
    cards.length ? h("div", { class: "grid" }, cards) : h("p", { class: "muted" }, "No machine has reported a snippet yet."),
    h("h2", {}, "Report a snippet"), newForm);
  autoRefresh();
}

// Re-draw a list page every 15 s, unless the user is busy with a form on it.
function autoRefresh() {
  refreshTimer = setTimeout(() => {
    const busy = [...view.querySelectorAll("input")].some((i) => (i.files && i.files.length) || (i.type !== "file" && i.value) || i === document.activeElement);
    if (busy || view.querySelector("button.rec")) autoRefresh(); else route();
  }, 15000);
}

function alertTable(alerts, title) {
  return h("section", { class: "alerts" }, title ? h("h2", {}, title) : null,
    h("table", {}, h("thead", {}, h("tr", {}, ["machine", "state", "opened", "closed", "anomalous snippets", "peak score", "label", "fault"].map((c) => h("th", {}, c)))),
      h("tbody", {}, alerts.map((a) => h("tr", { class: "alert-row", "data-alert": a.id },
        h("td", {}, h("a", { href: `#/machine/${enc(a.machine)}` }, a.machine)), h("td", {}, h("span", { class: `badge ${a.state}` }, a.state)),
        h("td", {}, when(a.opened_at)), h("td", {}, when(a.closed_at)), h("td", { class: "num" }, a.n_anomalous),
        h("td", { class: "num" }, fmt(a.peak_score)), h("td", {}, a.label ? h("span", { class: `badge ${a.label}` }, a.label) : "–"),
        h("td", { class: "alert-fault" }, faultText(a)))))));
}

// What an alert's peak snippet sounds like, among the machine's confirmed faults (see docs/service.md).
function faultText(a) {
  if (a.fault_known === null || a.fault_known === undefined) return "–";
  return a.fault_known ? `sounds like ${a.fault} (distance ${fmt(a.fault_distance, 2)})` : "unlike any confirmed fault";
}

// The fault field of a snippet's label form: typed before "Confirm anomaly", or saved on a confirmed one.
function faultField(id, cur, fault, cell, render) {
  const input = h("input", { type: "text", class: "fault-input", maxlength: 64, size: 14, value: fault || "",
    placeholder: "fault, e.g. bearing", "aria-label": `fault of snippet ${id}` });
  const save = h("button", { type: "button", class: "fault-save", title: "save the fault type of this confirmed anomaly",
    onclick: async () => {
      try { const r = await postJSON(`/snippets/${id}/label`, { label: "anomaly", fault: input.value }); render(r.label, r.fault); }
      catch (e) { cell.append(h("div", { class: "error" }, e.message)); }
    } }, "Save fault");
  const node = h("div", { class: "fault-field" }, input, cur === "anomaly" ? save : null);
  return { node, value: () => input.value };
}

// Upload a snippet for `machine` (or for a machine named in the form when null).
function snippetForm(machine, onStored) {
  const out = h("div", { class: "upload-result" });
  const name = machine ? null : h("input", { type: "text", name: "machine", placeholder: "machine name", required: true, pattern: "[A-Za-z0-9][A-Za-z0-9._\\-]{0,63}" });
  const file = h("input", { type: "file", name: "file", accept: "audio/*,.wav,.flac", class: "snippet-file" });
  async function send(blob, filename) {
    const target = machine || name.value.trim();
    if (!target) { showError(out, new Error("machine: enter a name")); return; }
    const fd = new FormData(); fd.append("file", blob, filename); fd.append("snippet_id", uuid());
    out.replaceChildren(h("span", { class: "muted" }, "uploading…"));
    try {
      const r = await api(`/machines/${enc(target)}/snippets`, { method: "POST", body: fd });
      const v = r.is_anomalous === null ? "unscored" : r.is_anomalous ? "anomalous" : "normal";
      out.replaceChildren(h("span", { class: `verdict ${v}`, id: "snippet-verdict" }, v),
        h("span", { class: "muted" }, ` score ${fmt(r.score)} / threshold ${fmt(r.threshold)}${r.alert_event ? " · alert " + r.alert_event + "ed" : ""}`));
      if (onStored) onStored(r); else if (!machine) location.hash = `#/machine/${enc(target)}`;
    } catch (e) { showError(out, e); }
  }
  const form = h("form", { class: "inline snippet-form", onsubmit: (e) => { e.preventDefault(); if (file.files[0]) send(file.files[0], file.files[0].name); } },
    name, file, h("button", { type: "submit", class: "primary" }, "Upload"), recorder((b, n) => send(b, n), (e) => showError(out, e)));
  return h("div", {}, form, out);
}

async function machinePage(name) {
  setNav("machines");
  let m = null;
  try { m = await api(`/machines/${enc(name)}?history=200`); } catch (e) { if (e.status !== 404) throw e; }
  const page = h("div", { class: "machine-page" });
  const snippetsBox = h("section", { class: "snippets" });
  const alertsBox = h("div", { class: "machine-alerts" });
  const reload = () => machinePage(name);
  page.append(h("h1", {}, name, " ", m ? h("span", { class: `badge ${m.status}`, id: "machine-status" }, m.status) : null));
  if (!m) page.append(h("p", { class: "muted" }, "This machine has not reported yet. Upload its first snippet:"));
  else {
    page.append(h("p", { class: "meta muted" }, `model ${m.model || "none"} · threshold ${fmt(m.threshold)} · ${m.n_snippets} snippets · labels: `
      + Object.entries(m.labels || {}).map(([k, v]) => `${k} ${v}`).join(", ")));
    page.append(scorePlot(m.history || [], { width: 1000, height: 220 }));
  }
  if (m) page.append(h("h2", {}, "Drift"), driftPanel(name));  // static/drift.js
  page.append(h("h2", {}, "Report a snippet"), snippetForm(name, () => setTimeout(reload, 300)));
  page.append(h("h2", {}, "Alerts"), alertsBox, h("h2", {}, "Snippets"), snippetsBox);
  if (m) page.append(h("h2", {}, "Settings and training"), settingsBox(name, m), trainBox(name, m));
  view.replaceChildren(page);
  if (!m) return;
  const al = await api(`/alerts?machine=${enc(name)}&limit=20`);
  alertsBox.replaceChildren(al.alerts.length ? alertTable(al.alerts) : h("p", { class: "muted" }, "No alerts."));
  await loadSnippets(name, `/machines/${enc(name)}/snippets?limit=20`, snippetsBox, true);
}

async function loadSnippets(machine, url, box, fresh) {
  const page = await api(url);
  let table = box.querySelector("table");
  if (fresh || !table) {
    table = h("table", {}, h("thead", {}, h("tr", {}, ["#", "recorded", "spectrogram", "score", "verdict", "label"].map((c) => h("th", {}, c)))), h("tbody"));
    box.replaceChildren(table);
  }
  const body = table.querySelector("tbody");
  for (const sn of page.items) body.append(snippetRow(sn));
  box.querySelector("button.more")?.remove();
  if (page.next) box.append(h("button", { class: "more", onclick: () => loadSnippets(machine, page.next, box, false) }, "Older snippets"));
  if (!page.items.length && fresh) box.replaceChildren(h("p", { class: "muted" }, "No snippets."));
}

function snippetRow(sn) {
  const v = sn.is_anomalous === null ? "unscored" : sn.is_anomalous ? "anomalous" : "normal";
  const labelCell = h("td", { class: "label-cell" });
  function render(cur, fault) {
    const state = h("span", { class: "current-label" }, cur ? cur : "unlabelled");
    const faultBox = faultField(sn.id, cur, fault, labelCell, render);
    const mk = (lab, text) => h("button", { type: "button", class: `label-${lab}${cur === lab ? " on" : ""}`, title: lab === "anomaly" ? "confirm: a real anomaly" : "reject: the machine was fine",
      onclick: async () => {
        const body = { label: cur === lab ? null : lab };
        if (body.label === "anomaly" && faultBox.value().trim()) body.fault = faultBox.value();
        try { const r = await postJSON(`/snippets/${sn.id}/label`, body); render(r.label, r.fault); }
        catch (e) { labelCell.append(h("div", { class: "error" }, e.message)); }
      } }, text);
    labelCell.replaceChildren(state, " ", mk("anomaly", "Confirm anomaly"), " ", mk("normal", "Normal"), faultBox.node);
  }
  render(sn.label, sn.fault);
  return h("tr", { class: "snippet-row", "data-id": sn.id },
    h("td", {}, h("a", { href: sn.audio_url, title: "download audio" }, sn.id)), h("td", {}, when(sn.recorded_at)),
    h("td", {}, h("img", { class: "spec", src: sn.spectrogram_url, alt: `spectrogram of snippet ${sn.id}`, loading: "lazy" })),
    h("td", { class: "num" }, fmt(sn.score)), h("td", {}, h("span", { class: `badge ${v === "anomalous" ? "alert" : v === "normal" ? "ok" : ""}` }, v)),
    labelCell);
}

function settingsBox(name, m) {
  const url = h("input", { type: "url", value: m.webhook_url || "", placeholder: "https://… (alert webhook)", size: 40 });
  const out = h("span", {});
  return h("form", { class: "inline", onsubmit: async (e) => {
    e.preventDefault();
    try { await api(`/machines/${enc(name)}`, { method: "PUT", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ webhook_url: url.value.trim() || null }) });
      out.replaceChildren(h("span", { class: "muted" }, "saved")); } catch (err) { showError(out, err); }
  } }, "Webhook", url, h("button", { type: "submit" }, "Save"), out);
}

function trainBox(name, m) {
  const epochs = h("input", { type: "number", min: 1, max: 1000, value: 30, style: "width:5rem" });
  const model = h("select", { class: "train-model" }, [["autoencoder", "autoencoder (normal snippets)"],
    ["supervised", "supervised CNN (labelled snippets)"], ["auto", "auto"]].map(([v, t]) => h("option", { value: v }, t)));
  const out = h("span", {});
  const compared = h("div", { class: "comparison-box", style: "flex-basis:100%" });
  lastComparison(name, compared);
  async function poll(id) {
    const j = await api(`/jobs/${id}`);
    out.replaceChildren(h("progress", { max: 1, value: j.progress }), ` ${j.state}: ${j.stage || ""} ${j.message || ""}`);
    if (j.result && j.result.comparison) compared.replaceChildren(comparisonView(j));
    if (j.state === "queued" || j.state === "running") setTimeout(() => poll(id), 1000);
  }
  return h("form", { class: "inline", onsubmit: async (e) => {
    e.preventDefault();
    try { const j = await postJSON(`/machines/${enc(name)}/train`, { epochs: Number(epochs.value), model: model.value }); poll(j.id); } catch (err) { showError(out, err); }
  } }, `Train this machine's model on its ${m.n_training_snippets} normal snippets (or its labelled ones);`, h("label", {}, "model ", model),
    h("label", {}, " epochs ", epochs), h("button", { type: "submit" }, "Train"), out, compared);
}

// A label-trained candidate against the machine's model on held-out labelled snippets (docs/service.md).
function comparisonView(job) {
  const c = job.result.comparison;
  const row = (who, r) => h("tr", {}, h("td", {}, who), h("td", {}, r ? `${r.model} (${r.kind})` : "none"),
    h("td", { class: "num" }, r && r.auc !== undefined ? fmt(r.auc, 3) : "–"), h("td", { class: "num" }, r && r.pauc !== undefined ? fmt(r.pauc, 3) : "–"));
  return h("div", { class: "comparison", "data-job": job.id },
    h("h3", {}, `Label-trained model, ${when(job.finished_at)}: `, h("span", { class: `badge ${c.swapped ? "ok" : "warning"}`, id: "comparison-verdict" },
      c.swapped ? "swapped in" : "current model kept")),
    h("table", {}, h("thead", {}, h("tr", {}, ["", "model", "held-out AUC", `pAUC (FPR ≤ ${c.max_fpr})`].map((t) => h("th", {}, t)))),
      h("tbody", {}, row("candidate", c.candidate), row("current", c.current))),
    h("p", { class: "muted" }, `held out: ${c.held_out.anomaly} confirmed anomalies, ${c.held_out.normal} normal`
      + (c.held_out.not_scorable ? `, ${c.held_out.not_scorable} not scorable` : "") + ` (${c.split}) · ${c.reason}`));
}

async function lastComparison(name, box) {
  try {
    const { jobs } = await api(`/jobs?machine=${enc(name)}&limit=50`);
    const j = jobs.find((x) => x.result && x.result.comparison);
    if (j) box.replaceChildren(comparisonView(j));
  } catch (e) { showError(box, e); }
}

async function alertsPage() {
  setNav("alerts");
  const al = await api("/alerts?limit=200");
  view.replaceChildren(h("h1", {}, "Alerts"), al.alerts.length ? alertTable(al.alerts) : h("p", { class: "muted" }, "No alerts yet."));
  autoRefresh();
}

async function tryPage() {
  setNav("try");
  const { models, default: def } = await api("/models");
  const select = h("select", { name: "model" }, models.map((mo) => h("option", { value: mo.name, selected: mo.name === def }, `${mo.name} (${mo.source})`)));
  const file = h("input", { type: "file", accept: "audio/*,.wav,.flac", class: "try-file" });
  const out = h("div", { class: "try-result" });
  async function send(blob, filename) {
    const fd = new FormData(); fd.append("file", blob, filename); if (select.value) fd.append("model", select.value);
    out.replaceChildren(h("span", { class: "muted" }, "scoring…"));
    try {
      // a clip-level model (gauss, knn, embed) gives one score per clip: no timeline to ask for
      const chosen = models.find((mo) => mo.name === (select.value || def));
      const streams = !chosen || chosen.streams !== false;
      const r = await api(`/score?timeline=${streams}&spectrogram=true`, { method: "POST", body: fd });
      out.replaceChildren(
        h("p", {}, h("span", { class: `verdict ${r.verdict}`, id: "try-verdict" }, r.verdict),
          h("span", { class: "muted" }, ` score ${fmt(r.score)} / threshold ${fmt(r.threshold)} · model ${r.model} · ${r.duration_s.toFixed(2)} s at ${r.sr} Hz`
            + (r.resampled_from ? ` (resampled to ${models.find((mo) => mo.name === r.model)?.features.sr} Hz)` : ""))),
        h("h2", {}, "Spectrogram"), h("img", { class: "spec big", id: "try-spectrogram", src: r.spectrogram_png, alt: "log-mel spectrogram" }),
        ...(r.timeline ? [h("h2", {}, "Timeline"), timelinePlot(r.timeline, r.duration_s),
          h("p", { class: "muted" }, r.timeline.events.length ? `${r.timeline.events.length} anomalous stretch(es): ` +
            r.timeline.events.map((e) => `${e.start_s}–${e.end_s} s`).join(", ") : "No anomalous stretch.")]
          : [h("p", { class: "muted" }, `No timeline: this ${chosen ? chosen.kind : ""} model scores whole clips.`)]));
    } catch (e) { showError(out, e); }
  }
  view.replaceChildren(h("h1", {}, "Try a sound"),
    h("p", { class: models.length ? "muted" : "error" }, models.length ? `${models.length} model(s) loaded.` : "No model is loaded: start the server with --models DIR."),
    h("form", { class: "inline try-form", onsubmit: (e) => { e.preventDefault(); if (file.files[0]) send(file.files[0], file.files[0].name); } },
      "Model", select, file, h("button", { type: "submit", class: "primary" }, "Score"), recorder(send, (e) => showError(out, e))),
    h("p", { class: "muted" }, "Upload a wav or flac file, or record up to 10 s from the microphone. Nothing is stored."), out);
}

// ------------------------------------------------------------------ router
async function route() {
  clearTimeout(refreshTimer);
  const hash = location.hash || "#/";
  try {
    if (hash.startsWith("#/machine/")) await machinePage(decodeURIComponent(hash.slice(10)));
    else if (hash === "#/alerts") await alertsPage();
    else if (hash === "#/try") await tryPage();
    else await overview();
  } catch (e) { showError(view, e); }
}
window.addEventListener("hashchange", route);
route();
