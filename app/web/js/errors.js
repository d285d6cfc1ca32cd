// An error as the pages show it: a title, the API's own message, and its facts (status, type, code,
// param, request id) in a box that screen readers announce (role="alert" in the page).

import { h, show } from "./dom.js";

/** Fills `box` with `error` (an ApiError or any Error) under `title`, and shows it. */
export function showErrorIn(box, error, title) {
  const facts = [];
  if (error.status) facts.push(`HTTP ${error.status}`);
  for (const field of ["type", "code", "param"]) if (error[field]) facts.push(`${field}: ${error[field]}`);
  if (error.requestId) facts.push(`request ${error.requestId}`);
  box.replaceChildren(
    h("p", { class: "error-title" }, title),
    h("p", { class: "error-message" }, error.message),
    facts.length ? h("p", { class: "error-facts" }, facts.join(" · ")) : null,
  );
  show(box, true);
}
