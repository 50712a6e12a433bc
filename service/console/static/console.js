/* moralscope console: live progress from the server's event streams. Every page works without this
   file; it only keeps the jobs list and a job's page current while jobs run, and points at the line of
   a spec error. The streams are authenticated by the session cookie (same origin). */
"use strict";

const TERMINAL = new Set(["completed", "failed", "cancelled"]);

function words(text) {
  return String(text).replace(/_/g, " ");
}

function number(value) {
  if (value === null || value === undefined || (typeof value === "number" && !isFinite(value))) return "–";
  if (typeof value !== "number") return String(value);
  if (Number.isInteger(value)) return value.toLocaleString("en-US");
  return value.toLocaleString("en-US", { minimumFractionDigits: 1, maximumFractionDigits: 1 });
}

function duration(seconds) {
  if (seconds === null || seconds === undefined || !isFinite(seconds)) return "–";
  const total = Math.max(0, Math.round(seconds));
  const pad = (n) => String(n).padStart(2, "0");
  if (total < 60) return `${total} s`;
  if (total < 3600) return `${Math.floor(total / 60)} min ${pad(total % 60)} s`;
  return `${Math.floor(total / 3600)} h ${pad(Math.floor((total % 3600) / 60))} min`;
}

function percent(done, total) {
  return total ? `${Math.round((100 * done) / total)}%` : "–";
}

function setField(root, field, text) {
  root.querySelectorAll(`[data-field="${field}"]`).forEach((element) => {
    element.textContent = text;
  });
}

/* Show a JobView (the `job` of a JobEvent) in `root`: a row of the list, or a job's page. */
function showJob(root, job) {
  const counts = job.request_counts;
  root.dataset.state = job.state;
  root.querySelectorAll('[data-field="state"]').forEach((badge) => {
    badge.textContent = words(job.state);
    badge.className = `state state-${job.state}`;
  });
  root.querySelectorAll('progress[data-field="progress"]').forEach((bar) => {
    bar.max = counts.total || 1;
    bar.value = counts.completed;
    bar.textContent = percent(counts.completed, counts.total);
  });
  setField(root, "counts", `${number(counts.completed)} / ${number(counts.total)} requests (${percent(counts.completed, counts.total)})`);
  setField(root, "eta", duration(job.eta_seconds));
  setField(root, "failed", number(counts.failed));
  setField(root, "tokens", number(job.tokens_processed));
  setField(root, "rate", job.tokens_per_second == null ? "–" : `${number(job.tokens_per_second)} tokens/s`);
  for (const model of job.models || []) {
    const row = root.querySelector(`tr[data-model="${CSS.escape(model.model)}"]`);
    if (!row) continue;
    setField(row, "shards", `${number(model.shards_done)} / ${number(model.shards_total)}`);
    for (const [key, value] of Object.entries(model)) {
      const cell = row.querySelector(`[data-model-field="${CSS.escape(key)}"]`);
      if (cell && (value === null || typeof value !== "object")) cell.textContent = number(value);
    }
  }
}

function utcNow() {
  return new Date().toISOString().replace("T", " ").slice(0, 19);
}

/* The jobs list: one stream (/events) for all unfinished jobs of the page. */
function followList(table) {
  const rows = new Map();
  table.querySelectorAll("tr[data-job-id]").forEach((row) => {
    if (!TERMINAL.has(row.dataset.state)) rows.set(row.dataset.jobId, row);
  });
  if (rows.size === 0) return;
  const query = [...rows.keys()].map((id) => `job=${encodeURIComponent(id)}`).join("&");
  const source = new EventSource(`/events?${query}`);
  let open = rows.size;
  const update = (event) => {
    const job = JSON.parse(event.data).job;
    const row = rows.get(job.id);
    if (row) showJob(row, job);
  };
  source.addEventListener("state", update);
  source.addEventListener("progress", update);
  source.addEventListener("end", (event) => {
    update(event);
    open -= 1;
    if (open <= 0) source.close();
  });
}

/* A job's page: its own stream (/v1/jobs/{id}/events); reloaded when the job ends, to show its results. */
function followJob(article) {
  const startState = article.dataset.state;
  if (TERMINAL.has(startState)) return;
  const source = new EventSource(`/v1/jobs/${encodeURIComponent(article.dataset.jobId)}/events`);
  const log = article.querySelector('[data-field="log"]');
  const update = (event) => showJob(article, JSON.parse(event.data).job);
  source.addEventListener("state", update);
  source.addEventListener("progress", update);
  source.addEventListener("log", (event) => {
    const message = JSON.parse(event.data).message;
    if (!log || !message) return;
    const item = document.createElement("li");
    const time = document.createElement("time");
    time.textContent = utcNow();
    item.append(time, ` ${message}`);
    log.append(item);
    log.scrollTop = log.scrollHeight;
  });
  source.addEventListener("end", (event) => {
    source.close();
    update(event);
    window.setTimeout(() => window.location.reload(), 500);
  });
}

/* The submit form: select the line an error names, and show a chosen file's text. */
function pointAtError(area) {
  const line = Number.parseInt(area.dataset.errorLine || "", 10);
  if (!line) return;
  const lines = area.value.split("\n");
  let start = 0;
  for (let i = 0; i < line - 1 && i < lines.length; i += 1) start += lines[i].length + 1;
  area.focus();
  area.setSelectionRange(start, start + (lines[line - 1] || "").length);
  area.scrollTop = Math.max(0, ((line - 3) * area.scrollHeight) / Math.max(lines.length, 1));
}

function showChosenFile(input, area) {
  input.addEventListener("change", () => {
    const file = input.files && input.files[0];
    if (file) file.text().then((text) => { area.value = text; });
  });
}

document.addEventListener("DOMContentLoaded", () => {
  const list = document.querySelector("table[data-live-list]");
  if (list) followList(list);
  const article = document.querySelector("article.job[data-job-id]");
  if (article) followJob(article);
  const area = document.querySelector("form.submit textarea");
  if (area) pointAtError(area);
  const file = document.querySelector('form.submit input[type="file"]');
  if (file && area) showChosenFile(file, area);
});
