// rnnlm serve: the page is one client of the JSON API (/api/model, /api/score, /api/generate/stream,
// /api/fill). Plain DOM, no inline script or style (the Content-Security-Policy forbids both): colours
// are set through the CSSOM (element.style), which the policy allows.
"use strict";

const $ = (id) => document.getElementById(id);

// Surprisal colour scale: 0 bits -> green, SCALE_BITS or more -> red (hue 120 -> 0), fixed so that
// texts and models can be compared by eye. The browser test recomputes it from the API's numbers.
const SCALE_BITS = 16;
function surprisalColour(bits) {
  const t = Math.max(0, Math.min(bits / SCALE_BITS, 1));
  return `hsl(${(120 * (1 - t)).toFixed(1)}, 75%, 80%)`;
}

let MODEL = null;

// ---------------------------------------------------------------------------------------------
// API

class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

async function api(path, body, options = {}) {
  const init = body === undefined ? {} : {
    method: "POST",
    headers: {"Content-Type": "application/json"},
    body: JSON.stringify(body),
  };
  const res = await fetch(path, {...init, ...options});
  if (!res.ok) {
    throw await errorOf(res);
  }
  return res.json();
}

async function errorOf(res) {
  let message = res.statusText || "request failed";
  try {
    const data = await res.json();
    if (data && data.error) message = data.error;
  } catch (e) { /* not JSON */ }
  return new ApiError(res.status, message);
}

function showError(err) {
  const box = $("message");
  box.textContent = err instanceof ApiError ? `Error ${err.status}: ${err.message}` : `Error: ${err.message || err}`;
  box.dataset.status = err instanceof ApiError ? String(err.status) : "";
  box.hidden = false;
}

function clearError() {
  const box = $("message");
  box.hidden = true;
  box.textContent = "";
  box.dataset.status = "";
}

function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
}

function numberOrNull(id) {
  const v = $(id).value.trim();
  return v === "" ? null : Number(v);
}

function fmtProb(p) {
  if (p === null || p === undefined) return "–";
  return p >= 0.001 ? p.toPrecision(4) : p.toExponential(3);
}

function fmt(x, digits = 3) {
  if (x === null || x === undefined) return "–";
  if (typeof x !== "number") return String(x);
  if (Number.isInteger(x)) return x.toLocaleString("en-US");
  return x.toFixed(digits);
}

// ---------------------------------------------------------------------------------------------
// tabs

function selectView(name) {
  for (const tab of document.querySelectorAll("[role=tab]")) {
    const on = tab.dataset.view === name;
    tab.setAttribute("aria-selected", on ? "true" : "false");
    $(`view-${tab.dataset.view}`).hidden = !on;
  }
  clearError();
  hidePopup();
}

// ---------------------------------------------------------------------------------------------
// score

let SCORED = [];

function displayText(tok, level) {
  if (tok.special) return tok.text === MODEL.vocabulary?.end_token ? "⏎" : tok.text;
  if (level === "char") {
    if (tok.text === "\n") return "↵";
    if (tok.text === "\t") return "⇥";
  }
  return tok.text;
}

async function score() {
  clearError();
  hidePopup();
  const btn = $("score-btn");
  btn.disabled = true;
  $("score-summary").textContent = "scoring…";
  try {
    const res = await api("/api/score", {text: $("score-text").value, top: 5});
    renderScore(res);
  } catch (err) {
    $("score-summary").textContent = "";
    showError(err);
  } finally {
    btn.disabled = false;
  }
}

