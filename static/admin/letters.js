// The dead-letters panel: the list (filters, keyset pages, selection for replay) and one
// letter (payload as text, replay history). The replay dialog is replay.js.
import { EMPTY, h, clear, plain, utcText, localText } from '../dom.js';
import { api, errorText, isUnauthorized, unauthorizedText } from './api.js';
import { PAGE_SIZE, announce, byId, bytesText, cut, field, int, isNum, plural, setArea, timeNode } from './ui.js';
import * as token from './token.js';

const PREVIEW_BYTES = 4096;
const DETAIL_CUT = 160;

const ui = {
  filters: byId('filters'),
  fReason: byId('f-reason'),
  fUid: byId('f-uid'),
  fSince: byId('f-since'),
  fUntil: byId('f-until'),
  filterSummary: byId('filter-summary'),
  replaySelected: byId('replay-selected'),
  replayMatching: byId('replay-matching'),
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
};


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
  ui.pageOlder.disabled = nextBefore === null || isUnauthorized();
  ui.pageInfo.textContent = letters.length
    ? 'Page ' + page + ' · ' + plural(letters.length, 'letter') +
      (letters.length === 1 ? ' (id ' + letters[0].id + ')'
        : ' (ids ' + letters[0].id + '–' + letters[letters.length - 1].id + ')') +
      (nextBefore === null ? ' · no older letters' : '')
    : '';
}

function updateReplayButtons() {
  const n = ticked.size;
  ui.replaySelected.disabled = n === 0 || isUnauthorized();
  ui.replaySelected.textContent = n ? 'Replay selected (' + n + ')' : 'Replay selected';
  ui.replayMatching.disabled = isUnauthorized();
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
  if (isUnauthorized()) return;
  const mine = ++lettersSeq;
  const before = cursors[cursors.length - 1];
  setArea(ui.lettersState, 'loading', 'Loading dead letters…');
  ui.lettersBody.setAttribute('aria-busy', 'true');
  try {
    const { body } = await api(lettersQuery(before));
    if (mine !== lettersSeq) return;
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
  if (isUnauthorized()) {
    updateReplayButtons();
    announce('error', unauthorizedText());
    token.focus();
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

// One letter

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
  ui.letterReplay.disabled = settled || isUnauthorized();
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

// What the replay dialog (replay.js) needs of this panel.

/** The filters the list shows, as the API takes them. */
export const appliedFilters = () => ({ ...applied });

/** The ids ticked for "Replay selected", ascending. */
export const tickedIds = () => [...ticked].sort((a, b) => a - b);

/** The id of the letter shown on the right, or null. */
export const shownLetterId = () => shownId;

/** Letters a replay settled (stored, duplicate, conflict) cannot be replayed again. */
export function settled(ids) {
  for (const id of ids) ticked.delete(id);
  updateReplayButtons();
}

export { filterWords, resultText, updateReplayButtons, loadLetters as reload };

export function start() {
  updateReplayButtons();
  cursors = [null];
  loadLetters();
}

export function stop() {
  lettersSeq += 1;
}

export function refused(message) {
  setArea(ui.lettersState, 'unauthorized', message);
  clearLetters();
}
