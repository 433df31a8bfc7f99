// The DiSC dashboard: reads the API with the user's key and draws lineages, versions, scores
// and jobs. Read-only: it only ever sends GET requests. Every value from the API reaches the
// page through textContent or an attribute, never as markup.
"use strict";

const KEY_STORAGE = "disc-api-key";
const POLL_ACTIVE_MS = 1500;   // while a job of the shown lineage is queued or running
const POLL_IDLE_MS = 5000;
const ACTIVE = new Set(["queued", "running", "evaluating"]);
const SVG_NS = "http://www.w3.org/2000/svg";

// Scores drawn over versions; each chart shares one y axis, so only like is put with like.
const CHARTS = [
  { id: "knowledge", title: "Knowledge learned (higher is better)", fraction: true,
    series: [["probe_accuracy_after", "probe accuracy"], ["knowledge_gap_closed_fraction", "share of the gap closed"]] },
  { id: "drift", title: "Drift, KL per token (lower is better)", fraction: false,
    series: [["retention_kl_vs_parent", "KL to parent"], ["retention_kl_vs_base", "KL to base"]] },
  { id: "skills", title: "Skills kept (higher is better)", fraction: true,
    series: [["general_mc_accuracy", "general questions"], ["format_compliance", "instruction format"]] },
];

const state = { key: sessionStorage.getItem(KEY_STORAGE) || "", lineage: null, version: null, timer: null, round: 0 };

class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

async function api(path) {
  const headers = state.key ? { Authorization: `Bearer ${state.key}` } : {};
  const response = await fetch(path, { headers, cache: "no-store" });
  if (response.ok) return response.json();
  let code = "http_error", message = `${response.status} ${response.statusText}`;
  try {
    const body = await response.json();
    if (body && body.error) ({ code, message } = body.error);
  } catch (_) { /* not JSON: keep the status line */ }
  throw new ApiError(response.status, code, message);
}

// --- small DOM helpers ---------------------------------------------------------------------

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value !== null && value !== undefined) node.setAttribute(name, value);
  }
  for (const child of children) node.append(child instanceof Node ? child : String(child));
  return node;
}

function svg(tag, attrs = {}, text) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [name, value] of Object.entries(attrs)) node.setAttribute(name, value);
  if (text !== undefined) node.textContent = text;
  return node;
}

function fmt(value, digits = 3) {
  return value === null || value === undefined ? "—" : Number(value).toPrecision(digits);
}

function when(iso) {
  return iso ? new Date(iso).toLocaleString() : "—";
}

function setStatus(text, isError = false) {
  const status = document.getElementById("status");
  status.textContent = text;
  status.classList.toggle("error", isError);
}

function readHash() {
  const params = new URLSearchParams(location.hash.slice(1));
  state.lineage = params.get("lineage");
  state.version = params.get("version") ? Number(params.get("version")) : null;
}

function lineageHref(name, version) {
  const params = new URLSearchParams({ lineage: name });
  if (version !== undefined && version !== null) params.set("version", String(version));
  return `#${params}`;
}

// --- rendering -----------------------------------------------------------------------------

function renderLineages(lineages) {
  const list = document.getElementById("lineages");
  list.replaceChildren(...lineages.map((lineage) => {
    const latest = lineage.latest_version === null ? "no latest" : `latest v${lineage.latest_version}`;
    const link = el("a", { href: lineageHref(lineage.name), "data-lineage": lineage.name,
                           "aria-current": lineage.name === state.lineage ? "page" : null },
                    lineage.name);
    return el("li", {}, link, el("span", { class: "note" }, ` ${lineage.version_count} versions · ${latest}`));
  }));
  if (!lineages.length) list.replaceChildren(el("li", { class: "note" }, "No lineage yet: submit an update."));
}

