// Browser test of the operator's page (static/admin.*) on the admin listener, in a real
// headless Chromium.
//
//   cd tests/browser && ADMIN_URL=http://127.0.0.1:9081 ADMIN_TOKEN=… npm test
//
// Assumes what scripts/browser-test prepares: a service with ADMIN_TOKEN set and a
// MAX_PAYLOAD_BYTES high enough to store ADMIN_BIG_UID, and, in its database, dead letters
// written by an earlier instance with a lower limit: several `malformed` ones (one of them
// ADMIN_XSS_PAYLOAD, with the key ADMIN_XSS_KEY), one `schema`, one `invalid`, and the valid
// order ADMIN_BIG_UID as `too_large`; none of them replayed yet; and the stored orders
// tests/fixtures/model.json and xss-order.json. Replays change the database: run it on a
// fresh one (scripts/browser-test does).
//
// Env: ADMIN_URL (required, else the tests are skipped), ADMIN_TOKEN (required with it),
//      ADMIN_BIG_UID, ADMIN_XSS_PAYLOAD, ADMIN_XSS_KEY, ADMIN_LETTERS (the number of dead
//      letters, default 8), BASE_URL (public listener, optional: checks the replayed order is
//      served), and those of support.mjs: CHROMIUM_PATH (default /usr/bin/chromium),
//      READY_TIMEOUT_MS (default 30000).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import path from 'node:path';
import {
  ALLOW_401, ALLOW_404, ARTIFACTS, HERE, TEST_TIMEOUT, assertNothingInjected, envUrl, fetchJson, openRecordedPage,
  pageFiles, pollUntil, trapNativeDialogs, useBrowser,
} from './support.mjs';

const ADMIN_URL = envUrl('ADMIN_URL');
const ADMIN_TOKEN = process.env.ADMIN_TOKEN || '';
const BASE_URL = envUrl('BASE_URL');
const BIG_UID = process.env.ADMIN_BIG_UID || '';
const XSS_PAYLOAD = process.env.ADMIN_XSS_PAYLOAD ||
  '<img src=x onerror=window.__xss=1><script>window.__xss=2</script>';
const XSS_KEY = process.env.ADMIN_XSS_KEY || '<svg onload=window.__xss=3>';
const LETTERS = Number(process.env.ADMIN_LETTERS || 8);
const TOKEN_KEY = 'orders-admin-token';
const COMPONENTS = ['status', 'database', 'kafka', 'topic', 'dlq', 'cache', 'ingest'];
const readFixture = async (env, file) =>
  JSON.parse(await fs.readFile(process.env[env] || path.join(HERE, '..', 'fixtures', file), 'utf8'));
const model = await readFixture('MODEL_JSON', 'model.json');
const xss = await readFixture('XSS_JSON', 'xss-order.json');
/** The operator page's modules: one per panel and their helpers, and the shared DOM helpers. */
const MODULES = ['/admin/api.js', '/admin/health.js', '/admin/letters.js', '/admin/live.js', '/admin/main.js',
  '/admin/orders.js', '/admin/replay.js', '/admin/token.js', '/admin/ui.js', '/dom.js'];

const skip = ADMIN_URL ? false : 'ADMIN_URL is not set (scripts/browser-test sets it)';
const opts = (extra) => ({ timeout: TEST_TIMEOUT, skip, ...extra });

// ------------------------------------------------------------------ the API, directly

async function adminJson(urlPath, { method = 'GET', body, token = ADMIN_TOKEN } = {}) {
  const headers = { Accept: 'application/json' };
  if (token) headers.Authorization = `Bearer ${token}`;
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  return fetchJson(ADMIN_URL + urlPath, {
    method, headers, body: body === undefined ? undefined : JSON.stringify(body),
  });
}

async function allLetters(query = '') {
  const { status, body } = await adminJson(`/dead-letters?limit=1000${query}`);
  assert.equal(status, 200, `GET /dead-letters${query}`);
  return body.dead_letters;
}

async function letterById(id) {
  return (await allLetters()).find((l) => l.id === id);
}

async function waitForLetters() {
  await pollUntil(`${LETTERS} dead letters not at ${ADMIN_URL}`, async () => {
    const { status, body } = await adminJson('/dead-letters?limit=1000');
    if (status === 200 && body.dead_letters.length >= LETTERS) return true;
    return status === 200 ? `${body.dead_letters.length} dead letters` : `HTTP ${status}`;
  });
}

// ------------------------------------------------------------------ browser plumbing

const browser = useBrowser({
  skip,
  prepare: async () => {
    assert.ok(ADMIN_TOKEN.length >= 16, 'ADMIN_TOKEN (16+ characters) must be set with ADMIN_URL');
    await waitForLetters();
  },
});

/**
 * A fresh context + page (support.mjs: console errors, page errors, CSP violations and
 * native dialogs recorded, `rec.assertClean()`), sessionStorage already holding the token
 * when `token`, that also records replay requests and 401 answers.
 */
