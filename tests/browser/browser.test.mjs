// Browser test of the orders web page (static/), run in a real headless Chromium.
//
//   cd tests/browser && npm ci && BASE_URL=http://127.0.0.1:8081 npm test
//
// Assumes the service is running at BASE_URL and that tests/fixtures/model.json and
// tests/fixtures/xss-order.json were produced to Kafka beforehand; it waits up to 30 s for
// both to become readable through GET /order/{uid}. BASE_URL is a service as it runs by
// default: no public order list. LIST_URL, if set, is one on the same database with
// PUBLIC_ORDER_LIST=true (a demo): the recent-orders list is tested there.
//
// Env: BASE_URL (default http://127.0.0.1:8081), LIST_URL (the tests of the public list are
//      skipped without it), MODEL_JSON / XSS_JSON (fixture paths), and those of
//      support.mjs: CHROMIUM_PATH (default /usr/bin/chromium), READY_TIMEOUT_MS (default
//      30000).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import path from 'node:path';
import {
  ALLOW_400, ALLOW_404, ALLOW_5XX, ALLOW_ABORT, ARTIFACTS, HERE, TEST_TIMEOUT, assertNothingInjected,
  envUrl, fetchJson, openRecordedPage, pageFiles, pollUntil, trapNativeDialogs, useBrowser,
} from './support.mjs';

const BASE_URL = envUrl('BASE_URL', 'http://127.0.0.1:8081');
const LIST_URL = envUrl('LIST_URL');
const skipList = LIST_URL ? false : 'LIST_URL is not set (scripts/browser-test sets it)';
const MODEL_PATH = process.env.MODEL_JSON || path.join(HERE, '..', 'fixtures', 'model.json');
const XSS_PATH = process.env.XSS_JSON || path.join(HERE, '..', 'fixtures', 'xss-order.json');

const model = JSON.parse(await fs.readFile(MODEL_PATH, 'utf8'));
const xss = JSON.parse(await fs.readFile(XSS_PATH, 'utf8'));
const MODEL_UID = model.order_uid;
const XSS_UID = xss.order_uid;
const EMPTY = '—';
const ID_RE = /^[A-Za-z0-9_-]{1,64}$/;

/** The page's UTC rendering of a date: "2021-11-26 06:22:07 UTC". */
function utc(date) {
  return date.toISOString().replace('T', ' ').replace(/\.\d{3}Z$/, ' UTC');
}
const shown = (v) => (v === '' || v === null || v === undefined ? EMPTY : String(v));
const money = (v, order) => `${v} ${order.payment.currency}`;

/** data-field → exact text the page must show for it (dates: text it must contain). */
function expectedFields(order) {
  const exact = {};
  const contains = {};
  for (const k of ['order_uid', 'track_number', 'entry', 'customer_id', 'locale', 'delivery_service',
    'shardkey', 'sm_id', 'oof_shard', 'internal_signature']) exact[k] = shown(order[k]);
  contains.date_created = utc(new Date(order.date_created));
  for (const k of ['name', 'phone', 'email', 'address', 'city', 'region', 'zip']) {
    exact[`delivery.${k}`] = shown(order.delivery[k]);
  }
  for (const k of ['transaction', 'request_id', 'provider', 'bank', 'currency']) {
    exact[`payment.${k}`] = shown(order.payment[k]);
  }
  for (const k of ['amount', 'delivery_cost', 'goods_total', 'custom_fee']) {
    exact[`payment.${k}`] = money(order.payment[k], order);
  }
  contains['payment.payment_dt'] = utc(new Date(order.payment.payment_dt * 1000));
  order.items.forEach((item, i) => {
    for (const k of ['name', 'brand', 'size', 'chrt_id', 'nm_id', 'rid', 'track_number', 'status']) {
      exact[`items.${i}.${k}`] = shown(item[k]);
    }
    exact[`items.${i}.price`] = money(item.price, order);
    exact[`items.${i}.total_price`] = money(item.total_price, order);
    exact[`items.${i}.sale`] = `${item.sale}%`;
  });
  return { exact, contains };
}

// ------------------------------------------------------------------ service readiness