function renderScore(res) {
  SCORED = res.tokens;
  const out = $("score-tokens");
  out.replaceChildren();
  out.classList.toggle("char", res.level === "char");
  let line = el("div", "sentence");
  let sentence = SCORED.length ? SCORED[0].sentence : 0;
  SCORED.forEach((tok, i) => {
    if (res.level === "word" && tok.sentence !== sentence) {
      out.appendChild(line);
      line = el("div", "sentence");
      sentence = tok.sentence;
    }
    const span = el("span", "tok", displayText(tok, res.level));
    span.dataset.i = String(i);
    span.tabIndex = 0;
    if (tok.predicted) {
      span.style.backgroundColor = surprisalColour(tok.surprisal_bits ?? SCALE_BITS);
      span.dataset.bits = String(tok.surprisal_bits);
    } else {
      span.classList.add("context");
    }
    if (tok.oov) span.classList.add("oov");
    if (tok.special) span.classList.add("special");
    line.appendChild(span);
    if (res.level === "char" && tok.text === "\n") {
      out.appendChild(line);
      line = el("div", "sentence");
    } else if (res.level === "word") {
      line.appendChild(document.createTextNode(" "));
    }
  });
  out.appendChild(line);
  const unit = res.level === "char" ? "characters" : "tokens";
  $("score-summary").textContent =
    `perplexity ${fmt(res.perplexity)} · ${fmt(res.bits_per_token)} bits/token · ` +
    `${fmt(res.predicted_tokens)} predicted ${unit} · ${fmt(res.oov)} unknown`;
  $("score-summary").dataset.perplexity = String(res.perplexity);
  $("legend").hidden = false;
}

function showPopup(span) {
  const tok = SCORED[Number(span.dataset.i)];
  if (!tok) return;
  const pop = $("popup");
  $("pop-token").textContent = JSON.stringify(tok.text);
  $("pop-oov").hidden = !tok.oov;
  if (tok.oov && MODEL.vocabulary) $("pop-oov").textContent = ` · unknown word, scored as ${MODEL.vocabulary.unknown_token}`;
  if (tok.predicted) {
    $("pop-prob").textContent = `${fmtProb(tok.prob)} (${(100 * tok.prob).toFixed(2)}%)`;
    $("pop-bits").textContent = tok.surprisal_bits === null ? "∞" : `${tok.surprisal_bits.toFixed(2)} bits`;
    $("pop-rank").textContent = `${tok.rank} of ${MODEL.config.vocab_size}`;
  } else {
    $("pop-prob").textContent = "not predicted (the first token is given)";
    $("pop-bits").textContent = "–";
    $("pop-rank").textContent = "–";
  }
  const list = $("pop-top");
  list.replaceChildren();
  for (const alt of tok.top) {
    const li = el("li", alt.id === tok.id ? "hit" : "");
    li.appendChild(el("code", "alt", JSON.stringify(alt.token)));
    li.appendChild(el("span", "alt-prob", fmtProb(alt.prob)));
    list.appendChild(li);
  }
  pop.hidden = false;
  const r = span.getBoundingClientRect();
  const width = pop.offsetWidth;
  const left = Math.max(8, Math.min(window.scrollX + r.left, window.scrollX + document.documentElement.clientWidth - width - 8));
  pop.style.left = `${left}px`;
  pop.style.top = `${window.scrollY + r.bottom + 6}px`;
  pop.dataset.i = span.dataset.i;
}

function hidePopup() {
  const pop = $("popup");
  if (pop) pop.hidden = true;
}

function tokenOf(event) {
  const t = event.target;
  return t instanceof Element ? t.closest(".tok") : null;
}

// ---------------------------------------------------------------------------------------------
// generate (server-sent events over a streamed POST response)

let RUNNING = null;

function generateBody() {
  const mode = $("gen-mode").value;
  const body = {
    prime: $("gen-prime").value,
    mode,
    max_length: numberOrNull("gen-maxlen"),
    allow_unk: $("gen-allow-unk").checked,
  };
  if (mode === "sample") {
    body.temperature = numberOrNull("gen-temperature");
    body.top_k = numberOrNull("gen-topk");
    body.seed = numberOrNull("gen-seed");
  }
  if (mode === "beam") body.beam_size = numberOrNull("gen-beam");
  if (mode !== "greedy") body.num = numberOrNull("gen-num");
  return body;
}

function updateModeControls() {
  const mode = $("gen-mode").value;
  for (const e of document.querySelectorAll(".sample-only")) e.hidden = mode !== "sample";
  for (const e of document.querySelectorAll(".beam-only")) e.hidden = mode !== "beam";
  for (const e of document.querySelectorAll(".not-greedy")) e.hidden = mode === "greedy";
}