async function openPage(t, { token = false, bypassCSP = false, viewport = { width: 1400, height: 1000 },
  allowConsole = [] } = {}) {
  const { page, rec } = await openRecordedPage(browser(), t, { baseURL: ADMIN_URL, bypassCSP, viewport, allowConsole });
  rec.replays = [];
  rec.unauthorized = 0;
  if (token) {
    await page.addInitScript(([key, value]) => window.sessionStorage.setItem(key, value), [TOKEN_KEY, ADMIN_TOKEN]);
  }
  page.on('request', (req) => {
    if (new URL(req.url()).pathname === '/dead-letters/replay') rec.replays.push(JSON.parse(req.postData() || 'null'));
  });
  page.on('response', (res) => {
    if (res.status() === 401) rec.unauthorized += 1;
  });
  return { page, rec };
}

const text = async (locator) => (await locator.textContent()).trim();
const activeId = (page) => page.evaluate(() => document.activeElement?.id || document.activeElement?.tagName);

async function rowIds(page) {
  return page.locator('#letters-body tr[data-id]').evaluateAll((rows) => rows.map((r) => Number(r.dataset.id)));
}

/** Wait until the list shows exactly `ids` (the list is refreshed asynchronously). */
async function waitRows(page, ids) {
  await page.waitForFunction(
    (want) => JSON.stringify([...document.querySelectorAll('#letters-body tr[data-id]')]
      .map((r) => Number(r.dataset.id))) === JSON.stringify(want),
    ids,
  );
}

async function applyReason(page, reason) {
  await page.locator('#f-reason').selectOption(reason);
  await page.locator('#f-apply').click();
  const ids = (await allLetters(reason ? `&reason=${reason}` : '')).map((l) => l.id);
  await waitRows(page, ids.slice(0, 50));
  // Applying a filter ends with its announcement; wait for it too, so that a later status
  // (a cancelled replay, a summary) is not overwritten by this one arriving late.
  if (reason) {
    await page.waitForFunction(
      ([r, any]) => new RegExp(any ? `matching reason ${r}` : 'No dead letters match')
        .test(document.querySelector('#status').textContent),
      [reason, ids.length > 0],
    );
  }
  return ids;
}

async function waitHealth(page) {
  await page.locator('#health-list li[data-component]').nth(COMPONENTS.length - 1).waitFor();
}

// ------------------------------------------------------------------ tests

test('without the token every data area shows the 401 message; a wrong token is refused; the right one works', opts(), async (t) => {
  const { page, rec } = await openPage(t, { allowConsole: [ALLOW_401] });
  await page.goto('/');
  // The page's own files load without the token, the CSS and the scripts with them.
  assert.deepEqual(await pageFiles(page), {
    scripts: ['admin/main.js (module)'], fetched: MODULES, styles: ['/base.css', '/admin.css'],
  }, 'one entry module, importing the others, all loaded without the token');
  assert.equal(await page.locator('.site-header').evaluate((el) => getComputedStyle(el).backgroundColor),
    'rgb(29, 35, 48)', 'base.css and admin.css applied: the dark header of the operator page');
  for (const area of ['#health-state', '#live-state', '#orders-state', '#letters-state']) {
    await page.locator(`${area}[data-state="unauthorized"]`).waitFor();
    const msg = await text(page.locator(area));
    assert.match(msg, /401/, `${area}: ${msg}`);
    assert.match(msg, /admin token/i, `${area}: ${msg}`);
  }
  assert.match(await text(page.locator('#token-status')), /needs its admin token \(HTTP 401\)/);
  assert.equal(await page.locator('#token').getAttribute('aria-invalid'), 'true');
  assert.equal(await page.locator('#token').getAttribute('type'), 'password');
  assert.equal(await activeId(page), 'token', 'focus moves to the token field');
  assert.equal(await page.locator('#health-list li').count(), 0, 'no health data');
  assert.equal(await page.locator('#letters-body tr').count(), 0, 'no letters');
  assert.equal(await page.locator('#orders-body tr').count(), 0, 'no orders');
  assert.match(await text(page.locator('#status')), /401/);
  assert.equal(await page.locator('#status').getAttribute('aria-live'), 'polite');
  await page.screenshot({ path: path.join(ARTIFACTS, 'admin-unauthorized.png'), fullPage: true });

  // Polling stops while the token is missing: no flood of 401s. The first 401 marks every
  // area, so first wait for the answers to all four requests of the start.
  await pollUntil('the 401s of health, stats, orders and dead letters',
    () => rec.unauthorized >= 4 || `${rec.unauthorized} so far`);
  const refused = rec.unauthorized;
  await page.waitForTimeout(2500);
  assert.equal(rec.unauthorized, refused, 'no more requests after the 401s');

  await page.locator('#token').fill('wrong-token-0123456789abcdef');
  await page.locator('#token-save').click();
  await page.locator('#token-status', { hasText: 'refused' }).waitFor();
  await page.locator('#letters-state[data-state="unauthorized"]', { hasText: 'refused' }).waitFor();

  await page.locator('#token').fill(ADMIN_TOKEN);
  await page.locator('#token').press('Enter');
  await page.locator('#token-status[data-state="ok"]').waitFor();
  await waitHealth(page);
  await page.locator('#letters-body tr[data-id]').first().waitFor();
  assert.equal(await page.locator('#token').getAttribute('aria-invalid'), null);
  assert.equal(await page.evaluate((k) => sessionStorage.getItem(k), TOKEN_KEY), ADMIN_TOKEN, 'kept in sessionStorage');
  assert.equal(await page.evaluate((k) => localStorage.getItem(k), TOKEN_KEY), null, 'not in localStorage');

  // Kept for the tab: a reload needs no new entry.
  const before401 = rec.unauthorized;
  await page.reload();
  await waitHealth(page);
  assert.equal(rec.unauthorized, before401, 'no 401 after a reload');

  // "Forget" drops it, and the page asks again; an open order goes too.
  await page.locator('#orders-body tr[data-uid]').first().waitFor();
  await page.locator('#o-uid').fill(model.order_uid);
  await page.locator('#o-open').click();
  await page.locator('#order-uid', { hasText: model.order_uid }).waitFor();
  await page.locator('#token-forget').click();
  await page.locator('#letters-state[data-state="unauthorized"]').waitFor();
  assert.equal(await page.evaluate((k) => sessionStorage.getItem(k), TOKEN_KEY), null);
  assert.equal(await page.locator('#letters-body tr').count(), 0, 'letters removed from the screen');
  assert.equal(await page.locator('#orders-body tr').count(), 0, 'orders removed from the screen');
  assert.equal(await page.locator('#order').isVisible(), false, 'the open order is closed');
  assert.equal(await page.locator('#order-json').textContent(), '', 'and its data removed');
  rec.assertClean();
});

