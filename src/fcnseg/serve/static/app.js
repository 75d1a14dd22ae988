// The page of `fcnseg serve`: upload an image, show the overlay and a per-class heatmap.
// Plain JavaScript, no build step and nothing from other servers.
"use strict";

const $ = (id) => document.getElementById(id);
const state = { model: null, ready: null, heatmaps: {}, originalUrl: null };

function setStatus(text, isError = false) {
  const el = $("status");
  el.textContent = text;
  el.classList.toggle("error", isError);
}

function megabytes(bytes) {
  return (bytes / 2 ** 20).toFixed(bytes < 2 ** 20 ? 2 : 0) + " MB";
}

async function loadModel() {
  const response = await fetch("/v1/model");
  if (!response.ok) throw new Error(`GET /v1/model answered ${response.status}`);
  const model = await response.json();
  state.model = model;
  const geometry = model.geometry ? `, ${model.geometry} geometry` : "";
  $("model-summary").textContent =
    `${model.arch}${geometry}, ${model.num_classes} classes, ` +
    `${model.input_convention.name} input`;
  const limits = model.limits;
  $("limits").textContent =
    `Up to ${megabytes(limits.max_upload_bytes)}; images over ` +
    `${(limits.max_pixels / 1e6).toFixed(1)} megapixels are scaled down here first.`;
  const select = $("heatmap-class");
  select.replaceChildren();
  model.class_names.forEach((name, index) => {
    const option = document.createElement("option");
    option.value = name;
    option.textContent = `${index}: ${name}`;
    select.append(option);
  });
}

// Scale an image down in the browser when it has more pixels than the server accepts, so
// that phone photos still work. Anything the browser cannot decode goes up unchanged and the
// server explains what is wrong with it.
async function fitToLimits(file) {
  const maxPixels = state.model ? state.model.limits.max_pixels : Infinity;
  let bitmap;
  try {
    bitmap = await createImageBitmap(file);
  } catch {
    return { blob: file, note: "" };
  }
  const pixels = bitmap.width * bitmap.height;
  if (pixels <= maxPixels) {
    bitmap.close();
    return { blob: file, note: "" };
  }
  const scale = Math.sqrt(maxPixels / pixels) * 0.999;
  const width = Math.max(1, Math.floor(bitmap.width * scale));
  const height = Math.max(1, Math.floor(bitmap.height * scale));
  const canvas = document.createElement("canvas");
  canvas.width = width;
  canvas.height = height;
  canvas.getContext("2d").drawImage(bitmap, 0, 0, width, height);
  bitmap.close();
  const blob = await new Promise((resolve) => canvas.toBlob(resolve, "image/jpeg", 0.92));
  return { blob, note: ` (scaled down from ${pixels.toLocaleString()} pixels)` };
}

function showHeatmap() {
  const name = $("heatmap-class").value;
  const png = state.heatmaps[name];
  if (png) $("heatmap").src = "data:image/png;base64," + png;
  $("heatmap").alt = `probability of class ${name} at each pixel`;
}

function fillLegend(result) {
  const body = $("legend").tBodies[0];
  body.replaceChildren();
  const total = result.width * result.height;
  const rows = Object.entries(result.pixel_counts)
    .filter(([, count]) => count > 0)
    .sort((a, b) => b[1] - a[1]);
  for (const [name, count] of rows) {
    const index = state.model.class_names.indexOf(name);
    const [r, g, b] = state.model.palette[index];
    const tr = document.createElement("tr");
    const nameCell = document.createElement("td");
    const swatch = document.createElement("span");
    swatch.className = "swatch";
    swatch.style.backgroundColor = `rgb(${r}, ${g}, ${b})`;
    nameCell.append(swatch, document.createTextNode(name));
    const countCell = document.createElement("td");
    countCell.className = "num";
    countCell.textContent = count.toLocaleString();
    const shareCell = document.createElement("td");
    shareCell.className = "num";
    shareCell.textContent = ((100 * count) / total).toFixed(1) + " %";
    tr.append(nameCell, countCell, shareCell);
    body.append(tr);
  }
  $("legend-section").hidden = false;
}

// The class whose heatmap is shown first: the largest class present other than class 0
// (background in most datasets), else class 0.
function defaultHeatmapClass(result) {
  const names = state.model.class_names;
  let best = names[0];
  let bestCount = 0;
  names.forEach((name, index) => {
    const count = result.pixel_counts[name] || 0;
    if (index > 0 && count > bestCount) {
      best = name;
      bestCount = count;
    }
  });
  return best;
}

async function segment(file) {
  if (!file) return;
  setStatus(`Segmenting ${file.name || "the image"}…`);
  $("file").disabled = true;
  try {
    await state.ready;
    if (!state.model) throw new Error("the model description is not loaded; reload the page");
    const { blob, note } = await fitToLimits(file);
    if (state.originalUrl) URL.revokeObjectURL(state.originalUrl);
    state.originalUrl = URL.createObjectURL(blob);
    const form = new FormData();
    form.append("image", blob, file.name || "image");
    const started = performance.now();
    const response = await fetch("/v1/segment?format=json&overlay=true&heatmap=all", {
      method: "POST",
      body: form,
    });
    if (!response.ok) {
      let detail = response.statusText;
      try {
        detail = (await response.json()).detail || detail;
      } catch {
        // not JSON: keep the status text
      }
      setStatus(`The server refused the image (${response.status}): ${detail}`, true);
      return;
    }
    const result = await response.json();
    $("original").src = state.originalUrl;
    $("overlay").src = "data:image/png;base64," + result.overlay_png;
    state.heatmaps = result.heatmaps || {};
    $("heatmap-class").value = defaultHeatmapClass(result);
    showHeatmap();
    fillLegend(result);
    $("results").hidden = false;
    const seconds = ((performance.now() - started) / 1000).toFixed(2);
    setStatus(`${file.name || "Image"}: ${result.width}×${result.height} pixels${note}, ` +
              `${result.present.length} classes found, ${seconds} s.`);
  } catch (error) {
    setStatus(`Could not segment the image: ${error.message}`, true);
  } finally {
    $("file").disabled = false;
    $("file").value = "";
  }
}

function wireUp() {
  $("file").addEventListener("change", (event) => segment(event.target.files[0]));
  $("heatmap-class").addEventListener("change", showHeatmap);
  const zone = $("drop-zone");
  zone.addEventListener("dragover", (event) => {
    event.preventDefault();
    zone.classList.add("dragging");
  });
  zone.addEventListener("dragleave", () => zone.classList.remove("dragging"));
  zone.addEventListener("drop", (event) => {
    event.preventDefault();
    zone.classList.remove("dragging");
    segment(event.dataTransfer.files[0]);
  });
}

wireUp();
state.ready = loadModel().catch((error) =>
  setStatus(`Could not load the model description: ${error.message}`, true));
