// The dashboard: asks for the admin key, then shows usage over time, the providers' health, the keys
// and the recent requests, all from this gateway's admin API (through api.js).

import { callApi, storeAdminKey, storedAdminKey } from "./api.js";
import { renderChart } from "./chart.js";
import { byId, h, show } from "./dom.js";
import { showErrorIn } from "./errors.js";
import { formatCount, formatUsd } from "./format.js";
import { setupKeys } from "./keys.js";
import { renderProviders } from "./providers.js";
import { setupRequests } from "./requests.js";
import { periodOf, RANGES, tabulate, usagePath } from "./usage.js";

const VIEW_STORAGE = "pixelgate.dashboard.view";
const DIMENSION_NAMES = { model: "model", provider: "provider", key: "key" };

const state = {
  keysById: new Map(), // managed key id -> its record
};

const status = (text) => {
  byId("status").textContent = text;
};

function setBusy(busy) {
  byId("dashboard").setAttribute("aria-busy", String(busy));
  byId("open").disabled = busy;
}

/** The label of a group value of `dimension` ("" stands for none). */
function nameOf(dimension, value) {
  if (dimension === "key") return value ? nameOfKey(value) : "(no key)";
  if (dimension === "provider") return value || "(not served)";
  return value || "(no model)";
}

/** A key's name; configured keys (PIXELGATE_API_KEYS) have none, so a short form of their id. */
function nameOfKey(id) {
  const record = state.keysById.get(id);
  if (record) return record.name;
  return id.startsWith("key:") ? `configured key ${id.slice(4, 12)}` : id;
}

// --- usage ------------------------------------------------------------------------------------

async function loadUsage() {
  const rangeId = byId("range").value;
  const dimension = byId("dimension").value;
  sessionStorage.setItem(VIEW_STORAGE, JSON.stringify({ rangeId, dimension }));
  const period = periodOf(rangeId);
  const { data } = await callApi(usagePath(period, dimension), { admin: true });
  const { series, cell, totals } = tabulate(data.data, period, dimension, (value) => nameOf(dimension, value));
  const when = RANGES[rangeId].label;
  const per = period.bucket === "hour" ? "hour" : "day";
  byId("usage-summary").textContent = `In ${when} (UTC), by ${DIMENSION_NAMES[dimension]}, per ${per}.`;
  const tiles = [
    ["Requests", formatCount(totals.requests)],
    ["Errors", formatCount(totals.errors)],
    ["Images", formatCount(totals.images)],
    ["Spend", formatUsd(totals.cost_usd)],
  ];
  byId("totals").replaceChildren(...tiles.map(([term, value]) => h("div", { class: "tile" }, h("dt", {}, term), h("dd", {}, value))));
  const common = { buckets: period.buckets, series };
  renderChart(byId("spend-chart"), {
    ...common,
    caption: `Spend per ${per}`,
    empty: `Nothing spent in ${when}.`,
    value: (bucket, item) => cell(bucket.key, item.id).cost_usd,
    format: formatUsd,
  });
  renderChart(byId("requests-chart"), {
    ...common,
    caption: `Requests per ${per}`,
    empty: `No requests in ${when}.`,
    value: (bucket, item) => cell(bucket.key, item.id).requests,
    format: formatCount,
    whole: true,
  });
}

async function loadProviders() {
  const { data } = await callApi("admin/providers", { admin: true });
  renderProviders(data);
}

// --- the whole board ----------------------------------------------------------------------------

const keys = setupKeys({
  onChange: refreshKeys,
  status: (text) => {
    byId("keys-status").textContent = text;
  },
});
const requests = setupRequests({ nameOfKey, onError: (error) => fail(error, "The requests could not be loaded") });

async function refreshKeys() {
  const records = await keys.load();
  state.keysById = new Map(records.map((record) => [record.id, record]));
}

function fail(error, title) {
  showErrorIn(byId("error"), error, title);
}

/** Loads everything with the stored admin key; the key list first, as the check of the key. */
async function openBoard() {
  if (!storedAdminKey()) {
    show(byId("board"), false);
    setBusy(false); // the page starts busy, until this first look at the stored key
    return;
  }
  setBusy(true);
  show(byId("error"), false);
  status("Loading…");
  try {
    await refreshKeys();
  } catch (error) {
    fail(error, "The admin API refused the key");
    show(byId("board"), false);
    show(byId("signed-in"), false);
    status(error.status === 401 ? "Check the admin key and try again." : "The dashboard could not be loaded.");
    setBusy(false);
    return;
  }
  show(byId("board"), true);
  show(byId("signed-in"), true);
  const parts = [
    [loadUsage(), "The usage could not be loaded"],
    [loadProviders(), "The providers could not be loaded"],
    [requests.load(true), "The requests could not be loaded"],
  ];
  const results = await Promise.allSettled(parts.map(([promise]) => promise));
  const failed = results.findIndex((result) => result.status === "rejected");
  if (failed >= 0) fail(results[failed].reason, parts[failed][1]);
  status(failed >= 0 ? "Loaded, with an error." : `Loaded at ${new Date().toISOString().slice(11, 19)} UTC.`);
  setBusy(false);
}

async function changeView() {
  setBusy(true);
  try {
    await loadUsage();
  } catch (error) {
    fail(error, "The usage could not be loaded");
  } finally {
    setBusy(false);
  }
}

function init() {
  const input = byId("admin-key");
  input.value = storedAdminKey();
  const view = JSON.parse(sessionStorage.getItem(VIEW_STORAGE) ?? "{}");
  if (view.rangeId in RANGES) byId("range").value = view.rangeId;
  if (view.dimension in DIMENSION_NAMES) byId("dimension").value = view.dimension;
  byId("key-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    storeAdminKey(input.value.trim());
    await openBoard();
    if (!byId("board").hidden) byId("usage-heading").focus();
  });
  byId("refresh").addEventListener("click", openBoard);
  byId("forget").addEventListener("click", () => {
    storeAdminKey("");
    input.value = "";
    state.keysById = new Map();
    show(byId("board"), false);
    show(byId("signed-in"), false);
    show(byId("error"), false);
    status("The admin key was removed from this tab.");
    input.focus();
  });
  byId("range").addEventListener("change", changeView);
  byId("dimension").addEventListener("change", changeView);
  openBoard();
}

init();