test('with the token: components, live chart and dead letters; no console errors, no CSP violations', opts(), async (t) => {
  const { page, rec } = await openPage(t, { token: true });
  await page.goto('/');
  await waitHealth(page);

  // Health: every component with its state as text (not only a colour).
  const api = await adminJson('/health/ready');
  assert.equal(api.status, 200);
  const shown = await page.locator('#health-list li[data-component]').evaluateAll((items) => items.map((li) => ({
    component: li.dataset.component,
    state: li.dataset.state,
    value: li.querySelector('[data-testid="health-value"]').textContent,
    text: li.textContent,
    color: getComputedStyle(li).backgroundColor,
  })));
  assert.deepEqual(shown.map((c) => c.component), COMPONENTS);
  for (const c of shown) {
    assert.equal(c.value, api.body[c.component], `${c.component} shows the API's state`);
    assert.ok(c.text.includes(c.value), `${c.component}: state as text`);
    assert.match(c.state, /^(good|warn|bad|neutral|unknown)$/);
  }
  const byName = Object.fromEntries(shown.map((c) => [c.component, c]));
  assert.equal(byName.database.value, 'up');
  assert.equal(byName.database.state, 'good');
  assert.equal(byName.dlq.value, 'off');
  assert.equal(byName.dlq.state, 'neutral');
  assert.notEqual(byName.database.color, byName.dlq.color, 'states differ in colour too');

  // Live chart: after ≥ 2 polls the rate has a point (a delta), and the values are text.
  await page.waitForFunction(() => Number(document.querySelector('#charts').dataset.samples) >= 3, null,
    { timeout: 20_000 });
  for (const chart of ['#chart-rate', '#chart-lag', '#chart-hit']) {
    assert.equal(await page.locator(`${chart} svg[role="img"]`).count(), 1, `${chart} is an SVG image`);
    assert.match(await page.locator(`${chart} svg`).getAttribute('aria-label'), /last 5 minutes/);
  }
  assert.ok(Number(await page.locator('#chart-rate').getAttribute('data-points')) >= 2, 'rate points');
  assert.ok(Number(await page.locator('#chart-lag').getAttribute('data-points')) >= 3, 'lag points');
  assert.match(await page.locator('#chart-rate path.series').getAttribute('d'), /^M[\d.]+ [\d.]+ L/);
  assert.match(await text(page.locator('#value-rate')), /^0 messages\/s$/, 'nothing arrives: 0/s');
  assert.match(await text(page.locator('#value-lag')), /^0 messages/);
  assert.match(await text(page.locator('#value-hit')), /lookup/);
  const stats = await adminJson('/stats');
  assert.equal(await text(page.locator('#value-orders')), stats.body.orders_stored.toLocaleString('en'));

  // Dead letters: the newest first, as the API lists them.
  const letters = await allLetters();
  assert.equal(letters.length, LETTERS);
  await waitRows(page, letters.map((l) => l.id));
  const first = letters[0];
  const row = page.locator(`#letters-body tr[data-id="${first.id}"]`);
  assert.equal(await text(row.locator('[data-col="reason"]')), first.reason);
  assert.equal(await text(row.locator('[data-col="detail"]')), first.detail.length > 160 ? `${first.detail.slice(0, 159)}…` : first.detail);
  assert.equal(await text(row.locator('[data-col="order_uid"]')), first.order_uid ?? '—');
  assert.equal(await text(row.locator('[data-col="replay"]')), '—');
  assert.ok((await text(row.locator('[data-col="received"]'))).endsWith('UTC'));
  await page.screenshot({ path: path.join(ARTIFACTS, 'admin-overview.png'), fullPage: true });
  rec.assertClean();
});

