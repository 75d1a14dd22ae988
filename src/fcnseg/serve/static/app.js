// The page of `fcnseg serve`: upload an image, show the overlay and a per-class heatmap.
// A model with several inputs (colour and HHA, colour and depth) gets one file chooser per
// modality; a model with several heads (SIFT Flow: semantic and geometric) gets an overlay and
// a table of classes per head. Plain JavaScript, no build step and nothing from other servers.
"use strict";

const $ = (id) => document.getElementById(id);
const state = { model: null, ready: null, heatmaps: {}, originalUrl: null, chosen: {} };

function setStatus(text, isError = false) {
  const el = $("status");
  el.textContent = text;
  el.classList.toggle("error", isError);
}

function megabytes(bytes) {
  return (bytes / 2 ** 20).toFixed(bytes < 2 ** 20 ? 2 : 0) + " MB";
}

// The model's heads as [name, {class_names, palette}] pairs: one unnamed head for most models.
function headsOf(model) {
  const heads = Object.entries(model.heads || {});
  return heads.length ? heads : [["", { class_names: model.class_names, palette: model.palette }]];
}

function severalInputs() {
  return Boolean(state.model && state.model.input_names && state.model.input_names.length > 1);
}

// A model exported with labels only (--labels-out) gives no probabilities: no heatmaps to ask.
function givesProbabilities() {
  return Boolean(state.model) && state.model.probabilities !== false;
}

function showHeatmapPanel(shown) {
  for (const id of ["heatmap-chooser", "heatmap", "heatmap-scale"]) $(id).hidden = !shown;
  $("no-heatmaps").hidden = shown;
}

async function loadModel() {
  const response = await fetch("/v1/model");
  if (!response.ok) throw new Error(`GET /v1/model answered ${response.status}`);
  const model = await response.json();
  state.model = model;
  const geometry = model.geometry ? `, ${model.geometry} geometry` : "";
  const heads = Object.keys(model.heads || {});
  const classes = heads.length
    ? heads.map((h) => `${h} ${model.heads[h].class_names.length}`).join(" + ") + " classes"
    : `${model.num_classes} classes`;
  const inputs = severalInputs() ? `, inputs ${model.input_names.join(" + ")}` : "";
  // A multi-band model takes rasters of its bands (TIFF); the server draws their picture.
  const bands = model.input_convention.bands;
  const bandList = bands ? `, bands ${bands.join(", ")}` : "";
  if (bands) $("file").accept = "image/*,.tif,.tiff";
  $("model-summary").textContent =
    `${model.arch}${geometry}, ${classes}${inputs}${bandList}, ${model.input_convention.name} input`;
  const limits = model.limits;
  $("limits").textContent = severalInputs()
    ? `Up to ${megabytes(limits.max_upload_bytes)} in all, ` +
      `${(limits.max_pixels / 1e6).toFixed(1)} megapixels, every image of the same size.`
    : `Up to ${megabytes(limits.max_upload_bytes)}; images over ` +
      `${(limits.max_pixels / 1e6).toFixed(1)} megapixels are scaled down here first.`;
  showHeatmapPanel(givesProbabilities());
  const select = $("heatmap-class");
  select.replaceChildren();
  for (const [head, info] of headsOf(model)) {
    let group = select;
    if (head) {
      group = document.createElement("optgroup");
      group.label = head;
      select.append(group);
    }
    info.class_names.forEach((name, index) => {
      const option = document.createElement("option");
      option.value = head ? `${head}/${name}` : name;
      option.textContent = `${index}: ${name}`;
      group.append(option);
    });
  }
  if (severalInputs()) buildModalityChoosers(model.input_names);
}

// One "Choose the <modality> image" button per input; the request goes once all are chosen
// (and again with the Segment button).
function buildModalityChoosers(names) {
  $("single-file").hidden = true;
  $("drop-hint").hidden = true;
  const box = $("modality-files");
  box.replaceChildren();
  for (const name of names) {
    const wrap = document.createElement("div");
    wrap.className = "modality";
    const label = document.createElement("label");
    label.className = "button";
    label.htmlFor = `file-${name}`;
    label.textContent = `Choose the ${name} image`;
    const input = document.createElement("input");
    input.type = "file";
    input.id = `file-${name}`;
    input.accept = "image/*";
    const chosen = document.createElement("span");
    chosen.className = "chosen";
    chosen.id = `chosen-${name}`;
    chosen.textContent = "none chosen";
    input.addEventListener("change", () => {
      state.chosen[name] = input.files[0];
      chosen.textContent = input.files[0] ? input.files[0].name : "none chosen";
      const ready = names.every((m) => state.chosen[m]);
      $("segment-button").disabled = !ready;
      if (ready) segmentModalities();
    });
    wrap.append(label, input, chosen);
    box.append(wrap);
  }
  const button = document.createElement("button");
  button.type = "button";
  button.id = "segment-button";
  button.className = "button";
  button.textContent = "Segment";
  button.disabled = true;
  button.addEventListener("click", segmentModalities);
  box.append(button);
  box.hidden = false;
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
  const value = $("heatmap-class").value;
  const png = state.heatmaps[value];
  if (png) $("heatmap").src = "data:image/png;base64," + png;
  $("heatmap").alt = `probability of class ${value} at each pixel`;
}