const getJson = (urlPath, base = BASE_URL) => fetchJson(base + urlPath, { headers: { Accept: 'application/json' } });

async function waitForOrders(uids, base) {
  const pending = new Set(uids);
  await pollUntil(`orders not available at ${base}`, async () => {
    let last = '';
    for (const uid of [...pending]) {
      try {
        const { status } = await getJson(`/order/${encodeURIComponent(uid)}`, base);
        if (status === 200) pending.delete(uid);
        else last = `HTTP ${status} for ${uid}`;
      } catch (err) {
        last = `${err.cause?.code || err.message} for ${uid}`;
      }
    }
    return pending.size === 0 || `${[...pending].join(', ')} pending, ${last}`;
  });
}

// ------------------------------------------------------------------ browser plumbing

const browser = useBrowser({
  prepare: async () => {
    await waitForOrders([MODEL_UID, XSS_UID], BASE_URL);
    if (LIST_URL) await waitForOrders([MODEL_UID, XSS_UID], LIST_URL);
  },
});

/**
 * A fresh context + page (support.mjs: console errors, page errors, CSP violations and
 * native dialogs recorded, `rec.assertClean()`) that also records requests to /order/ and
 * to /orders. `baseURL`: BASE_URL unless given (LIST_URL for the public list).
 */
async function openPage(t, { bypassCSP = false, viewport = { width: 1280, height: 900 }, allowConsole = [],
  baseURL = BASE_URL } = {}) {
  const { page, rec } = await openRecordedPage(browser(), t, { baseURL, bypassCSP, viewport, allowConsole });
  rec.orderRequests = [];
  rec.listRequests = [];
  page.on('request', (req) => {
    const { pathname } = new URL(req.url());
    if (pathname.startsWith('/order/')) rec.orderRequests.push(req.url());
    if (pathname === '/orders') rec.listRequests.push(req.url());
  });
  return { page, rec };
}

/** Wait until #status is in `state` (and, if given, contains `text`); returns its text. */
async function waitState(page, state, text) {
  await page.locator(`#status[data-state="${state}"]`, text ? { hasText: text } : {}).waitFor();
  return (await page.locator('#status').textContent()).trim();
}

async function fieldText(page, field) {
  return page.locator(`[data-field="${field}"]`).textContent();
}

async function assertOrderShown(page, order) {
  await assert.doesNotReject(page.locator('#order').waitFor({ state: 'visible' }));
  const { exact, contains } = expectedFields(order);
  const actual = await page.$$eval('[data-field]', (els) => {
    const out = {};
    for (const el of els) out[el.getAttribute('data-field')] = el.textContent;
    return out;
  });
  for (const [field, want] of Object.entries(exact)) {
    assert.equal(actual[field], want, `field ${field}`);
  }
  for (const [field, want] of Object.entries(contains)) {
    assert.ok(actual[field]?.includes(want), `field ${field}: ${JSON.stringify(actual[field])} should contain ${want}`);
  }
  assert.equal(await page.locator('#items-body tr[data-item]').count(), order.items.length, 'item rows');
  assert.equal((await page.locator('#order-title-uid').textContent()), order.order_uid);
  // Raw JSON view: exactly what the API returned.
  const raw = await page.locator('#raw-json').textContent();
  const base = new URL(page.url()).origin;
  const api = await getJson(`/order/${encodeURIComponent(order.order_uid)}`, base);
  assert.deepEqual(JSON.parse(raw), api.body, 'raw JSON equals the API response');
  assert.equal(raw, JSON.stringify(api.body, null, 2), 'raw JSON is pretty-printed');
  // The shareable link and the address bar both point at this order.
  const link = new URL(await page.locator('#order-link').getAttribute('href'), base);
  assert.equal(link.searchParams.get('id'), order.order_uid, 'link to this order');
  assert.equal(link.origin, base);
  assert.equal(await page.locator('#order-link').isVisible(), true);
  assert.equal(new URL(page.url()).searchParams.get('id'), order.order_uid, 'address bar updated');
}

// ------------------------------------------------------------------ tests

