// Dialogs: native modal <dialog> elements for the time panel, the filter
// dialog and the details panel, with what they share: focus kept inside and
// given back on close, a backdrop click that closes, and placement under
// the button that opened them on wide screens.

import { h, icon, trapFocus } from './dom.js';
import { ui } from './state.js';

const dialogs = [];
/** The button each dialog was last opened under, if any. */
const anchors = new Map();

/**
 * A native modal <dialog>: the page behind it is inert, Escape closes it,
 * Tab is kept inside, and focus returns to the control that opened it.
 */
export function makeDialog({ id, cls }) {
  const titleId = `${id}-title`;
  const dialog = h('dialog', { class: `dialog ${cls}`, id, 'aria-labelledby': titleId });
  dialog.titleId = titleId;
  trapFocus(dialog);
  dialog.addEventListener('close', () => {
    const opener = dialog.opener;
    dialog.opener = null;
    if (opener && opener.isConnected && !opener.closest('[hidden]')) opener.focus();
    // The opener was redrawn (a row of a view that changed): focus the time
    // button, the first control of the view, rather than leaving it to <body>.
    else if (ui.timeButton?.isConnected && !document.getElementById('shell').hidden) ui.timeButton.focus();
  });
  // A click on the backdrop (the dialog box itself, outside its content) closes it.
  dialog.addEventListener('mousedown', (e) => {
    if (e.target === dialog) dialog.dataset.backdropDown = '1';
  });
  dialog.addEventListener('click', (e) => {
    if (e.target === dialog && dialog.dataset.backdropDown === '1') dialog.close();
    delete dialog.dataset.backdropDown;
  });
  document.body.append(dialog);
  dialogs.push(dialog);
  return dialog;
}

/**
 * Opens `dialog`; focus goes back to `opener` when it closes. With an
 * `anchor`, the dialog is placed under that button (see positionDialog).
 */
export function openDialog(dialog, opener, anchor) {
  dialog.opener = opener || document.activeElement;
  anchors.set(dialog, anchor || null);
  if (!dialog.open) dialog.showModal();
  positionDialog(dialog, anchor);
}

/** Keeps anchored dialogs beside their buttons when the window changes size. */
export function repositionAnchoredDialogs() {
  for (const d of dialogs) if (d.open && anchors.get(d)) positionDialog(d, anchors.get(d));
}

/** Drops an anchored panel under its button on wide screens; centred otherwise. */
function positionDialog(dialog, anchor) {
  dialog.classList.remove('anchored');
  dialog.style.top = '';
  dialog.style.left = '';
  if (!anchor || window.innerWidth < 900) return;
  const r = anchor.getBoundingClientRect();
  const w = dialog.offsetWidth;
  const hgt = dialog.offsetHeight;
  let left = anchor.dataset.align === 'right' ? r.right - w : r.left;
  left = Math.max(12, Math.min(left, window.innerWidth - w - 12));
  let top = r.bottom + 8;
  if (top + hgt > window.innerHeight - 12) top = Math.max(12, window.innerHeight - hgt - 12);
  dialog.classList.add('anchored');
  dialog.style.left = `${left}px`;
  dialog.style.top = `${top}px`;
}

/** Closes every open dialog (on sign-out and on history navigation). */
export function closeAllDialogs() {
  for (const d of dialogs) if (d.open) d.close();
}

/** A dialog's title bar with its Close button. */
export function dialogHeader(dialog, title) {
  return h('div', { class: 'dialog-header' },
    h('h2', { class: 'dialog-title', id: dialog.titleId, text: title }),
    h('button', { type: 'button', class: 'icon-button', 'aria-label': 'Close', onclick: () => dialog.close() }, icon('close')));
}

