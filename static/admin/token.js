// The token form in the header: the service's ADMIN_TOKEN for this tab, and what the
// service said about it.
import { currentToken, useToken } from './api.js';
import { announce, byId } from './ui.js';

const ui = {
  form: byId('token-form'),
  token: byId('token'),
  forget: byId('token-forget'),
  status: byId('token-status'),
};

ui.token.value = currentToken();

/** Wires the form: a submitted (or forgotten) token calls `restart` once it is in use. */
export function wire(restart) {
  ui.form.addEventListener('submit', (event) => {
    event.preventDefault();
    use(ui.token.value.trim(), restart);
  });
  ui.forget.addEventListener('click', () => {
    ui.token.value = '';
    use('', restart);
  });
}

function use(value, restart) {
  useToken(value);
  ui.form.dataset.state = 'checking';
  ui.token.removeAttribute('aria-invalid');
  ui.status.dataset.state = 'idle';
  ui.status.textContent = value ? 'Checking the token…' : 'Token forgotten. Checking whether the service needs one…';
  announce('loading', value ? 'Token saved for this tab; loading.' : 'Token forgotten; loading.');
  restart();
}

/** The service refused the token (or asked for one). */
export function refused() {
  ui.token.setAttribute('aria-invalid', 'true');
  ui.form.dataset.state = 'needed';
  ui.status.dataset.state = 'error';
  ui.status.textContent = currentToken()
    ? 'This token was refused (HTTP 401). Enter the service’s ADMIN_TOKEN.'
    : 'The service needs its admin token (HTTP 401). Enter it here.';
}

/** The service answered a request made with the token (or without one, if it needs none). */
export function accepted() {
  if (ui.form.dataset.state === 'ok') return;
  if (ui.form.dataset.state === 'checking') {
    announce('ok', currentToken() ? 'Token accepted; showing the service’s data.' : 'The service answers without a token.');
  }
  ui.form.dataset.state = 'ok';
  ui.token.removeAttribute('aria-invalid');
  ui.status.dataset.state = 'ok';
  ui.status.textContent = currentToken()
    ? 'Token accepted.'
    : 'No token given: the service accepts requests without one.';
}

/** Sends the keyboard to the token field. */
export function focus() {
  ui.token.focus();
}