test('fixture xss-order.json is a valid order', () => {
  assert.deepEqual(Object.keys(xss).sort(), Object.keys(model).sort());
  assert.deepEqual(Object.keys(xss.delivery).sort(), Object.keys(model.delivery).sort());
  assert.deepEqual(Object.keys(xss.payment).sort(), Object.keys(model.payment).sort());
  for (const item of xss.items) assert.deepEqual(Object.keys(item).sort(), Object.keys(model.items[0]).sort());
  assert.match(xss.order_uid, ID_RE);
  assert.match(xss.delivery.phone, /^\+?[0-9]{7,15}$/);
  assert.match(xss.delivery.email, /^[^@\s<>]+@[^@\s<>]+\.[A-Za-z]{2,}$/);
  assert.match(xss.payment.currency, /^[A-Z]{3}$/);
  const goods = xss.items.reduce((s, i) => s + i.total_price, 0);
  assert.equal(xss.payment.goods_total, goods);
  assert.equal(xss.payment.amount, goods + xss.payment.delivery_cost + xss.payment.custom_fee);
  const strings = [];
  JSON.stringify(xss, (_k, v) => (typeof v === 'string' && strings.push(v), v));
  for (const s of strings) assert.ok(s.length <= 255, `string too long: ${s}`);
});

test('lookup by typing the id and clicking "Show order"', { timeout: TEST_TIMEOUT }, async (t) => {
  const { page, rec } = await openPage(t);
  await page.goto('/');
  assert.deepEqual(await pageFiles(page), {
    scripts: ['app.js (module)'], fetched: ['/app.js', '/dom.js'], styles: ['/base.css', '/style.css'],
  }, 'one ES module, importing the shared DOM helpers');
  assert.equal(await page.locator('#order').isVisible(), false, 'no order before a lookup');
  assert.equal(await page.locator('label[for="order-id"]').count(), 1, 'input is labelled');
  assert.equal(await page.locator('#status').getAttribute('aria-live'), 'polite');
  await page.locator('#order-id').fill(MODEL_UID);
  await page.locator('#lookup').click();
  const status = await waitState(page, 'ok');
  assert.ok(status.includes(MODEL_UID), status);
  await assertOrderShown(page, model);
  // spot checks in human terms
  assert.equal(await fieldText(page, 'delivery.name'), 'Test Testov');
  assert.equal(await fieldText(page, 'payment.amount'), '1817 USD');
  assert.ok((await fieldText(page, 'payment.payment_dt')).includes('2021-11-26 06:22:07 UTC'));
  assert.equal(await fieldText(page, 'items.0.brand'), 'Vivienne Sabo');
  rec.assertClean();
});

test('keyboard: Tab to the input, Enter submits; Tab to the button, Space submits', { timeout: TEST_TIMEOUT }, async (t) => {
  const { page, rec } = await openPage(t);
  await page.goto('/');
  await page.keyboard.press('Tab');
  assert.equal(await page.evaluate(() => document.activeElement?.id), 'order-id', 'first Tab reaches the input');
  await page.keyboard.type(MODEL_UID);
  await page.keyboard.press('Enter');
  await waitState(page, 'ok');
  assert.equal(await fieldText(page, 'order_uid'), MODEL_UID);

  await page.locator('#order-id').fill(XSS_UID);
  await page.locator('#order-id').focus();
  await page.keyboard.press('Tab');
  assert.equal(await page.evaluate(() => document.activeElement?.id), 'lookup');
  await page.keyboard.press('Space');
  await page.locator('#order-title-uid', { hasText: XSS_UID }).waitFor();
  await waitState(page, 'ok');
  rec.assertClean();
});

test('unknown id shows a not-found message naming the id', { timeout: TEST_TIMEOUT }, async (t) => {
  const { page, rec } = await openPage(t, { allowConsole: [ALLOW_404] });
  await page.goto('/');
  // show an order first: a failed lookup must not leave the old order on screen
  await page.locator('#order-id').fill(MODEL_UID);
  await page.locator('#lookup').click();
  await waitState(page, 'ok');
  await page.locator('#order-id').fill('no_such_order_123');
  await page.locator('#lookup').click();
  const status = await waitState(page, 'not-found');
  assert.match(status, /not found/i);
  assert.ok(status.includes('no_such_order_123'), status);
  assert.equal(await page.locator('#order').isVisible(), false, 'previous order hidden');
  rec.assertClean();
});

