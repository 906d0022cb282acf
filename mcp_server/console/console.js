// The algo-mcp console: polls the gateway's JSON routes and draws tables; no framework, no build step.
// Everything from the server goes into the page as text (textContent, text nodes), never as HTML.
"use strict";

const POLL_MS = 2000;
const TOKEN_KEY = "algo-mcp-token";
const TERMINAL = new Set(["completed", "failed", "cancelled"]);
const PREVIEW_CHARS = 20000;
const SETTINGS = ["max_concurrency", "num_workers", "max_queued", "max_batch_size", "batch_wait_timeout_s"];

const state = {
  tab: "algorithms", algorithms: [], health: null, metrics: null, metricsAbsent: false,
  panel: null, timer: null, waitingForToken: false,
};

// -- DOM helpers ---------------------------------------------------------------------------------

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") node.className = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : String(child));  // a string is appended as a text node
  }
  return node;
}

const $ = (selector) => document.querySelector(selector);
const DASH = "–";

function badge(text) {
  const word = String(text || "unknown");
  const tone = /^(ok|ready|running|healthy|completed|RUNNING)$/.test(word) ? "ok"
    : /^(failed|FAILED|DEPLOY_FAILED|UNHEALTHY|degraded|error|stopped)$/.test(word) ? "bad"
      : /^(queued|starting|DEPLOYING|NOT_STARTED|cancelled|waiting|paused)$/.test(word) ? "warn" : "info";
  return el("span", { class: `badge ${tone}` }, word);
}

function fill(tbody, rows, columns, empty) {
  tbody.replaceChildren(...(rows.length ? rows
    : [el("tr", {}, el("td", { class: "empty", colspan: columns }, empty))]));
}

function num(value, digits = 0) {
  return value === null || value === undefined || Number.isNaN(value) ? DASH : Number(value).toFixed(digits);
}

function ago(unixSeconds) {
  if (!unixSeconds) return DASH;
  const s = Math.max(0, Date.now() / 1000 - unixSeconds);
  if (s < 60) return `${s.toFixed(0)} s ago`;
  if (s < 3600) return `${(s / 60).toFixed(0)} min ago`;
  return new Date(unixSeconds * 1000).toLocaleString();
}

function took(record) {
  if (!record.started_at) return DASH;
  const end = record.finished_at || Date.now() / 1000;
  return `${(end - record.started_at).toFixed(2)} s`;
}

function json(value) {
  const text = JSON.stringify(value, null, 2) ?? "null";
  const rest = text.length - PREVIEW_CHARS;
  return el("pre", { class: "json" }, rest > 0 ? `${text.slice(0, PREVIEW_CHARS)}\n… ${rest} more characters` : text);
}

function facts(pairs) {
  return el("dl", { class: "facts" }, pairs.filter(([, v]) => v !== undefined)
    .flatMap(([k, v]) => [el("dt", {}, k), el("dd", {}, v === null ? DASH : v)]));
}

function safeUrl(url) {
  try {
    const parsed = new URL(String(url), document.baseURI);
    return parsed.protocol === "http:" || parsed.protocol === "https:" ? parsed.href : null;
  } catch {
    return null;
  }
}

// -- the API -------------------------------------------------------------------------------------

class ApiError extends Error {
  constructor(status, type, message) {
    super(`${message} (${type}, HTTP ${status})`);
    this.status = status;
    this.type = type;
  }
}

