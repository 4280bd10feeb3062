// The dashboard's only door to the server: the public v1 API, with the
// token in the Authorization header (never in a URL, which servers and
// proxies log), and every failure turned into an ApiError the page can word.

const TOKEN_KEY = 'auditlog.token';
const ACCOUNT_KEY = 'auditlog.account';

export const session = {
  get token() { return sessionStorage.getItem(TOKEN_KEY); },
  get account() { return sessionStorage.getItem(ACCOUNT_KEY); },
  set(token, account) {
    sessionStorage.setItem(TOKEN_KEY, token);
    if (account) sessionStorage.setItem(ACCOUNT_KEY, account);
    else sessionStorage.removeItem(ACCOUNT_KEY);
  },
  setAccount(account) { sessionStorage.setItem(ACCOUNT_KEY, account); },
  clear() {
    sessionStorage.removeItem(TOKEN_KEY);
    sessionStorage.removeItem(ACCOUNT_KEY);
  },
};

/** What went wrong, in a form the page can show. */
export class ApiError extends Error {
  /**
   * @param {'unauthorized'|'forbidden'|'not_found'|'bad_request'|'network'|'server'} kind
   * @param {string} message what the user reads
   * @param {number} [status]
   * @param {Array<{path:string,message:string}>} [errors]
   * @param {string} [problem] the last part of the problem type, e.g. `query-too-broad`
   */
  constructor(kind, message, status = 0, errors = [], problem = '') {
    super(message);
    this.kind = kind;
    this.status = status;
    this.errors = errors;
    this.problem = problem;
  }
}

export const MESSAGES = {
  unauthorized: 'Your session has expired or the token is invalid — sign in again',
  network: 'Cannot reach the server. Check your connection and try again.',
  forbidden: 'This token is not allowed to read the audit log. Sign in with a token that has the read or admin role.',
};

async function problemOf(res) {
  try {
    const type = res.headers.get('content-type') || '';
    if (type.includes('json')) return await res.json();
    const text = await res.text();
    return { detail: text.slice(0, 300) };
  } catch {
    return {};
  }
}

/**
 * Sends an authenticated request and returns the Response when it is 2xx.
 * @param {string} path  starting with /v1/
 * @param {{signal?: AbortSignal, token?: string}} [opts]
 */
export async function request(path, opts = {}) {
  const token = opts.token ?? session.token;
  let res;
  try {
    res = await fetch(path, {
      headers: { Authorization: `Bearer ${token}`, Accept: 'application/json' },
      signal: opts.signal,
      cache: 'no-store',
      credentials: 'omit',
    });
  } catch (err) {
    if (err && err.name === 'AbortError') throw err;
    throw new ApiError('network', MESSAGES.network);
  }
  if (res.ok) return res;
  const problem = await problemOf(res);
  const detail = problem.detail || problem.title || `The server answered ${res.status}`;
  switch (res.status) {
    case 401: throw new ApiError('unauthorized', MESSAGES.unauthorized, 401);
    case 403: throw new ApiError('forbidden', MESSAGES.forbidden, 403);
    case 404: throw new ApiError('not_found', detail, 404);
    case 400:
    case 422: {
      const type = typeof problem.type === 'string' ? problem.type.split('/').pop() : '';
      throw new ApiError('bad_request', detail, res.status, problem.errors || [], type);
    }
    default:
      if (res.status >= 500 && res.status !== 503 && !problem.detail) {
        throw new ApiError('server', `The server had an internal error (${res.status}). Try again in a moment.`, res.status);
      }
      throw new ApiError('server', `${detail}`, res.status);
  }
}

export async function getJson(path, opts) {
  const res = await request(path, opts);
  return res.json();
}

/** Query string of a view: range, tz, filters, join, and extra params. */
export function viewParams(view, extra = {}) {
  const p = new URLSearchParams();
  p.set('range', view.range);
  if (view.range === 'custom') {
    p.set('from', view.from);
    if (view.to) p.set('to', view.to);
  }
  p.set('tz', view.tz);
  for (const f of view.filters) p.append('filter', `${f.column}:${f.op}:${f.value}`);
  if (view.filters.length > 1) p.set('join', view.join);
  for (const [k, v] of Object.entries(extra)) if (v !== undefined && v !== null) p.set(k, String(v));
  return p;
}

/** The base path of a view's events: the account's log or a workflow's. */
export function eventsBase(account, workflow) {
  const a = encodeURIComponent(account);
  if (workflow) return `/v1/accounts/${a}/workflows/${encodeURIComponent(workflow)}/events`;
  return `/v1/accounts/${a}/events`;
}

/** The file name from a Content-Disposition header, if any. */
export function attachmentName(header, fallback) {
  const m = /filename\*?=(?:UTF-8'')?"?([^";]+)"?/i.exec(header || '');
  if (!m) return fallback;
  try {
    return decodeURIComponent(m[1]);
  } catch {
    return m[1];
  }
}
