// A stacked bar chart drawn as SVG, its legend, and the same numbers as a table (for screen readers,
// for reading exact values, and for copying). No library: the chart is rectangles and text.
//
// Colours come from CSS classes (series-0 ... series-6, series-other), so the page's style sheet keeps
// them and the Content-Security-Policy needs no inline style.

import { h } from "./dom.js";

const SVG = "http://www.w3.org/2000/svg";
const HEIGHT = 220;
const MARGIN = { top: 10, right: 20, bottom: 24 };
const LABEL_SPACE = 56; // the room one x-axis label needs, in pixels
const observers = new WeakMap(); // figure -> the ResizeObserver redrawing it

function svg(tag, attrs = {}, ...children) {
  const element = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attrs)) element.setAttribute(name, String(value));
  for (const child of children) element.append(child instanceof Node ? child : document.createTextNode(String(child)));
  return element;
}

/** A round step for about `ticks` gridlines up to `max` (1, 2 or 5 times a power of ten). */
export function niceStep(max, ticks = 4) {
  if (!(max > 0)) return 1;
  const raw = max / ticks;
  const power = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((factor) => factor * power).find((candidate) => candidate >= raw);
  return step;
}

/**
 * Draws into `figure` (which holds `.chart-canvas`, `.legend` and `.chart-table`): one bar per bucket,
 * stacked by series. `value(bucket, series)` gives each part; `format` writes a value; `whole` keeps the
 * gridlines on whole numbers (for counts).
 * `figure.dataset.total` records the sum drawn.
 */
export function renderChart(figure, { caption, buckets, series, value, format, empty, whole = false }) {
  const canvas = figure.querySelector(".chart-canvas");
  const stacks = buckets.map((bucket) => series.map((item) => value(bucket, item)));
  const sums = stacks.map((parts) => parts.reduce((a, b) => a + b, 0));
  const total = sums.reduce((a, b) => a + b, 0);
  figure.dataset.total = String(Number(total.toPrecision(12)));
  const draw = () => {
    const options = { caption, buckets, series, stacks, sums, total, format, empty, whole };
    canvas.replaceChildren(drawBars(canvas.clientWidth || 600, options));
  };
  draw();
  // Redraw at the new width when the layout changes (a window resized, a phone turned).
  observers.get(figure)?.disconnect();
  let width = canvas.clientWidth;
  const observer = new ResizeObserver(() => {
    if (canvas.clientWidth === width) return;
    width = canvas.clientWidth;
    draw();
  });
  observer.observe(canvas);
  observers.set(figure, observer);
  figure.querySelector(".legend").replaceChildren(
    ...series.map((item) =>
      h(
        "li",
        {},
        h("span", { class: `swatch series-${item.index}`, "aria-hidden": "true" }),
        h("span", { class: "legend-label" }, item.label),
        " ",
        h("span", { class: "legend-value" }, format(sumOver(buckets, (bucket) => value(bucket, item)))),
      ),
    ),
  );
  fillTable(figure.querySelector(".chart-table"), { buckets, series, stacks, sums, total, format });
}

function sumOver(items, pick) {
  return items.reduce((sum, item) => sum + pick(item), 0);
}

function drawBars(width, { caption, buckets, series, stacks, sums, total, format, empty, whole }) {
  const max = Math.max(0, ...sums);
  const step = whole ? Math.max(1, niceStep(max)) : niceStep(max);
  const top = Math.max(step, Math.ceil(max / step) * step);
  const ticks = [];
  for (let tick = 0; tick <= top + step / 2; tick += step) ticks.push(tick);
  const left = Math.max(...ticks.map((tick) => format(tick).length)) * 7 + 10;
  const plotWidth = Math.max(10, width - left - MARGIN.right);
  const plotHeight = HEIGHT - MARGIN.top - MARGIN.bottom;
  const y = (amount) => MARGIN.top + plotHeight - (amount / top) * plotHeight;
  const band = plotWidth / buckets.length;
  const barWidth = Math.max(1, Math.min(48, band * 0.7));

  const root = svg("svg", {
    viewBox: `0 0 ${width} ${HEIGHT}`,
    width,
    height: HEIGHT,
    role: "img",
    "aria-label": `${caption}: ${format(total)} in all; the numbers are in the table below.`,
  });
  const grid = svg("g", { class: "grid" });
  for (const tick of ticks) {
    grid.append(
      svg("line", { x1: left, x2: left + plotWidth, y1: y(tick), y2: y(tick) }),
      svg("text", { x: left - 6, y: y(tick) + 4, "text-anchor": "end" }, format(tick)),
    );
  }
  root.append(grid);

  const bars = svg("g", { class: "bars" });
  buckets.forEach((bucket, index) => {
    const x = left + index * band + (band - barWidth) / 2;
    let base = 0;
    series.forEach((item, part) => {
      const amount = stacks[index][part];
      if (!(amount > 0)) return;
      const rect = svg(
        "rect",
        {
          class: `series-${item.index}`,
          x,
          width: barWidth,
          y: y(base + amount),
          height: Math.max(0.5, y(base) - y(base + amount)),
          "data-bucket": bucket.key,
          "data-series": item.label,
          "data-value": Number(amount.toPrecision(12)),
        },
        svg("title", {}, `${bucket.long} · ${item.label}: ${format(amount)}`),
      );
      bars.append(rect);
      base += amount;
    });
  });
  root.append(bars);

  const axis = svg("g", { class: "axis" });
  const every = Math.max(1, Math.ceil(buckets.length / Math.max(1, Math.floor(plotWidth / LABEL_SPACE))));
  buckets.forEach((bucket, index) => {
    if ((buckets.length - 1 - index) % every !== 0) return; // the newest bucket always labelled
    axis.append(svg("text", { x: left + index * band + band / 2, y: HEIGHT - 6, "text-anchor": "middle" }, bucket.label));
  });
  axis.append(svg("line", { x1: left, x2: left + plotWidth, y1: y(0), y2: y(0) }));
  root.append(axis);
  if (total === 0) {
    root.append(svg("text", { class: "empty", x: left + plotWidth / 2, y: MARGIN.top + plotHeight / 2, "text-anchor": "middle" }, empty));
  }
  return root;
}

function fillTable(table, { buckets, series, stacks, sums, total, format }) {
  const head = h("tr", {}, h("th", { scope: "col" }, "Period"), series.map((item) => h("th", { scope: "col" }, item.label)), h("th", { scope: "col" }, "Total"));
  const rows = buckets
    .map((bucket, index) => ({ bucket, index }))
    .filter(({ index }) => sums[index] > 0)
    .map(({ bucket, index }) =>
      h(
        "tr",
        { "data-bucket": bucket.key },
        h("th", { scope: "row" }, bucket.long),
        stacks[index].map((amount) => h("td", {}, format(amount))),
        h("td", {}, format(sums[index])),
      ),
    );
  const foot = h(
    "tr",
    {},
    h("th", { scope: "row" }, "Total"),
    series.map((_, part) => h("td", {}, format(sumOver(stacks, (parts) => parts[part])))),
    h("td", {}, format(total)),
  );
  table.replaceChildren(h("thead", {}, head), h("tbody", {}, rows), h("tfoot", {}, foot));
}
