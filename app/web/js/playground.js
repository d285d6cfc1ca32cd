// The playground: pick a model, build its parameter form, upload, run, and show what came back.
// Every call goes to this gateway's own API through api.js.

import { callApi, gatewayBase, modelPath, storedKey, storeKey } from "./api.js";
import { copyText } from "./clipboard.js";
import { setupCompare, showComparison } from "./compare.js";
import { byId, h, show } from "./dom.js";
import { buildParamForm, FormError, readParams } from "./paramform.js";
import { startProgress } from "./progress.js";
import { clearResult, showAnswer, showDryRun, showError, showMetadata } from "./results.js";
import { SNIPPETS } from "./snippets.js";
import { setupTabs } from "./tabs.js";

const MODEL_STORAGE = "pixelgate.playground.model";
const PREFERRED_MODEL = "sandbox-edit";

const state = {
  detail: null, // GET /v1/models/{id} of the chosen model
  parameters: {}, // its parameter table
  images: [], // File objects, in upload order
  mask: null,
  previews: [], // object URLs of the previews
  running: null, // AbortController of the request in flight
  call: null, // the last call, for the code snippets
};

const form = byId("run-form");
const status = (text) => {
  byId("status").textContent = text;
};

function currentMode() {
  return form.querySelector('input[name="mode"]:checked')?.value ?? "generate";
}

// --- models -----------------------------------------------------------------------------------

async function loadModels() {
  const select = byId("model");
  try {
    const { data } = await callApi("v1/models");
    const byProvider = new Map();
    for (const model of data.data) {
      const group = model.provider ?? model.owned_by ?? "models";
      if (!byProvider.has(group)) byProvider.set(group, []);
      byProvider.get(group).push(model);
    }
    select.replaceChildren(
      ...[...byProvider].map(([provider, models]) =>
        h("optgroup", { label: provider }, models.map((model) => h("option", { value: model.id }, `${model.id} (${(model.modes || []).join(", ")})`))),
      ),
    );
    const wanted = sessionStorage.getItem(MODEL_STORAGE);
    const ids = data.data.map((model) => model.id);
    select.value = ids.includes(wanted) ? wanted : ids.includes(PREFERRED_MODEL) ? PREFERRED_MODEL : ids[0] ?? "";
    byId("error").hidden = true;
    await loadModel(select.value);
  } catch (error) {
    select.replaceChildren(h("option", { value: "" }, "— enter a valid API key —"));
    showError(error);
    status("The models could not be listed.");
  }
}

async function loadModel(id) {
  if (!id) return;
  sessionStorage.setItem(MODEL_STORAGE, id);
  const { data } = await callApi(modelPath(id));
  state.detail = data;
  // A routed model lists its deployments, each with its own table; the form follows the first, or
  // the one the Provider picker forces.
  const deployments = Array.isArray(data.deployments) ? data.deployments : [];
  const providers = [...new Set(deployments.map((d) => d.provider))];
  const routed = providers.length > 1 ? ` Deployments, tried in order: ${providers.join(", ")}.` : "";
  byId("model-description").textContent = `${data.description ?? ""}${routed}`.trim();
  const picker = byId("deployment");
  picker.replaceChildren(
    h("option", { value: "" }, `Any, in order (${providers.join(", ")})`),
    ...providers.map((provider) => h("option", { value: provider }, provider)),
  );
  show(byId("deployment-field"), providers.length > 1);
  buildForm(id);
}

/** The parameter form of the chosen deployment (the first one when the model is routed freely). */
function buildForm(id) {
  const data = state.detail;
  const chosen = byId("deployment").value;
  const mine = (data.deployments ?? []).filter((d) => d.provider === chosen);
  // fal's nano-banana is two deployments, one per mode: the form follows the mode chosen.
  const deployment = mine.find((d) => (d.modes ?? []).includes(currentMode())) ?? mine[0];
  state.parameters = deployment?.parameters ?? data.parameters ?? {};
  const modes = data.modes ?? [];
  for (const mode of ["edit", "generate"]) {
    const radio = byId(`mode-${mode}`);
    radio.disabled = !modes.includes(mode);
  }
  const keep = modes.includes(currentMode()) && form.querySelector('input[name="mode"]:checked');
  if (!keep) byId(modes.includes("edit") ? "mode-edit" : "mode-generate").checked = true;
  const { shown, skipped } = buildParamForm(byId("param-fields"), byId("ignored-list"), state.parameters);
  byId("param-fields").dataset.model = id; // which model's form this is (a page built for another is stale)
  byId("param-fields").dataset.deployment = chosen;
  byId("params-count").textContent = `(${shown})`;
  byId("ignored-count").textContent = `(${skipped})`;
  show(byId("ignored"), skipped > 0);
  applyMode();
}