test('a service without ADMIN_TOKEN: the page works with the token field left empty', opts(), async (t) => {
  // Simulated: the browser sends no token, the route adds it on the way (as if none were needed).
  const { page, rec } = await openPage(t);
  const sent = [];
  await page.route('**/*', (route) => {
    const headers = route.request().headers();
    if (headers.authorization !== undefined) sent.push(route.request().url());
    route.continue({ headers: { ...headers, authorization: `Bearer ${ADMIN_TOKEN}` } });
  });
  await page.goto('/');
  await waitHealth(page);
  await page.locator('#letters-body tr[data-id]').first().waitFor();
  assert.match(await text(page.locator('#token-status')), /No token given: the service accepts requests without one/);
  assert.equal(await page.locator('#health-state').getAttribute('data-state'), 'ok');
  assert.equal(rec.unauthorized, 0);
  assert.deepEqual(sent, [], 'no Authorization header sent without a token');
  rec.assertClean();
});

test('the chart computes rate, lag and hit ratio from /stats deltas', opts(), async (t) => {
  const { page, rec } = await openPage(t, { token: true });
  let n = 0;
  await page.route('**/stats', async (route) => {
    const res = await route.fetch();
    const body = await res.json();
    n += 1;
    body.since_start.messages_consumed = 1000 + n * 100;
    body.cache.hits = n * 30;
    body.cache.misses = n * 10;
    body.consumer = {
      in_flight: 0,
      paused: false,
      partitions: [
        { partition: 0, position: 10, committed: 10, high_watermark: 15, lag: 5 },
        { partition: 1, position: 3, committed: 3, high_watermark: 10, lag: 7 },
      ],
    };
    await route.fulfill({ response: res, json: body });
  });
  await page.goto('/');
  await page.waitForFunction(() => Number(document.querySelector('#charts').dataset.samples) >= 3, null,
    { timeout: 20_000 });
  const rate = await text(page.locator('#value-rate'));
  const perSecond = Number(rate.replace(/ messages\/s$/, ''));
  assert.ok(perSecond > 10 && perSecond < 100, `≈100 messages per ~2 s poll: ${rate}`);
  assert.match(await text(page.locator('#value-lag')), /^12 messages$/);
  assert.match(await text(page.locator('#value-hit')), /^75 % \(40 lookups in the last update\)/);
  assert.ok(Number(await page.locator('#chart-hit').getAttribute('data-points')) >= 2);
  // Lag 12 on a nice scale of 20: the line sits at 60 % of the plot's height.
  assert.ok((await page.locator('#chart-lag svg').getAttribute('aria-label')).includes('now 12 messages'));

  // The consumer not started yet: lag "none", drawn as 0.
  await page.unroute('**/stats');
  await page.route('**/stats', async (route) => {
    const res = await route.fetch();
    const body = await res.json();
    body.consumer = null;
    await route.fulfill({ response: res, json: body });
  });
  await page.locator('#value-lag', { hasText: 'none' }).waitFor();
  await page.screenshot({ path: path.join(ARTIFACTS, 'admin-chart.png') });
  rec.assertClean();
});

test('dead letters: filter by reason and order uid, page with "Older" / "Newer" / "Newest"', opts(), async (t) => {
  const { page, rec } = await openPage(t, { token: true });
  await page.goto('/?limit=3'); // the page size comes from the address
  const all = (await allLetters()).map((l) => l.id);
  assert.ok(all.length > 6, 'enough letters for three pages');
  await waitRows(page, all.slice(0, 3));
  assert.equal(await page.locator('#page-newer').isDisabled(), true);

  const seen = [...all.slice(0, 3)];
  let pages = 1;
  while (!(await page.locator('#page-older').isDisabled())) {
    await page.locator('#page-older').click();
    pages += 1;
    const want = all.slice(seen.length, seen.length + 3);
    if (want.length === 0) {
      await page.locator('#letters-state', { hasText: 'No older dead letters' }).waitFor();
      break;
    }
    await waitRows(page, want);
    assert.match(await text(page.locator('#page-info')), new RegExp(`^Page ${pages} `));
    seen.push(...want);
  }
  assert.deepEqual(seen, all, 'the pages together list every letter once, newest first');
  await page.locator('#page-newer').click();
  await waitRows(page, all.slice((pages - 2) * 3, (pages - 1) * 3));
  await page.locator('#page-newest').click();
  await waitRows(page, all.slice(0, 3));

  // Reason filter (the list is paged by 3 here: the first page of the matches).
  const malformed = await allLetters('&reason=malformed');
  assert.ok(malformed.length >= 4);
  await page.locator('#f-reason').selectOption('malformed');
  await page.locator('#f-apply').click();
  // The filtered page's answer sets the status; the rows alone may already match (when the
  // three newest letters are malformed ones).
  await page.locator('#status', { hasText: 'matching reason malformed' }).waitFor();
  await waitRows(page, malformed.slice(0, 3).map((l) => l.id));
  const reasons = await page.locator('#letters-body tr').evaluateAll((rows) => rows.map((r) => r.dataset.reason));
  assert.deepEqual([...new Set(reasons)], ['malformed']);
  assert.match(await text(page.locator('#status')), /matching reason malformed/);
  assert.match(await text(page.locator('#filter-summary')), /reason malformed/);

  // Order uid, with Enter in the field.
  await page.locator('#f-reason').selectOption('');
  await page.locator('#f-uid').fill('schema_1');
  await page.locator('#f-uid').press('Enter');
  const schema = await allLetters('&order_uid=schema_1');
  assert.equal(schema.length, 1);
  await waitRows(page, [schema[0].id]);

  // Nothing matches: said so.
  await page.locator('#f-uid').fill('no_such_uid');
  await page.locator('#f-uid').press('Enter');
  await page.locator('#letters-state', { hasText: 'No dead letters match the filters' }).waitFor();

  // Since: in the future → nothing; reset → everything again.
  await page.locator('#f-uid').fill('');
  await page.locator('#f-since').fill('2099-01-01T00:00:00');
  await page.locator('#f-apply').click();
  await page.locator('#letters-state', { hasText: 'No dead letters match the filters' }).waitFor();
  assert.match(await text(page.locator('#filter-summary')), /received since 2(099-01-01|098-12-31) /);
  await page.locator('#f-reset').click();
  await waitRows(page, all.slice(0, 3));
  rec.assertClean();
});