// Fill a legend table's body with the classes one head found, largest first.
function fillTable(body, result, info) {
  body.replaceChildren();
  const total = result.width * result.height;
  const rows = Object.entries(result.pixel_counts)
    .filter(([, count]) => count > 0)
    .sort((a, b) => b[1] - a[1]);
  for (const [name, count] of rows) {
    const index = info.class_names.indexOf(name);
    const [r, g, b] = info.palette[index];
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
}

// The first head's classes in #legend, each further head's in a table of its own.
function fillLegend(result) {
  const heads = headsOf(state.model);
  const [firstHead, firstInfo] = heads[0];
  fillTable($("legend").tBodies[0], firstHead ? result.heads[firstHead] : result, firstInfo);
  $("legend-head").textContent = firstHead ? `: ${firstHead}` : "";
  const more = $("head-legends");
  more.replaceChildren();
  for (const [head, info] of heads.slice(1)) {
    const title = document.createElement("h2");
    title.textContent = `Classes found: ${head}`;
    const table = document.createElement("table");
    table.id = `legend-${head}`;
    table.append($("legend").tHead.cloneNode(true), document.createElement("tbody"));
    fillTable(table.tBodies[0], result.heads[head], info);
    more.append(title, table);
  }
  $("legend-section").hidden = false;
}

// The first head's overlay is #overlay; each further head gets a figure of its own.
function showHeadOverlays(result) {
  const heads = headsOf(state.model);
  $("overlay-head").textContent = heads[0][0] ? `: ${heads[0][0]}` : "";
  const box = $("head-overlays");
  box.replaceChildren();
  for (const [head] of heads.slice(1)) {
    const figure = document.createElement("figure");
    const caption = document.createElement("figcaption");
    caption.textContent = `Overlay: ${head}`;
    const img = document.createElement("img");
    img.id = `overlay-${head}`;
    img.alt = `the ${head} classes in colour over the image`;
    img.src = "data:image/png;base64," + result.heads[head].overlay_png;
    figure.append(caption, img);
    box.append(figure);
  }
}

// Every heatmap of an answer, keyed as the dropdown's values: "class" or "head/class".
function collectHeatmaps(result) {
  if (!result.heads) return result.heatmaps || {};
  const all = {};
  for (const [head, answer] of Object.entries(result.heads)) {
    for (const [name, png] of Object.entries(answer.heatmaps || {})) all[`${head}/${name}`] = png;
  }
  return all;
}

// The class whose heatmap is shown first: the largest class present other than class 0
// (background in most datasets), else class 0; of the first head for a model with several.
function defaultHeatmapClass(result) {
  const [head, info] = headsOf(state.model)[0];
  const counts = head ? result.heads[head].pixel_counts : result.pixel_counts;
  const names = info.class_names;
  let best = names[0];
  let bestCount = 0;
  names.forEach((name, index) => {
    const count = counts[name] || 0;
    if (index > 0 && count > bestCount) {
      best = name;
      bestCount = count;
    }
  });
  return head ? `${head}/${best}` : best;
}

// Send a form and show the answer; `original` is the picture shown as the image.
async function sendForm(form, original, title, note) {
  if (state.originalUrl) URL.revokeObjectURL(state.originalUrl);
  state.originalUrl = URL.createObjectURL(original);
  const started = performance.now();
  const query = "format=json&overlay=true" + (givesProbabilities() ? "&heatmap=all" : "");
  const response = await fetch(`/v1/segment?${query}`, {
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
  $("original").src = result.image_png
    ? "data:image/png;base64," + result.image_png
    : state.originalUrl;
  $("overlay").src = "data:image/png;base64," + result.overlay_png;
  showHeadOverlays(result);
  state.heatmaps = collectHeatmaps(result);
  if (givesProbabilities()) {
    $("heatmap-class").value = defaultHeatmapClass(result);
    showHeatmap();
  }
  fillLegend(result);
  $("results").hidden = false;
  const seconds = ((performance.now() - started) / 1000).toFixed(2);
  setStatus(`${title}: ${result.width}×${result.height} pixels${note}, ` +
            `${result.present.length} classes found, ${seconds} s.`);
}

async function segment(file) {
  if (!file) return;
  setStatus(`Segmenting ${file.name || "the image"}…`);
  $("file").disabled = true;
  try {
    await state.ready;
    if (!state.model) throw new Error("the model description is not loaded; reload the page");
    if (severalInputs()) {
      throw new Error(`this model takes one file per input (${state.model.input_names.join(", ")}); ` +
                      "choose each with its button");
    }
    const { blob, note } = await fitToLimits(file);
    const form = new FormData();
    form.append("image", blob, file.name || "image");
    await sendForm(form, blob, file.name || "Image", note);
  } catch (error) {
    setStatus(`Could not segment the image: ${error.message}`, true);
  } finally {
    $("file").disabled = false;
    $("file").value = "";
  }
}

// A model with several inputs: one file per modality, in form fields named by it. They go up
// unscaled: the inputs must keep one size, and depth PNGs their 16 bits.
async function segmentModalities() {
  const names = state.model.input_names;
  if (!names.every((m) => state.chosen[m])) return;
  const title = names.map((m) => state.chosen[m].name || m).join(" + ");
  setStatus(`Segmenting ${title}…`);
  $("segment-button").disabled = true;
  try {
    const form = new FormData();
    for (const m of names) form.append(m, state.chosen[m], state.chosen[m].name || m);
    await sendForm(form, state.chosen.color || state.chosen[names[0]], title, "");
  } catch (error) {
    setStatus(`Could not segment the images: ${error.message}`, true);
  } finally {
    $("segment-button").disabled = false;
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
