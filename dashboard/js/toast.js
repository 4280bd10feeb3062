// Toasts: short messages in the corner (a download done, a copy failed).
// Errors stay longer and are announced at once.

import { h, icon } from './dom.js';

/** Shows `message` for a few seconds; `kind` is "info" or "error". */
export function toast(message, kind = 'info') {
  const region = document.getElementById('toasts');
  const el = h('div', { class: `toast toast-${kind}`, role: kind === 'error' ? 'alert' : null },
    h('span', { text: message }),
    h('button', { type: 'button', class: 'icon-button', 'aria-label': 'Dismiss', onclick: () => el.remove() }, icon('close')));
  region.append(el);
  setTimeout(() => el.remove(), kind === 'error' ? 10_000 : 5_000);
}