function applyMode() {
  const edit = currentMode() === "edit";
  const image = state.parameters.image;
  const input = byId("image");
  const many = image?.type === "file[]";
  input.multiple = many;
  byId("image-hint").textContent = many
    ? `PNG, JPEG or WebP; up to ${image.maximum ?? "several"} images, in order.`
    : "PNG, JPEG or WebP; one image.";
  show(byId("image-field"), edit);
  const mask = state.parameters.mask;
  show(byId("mask-field"), edit && Boolean(mask) && mask.behavior !== "unsupported");
}

// --- uploads ----------------------------------------------------------------------------------

function preview(list, files) {
  list.replaceChildren(
    ...files.map((file) => {
      const url = URL.createObjectURL(file);
      state.previews.push(url);
      const caption = h("figcaption", {}, file.name);
      const img = h("img", { src: url, alt: `Preview of ${file.name}` });
      img.addEventListener("load", () => caption.append(` · ${img.naturalWidth}x${img.naturalHeight}`), { once: true });
      return h("li", {}, h("figure", {}, img, caption));
    }),
  );
}

function refreshPreviews() {
  for (const url of state.previews) URL.revokeObjectURL(url);
  state.previews = [];
  preview(byId("image-previews"), state.images);
  preview(byId("mask-preview"), state.mask ? [state.mask] : []);
}

// --- running ----------------------------------------------------------------------------------

/** The request as the form says, and the same as a description for the code snippets. */
function buildRequest() {
  const mode = currentMode();
  const provider = byId("deployment").value;
  const model = provider ? `${provider}/${byId("model").value}` : byId("model").value;
  const prompt = byId("prompt").value;
  const params = readParams(byId("param-fields"));
  const edit = mode === "edit";
  const maskShown = !byId("mask-field").hidden;
  const call = {
    base: gatewayBase(),
    mode,
    model,
    prompt,
    params,
    images: edit ? state.images.map((file) => file.name) : [],
    mask: edit && maskShown && state.mask ? state.mask.name : null,
  };
  const path = edit ? "v1/images/edits" : "v1/images/generations";
  if (!edit) {
    const json = { model, prompt };
    for (const param of params) json[param.name] = param.value;
    return { call, path, body: { json } };
  }
  const data = new FormData();
  data.append("model", model);
  const field = state.images.length > 1 ? "image[]" : "image";
  for (const file of state.images) data.append(field, file, file.name);
  if (call.mask) data.append("mask", state.mask, state.mask.name);
  data.append("prompt", prompt);
  for (const param of params) data.append(param.name, param.text);
  return { call, path, body: { form: data } };
}

async function run(dryOnly) {
  if (state.running) return;
  let request;
  try {
    request = buildRequest();
  } catch (error) {
    if (!(error instanceof FormError)) throw error;
    clearResult();
    showError(error);
    markInvalid(error.param);
    byId(`param-${error.param}`)?.focus();
    return;
  }
  clearResult();
  markInvalid(null);
  show(byId("empty"), false);
  const controller = new AbortController();
  state.running = controller;
  setRunning(true);
  status(dryOnly ? "Dry run…" : "Running…");
  const progress = startProgress();
  const signal = controller.signal;
  const dry = callApi(`${request.path}?dry_run=true`, { method: "POST", signal, ...request.body });
  const real = dryOnly ? null : callApi(request.path, { method: "POST", signal, ...request.body });
  const [dryResult, realResult] = await Promise.allSettled([dry, real ?? Promise.resolve(null)]);
  const elapsed = progress.stop();
  state.running = null;
  setRunning(false);
  showCode(request.call);
  const failure = [realResult, dryResult].find((result) => result.status === "rejected");
  if (dryResult.status === "fulfilled") showDryRun(dryResult.value.data);
  if (failure) {
    const error = failure.reason;
    if (error.name === "AbortError") {
      status("Cancelled.");
      return;
    }
    showError(error);
    markInvalid(error.param);
    status(error.status ? `Failed (HTTP ${error.status}).` : "Failed.");
    return;
  }
  if (dryOnly) {
    const body = dryResult.value.data;
    showMetadata({ metadata: body }, dryResult.value.headers, elapsed);
    status("Dry run done: nothing was sent to the provider.");
    return;
  }
  const { data, headers } = realResult.value;
  const sources = showAnswer(data, headers, elapsed);
  showCompare(request.call.mode, sources);
  status(`Done in ${(elapsed / 1000).toFixed(1)} s: ${sources.length} image${sources.length === 1 ? "" : "s"}.`);
}

