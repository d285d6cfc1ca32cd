// What an answer shows: the images, the metadata (the fields that exist, "—" for those that do not),
// how each parameter was handled, the warnings, the upstream request of a dry run, and errors as
// the API worded them.

import { behaviorBadge } from "./paramform.js";
import { byId, h, show } from "./dom.js";
import { showErrorIn } from "./errors.js";

const NONE = "—";
const SHOWN_METADATA = new Set([
  "model", "provider", "upstream_model", "parameters", "warnings", "attempts", "cost_usd", "durations",
  "upstream_calls", "resized", "converted",
]);

/** Object URLs made for b64_json images; revoked when the next answer replaces them. */
let objectUrls = [];

function revokeImages() {
  for (const url of objectUrls) URL.revokeObjectURL(url);
  objectUrls = [];
}

/** The image's source: the hosted URL, or a blob URL made from its base64 bytes. */
function imageSource(item, format) {
  if (item.url) return item.url;
  const bytes = Uint8Array.from(atob(item.b64_json), (char) => char.charCodeAt(0));
  const url = URL.createObjectURL(new Blob([bytes], { type: `image/${format}` }));
  objectUrls.push(url);
  return url;
}

/** Hides everything an earlier answer showed. */
export function clearResult() {
  revokeImages();
  for (const id of ["error", "compare-block", "images-block", "metadata-block", "upstream-block"]) show(byId(id), false);
}

/** Shows an ApiError (or any error) as the API gave it: message, then status, type, code, param. */
export function showError(error) {
  showErrorIn(byId("error"), error, "The request failed");
}

/**
 * Shows a successful answer: `body` the JSON, `headers` the response headers, `elapsedMs` the
 * time this page waited. Answers the images' sources (for the comparison).
 */
export function showAnswer(body, headers, elapsedMs) {
  revokeImages();
  const format = body.output_format || "png";
  const sources = (body.data || []).map((item) => imageSource(item, format));
  const gallery = byId("gallery");
  gallery.replaceChildren(
    ...sources.map((src, index) => {
      const item = body.data[index];
      const facts = [`Image ${index + 1}`, body.size, item.seed !== undefined ? `seed ${item.seed}` : null];
      return h(
        "li",
        {},
        h(
          "figure",
          {},
          h("img", { src, alt: `Result image ${index + 1}`, loading: "lazy" }),
          h(
            "figcaption",
            {},
            facts.filter(Boolean).join(" · "),
            " ",
            h("a", { href: src, download: `result-${index + 1}.${format}` }, "Download"),
            item.revised_prompt ? h("span", { class: "hint revised" }, `Revised prompt: ${item.revised_prompt}`) : null,
          ),
        ),
      );
    }),
  );
  show(byId("images-block"), sources.length > 0);
  showMetadata(body, headers, elapsedMs);
  return sources;
}

/** The metadata, handling table and warnings of an answer (or of a dry run, shaped as one). */
export function showMetadata(body, headers, elapsedMs) {
  const meta = body.metadata || {};
  const cost = meta.cost_usd ?? headers.get("x-pixelgate-cost-usd");
  const rows = [
    ["Provider", meta.provider ?? headers.get("x-pixelgate-provider")],
    ["Upstream model", meta.upstream_model],
    ["Attempts", attemptsText(meta.attempts)],
    ["Cost", cost === null || cost === undefined ? null : `$${Number(cost).toFixed(4)}`],
    ["Time (this page)", `${(elapsedMs / 1000).toFixed(2)} s`],
    ["Durations (gateway)", durationsText(meta)],
    ["Images", body.data ? String(body.data.length) : null],
    ["Size", body.size],
    ["Output format", body.output_format],
    ["Upstream calls", meta.upstream_calls],
    ["Resized by pixelgate", yesNo(meta.resized)],
    ["Converted by pixelgate", yesNo(meta.converted)],
    ["Request id", headers.get("x-request-id")],
  ];
  for (const [key, value] of Object.entries(meta)) {
    if (!SHOWN_METADATA.has(key)) rows.push([key, JSON.stringify(value)]);
  }
  byId("metadata").replaceChildren(
    ...rows.flatMap(([term, value]) => [
      h("dt", {}, term),
      h("dd", {}, value === null || value === undefined || value === "" ? NONE : String(value)),
    ]),
  );
  showHandling(byId("handling"), meta.parameters || {});
  const warnings = meta.warnings || [];
  byId("warnings").replaceChildren(
    ...(warnings.length ? warnings.map((text) => h("li", {}, text)) : [h("li", { class: "hint" }, "None")]),
  );
  show(byId("metadata-block"), true);
}

function yesNo(value) {
  if (value === undefined || value === null) return null;
  return value ? "yes" : "no";
}

function attemptsText(attempts) {
  if (!Array.isArray(attempts) || attempts.length === 0) return null;
  return attempts
    .map((attempt) => [attempt.provider, attempt.upstream, attempt.status, attempt.code, attempt.ms !== undefined ? `${attempt.ms} ms` : null]
      .filter((part) => part !== null && part !== undefined)
      .join(" "))
    .join("; ");
}

function durationsText(meta) {
  if (meta.durations && typeof meta.durations === "object") {
    return Object.entries(meta.durations).map(([name, ms]) => `${name} ${ms} ms`).join(", ");
  }
  if (Array.isArray(meta.attempts) && meta.attempts.some((attempt) => typeof attempt.ms === "number")) {
    const upstream = meta.attempts.reduce((sum, attempt) => sum + (attempt.ms || 0), 0);
    return `upstream ${upstream} ms`;
  }
  return null;
}

/** The rows of "how each parameter was handled" (metadata.parameters or a dry run's parameters). */
export function showHandling(tbody, parameters) {
  const rows = Object.entries(parameters).map(([name, handling]) =>
    h(
      "tr",
      {},
      h("th", { scope: "row" }, h("code", {}, name)),
      h("td", {}, behaviorBadge(handling.behavior, null, name)),
      h("td", {}, handling.upstream ? h("code", {}, handling.upstream) : NONE),
      h("td", {}, handling.note || NONE),
    ),
  );
  tbody.replaceChildren(...(rows.length ? rows : [h("tr", {}, h("td", { colspan: 4 }, NONE))]));
}

/** Shows a dry run's upstream request(s), emulation plan and cost estimate. */
export function showDryRun(body) {
  const requests = body.upstream_requests ?? body;
  byId("upstream").textContent = JSON.stringify(requests, null, 2);
  byId("emulation").textContent = body.emulation ? JSON.stringify(body.emulation, null, 2) : NONE;
  const estimate = body.cost_usd;
  byId("estimate").textContent = estimate === undefined || estimate === null
    ? `Estimated cost: ${NONE}`
    : `Estimated cost: $${Number(estimate).toFixed(4)}`;
  show(byId("upstream-block"), true);
}
