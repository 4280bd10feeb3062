// The details panel: everything recorded about one event, opened from its
// row. Secrets the server keeps only as fingerprints are shown masked,
// with a button that copies the fingerprint.

import { h, icon, replace } from './dom.js';
import { formatInstant } from './dates.js';
import { fieldLabel } from './catalog.js';
import { makeDialog, openDialog } from './dialogs.js';
import { state, ui, tzOrUtc } from './state.js';
import { toast } from './toast.js';
import { setView, urlOf } from './view.js';

const details = { dialog: null, body: null };

/** Makes the details panel (a dialog drawn as a side sheet), empty until openDetails. */
export function buildDetailsDialog() {
  const dialog = makeDialog({ id: 'details-dialog', cls: 'dialog-sheet' });
  details.dialog = dialog;
  details.title = h('h2', { class: 'dialog-title', id: dialog.titleId });
  details.subtitle = h('p', { class: 'sheet-subtitle' });
  details.body = h('div', { class: 'sheet-body' });
  replace(dialog,
    h('div', { class: 'dialog-header sheet-header' },
      h('div', {}, h('p', { class: 'sheet-kicker', text: 'Event details' }), details.title, details.subtitle),
      h('button', { type: 'button', class: 'icon-button', 'aria-label': 'Close', onclick: () => dialog.close() }, icon('close'))),
    details.body);
}

function dd(value, cls = '') {
  if (value === null || value === undefined || value === '') return h('dd', { class: 'muted', text: '—' });
  return h('dd', { class: cls, text: String(value) });
}

// A secret the server keeps only as a fingerprint (issue 16):
// "[REDACTED hmac-sha256:<16 hex> …<last4>]", the last four optional.
const FINGERPRINT_RE = /^\[REDACTED hmac-sha256:([0-9a-f]{16})(?: (?:\u2026|\.\.\.)([^\]]{1,4}))?\]$/;

/** The fingerprint and last four characters of a fingerprinted value, or null. */
function parseFingerprint(v) {
  if (typeof v !== 'string') return null;
  const m = FINGERPRINT_RE.exec(v);
  return m ? { fingerprint: `hmac-sha256:${m[1]}`, last4: m[2] || '' } : null;
}

/**
 * A fingerprinted secret as such: "•••• 7731" for the eye, the fingerprint
 * on hover and in the text a screen reader reads, and a button that copies
 * the fingerprint to match it against the credential one holds.
 */
function secretDd(fp, label) {
  const shown = fp.last4 ? `•••• ${fp.last4}` : '••••';
  const spoken = fp.last4
    ? `Secret ending in ${fp.last4}, kept as fingerprint ${fp.fingerprint}`
    : `Secret kept as fingerprint ${fp.fingerprint}`;
  const copy = h('button', {
    type: 'button', class: 'icon-button copy-fingerprint', title: 'Copy fingerprint',
    'aria-label': `Copy fingerprint of ${label}`,
    onclick: async () => {
      try {
        await navigator.clipboard.writeText(fp.fingerprint);
        toast(`Copied fingerprint ${fp.fingerprint}`);
      } catch (e) {
        toast(`Could not copy the fingerprint: ${e?.message || e}`, 'error');
      }
    },
  }, icon('copy'));
  return h('dd', {},
    h('span', { class: 'secret' },
      h('span', { class: 'secret-mask', title: `Fingerprint ${fp.fingerprint}`, 'aria-hidden': 'true', text: shown }),
      h('span', { class: 'visually-hidden', text: spoken }),
      copy));
}

function metaValue(v) {
  if (v === null || v === undefined) return null;
  if (typeof v === 'boolean') return v ? 'Yes' : 'No';
  if (typeof v === 'number') return String(v);
  return String(v);
}

/** Shows the event at `index` of the loaded rows; focus goes back to `opener` on close. */
export function openDetails(index, opener) {
  const r = state.events[index];
  if (!r) return;
  const tz = tzOrUtc();
  const a = r.actor || {};
  details.title.textContent = r.event;
  details.subtitle.textContent = `${r.category} · ${r.level === 'workflow' ? 'Workflow-level' : 'Account-level'} event`;
  const section = (title, ...rows) => h('section', { class: 'sheet-section' },
    h('h3', { class: 'sheet-section-title', text: title }), h('dl', { class: 'kv' }, rows));
  const pair = (label, value, cls) => [h('dt', { text: label }), dd(value, cls)];

  const workflowDd = r.workflow_id
    ? h('dd', {},
      h('code', { text: r.workflow_id }), ' ',
      h('a', {
        href: urlOf({ ...state.view, workflow: r.workflow_id, filters: [], join: 'and' }),
        class: 'inline-link',
        onclick: (e) => {
          e.preventDefault();
          details.dialog.close();
          setView({ workflow: r.workflow_id, filters: [], join: 'and' });
          ui.title.focus();
        },
      }, 'Open workflow view'))
    : dd(null);

  const meta = Object.entries(r.metadata || {});
  const metaRows = meta.length
    ? meta.map(([k, v]) => {
      const fp = parseFingerprint(v);
      const label = fieldLabel(r, k);
      return [h('dt', {}, h('span', { text: label }), h('span', { class: 'dt-key', text: k })), fp ? secretDd(fp, label) : dd(metaValue(v))];
    })
    : [h('dt', { text: 'Metadata' }), dd(null)];

  replace(details.body,
    h('p', { class: 'sheet-description', text: r.description ?? '' }),
    section('Event',
      pair('Event Name', r.event),
      pair('Category', r.category),
      pair('Level', r.level),
      pair('Date and Time', `${formatInstant(r.occurred_at, tz)} (${tz})`),
      pair('Occurred at (UTC)', r.occurred_at, 'mono'),
      pair('Recorded at (UTC)', r.recorded_at, 'mono'),
      pair('Event ID', r.id, 'mono'),
      pair('Account', r.account_id, 'mono')),
    section('Actor',
      pair('User Name', a.name),
      pair('Actor ID', a.id, 'mono'),
      pair('Email', a.email),
      pair('Actor type', a.kind),
      pair('IP Address', r.ip_address, 'mono'),
      [h('dt', { text: 'Workflow ID' }), workflowDd]),
    section('Metadata', metaRows),
    section('Integrity',
      pair('Sequence number (seq)', r.seq, 'mono'),
      pair('Leaf hash', r.leaf_hash, 'mono hash')));
  openDialog(details.dialog, opener);
  details.dialog.querySelector('.icon-button')?.focus();
}