async function generate() {
  clearError();
  const out = $("gen-output");
  out.replaceChildren();
  const status = $("gen-status");
  status.textContent = "generating…";
  status.dataset.state = "running";
  const controller = new AbortController();
  RUNNING = controller;
  $("gen-btn").disabled = true;
  $("gen-stop").disabled = false;
  let rows = [];
  let level = MODEL.level;
  let finished = false;
  const handle = (kind, data) => {
    if (kind === "start") {
      level = data.level;
      rows = [];
      for (let r = 0; r < data.num; r++) {
        const row = el("div", "sample");
        row.dataset.row = String(r);
        const pre = data.prefix.tokens ?? data.prefix.ids.map(String);
        if (pre.length) {
          row.appendChild(el("span", "prefix", level === "char" ? pre.join("") : pre.join(" ")));
        }
        out.appendChild(row);
        rows.push(row);
      }
    } else if (kind === "token") {
      const row = rows[data.row];
      if (!row) return;
      if (data.end) {
        row.classList.add("ended");
        return;
      }
      const text = data.token ?? String(data.id);
      const sep = level === "char" || !row.childNodes.length ? "" : " ";
      const span = el("span", "gtok", sep + text);
      if (data.logprob !== null) span.title = `p = ${fmtProb(Math.exp(data.logprob))}`;
      row.appendChild(span);
    } else if (kind === "done") {
      finished = true;
      const why = {time_limit: "stopped at the time limit", cancelled: "stopped"}[data.stopped] || "done";
      const seed = data.seed !== null ? ` · seed ${data.seed}` : "";
      status.textContent = `${why}${seed}`;
      status.dataset.state = data.stopped || "done";
      data.samples.forEach((s, r) => {
        if (rows[r]) rows[r].dataset.logprob = String(s.logprob);
      });
    } else if (kind === "error") {
      finished = true;
      status.textContent = "";
      status.dataset.state = "error";
      showError(new ApiError(data.status, data.error));
    }
  };
  try {
    const res = await fetch("/api/generate/stream", {
      method: "POST",
      headers: {"Content-Type": "application/json"},
      body: JSON.stringify(generateBody()),
      signal: controller.signal,
    });
    if (!res.ok) throw await errorOf(res);
    const reader = res.body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    for (;;) {
      const {value, done} = await reader.read();
      if (done) break;
      buffer += decoder.decode(value, {stream: true});
      let cut;
      while ((cut = buffer.indexOf("\n\n")) >= 0) {
        const block = buffer.slice(0, cut);
        buffer = buffer.slice(cut + 2);
        let kind = "message";
        let data = "";
        for (const line of block.split("\n")) {
          if (line.startsWith("event: ")) kind = line.slice(7);
          else if (line.startsWith("data: ")) data += line.slice(6);
        }
        handle(kind, JSON.parse(data));
      }
    }
    if (!finished) {
      status.textContent = "the connection closed early";
      status.dataset.state = "error";
    }
  } catch (err) {
    if (err.name === "AbortError") {
      status.textContent = "stopped";
      status.dataset.state = "cancelled";
    } else {
      status.textContent = "";
      status.dataset.state = "error";
      showError(err);
    }
  } finally {
    RUNNING = null;
    $("gen-btn").disabled = false;
    $("gen-stop").disabled = true;
  }
}

// ---------------------------------------------------------------------------------------------
// fill

async function fill() {
  clearError();
  const list = $("fill-results");
  list.replaceChildren();
  try {
    const res = await api("/api/fill", {text: $("fill-text").value, top_k: numberOrNull("fill-topk")});
    const best = res.candidates.length ? res.candidates[0].prob : 1;
    for (const c of res.candidates) {
      const li = el("li", "candidate");
      li.appendChild(el("code", "word", c.word));
      const bar = el("span", "bar");
      bar.style.width = `${Math.max(2, Math.round(160 * c.prob / best))}px`;
      li.appendChild(bar);
      li.appendChild(el("span", "prob", fmtProb(c.prob)));
      list.appendChild(li);
    }
  } catch (err) {
    showError(err);
  }
}

// ---------------------------------------------------------------------------------------------
// model card

function table(id, rows) {
  const t = $(id);
  t.replaceChildren();
  for (const [k, v] of rows) {
    if (v === undefined) continue;
    const tr = el("tr");
    tr.appendChild(el("th", "", k));
    tr.appendChild(el("td", "", typeof v === "number" ? fmt(v) : (v === null ? "–" : String(v))));
    t.appendChild(tr);
  }
}

