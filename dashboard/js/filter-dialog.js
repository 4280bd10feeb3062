// The Filter By dialog: rows of column, operator and value (with
// suggestions from the catalog, or from the server for users), joined by
// AND or OR. Nothing changes until Apply; the rows being edited live here.

import { h, icon, replace, uid } from './dom.js';
import { getJson } from './api.js';
import { suggestionsFor } from './catalog.js';
import { makeDialog, openDialog, dialogHeader } from './dialogs.js';
import { COLUMNS, OPERATORS, columnLabel, operatorLabel } from './filters.js';
import { handleAuthFailure } from './session.js';
import { state, ui } from './state.js';
import { setView } from './view.js';

const filt = { dialog: null, rows: [], join: 'and' };

/** The dialog's elements, made by buildFilterDialog. */
const el = {};

/** Makes the Filter By dialog; it is filled from the view each time it opens. */
export function buildFilterDialog() {
  const dialog = makeDialog({ id: 'filter-dialog', cls: 'dialog-filter' });
  filt.dialog = dialog;
  // AND / OR is one choice of two: a radio group (drawn as a switch), whose
  // arrow keys, focus and "1 of 2" come from the browser. It was built as
  // tabs, which promise a panel that changes.
  el.joinRadios = ['and', 'or'].map((j) => h('input', {
    type: 'radio', name: 'filter-join', id: `join-${j}`, value: j,
    onchange: () => setJoin(j),
  }));
  const joinGroup = h('div', {
    class: 'segmented', role: 'radiogroup', 'aria-label': 'Combine filters with', 'aria-describedby': 'join-help',
  }, el.joinRadios.map((input) => h('label', { class: 'segment', for: input.id },
    input, h('span', { text: input.value.toUpperCase() }))));
  el.joinHelp = h('p', { class: 'join-help', id: 'join-help' });
  el.filterRows = h('ol', { class: 'filter-rows' });
  el.filterEmpty = h('p', { class: 'filter-empty', text: 'No filters yet. Add one to narrow the log by event, category or user.' });
  el.filterError = h('p', { class: 'form-error', role: 'alert', hidden: true });
  const add = h('button', { type: 'button', class: 'button button-link add-filter', onclick: () => addFilterRow() }, '+ Add Filter');
  const apply = h('button', { type: 'button', class: 'button button-primary', onclick: applyFilters }, 'Apply');
  const cancel = h('button', { type: 'button', class: 'button button-ghost', onclick: () => dialog.close() }, 'Cancel');
  const clear = h('button', {
    type: 'button', class: 'button button-link button-danger-text',
    onclick: () => { filt.rows = []; renderFilterRows(); add.focus(); },
  }, 'Clear all');
  replace(dialog,
    dialogHeader(dialog, 'Filter By'),
    h('div', { class: 'filter-body' },
      h('div', { class: 'join-bar' }, joinGroup, el.joinHelp),
      h('div', { class: 'filter-panel' },
        el.filterEmpty, el.filterRows, el.filterError, add)),
    h('div', { class: 'dialog-footer' }, clear, h('div', { class: 'dialog-actions' }, cancel, apply)));
  // Enter in a value field applies, like a form would.
  dialog.addEventListener('keydown', (e) => {
    if (e.key === 'Enter' && e.target.matches('input.filter-value')) {
      e.preventDefault();
      applyFilters();
    }
  });
}

function setJoin(j) {
  filt.join = j;
  for (const r of el.joinRadios) r.checked = r.value === j;
  el.joinHelp.textContent = j === 'and'
    ? 'AND: an event must match every filter.'
    : 'OR: an event may match any one filter.';
  renderFilterJoinWords();
}

/** Opens the dialog on a copy of the view's filters, under the Filter button. */
export function openFilterDialog() {
  filt.rows = state.view.filters.map((f) => ({ ...f, key: uid('f') }));
  setJoin(state.view.join);
  el.filterError.hidden = true;
  renderFilterRows();
  ui.filterButton.dataset.align = 'right';
  openDialog(filt.dialog, ui.filterButton, ui.filterButton);
  const first = filt.dialog.querySelector('.filter-rows select, .add-filter');
  first?.focus();
}

