// Export: the toolbar's Export button, which downloads the events of the
// current view as CSV through the API (with the token in a header, so not
// as a plain link).

import { h, icon } from './dom.js';
import { request, viewParams, attachmentName } from './api.js';
import { handleAuthFailure } from './session.js';
import { state } from './state.js';
import { toast } from './toast.js';
import { viewBase } from './view.js';

/** The button and its label, made by buildExportButton. */
const el = {};

/** Makes the Export button and the hidden text that describes it. */
export function buildExportButton() {
  el.exportButtonLabel = h('span', { text: 'Export' });
  el.exportButton = h('button', {
    type: 'button', class: 'button button-outline', id: 'export-button',
    'aria-describedby': 'export-help', onclick: exportView,
  }, icon('download'), el.exportButtonLabel);
  const exportHelp = h('span', { class: 'visually-hidden', id: 'export-help', text: 'Downloads the events of the current view as CSV' });
  return [el.exportButton, exportHelp];
}

async function exportView() {
  const fallback = state.view.workflow ? 'Workflow_Audit_Logs.csv' : 'Account_Audit_Logs.csv';
  // Busy, not `disabled`: a disabled button drops the keyboard focus.
  if (el.exportButton.getAttribute('aria-disabled') === 'true') return;
  el.exportButton.setAttribute('aria-disabled', 'true');
  el.exportButtonLabel.textContent = 'Exporting…';
  try {
    const res = await request(`${viewBase()}/export?${viewParams(state.view, { format: 'csv' })}`);
    const blob = await res.blob();
    const name = attachmentName(res.headers.get('content-disposition'), fallback);
    const url = URL.createObjectURL(blob);
    const a = h('a', { href: url, download: name, class: 'visually-hidden' });
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 60_000);
    toast(`Downloaded ${name}`);
  } catch (e) {
    if (handleAuthFailure(e)) return;
    toast(`Export failed: ${e.message}`, 'error');
  } finally {
    el.exportButton.removeAttribute('aria-disabled');
    el.exportButtonLabel.textContent = 'Export';
  }
}