async function orderRows(page) {
  return page.locator('#orders-body tr[data-uid]').evaluateAll((rows) => rows.map((r) => r.dataset.uid));
}

/** Wait until the orders list shows exactly `uids`. */
async function waitOrderRows(page, uids) {
  await page.waitForFunction(
    (want) => JSON.stringify([...document.querySelectorAll('#orders-body tr[data-uid]')]
      .map((r) => r.dataset.uid)) === JSON.stringify(want),
    uids,
  );
}

test('orders: the newest first, paged like the dead letters; an order opens from the list or by its id', opts(), async (t) => {
  const { page, rec } = await openPage(t, { token: true, allowConsole: [ALLOW_404] });
  const orderRequests = [];
  page.on('request', (req) => {
    if (new URL(req.url()).pathname.startsWith('/order/')) orderRequests.push(new URL(req.url()).pathname);
  });
  const api = await adminJson('/orders?limit=1000');
  assert.equal(api.status, 200);
  assert.equal(api.headers.get('cache-control'), 'no-store');
  const all = api.body.orders.map((o) => o.order_uid);
  assert.ok(all.includes(model.order_uid) && all.includes(xss.order_uid), JSON.stringify(all));

  await page.goto('/?limit=1'); // the page size comes from the address, as for the letters
  await waitOrderRows(page, all.slice(0, 1));
  assert.equal(await page.locator('#orders-newer').isDisabled(), true);
  const seen = [...(await orderRows(page))];
  while (!(await page.locator('#orders-older').isDisabled())) {
    await page.locator('#orders-older').click();
    const want = all.slice(seen.length, seen.length + 1);
    if (want.length === 0) {
      await page.locator('#orders-state', { hasText: 'No older orders' }).waitFor();
      break;
    }
    await waitOrderRows(page, want);
    seen.push(...want);
    assert.equal(await activeId(page), 'BUTTON', 'focus on the first order of the page');
  }
  assert.deepEqual(seen, all, 'the pages together list every order once, newest first');
  await page.locator('#orders-newest').click();
  await waitOrderRows(page, all.slice(0, 1));

  // From the list: the first row opens its order, as the admin API has it.
  const first = all[0];
  const row = page.locator(`#orders-body tr[data-uid="${first}"]`);
  const summary = api.body.orders[0];
  assert.equal(await text(row.locator('[data-col="customer_id"]')), summary.customer_id);
  assert.equal(await text(row.locator('[data-col="items"]')), String(summary.items));
  await row.locator('button[data-testid="order-show"]').click();
  await page.locator('#order-uid', { hasText: first }).waitFor();
  assert.equal(await activeId(page), 'order-heading', 'focus moves to the order');
  assert.equal(await row.locator('button').getAttribute('aria-current'), 'true');
  const served = await adminJson(`/order/${first}`);
  assert.deepEqual(JSON.parse(await page.locator('#order-json').textContent()), served.body);

  // By its id, with Enter: the order exactly as produced, its fields as text.
  await page.locator('#o-uid').fill(model.order_uid);
  await page.locator('#o-uid').press('Enter');
  await page.locator('#order-uid', { hasText: model.order_uid }).waitFor();
  assert.deepEqual(JSON.parse(await page.locator('#order-json').textContent()), model);
  assert.equal(await text(page.locator('#order-fields [data-field="delivery.name"]')), model.delivery.name);
  assert.equal(await text(page.locator('#order-fields [data-field="delivery.phone"]')), model.delivery.phone);
  assert.equal(await text(page.locator('#order-fields [data-field="payment.amount"]')),
    `${model.payment.amount.toLocaleString('en')} ${model.payment.currency}`);
  assert.equal(await text(page.locator('#order-fields [data-field="items"]')), String(model.items.length));
  await page.screenshot({ path: path.join(ARTIFACTS, 'admin-orders.png'), fullPage: true });

  // An unknown id is said so and closes the order; an id that breaks the rule asks nothing.
  await page.locator('#o-uid').fill('no_such_order_42');
  await page.locator('#o-open').click();
  await page.locator('#order-open-state', { hasText: 'No order with id no_such_order_42' }).waitFor();
  assert.equal(await page.locator('#order').isVisible(), false);
  const asked = orderRequests.length;
  await page.locator('#o-uid').fill('bad id!');
  await page.locator('#o-open').click();
  await page.locator('#order-open-state', { hasText: 'Not an order id' }).waitFor();
  assert.equal(await page.locator('#o-uid').getAttribute('aria-invalid'), 'true');
  assert.equal(orderRequests.length, asked, 'no request for an id that breaks the rule');

  // Close returns the keyboard to where the order was opened from.
  await row.locator('button[data-testid="order-show"]').click();
  await page.locator('#order-uid', { hasText: first }).waitFor();
  await page.locator('#order-close').click();
  assert.equal(await page.locator('#order').isVisible(), false);
  assert.equal(await page.evaluate(() => document.activeElement?.closest('tr')?.dataset.uid), first);
  rec.assertClean();
});

