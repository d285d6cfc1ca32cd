// The before/after slider: the result is drawn over the input and clipped at the divider. The
// control is a native range input laid over the picture, so it can be dragged anywhere on the
// picture and moved with the arrow keys, Page Up/Down, Home and End.

/** Wires the range input `range` to the comparison box `box` (its --position custom property). */
export function setupCompare(box, range) {
  const update = () => {
    box.style.setProperty("--position", `${range.value}%`);
    range.setAttribute("aria-valuetext", `${range.value}% input, ${100 - Number(range.value)}% result`);
  };
  range.addEventListener("input", update);
  update();
}

/** Shows `beforeSrc` against `afterSrc`, the box shaped like the result once it has loaded. */
export function showComparison(box, before, after, beforeSrc, afterSrc, label) {
  before.src = beforeSrc;
  after.src = afterSrc;
  after.alt = `After: ${label}`;
  const shape = () => {
    if (after.naturalWidth && after.naturalHeight) {
      box.style.setProperty("--ratio", `${after.naturalWidth} / ${after.naturalHeight}`);
    }
  };
  if (after.complete) shape();
  after.addEventListener("load", shape, { once: true });
}
