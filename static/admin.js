// Operator page of the admin listener. Plain JS, no build step, no dependencies.
//
// Dead-letter payloads, keys, details and order uids come from untrusted producers. The DOM
// is built only with the helpers of dom.js (createElement / createElementNS / textContent /
// setAttribute; no API that parses HTML is used anywhere), so any markup inside the data is
// shown literally.
'use strict';

(function () {
  const TOKEN_KEY = 'orders-admin-token';
  const STATS_EVERY_MS = 2000;
  const HEALTH_EVERY_MS = 5000;
  const WINDOW_MS = 5 * 60 * 1000;
  const TIMEOUT_MS = 15000;
  const PREVIEW_BYTES = 4096;
  const DETAIL_CUT = 160;
  const LISTED_RESULTS = 20;

  // The DOM builders and text helpers shared with the public page (dom.js, loaded first).
  const { EMPTY, h, s, clear, plain, utcText, localText } = window.OrdersDom;

  /** Page size of the dead-letter list: ?limit=N in the page's address (1–1000), else 50. */
  const PAGE_SIZE = (() => {
    const raw = new URLSearchParams(window.location.search).get('limit');
    const n = Number(raw);
    return raw !== null && Number.isInteger(n) && n >= 1 && n <= 1000 ? n : 50;
  })();

  const byId = (id) => document.getElementById(id);
  const ui = {
    status: byId('status'),
    tokenForm: byId('token-form'),
    token: byId('token'),
    tokenForget: byId('token-forget'),
    tokenStatus: byId('token-status'),
    healthState: byId('health-state'),
    healthList: byId('health-list'),
    healthUpdated: byId('health-updated'),
    healthRefresh: byId('health-refresh'),
    liveState: byId('live-state'),
    livePause: byId('live-pause'),
    liveUpdated: byId('live-updated'),
    charts: byId('charts'),
    chartRate: byId('chart-rate'),
    chartLag: byId('chart-lag'),
    chartHit: byId('chart-hit'),
    valueRate: byId('value-rate'),
    valueLag: byId('value-lag'),
    valueHit: byId('value-hit'),
    valueOrders: byId('value-orders'),
    filters: byId('filters'),
    fReason: byId('f-reason'),
    fUid: byId('f-uid'),
    fSince: byId('f-since'),
    fUntil: byId('f-until'),
    filterSummary: byId('filter-summary'),
    replaySelected: byId('replay-selected'),
    replayMatching: byId('replay-matching'),
    summary: byId('replay-summary'),
    summaryText: byId('replay-summary-text'),
    summaryCounts: byId('replay-summary-counts'),
    summaryLetters: byId('replay-summary-letters'),
    lettersState: byId('letters-state'),
    lettersBody: byId('letters-body'),
    selectPage: byId('select-page'),
    pageNewest: byId('page-newest'),
    pageNewer: byId('page-newer'),
    pageOlder: byId('page-older'),
    pageInfo: byId('page-info'),
    letter: byId('letter'),
    letterHeading: byId('letter-heading'),
    letterId: byId('letter-id'),
    letterReplay: byId('letter-replay'),
    letterFields: byId('letter-fields'),
    letterDetail: byId('letter-detail'),
    letterPayload: byId('letter-payload'),
    letterPayloadSize: byId('letter-payload-size'),
    letterReplays: byId('letter-replays'),
    letterReplaysEmpty: byId('letter-replays-empty'),
    dialog: byId('replay-dialog'),
    dialogHeading: byId('dialog-heading'),
    dialogScope: byId('dialog-scope'),
    dialogResult: byId('dialog-result'),
    dialogLetters: byId('dialog-letters'),
    dialogCancel: byId('dialog-cancel'),
    dialogConfirm: byId('dialog-confirm'),
  };

  // ---------------------------------------------------------------- helpers

  const isNum = (v) => typeof v === 'number' && Number.isFinite(v);
  const int = new Intl.NumberFormat('en', { maximumFractionDigits: 0 });
  const dec1 = new Intl.NumberFormat('en', { maximumFractionDigits: 1 });

  /** A <time> with the UTC text, the local time as its title. */
  function timeNode(raw) {
    const date = new Date(raw);
    if (typeof raw !== 'string' || Number.isNaN(date.getTime())) return document.createTextNode(plain(raw));
    return h('time', { datetime: date.toISOString(), title: 'local: ' + localText(date), text: utcText(date) });
  }

  function bytesText(n) {
    if (!isNum(n)) return EMPTY;
    if (n < 1024) return int.format(n) + ' B';
    if (n < 1024 * 1024) return dec1.format(n / 1024) + ' KiB';
    return dec1.format(n / (1024 * 1024)) + ' MiB';
  }

  function plural(n, one, many) {
    return int.format(n) + ' ' + (n === 1 ? one : many || one + 's');
  }

  function cut(text, max) {
    const str = String(text);
    return str.length > max ? str.slice(0, max - 1) + '…' : str;
  }

  /** Status line for screen readers and everyone: text only. */
  function announce(state, text) {
    ui.status.dataset.state = state;
    ui.status.textContent = text;
  }

  /** The state line of one data area (health, live, dead letters). */
  function setArea(node, state, text) {
    node.dataset.state = state;
    node.textContent = text || '';
  }

  // ---------------------------------------------------------------- token and requests

  function readToken() {
    try {
      return window.sessionStorage.getItem(TOKEN_KEY) || '';
    } catch (_) {
      return '';
    }
  }

  function storeToken(value) {
    try {
      if (value) window.sessionStorage.setItem(TOKEN_KEY, value);
      else window.sessionStorage.removeItem(TOKEN_KEY);
    } catch (_) {
      // storage unavailable (private mode, policy): the token lives in this page only
    }
  }

  let token = readToken();
  /** A request got 401 with the current token: stop asking until a new token is given. */
  let unauthorized = false;
  ui.token.value = token;

  class ApiError extends Error {
    constructor(kind, message, status, body) {
      super(message);
      this.kind = kind; // unauthorized | http | network | timeout
      this.status = status;
      this.body = body;
    }
  }

  function unauthorizedText() {
    return token
      ? 'Unauthorized (HTTP 401): the admin token was refused. Check it and enter it again under “Admin token” above.'
      : 'Unauthorized (HTTP 401): this service needs its admin token. Enter it under “Admin token” above.';
  }

  /** What an error means for a data area, in plain words. */
  function errorText(what, err) {
    if (err.kind === 'unauthorized') return unauthorizedText();
    if (err.kind === 'timeout') return 'Could not load ' + what + ': the service did not answer in time.';
    if (err.kind === 'network') return 'Could not load ' + what + ': the service cannot be reached.';
    const detail = err.body && typeof err.body.detail === 'string' ? ' ' + err.body.detail : '';
    return 'Could not load ' + what + ' (HTTP ' + err.status + ').' + detail;
  }

  /**
   * A JSON request to the admin API with the token. Resolves to {status, body} for 2xx (and
   * the statuses in opts.accept); rejects with an ApiError otherwise.
   */
  async function api(path, opts) {
    const options = opts || {};
    const headers = { Accept: 'application/json' };
    const sentToken = token;
    if (sentToken) headers.Authorization = 'Bearer ' + sentToken;
    const init = { method: options.method || 'GET', headers, cache: 'no-store', credentials: 'omit' };
    if (options.body !== undefined) {
      headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(options.body);
    }
    const controller = new AbortController();
    init.signal = controller.signal;
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      controller.abort();
    }, TIMEOUT_MS);
    let res;
    let body = null;
    try {
      res = await fetch(path, init);
      try {
        body = await res.json();
      } catch (_) {
        body = null;
      }
    } catch (_) {
      throw new ApiError(timedOut ? 'timeout' : 'network', 'network error');
    } finally {
      clearTimeout(timer);
    }
    if (res.status === 401) {
      if (sentToken === token) onUnauthorized();
      throw new ApiError('unauthorized', 'unauthorized', 401, body);
    }
    const accepted = res.ok || (options.accept || []).includes(res.status);
    if (!accepted || body === null || typeof body !== 'object') {
      throw new ApiError('http', 'HTTP ' + res.status, res.status, body);
    }
    return { status: res.status, body };
  }

  function onUnauthorized() {
    if (unauthorized) return;
    unauthorized = true;
    stopPolling();
    ui.token.setAttribute('aria-invalid', 'true');
    ui.tokenForm.dataset.state = 'needed';
    ui.tokenStatus.dataset.state = 'error';
    ui.tokenStatus.textContent = token
      ? 'This token was refused (HTTP 401). Enter the service’s ADMIN_TOKEN.'
      : 'The service needs its admin token (HTTP 401). Enter it here.';
    const msg = unauthorizedText();
    setArea(ui.healthState, 'unauthorized', msg);
    setArea(ui.liveState, 'unauthorized', msg);
    setArea(ui.lettersState, 'unauthorized', msg);
    // Personal data does not stay on screen once the service refuses this token.
    clear(ui.healthList);
    ui.healthUpdated.textContent = '';
    resetChart();
    clearLetters();
    announce('error', msg);
    const active = document.activeElement;
    if ((!active || active === document.body) && !ui.dialog.open) ui.token.focus();
  }

  function onAuthorized() {
    if (ui.tokenForm.dataset.state === 'ok') return;
    if (ui.tokenForm.dataset.state === 'checking') {
      announce('ok', token ? 'Token accepted; showing the service’s data.' : 'The service answers without a token.');
    }
    ui.tokenForm.dataset.state = 'ok';
    ui.token.removeAttribute('aria-invalid');
    ui.tokenStatus.dataset.state = 'ok';
    ui.tokenStatus.textContent = token
      ? 'Token accepted.'
      : 'No token given: the service accepts requests without one.';
  }

  ui.tokenForm.addEventListener('submit', (event) => {
    event.preventDefault();
    useToken(ui.token.value.trim());
  });

  ui.tokenForget.addEventListener('click', () => {
    ui.token.value = '';
    useToken('');
  });

  function useToken(value) {
    token = value;
    storeToken(value);
    unauthorized = false;
    ui.tokenForm.dataset.state = 'checking';
    ui.token.removeAttribute('aria-invalid');
    ui.tokenStatus.dataset.state = 'idle';
    ui.tokenStatus.textContent = value ? 'Checking the token…' : 'Token forgotten. Checking whether the service needs one…';
    announce('loading', value ? 'Token saved for this tab; loading.' : 'Token forgotten; loading.');
    startAll();
  }

  // ---------------------------------------------------------------- health

  const COMPONENTS = [
    ['status', 'Service', { ok: 'good', degraded: 'warn', unavailable: 'bad' }],
    ['database', 'Database', { up: 'good', down: 'bad' }],
    ['kafka', 'Kafka', { up: 'good', down: 'bad' }],
    ['topic', 'Orders topic', { present: 'good', missing: 'bad', unknown: 'warn' }],
    ['dlq', 'DLQ topic', { ok: 'good', off: 'neutral', missing: 'warn', failing: 'warn' }],
    ['cache', 'Cache', { warm: 'good', warming: 'warn' }],
    ['ingest', 'Ingest', { running: 'good', retrying: 'warn', blocked: 'bad' }],
  ];

  const EXPLAIN = {
    'status:degraded': 'serving and ingesting; the DLQ topic fails',
    'status:unavailable': 'cannot serve or ingest',
    'database:down': 'reads and writes wait for it',
    'kafka:down': 'no new messages are read',
    'topic:missing': 'the orders topic does not exist',
    'topic:unknown': 'Kafka not reached yet',
    'dlq:off': 'dead letters go to the table only',
    'dlq:missing': 'the DLQ topic does not exist; the table keeps them',
    'dlq:failing': 'publishing fails; the table keeps them',
    'cache:warming': 'loading recent orders',
    'ingest:retrying': 'the database does not answer',
    'ingest:blocked': 'the database refuses a message and its dead letter',
  };

  const SYMBOL = { good: '✓', warn: '!', bad: '✕', neutral: '–', unknown: '?' };
  const STATE_WORD = { good: 'fine', warn: 'attention', bad: 'problem', neutral: 'info', unknown: 'unknown' };

  function renderHealth(report) {
    clear(ui.healthList);
    for (const [key, label, states] of COMPONENTS) {
      const value = typeof report[key] === 'string' ? report[key] : null;
      const state = value && states[value] ? states[value] : 'unknown';
      const explain = value ? EXPLAIN[key + ':' + value] : null;
      ui.healthList.appendChild(h('li', {
        className: 'health-item state-' + state,
        'data-component': key,
        'data-state': state,
      }, [
        h('span', { className: 'health-symbol', 'aria-hidden': 'true', text: SYMBOL[state] }),
        h('span', { className: 'health-name', text: label }),
        h('span', { className: 'health-value', 'data-testid': 'health-value', text: value === null ? 'unknown' : value }),
        h('span', { className: 'visually-hidden', text: ' (' + STATE_WORD[state] + ')' }),
        explain ? h('span', { className: 'health-explain', text: explain }) : null,
      ]));
    }
    const extra = [];
    if (typeof report.phase === 'string') extra.push('phase: ' + report.phase);
    if (isNum(report.uptime_seconds)) extra.push('up ' + durationText(report.uptime_seconds));
    ui.healthUpdated.textContent = extra.join(' · ') + (extra.length ? ' · ' : '') +
      'checked ' + utcText(new Date());
  }

  function durationText(seconds) {
    const d = Math.floor(seconds / 86400);
    const hh = Math.floor((seconds % 86400) / 3600);
    const m = Math.floor((seconds % 3600) / 60);
    const sec = Math.floor(seconds % 60);
    if (d > 0) return d + ' d ' + hh + ' h';
    if (hh > 0) return hh + ' h ' + m + ' min';
    if (m > 0) return m + ' min ' + sec + ' s';
    return sec + ' s';
  }

  let healthTimer = null;
  let healthSeq = 0;

  async function loadHealth() {
    clearTimeout(healthTimer);
    healthTimer = null;
    if (unauthorized) return;
    const mine = ++healthSeq;
    try {
      // 503 is an answer too: "unavailable", with what is missing.
      const { body } = await api('health/ready', { accept: [503] });
      if (mine !== healthSeq) return;
      onAuthorized();
      renderHealth(body);
      setArea(ui.healthState, body.status === 'ok' ? 'ok' : 'warn',
        body.status === 'ok' ? '' : 'The service reports “' + plain(body.status) + '”.');
    } catch (err) {
      if (mine !== healthSeq) return;
      if (err.kind === 'unauthorized') return;
      clear(ui.healthList);
      setArea(ui.healthState, 'error', errorText('the health report', err));
    }
    if (mine === healthSeq && !unauthorized) healthTimer = setTimeout(loadHealth, HEALTH_EVERY_MS);
  }

  ui.healthRefresh.addEventListener('click', () => {
    if (unauthorized) {
      ui.token.focus();
      return;
    }
    loadHealth();
  });

  // ---------------------------------------------------------------- live chart

  /** One point per /stats answer: {t, rate, lag, hit, ...}; rate and hit need the previous answer. */
  let points = [];
  let previous = null;
  let statsTimer = null;
  let statsSeq = 0;
  let paused = false;

  function lagOf(consumer) {
    if (!consumer || typeof consumer !== 'object') return { value: 0, none: true, unknown: 0 };
    let value = 0;
    let unknown = 0;
    for (const p of Array.isArray(consumer.partitions) ? consumer.partitions : []) {
      if (p && isNum(p.lag)) value += p.lag;
      // An empty partition has no position and nothing to read: no lag, not unknown.
      else if (!(p && p.high_watermark === 0)) unknown += 1;
    }
    return { value, none: false, unknown, paused: consumer.paused === true };
  }

  function addSample(stats) {
    const now = Date.now();
    const since = stats.since_start || {};
    const cache = stats.cache || {};
    const sample = {
      t: now,
      uptime: isNum(stats.uptime_seconds) ? stats.uptime_seconds : null,
      consumed: isNum(since.messages_consumed) ? since.messages_consumed : null,
      hits: isNum(cache.hits) ? cache.hits : null,
      misses: isNum(cache.misses) ? cache.misses : null,
    };
    const lag = lagOf(stats.consumer);
    const point = { t: now, rate: null, hit: null, lookups: null, lag: lag.value, lagInfo: lag, reset: false };
    const prev = previous;
    // Counters only grow while the process lives; a drop means a restart: no delta across it.
    const restarted = prev && (sample.uptime !== null && prev.uptime !== null && sample.uptime < prev.uptime);
    if (prev && !restarted) {
      const dt = (sample.t - prev.t) / 1000;
      if (dt > 0 && sample.consumed !== null && prev.consumed !== null) {
        if (sample.consumed >= prev.consumed) point.rate = (sample.consumed - prev.consumed) / dt;
        else point.reset = true;
      }
      if (sample.hits !== null && prev.hits !== null && sample.misses !== null && prev.misses !== null) {
        if (sample.hits >= prev.hits && sample.misses >= prev.misses) {
          const hits = sample.hits - prev.hits;
          const lookups = hits + (sample.misses - prev.misses);
          point.lookups = lookups;
          point.hit = lookups > 0 ? (100 * hits) / lookups : null;
        } else {
          point.reset = true;
        }
      }
    } else if (restarted) {
      point.reset = true;
    }
    previous = sample;
    points.push(point);
    const oldest = now - WINDOW_MS - STATS_EVERY_MS;
    while (points.length && points[0].t < oldest) points.shift();
    return { stats, point, sample };
  }

  function renderValues(stats, point) {
    const lag = point.lagInfo;
    const waiting = point.reset ? ' (the counters restarted: measuring again)' : ' (needs two updates)';
    ui.valueRate.textContent = point.rate === null
      ? EMPTY + waiting
      : dec1.format(point.rate) + ' messages/s';
    if (lag.none) {
      ui.valueLag.textContent = 'none (the consumer has not started)';
    } else {
      let text = plural(lag.value, 'message');
      if (lag.unknown > 0) text += ' (' + plural(lag.unknown, 'partition') + ' without a position yet)';
      if (lag.paused) text += ', consumer paused';
      ui.valueLag.textContent = text;
    }
    const cache = stats.cache || {};
    const total = isNum(cache.hits) && isNum(cache.misses) ? cache.hits + cache.misses : null;
    const sinceStart = total ? ' · ' + dec1.format((100 * cache.hits) / total) + ' % of ' +
      plural(total, 'lookup') + ' since start' : '';
    if (point.hit !== null) {
      ui.valueHit.textContent = dec1.format(point.hit) + ' % (' + plural(point.lookups, 'lookup') +
        ' in the last update)' + sinceStart;
    } else {
      ui.valueHit.textContent = EMPTY + (point.lookups === null ? waiting : ' (no lookups in the last update)') + sinceStart;
    }
    ui.valueOrders.textContent = isNum(stats.orders_stored)
      ? int.format(stats.orders_stored)
      : EMPTY + ' (the database is not answering)';
    if (typeof stats.orders_stored_counted_at === 'string') {
      const at = new Date(stats.orders_stored_counted_at);
      if (!Number.isNaN(at.getTime())) ui.valueOrders.setAttribute('title', 'counted at ' + utcText(at));
    }
  }

  function niceMax(value) {
    if (!(value > 0)) return 1;
    const exp = Math.pow(10, Math.floor(Math.log10(value)));
    for (const step of [1, 2, 2.5, 5, 10]) {
      if (value <= step * exp) return step * exp;
    }
    return 10 * exp;
  }

  function axisText(value, unit) {
    if (unit === '%') return int.format(value) + ' %';
    if (value >= 10000) return dec1.format(value / 1000) + 'k';
    return Number.isInteger(value) ? int.format(value) : dec1.format(value);
  }

  const CHARTS = [
    { key: 'rate', box: () => ui.chartRate, label: 'Ingest rate', unit: 'messages/s' },
    { key: 'lag', box: () => ui.chartLag, label: 'Consumer lag', unit: 'messages' },
    { key: 'hit', box: () => ui.chartHit, label: 'Cache hit ratio', unit: '%', max: 100 },
  ];

  /** Draws one series into its box as an inline SVG sized to the box (no scaling of text). */
  function drawChart(spec, now) {
    const box = spec.box();
    const width = Math.max(220, Math.floor(box.clientWidth || 320));
    const height = 104;
    const m = { l: 46, r: 10, t: 8, b: 20 };
    const plotW = width - m.l - m.r;
    const plotH = height - m.t - m.b;
    const start = now - WINDOW_MS;
    const series = points.filter((p) => p.t >= start);
    const values = series.map((p) => p[spec.key]).filter((v) => v !== null);
    const peak = values.length ? Math.max(...values) : 0;
    const max = spec.max || niceMax(peak);
    const x = (t) => m.l + ((t - start) / WINDOW_MS) * plotW;
    const y = (v) => m.t + (1 - Math.min(v, max) / max) * plotH;

    const grid = [];
    for (const frac of [0, 0.5, 1]) {
      const v = max * frac;
      const gy = y(v);
      grid.push(s('line', { className: 'grid-line', x1: m.l, x2: width - m.r, y1: gy, y2: gy }));
      grid.push(s('text', {
        className: 'axis-label', x: m.l - 6, y: gy + 4, 'text-anchor': 'end', text: axisText(v, spec.unit),
      }));
    }
    // A label per minute when there is room for it, else only at both ends.
    const everyMinute = plotW / 5 >= 56;
    for (let min = 5; min >= 0; min -= 1) {
      const gx = x(now - min * 60000);
      grid.push(s('line', { className: 'grid-tick', x1: gx, x2: gx, y1: m.t + plotH, y2: m.t + plotH + 4 }));
      if (!everyMinute && min !== 5 && min !== 0) continue;
      grid.push(s('text', {
        className: 'axis-label',
        x: gx,
        y: height - 4,
        'text-anchor': min === 5 ? 'start' : min === 0 ? 'end' : 'middle',
        text: min === 0 ? 'now' : '−' + min + ' min',
      }));
    }

    // A line through the points; it breaks where a value is missing or updates stopped.
    let d = '';
    let plotted = 0;
    let last = null;
    let lastT = null;
    for (const p of series) {
      const v = p[spec.key];
      if (v === null) {
        lastT = null;
        continue;
      }
      const px = x(p.t).toFixed(1);
      const py = y(v).toFixed(1);
      const gap = lastT === null || p.t - lastT > 3 * STATS_EVERY_MS;
      d += (gap ? 'M' : 'L') + px + ' ' + py + ' ';
      lastT = p.t;
      last = { px, py };
      plotted += 1;
    }
    const current = series.length ? series[series.length - 1][spec.key] : null;
    const summary = spec.label + ' over the last 5 minutes: ' +
      (current === null ? 'no current value' : 'now ' + axisText(current, spec.unit) + (spec.unit === '%' ? '' : ' ' + spec.unit)) +
      (values.length ? ', peak ' + axisText(peak, spec.unit) + (spec.unit === '%' ? '' : ' ' + spec.unit) : '') + '.';

    const svg = s('svg', {
      className: 'chart-svg',
      viewBox: '0 0 ' + width + ' ' + height,
      width,
      height,
      role: 'img',
      'aria-label': summary,
      focusable: 'false',
    }, [
      s('rect', { className: 'plot-bg', x: m.l, y: m.t, width: plotW, height: plotH }),
      ...grid,
      s('path', {
        className: 'series',
        d: d.trim() || 'M0 0',
        'data-points': plotted,
        visibility: plotted ? 'visible' : 'hidden',
      }),
      last ? s('circle', { className: 'series-dot', cx: last.px, cy: last.py, r: 3 }) : null,
    ]);
    box.dataset.points = String(plotted);
    clear(box);
    box.appendChild(svg);
  }

  function renderCharts() {
    const now = Date.now();
    for (const spec of CHARTS) drawChart(spec, now);
    ui.charts.dataset.samples = String(points.length);
  }

  function resetChart() {
    points = [];
    previous = null;
    for (const v of [ui.valueRate, ui.valueLag, ui.valueHit, ui.valueOrders]) v.textContent = EMPTY;
    ui.liveUpdated.textContent = '';
    renderCharts();
  }

  async function pollStats() {
    clearTimeout(statsTimer);
    statsTimer = null;
    if (unauthorized || paused) return;
    const mine = ++statsSeq;
    try {
      const { body } = await api('stats');
      if (mine !== statsSeq) return;
      onAuthorized();
      const { point } = addSample(body);
      renderValues(body, point);
      renderCharts();
      setArea(ui.liveState, 'ok', '');
      ui.liveUpdated.textContent = 'Updated ' + utcText(new Date()) + ' · every ' +
        STATS_EVERY_MS / 1000 + ' s';
    } catch (err) {
      if (mine !== statsSeq || err.kind === 'unauthorized') return;
      // No delta across a failed update: the next answer starts a new segment.
      previous = null;
      setArea(ui.liveState, 'error', errorText('statistics', err) + ' Retrying every ' +
        STATS_EVERY_MS / 1000 + ' s.');
    }
    if (mine === statsSeq && !unauthorized && !paused) statsTimer = setTimeout(pollStats, STATS_EVERY_MS);
  }

  ui.livePause.addEventListener('click', () => {
    paused = !paused;
    ui.livePause.setAttribute('aria-pressed', String(paused));
    ui.livePause.textContent = paused ? 'Resume' : 'Pause';
    if (paused) {
      clearTimeout(statsTimer);
      statsTimer = null;
      statsSeq += 1;
      previous = null;
      announce('idle', 'Live updates paused.');
    } else {
      announce('idle', 'Live updates resumed.');
      pollStats();
    }
  });

  let resizeFrame = 0;
  if (typeof ResizeObserver === 'function') {
    new ResizeObserver(() => {
      cancelAnimationFrame(resizeFrame);
      resizeFrame = requestAnimationFrame(renderCharts);
    }).observe(ui.charts);
  }

  function stopPolling() {
    clearTimeout(statsTimer);
    clearTimeout(healthTimer);
    statsTimer = null;
    healthTimer = null;
    statsSeq += 1;
    healthSeq += 1;
  }

  // ---------------------------------------------------------------- dead letters

  /** The filters the list shows (API values), applied on submit. */
  let applied = { reason: '', order_uid: '', since: '', until: '' };
  /** `before` of every page visited; the last one is the page shown (null: the newest). */
  let cursors = [null];
  let nextBefore = null;
  let letters = [];
  /** Letters ticked for "Replay selected", by id (kept across pages, cleared by new filters). */
  const ticked = new Set();
  let shownId = null;
  let lettersSeq = 0;

  /** A datetime-local input (the visitor's time) → RFC 3339 UTC; empty → ''; null when incomplete. */
  function rfc3339(input) {
    if (input.validity && input.validity.badInput) return null;
    if (!input.value) return '';
    const date = new Date(input.value);
    return Number.isNaN(date.getTime()) ? null : date.toISOString();
  }

  function markInvalid(input, invalid) {
    if (invalid) input.setAttribute('aria-invalid', 'true');
    else input.removeAttribute('aria-invalid');
  }

  function filterWords(f) {
    const parts = [];
    if (f.reason) parts.push('reason ' + f.reason);
    if (f.order_uid) parts.push('order uid “' + f.order_uid + '”');
    if (f.since) parts.push('received since ' + utcText(new Date(f.since)));
    if (f.until) parts.push('received before ' + utcText(new Date(f.until)));
    return parts;
  }

  function lettersQuery(before) {
    const q = new URLSearchParams();
    if (applied.reason) q.set('reason', applied.reason);
    if (applied.order_uid) q.set('order_uid', applied.order_uid);
    if (applied.since) q.set('since', applied.since);
    if (applied.until) q.set('until', applied.until);
    if (before !== null && before !== undefined) q.set('before', String(before));
    q.set('limit', String(PAGE_SIZE));
    return 'dead-letters?' + q.toString();
  }

  function clearLetters() {
    letters = [];
    nextBefore = null;
    clear(ui.lettersBody);
    hideLetter();
    updatePager();
    updateReplayButtons();
  }

  function lastReplay(letter) {
    const replays = Array.isArray(letter.replays) ? letter.replays : [];
    return replays.length ? replays[replays.length - 1] : null;
  }

  function resultText(replay) {
    if (!replay) return EMPTY;
    return replay.reason ? plain(replay.result) + ' (' + plain(replay.reason) + ')' : plain(replay.result);
  }

  function letterRow(letter) {
    const id = Number(letter.id);
    const box = h('input', {
      type: 'checkbox',
      className: 'tick',
      'data-testid': 'letter-tick',
      'aria-label': 'Select dead letter ' + id + ' for replay',
    });
    box.checked = ticked.has(id);
    box.addEventListener('change', () => {
      if (box.checked) ticked.add(id);
      else ticked.delete(id);
      updateReplayButtons();
    });
    const show = h('button', {
      type: 'button',
      className: 'link-button',
      'data-testid': 'letter-show',
      'aria-controls': 'letter',
      'aria-label': 'Show dead letter ' + id,
      text: String(id),
    });
    show.addEventListener('click', () => showLetter(id, true));
    const replay = lastReplay(letter);
    const detail = plain(letter.detail);
    return h('tr', { 'data-id': id, 'data-reason': plain(letter.reason) }, [
      h('td', { className: 'check' }, [box]),
      h('td', { className: 'num' }, [show]),
      h('td', { 'data-col': 'received', className: 'nowrap' }, [timeNode(letter.received_at)]),
      h('td', { 'data-col': 'reason' }, [h('span', { className: 'reason', text: plain(letter.reason) })]),
      h('td', { 'data-col': 'field', className: 'mono', text: plain(letter.field) }),
      h('td', { 'data-col': 'detail', className: 'detail', title: detail, text: cut(detail, DETAIL_CUT) }),
      h('td', { 'data-col': 'order_uid', className: 'mono', text: plain(letter.order_uid) }),
      h('td', { 'data-col': 'size', className: 'num nowrap', text: bytesText(letter.payload_bytes) }),
      h('td', { 'data-col': 'replay' }, [
        h('span', {
          className: 'result',
          'data-result': replay ? plain(replay.result) : 'none',
          title: replay && replay.replayed_at ? 'replayed ' + utcText(new Date(replay.replayed_at)) : null,
          text: resultText(replay),
        }),
      ]),
    ]);
  }

  function renderLetters() {
    clear(ui.lettersBody);
    for (const letter of letters) {
      if (letter && typeof letter === 'object' && isNum(letter.id)) ui.lettersBody.appendChild(letterRow(letter));
    }
    markShown();
    updatePager();
    updateReplayButtons();
  }

  function updatePager() {
    const page = cursors.length;
    ui.pageNewest.disabled = page <= 1;
    ui.pageNewer.disabled = page <= 1;
    ui.pageOlder.disabled = nextBefore === null || unauthorized;
    ui.pageInfo.textContent = letters.length
      ? 'Page ' + page + ' · ' + plural(letters.length, 'letter') +
        (letters.length === 1 ? ' (id ' + letters[0].id + ')'
          : ' (ids ' + letters[0].id + '–' + letters[letters.length - 1].id + ')') +
        (nextBefore === null ? ' · no older letters' : '')
      : '';
  }

  function updateReplayButtons() {
    const n = ticked.size;
    ui.replaySelected.disabled = n === 0 || unauthorized;
    ui.replaySelected.textContent = n ? 'Replay selected (' + n + ')' : 'Replay selected';
    ui.replayMatching.disabled = unauthorized;
    const words = filterWords(applied);
    ui.filterSummary.textContent = words.length ? 'Filters: ' + words.join(', ') : 'No filters: every dead letter';
    const onPage = letters.filter((l) => ticked.has(Number(l.id))).length;
    ui.selectPage.checked = letters.length > 0 && onPage === letters.length;
    ui.selectPage.indeterminate = onPage > 0 && onPage < letters.length;
    ui.selectPage.disabled = letters.length === 0;
  }

  /**
   * Loads the page at cursors' end. opts.announce: say what is shown in the status region;
   * opts.focusFirst: move focus to the first letter (paging by keyboard).
   */
  async function loadLetters(opts) {
    const options = opts || {};
    if (unauthorized) return;
    const mine = ++lettersSeq;
    const before = cursors[cursors.length - 1];
    setArea(ui.lettersState, 'loading', 'Loading dead letters…');
    ui.lettersBody.setAttribute('aria-busy', 'true');
    try {
      const { body } = await api(lettersQuery(before));
      if (mine !== lettersSeq) return;
      onAuthorized();
      letters = Array.isArray(body.dead_letters) ? body.dead_letters : [];
      nextBefore = isNum(body.next_before) ? body.next_before : null;
      renderLetters();
      if (shownId !== null) {
        const still = letters.find((l) => Number(l.id) === shownId);
        if (still) renderLetter(still);
        else hideLetter();
      }
      const words = filterWords(applied);
      let text;
      if (letters.length === 0) {
        text = cursors.length > 1 ? 'No older dead letters.'
          : words.length ? 'No dead letters match the filters.' : 'No dead letters: every message was stored.';
        setArea(ui.lettersState, 'empty', text);
      } else {
        text = 'Showing ' + plural(letters.length, 'dead letter') + (cursors.length > 1 ? ' (page ' + cursors.length + ')' : '') +
          (words.length ? ' matching ' + words.join(', ') : '') + '.';
        setArea(ui.lettersState, 'ok', '');
      }
      if (options.announce) announce('ok', text);
      if (options.focusFirst) {
        const first = ui.lettersBody.querySelector('button[data-testid="letter-show"]');
        if (first) first.focus();
      }
    } catch (err) {
      if (mine !== lettersSeq) return;
      if (err.kind === 'unauthorized') return;
      clear(ui.lettersBody);
      letters = [];
      nextBefore = null;
      updatePager();
      updateReplayButtons();
      const text = err.status === 400
        ? 'The service refused the filters: ' + plain(err.body && err.body.detail)
        : errorText('dead letters', err);
      setArea(ui.lettersState, 'error', text);
      if (options.announce) announce('error', text);
    } finally {
      if (mine === lettersSeq) ui.lettersBody.removeAttribute('aria-busy');
    }
  }

  function applyFilters() {
    const since = rfc3339(ui.fSince);
    const until = rfc3339(ui.fUntil);
    markInvalid(ui.fSince, since === null);
    markInvalid(ui.fUntil, until === null);
    if (since === null || until === null) {
      const text = 'Enter a complete date and time, or leave the field empty.';
      setArea(ui.lettersState, 'error', text);
      announce('error', text);
      (since === null ? ui.fSince : ui.fUntil).focus();
      return;
    }
    applied = { reason: ui.fReason.value, order_uid: ui.fUid.value.trim(), since, until };
    cursors = [null];
    ticked.clear();
    if (unauthorized) {
      updateReplayButtons();
      announce('error', unauthorizedText());
      ui.token.focus();
      return;
    }
    loadLetters({ announce: true });
  }

  ui.filters.addEventListener('submit', (event) => {
    event.preventDefault();
    applyFilters();
  });
  // "Reset" empties the fields (the browser does that after this event) and shows every letter.
  ui.filters.addEventListener('reset', () => setTimeout(applyFilters, 0));

  ui.pageOlder.addEventListener('click', () => {
    if (nextBefore === null) return;
    cursors.push(nextBefore);
    loadLetters({ announce: true, focusFirst: true });
  });
  ui.pageNewer.addEventListener('click', () => {
    if (cursors.length > 1) cursors.pop();
    loadLetters({ announce: true, focusFirst: true });
  });
  ui.pageNewest.addEventListener('click', () => {
    cursors = [null];
    loadLetters({ announce: true, focusFirst: true });
  });

  ui.selectPage.addEventListener('change', () => {
    for (const l of letters) {
      if (ui.selectPage.checked) ticked.add(Number(l.id));
      else ticked.delete(Number(l.id));
    }
    for (const box of ui.lettersBody.querySelectorAll('input.tick')) box.checked = ui.selectPage.checked;
    updateReplayButtons();
  });

  // ---------------------------------------------------------------- one letter

  function markShown() {
    for (const btn of ui.lettersBody.querySelectorAll('button[data-testid="letter-show"]')) {
      const row = btn.closest('tr');
      if (row && Number(row.dataset.id) === shownId) {
        btn.setAttribute('aria-current', 'true');
        row.classList.add('shown');
      } else {
        btn.removeAttribute('aria-current');
        if (row) row.classList.remove('shown');
      }
    }
  }

  function hideLetter() {
    shownId = null;
    ui.letter.hidden = true;
    markShown();
  }

  function field(label, value, key) {
    const dd = h('dd', { 'data-field': key });
    if (value instanceof Node) dd.appendChild(value);
    else dd.textContent = plain(value);
    return h('div', { className: 'field' }, [h('dt', { text: label }), dd]);
  }

  function renderLetter(letter) {
    ui.letterId.textContent = String(letter.id);
    clear(ui.letterFields);
    const received = new Date(letter.received_at);
    const receivedNode = Number.isNaN(received.getTime())
      ? plain(letter.received_at)
      : h('span', null, [timeNode(letter.received_at), h('span', { className: 'sub', text: 'local: ' + localText(received) })]);
    for (const [label, value, key] of [
      ['Reason', letter.reason, 'reason'],
      ['Field', letter.field, 'field'],
      ['Order uid', letter.order_uid, 'order_uid'],
      ['Key', letter.key, 'key'],
      ['Received', receivedNode, 'received_at'],
      ['Topic', letter.topic, 'topic'],
      ['Partition / offset', plain(letter.partition) + ' / ' + plain(letter.offset), 'position'],
      ['Payload size', isNum(letter.payload_bytes) ? int.format(letter.payload_bytes) + ' bytes' : null, 'payload_bytes'],
    ]) {
      ui.letterFields.appendChild(field(label, value, key));
    }
    ui.letterDetail.textContent = plain(letter.detail);
    // The payload as text: never parsed, never markup.
    const payload = typeof letter.payload === 'string' ? letter.payload : '';
    ui.letterPayload.textContent = payload;
    ui.letterPayload.classList.toggle('empty', payload === '');
    const size = isNum(letter.payload_bytes) ? letter.payload_bytes : null;
    ui.letterPayloadSize.textContent = size === null ? ''
      : size === 0 ? '(empty)'
        : size > PREVIEW_BYTES ? '(the first ' + int.format(PREVIEW_BYTES) + ' of ' + int.format(size) + ' bytes)'
          : '(' + plural(size, 'byte') + ')';
    clear(ui.letterReplays);
    const replays = Array.isArray(letter.replays) ? letter.replays : [];
    for (const r of replays) {
      ui.letterReplays.appendChild(h('li', { 'data-result': plain(r.result) }, [
        timeNode(r.replayed_at),
        ' — ',
        h('span', { className: 'result', 'data-result': plain(r.result), text: resultText(r) }),
        r.detail ? h('span', { className: 'sub', text: String(r.detail) }) : null,
      ]));
    }
    ui.letterReplaysEmpty.hidden = replays.length > 0;
    const settled = replays.some((r) => ['stored', 'duplicate', 'conflict'].includes(r.result));
    ui.letterReplay.disabled = settled || unauthorized;
    ui.letterReplay.title = settled ? 'Settled by an earlier replay: nothing left to do' : '';
    ui.letter.hidden = false;
  }

  function showLetter(id, focus) {
    const letter = letters.find((l) => Number(l.id) === id);
    if (!letter) return;
    shownId = id;
    renderLetter(letter);
    markShown();
    if (focus) ui.letterHeading.focus();
  }

  // ---------------------------------------------------------------- replay

  /** The replay being prepared in the dialog: {body, opener, count}. */
  let pending = null;
  let dialogSeq = 0;
  let replaying = false;

  function countsList(list, summary, keys) {
    clear(list);
    for (const key of keys) {
      const n = isNum(summary[key]) ? summary[key] : 0;
      list.appendChild(h('div', { className: 'count', 'data-count': key }, [
        h('dt', { text: key }),
        h('dd', { 'data-testid': 'count-' + key, text: int.format(n) }),
      ]));
    }
  }

  function resultsList(list, summary) {
    clear(list);
    const rows = Array.isArray(summary.letters) ? summary.letters : [];
    for (const r of rows.slice(0, LISTED_RESULTS)) {
      list.appendChild(h('li', { 'data-id': plain(r.id), 'data-result': plain(r.result) }, [
        h('span', { className: 'mono', text: 'letter ' + plain(r.id) }),
        r.order_uid ? h('span', { className: 'mono muted', text: ' ' + String(r.order_uid) }) : null,
        ' — ',
        h('span', { className: 'result', 'data-result': plain(r.result), text: r.reason ? r.result + ' (' + r.reason + ')' : plain(r.result) }),
      ]));
    }
    if (rows.length > LISTED_RESULTS || (isNum(summary.selected) && summary.selected > rows.length)) {
      const more = (isNum(summary.selected) ? summary.selected : rows.length) - Math.min(rows.length, LISTED_RESULTS);
      if (more > 0) list.appendChild(h('li', { className: 'muted', text: '… and ' + plural(more, 'more letter') }));
    }
  }

  function dryRunText(d) {
    if (!d.selected) return 'Dry run: nothing to replay. No unsettled dead letter matches.';
    return 'Dry run: ' + plural(d.selected, 'letter') + ' selected — ' + int.format(d.valid) +
      ' valid (would be written), ' + int.format(d.rejected) + ' rejected, ' + int.format(d.unchanged) +
      ' unchanged (still rejected for the same reason).';
  }

  function replayText(d) {
    return 'Replayed ' + plural(d.selected, 'dead letter') + ': ' + int.format(d.stored) + ' stored, ' +
      int.format(d.duplicate) + ' duplicate, ' + int.format(d.conflict) + ' conflict, ' +
      int.format(d.rejected) + ' rejected, ' + int.format(d.unchanged) + ' unchanged.';
  }

  function openReplay(kind, opener) {
    if (unauthorized) {
      announce('error', unauthorizedText());
      ui.token.focus();
      return;
    }
    let body;
    let scope;
    if (kind === 'matching') {
      body = {};
      if (applied.reason) body.reason = [applied.reason];
      if (applied.order_uid) body.order_uid = applied.order_uid;
      if (applied.since) body.since = applied.since;
      if (applied.until) body.until = applied.until;
      const words = filterWords(applied);
      scope = words.length
        ? 'Every unsettled dead letter matching the filters: ' + words.join(', ') + '.'
        : 'No filters are applied: every unsettled dead letter.';
    } else {
      const ids = kind === 'letter' ? [shownId] : [...ticked].sort((a, b) => a - b);
      if (!ids.length || ids[0] === null) return;
      body = { id: ids };
      scope = ids.length === 1 ? 'Dead letter ' + ids[0] + '.'
        : plural(ids.length, 'selected dead letter') + ': ' + cut(ids.join(', '), 200) + '.';
    }
    const mine = ++dialogSeq;
    pending = { body, opener, count: 0 };
    replaying = false;
    ui.dialog.returnValue = '';
    ui.dialogScope.textContent = scope;
    ui.dialogResult.dataset.state = 'loading';
    ui.dialogResult.textContent = 'Dry run: checking what the replay would do…';
    clear(ui.dialogLetters);
    ui.dialogConfirm.disabled = true;
    ui.dialogConfirm.textContent = 'Replay';
    ui.dialogCancel.textContent = 'Cancel';
    ui.dialog.removeAttribute('aria-busy');
    ui.dialog.showModal();
    ui.dialogCancel.focus();
    dryRun(mine);
  }

  async function dryRun(mine) {
    try {
      const { body } = await api('dead-letters/replay', { method: 'POST', body: { ...pending.body, dry_run: true } });
      if (mine !== dialogSeq || !ui.dialog.open) return;
      const count = isNum(body.selected) ? body.selected : 0;
      pending.count = count;
      ui.dialogResult.dataset.state = count ? 'ok' : 'empty';
      clear(ui.dialogResult);
      ui.dialogResult.appendChild(h('p', { 'data-testid': 'dry-run-text', text: dryRunText(body) }));
      const counts = h('dl', { className: 'counts' });
      countsList(counts, body, ['selected', 'valid', 'rejected', 'unchanged']);
      ui.dialogResult.appendChild(counts);
      resultsList(ui.dialogLetters, body);
      if (count) {
        ui.dialogConfirm.disabled = false;
        ui.dialogConfirm.textContent = 'Replay ' + plural(count, 'letter');
      } else {
        ui.dialogCancel.textContent = 'Close';
      }
    } catch (err) {
      if (mine !== dialogSeq || !ui.dialog.open) return;
      ui.dialogResult.dataset.state = 'error';
      ui.dialogResult.textContent = err.status === 400
        ? 'The service refused the replay: ' + plain(err.body && err.body.detail)
        : errorText('the dry run', err).replace('Could not load', 'Could not run');
      ui.dialogCancel.textContent = 'Close';
    }
  }

  async function confirmReplay() {
    if (!pending || replaying) return;
    const mine = dialogSeq;
    replaying = true;
    ui.dialogConfirm.disabled = true;
    ui.dialogCancel.disabled = true;
    ui.dialog.setAttribute('aria-busy', 'true');
    ui.dialogResult.dataset.state = 'loading';
    ui.dialogResult.textContent = 'Replaying ' + plural(pending.count, 'letter') + '…';
    let outcome = null;
    let failure = null;
    try {
      const { body } = await api('dead-letters/replay', { method: 'POST', body: { ...pending.body, dry_run: false } });
      outcome = body;
    } catch (err) {
      failure = err;
    }
    replaying = false;
    ui.dialogCancel.disabled = false;
    ui.dialog.removeAttribute('aria-busy');
    if (mine !== dialogSeq) return;
    if (failure) {
      ui.dialogResult.dataset.state = 'error';
      ui.dialogResult.textContent = failure.status === 400
        ? 'The service refused the replay: ' + plain(failure.body && failure.body.detail)
        : errorText('the replay', failure).replace('Could not load', 'Could not run') +
          ' Some letters may have been replayed: the list shows their results.';
      ui.dialogCancel.textContent = 'Close';
      ui.dialogCancel.focus();
      loadLetters();
      return;
    }
    ui.dialog.close('done');
    showSummary(outcome);
    for (const r of Array.isArray(outcome.letters) ? outcome.letters : []) {
      if (['stored', 'duplicate', 'conflict'].includes(r.result)) ticked.delete(Number(r.id));
    }
    updateReplayButtons();
    loadLetters();
  }

  function showSummary(d) {
    const text = replayText(d);
    ui.summaryText.textContent = text + ' (' + utcText(new Date()) + ')';
    countsList(ui.summaryCounts, d, ['selected', 'stored', 'duplicate', 'conflict', 'rejected', 'unchanged']);
    resultsList(ui.summaryLetters, d);
    ui.summary.hidden = false;
    ui.summary.focus();
    announce('ok', text);
  }

  ui.replaySelected.addEventListener('click', () => openReplay('selected', ui.replaySelected));
  ui.replayMatching.addEventListener('click', () => openReplay('matching', ui.replayMatching));
  ui.letterReplay.addEventListener('click', () => openReplay('letter', ui.letterReplay));
  ui.dialogConfirm.addEventListener('click', confirmReplay);
  ui.dialogCancel.addEventListener('click', () => ui.dialog.close('cancel'));
  ui.dialog.addEventListener('cancel', (event) => {
    // Escape. Once the replay is sent it runs to its end on the service: wait for its answer.
    if (replaying) event.preventDefault();
  });
  ui.dialog.addEventListener('close', () => {
    const opener = pending && pending.opener;
    dialogSeq += 1;
    if (ui.dialog.returnValue !== 'done') {
      announce('idle', 'Replay cancelled: nothing was replayed.');
      if (opener && !opener.disabled && document.contains(opener)) opener.focus();
      else ui.replayMatching.focus();
    }
    pending = null;
  });

  // ---------------------------------------------------------------- start

  function startAll() {
    stopPolling();
    setArea(ui.healthState, 'loading', 'Loading…');
    setArea(ui.liveState, 'loading', 'Loading…');
    resetChart();
    updateReplayButtons();
    loadHealth();
    pollStats();
    cursors = [null];
    loadLetters();
  }

  updateReplayButtons();
  startAll();
})();
