// Operator page of the admin listener: native ES modules, no build step, no dependencies.
// One module per panel (token, health, live, orders, letters with replay) over shared
// helpers (dom.js, ui.js, api.js).
//
// Dead-letter payloads, keys, details, order fields and ids come from untrusted producers.
// The DOM is built only with the helpers of dom.js (createElement / createElementNS /
// textContent / setAttribute; no API that parses HTML is used anywhere), so any markup
// inside the data is shown literally.
import { onAuth, unauthorizedText } from './api.js';
import { announce } from './ui.js';
import * as token from './token.js';
import * as health from './health.js';
import * as live from './live.js';
import * as orders from './orders.js';
import * as letters from './letters.js';
import * as replay from './replay.js';

/** The panels that load data: each has start(), stop() and refused(message). */
const PANELS = [health, live, orders, letters];

function startAll() {
  for (const panel of PANELS) panel.stop();
  for (const panel of PANELS) panel.start();
}

onAuth({
  // Personal data does not stay on screen once the service refuses this token, and nothing
  // is asked again until a new one is given.
  refused() {
    for (const panel of PANELS) panel.stop();
    token.refused();
    const message = unauthorizedText();
    for (const panel of PANELS) panel.refused(message);
    letters.updateReplayButtons();
    announce('error', message);
    const active = document.activeElement;
    if ((!active || active === document.body) && !replay.isOpen()) token.focus();
  },
  accepted: token.accepted,
});

token.wire(startAll);
startAll();
