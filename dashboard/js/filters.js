// Filters: the columns and operators they use, with the words shown for
// them, and the bar of chips under the toolbar that lists the active
// filters, each with a button that removes it.

import { h, icon, replace } from './dom.js';
import { state, ui } from './state.js';
import { setView } from './view.js';

export const COLUMNS = { event: 'Event', category: 'Category', user: 'User' };
const EXTRA_COLUMNS = {
  user_id: 'User ID', ip_address: 'IP Address', workflow_id: 'Workflow ID',
  level: 'Level', description: 'Description',
};
export const OPERATORS = { eq: 'Is Equal To', ne: 'Is Not Equal To' };
const EXTRA_OPERATORS = { contains: 'Contains', not_contains: 'Does Not Contain' };
export const columnLabel = (c) => COLUMNS[c] || EXTRA_COLUMNS[c] || c;
export const operatorLabel = (o) => OPERATORS[o] || EXTRA_OPERATORS[o] || o;

/** The chips bar's element, made by buildChips. */
let chips = null;

/** Makes the chips bar, hidden until a filter is active. */
export function buildChips() {
  chips = h('div', { class: 'chips', id: 'filter-chips', hidden: true });
  return chips;
}

/** Redraws the chips bar from the view's filters. */
export function renderChips() {
  const v = state.view;
  if (v.filters.length === 0) {
    chips.hidden = true;
    replace(chips);
    return;
  }
  chips.hidden = false;
  const items = [];
  v.filters.forEach((f, i) => {
    if (i > 0) items.push(h('li', { class: 'chip-join', 'aria-hidden': 'true', text: v.join.toUpperCase() }));
    const text = f.raw !== undefined ? f.raw : `${columnLabel(f.column)} ${operatorLabel(f.op)} ${f.value}`;
    items.push(h('li', { class: 'chip' },
      h('span', { class: 'chip-column', text: columnLabel(f.column) }),
      h('span', { class: 'chip-op', text: f.raw !== undefined ? '' : operatorLabel(f.op) }),
      h('span', { class: 'chip-value', text: f.raw !== undefined ? f.raw : f.value }),
      h('button', {
        type: 'button', class: 'chip-remove', 'aria-label': `Remove filter ${text}`,
        onclick: () => removeFilter(i),
      }, icon('close'))));
  });
  const joinText = v.filters.length > 1
    ? (v.join === 'and' ? 'Showing events that match all filters' : 'Showing events that match any filter')
    : 'Showing events that match';
  replace(chips,
    h('span', { class: 'chips-label', id: 'chips-label', text: joinText }),
    h('ul', { class: 'chip-list', 'aria-labelledby': 'chips-label' }, items),
    h('button', { type: 'button', class: 'button button-link', onclick: clearFilters }, 'Clear filters'));
}

/** Drops every filter; the chips bar goes away, so focus moves to Filter. */
export function clearFilters() {
  setView({ filters: [], join: 'and' });
  ui.filterButton.focus();
}

function removeFilter(index) {
  const filters = state.view.filters.filter((_, i) => i !== index);
  setView({ filters });
  // Keep keyboard focus near where it was.
  requestAnimationFrame(() => {
    const remaining = chips.querySelectorAll('.chip-remove');
    const next = remaining[Math.min(index, remaining.length - 1)];
    (next || ui.filterButton).focus();
  });
}

