// Orders web page. A native ES module: no build step, no dependencies.
//
// Every order field comes from untrusted producers. The DOM is built only with the
// helpers of dom.js (createElement / textContent / setAttribute, never innerHTML or
// friends), so any markup inside the data is shown literally as text.
//
// The page is a lookup by id and a deep link (/?id=<uid>, /#<uid>). The recent-orders list
// is shown only where the service serves it publicly (PUBLIC_ORDER_LIST, a demo's choice:
// the page says so in <body data-order-list="on">); otherwise it is the operator's.
import { EMPTY, h, clear, isBlank, plain, utcText, localText } from './dom.js';

const ID_RE = /^[A-Za-z0-9_-]{1,64}$/;
const RECENT_LIMIT = 20;
const TIMEOUT_MS = 15000;

const byId = (id) => document.getElementById(id);
const ui = {
  form: byId('lookup-form'),
  input: byId('order-id'),
  button: byId('lookup'),
  status: byId('status'),
  order: byId('order'),
  heading: byId('order-heading'),
  titleUid: byId('order-title-uid'),
  cache: byId('cache-state'),
  link: byId('order-link'),
  summary: byId('summary'),
  delivery: byId('delivery'),
  payment: byId('payment'),
  itemsBody: byId('items-body'),
  itemsCount: byId('items-count'),
  raw: byId('raw-json'),
  layout: byId('layout'),
  recent: byId('recent'),
  recentList: byId('recent-list'),
  recentStatus: byId('recent-status'),
  recentRefresh: byId('recent-refresh'),
};

// ---------------------------------------------------------------- helpers

function money(value, currency) {
  if (isBlank(value)) return EMPTY;
  return isBlank(currency) ? String(value) : String(value) + ' ' + String(currency);
}

/** A <time> element with a UTC text and the visitor's local time underneath. */
function dateNode(date, raw) {
  return h('span', { className: 'date' }, [
    h('time', { datetime: date.toISOString(), title: String(raw), text: utcText(date) }),
    h('span', { className: 'sub', text: 'local: ' + localText(date) }),
  ]);
}

function unixDate(value) {
  if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0) return plain(value);
  const date = new Date(value * 1000);
  return Number.isNaN(date.getTime()) ? plain(value) : dateNode(date, value);
}

function isoDate(value) {
  if (typeof value !== 'string' || value === '') return plain(value);
  const date = new Date(value);
  return Number.isNaN(date.getTime()) ? value : dateNode(date, value);
}

function get(obj, path) {
  let cur = obj;
  for (const key of path.split('.')) {
    if (cur === null || typeof cur !== 'object') return undefined;
    cur = cur[key];
  }
  return cur;
}

// ---------------------------------------------------------------- rendering

const currencyOf = (order) => get(order, 'payment.currency');

const SUMMARY = [
  ['order_uid', 'Order uid'],
  ['track_number', 'Track number'],
  ['entry', 'Entry'],
  ['customer_id', 'Customer'],
  ['locale', 'Locale'],
  ['delivery_service', 'Delivery service'],
  ['shardkey', 'Shard key'],
  ['sm_id', 'sm_id'],
  ['oof_shard', 'oof_shard'],
  ['date_created', 'Created', (v) => isoDate(v)],
  ['internal_signature', 'Internal signature'],
];

const DELIVERY = [
  ['delivery.name', 'Name'],
  ['delivery.phone', 'Phone'],
  ['delivery.email', 'Email'],
  ['delivery.address', 'Address'],
  ['delivery.city', 'City'],
  ['delivery.region', 'Region'],
  ['delivery.zip', 'Zip'],
];