function renderCard(m) {
  const c = m.config;
  $("model-name").textContent = m.name;
  const what = m.task === "fill" ? "bidirectional fill model" : "language model";
  $("model-summary").textContent =
    `${m.level}-level ${c.cell.toUpperCase()} ${what} · ${fmt(m.parameters)} parameters · ` +
    `vocabulary ${fmt(c.vocab_size)}` + (m.training?.best_valid_perplexity ?
      ` · validation perplexity ${fmt(m.training.best_valid_perplexity)}` : "");
  table("card-model", [
    ["file", m.name], ["kind", m.kind], ["task", m.task], ["level", m.level], ["cell", c.cell],
    ["layers", c.layers], ["hidden", c.hidden_dim], ["embedding", c.embedding_dim || "one-hot"],
    ["bidirectional", c.bidirectional ? "yes" : "no"], ["tied embeddings", c.tie_embeddings ? "yes" : "no"],
    ["dropout", c.dropout], ["parameters", m.parameters],
    ["shapes", Object.entries(m.parameter_shapes).map(([k, s]) => `${k} ${s.join("×")}`).join(", ")],
    ["linker", m.linker], ["saved", m.saved_at],
  ]);
  const v = m.vocabulary;
  table("card-vocab", v ? [
    ["size", v.size], ["unknown token", v.unknown_token], ["start / end", v.start_token ? `${v.start_token} / ${v.end_token}` : "none (char level)"],
    ["training tokens", v.training_tokens],
    ["most frequent", v.most_frequent.map(([w, n]) => `${JSON.stringify(w)} ${fmt(n)}`).join(", ")],
    ["least frequent", v.least_frequent ? `${JSON.stringify(v.least_frequent[0])} ${v.least_frequent[1]}` : null],
  ] : [["vocabulary", "none: token ids (the tutorial's layout)"]]);
  const corpus = m.corpus;
  const crows = [];
  if (corpus) {
    // Settings, then the statistics saved beside the checkpoint; each name once, empty values left out.
    const seen = new Set();
    const add = (k, val) => {
      const name = k.replaceAll("_", " ");
      if (val === null || val === undefined || val === "" || seen.has(name)) return;
      seen.add(name);
      crows.push([name, val]);
    };
    const settings = {...(corpus.settings || {})};
    if (!["csv"].includes(settings.format)) delete settings.column;
    if (!["jsonl"].includes(settings.format)) delete settings.field;
    for (const [k, val] of Object.entries(settings)) add(k, val);
    add("sentence splitter", corpus.sentence_splitter);
    for (const [k, val] of Object.entries(corpus.stats || {})) add(k, val);
    crows.push(["pasted text is read as", corpus.text_format]);
  } else {
    crows.push(["corpus", "not recorded"]);
  }
  table("card-corpus", crows);
  const tr = m.training || {};
  const trows = [
    ["steps", tr.global_step], ["epochs", tr.epoch], ["tokens seen", tr.words],
    ["time", tr.elapsed !== undefined ? `${fmt(tr.elapsed, 1)} s` : undefined], ["stopped", tr.stopped],
    ["best validation loss", tr.best_valid_loss], ["validation perplexity", tr.best_valid_perplexity],
  ];
  for (const [k, val] of Object.entries(m.train_config || {})) trows.push([k.replaceAll("_", " "), val]);
  table("card-training", trows.filter(([, val]) => val !== undefined));
  if (!m.training && !m.train_config) table("card-training", [["training", "not recorded"]]);
  const box = $("card-baselines-box");
  box.hidden = !m.baselines;
  if (m.baselines) {
    const t = $("card-baselines");
    t.replaceChildren();
    const keys = [...new Set(m.baselines.flatMap((r) => Object.keys(r)))].filter((k) => k !== "name");
    const head = el("tr");
    head.appendChild(el("th", "", "baseline"));
    for (const k of keys) head.appendChild(el("th", "", k.replaceAll("_", " ")));
    t.appendChild(head);
    for (const r of m.baselines) {
      const row = el("tr");
      row.appendChild(el("td", "", r.name));
      for (const k of keys) row.appendChild(el("td", "", r[k] === undefined ? "" : fmt(r[k])));
      t.appendChild(row);
    }
  }
  drawCurve(m.history);
  // Views this model cannot serve are disabled with the reason.
  for (const [view, can] of Object.entries(m.capabilities)) {
    const tab = $(`tab-${view}`);
    tab.disabled = !can;
    tab.title = can ? "" : (view === "fill" ? "needs a bidirectional model (rnnlm train --task fill)" :
      "a fill model cannot read left to right");
  }
  if (!m.capabilities.score) selectView(m.capabilities.fill ? "fill" : "model");
  if (!v) {
    $("score-hint").textContent = "This model has no vocabulary: give token ids separated by spaces, one sentence per line.";
  }
}