/** Marks the control of the parameter an error names (the API's `param`, as the client spelled it). */
function markInvalid(param) {
  for (const marked of form.querySelectorAll('[aria-invalid="true"]')) marked.removeAttribute("aria-invalid");
  if (!param) return;
  const name = param.replace(/\[\d*\]$/, ""); // image[0] or image[] is the image control
  const control = byId(`param-${name}`) ?? (["model", "prompt", "image", "mask"].includes(name) ? byId(name) : null);
  control?.setAttribute("aria-invalid", "true");
}

function setRunning(running) {
  byId("run").disabled = running;
  byId("dry-run").disabled = running;
  show(byId("cancel"), running);
  form.setAttribute("aria-busy", String(running));
}

function showCompare(mode, sources) {
  const visible = mode === "edit" && state.images.length > 0 && sources.length > 0;
  show(byId("compare-block"), visible);
  if (!visible) return;
  const before = byId("compare-before");
  const input = byId("image-previews").querySelector("img");
  const pick = (index) =>
    showComparison(byId("compare"), before, byId("compare-after"), input.src, sources[index], `result image ${index + 1}`);
  pick(0);
  if (sources.length > 1) {
    byId("gallery").querySelectorAll("figcaption").forEach((caption, index) => {
      const button = h("button", { type: "button", class: "link-button" }, "Compare");
      button.addEventListener("click", () => {
        pick(index);
        byId("compare-range").focus();
      });
      caption.append(" ", button);
    });
  }
}

// --- code -------------------------------------------------------------------------------------

let tabs;

function showCode(call) {
  state.call = call;
  fillSnippet(tabs.selected());
  show(byId("code-block"), true);
}

function fillSnippet(tab) {
  if (!state.call) return;
  const language = tab.id.replace("tab-", "");
  byId("snippet").textContent = SNIPPETS[language](state.call);
}

async function copySnippet() {
  await copyText(byId("snippet"));
  byId("copy").textContent = "Copied";
  status("The code was copied.");
  setTimeout(() => {
    byId("copy").textContent = "Copy";
  }, 1500);
}

// --- wiring -----------------------------------------------------------------------------------

function init() {
  const key = byId("api-key");
  key.value = storedKey();
  let checkedKey = key.value;
  const checkKey = () => {
    if (key.value.trim() === checkedKey) return;
    checkedKey = key.value.trim();
    loadModels();
  };
  key.addEventListener("input", () => storeKey(key.value.trim()));
  key.addEventListener("change", checkKey);
  key.addEventListener("keydown", (event) => {
    if (event.key !== "Enter") return;
    event.preventDefault(); // Enter here checks the key (lists the models); it does not run a request
    checkKey();
  });
  byId("model").addEventListener("change", (event) => {
    clearResult();
    loadModel(event.target.value).catch((error) => showError(error));
  });
  byId("deployment").addEventListener("change", () => {
    clearResult();
    buildForm(byId("model").value);
  });
  for (const radio of form.querySelectorAll('input[name="mode"]')) radio.addEventListener("change", applyMode);
  byId("image").addEventListener("change", (event) => {
    state.images = [...event.target.files];
    refreshPreviews();
  });
  byId("mask").addEventListener("change", (event) => {
    state.mask = event.target.files[0] ?? null;
    refreshPreviews();
  });
  byId("prompt").addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      form.requestSubmit();
    }
  });
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    run(false);
  });
  byId("dry-run").addEventListener("click", () => run(true));
  byId("cancel").addEventListener("click", () => state.running?.abort());
  setupCompare(byId("compare"), byId("compare-range"));
  tabs = setupTabs(document.querySelector('[role="tablist"]'), byId("code-panel"), fillSnippet);
  byId("copy").addEventListener("click", copySnippet);
  loadModels();
}

init();