for (const bypassCSP of [false, true]) {
  const label = bypassCSP ? 'with the CSP bypassed' : 'under the CSP';
  test(`an XSS order in the orders panel is shown literally and nothing runs (${label})`, opts(), async (t) => {
    const { page, rec } = await openPage(t, { token: true, bypassCSP });
    await trapNativeDialogs(page);
    await page.goto('/');
    const row = page.locator(`#orders-body tr[data-uid="${xss.order_uid}"]`);
    await row.waitFor();
    assert.equal(await text(row.locator('[data-col="customer_id"]')), xss.customer_id.trim());
    await row.locator('button[data-testid="order-show"]').click();
    await page.locator('#order-uid', { hasText: xss.order_uid }).waitFor();
    for (const [key, value] of [['customer_id', xss.customer_id], ['track_number', xss.track_number],
      ['delivery.name', xss.delivery.name]]) {
      assert.match(value, /[<&]/, `fixture field ${key} carries a payload`);
      assert.equal(await page.locator(`#order-fields [data-field="${key}"]`).textContent(), value, key);
    }
    assert.deepEqual(JSON.parse(await page.locator('#order-json').textContent()), xss);
    assert.equal(await page.locator('#order-json *').count(), 0, 'no elements inside the JSON');
    await assertNothingInjected(page, { tabs: 30, mouse: [700, 900], scripts: ['admin/main.js'] });
    rec.assertClean();
  });
}

for (const bypassCSP of [false, true]) {
  const label = bypassCSP ? 'with the CSP bypassed' : 'under the CSP';
  test(`an XSS payload and key are shown literally and nothing runs (${label})`, opts(), async (t) => {
    const { page, rec } = await openPage(t, { token: true, bypassCSP });
    await trapNativeDialogs(page);
    const letter = (await allLetters()).find((l) => l.payload === XSS_PAYLOAD);
    assert.ok(letter, 'the XSS letter is in the database');
    assert.equal(letter.key, XSS_KEY);
    await page.goto('/');
    await page.locator(`#letters-body tr[data-id="${letter.id}"] button[data-testid="letter-show"]`).click();
    await page.locator('#letter-id', { hasText: String(letter.id) }).waitFor();
    assert.equal(await page.locator('#letter-payload').textContent(), XSS_PAYLOAD, 'payload as text');
    assert.equal(await page.locator('#letter-payload').evaluate((el) => el.tagName), 'PRE');
    assert.equal(await page.locator('#letter-payload *').count(), 0, 'no elements inside the payload');
    assert.equal(await page.locator('#letter-fields [data-field="key"]').textContent(), XSS_KEY, 'key as text');
    assert.equal(await page.locator('#letter-detail').textContent(), letter.detail);
    assert.equal(await text(page.locator('#letter-fields [data-field="reason"]')), 'malformed');
    assert.equal(await text(page.locator('#letter-payload-size')), `(${letter.payload_bytes} bytes)`);
    assert.equal(await text(page.locator('#letter-replays-empty')), 'Never replayed.');
    assert.equal(await activeId(page), 'letter-heading', 'focus moves to the letter');

    await assertNothingInjected(page, { tabs: 30, mouse: [700, 700], scripts: ['admin/main.js'] });
    const svgsOutsideCharts = await page.evaluate(
      () => [...document.querySelectorAll('svg')].filter((s) => !s.closest('#charts')).length);
    assert.equal(svgsOutsideCharts, 0, 'no <svg> from data');
    if (!bypassCSP) await page.screenshot({ path: path.join(ARTIFACTS, 'admin-xss.png'), fullPage: true });
    rec.assertClean();
  });
}