const PAYMENT = [
  ['payment.transaction', 'Transaction'],
  ['payment.request_id', 'Request id'],
  ['payment.provider', 'Provider'],
  ['payment.bank', 'Bank'],
  ['payment.currency', 'Currency'],
  ['payment.amount', 'Amount', (v, o) => money(v, currencyOf(o))],
  ['payment.delivery_cost', 'Delivery cost', (v, o) => money(v, currencyOf(o))],
  ['payment.goods_total', 'Goods total', (v, o) => money(v, currencyOf(o))],
  ['payment.custom_fee', 'Custom fee', (v, o) => money(v, currencyOf(o))],
  ['payment.payment_dt', 'Payment time', (v) => unixDate(v)],
];

function fillFields(dl, spec, order) {
  clear(dl);
  for (const [path, label, render] of spec) {
    const value = get(order, path);
    const shown = render ? render(value, order) : plain(value);
    const dd = h('dd', { 'data-field': path });
    if (typeof shown === 'string') dd.textContent = shown;
    else dd.appendChild(shown);
    if (isBlank(value)) dd.classList.add('empty');
    dl.appendChild(h('div', { className: 'field' }, [h('dt', { text: label }), dd]));
  }
}

const ITEM_COLUMNS = [
  ['name', 'text'],
  ['brand', 'text'],
  ['size'],
  ['price', 'num', (v, o) => money(v, currencyOf(o))],
  ['sale', 'num', (v) => (isBlank(v) ? EMPTY : String(v) + '%')],
  ['total_price', 'num', (v, o) => money(v, currencyOf(o))],
  ['chrt_id', 'num'],
  ['nm_id', 'num'],
  ['rid', 'mono'],
  ['track_number', 'mono'],
  ['status', 'num'],
];

function fillItems(order) {
  clear(ui.itemsBody);
  const items = Array.isArray(order.items) ? order.items : [];
  ui.itemsCount.textContent = '(' + items.length + ')';
  items.forEach((item, index) => {
    const row = h('tr', { 'data-item': index }, [h('td', { className: 'num muted', text: index + 1 })]);
    for (const [key, cls, render] of ITEM_COLUMNS) {
      const value = item ? item[key] : undefined;
      const td = h('td', { className: cls, 'data-field': 'items.' + index + '.' + key });
      td.textContent = render ? render(value, order) : plain(value);
      row.appendChild(td);
    }
    ui.itemsBody.appendChild(row);
  });
  if (items.length === 0) {
    ui.itemsBody.appendChild(h('tr', null, [h('td', { colspan: 12, className: 'muted', text: 'No items.' })]));
  }
}

function permalink(id) {
  const url = new URL(window.location.href);
  url.search = '';
  url.hash = '';
  url.searchParams.set('id', id);
  return url;
}

function renderOrder(order, cacheState) {
  const uid = plain(order.order_uid);
  ui.titleUid.textContent = uid;
  fillFields(ui.summary, SUMMARY, order);
  fillFields(ui.delivery, DELIVERY, order);
  fillFields(ui.payment, PAYMENT, order);
  fillItems(order);
  ui.raw.textContent = JSON.stringify(order, null, 2);
  ui.link.setAttribute('href', permalink(String(order.order_uid)).href);
  if (cacheState) {
    ui.cache.textContent = 'cache: ' + cacheState;
    ui.cache.hidden = false;
  } else {
    ui.cache.hidden = true;
  }
  ui.order.hidden = false;
  document.title = 'Order ' + uid + ' · Orders';
}

function hideOrder() {
  ui.order.hidden = true;
  document.title = 'Orders';
}

// ---------------------------------------------------------------- status

/** Status text is assembled from text nodes; `id` (user input) is wrapped in <code>. */
function setStatus(state, parts) {
  clear(ui.status);
  ui.status.dataset.state = state;
  for (const part of parts || []) {
    if (typeof part === 'string') ui.status.appendChild(document.createTextNode(part));
    else ui.status.appendChild(h('code', { text: part.code }));
  }
  ui.order.setAttribute('aria-busy', state === 'loading' ? 'true' : 'false');
}

