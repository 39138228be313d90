// avslkit demo page: upload → /api/analyze (maps computed once), slider → /api/fuse (cheap re-fusion).
"use strict";

const $ = (id) => document.getElementById(id);
let info = null;          // /api/info
let uploadId = null;      // id of the current upload's maps on the server
let fuseSeq = 0;          // only the newest slider request updates the page

function setState(state) { document.body.dataset.state = state; }

function showMessage(text, isError) {
  const el = $("message");
  el.textContent = text || "";
  el.className = isError ? "error" : "";
}

function showNotices(list) {
  const ul = $("notices");
  ul.replaceChildren(...(list || []).map((text) => {
    const li = document.createElement("li");
    li.textContent = text;
    return li;
  }));
}

async function readJson(response) {
  let data = null;
  try { data = await response.json(); } catch (e) { data = null; }
  if (!response.ok) {
    const why = data && data.error ? data.error : `the server answered ${response.status} ${response.statusText}`;
    throw new Error(why);
  }
  return data;
}

function showFused(data) {
  $("fused").src = data.fused;
  $("fused").dataset.alpha = String(data.alpha);
  $("alpha-value").textContent = Number(data.alpha).toFixed(2);
  $("confidence").textContent = Number(data.confidence).toFixed(4);
  $("fused-caption").textContent = `Fused (α = ${Number(data.alpha).toFixed(2)}, ${info ? info.fusion : ""} rule)`;
}

async function loadInfo() {
  try {
    info = await readJson(await fetch("/api/info"));
    const ckpt = info.checkpoint ? ` — ${info.checkpoint}` : "";
    $("model-info").textContent = `Method ${info.method}${ckpt}; fusion rule ${info.fusion} (default α = ${info.default_alpha}).`;
    $("limit").textContent = `Uploads up to ${info.max_upload_mb} MB.`;
    $("alpha").value = info.default_alpha;
    showNotices(info.notices);
    setState("idle");
  } catch (err) {
    showMessage(`Cannot reach the demo server: ${err.message}`, true);
    setState("error");
  }
}

function selectedFiles() {
  return ["image", "audio", "video"].map((id) => $(id).files[0]).filter(Boolean);
}

async function analyze(event) {
  event.preventDefault();
  const files = selectedFiles();
  if (files.length === 0) {
    showMessage("Choose an image and an audio file, or a video.", true);
    return;
  }
  const total = files.reduce((sum, f) => sum + f.size, 0);
  if (info && total > info.max_upload_mb * 1024 * 1024) {
    showMessage(`The files add up to ${(total / 1048576).toFixed(1)} MB, more than the ${info.max_upload_mb} MB limit.`, true);
    return;
  }
  setState("busy");
  showMessage("Analysing…", false);
  $("analyze").disabled = true;
  try {
    const data = await readJson(await fetch("/api/analyze", { method: "POST", body: new FormData($("upload-form")) }));
    uploadId = data.id;
    $("av").src = data.av;
    $("ogl").src = data.ogl;
    $("av-confidence").textContent = Number(data.av_confidence).toFixed(4);
    $("alpha").value = data.alpha;
    showFused(data);
    showNotices(data.notices);
    $("details").textContent = `Input: ${data.source}, frame and audio window centred at ${Number(data.time).toFixed(2)} s.`;
    $("results").hidden = false;
    showMessage("Done. Move the α slider to change the fusion.", false);
    setState("ready");
  } catch (err) {
    showMessage(err.message, true);
    setState("error");
  } finally {
    $("analyze").disabled = false;
  }
}

async function refuse() {
  if (!uploadId) return;
  const alpha = $("alpha").value;
  $("alpha-value").textContent = Number(alpha).toFixed(2);
  const seq = ++fuseSeq;
  setState("busy");
  try {
    const data = await readJson(await fetch(`/api/fuse?id=${encodeURIComponent(uploadId)}&alpha=${encodeURIComponent(alpha)}`));
    if (seq !== fuseSeq) return;
    showFused(data);
    setState("ready");
  } catch (err) {
    if (seq !== fuseSeq) return;
    showMessage(err.message, true);
    setState("error");
  }
}

$("upload-form").addEventListener("submit", analyze);
$("alpha").addEventListener("input", refuse);
setState("loading");
loadInfo();
