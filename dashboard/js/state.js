// What several sections of the dashboard share: who is signed in, the view
// (what the URL holds), the answers loaded for it, and the few controls
// that other sections move the focus to. Each section keeps the rest of its
// state to itself.

import { isTimeZone } from './dates.js';

/** Rows asked for per page of the list. */
export const PAGE_SIZE = 50;

export const state = {
  /** The account being viewed, and whether the token is for every account. */
  account: null,
  anyAccount: false,
  /** The view: what the URL holds. */
  view: null,
  /** The answers for the view, written by loader.js (and table.js for later pages). */
  events: [],
  nextCursor: null,
  count: null,
  histogram: null,
  echoedRange: null,
  loading: false,
  loadingMore: false,
  error: null,
  /** Bumped by every new load; an answer for an older generation is dropped. */
  generation: 0,
  controller: null,
};

/**
 * Controls that outlive a redraw and take the focus when the control that
 * had it goes away: the page heading, the time button and the Filter button.
 * Filled by page.js when it builds the console.
 */
export const ui = { title: null, timeButton: null, filterButton: null };

export const browserZone = (() => {
  try {
    return Intl.DateTimeFormat().resolvedOptions().timeZone || 'UTC';
  } catch {
    return 'UTC';
  }
})();

export const numberFormat = new Intl.NumberFormat();
export const plural = (n, one, many) => `${numberFormat.format(n)} ${n === 1 ? one : many}`;

/** The view's zone, or UTC when the URL names a zone this browser does not know. */
export function tzOrUtc() {
  return isTimeZone(state.view.tz) ? state.view.tz : 'UTC';
}
