// The keys panel: the managed keys as a table, the form that creates one (its secret shown once,
// with a copy button), and revoking one after a confirmation.

import { callApi } from "./api.js";
import { copyText } from "./clipboard.js";
import { byId, h, show } from "./dom.js";
import { showErrorIn } from "./errors.js";
import { formatDate, formatUsd } from "./format.js";

/** The form's control for each field the API may name in an error. */
const CONTROLS = { name: "key-name", budget_usd: "key-budget", models: "key-models", rpm: "key-rpm", expires_at: "key-expires" };

/** A mistake the page finds before asking the API, worded and shaped like the API's errors. */
class FormError extends Error {
  constructor(message, param) {
    super(message);
    this.param = param;
  }
}

export function keyStatus(record, now = Date.now() / 1000) {
  if (record.revoked) return "revoked";
  if (record.expires_at !== null && record.expires_at <= now) return "expired";
  return "active";
}

/**
 * Sets up the panel. `onChange()` is called after a key is made or revoked (the rest of the
 * dashboard names keys by their records); `status(text)` announces what was done. Answers {load}:
 * load() fetches and shows the keys and answers their records.
 */
export function setupKeys({ onChange, status }) {
  let pending = null; // the record the revoke dialog is about
  let opener = null; // the button that opened it, focused again when it closes
  const dialog = byId("revoke-dialog");

  async function load() {
    const { data } = await callApi("admin/keys", { admin: true });
    const records = [...data.data].sort((a, b) => b.created - a.created);
    render(records);
    return records;
  }

  function render(records) {
    byId("keys-count").textContent = `(${records.filter((record) => keyStatus(record) === "active").length} active)`;
    show(byId("keys-empty"), records.length === 0);
    byId("keys-body").replaceChildren(...records.map(row));
  }

  function row(record) {
    const state = keyStatus(record);
    const spent = record.budget_usd === null
      ? formatUsd(record.spent_usd)
      : `${formatUsd(record.spent_usd)} of ${formatUsd(record.budget_usd)}`;
    const revoke = state === "active"
      ? h("button", { type: "button", class: "danger small", "aria-label": `Revoke key ${record.name}` }, "Revoke")
      : null;
    revoke?.addEventListener("click", () => confirmRevoke(record, revoke));
    return h(
      "tr",
      { "data-key-id": record.id, class: state === "active" ? null : "inactive" },
      h("th", { scope: "row" }, record.name),
      h("td", { "data-label": "ID" }, h("code", {}, record.id), h("span", { class: "hint block" }, `${record.prefix}…`)),
      h("td", { "data-label": "Status" }, h("span", { class: `badge badge-${state}` }, state)),
      h("td", { "data-label": "Spent" }, spent),
      h("td", { "data-label": "Models" }, record.models === null ? "all" : record.models.join(", ")),
      h("td", { "data-label": "RPM" }, record.rpm === null ? "default" : String(record.rpm)),
      h("td", { "data-label": "Expires" }, record.expires_at === null ? "never" : formatDate(record.expires_at)),
      h("td", { "data-label": "Created" }, formatDate(record.created)),
      h("td", { "data-label": "" }, revoke),
    );
  }

  function readForm() {
    const body = {};
    const name = byId("key-name").value.trim();
    if (!name) throw new FormError("Enter a name for the key (who or what it is for).", "name");
    body.name = name;
    for (const [param, id] of [["budget_usd", "key-budget"], ["rpm", "key-rpm"]]) {
      const input = byId(id);
      if (input.validity.badInput) throw new FormError(`${param} must be a number.`, param);
      if (input.value !== "") body[param] = Number(input.value);
    }
    const models = byId("key-models").value.split(",").map((model) => model.trim()).filter(Boolean);
    if (models.length) body.models = models;
    const expires = byId("key-expires").value;
    if (expires) body.expires_at = `${expires}T00:00:00Z`;
    return body;
  }

  function markInvalid(param) {
    for (const id of Object.values(CONTROLS)) byId(id).removeAttribute("aria-invalid");
    const control = param ? byId(CONTROLS[param] ?? "") : null;
    control?.setAttribute("aria-invalid", "true");
    return control;
  }

  async function create(event) {
    event.preventDefault();
    const form = byId("key-create");
    show(byId("key-error"), false);
    let body;
    try {
      body = readForm();
    } catch (error) {
      if (!(error instanceof FormError)) throw error;
      showErrorIn(byId("key-error"), error, "The key was not created");
      markInvalid(error.param)?.focus();
      return;
    }
    markInvalid(null);
    form.setAttribute("aria-busy", "true");
    byId("key-submit").disabled = true;
    try {
      const { data } = await callApi("admin/keys", { method: "POST", json: body, admin: true });
      form.reset();
      showSecret(data);
      status(`Key ${data.name} created.`);
      await onChange();
    } catch (error) {
      showErrorIn(byId("key-error"), error, "The key was not created");
      markInvalid(error.param)?.focus();
    } finally {
      byId("key-submit").disabled = false;
      form.setAttribute("aria-busy", "false");
    }
  }

  function showSecret(created) {
    byId("new-key-name").textContent = created.name;
    const secret = byId("new-key-secret");
    secret.value = created.key;
    show(byId("new-key"), true);
    secret.focus();
    secret.select();
  }

  function hideSecret() {
    byId("new-key-secret").value = ""; // not kept in the page once the user is done with it
    show(byId("new-key"), false);
    byId("key-name").focus();
  }

  function confirmRevoke(record, button) {
    pending = record;
    opener = button;
    byId("revoke-text").textContent =
      `Revoke the key ${record.name} (${record.id})? Every request made with it is refused from then on; this cannot be undone.`;
    dialog.showModal();
  }

  async function revoke() {
    const record = pending;
    dialog.close();
    if (!record) return;
    show(byId("key-error"), false);
    try {
      await callApi(`admin/keys/${encodeURIComponent(record.id)}`, { method: "DELETE", admin: true });
      status(`Key ${record.name} revoked.`);
      await onChange();
      byId("key-name").focus(); // the row's button is gone
    } catch (error) {
      showErrorIn(byId("key-error"), error, "The key was not revoked");
    }
  }

  byId("key-create").addEventListener("submit", create);
  byId("copy-key").addEventListener("click", async () => {
    await copyText(byId("new-key-secret"));
    status("The key was copied.");
    byId("copy-key").textContent = "Copied";
    setTimeout(() => {
      byId("copy-key").textContent = "Copy";
    }, 1500);
  });
  byId("new-key-done").addEventListener("click", hideSecret);
  byId("revoke-confirm").addEventListener("click", revoke);
  byId("revoke-cancel").addEventListener("click", () => dialog.close());
  dialog.addEventListener("close", () => {
    pending = null;
    if (opener?.isConnected) opener.focus();
    opener = null;
  });
  return { load };
}