function showInvalid(id, detail) {
  hideOrder();
  ui.input.setAttribute('aria-invalid', 'true');
  const parts = id === ''
    ? ['Please enter an order id.']
    : ['Invalid order id ', { code: id }, ': use 1–64 letters, digits, “_” or “-”.'];
  if (detail) parts.push(' (' + detail + ')');
  setStatus('invalid', parts);
}

// ---------------------------------------------------------------- URL

function idFromUrl() {
  const params = new URLSearchParams(window.location.search);
  const fromQuery = params.get('id');
  if (fromQuery !== null) return fromQuery;
  if (window.location.hash.length > 1) {
    try {
      return decodeURIComponent(window.location.hash.slice(1));
    } catch (_) {
      return window.location.hash.slice(1);
    }
  }
  return null;
}

function updateUrl(id, push) {
  const url = permalink(id);
  if (url.href === window.location.href) return;
  if (push) window.history.pushState({ id }, '', url.href);
  else window.history.replaceState({ id }, '', url.href);
}

// ---------------------------------------------------------------- lookup

let seq = 0;
let inflight = null;
let currentUid = null;

async function readJson(res) {
  try {
    return await res.json();
  } catch (_) {
    return null;
  }
}

/**
 * Look an order up and show it.
 * opts.push: add a history entry (false = replace the current one, null = leave the URL).
 * opts.focus: move focus to the order heading once it is shown.
 */
async function lookup(rawId, opts) {
  const options = Object.assign({ push: true, focus: false }, opts);
  const id = String(rawId).trim();
  ui.input.value = id;

  if (!ID_RE.test(id)) {
    if (inflight) inflight.abort();
    seq += 1;
    showInvalid(id);
    return;
  }
  ui.input.removeAttribute('aria-invalid');

  const mine = ++seq;
  if (inflight) inflight.abort();
  const controller = new AbortController();
  inflight = controller;
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    controller.abort();
  }, TIMEOUT_MS);

  if (options.push !== null) updateUrl(id, options.push);
  setStatus('loading', ['Loading order ', { code: id }, '…']);

  let res;
  let body;
  try {
    res = await fetch('order/' + encodeURIComponent(id), {
      headers: { Accept: 'application/json' },
      cache: 'no-store',
      signal: controller.signal,
    });
    body = await readJson(res);
  } catch (_) {
    if (mine !== seq) return; // superseded by a newer lookup
    hideOrder();
    setStatus('network-error', timedOut
      ? ['Network error: the server did not answer in time. Check your connection and try again.']
      : ['Network error: could not reach the server. Check your connection and try again.']);
    return;
  } finally {
    clearTimeout(timer);
    if (inflight === controller) inflight = null;
  }
  if (mine !== seq) return;

  if (res.ok && body && typeof body === 'object' && !Array.isArray(body)) {
    currentUid = String(body.order_uid);
    renderOrder(body, res.headers.get('X-Cache'));
    setStatus('ok', ['Showing order ', { code: currentUid }, '.']);
    markCurrentRecent();
    if (options.focus) ui.heading.focus();
    return;
  }

  hideOrder();
  currentUid = null;
  markCurrentRecent();
  const detail = body && typeof body.detail === 'string' && body.detail ? body.detail : '';
  if (res.status === 404) {
    setStatus('not-found', ['Order not found: no order with id ', { code: id }, ' exists.']);
  } else if (res.status === 400) {
    showInvalid(id, detail);
  } else if (res.status >= 500) {
    setStatus('network-error', [
      'Network error: the server failed to answer (HTTP ' + res.status + '). Please try again in a moment.',
    ]);
  } else if (res.ok) {
    setStatus('network-error', ['Network error: the server sent an unreadable response.']);
  } else {
    setStatus('error', ['Unexpected response from the server (HTTP ' + res.status + ').' +
      (detail ? ' ' + detail : '')]);
  }
}

// ---------------------------------------------------------------- recent orders

function markCurrentRecent() {
  for (const btn of ui.recentList.querySelectorAll('button[data-uid]')) {
    if (btn.dataset.uid === currentUid) btn.setAttribute('aria-current', 'true');
    else btn.removeAttribute('aria-current');
  }
}

