// What the page shows while a request runs: the elapsed time, counted here.
//
// Hook for streaming progress: when the page sends `stream=true`, feed each server-sent event to
// the `report` function of the running progress (e.g. "partial image 1 of 2", or the partial image
// itself); everything else stays as it is. Until then only the elapsed time is shown.

import { byId, show } from "./dom.js";

const TICK_MS = 100;

/** Starts the progress display; answers {report(text), stop() -> elapsed ms}. */
export function startProgress() {
  const started = performance.now();
  const elapsed = byId("elapsed");
  const detail = byId("progress-detail");
  const tick = () => {
    elapsed.textContent = `${((performance.now() - started) / 1000).toFixed(1)} s`;
  };
  tick();
  detail.textContent = "";
  show(byId("progress"), true);
  const timer = setInterval(tick, TICK_MS);
  return {
    report(text) {
      detail.textContent = text;
    },
    stop() {
      clearInterval(timer);
      show(byId("progress"), false);
      return performance.now() - started;
    },
  };
}
