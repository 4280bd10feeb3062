// Sign-in and the session: the form, a link's token, the token kept in this
// tab's sessionStorage, and signing out. A 401 from any request ends the
// session through handleAuthFailure. Once the account is known, the console
// is opened by the function main.js hands to bindSessionControls.

import { getJson, session, ApiError, MESSAGES } from './api.js';
import { closeAllDialogs } from './dialogs.js';
import { state } from './state.js';
import { viewFromUrl, urlOf } from './view.js';

/** Builds, draws and loads the console; `fromForm` says the sign-in form was on screen. */
let openConsole = () => {};

function show(el, visible) {
  el.hidden = !visible;
}

/** Shows the sign-in form (and nothing of the console), with an error or a note. */
export function showSignIn({ error = '', info = '', needAccount = false, focus = null } = {}) {
  closeAllDialogs();
  state.generation += 1;
  if (state.controller) state.controller.abort();
  show(document.getElementById('boot'), false);
  show(document.getElementById('shell'), false);
  show(document.getElementById('session-area'), false);
  show(document.getElementById('menu-toggle'), false);
  show(document.getElementById('signin'), true);
  const err = document.getElementById('signin-error');
  err.textContent = error;
  show(err, Boolean(error));
  const inf = document.getElementById('signin-info');
  inf.textContent = info;
  show(inf, Boolean(info));
  show(document.getElementById('account-field'), needAccount);
  document.title = 'Sign in · Audit Logs · AI for Process';
  setSkipTarget('signin');
  const target = focus || (needAccount ? 'account-input' : 'token-input');
  requestAnimationFrame(() => document.getElementById(target).focus());
}

/** Points the skip link at the landmark on screen (the sign-in form or the log). */
function setSkipTarget(id) {
  document.querySelector('.skip-link')?.setAttribute('href', `#${id}`);
}

function signOut(reason) {
  session.clear();
  state.account = null;
  document.getElementById('token-input').value = '';
  document.getElementById('account-input').value = '';
  if (reason) showSignIn({ error: reason });
  else showSignIn({ info: 'You have signed out.' });
}

/** Called by any API failure: a 401 anywhere ends the session. */
export function handleAuthFailure(err) {
  if (err instanceof ApiError && err.kind === 'unauthorized') {
    signOut(MESSAGES.unauthorized);
    return true;
  }
  return false;
}

async function onSignInSubmit(event) {
  event.preventDefault();
  const tokenInput = document.getElementById('token-input');
  const accountInput = document.getElementById('account-input');
  const submit = document.getElementById('signin-submit');
  const token = tokenInput.value.trim();
  const err = document.getElementById('signin-error');
  show(document.getElementById('signin-info'), false);
  if (!token) {
    err.textContent = 'Enter a token.';
    show(err, true);
    tokenInput.focus();
    return;
  }
  submit.disabled = true;
  submit.textContent = 'Signing in…';
  try {
    const who = await getJson('/v1/whoami', { token });
    let account = who.account;
    if (account === '*') {
      const typed = accountInput.value.trim();
      if (!typed) {
        session.set(token, null);
        showSignIn({ info: 'This token can read every account: enter the Account to open.', needAccount: true });
        return;
      }
      if (!/^[a-z0-9][a-z0-9_-]{0,62}$/.test(typed)) {
        showSignIn({ error: 'An account id is lowercase letters, digits, “-” and “_”.', needAccount: true });
        return;
      }
      account = typed;
    }
    session.set(token, who.account === '*' ? account : null);
    await startSession(who, account);
  } catch (e) {
    const message = e instanceof ApiError && e.kind === 'unauthorized'
      ? 'This token is not valid. Check it and try again.'
      : (e.message || String(e));
    showSignIn({ error: message, needAccount: !document.getElementById('account-field').hidden });
  } finally {
    submit.disabled = false;
    submit.textContent = 'Sign in';
  }
}

/** After a successful whoami: opens the console on the account. */
async function startSession(who, account) {
  if (who.role === 'ingest') {
    session.clear();
    showSignIn({ error: MESSAGES.forbidden });
    return;
  }
  state.anyAccount = who.account === '*';
  state.account = account;
  // Signed in from the form: its button is about to be hidden, so the focus
  // moves to the log's heading instead of falling to <body>.
  const fromForm = !document.getElementById('signin').hidden;
  state.view = viewFromUrl();
  history.replaceState(null, '', urlOf(state.view));
  show(document.getElementById('boot'), false);
  show(document.getElementById('signin'), false);
  show(document.getElementById('shell'), true);
  show(document.getElementById('session-area'), true);
  document.getElementById('account-badge').textContent = account;
  setSkipTarget('main');
  openConsole(fromForm);
}

/**
 * A link with `#token=…` (what `auditlog demo` prints) only fills in the
 * sign-in form: whoever wrote the link chose the account, so the page says
 * which account and role the token is for and waits for the person to press
 * Sign in. It never signs in by itself.
 */
async function offerLinkToken(token, account) {
  document.getElementById('token-input').value = token;
  document.getElementById('account-input').value = account || '';
  try {
    const who = await getJson('/v1/whoami', { token });
    if (who.role === 'ingest') {
      showSignIn({ error: `The token in this link can only write events (${MESSAGES.forbidden})` });
      return;
    }
    const whose = who.account === '*' ? 'every account' : `the account “${who.account}”`;
    const role = who.role === 'admin' ? 'an admin' : `a ${who.role}`;
    showSignIn({
      info: `This link holds ${role} token for ${whose}. Check that this is the account you expect, then press Sign in.`,
      needAccount: who.account === '*',
      focus: 'signin-submit',
    });
  } catch (e) {
    const message = e instanceof ApiError && e.kind === 'unauthorized'
      ? 'The token in this link is not valid. Check the link or paste another token.'
      : (e.message || String(e));
    showSignIn({ error: message });
  }
}

/**
 * Reads a token from the address's fragment (`#token=…&account=…`) and
 * drops the fragment from the address bar.
 * @returns {{token: string, account: string|null}|null}
 */
export function takeLinkToken() {
  // The fragment never reaches a server log; drop it from the address bar
  // at once so it is not kept in the history or copied along with the URL.
  let linkToken = null;
  if (location.hash.length > 1) {
    const frag = new URLSearchParams(location.hash.slice(1));
    if (frag.get('token')) linkToken = { token: frag.get('token'), account: frag.get('account') };
    history.replaceState(null, '', location.pathname + location.search);
  }
  return linkToken;
}

/** Wires the sign-in form and the Sign out button. */
export function bindSessionControls({ onOpen }) {
  openConsole = onOpen;
  document.getElementById('signin-form').addEventListener('submit', onSignInSubmit);
  document.getElementById('sign-out').addEventListener('click', () => signOut());
}

/** Offers a link's token, resumes this tab's session, or asks to sign in. */
export async function resumeSession(linkToken) {
  if (linkToken) {
    await offerLinkToken(linkToken.token, linkToken.account);
    return;
  }
  if (!session.token) {
    showSignIn();
    return;
  }
  try {
    const who = await getJson('/v1/whoami');
    let account = who.account;
    if (account === '*') {
      account = new URLSearchParams(location.search).get('account') || session.account;
      if (!account) {
        showSignIn({ info: 'This token can read every account: enter the Account to open.', needAccount: true });
        return;
      }
      session.setAccount(account);
    }
    await startSession(who, account);
  } catch (e) {
    if (handleAuthFailure(e)) return;
    showSignIn({ error: e.message || String(e) });
  }
}
