// Loading a view: the first page of the list, the count and the histogram,
// asked for together. A newer load makes every older answer stale: each
// load has a generation, aborts the requests of the one before, and drops
// any answer that arrives for an older generation.

import { getJson, ApiError, viewParams } from './api.js';
import { loadHistogram, renderHistogram } from './histogram.js';
import { renderCount, renderRangeCaption } from './page.js';
import { handleAuthFailure } from './session.js';
import { state, PAGE_SIZE } from './state.js';
import { renderTable, renderTableFooter } from './table.js';
import { viewBase } from './view.js';

/** Loads the view from scratch: list, count and histogram, redrawn as each answer arrives. */
export async function loadView() {
  state.generation += 1;
  const generation = state.generation;
  if (state.controller) state.controller.abort();
  const controller = new AbortController();
  state.controller = controller;
  Object.assign(state, {
    events: [], nextCursor: null, count: null, histogram: null, error: null,
    loading: true, loadingMore: false, echoedRange: null,
  });
  renderTable();
  renderCount();
  renderHistogram();
  renderRangeCaption();

  const base = viewBase();
  const params = viewParams(state.view);
  const signal = controller.signal;
  const current = () => generation === state.generation;

  const list = getJson(`${base}?${viewParams(state.view, { limit: PAGE_SIZE })}`, { signal })
    .then((body) => {
      if (!current()) return;
      state.events = body.events || [];
      state.nextCursor = body.next_cursor || null;
      state.echoedRange = body.range || null;
      state.loading = false;
      renderTable();
      renderRangeCaption();
    });
  const count = getJson(`${base}/count?${params}`, { signal }).then((body) => {
    if (!current()) return;
    state.count = typeof body.count === 'number' ? body.count : null;
    renderCount();
    renderTableFooter();
  });
  const histogram = loadHistogram(base, signal)
    .then((body) => {
      if (!current()) return;
      state.histogram = body;
      renderHistogram();
    });

  const results = await Promise.allSettled([list, count, histogram]);
  if (!current()) return;
  const failure = results.find((r) => r.status === 'rejected' && r.reason?.name !== 'AbortError');
  if (failure) {
    if (handleAuthFailure(failure.reason)) return;
    state.loading = false;
    state.error = failure.reason instanceof ApiError
      ? failure.reason
      : new ApiError('server', String(failure.reason?.message || failure.reason));
    // Whatever arrived is stale next to an error: show the error alone.
    state.events = [];
    state.nextCursor = null;
    state.histogram = state.histogram || { buckets: [] };
    renderTable();
    renderCount();
    renderHistogram();
  }
}
