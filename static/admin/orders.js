// The orders panel: the newest stored orders (keyset pages, like the dead letters) and one
// order opened by its id. Order ids open whole orders (names, phones, addresses), so this
// list lives on the admin listener; the public page is a lookup by id.
//
// No filters beyond the id: each would need an index on the orders table (a cost on every
// stored order) for a question the operator answers with the order's id.
import { EMPTY, h, clear, isBlank, plain } from '../dom.js';
import { api, errorText, isUnauthorized } from './api.js';
import { PAGE_SIZE, announce, byId, field, int, isNum, plural, setArea, timeNode } from './ui.js';

const ID_RE = /^[A-Za-z0-9_-]{1,64}$/;

const ui = {
  open: byId('order-open'),
  uid: byId('o-uid'),
  openState: byId('order-open-state'),
  state: byId('orders-state'),
  body: byId('orders-body'),
  refresh: byId('orders-refresh'),
  newest: byId('orders-newest'),
  newer: byId('orders-newer'),
  older: byId('orders-older'),
  pageInfo: byId('orders-page-info'),
  order: byId('order'),
  heading: byId('order-heading'),
  orderUid: byId('order-uid'),
  close: byId('order-close'),
  fields: byId('order-fields'),
  json: byId('order-json'),
};

/** `before` of every page visited; the last one is the page shown (null: the newest). */
let cursors = [null];
let nextBefore = null;
let orders = [];
let seq = 0;
let shownUid = null;
let orderSeq = 0;

const money = (amount, currency) =>
  (isNum(amount) ? int.format(amount) : plain(amount)) + (isBlank(currency) ? '' : ' ' + String(currency));

function row(order) {
  const uid = String(order.order_uid);
  const show = h('button', {
    type: 'button',
    className: 'link-button mono',
    'data-testid': 'order-show',
    'aria-controls': 'order',
    'aria-label': 'Open order ' + uid,
    text: uid,
  });
  show.addEventListener('click', () => openOrder(uid, true));
  return h('tr', { 'data-uid': uid }, [
    h('td', { 'data-col': 'order_uid', className: 'mono' }, [show]),
    h('td', { 'data-col': 'date_created', className: 'nowrap' }, [timeNode(order.date_created)]),
    h('td', { 'data-col': 'customer_id', className: 'mono', text: plain(order.customer_id) }),
    h('td', { 'data-col': 'amount', className: 'num nowrap', text: money(order.amount, order.currency) }),
    h('td', { 'data-col': 'items', className: 'num', text: plain(order.items) }),
  ]);
}

function markShown() {
  for (const tr of ui.body.querySelectorAll('tr[data-uid]')) {
    const shown = tr.dataset.uid === shownUid;
    tr.classList.toggle('shown', shown);
    const button = tr.querySelector('button');
    if (shown) button.setAttribute('aria-current', 'true');
    else button.removeAttribute('aria-current');
  }
}

function updatePager() {
  const page = cursors.length;
  ui.newest.disabled = page <= 1;
  ui.newer.disabled = page <= 1;
  ui.older.disabled = nextBefore === null || isUnauthorized();
  ui.pageInfo.textContent = orders.length
    ? 'Page ' + page + ' · ' + plural(orders.length, 'order') + (nextBefore === null ? ' · no older orders' : '')
    : '';
}

function clearList() {
  orders = [];
  nextBefore = null;
  clear(ui.body);
  updatePager();
}

/** Loads the page at cursors' end. opts.announce, opts.focusFirst: as the dead letters. */
async function load(opts) {
  const options = opts || {};
  if (isUnauthorized()) return;
  const mine = ++seq;
  const before = cursors[cursors.length - 1];
  const q = new URLSearchParams({ limit: String(PAGE_SIZE) });
  if (before !== null) q.set('before', String(before));
  setArea(ui.state, 'loading', 'Loading orders…');
  ui.body.setAttribute('aria-busy', 'true');
  try {
    const { body } = await api('orders?' + q.toString());
    if (mine !== seq) return;
    orders = (Array.isArray(body.orders) ? body.orders : []).filter((o) => o && typeof o === 'object');
    nextBefore = isNum(body.next_before) ? body.next_before : null;
    clear(ui.body);
    for (const order of orders) ui.body.appendChild(row(order));
    markShown();
    updatePager();
    let text;
    if (orders.length === 0) {
      text = cursors.length > 1 ? 'No older orders.' : 'No orders stored yet.';
      setArea(ui.state, 'empty', text);
    } else {
      text = 'Showing ' + plural(orders.length, 'order') + (cursors.length > 1 ? ' (page ' + cursors.length + ')' : '') + '.';
      setArea(ui.state, 'ok', '');
    }
    if (options.announce) announce('ok', text);
    if (options.focusFirst) {
      const first = ui.body.querySelector('button[data-testid="order-show"]');
      if (first) first.focus();
    }
  } catch (err) {
    if (mine !== seq || err.kind === 'unauthorized') return;
    clearList();
    const text = errorText('orders', err);
    setArea(ui.state, 'error', text);
    if (options.announce) announce('error', text);
  } finally {
    if (mine === seq) ui.body.removeAttribute('aria-busy');
  }
}

