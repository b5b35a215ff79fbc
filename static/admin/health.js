// The health panel: each component's state from /health/ready, as text and colour, every
// few seconds.
import { h, clear, plain, utcText } from '../dom.js';
import { api, errorText, isUnauthorized } from './api.js';
import { byId, isNum, setArea } from './ui.js';
import * as token from './token.js';

const EVERY_MS = 5000;

const ui = {
  state: byId('health-state'),
  list: byId('health-list'),
  updated: byId('health-updated'),
  refresh: byId('health-refresh'),
};

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

function render(report) {
  clear(ui.list);
  for (const [key, label, states] of COMPONENTS) {
    const value = typeof report[key] === 'string' ? report[key] : null;
    const state = value && states[value] ? states[value] : 'unknown';
    const explain = value ? EXPLAIN[key + ':' + value] : null;
    ui.list.appendChild(h('li', {
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
  ui.updated.textContent = extra.join(' · ') + (extra.length ? ' · ' : '') +
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

let timer = null;
let seq = 0;

async function load() {
  clearTimeout(timer);
  timer = null;
  if (isUnauthorized()) return;
  const mine = ++seq;
  try {
    // 503 is an answer too: "unavailable", with what is missing.
    const { body } = await api('health/ready', { accept: [503] });
    if (mine !== seq) return;
    render(body);
    setArea(ui.state, body.status === 'ok' ? 'ok' : 'warn',
      body.status === 'ok' ? '' : 'The service reports “' + plain(body.status) + '”.');
  } catch (err) {
    if (mine !== seq) return;
    if (err.kind === 'unauthorized') return;
    clear(ui.list);
    setArea(ui.state, 'error', errorText('the health report', err));
  }
  if (mine === seq && !isUnauthorized()) timer = setTimeout(load, EVERY_MS);
}

ui.refresh.addEventListener('click', () => {
  if (isUnauthorized()) {
    token.focus();
    return;
  }
  load();
});

export function start() {
  setArea(ui.state, 'loading', 'Loading…');
  load();
}

export function stop() {
  clearTimeout(timer);
  timer = null;
  seq += 1;
}

export function refused(message) {
  setArea(ui.state, 'unauthorized', message);
  clear(ui.list);
  ui.updated.textContent = '';
}
