// What the operator page's panels share besides dom.js: number and time formats, the page
// size, the status line and the state line of each data area.
import { EMPTY, h, plain, utcText, localText } from '../dom.js';

export const byId = (id) => document.getElementById(id);
export const isNum = (v) => typeof v === 'number' && Number.isFinite(v);
export const int = new Intl.NumberFormat('en', { maximumFractionDigits: 0 });
export const dec1 = new Intl.NumberFormat('en', { maximumFractionDigits: 1 });

/** Page size of the lists: ?limit=N in the page's address (1–1000), else 50. */
export const PAGE_SIZE = (() => {
  const raw = new URLSearchParams(window.location.search).get('limit');
  const n = Number(raw);
  return raw !== null && Number.isInteger(n) && n >= 1 && n <= 1000 ? n : 50;
})();

/** A <time> with the UTC text, the local time as its title. */
export function timeNode(raw) {
  const date = new Date(raw);
  if (typeof raw !== 'string' || Number.isNaN(date.getTime())) return document.createTextNode(plain(raw));
  return h('time', { datetime: date.toISOString(), title: 'local: ' + localText(date), text: utcText(date) });
}

export function bytesText(n) {
  if (!isNum(n)) return EMPTY;
  if (n < 1024) return int.format(n) + ' B';
  if (n < 1024 * 1024) return dec1.format(n / 1024) + ' KiB';
  return dec1.format(n / (1024 * 1024)) + ' MiB';
}

export function plural(n, one, many) {
  return int.format(n) + ' ' + (n === 1 ? one : many || one + 's');
}

export function cut(text, max) {
  const str = String(text);
  return str.length > max ? str.slice(0, max - 1) + '…' : str;
}

/** One field of a <dl class="fields">: text, or a node as it is. */
export function field(label, value, key) {
  const dd = h('dd', { 'data-field': key });
  if (value instanceof Node) dd.appendChild(value);
  else dd.textContent = plain(value);
  return h('div', { className: 'field' }, [h('dt', { text: label }), dd]);
}

const statusLine = byId('status');

/** Status line for screen readers and everyone: text only. */
export function announce(state, text) {
  statusLine.dataset.state = state;
  statusLine.textContent = text;
}

/** The state line of one data area (health, live, orders, dead letters). */
export function setArea(node, state, text) {
  node.dataset.state = state;
  node.textContent = text || '';
}