// ---------------------------------------------------------------- one order

const FIELDS = [
  ['Order id', (o) => o.order_uid, 'order_uid'],
  ['Created', (o) => timeNode(o.date_created), 'date_created'],
  ['Customer', (o) => o.customer_id, 'customer_id'],
  ['Track number', (o) => o.track_number, 'track_number'],
  ['Name', (o) => o.delivery && o.delivery.name, 'delivery.name'],
  ['Phone', (o) => o.delivery && o.delivery.phone, 'delivery.phone'],
  ['E-mail', (o) => o.delivery && o.delivery.email, 'delivery.email'],
  ['Address', (o) => o.delivery && [o.delivery.zip, o.delivery.city, o.delivery.address]
    .filter((v) => !isBlank(v)).map(String).join(', '), 'delivery.address'],
  ['Amount', (o) => o.payment && money(o.payment.amount, o.payment.currency), 'payment.amount'],
  ['Items', (o) => (Array.isArray(o.items) ? String(o.items.length) : EMPTY), 'items'],
];

function renderOrder(order) {
  ui.orderUid.textContent = plain(order.order_uid);
  clear(ui.fields);
  for (const [label, value, key] of FIELDS) ui.fields.appendChild(field(label, value(order), key));
  // The order as the API returned it, as text: never parsed into markup.
  ui.json.textContent = JSON.stringify(order, null, 2);
  ui.order.hidden = false;
}

function hideOrder() {
  shownUid = null;
  ui.order.hidden = true;
  markShown();
}

async function openOrder(rawUid, focus) {
  const uid = String(rawUid).trim();
  ui.uid.value = uid;
  if (!ID_RE.test(uid)) {
    ui.uid.setAttribute('aria-invalid', 'true');
    setArea(ui.openState, 'error', uid === '' ? 'Enter an order id.'
      : 'Not an order id: use 1–64 letters, digits, “_” or “-”.');
    return;
  }
  ui.uid.removeAttribute('aria-invalid');
  if (isUnauthorized()) return;
  const mine = ++orderSeq;
  setArea(ui.openState, 'loading', 'Loading order ' + uid + '…');
  try {
    const { body } = await api('order/' + encodeURIComponent(uid));
    if (mine !== orderSeq) return;
    shownUid = String(body.order_uid);
    renderOrder(body);
    markShown();
    setArea(ui.openState, 'ok', '');
    announce('ok', 'Showing order ' + shownUid + '.');
    if (focus) ui.heading.focus();
  } catch (err) {
    if (mine !== orderSeq || err.kind === 'unauthorized') return;
    hideOrder();
    const text = err.status === 404 ? 'No order with id ' + uid + '.'
      : err.status === 400 ? 'Not an order id: ' + plain(err.body && err.body.detail)
        : errorText('the order', err);
    setArea(ui.openState, 'error', text);
    announce('error', text);
  }
}

ui.open.addEventListener('submit', (event) => {
  event.preventDefault();
  openOrder(ui.uid.value, true);
});
ui.close.addEventListener('click', () => {
  const uid = shownUid;
  hideOrder();
  const button = uid && [...ui.body.querySelectorAll('button[data-testid="order-show"]')]
    .find((b) => b.closest('tr').dataset.uid === uid);
  (button || ui.uid).focus();
});
ui.refresh.addEventListener('click', () => {
  cursors = [null];
  load({ announce: true });
});
ui.older.addEventListener('click', () => {
  if (nextBefore === null) return;
  cursors.push(nextBefore);
  load({ announce: true, focusFirst: true });
});
ui.newer.addEventListener('click', () => {
  if (cursors.length > 1) cursors.pop();
  load({ announce: true, focusFirst: true });
});
ui.newest.addEventListener('click', () => {
  cursors = [null];
  load({ announce: true, focusFirst: true });
});

export function start() {
  cursors = [null];
  load();
}

export function stop() {
  seq += 1;
  orderSeq += 1;
}

export function refused(message) {
  setArea(ui.state, 'unauthorized', message);
  setArea(ui.openState, 'idle', '');
  clearList();
  // An order is personal data: it does not stay on screen once the token is refused.
  hideOrder();
  clear(ui.fields);
  ui.json.textContent = '';
}
