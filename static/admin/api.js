// Requests to the admin API with the operator's token, and whether the service accepts it.
//
// The token is kept in this tab only (sessionStorage). A 401 to a request sent with the
// current token marks the page unauthorized: the `refused` hook stops every panel and clears
// what it shows until a new token is given; any accepted answer calls `accepted`.

const TOKEN_KEY = 'orders-admin-token';
const TIMEOUT_MS = 15000;

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
const hooks = { refused: () => {}, accepted: () => {} };

/** What happens when the service refuses the token, and when it accepts a request. */
export function onAuth({ refused, accepted }) {
  hooks.refused = refused;
  hooks.accepted = accepted;
}

export const currentToken = () => token;
export const isUnauthorized = () => unauthorized;

/** A new token (or none) for this tab; the panels start again with it. */
export function useToken(value) {
  token = value;
  storeToken(value);
  unauthorized = false;
}

export class ApiError extends Error {
  constructor(kind, message, status, body) {
    super(message);
    this.kind = kind; // unauthorized | http | network | timeout
    this.status = status;
    this.body = body;
  }
}

export function unauthorizedText() {
  return token
    ? 'Unauthorized (HTTP 401): the admin token was refused. Check it and enter it again under “Admin token” above.'
    : 'Unauthorized (HTTP 401): this service needs its admin token. Enter it under “Admin token” above.';
}

/** What an error means for a data area, in plain words. */
export function errorText(what, err) {
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
export async function api(path, opts) {
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
    if (sentToken === token && !unauthorized) {
      unauthorized = true;
      hooks.refused();
    }
    throw new ApiError('unauthorized', 'unauthorized', 401, body);
  }
  const accepted = res.ok || (options.accept || []).includes(res.status);
  if (!accepted || body === null || typeof body !== 'object') {
    throw new ApiError('http', 'HTTP ' + res.status, res.status, body);
  }
  if (sentToken === token) hooks.accepted();
  return { status: res.status, body };
}
