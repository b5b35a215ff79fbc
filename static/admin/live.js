// The live panel: ingest rate, consumer lag and cache hit ratio over the last 5 minutes,
// from /stats every 2 s (rates are deltas between two answers), drawn as inline SVG.
import { EMPTY, s, clear, utcText } from '../dom.js';
import { api, errorText, isUnauthorized } from './api.js';
import { announce, byId, dec1, int, isNum, plural, setArea } from './ui.js';

const STATS_EVERY_MS = 2000;
const WINDOW_MS = 5 * 60 * 1000;

const ui = {
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
};


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
  if (isUnauthorized() || paused) return;
  const mine = ++statsSeq;
  try {
    const { body } = await api('stats');
    if (mine !== statsSeq) return;
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
  if (mine === statsSeq && !isUnauthorized() && !paused) statsTimer = setTimeout(pollStats, STATS_EVERY_MS);
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

export function start() {
  setArea(ui.liveState, 'loading', 'Loading…');
  resetChart();
  pollStats();
}

export function stop() {
  clearTimeout(statsTimer);
  statsTimer = null;
  statsSeq += 1;
}

export function refused(message) {
  setArea(ui.liveState, 'unauthorized', message);
  resetChart();
}