test('Escape cancels the replay dialog after the dry run: nothing is replayed', opts(), async (t) => {
  const { page, rec } = await openPage(t, { token: true });
  await page.goto('/');
  const malformed = await applyReason(page, 'malformed');
  await page.locator('#replay-matching').click();
  const dialog = page.locator('#replay-dialog');
  await dialog.waitFor({ state: 'visible' });
  assert.equal(await page.evaluate(() => document.querySelector('#replay-dialog').contains(document.activeElement)), true,
    'focus moves into the dialog');
  assert.match(await text(page.locator('#dialog-scope')), /reason malformed/);
  await page.locator('#dialog-result [data-count="selected"] dd', { hasText: String(malformed.length) }).waitFor();
  assert.equal(await text(page.locator('#dialog-result [data-count="rejected"] dd')), String(malformed.length));
  assert.equal(await text(page.locator('#dialog-result [data-count="valid"] dd')), '0');
  assert.equal(await page.locator('#dialog-confirm').isEnabled(), true);
  assert.match(await text(page.locator('#dialog-confirm')), new RegExp(`^Replay ${malformed.length} letters$`));

  await page.keyboard.press('Escape');
  await dialog.waitFor({ state: 'hidden' });
  // The dialog's close event is queued as a task after it hides: wait for its announcement
  // rather than reading the status line in between (it still says what the filter showed).
  await page.locator('#status', { hasText: /cancelled: nothing was replayed/i }).waitFor();
  assert.equal(await activeId(page), 'replay-matching', 'focus returns to the button that opened it');
  await page.waitForTimeout(500);
  assert.deepEqual(rec.replays, [{ reason: ['malformed'], dry_run: true }], 'only the dry run was sent');
  for (const l of await allLetters('&reason=malformed')) assert.deepEqual(l.replays, [], `letter ${l.id} not replayed`);
  assert.equal(await page.locator('#replay-summary').isVisible(), false);

  // The Cancel button does the same.
  await page.locator('#replay-matching').click();
  await page.locator('#dialog-confirm:not([disabled])').waitFor();
  await page.locator('#dialog-cancel').click();
  await dialog.waitFor({ state: 'hidden' });
  assert.equal(rec.replays.filter((r) => r.dry_run === false).length, 0);
  rec.assertClean();
});

test('replaying the too_large letter: the dry run shows 1 valid, confirming stores it', opts(), async (t) => {
  const { page, rec } = await openPage(t, { token: true });
  const tooLarge = await allLetters('&reason=too_large');
  assert.equal(tooLarge.length, 1, 'one too_large letter');
  const letter = tooLarge[0];
  if (BIG_UID) assert.equal(letter.order_uid, BIG_UID);
  assert.deepEqual(letter.replays, []);
  if (BASE_URL && letter.order_uid) {
    assert.equal((await fetch(`${BASE_URL}/order/${letter.order_uid}`)).status, 404, 'not stored before the replay');
  }

  await page.goto('/');
  await applyReason(page, 'too_large');
  const row = page.locator(`#letters-body tr[data-id="${letter.id}"]`);
  // The payload is over the 4 KiB preview: the page says how much it shows.
  await row.locator('button[data-testid="letter-show"]').click();
  assert.match(await text(page.locator('#letter-payload-size')), new RegExp(`first 4,096 of ${letter.payload_bytes.toLocaleString('en')} bytes`));
  assert.equal(await page.locator('#letter-payload').textContent(), letter.payload);

  await row.locator('input[data-testid="letter-tick"]').check();
  assert.equal(await text(page.locator('#replay-selected')), 'Replay selected (1)');
  await page.locator('#replay-selected').click();
  await page.locator('#dialog-result [data-count="valid"] dd', { hasText: '1' }).waitFor();
  assert.equal(await text(page.locator('#dialog-result [data-count="selected"] dd')), '1');
  assert.match(await text(page.locator('[data-testid="dry-run-text"]')), /1 valid \(would be written\)/);
  assert.ok((await text(page.locator(`#dialog-letters li[data-id="${letter.id}"]`))).includes('valid'));
  assert.equal(await text(page.locator('#dialog-confirm')), 'Replay 1 letter');
  await page.locator('#replay-dialog').screenshot({ path: path.join(ARTIFACTS, 'admin-dry-run.png') });

  await page.locator('#dialog-confirm').click();
  await page.locator('#replay-dialog').waitFor({ state: 'hidden' });
  await page.locator('#replay-summary').waitFor({ state: 'visible' });
  assert.equal(await text(page.locator('#replay-summary [data-count="stored"] dd')), '1');
  assert.match(await text(page.locator('#replay-summary-text')), /^Replayed 1 dead letter: 1 stored, 0 duplicate/);
  assert.match(await text(page.locator('#status')), /1 stored/);
  assert.deepEqual(rec.replays, [{ id: [letter.id], dry_run: true }, { id: [letter.id], dry_run: false }]);

  // The list and the letter show the result.
  await row.locator('[data-col="replay"] [data-result="stored"]').waitFor();
  assert.equal(await text(row.locator('[data-col="replay"]')), 'stored');
  await page.locator('#letter-replays li[data-result="stored"]').waitFor();
  assert.equal(await page.locator('#letter-replays-empty').isVisible(), false);
  assert.equal(await page.locator('#letter-replay').isDisabled(), true, 'a settled letter cannot be replayed again');
  assert.equal(await text(page.locator('#replay-selected')), 'Replay selected', 'the stored letter is no longer selected');

  const after = await letterById(letter.id);
  assert.equal(after.replays.at(-1).result, 'stored');
  if (BASE_URL && letter.order_uid) {
    assert.equal((await fetch(`${BASE_URL}/order/${letter.order_uid}`)).status, 200, 'the order is served');
  }
  await page.screenshot({ path: path.join(ARTIFACTS, 'admin-replay.png'), fullPage: true });
  rec.assertClean();
});