test('invalid id: rejected client-side without a request; a 400 from the server is handled', { timeout: TEST_TIMEOUT }, async (t) => {
  const { page, rec } = await openPage(t, { allowConsole: [ALLOW_400] });
  await page.goto('/');
  await page.locator('#order-id').fill('bad id!');
  await page.locator('#lookup').click();
  let status = await waitState(page, 'invalid');
  assert.match(status, /invalid/i);
  assert.ok(status.includes('bad id!'), status);
  assert.equal(await page.locator('#order-id').getAttribute('aria-invalid'), 'true');

  await page.locator('#order-id').fill('a'.repeat(65));
  await page.locator('#order-id').press('Enter');
  status = await waitState(page, 'invalid', 'a'.repeat(65));

  await page.locator('#order-id').fill('');
  await page.locator('#lookup').click();
  status = await waitState(page, 'invalid', 'enter an order id');
  assert.deepEqual(rec.orderRequests, [], 'no request for ids that break the id rule');

  // The server's own 400 (e.g. if its rule differs) is shown as an invalid-id message too.
  await page.route('**/order/**', (route) => route.fulfill({
    status: 400,
    contentType: 'application/json',
    body: JSON.stringify({ error: 'invalid_id', detail: 'order_uid rejected by server' }),
  }));
  await page.locator('#order-id').fill('rejected_by_server');
  await page.locator('#lookup').click();
  status = await waitState(page, 'invalid', 'rejected_by_server');
  assert.ok(status.includes('order_uid rejected by server'), status);
  assert.equal(await page.locator('#order').isVisible(), false);
  rec.assertClean();
});

test('deep link /?id=<uid> and /#<uid> open the order on load', { timeout: TEST_TIMEOUT }, async (t) => {
  const { page, rec } = await openPage(t);
  await page.goto(`/?id=${MODEL_UID}`);
  await waitState(page, 'ok');
  assert.equal(await page.locator('#order-id').inputValue(), MODEL_UID);
  await assertOrderShown(page, model);

  await page.goto(`/#${XSS_UID}`);
  await waitState(page, 'ok');
  assert.equal(await fieldText(page, 'order_uid'), XSS_UID);
  assert.equal(new URL(page.url()).searchParams.get('id'), XSS_UID, 'hash link normalised to ?id=');

  // the "link to this order" anchor itself opens the order
  await page.goto(`/?id=${MODEL_UID}`);
  await waitState(page, 'ok');
  const href = await page.locator('#order-link').getAttribute('href');
  const { page: page2, rec: rec2 } = await openPage(t);
  await page2.goto(href);
  await waitState(page2, 'ok');
  assert.equal(await fieldText(page2, 'order_uid'), MODEL_UID);
  rec.assertClean();
  rec2.assertClean();
});

test('by default the page is a lookup by id: no recent-orders list, no request for one', { timeout: TEST_TIMEOUT }, async (t) => {
  const { page, rec } = await openPage(t);
  const api = await getJson('/orders');
  assert.equal(api.status, 404, 'the public listener lists no orders');
  await page.goto(`/?id=${MODEL_UID}`);
  await waitState(page, 'ok');
  assert.equal(await page.locator('body').getAttribute('data-order-list'), 'off');
  assert.equal(await page.locator('#recent').isVisible(), false, 'no recent-orders section');
  assert.equal(await page.locator('#recent-list li').count(), 0);
  // The order uses the whole width.
  const widths = await page.evaluate(() => {
    const layout = document.querySelector('#layout');
    const style = getComputedStyle(layout);
    return [document.querySelector('.main-col').getBoundingClientRect().width,
      layout.clientWidth - parseFloat(style.paddingLeft) - parseFloat(style.paddingRight)];
  });
  assert.ok(widths[0] >= widths[1] - 1, `order column ${widths[0]}px of ${widths[1]}px`);
  await page.locator('#order-id').fill(XSS_UID);
  await page.locator('#lookup').click();
  await page.locator('#order-title-uid', { hasText: XSS_UID }).waitFor();
  assert.deepEqual(rec.listRequests, [], 'no request for the list');
  rec.assertClean();
});