function renderChart(chart, versions) {
  const width = 380, height = 200, left = 44, right = 12, top = 12, bottom = 30;
  const numbers = versions.map((v) => v.version);
  const values = chart.series.flatMap(([metric]) => versions.map((v) => v.scores[metric]))
    .filter((x) => x !== null && x !== undefined && Number.isFinite(x));
  const yMax = chart.fraction ? 1 : Math.max(1e-6, ...values) * 1.1;
  const xMin = Math.min(...numbers), xMax = Math.max(...numbers);
  const x = (n) => left + (xMax === xMin ? (width - left - right) / 2 : (n - xMin) / (xMax - xMin) * (width - left - right));
  const y = (value) => top + (1 - value / yMax) * (height - top - bottom);

  const plot = svg("svg", { viewBox: `0 0 ${width} ${height}`, role: "img", "data-chart": chart.id,
                            "aria-label": chart.title });
  plot.append(svg("line", { x1: left, y1: y(0), x2: width - right, y2: y(0), class: "axis" }));
  plot.append(svg("line", { x1: left, y1: top, x2: left, y2: y(0), class: "axis" }));
  for (const tick of [0, yMax / 2, yMax]) {
    plot.append(svg("text", { x: left - 6, y: y(tick) + 4, class: "tick", "text-anchor": "end" }, fmt(tick, 2)));
  }
  for (const n of numbers) {
    plot.append(svg("text", { x: x(n), y: height - 10, class: "tick", "text-anchor": "middle" }, `v${n}`));
  }
  chart.series.forEach(([metric, label], index) => {
    const points = versions.filter((v) => Number.isFinite(v.scores[metric]));
    if (points.length > 1) {
      plot.append(svg("polyline", { class: `series s${index}`,
                                    points: points.map((v) => `${x(v.version)},${y(v.scores[metric])}`).join(" ") }));
    }
    for (const v of points) {
      const dot = svg("circle", { cx: x(v.version), cy: y(v.scores[metric]), r: 4, class: `point s${index} ${v.state}`,
                                  "data-version": v.version, "data-metric": metric });
      dot.append(svg("title", {}, `v${v.version} ${label}: ${fmt(v.scores[metric], 4)} (${v.state})`));
      plot.append(dot);
    }
  });
  const legend = el("p", { class: "legend" }, ...chart.series.map(([, label], index) =>
    el("span", { class: `key s${index}` }, label)));
  return el("figure", { class: "chart" }, el("figcaption", {}, chart.title), plot, legend);
}

function renderVersions(name, versions, latest) {
  const charts = document.getElementById("charts");
  charts.replaceChildren(...(versions.length ? CHARTS.map((chart) => renderChart(chart, versions))
                                             : [el("p", { class: "note" }, "No version yet.")]));
  const rows = versions.slice().reverse().map((v) => {
    const parent = v.parent_version === null ? "base"
      : el("a", { href: lineageHref(name, v.parent_version), class: "parent" }, `v${v.parent_version}`);
    const stateCell = el("td", {}, el("span", { class: `badge ${v.state}` }, v.state),
                         v.is_latest ? el("span", { class: "badge latest" }, "latest") : "");
    return el("tr", { id: `version-${v.version}`, "data-version": v.version,
                      class: v.version === state.version ? "highlight" : null },
      el("td", {}, `v${v.version}`), el("td", {}, parent), stateCell, el("td", {}, v.method),
      el("td", {}, when(v.created_at)), el("td", {}, fmt(v.scores.probe_accuracy_after)),
      el("td", {}, fmt(v.scores.knowledge_gap_closed_fraction)), el("td", {}, fmt(v.scores.retention_kl_vs_parent)),
      el("td", {}, fmt(v.scores.retention_kl_vs_base)), el("td", { class: "mono" }, v.artifact_sha256.slice(0, 12)));
  });
  document.querySelector("#versions tbody").replaceChildren(...rows);
  const summary = latest === null ? "latest: none yet" : `latest → v${latest}`;
  document.getElementById("lineage-summary").textContent =
    `${versions.length} version${versions.length === 1 ? "" : "s"} · ${summary}` +
    (versions.length ? ` · base ${versions[0].base_model}` : "");
}

function renderHistory(moves) {
  const rows = moves.slice().reverse().map((m) => el("tr", {},
    el("td", {}, when(m.created_at)), el("td", {}, m.from_version === null ? "—" : `v${m.from_version}`),
    el("td", {}, `v${m.to_version}`), el("td", {}, m.reason), el("td", {}, m.actor || "—")));
  document.querySelector("#history tbody").replaceChildren(...rows);
}