async function api(path, { method = "GET", body, anyStatus = false, text = false } = {}) {
  const headers = {};
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (token) headers.Authorization = `Bearer ${token}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const raw = await response.text();
  if (response.status === 401) {
    askToken("The gateway refused the token; enter it again.");
  }
  let parsed = raw;
  if (!text) {
    try { parsed = raw ? JSON.parse(raw) : null; } catch { parsed = raw; }
  }
  if (!response.ok && !anyStatus) {
    const error = (parsed && parsed.error) || {};
    throw new ApiError(response.status, error.type || "http_error", error.message || raw.slice(0, 300) || response.statusText);
  }
  return parsed;
}

// -- Prometheus text (GET /metrics), when the gateway has it -----------------------------------------

function parseMetrics(textBody) {
  const samples = [];
  for (const line of textBody.split("\n")) {
    if (!line || line.startsWith("#")) continue;
    const match = line.match(/^([A-Za-z_:][\w:]*)(?:\{(.*)\})?\s+(\S+)/);
    if (!match) continue;
    const labels = {};
    for (const pair of (match[2] || "").matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) {
      labels[pair[1]] = pair[2].replace(/\\(.)/g, (_, c) => (c === "n" ? "\n" : c));
    }
    samples.push({ name: match[1], labels, value: Number(match[3]) });
  }
  return samples;
}

function total(name, where = () => true) {
  if (!state.metrics) return null;
  return state.metrics.filter((s) => s.name === name && where(s.labels)).reduce((sum, s) => sum + s.value, 0);
}

function algorithmLoad(name) {
  const mine = (labels) => labels.algorithm === name;
  const count = total("algo_mcp_call_duration_seconds_count", mine);
  const seconds = total("algo_mcp_call_duration_seconds_sum", mine);
  return {
    calls: total("algo_mcp_calls_total", mine),
    errors: total("algo_mcp_calls_total", (l) => mine(l) && l.outcome !== "ok"),
    inFlight: total("algo_mcp_calls_in_flight", mine),
    queued: total("algo_mcp_calls_queued", mine),
    busy: total("algo_mcp_busy_refusals_total", mine),
    meanMs: count ? (seconds / count) * 1000 : null,
  };
}

// -- loading -------------------------------------------------------------------------------------

async function loadHealth() {
  state.health = await api("healthz", { anyStatus: true });  // 503 while starting or degraded: still a report
}

async function loadMetrics() {
  if (state.metricsAbsent) return;
  try {
    state.metrics = parseMetrics(await api("metrics", { text: true }));
  } catch (err) {
    if (err.status !== 404) throw err;
    state.metricsAbsent = true;  // this gateway has no /metrics: load columns show "–"
    state.metrics = null;
  }
}

async function loadAlgorithms() {
  state.algorithms = await api("algorithms");
  const select = $("#task-filter select[name=algorithm]");
  const names = state.algorithms.map((a) => a.name);
  if (select.options.length - 1 !== names.length) {
    const chosen = select.value;
    select.replaceChildren(el("option", { value: "" }, "any"), ...names.map((n) => el("option", { value: n }, n)));
    select.value = chosen;
  }
}

const LOADERS = {
  algorithms: async () => { await loadAlgorithms(); drawAlgorithms(); },
  tasks: loadTasks,
  actors: loadActors,
  pipelines: loadPipelines,
  workers: async () => drawWorkers(),
};

async function refresh() {
  if (state.waitingForToken) return;
  const jobs = [loadHealth(), loadMetrics()];
  const results = await Promise.allSettled(jobs);
  const more = await Promise.allSettled([LOADERS[state.tab](), state.panel?.refresh?.()]);
  const failure = [...results, ...more].find((r) => r.status === "rejected");
  showError(failure ? failure.reason.message : null);
  drawSummary();
  $("#updated").textContent = `updated ${new Date().toLocaleTimeString()}`;
}

function schedule() {
  clearTimeout(state.timer);
  state.timer = setTimeout(async () => {
    if (!document.hidden) await refresh().catch((err) => showError(err.message));
    schedule();
  }, POLL_MS);
}

function showError(message) {
  const bar = $("#error-bar");
  bar.hidden = !message;
  bar.textContent = message || "";
}

// -- header --------------------------------------------------------------------------------------

function drawSummary() {
  const parts = [];
  const health = state.health;
  if (health) parts.push(el("span", {}, "gateway ", badge(health.status)));
  if (health?.workers) parts.push(el("span", {}, el("b", {}, health.workers.length), " live workers"));
  const depth = total("algo_mcp_task_queue_depth");
  if (depth !== null) parts.push(el("span", {}, el("b", {}, depth), " queued"));
  const running = total("algo_mcp_tasks", (l) => l.status === "running");
  if (running !== null) parts.push(el("span", {}, el("b", {}, running), " tasks running"));
  const failed = total("algo_mcp_tasks_ended_total", (l) => l.status === "failed");
  if (failed !== null) parts.push(el("span", {}, el("b", {}, failed), " tasks failed"));
  $("#summary").replaceChildren(...parts);
}

// -- algorithms ----------------------------------------------------------------------------------

function algorithmStatus(name) {
  const health = state.health || {};
  const serve = health.algorithms?.[name];
  if (serve) return { status: serve.status, message: serve.message, replicas: serve.replicas };
  const phase = health.phases?.[name];
  return { status: phase ? phase.status : "unknown", message: phase?.message, replicas: undefined };
}

function drawAlgorithms() {
  const rows = state.algorithms.map((a) => {
    const { status, message, replicas } = algorithmStatus(a.name);
    const load = algorithmLoad(a.name);
    const workers = a.autoscaling ? `${a.autoscaling.min}–${a.autoscaling.max}` : a.num_workers;
    const row = el("tr", { class: "clickable", "data-name": a.name, title: message || null,
                           onclick: () => openAlgorithm(a.name) },
      el("td", {}, el("b", {}, a.name), el("span", { class: "sub" }, a.title)),
      el("td", {}, a.mode, el("span", { class: "sub" }, a.kind)),
      el("td", {}, badge(status)),
      el("td", { class: "num" }, `${replicas ?? DASH} / ${workers}`),
      el("td", { class: "num" }, a.max_concurrency, el("span", { class: "sub" }, `queue ${a.max_queued}`)),
      el("td", { class: "num" }, num(load.inFlight),
         el("span", { class: "sub" }, load.queued ? `${load.queued} queued` : "")),
      el("td", { class: "num" }, num(load.calls)),
      el("td", { class: "num" }, num(load.errors)),
      el("td", { class: "num" }, num(load.busy)),
      el("td", { class: "num" }, load.meanMs === null ? DASH : `${load.meanMs.toFixed(1)} ms`));
    if (state.panel?.kind === "algorithm" && state.panel.key === a.name) row.classList.add("selected");
    return row;
  });
  fill($("#algorithms tbody"), rows, 10, "no algorithms registered");
  $("#metrics-note").textContent = state.metricsAbsent
    ? "Load, calls, errors and latency come from /metrics, which this gateway does not serve."
    : "Calls, errors and latency since this gateway started (from /metrics).";
}

function openAlgorithm(name) {
  const a = state.algorithms.find((x) => x.name === name);
  if (!a) return;
  const answer = el("div", { class: "answer" });
  const body = [
    el("p", {}, a.description || a.title),
    facts([["kind", a.kind], ["mode", a.mode], ["timeout", `${a.timeout_s} s`],
           ["CPUs / GPUs per replica", `${a.num_cpus} / ${a.num_gpus}`],
           ["batching", a.batch ? `up to ${a.batch.max_batch_size}, wait ${a.batch.batch_wait_timeout_s} s` : "off"],
           ["autoscaling", a.autoscaling ? `${a.autoscaling.min}–${a.autoscaling.max} replicas` : undefined]]),
    el("h3", {}, "Try a call"),
    tryForm(a, answer),
    answer,
    el("h3", {}, "Settings (applied live)"),
    settingsForm(a),
    el("h3", {}, "Input schema"),
    json(a.input_schema),
  ];
  showPanel({ kind: "algorithm", key: name, title: `Algorithm ${name}`, body });
  drawAlgorithms();
}

// A form from the algorithm's JSON schema: one field per top-level property; anything not a plain
// string, number, boolean or choice is written as JSON.
function resolveRef(schema, root) {
  if (schema && schema.$ref) return (root.$defs || root.definitions || {})[schema.$ref.split("/").pop()] || {};
  return schema || {};
}

function fieldShape(property, root) {
  let schema = resolveRef(property, root);
  const variants = schema.anyOf || schema.oneOf;
  if (variants) {
    const real = variants.filter((v) => v.type !== "null");
    if (real.length !== 1) return { kind: "json", schema };
    schema = { ...resolveRef(real[0], root), description: schema.description, default: schema.default,
               examples: schema.examples };
  }
  if (Array.isArray(schema.enum)) return { kind: "choice", schema, options: schema.enum };
  if (schema.const !== undefined) return { kind: "choice", schema, options: [schema.const] };
  if (schema.type === "boolean") return { kind: "boolean", schema };
  if (schema.type === "integer" || schema.type === "number") return { kind: "number", schema };
  if (schema.type === "string") return { kind: "string", schema };
  return { kind: "json", schema };
}

function fieldInput(name, shape, required) {
  const { schema } = shape;
  const example = Array.isArray(schema.examples) ? schema.examples[0] : undefined;
  const initial = schema.default ?? (required ? example : undefined);
  if (shape.kind === "boolean") return el("input", { type: "checkbox", name, checked: Boolean(initial) });
  if (shape.kind === "choice") {
    const select = el("select", { name },
      required ? null : el("option", { value: "" }, DASH),
      shape.options.map((o, i) => el("option", { value: String(i) }, String(o))));
    const index = shape.options.indexOf(initial);
    select.value = index >= 0 ? String(index) : required ? "0" : "";
    return select;
  }
  if (shape.kind === "number") {
    return el("input", { type: "number", name, step: schema.type === "integer" ? "1" : "any", min: schema.minimum,
                         max: schema.maximum, value: initial, placeholder: example });
  }
  if (shape.kind === "string") {
    return el("input", { type: "text", name, value: initial, placeholder: example, maxlength: schema.maxLength });
  }
  const textarea = el("textarea", { name, rows: 3, placeholder: example === undefined ? "JSON" : JSON.stringify(example) });
  if (initial !== undefined) textarea.value = JSON.stringify(initial);
  return textarea;
}

function readField(form, name, shape) {
  const input = form.elements.namedItem(name);
  if (shape.kind === "boolean") return input.checked;
  if (input.value === "") return undefined;
  if (shape.kind === "choice") return shape.options[Number(input.value)];
  if (shape.kind === "number") {
    const value = Number(input.value);
    if (Number.isNaN(value)) throw new Error(`${name}: not a number`);
    return value;
  }
  if (shape.kind === "string") return input.value;
  try {
    return JSON.parse(input.value);
  } catch {
    throw new Error(`${name}: not valid JSON`);
  }
}

function tryForm(a, answer) {
  const schema = a.input_schema || {};
  const required = new Set(schema.required || []);
  const shapes = Object.entries(schema.properties || {}).map(([name, p]) => [name, fieldShape(p, schema)]);
  const form = el("form", { class: "fields try", "data-algorithm": a.name });
  for (const [name, shape] of shapes) {
    const input = fieldInput(name, shape, required.has(name));
    const hint = shape.schema.description ? el("span", { class: "hint" }, shape.schema.description) : null;
    form.append(shape.kind === "boolean"
      ? el("label", { class: "check" }, input, el("span", { class: "name" }, name), hint)
      : el("label", {}, el("span", { class: "name" }, name, required.has(name) ? " *" : ""), hint, input));
  }
  const send = async (how) => {
    answer.className = "answer";
    answer.replaceChildren("sending…");
    try {
      const body = {};
      for (const [name, shape] of shapes) {
        const value = readField(form, name, shape);
        if (value !== undefined) body[name] = value;
      }
      const reply = await api(`${how === "task" ? "tasks" : "invoke"}/${encodeURIComponent(a.name)}`,
                              { method: "POST", body });
      if (how === "task") {
        openTask(reply.task_id);
      } else {
        answer.replaceChildren(el("span", {}, "task ", el("span", { class: "mono" }, reply.task_id ?? DASH)),
                               outputPreview(reply.result), json(reply.result));
      }
    } catch (err) {
      answer.className = "answer bad";
      answer.replaceChildren(err.message);
    }
  };
  form.addEventListener("submit", (event) => { event.preventDefault(); send(a.mode === "sync" ? "invoke" : "task"); });
  form.append(el("div", { class: "actions" },
    el("button", { type: "button", class: a.mode === "sync" ? "primary" : null, name: "invoke",
                   onclick: () => send("invoke") }, "Run now"),
    el("button", { type: "button", class: a.mode === "sync" ? null : "primary", name: "submit-task",
                   onclick: () => send("task") }, "Submit as task")));
  return form;
}

function settingsForm(a) {
  const current = {
    max_concurrency: a.max_concurrency, num_workers: a.num_workers, max_queued: a.max_queued,
    max_batch_size: a.batch?.max_batch_size, batch_wait_timeout_s: a.batch?.batch_wait_timeout_s,
  };
  const answer = el("div", { class: "answer" });
  const form = el("form", { class: "fields settings" },
    SETTINGS.map((name) => el("label", {}, el("span", { class: "name" }, name),
      el("input", { type: "number", name, step: name === "batch_wait_timeout_s" ? "any" : "1", min: 0,
                    value: current[name], placeholder: current[name] === undefined ? "not set" : null }))),
    el("div", { class: "actions" }, el("button", { type: "submit", class: "primary" }, "Apply")), answer);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const changes = {};
    for (const name of SETTINGS) {
      const raw = form.elements.namedItem(name).value;
      if (raw !== "" && Number(raw) !== current[name]) changes[name] = Number(raw);
    }
    if (!Object.keys(changes).length) {
      answer.className = "answer";
      answer.replaceChildren("nothing changed");
      return;
    }
    try {
      const applied = await api(`admin/algorithms/${encodeURIComponent(a.name)}`, { method: "PATCH", body: changes });
      answer.className = "answer";
      answer.replaceChildren("applied:", json(applied));
      await loadAlgorithms();
      drawAlgorithms();
    } catch (err) {
      answer.className = "answer bad";
      answer.replaceChildren(err.message);
    }
  });
  return form;
}

// -- tasks ---------------------------------------------------------------------------------------

async function loadTasks() {
  if (!state.algorithms.length) await loadAlgorithms();
  const form = $("#task-filter");
  const query = new URLSearchParams();
  for (const name of ["status", "algorithm", "limit"]) {
    const value = form.elements.namedItem(name).value;
    if (value) query.set(name, value);
  }
  const { tasks } = await api(`tasks?${query}`);
  const rows = tasks.map((t) => {
    const row = el("tr", { class: "clickable", "data-task": t.task_id, onclick: () => openTask(t.task_id) },
      el("td", { class: "mono", title: t.task_id }, t.task_id.slice(0, 12)),
      el("td", {}, t.algorithm),
      el("td", {}, badge(t.status)),
      el("td", {}, el("progress", { max: 1, value: t.progress }), t.progress_message ? el("span", { class: "sub" }, t.progress_message) : null),
      el("td", { title: new Date(t.created_at * 1000).toLocaleString() }, ago(t.created_at)),
      el("td", { class: "num" }, took(t)),
      el("td", { class: "num" }, `${t.attempts} / ${t.max_attempts}`),
      el("td", { title: t.error?.message || null }, t.error ? t.error.type : ""),
      el("td", {}, TERMINAL.has(t.status) ? null : el("button", {
        type: "button", class: "danger", onclick: (event) => { event.stopPropagation(); cancelTask(t.task_id); },
      }, "Cancel")));
    if (state.panel?.kind === "task" && state.panel.key === t.task_id) row.classList.add("selected");
    return row;
  });
  fill($("#tasks tbody"), rows, 9, "no tasks match");
}

async function cancelTask(taskId) {
  try {
    await api(`tasks/${encodeURIComponent(taskId)}`, { method: "DELETE" });
  } catch (err) {
    showError(err.message);
  }
  await refresh();
}

// Links to stored outputs ({url, content_type, …} anywhere in a result), images shown inline.
function outputPreview(result) {
  const found = [];
  const walk = (value, depth) => {
    if (!value || typeof value !== "object" || depth > 6 || found.length >= 12) return;
    if (typeof value.url === "string" && safeUrl(value.url)) found.push(value);
    for (const child of Object.values(value)) walk(child, depth + 1);
  };
  walk(result, 0);
  return el("div", { class: "preview" }, found.map((o) => {
    const href = safeUrl(o.url);
    const name = o.key || o.name || href;
    return el("div", {},
      String(o.content_type || "").startsWith("image/") ? el("img", { src: href, alt: name }) : null,
      el("a", { href, target: "_blank", rel: "noopener noreferrer" }, name),
      o.bytes ? el("span", { class: "sub" }, `${o.content_type || ""} ${o.bytes} bytes`) : null);
  }));
}

function drawTask(record) {
  const cancel = TERMINAL.has(record.status) ? null
    : el("button", { type: "button", class: "danger", name: "cancel", onclick: () => cancelTask(record.task_id) },
      "Cancel task");
  const body = [
    el("p", {}, badge(record.status), " ", cancel),
    el("div", {}, el("progress", { max: 1, value: record.progress }), ` ${Math.round(record.progress * 100)} %`,
       record.progress_message ? el("span", { class: "sub" }, record.progress_message) : null),
    facts([["algorithm", record.algorithm], ["task id", el("span", { class: "mono" }, record.task_id)],
           ["attempts", `${record.attempts} / ${record.max_attempts}`], ["worker", record.worker_id],
           ["created", new Date(record.created_at * 1000).toLocaleString()],
           ["started", record.started_at ? new Date(record.started_at * 1000).toLocaleString() : null],
           ["finished", record.finished_at ? new Date(record.finished_at * 1000).toLocaleString() : null],
           ["took", took(record)], ["timeout", record.timeout_s ? `${record.timeout_s} s` : null]]),
  ];
  if (record.error) body.push(el("h3", {}, "Error"), el("p", { class: "answer bad" }, `${record.error.type}: ${record.error.message}`));
  if (record.result !== null && record.result !== undefined) {
    body.push(el("h3", {}, "Result"), outputPreview(record.result), json(record.result));
  }
  body.push(el("h3", {}, "Input"), json(record.payload));
  return body;
}

function openTask(taskId) {
  const panel = { kind: "task", key: taskId, title: `Task ${taskId.slice(0, 12)}`, body: ["loading…"] };
  let ended = false;
  panel.refresh = async () => {
    if (ended || state.panel !== panel) return;
    const record = await api(`tasks/${encodeURIComponent(taskId)}`);
    ended = TERMINAL.has(record.status);
    if (state.panel === panel) $("#panel-body").replaceChildren(...drawTask(record));
  };
  showPanel(panel);
  panel.refresh().catch((err) => showError(err.message));
}

// -- actors, pipelines, workers --------------------------------------------------------------------

async function loadActors() {
  const { templates, actors, bound } = await api("actors");
  const perTemplate = (name) => actors.filter((a) => a.template === name).length;
  fill($("#actor-templates tbody"), templates.map((t) => el("tr", { "data-template": t.name },
    el("td", {}, el("b", {}, t.name)), el("td", {}, t.description), el("td", { class: "mono" }, t.methods.join(", ")),
    el("td", { class: "num" }, perTemplate(t.name)))), 4, "no actor templates registered");
  $("#actors-bound").textContent = `(${bound} in all, newest first)`;
  fill($("#actor-list tbody"), actors.map((a) => el("tr", {
    class: "clickable", onclick: () => showPanel({ kind: "actor", key: a.actor_id, title: `Actor ${a.actor_id}`,
                                                   body: [json(a)] }) },
    el("td", { class: "mono" }, a.actor_id), el("td", {}, a.template), el("td", {}, a.tier),
    el("td", { class: "num" }, a.calls), el("td", { class: "num" }, a.version),
    el("td", { class: "num" }, `${a.state_bytes} B`), el("td", {}, ago(a.last_call_at)))), 7, "no actors bound");
}

async function loadPipelines() {
  const pipelines = await api("pipelines");
  fill($("#pipelines tbody"), pipelines.map((p) => el("tr", {
    class: "clickable", "data-pipeline": p.name, onclick: () => openPipeline(p.name) },
    el("td", {}, el("b", {}, p.name), el("span", { class: "sub" }, p.source)),
    el("td", {}, badge(p.status)),
    el("td", { class: "mono" }, `${p.input_topic} → ${p.algorithm} → ${p.output_topic}`),
    el("td", { class: "num" }, `${p.live_consumers} / ${p.consumers}`),
    el("td", { class: "num" }, p.total_lag),
    el("td", { class: "num" }, num(p.rate_in, 1)), el("td", { class: "num" }, num(p.rate_out, 1)),
    el("td", { class: "num" }, `${num(p.p50_ms, 1)} / ${num(p.p99_ms, 1)} ms`),
    el("td", { class: "num" }, p.dead),
    el("td", { title: (p.errors || []).map(String).join("\n") || null }, (p.errors || []).length))),
  10, "no pipelines (start one with POST /pipelines or in algorithms.yaml)");
}

function openPipeline(name) {
  const panel = { kind: "pipeline", key: name, title: `Pipeline ${name}`, body: ["loading…"] };
  panel.refresh = async () => {
    const [inspected, output] = await Promise.all([api(`pipelines/${encodeURIComponent(name)}`),
                                                   api(`pipelines/${encodeURIComponent(name)}/output?n=5`)]);
    if (state.panel === panel) {
      $("#panel-body").replaceChildren(el("h3", {}, "State"), json(inspected), el("h3", {}, "Last output"), json(output));
    }
  };
  showPanel(panel);
  panel.refresh().catch((err) => showError(err.message));
}

function drawWorkers() {
  const health = state.health || {};
  fill($("#worker-list tbody"), (health.workers || []).map((w) => {
    const { worker_id: id, kind, pid, beat_at: beat, ...rest } = w;
    return el("tr", { "data-worker": id }, el("td", { class: "mono" }, id), el("td", {}, kind ?? DASH),
      el("td", { class: "num" }, pid ?? DASH), el("td", {}, ago(beat)),
      el("td", { class: "mono" }, Object.keys(rest).length ? JSON.stringify(rest) : ""));
  }), 5, health.workers ? "no live workers" : "the gateway is starting");
  fill($("#phase-list tbody"), Object.entries(health.phases || {}).map(([name, p]) => el("tr", {},
    el("td", {}, name), el("td", {}, badge(p.status)), el("td", {}, p.message || ""))), 3, "no phases reported");
}

// -- panel, tabs, token ----------------------------------------------------------------------------

function showPanel(panel) {
  state.panel = panel;
  $("#panel-title").textContent = panel.title;
  $("#panel-body").replaceChildren(...panel.body);
  $("#panel").hidden = false;
  document.body.classList.add("with-panel");
}

function closePanel() {
  state.panel = null;
  $("#panel").hidden = true;
  document.body.classList.remove("with-panel");
  document.querySelectorAll("tr.selected").forEach((row) => row.classList.remove("selected"));
}

function showTab(tab) {
  state.tab = tab;
  document.querySelectorAll("#tabs button").forEach((b) => b.classList.toggle("active", b.dataset.tab === tab));
  document.querySelectorAll("main > section").forEach((s) => { s.hidden = s.id !== tab; });
  refresh();
}

function askToken(reason) {
  sessionStorage.removeItem(TOKEN_KEY);
  state.waitingForToken = true;
  $("#token-reason").textContent = reason;
  const dialog = $("#token-dialog");
  if (!dialog.open) dialog.showModal();
}

function start() {
  document.querySelectorAll("#tabs button").forEach((b) => b.addEventListener("click", () => showTab(b.dataset.tab)));
  $("#panel-close").addEventListener("click", closePanel);
  $("#task-filter").addEventListener("change", () => refresh());
  $("#task-filter").addEventListener("submit", (event) => { event.preventDefault(); refresh(); });
  $("#token-button").addEventListener("click", () => askToken("Enter the gateway's bearer token (MCP_AUTH_TOKEN)."));
  $("#token-form").addEventListener("submit", () => {
    sessionStorage.setItem(TOKEN_KEY, $("#token-input").value.trim());
    $("#token-input").value = "";
    state.waitingForToken = false;
    refresh();
  });
  if (document.body.dataset.auth === "bearer" && !sessionStorage.getItem(TOKEN_KEY)) {
    askToken("This gateway asks for its bearer token (MCP_AUTH_TOKEN).");
  }
  refresh();
  schedule();
}

document.addEventListener("DOMContentLoaded", start);