test('recent orders list (PUBLIC_ORDER_LIST): the newest orders; clicking one loads it; back/forward work', { timeout: TEST_TIMEOUT, skip: skipList }, async (t) => {
  const { page, rec } = await openPage(t, { baseURL: LIST_URL });
  const api = await getJson('/orders?limit=20', LIST_URL);
  assert.equal(api.status, 200);
  const apiUids = api.body.orders.map((o) => o.order_uid);
  assert.ok(apiUids.length > 0, '/orders is not empty');

  await page.goto('/');
  assert.equal(await page.locator('body').getAttribute('data-order-list'), 'on');
  await page.locator('#recent-list button[data-uid]').first().waitFor();
  assert.equal(await page.locator('#recent').isVisible(), true);
  const listed = await page.locator('#recent-list button[data-uid]').evaluateAll(
    (els) => els.map((el) => el.getAttribute('data-uid')));
  assert.ok(listed.length > 0 && listed.length <= 20, `list length ${listed.length}`);
  assert.ok(listed.includes(MODEL_UID), `recent list ${JSON.stringify(listed)} should contain ${MODEL_UID}`);

  const entry = page.locator(`#recent-list button[data-uid="${MODEL_UID}"]`);
  assert.ok((await entry.textContent()).includes(MODEL_UID));
  assert.ok((await entry.textContent()).includes(`${model.payment.amount} ${model.payment.currency}`));
  await entry.click();
  await waitState(page, 'ok');
  await assertOrderShown(page, model);
  assert.equal(await entry.getAttribute('aria-current'), 'true');

  // a second lookup adds a history entry; Back returns to the first order
  await page.locator('#order-id').fill(XSS_UID);
  await page.locator('#lookup').click();
  await page.locator('#order-title-uid', { hasText: XSS_UID }).waitFor();
  await page.goBack();
  await page.locator('#order-title-uid', { hasText: MODEL_UID }).waitFor();
  await waitState(page, 'ok');
  assert.equal(new URL(page.url()).searchParams.get('id'), MODEL_UID);
  await page.goForward();
  await page.locator('#order-title-uid', { hasText: XSS_UID }).waitFor();
  rec.assertClean();
});

test('a page that says the list is on hides it when the service answers 404 (the list was turned off)', { timeout: TEST_TIMEOUT, skip: skipList }, async (t) => {
  const { page, rec } = await openPage(t, { baseURL: LIST_URL, allowConsole: [ALLOW_404] });
  await page.route('**/orders?*', (route) => route.fulfill({
    status: 404, contentType: 'application/json', body: '{"error":"not_found","detail":"no such resource: /orders"}',
  }));
  await page.goto('/');
  await page.waitForFunction(() => document.querySelector('#recent').hidden);
  assert.equal(rec.listRequests.length, 1);
  assert.equal(await page.locator('#recent').isVisible(), false);
  rec.assertClean();
});

const XSS_FIELDS = [
  'track_number', 'entry', 'locale', 'customer_id', 'delivery_service', 'shardkey', 'oof_shard',
  'internal_signature', 'delivery.name', 'delivery.city', 'delivery.address', 'delivery.region',
  'delivery.zip', 'payment.transaction', 'payment.provider', 'payment.bank', 'payment.request_id',
  ...xss.items.flatMap((_, i) => ['name', 'brand', 'size', 'rid', 'track_number'].map((k) => `items.${i}.${k}`)),
];