test('keyboard only: token, filter with Enter, open a letter, replay all matching and confirm', opts(), async (t) => {
  const { page, rec } = await openPage(t, { allowConsole: [ALLOW_401] });
  await page.goto('/');
  await page.locator('#letters-state[data-state="unauthorized"]').waitFor();
  // The page puts the focus in the token field after the 401; Tab order from the top gets there too.
  assert.equal(await activeId(page), 'token');
  await page.keyboard.type(ADMIN_TOKEN);
  await page.keyboard.press('Enter');
  await waitHealth(page);
  await page.locator('#letters-body tr[data-id]').first().waitFor();

  // Tab to the reason select, choose "schema" by typing, Tab to the uid field, Enter submits.
  const tabTo = async (id, max = 40) => {
    for (let i = 0; i < max; i += 1) {
      if ((await activeId(page)) === id) return;
      await page.keyboard.press('Tab');
    }
    assert.fail(`Tab never reached #${id} (at ${await activeId(page)})`);
  };
  await tabTo('f-reason');
  await page.keyboard.type('schema');
  assert.equal(await page.locator('#f-reason').inputValue(), 'schema');
  await page.keyboard.press('Tab');
  assert.equal(await activeId(page), 'f-uid');
  await page.keyboard.press('Enter');
  const schema = await allLetters('&reason=schema');
  assert.equal(schema.length, 1);
  await waitRows(page, [schema[0].id]);

  // Open the letter: Tab to its id button, Enter.
  await tabTo('replay-matching');
  const before = await page.evaluate(() => document.activeElement.id);
  assert.equal(before, 'replay-matching', 'the toolbar comes after the filters');
  for (let i = 0; i < 10; i += 1) {
    await page.keyboard.press('Tab');
    if (await page.evaluate(() => document.activeElement?.dataset?.testid === 'letter-show')) break;
  }
  await page.keyboard.press('Enter');
  await page.locator('#letter-id', { hasText: String(schema[0].id) }).waitFor();
  assert.equal(await activeId(page), 'letter-heading');

  // Back to "Replay all matching the filters" (Shift+Tab), Enter; the dialog has the focus.
  for (let i = 0; i < 20 && (await activeId(page)) !== 'replay-matching'; i += 1) await page.keyboard.press('Shift+Tab');
  assert.equal(await activeId(page), 'replay-matching');
  await page.keyboard.press('Enter');
  await page.locator('#replay-dialog').waitFor({ state: 'visible' });
  assert.equal(await activeId(page), 'dialog-cancel', 'Cancel has the focus first');
  await page.locator('#dialog-confirm:not([disabled])').waitFor();
  assert.equal(await text(page.locator('#dialog-result [data-count="rejected"] dd')), '1');
  await page.keyboard.press('Tab');
  assert.equal(await activeId(page), 'dialog-confirm');
  await page.keyboard.press('Enter');
  await page.locator('#replay-dialog').waitFor({ state: 'hidden' });
  await page.locator('#replay-summary [data-count="rejected"] dd', { hasText: '1' }).waitFor();
  assert.equal(await activeId(page), 'replay-summary', 'focus on the summary');
  assert.deepEqual(rec.replays, [{ reason: ['schema'], dry_run: true }, { reason: ['schema'], dry_run: false }]);
  const row = page.locator(`#letters-body tr[data-id="${schema[0].id}"]`);
  await row.locator('[data-col="replay"]', { hasText: 'rejected (schema)' }).waitFor();
  await page.locator('#letter-replays li[data-result="rejected"]').waitFor();
  assert.equal((await letterById(schema[0].id)).replays.at(-1).result, 'rejected');
  rec.assertClean();
});

test('phone-sized viewport: no horizontal overflow of the page', opts(), async (t) => {
  const { page, rec } = await openPage(t, { token: true, viewport: { width: 375, height: 740 } });
  await page.goto('/');
  await waitHealth(page);
  await page.locator('#letters-body tr[data-id]').first().waitFor();
  await page.waitForFunction(() => Number(document.querySelector('#charts').dataset.samples) >= 2, null,
    { timeout: 20_000 });
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  assert.ok(overflow <= 0, `page scrolls horizontally by ${overflow}px at 375px`);
  await page.screenshot({ path: path.join(ARTIFACTS, 'admin-mobile.png'), fullPage: true });
  rec.assertClean();
});
