// What the browser tests of both pages share (browser.test.mjs: the public page,
// admin.test.mjs: the operator's page): the headless Chromium, pages that record console
// errors, page errors, CSP violations and native dialogs, JSON requests, polling, and the
// checks that markup from data ran nothing and left nothing behind.
//
// Env: CHROMIUM_PATH (default /usr/bin/chromium), READY_TIMEOUT_MS (default 30000).
import { before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

export const HERE = path.dirname(fileURLToPath(import.meta.url));
export const ARTIFACTS = path.join(HERE, 'artifacts');
export const CHROMIUM_PATH = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
export const READY_TIMEOUT_MS = Number(process.env.READY_TIMEOUT_MS || 30000);
export const TEST_TIMEOUT = 90_000;
export const UI_TIMEOUT = 15_000;

// Browsers log HTTP errors of fetch() as console errors; these are allowed where expected.
export const ALLOW_400 = /Failed to load resource: the server responded with a status of 400/;
export const ALLOW_401 = /Failed to load resource: the server responded with a status of 401/;
export const ALLOW_404 = /Failed to load resource: the server responded with a status of 404/;
export const ALLOW_5XX = /Failed to load resource: the server responded with a status of 5\d\d/;
export const ALLOW_ABORT = /Failed to load resource: net::ERR_(FAILED|ABORTED|CONNECTION_REFUSED|INTERNET_DISCONNECTED)/;

/** A base URL from the environment without trailing slashes ('' when unset). */
export function envUrl(name, fallback = '') {
  return (process.env[name] || fallback).replace(/\/+$/, '');
}

// ------------------------------------------------------------------ the service, directly

/** fetch() that resolves to {status, headers, body}; body is null when it is not JSON. */
export async function fetchJson(url, init) {
  const res = await fetch(url, init);
  let body = null;
  try {
    body = await res.json();
  } catch {
    // not JSON
  }
  return { status: res.status, headers: res.headers, body };
}

/**
 * Calls `check` every 500 ms until it returns true; any other value (or a thrown error)
 * describes the last state. Throws `${what}: ${last state}` after `timeoutMs`.
 */
export async function pollUntil(what, check, timeoutMs = READY_TIMEOUT_MS) {
  const deadline = Date.now() + timeoutMs;
  let last = '';
  for (;;) {
    try {
      const result = await check();
      if (result === true) return;
      last = String(result);
    } catch (err) {
      last = err.cause?.code || err.message;
    }
    if (Date.now() > deadline) throw new Error(`${what} after ${timeoutMs} ms (last: ${last})`);
    await new Promise((r) => setTimeout(r, 500));
  }
}

// ------------------------------------------------------------------ browser plumbing

/**
 * Registers the file's before/after hooks: `prepare` (e.g. waiting for the service's data),
 * then a headless Chromium, closed at the end. Returns a getter for the browser. With
 * `skip`, nothing is started.
 */
export function useBrowser({ skip = false, prepare } = {}) {
  let browser;
  before(async () => {
    if (skip) return;
    if (prepare) await prepare();
    await fs.mkdir(ARTIFACTS, { recursive: true });
    // playwright launches with a fresh temporary profile (user-data-dir) and removes it on close.
    browser = await chromium.launch({
      executablePath: CHROMIUM_PATH,
      headless: true,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
        '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    });
  }, { timeout: READY_TIMEOUT_MS + 30_000 });
  after(async () => {
    if (browser) await browser.close();
  });
  return () => browser;
}

/**
 * A fresh context + page on `baseURL` that records console errors, page errors, CSP
 * violations and native dialogs (dismissed). Closed automatically after the test `t`;
 * `rec.assertClean()` asserts that nothing unexpected was recorded (console errors
 * matching one of `allowConsole` are expected).
 */
export async function openRecordedPage(browser, t, { baseURL, bypassCSP = false, viewport, allowConsole = [] }) {
  const context = await browser.newContext({ bypassCSP, viewport, baseURL });
  const page = await context.newPage();
  page.setDefaultTimeout(UI_TIMEOUT);
  const rec = { consoleErrors: [], pageErrors: [], csp: [], dialogs: [] };

  await page.exposeBinding('__reportCspViolation', (_src, v) => rec.csp.push(v));
  await page.addInitScript(() => {
    document.addEventListener('securitypolicyviolation', (e) => {
      window.__reportCspViolation({ directive: e.violatedDirective, blocked: e.blockedURI, sample: e.sample });
    });
  });
  page.on('console', (msg) => {
    if (msg.type() === 'error') rec.consoleErrors.push(`${msg.text()} @ ${msg.location().url || '?'}`);
    if (/Content[- ]Security[- ]Policy/i.test(msg.text())) rec.csp.push({ console: msg.text() });
  });
  page.on('pageerror', (err) => rec.pageErrors.push(String(err)));
  page.on('dialog', (d) => {
    rec.dialogs.push(`${d.type()}: ${d.message()}`);
    d.dismiss().catch(() => {});
  });
  t.after(async () => {
    await context.close();
  });

  rec.assertClean = () => {
    assert.deepEqual(rec.csp, [], 'CSP violations');
    assert.deepEqual(rec.pageErrors, [], 'uncaught page errors');
    assert.deepEqual(rec.dialogs, [], 'native dialogs opened');
    const unexpected = rec.consoleErrors.filter((m) => !allowConsole.some((re) => re.test(m)));
    assert.deepEqual(unexpected, [], 'console errors');
  };
  return { page, rec };
}

/**
 * The page's own files as the browser loaded them: the <script> elements (src, and
 * "(module)" for native ES modules), every script file fetched (the modules they import
 * included, by path), and the paths of the stylesheets (a sheet that failed to load, e.g.
 * with a 401, is still listed: marked "(no rules)").
 */
export async function pageFiles(page) {
  return page.evaluate(() => {
    const hasRules = (sheet) => {
      try {
        return sheet.cssRules.length > 0;
      } catch {
        return false; // a failed load: the rules cannot even be read
      }
    };
    return {
      scripts: [...document.scripts].map((s) => s.getAttribute('src') + (s.type === 'module' ? ' (module)' : '')),
      fetched: [...new Set(performance.getEntriesByType('resource').map((e) => new URL(e.name).pathname)
        .filter((p) => p.endsWith('.js')))].sort(),
      styles: [...document.styleSheets].map((s) => (s.href ? new URL(s.href).pathname : 'inline') +
        (hasRules(s) ? '' : ' (no rules)')),
    };
  });
}

// ------------------------------------------------------------------ markup from data

/** Before the page loads: alert/confirm/prompt only mark window.__xss (no native dialog). */
export async function trapNativeDialogs(page) {
  await page.addInitScript(() => {
    window.alert = window.confirm = window.prompt = () => { window.__xss = 'dialog'; };
  });
}

/**
 * Gives any injected handler a chance to run (`tabs` × Tab through the page, a hover at
 * `mouse`, a pause), then asserts that none did and that the DOM holds no inline handlers,
 * javascript: URLs, <img>, <style> or style attributes, and no scripts but `scripts`.
 */
export async function assertNothingInjected(page, { tabs, mouse, scripts }) {
  for (let i = 0; i < tabs; i += 1) await page.keyboard.press('Tab');
  await page.mouse.move(mouse[0], mouse[1]);
  await page.waitForTimeout(300);
  assert.equal(await page.evaluate(() => typeof window.__xss), 'undefined', 'window.__xss stays undefined');
  const injected = await page.evaluate(() => {
    const all = [...document.querySelectorAll('*')];
    return {
      handlers: all.flatMap((el) => [...el.attributes].filter((a) => /^on/i.test(a.name))
        .map((a) => `${el.tagName}[${a.name}]`)),
      jsUrls: all.flatMap((el) => [...el.attributes].filter((a) => /^\s*javascript:/i.test(a.value))
        .map((a) => `${el.tagName}[${a.name}]`)),
      imgs: document.querySelectorAll('img').length,
      scripts: [...document.scripts].map((s) => s.getAttribute('src')),
      styles: document.querySelectorAll('style, [style]').length,
    };
  });
  assert.deepEqual(injected.handlers, [], 'no inline event handler attributes');
  assert.deepEqual(injected.jsUrls, [], 'no javascript: URLs');
  assert.equal(injected.imgs, 0, 'no <img>');
  assert.deepEqual(injected.scripts, scripts, 'only the page scripts');
  assert.equal(injected.styles, 0, 'no <style> elements or style attributes');
}