const SVG = "http://www.w3.org/2000/svg";

function svgEl(tag, attrs) {
  const e = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
  return e;
}

function drawCurve(history) {
  const svg = $("loss-curve");
  svg.replaceChildren();
  const series = [["train", history.train], ["valid", history.valid]].filter(([, pts]) => pts.length);
  $("curve-empty").hidden = series.length > 0;
  svg.hidden = series.length === 0;
  if (!series.length) return;
  const all = series.flatMap(([, pts]) => pts);
  const xs = all.map((p) => p[0]);
  const ys = all.map((p) => p[1]);
  let [x0, x1, y0, y1] = [Math.min(...xs), Math.max(...xs), Math.min(...ys), Math.max(...ys)];
  if (x1 === x0) x1 = x0 + 1;
  if (y1 === y0) { y0 -= 0.5; y1 += 0.5; }
  const W = 640, H = 280, L = 56, R = 16, T = 12, B = 36;
  const px = (x) => L + (W - L - R) * (x - x0) / (x1 - x0);
  const py = (y) => T + (H - T - B) * (1 - (y - y0) / (y1 - y0));
  svg.appendChild(svgEl("line", {x1: L, y1: H - B, x2: W - R, y2: H - B, class: "axis"}));
  svg.appendChild(svgEl("line", {x1: L, y1: T, x2: L, y2: H - B, class: "axis"}));
  const label = (x, y, text, anchor) => {
    const t = svgEl("text", {x, y, "text-anchor": anchor, class: "tick"});
    t.textContent = text;
    svg.appendChild(t);
  };
  label(L - 6, py(y1) + 4, y1.toFixed(2), "end");
  label(L - 6, py(y0) + 4, y0.toFixed(2), "end");
  label(L, H - B + 18, String(x0), "start");
  label(W - R, H - B + 18, String(x1), "end");
  label((L + W - R) / 2, H - 4, "step", "middle");
  for (const [name, pts] of series) {
    const points = pts.map(([x, y]) => `${px(x).toFixed(1)},${py(y).toFixed(1)}`).join(" ");
    svg.appendChild(svgEl("polyline", {points, class: `curve curve-${name}`}));
    if (name === "valid" || pts.length === 1) {
      for (const [x, y] of pts) svg.appendChild(svgEl("circle", {cx: px(x), cy: py(y), r: 3, class: `dot dot-${name}`}));
    }
  }
}

// ---------------------------------------------------------------------------------------------
// start

async function init() {
  for (const tab of document.querySelectorAll("[role=tab]")) {
    tab.addEventListener("click", () => selectView(tab.dataset.view));
  }
  $("score-btn").addEventListener("click", score);
  $("gen-btn").addEventListener("click", generate);
  $("gen-stop").addEventListener("click", () => { if (RUNNING) RUNNING.abort(); });
  $("gen-mode").addEventListener("change", updateModeControls);
  $("fill-btn").addEventListener("click", fill);
  $("fill-text").addEventListener("keydown", (e) => { if (e.key === "Enter") fill(); });
  const tokens = $("score-tokens");
  tokens.addEventListener("mouseover", (e) => { const s = tokenOf(e); if (s) showPopup(s); });
  tokens.addEventListener("focusin", (e) => { const s = tokenOf(e); if (s) showPopup(s); });
  tokens.addEventListener("click", (e) => { const s = tokenOf(e); if (s) showPopup(s); });
  tokens.addEventListener("mouseleave", hidePopup);
  document.addEventListener("keydown", (e) => { if (e.key === "Escape") hidePopup(); });
  updateModeControls();
  try {
    MODEL = await api("/api/model");
    renderCard(MODEL);
    document.body.dataset.ready = "true";
  } catch (err) {
    showError(err);
  }
}

document.addEventListener("DOMContentLoaded", init);