function addFilterRow() {
  const row = { column: 'event', op: 'eq', value: '', key: uid('f') };
  filt.rows.push(row);
  renderFilterRows();
  const last = el.filterRows.lastElementChild;
  last?.querySelector('select')?.focus();
}

function renderFilterJoinWords() {
  for (const w of el.filterRows.querySelectorAll('.row-join')) w.textContent = filt.join.toUpperCase();
}

function renderFilterRows() {
  el.filterEmpty.hidden = filt.rows.length > 0;
  replace(el.filterRows, filt.rows.map((row, i) => filterRowEl(row, i)));
}

function filterRowEl(row, i) {
  const listId = `${row.key}-values`;
  const colOptions = { ...COLUMNS };
  if (!COLUMNS[row.column]) colOptions[row.column] = columnLabel(row.column);
  const opOptions = { ...OPERATORS };
  if (!OPERATORS[row.op]) opOptions[row.op] = operatorLabel(row.op);
  const column = h('select', { class: 'select filter-column', 'aria-label': 'Select Column' },
    Object.entries(colOptions).map(([k, label]) => h('option', { value: k, text: label, selected: k === row.column })));
  const op = h('select', { class: 'select filter-op', 'aria-label': 'Select Operator' },
    Object.entries(opOptions).map(([k, label]) => h('option', { value: k, text: label, selected: k === row.op })));
  const datalist = h('datalist', { id: listId });
  const value = h('input', {
    type: 'text', class: 'input filter-value', 'aria-label': 'Enter Value', placeholder: 'Enter Value',
    list: listId, autocomplete: 'off', spellcheck: 'false', value: row.value,
  });
  const fillSuggestions = async () => {
    if (row.column === 'user') {
      try {
        const q = encodeURIComponent(value.value.trim());
        const body = await getJson(`/v1/accounts/${encodeURIComponent(state.account)}/suggestions?column=user&q=${q}`);
        if (row.column !== 'user') return;
        replace(datalist, (body.values || []).map((v) => h('option', { value: v })));
      } catch (e) {
        if (!handleAuthFailure(e)) replace(datalist);
      }
    } else {
      replace(datalist, suggestionsFor(row.column).map((v) => h('option', { value: v })));
    }
  };
  let timer = null;
  column.addEventListener('change', () => { row.column = column.value; value.classList.remove('is-invalid'); fillSuggestions(); });
  op.addEventListener('change', () => { row.op = op.value; });
  value.addEventListener('input', () => {
    row.value = value.value;
    value.classList.remove('is-invalid');
    value.removeAttribute('aria-invalid');
    if (row.column === 'user') { clearTimeout(timer); timer = setTimeout(fillSuggestions, 200); }
  });
  fillSuggestions();
  const remove = h('button', {
    type: 'button', class: 'icon-button', 'aria-label': `Remove filter ${i + 1}`, title: 'Remove filter',
    onclick: () => {
      filt.rows = filt.rows.filter((r) => r !== row);
      renderFilterRows();
      const rows = el.filterRows.children;
      const target = rows[Math.min(i, rows.length - 1)];
      (target?.querySelector('.filter-value') || filt.dialog.querySelector('.add-filter')).focus();
    },
  }, icon('trash'));
  return h('li', { class: 'filter-row', dataset: { key: row.key } },
    i > 0 ? h('span', { class: 'row-join', 'aria-hidden': 'true', text: filt.join.toUpperCase() }) : h('span', { class: 'row-join row-join-first', 'aria-hidden': 'true', text: 'Where' }),
    column, op, value, datalist, remove);
}

function applyFilters() {
  const rowEls = [...el.filterRows.children];
  let firstBad = null;
  filt.rows.forEach((row, i) => {
    const input = rowEls[i]?.querySelector('.filter-value');
    const bad = row.value.trim() === '';
    input?.classList.toggle('is-invalid', bad);
    if (bad) input?.setAttribute('aria-invalid', 'true');
    if (bad && !firstBad) firstBad = input;
  });
  if (firstBad) {
    el.filterError.textContent = 'Enter a value for every filter, or remove the empty ones.';
    el.filterError.hidden = false;
    firstBad.focus();
    return;
  }
  el.filterError.hidden = true;
  const filters = filt.rows.map(({ column, op, value }) => ({ column, op, value: value.trim() }));
  filt.dialog.close();
  setView({ filters, join: filt.join });
}
