// The parameter form, built from a model's table (GET /v1/models/{id} "parameters"): one control per
// parameter the model takes, typed as the table says, with its behavior as a badge; the parameters
// the model ignores are listed apart. The request's own fields (model, prompt, image, mask) have
// their fixed controls in the page.

import { formatNumber, h } from "./dom.js";

const OWN_CONTROLS = new Set(["model", "prompt", "image", "mask"]);
const BEHAVIOR_HELP = {
  passthrough: "sent under the same name",
  renamed: "sent under the provider's name",
  converted: "turned into the provider's native form",
  emulated: "done by pixelgate",
  unsupported: "the model ignores it",
};

/** A value the page cannot send as typed (a number field holding text). */
export class FormError extends Error {
  constructor(message, param) {
    super(message);
    this.name = "FormError";
    this.param = param;
  }
}

/** The badge for a behavior, with the upstream name when the parameter changes name. */
export function behaviorBadge(behavior, upstream, name) {
  const badge = h("span", { class: `badge badge-${behavior}`, title: BEHAVIOR_HELP[behavior] ?? "" }, behavior);
  if (upstream && upstream !== name && behavior !== "unsupported") {
    return h("span", { class: "badge-group" }, badge, h("code", { class: "upstream-name" }, `→ ${upstream}`));
  }
  return badge;
}

function rangeText(row) {
  const low = row.minimum ?? null;
  const high = row.maximum ?? null;
  if (low !== null && high !== null) return `${formatNumber(low)}–${formatNumber(high)}`;
  if (low !== null) return `at least ${formatNumber(low)}`;
  if (high !== null) return `at most ${formatNumber(high)}`;
  return null;
}

function defaultText(row) {
  if (row.default === undefined || row.default === null) return null;
  return typeof row.default === "string" ? row.default : JSON.stringify(row.default);
}

function control(name, row, id, hintId) {
  const common = { id, name, "aria-describedby": hintId, "data-param": name, "data-type": row.type };
  const fallback = defaultText(row);
  if (Array.isArray(row.values) && row.values.length) {
    return h(
      "select",
      common,
      h("option", { value: "" }, fallback === null ? "— not sent —" : `default (${fallback})`),
      row.values.map((value, index) => h("option", { value: String(index), "data-json": JSON.stringify(value) }, String(value))),
    );
  }
  if (row.type === "boolean") {
    return h(
      "select",
      common,
      h("option", { value: "" }, fallback === null ? "— not sent —" : `default (${fallback})`),
      h("option", { value: "0", "data-json": "true" }, "true"),
      h("option", { value: "1", "data-json": "false" }, "false"),
    );
  }
  if (row.type === "integer" || row.type === "number") {
    return h("input", {
      ...common,
      type: "number",
      inputmode: row.type === "integer" ? "numeric" : "decimal",
      min: row.minimum ?? null,
      max: row.maximum ?? null,
      step: row.type === "integer" ? "1" : "any",
      placeholder: fallback === null ? "" : `default: ${fallback}`,
    });
  }
  return h("input", {
    ...common,
    type: "text",
    spellcheck: "false",
    placeholder: fallback === null ? (row.type === "array" ? "JSON list" : "") : `default: ${fallback}`,
  });
}

/**
 * Fills `fields` with a control per parameter of `parameters` and `ignored` with those the model
 * does not take. Answers the number of each.
 */
export function buildParamForm(fields, ignored, parameters) {
  fields.replaceChildren();
  ignored.replaceChildren();
  let shown = 0;
  let skipped = 0;
  for (const [name, row] of Object.entries(parameters)) {
    if (OWN_CONTROLS.has(name)) continue;
    if (row.behavior === "unsupported") {
      skipped += 1;
      ignored.append(h("li", {}, h("code", {}, name), " ", row.description ? `— ${row.description}` : ""));
      continue;
    }
    shown += 1;
    const id = `param-${name}`;
    const hintId = `${id}-hint`;
    const details = [row.description, rangeText(row) && `range ${rangeText(row)}`, row.type === "array" && "a JSON list"]
      .filter(Boolean)
      .join(" · ");
    fields.append(
      h(
        "div",
        { class: "param" },
        h("div", { class: "param-head" }, h("label", { for: id }, name), behaviorBadge(row.behavior, row.upstream, name)),
        control(name, row, id, hintId),
        h("p", { class: "hint", id: hintId }, details),
      ),
    );
  }
  return { shown, skipped };
}

/**
 * The values the user set, in form order: [{name, text, value}] where `text` is the multipart
 * string and `value` the JSON value typed as the table says. Empty controls are left out.
 */
export function readParams(fields) {
  const values = [];
  for (const input of fields.querySelectorAll("[data-param]")) {
    const name = input.dataset.param;
    const type = input.dataset.type;
    if (input.tagName === "SELECT") {
      const option = input.selectedOptions[0];
      if (!option || option.value === "") continue;
      const value = JSON.parse(option.dataset.json);
      values.push({ name, text: typeof value === "string" ? value : JSON.stringify(value), value });
      continue;
    }
    if (input.validity.badInput) throw new FormError(`'${name}' must be a number.`, name);
    const text = input.value.trim();
    if (text === "") continue;
    values.push({ name, text, value: typed(text, type) });
  }
  return values;
}

function typed(text, type) {
  if (type === "integer" || type === "number") return Number(text);
  if (type === "array" || type === "object") {
    try {
      return JSON.parse(text);
    } catch {
      return text; // the API says what is wrong with it
    }
  }
  return text;
}
