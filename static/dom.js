// DOM helpers shared by the public page (app.js) and the operator's page (admin/*.js).
// A native ES module: no build step, no dependencies.
//
// Every value the pages show comes from untrusted producers. These helpers are the only way
// either page builds DOM from data, and they use only createElement / createElementNS /
// createTextNode / textContent / setAttribute: no API that parses HTML (innerHTML,
// outerHTML, insertAdjacentHTML, document.write, …) is used anywhere, so any markup inside
// the data is shown literally as text.

export const EMPTY = '—';
const SVG_NS = 'http://www.w3.org/2000/svg';

/**
 * Props of h() and s(): `text` is assigned through textContent, `className` as the class
 * attribute (works for HTML and SVG elements alike), everything else with setAttribute.
 * null and undefined values are skipped.
 */
function setProps(node, props) {
  if (!props) return;
  for (const [key, value] of Object.entries(props)) {
    if (value === undefined || value === null) continue;
    if (key === 'text') node.textContent = String(value);
    else if (key === 'className') node.setAttribute('class', String(value));
    else node.setAttribute(key, String(value));
  }
}

/** Appends children: strings as text nodes, nodes as they are; null/undefined/false skipped. */
function append(node, children) {
  for (const child of children || []) {
    if (child === null || child === undefined || child === false) continue;
    node.appendChild(typeof child === 'string' ? document.createTextNode(child) : child);
  }
}

/** An HTML element; `text` is always assigned through textContent. */
export function h(tag, props, children) {
  const node = document.createElement(tag);
  setProps(node, props);
  append(node, children);
  return node;
}

/** An SVG element; `text` through textContent, everything else as attributes. */
export function s(tag, props, children) {
  const node = document.createElementNS(SVG_NS, tag);
  setProps(node, props);
  append(node, children);
  return node;
}

export function clear(node) {
  while (node.firstChild) node.removeChild(node.firstChild);
}

export function isBlank(value) {
  return value === undefined || value === null || value === '';
}

/** A value as text: blank → "—", objects as JSON. */
export function plain(value) {
  if (isBlank(value)) return EMPTY;
  if (typeof value === 'object') return JSON.stringify(value);
  return String(value);
}

export function pad(n) {
  return String(n).padStart(2, '0');
}

/** "2021-11-26 06:22:07 UTC" */
export function utcText(date) {
  return (
    date.getUTCFullYear() + '-' + pad(date.getUTCMonth() + 1) + '-' + pad(date.getUTCDate()) +
    ' ' + pad(date.getUTCHours()) + ':' + pad(date.getUTCMinutes()) + ':' + pad(date.getUTCSeconds()) +
    ' UTC'
  );
}

/** The visitor's local time, e.g. "Nov 26, 2021, 7:22:07 AM". */
export function localText(date) {
  return date.toLocaleString(undefined, { dateStyle: 'medium', timeStyle: 'medium' });
}