function shortDate(value) {
  const date = new Date(value);
  return Number.isNaN(date.getTime()) ? plain(value) : utcText(date);
}

function recentEntry(entry) {
  const uid = String(entry.order_uid);
  const items = typeof entry.items === 'number' ? entry.items : 0;
  const meta = [
    shortDate(entry.date_created),
    plain(entry.customer_id),
    money(entry.amount, entry.currency),
    items + (items === 1 ? ' item' : ' items'),
  ].join(' · ');
  const button = h('button', {
    type: 'button',
    className: 'recent-item',
    'data-uid': uid,
    'data-testid': 'recent-item',
  }, [
    h('span', { className: 'recent-uid', text: uid }),
    h('span', { className: 'recent-meta', text: meta }),
  ]);
  button.addEventListener('click', () => lookup(uid, { push: true, focus: true }));
  return h('li', null, [button]);
}

let recentSeq = 0;

/** The recent-orders column, beside the order on wide screens. */
function showRecent(on) {
  ui.recent.hidden = !on;
  ui.layout.classList.toggle('with-recent', on);
}

async function loadRecent() {
  const mine = ++recentSeq;
  ui.recentStatus.textContent = 'Loading…';
  ui.recentList.setAttribute('aria-busy', 'true');
  try {
    const res = await fetch('orders?limit=' + RECENT_LIMIT, {
      headers: { Accept: 'application/json' },
      cache: 'no-store',
    });
    const body = await readJson(res);
    if (mine !== recentSeq) return;
    if (res.status === 404) {
      // The service no longer lists orders publicly (restarted without PUBLIC_ORDER_LIST).
      showRecent(false);
      return;
    }
    if (!res.ok || !body || !Array.isArray(body.orders)) {
      throw new Error('HTTP ' + res.status);
    }
    clear(ui.recentList);
    for (const entry of body.orders) {
      if (entry && typeof entry === 'object') ui.recentList.appendChild(recentEntry(entry));
    }
    ui.recentStatus.textContent = body.orders.length === 0 ? 'No orders yet.' : '';
    markCurrentRecent();
  } catch (err) {
    if (mine !== recentSeq) return;
    ui.recentStatus.textContent = 'Could not load recent orders (' +
      (err && err.message && err.message.startsWith('HTTP') ? err.message : 'network error') + ').';
  } finally {
    if (mine === recentSeq) ui.recentList.removeAttribute('aria-busy');
  }
}

// ---------------------------------------------------------------- wiring

function routeFromUrl(push) {
  const id = idFromUrl();
  if (id === null || id.trim() === '') {
    if (inflight) inflight.abort();
    seq += 1;
    currentUid = null;
    hideOrder();
    setStatus('idle', []);
    ui.input.value = '';
    markCurrentRecent();
    return;
  }
  lookup(id, { push });
}

ui.form.addEventListener('submit', (event) => {
  event.preventDefault();
  lookup(ui.input.value, { push: true });
});

ui.input.addEventListener('input', () => {
  if (ui.input.getAttribute('aria-invalid') === 'true' && ID_RE.test(ui.input.value.trim())) {
    ui.input.removeAttribute('aria-invalid');
  }
});

ui.recentRefresh.addEventListener('click', loadRecent);

// Back/forward and edited #fragments: show whatever the URL names (without a new entry).
// A fragment change fires both events; leave it to hashchange so it is handled once.
window.addEventListener('popstate', () => {
  if (window.location.hash.length <= 1) routeFromUrl(null);
});
window.addEventListener('hashchange', () => {
  if (window.location.hash.length > 1) routeFromUrl(false);
});

// Deep link: /?id=<uid> or /#<uid>; the URL is normalised to ?id=<uid>.
routeFromUrl(false);
if (document.body.dataset.orderList === 'on') {
  showRecent(true);
  loadRecent();
}
