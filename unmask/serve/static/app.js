// The page of `unmask serve`: no framework, no external asset. Each dropped or chosen image is sent
// to POST /v1/score?heatmap=1 on its own (the server batches requests that arrive together), and shown
// with its verdict, score, threshold and the per-tile scores drawn over it.
"use strict";
const $ = (id) => document.getElementById(id);
const state = { token: sessionStorage.getItem("unmask-token") || "", active: 0, queue: [] };
const MAX_PARALLEL = 4;

function headers() {
  return state.token ? { Authorization: "Bearer " + state.token } : {};
}

function needToken() {
  $("auth").hidden = false;
  $("token").focus();
}

function text(tag, cls, value) {
  const el = document.createElement(tag);
  if (cls) el.className = cls;
  el.textContent = value;
  return el;
}

function defs(pairs) {
  const dl = document.createElement("dl");
  for (const [k, v] of pairs) {
    dl.append(text("dt", "", k), text("dd", "", v));
  }
  return dl;
}

async function loadCard() {
  const res = await fetch("/v1/detector", { headers: headers() });
  if (res.status === 401) { needToken(); $("card").textContent = "needs the token"; return; }
  const c = await res.json();
  const m = c.metrics && c.metrics.harden_metrics && c.metrics.harden_metrics.test;
  const pairs = [["name", c.name], ["network", `${c.architecture} (${c.input_size}px, ${c.channels} channel(s))`],
    ["images are", c.policy === "tile" ? `cut into ${c.input_size}px tiles (${c.tile_aggregate})` : c.policy],
    ["threshold", `${c.threshold.toFixed(4)}: ${c.threshold_rule}`], ["unmask", c.unmask_version],
    ["weights sha256", (c.sha256["model.safetensors"] || "").slice(0, 16)]];
  if (m) for (const k of ["auc", "ap", "eer", "accuracy"]) if (k in m) pairs.push([`test ${k}`, Number(m[k]).toFixed(4)]);
  pairs.push(["limits", Object.entries(c.limits).map(([k, v]) => `${k}=${v}`).join(", ")]);
  $("card").replaceChildren(defs(pairs));
}

function drawHeat(canvas, bitmap, row) {
  const w = row.width || bitmap.width, h = row.height || bitmap.height;
  const scale = Math.min(8, Math.max(1, 320 / Math.max(w, h)), 900 / Math.max(w, h));
  canvas.width = Math.max(1, Math.round(w * scale));
  canvas.height = Math.max(1, Math.round(h * scale));
  const ctx = canvas.getContext("2d");
  ctx.imageSmoothingEnabled = scale < 1;
  ctx.drawImage(bitmap, 0, 0, canvas.width, canvas.height);
  const hm = row.heatmap;
  if (!hm || !hm.boxes.length) return;
  hm.boxes.forEach(([x, y, bw, bh], i) => {
    const s = hm.scores[i], fake = s >= row.threshold;
    ctx.fillStyle = fake ? `rgba(230, 40, 30, ${0.1 + 0.35 * s})` : `rgba(30, 170, 90, ${0.05 + 0.25 * (1 - s)})`;
    ctx.fillRect(x * scale, y * scale, bw * scale, bh * scale);
    ctx.strokeStyle = fake ? "rgba(230, 40, 30, 0.9)" : "rgba(30, 170, 90, 0.6)";
    ctx.lineWidth = 1;
    ctx.strokeRect(x * scale + 0.5, y * scale + 0.5, bw * scale - 1, bh * scale - 1);
  });
  canvas.dataset.tiles = String(hm.boxes.length);
}

function show(box, row) {
  box.dataset.state = "done";
  const body = box.querySelector(".body");
  const verdict = text("div", "verdict " + row.label, row.label === "error" ? "could not check" : row.label);
  verdict.dataset.label = row.label;
  const parts = [verdict, text("div", "name", row.name)];
  if (row.label === "error") {
    parts.push(text("p", "", row.error));
  } else {
    const bar = document.createElement("div");
    bar.className = "bar";
    const fill = document.createElement("span");
    fill.style.width = (100 * row.score).toFixed(1) + "%";
    fill.style.background = row.label === "fake" ? "var(--fake)" : "var(--real)";
    const mark = document.createElement("i");
    mark.style.left = (100 * row.threshold).toFixed(1) + "%";
    bar.append(fill, mark);
    parts.push(bar, defs([["score", row.score.toFixed(6)], ["threshold", row.threshold.toFixed(6)],
      ["size", `${row.width} x ${row.height}`], ["tiles", `${row.n_tiles} (${row.policy})`]]));
  }
  body.replaceChildren(...parts);
}

async function check(file, box) {
  const form = new FormData();
  form.append("image", file, file.name);
  const heat = $("heat").checked ? "?heatmap=1" : "";
  let res;
  try {
    res = await fetch("/v1/score" + heat, { method: "POST", body: form, headers: headers() });
  } catch (e) {
    show(box, { label: "error", name: file.name, error: "network error: " + e });
    return;
  }
  if (res.status === 401) { needToken(); box.remove(); return; }
  const data = await res.json();
  const row = (data.results && data.results[0]) || { label: "error", name: file.name, error: data.error };
  show(box, row);
  if (row.label !== "error") {
    try { drawHeat(box.querySelector("canvas"), await createImageBitmap(file), row); } catch (e) { /* preview only */ }
  }
}

function pump() {
  while (state.active < MAX_PARALLEL && state.queue.length) {
    const [file, box] = state.queue.shift();
    state.active++;
    check(file, box).finally(() => { state.active--; pump(); status(); });
  }
  status();
}

function status() {
  const n = state.active + state.queue.length;
  $("status").textContent = n ? `checking ${n} image(s)...` : "";
}

function add(files) {
  for (const file of files) {
    const box = document.createElement("article");
    box.className = "result";
    box.dataset.state = "pending";
    const canvas = document.createElement("canvas");
    canvas.setAttribute("aria-label", "image with heat map of per-tile scores");
    const body = document.createElement("div");
    body.className = "body";
    body.append(text("div", "name", file.name + ": checking..."));
    box.append(canvas, body);
    $("results").prepend(box);
    createImageBitmap(file).then((bm) => drawHeat(canvas, bm, {}), () => {});
    state.queue.push([file, box]);
  }
  pump();
}

const drop = $("drop");
for (const ev of ["dragenter", "dragover"]) drop.addEventListener(ev, (e) => { e.preventDefault(); drop.classList.add("over"); });
for (const ev of ["dragleave", "drop"]) drop.addEventListener(ev, (e) => { e.preventDefault(); drop.classList.remove("over"); });
drop.addEventListener("drop", (e) => add(e.dataTransfer.files));
$("pick").addEventListener("change", (e) => { add(e.target.files); e.target.value = ""; });
$("save-token").addEventListener("click", () => {
  state.token = $("token").value.trim();
  sessionStorage.setItem("unmask-token", state.token);
  $("auth").hidden = true;
  loadCard();
});
loadCard();