function progressText(job) {
  const p = job.progress;
  const parts = [p.stage || job.status];
  if (p.documents_total) parts.push(`${p.documents_done}/${p.documents_total} documents`);
  if (p.epoch !== null && p.epoch !== undefined) parts.push(`epoch ${p.epoch}`);
  if (p.loss !== null && p.loss !== undefined) parts.push(`loss ${fmt(p.loss, 4)}`);
  if (p.eta_seconds !== null && p.eta_seconds !== undefined && job.status === "running") {
    parts.push(`eta ${Math.round(p.eta_seconds)} s`);
  }
  return parts.join(" · ");
}

function renderJobs(jobs) {
  const rows = jobs.map((job) => {
    const total = job.progress.documents_total || 0;
    const bar = el("progress", { max: total || 1, value: Math.min(job.progress.documents_done, total || 1) });
    if (job.status === "queued" && !total) bar.removeAttribute("value");  // indeterminate
    const result = job.result_version ? `v${job.result_version.version}`
      : job.error ? `${job.error.code}: ${job.error.message}` : "—";
    return el("tr", { "data-job-id": job.id, "data-status": job.status },
      el("td", { class: "mono" }, job.id.slice(0, 12)),
      el("td", {}, el("span", { class: `badge ${job.status}` }, job.status),
         job.cancel_requested && ACTIVE.has(job.status) ? " (cancelling)" : ""),
      el("td", { class: "progress" }, bar, el("span", { class: "progress-text" }, progressText(job))),
      el("td", {}, when(job.created_at)), el("td", {}, result));
  });
  document.querySelector("#jobs tbody").replaceChildren(...rows);
}

// --- refresh loop --------------------------------------------------------------------------

async function refresh() {
  clearTimeout(state.timer);
  const round = ++state.round;  // a refresh started later (key entered, lineage chosen) supersedes this one
  let delay = POLL_IDLE_MS;
  try {
    const lineages = (await api("/models")).data;
    if (!state.lineage && lineages.length) state.lineage = lineages[0].name;
    renderLineages(lineages);
    const section = document.getElementById("lineage");
    const shown = lineages.find((l) => l.name === state.lineage);
    section.hidden = !shown;
    if (shown) {
      document.getElementById("lineage-title").textContent = shown.name;
      const name = encodeURIComponent(shown.name);
      const [versions, history] = await Promise.all([
        api(`/models/${name}/versions`), api(`/models/${name}/aliases/latest/history`)]);
      renderVersions(shown.name, versions.data, shown.latest_version);
      renderHistory(history.data);
      const note = document.getElementById("jobs-note");
      try {
        const jobs = (await api(`/jobs?lineage=${name}&limit=20`)).data;
        renderJobs(jobs);
        note.textContent = jobs.length ? "" : "No job yet.";
        if (jobs.some((job) => ACTIVE.has(job.status))) delay = POLL_ACTIVE_MS;
      } catch (error) {
        if (!(error instanceof ApiError) || error.status !== 403) throw error;
        renderJobs([]);
        note.textContent = `Jobs are hidden: ${error.message}.`;
      }
    }
    if (round !== state.round) return;
    setStatus(`Updated ${new Date().toLocaleTimeString()}`);
  } catch (error) {
    if (round !== state.round) return;
    if (error instanceof ApiError && error.status === 401) {
      setStatus(`The API needs a valid key: ${error.message}`, true);
      document.getElementById("api-key").focus();
      return;  // no polling until a key is entered
    }
    setStatus(error instanceof ApiError ? `${error.code}: ${error.message}` : `Cannot reach the API: ${error.message}`,
              true);
  }
  state.timer = setTimeout(refresh, delay);
}

document.addEventListener("DOMContentLoaded", () => {
  readHash();
  document.getElementById("key-form").addEventListener("submit", (event) => {
    event.preventDefault();
    state.key = document.getElementById("api-key").value.trim();
    sessionStorage.setItem(KEY_STORAGE, state.key);
    document.getElementById("api-key").value = "";
    refresh();
  });
  document.getElementById("forget-key").addEventListener("click", () => {
    state.key = "";
    sessionStorage.removeItem(KEY_STORAGE);
    refresh();
  });
  window.addEventListener("hashchange", () => {
    readHash();
    refresh().then(() => {
      const row = state.version !== null && document.getElementById(`version-${state.version}`);
      if (row) row.scrollIntoView({ block: "center" });
    });
  });
  refresh();
});
