// The replay dialog of the dead-letters panel: a dry run first, then the replay on
// confirmation, and the last replay's summary.
import { clear, h, plain, utcText } from '../dom.js';
import { api, errorText, isUnauthorized, unauthorizedText } from './api.js';
import { announce, byId, cut, int, isNum, plural } from './ui.js';
import * as letters from './letters.js';
import * as token from './token.js';

const LISTED_RESULTS = 20;

const ui = {
  replaySelected: byId('replay-selected'),
  replayMatching: byId('replay-matching'),
  letterReplay: byId('letter-replay'),
  summary: byId('replay-summary'),
  summaryText: byId('replay-summary-text'),
  summaryCounts: byId('replay-summary-counts'),
  summaryLetters: byId('replay-summary-letters'),
  dialog: byId('replay-dialog'),
  dialogScope: byId('dialog-scope'),
  dialogResult: byId('dialog-result'),
  dialogLetters: byId('dialog-letters'),
  dialogCancel: byId('dialog-cancel'),
  dialogConfirm: byId('dialog-confirm'),
};


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
  if (isUnauthorized()) {
    announce('error', unauthorizedText());
    token.focus();
    return;
  }
  let body;
  let scope;
  if (kind === 'matching') {
    const applied = letters.appliedFilters();
    body = {};
    if (applied.reason) body.reason = [applied.reason];
    if (applied.order_uid) body.order_uid = applied.order_uid;
    if (applied.since) body.since = applied.since;
    if (applied.until) body.until = applied.until;
    const words = letters.filterWords(applied);
    scope = words.length
      ? 'Every unsettled dead letter matching the filters: ' + words.join(', ') + '.'
      : 'No filters are applied: every unsettled dead letter.';
  } else {
    const ids = kind === 'letter' ? [letters.shownLetterId()] : letters.tickedIds();
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
    letters.reload();
    return;
  }
  ui.dialog.close('done');
  showSummary(outcome);
  letters.settled((Array.isArray(outcome.letters) ? outcome.letters : [])
    .filter((r) => ['stored', 'duplicate', 'conflict'].includes(r.result))
    .map((r) => Number(r.id)));
  letters.reload();
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

/** Whether the dialog is open (a refused token does not pull the focus out of it). */
export const isOpen = () => ui.dialog.open;
