// The providers panel: each provider's recent error rate from the usage ledger, its credentials and
// models, and (when the gateway reports one) its circuit breaker's state.

import { byId, h, show } from "./dom.js";
import { formatAgo, formatCount, formatPercent } from "./format.js";

const DEGRADED = 0.1;
const FAILING = 0.5;

/** A provider's state in one word, from what the gateway reports (see the README's Dashboard section). */
export function providerState(provider) {
  if (!provider.configured) return "not configured";
  const breaker = provider.cooling?.state;
  if (breaker === "open") return "cooling";
  if (breaker === "half_open") return "trial";
  if (!provider.requests) return "no traffic";
  if (provider.error_rate >= FAILING) return "failing";
  if (provider.error_rate >= DEGRADED) return "degraded";
  return "healthy";
}

/** Fills the providers table from `GET /admin/providers`. */
export function renderProviders(answer) {
  const providers = answer.data;
  const minutes = Math.round(answer.window_seconds / 60);
  byId("providers-window").textContent = minutes % 60 === 0 ? `${minutes / 60} h` : `${minutes} min`;
  // The breaker's column only when the gateway reports breakers.
  const breakers = providers.some((provider) => "cooling" in provider);
  show(byId("providers-breaker-head"), breakers);
  byId("providers-body").replaceChildren(...providers.map((provider) => row(provider, breakers)));
}

function row(provider, breakers) {
  const state = providerState(provider);
  const rate = provider.error_rate;
  const lastError = provider.last_error_at === null
    ? "—"
    : [h("code", {}, provider.last_error_code ?? "error"), " ", h("span", { class: "hint" }, formatAgo(provider.last_error_at))];
  const models = provider.models.length
    ? h("details", {}, h("summary", {}, `${provider.models.length} model${provider.models.length === 1 ? "" : "s"}`), h("ul", { class: "plain" }, provider.models.map((id) => h("li", {}, h("code", {}, id)))))
    : "—";
  return h(
    "tr",
    { "data-provider": provider.provider },
    h("th", { scope: "row" }, provider.provider, provider.kind && provider.kind !== provider.provider ? h("span", { class: "hint block" }, `kind ${provider.kind}`) : null),
    h("td", { "data-label": "State" }, h("span", { class: `badge state-${state.replace(" ", "-")}` }, state)),
    h("td", { "data-label": "Requests" }, formatCount(provider.requests)),
    h("td", { "data-label": "Errors" }, formatCount(provider.errors)),
    h(
      "td",
      { class: "rate", "data-label": "Error rate" },
      rate === null ? "—" : [h("meter", { min: 0, max: 1, low: DEGRADED, high: FAILING, optimum: 0, value: rate, "aria-label": `Error rate of ${provider.provider}` }), " ", formatPercent(rate)],
    ),
    h("td", { "data-label": "Last error" }, lastError),
    breakers ? h("td", { "data-label": "Breaker" }, breakerText(provider.cooling)) : null,
    h("td", { "data-label": "Credentials" }, provider.key_set ? "key set" : "no key", provider.base_url ? h("span", { class: "hint block" }, provider.base_url) : null),
    h("td", { "data-label": "Models" }, models),
  );
}

function breakerText(cooling) {
  if (!cooling) return "—";
  const until = cooling.until ? ` until ${new Date(cooling.until * 1000).toISOString().slice(11, 19)} UTC` : "";
  return `${cooling.state ?? "unknown"}${until}`;
}
