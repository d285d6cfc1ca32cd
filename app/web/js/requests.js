// The recent requests panel: the usage ledger's newest rows, a page at a time ("Show older").

import { callApi } from "./api.js";
import { byId, h, show } from "./dom.js";
import { formatDuration, formatTime, formatUsd } from "./format.js";

const PAGE = 25;

/**
 * `nameOfKey(id)` labels a key id; `onError(error)` shows a failure to load an older page. Answers
 * {load(fromStart)}: shows the newest page, or appends the next older one.
 */
export function setupRequests({ nameOfKey, onError }) {
  let lastId = null;

  async function load(fromStart = true) {
    const query = new URLSearchParams({ limit: String(PAGE) });
    if (!fromStart && lastId !== null) query.set("before", String(lastId));
    const { data } = await callApi(`admin/requests?${query}`, { admin: true });
    const rows = data.data.map(row);
    if (fromStart) byId("requests-body").replaceChildren(...rows);
    else byId("requests-body").append(...rows);
    lastId = data.last_id ?? lastId;
    show(byId("requests-more"), data.has_more);
    show(byId("requests-empty"), byId("requests-body").childElementCount === 0);
  }

  function row(request) {
    const failed = request.status >= 400;
    const tried = [...new Set(request.deployments.map((deployment) => deployment.split(":")[0]))];
    const provider = request.provider ?? (tried.length ? `${tried.join(", ")} (failed)` : "—");
    const durations = [`queue ${formatDuration(request.queue_ms)}`, `upstream ${formatDuration(request.upstream_ms)}`];
    return h(
      "tr",
      { "data-request-id": request.request_id, class: failed ? "failed" : null },
      h("td", { "data-label": "Time" }, h("time", { datetime: new Date(request.created * 1000).toISOString() }, formatTime(request.created))),
      h("td", { "data-label": "Request" }, h("code", { class: "request-id" }, request.request_id), request.replay ? h("span", { class: "hint block" }, "replay") : null),
      h("td", { "data-label": "Key" }, request.key_id === null ? "—" : request.key_name ?? nameOfKey(request.key_id)),
      h("td", { "data-label": "Model" }, request.model ?? "—"),
      h("td", { "data-label": "Provider" }, provider),
      h("td", { "data-label": "Status" }, h("span", { class: `badge ${failed ? "badge-error" : "badge-ok"}` }, String(request.status)), request.error_code ? h("span", { class: "hint block" }, request.error_code) : null),
      h("td", { class: "number", "data-label": "Images" }, String(request.images)),
      h("td", { class: "number", "data-label": "Cost" }, formatUsd(request.cost_usd)),
      h("td", { class: "number", "data-label": "Duration", title: durations.join(" · ") }, formatDuration(request.total_ms)),
    );
  }

  byId("requests-more").addEventListener("click", async () => {
    byId("requests-more").disabled = true;
    try {
      await load(false);
    } catch (error) {
      onError(error);
    } finally {
      byId("requests-more").disabled = false;
    }
  });
  return { load };
}
