// Small DOM helpers. Text always goes in as text nodes, never as HTML: model descriptions, error
// messages and prompts come from outside the page.

/** The element with this id. */
export const byId = (id) => document.getElementById(id);

/**
 * A new element: `h("a", {href: "/x", class: "link"}, "text", child)`. Attributes whose value is
 * null, undefined or false are left out; `true` sets an empty attribute.
 */
export function h(tag, attrs = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    element.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    element.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return element;
}

/** Shows or hides an element (the `hidden` attribute). */
export function show(element, visible) {
  element.hidden = !visible;
}

/** A number without a trailing ".0" (the API sends ranges as floats). */
export function formatNumber(value) {
  return Number.isInteger(value) ? String(value) : String(Number(value.toPrecision(12)));
}