for (const bypassCSP of [false, true]) {
  const label = bypassCSP ? 'with the CSP bypassed' : 'under the CSP';
  // With the public list on, so that the list's rendering of the order is covered too.
  test(`XSS order: every payload is shown as literal text (${label})`, { timeout: TEST_TIMEOUT, skip: skipList }, async (t) => {
    const { page, rec } = await openPage(t, { bypassCSP, baseURL: LIST_URL });
    await trapNativeDialogs(page);
    await page.goto(`/?id=${XSS_UID}`);
    await waitState(page, 'ok');
    await page.locator(`#recent-list button[data-uid="${XSS_UID}"]`).waitFor();

    const get = (obj, p) => p.split('.').reduce((o, k) => o[k], obj);
    for (const field of XSS_FIELDS) {
      const payload = get(xss, field);
      assert.match(payload, /[<&]/, `fixture field ${field} carries a payload`);
      assert.equal(await fieldText(page, field), payload, `field ${field} shows the payload literally`);
    }
    await assertOrderShown(page, xss);
    const raw = await page.locator('#raw-json').textContent();
    for (const field of XSS_FIELDS) assert.ok(raw.includes(JSON.stringify(get(xss, field)).slice(1, -1)));
    const recent = await page.locator(`#recent-list button[data-uid="${XSS_UID}"]`).textContent();
    assert.ok(recent.includes(xss.customer_id), 'recent list shows customer_id literally');

    // Give any injected handler a chance to run (move focus through the page, hover, wait);
    // nothing ran, nothing was added.
    await assertNothingInjected(page, { tabs: 40, mouse: [400, 400], scripts: ['app.js'] });
    const orderTags = await page.evaluate(() => [...new Set([...document.querySelectorAll('#order *, #recent-list *')]
      .map((el) => el.tagName.toLowerCase()))]);
    const allowedTags = new Set(['div', 'span', 'h2', 'h3', 'a', 'section', 'dl', 'dt', 'dd', 'time', 'table',
      'thead', 'tbody', 'tr', 'th', 'td', 'details', 'summary', 'pre', 'li', 'button']);
    const stray = orderTags.filter((tag) => !allowedTags.has(tag));
    assert.deepEqual(stray, [], 'no elements created from order data');
    assert.equal(await page.locator('#order details').count(), 1, 'only the page’s own <details>');
    assert.equal(await page.locator('#order a').count(), 1, 'only the page’s own link');

    if (!bypassCSP) {
      await page.screenshot({ path: path.join(ARTIFACTS, 'xss-order.png'), fullPage: true });
    }
    rec.assertClean();
  });
}

test('network failure and 5xx show a network-error message; a later lookup recovers', { timeout: TEST_TIMEOUT }, async (t) => {
  const { page, rec } = await openPage(t, { allowConsole: [ALLOW_ABORT, ALLOW_5XX] });
  await page.goto('/');
  await page.route('**/order/**', (route) => route.abort('failed'));
  await page.locator('#order-id').fill(MODEL_UID);
  await page.locator('#lookup').click();
  let status = await waitState(page, 'network-error');
  assert.match(status, /network error/i);
  assert.equal(await page.locator('#order').isVisible(), false);

  await page.unroute('**/order/**');
  await page.route('**/order/**', (route) => route.fulfill({
    status: 503, contentType: 'application/json', body: '{"error":"unavailable","detail":"db down"}',
  }));
  await page.locator('#order-id').fill(XSS_UID);
  await page.locator('#lookup').click();
  status = await waitState(page, 'network-error', '503');
  assert.match(status, /network error/i);

  await page.unroute('**/order/**');
  await page.locator('#order-id').fill(MODEL_UID);
  await page.locator('#lookup').click();
  await waitState(page, 'ok');
  await assertOrderShown(page, model);
  rec.assertClean();
});

test('screenshots: desktop full page and a phone-sized viewport without horizontal overflow', { timeout: TEST_TIMEOUT }, async (t) => {
  const { page, rec } = await openPage(t);
  await page.goto(`/?id=${MODEL_UID}`);
  await waitState(page, 'ok');
  const file = path.join(ARTIFACTS, 'order.png');
  await page.screenshot({ path: file, fullPage: true });
  assert.ok((await fs.stat(file)).size > 10_000, 'order.png written');

  const { page: phone, rec: phoneRec } = await openPage(t, { viewport: { width: 375, height: 740 } });
  await phone.goto(`/?id=${MODEL_UID}`);
  await waitState(phone, 'ok');
  const overflow = await phone.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  assert.ok(overflow <= 0, `page scrolls horizontally by ${overflow}px at 375px`);
  await phone.screenshot({ path: path.join(ARTIFACTS, 'order-mobile.png'), fullPage: true });
  rec.assertClean();
  phoneRec.assertClean();
});
