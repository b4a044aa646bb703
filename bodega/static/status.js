// The status page: one EventSource, a table, two canvas charts, no libraries.
"use strict";
const HISTORY = 120;
const series = { tps: new Map(), ttft: new Map() };
const colours = ["#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2"];

function cell(row, text, cls) {
  const td = row.insertCell();
  td.textContent = text === null || text === undefined ? "–" : String(text);
  if (cls) td.className = cls;
  return td;
}

function renderModels(models) {
  const body = document.querySelector("#models tbody");
  body.replaceChildren();
  for (const m of models) {
    const row = body.insertRow();
    row.dataset.model = m.id;
    cell(row, m.id);
    cell(row, m.type);
    cell(row, m.engine);
    cell(row, m.status, "status-" + m.status).title = m.error || "";
    cell(row, m.memory_mb, "num");
    cell(row, m.running, "num");
    cell(row, m.waiting, "num");
    cell(row, m.restarts, "num");
    cell(row, m.tokens_per_second, "num");
    cell(row, m.ttft_ms, "num");
    const button = document.createElement("button");
    button.textContent = "Unload";
    button.onclick = () => fetch("/v1/admin/unload-model/" + encodeURIComponent(m.id), { method: "DELETE" });
    row.insertCell().append(button);
  }
}

function push(kind, model, value) {
  if (!series[kind].has(model)) series[kind].set(model, []);
  const points = series[kind].get(model);
  points.push(value);
  if (points.length > HISTORY) points.shift();
}

function draw(kind) {
  const canvas = document.getElementById(kind);
  const ctx = canvas.getContext("2d");
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  let top = 1;
  for (const points of series[kind].values()) for (const v of points) if (v !== null) top = Math.max(top, v);
  let i = 0, drawn = 0, last = 0;
  for (const [model, points] of series[kind]) {
    ctx.strokeStyle = colours[i++ % colours.length];
    ctx.beginPath();
    points.forEach((v, x) => {
      if (v === null) return;
      const px = (x / (HISTORY - 1)) * canvas.width;
      const py = canvas.height - (v / top) * (canvas.height - 20) - 2;
      drawn++;
      if (v > 0) last = v;
      x === 0 ? ctx.moveTo(px, py) : ctx.lineTo(px, py);
      ctx.fillStyle = ctx.strokeStyle;
      ctx.fillRect(px - 2, py - 2, 4, 4);  // a lone point shows too
    });
    ctx.stroke();
    ctx.fillStyle = ctx.strokeStyle;
    ctx.fillText(model, 6, 12 * i);
  }
  canvas.dataset.points = String(drawn);
  canvas.dataset.peak = String(top === 1 && last === 0 ? 0 : top);
}

function renderErrors(errors) {
  const list = document.getElementById("errors");
  list.replaceChildren();
  for (const e of errors.slice().reverse()) {
    const item = document.createElement("li");
    const when = new Date(e.time * 1000).toLocaleTimeString();
    item.textContent = `${when} ${e.status} ${e.path} [${e.request_id}] ${e.message}`;
    list.append(item);
  }
}

const source = new EventSource("/v1/admin/events");
source.onopen = () => { document.getElementById("connection").textContent = "live"; };
source.onerror = () => { document.getElementById("connection").textContent = "reconnecting…"; };
source.onmessage = (message) => {
  const snapshot = JSON.parse(message.data);
  renderModels(snapshot.models);
  for (const m of snapshot.models) {
    if (m.type === "lm" || m.type === "multimodal") {
      push("tps", m.id, m.tokens_per_second);
      push("ttft", m.id, m.ttft_ms);
    }
  }
  draw("tps");
  draw("ttft");
  renderErrors(snapshot.errors);
  document.body.dataset.updates = String(Number(document.body.dataset.updates || 0) + 1);
};

document.getElementById("load").onsubmit = async (submitted) => {
  submitted.preventDefault();
  const form = new FormData(submitted.target);
  const body = { model_path: form.get("model_path"), model_type: form.get("model_type"), wait: false };
  if (form.get("model_id")) body.model_id = form.get("model_id");
  const reply = await fetch("/v1/admin/load-model", {
    method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
  });
  const answer = await reply.json();
  document.getElementById("load-result").textContent =
    reply.ok ? `${answer.model.id}: ${answer.model.status}` : answer.error.message;
};
