// The Audit Logs dashboard (spec §8): Settings > Monitoring > Audit Logs.
//
// The entry module: it wires the sections together and starts the page.
// The view (range, zone, filters, join, workflow) lives in the URL, so a
// reload or a shared link shows the same thing; every change of view writes
// the URL and reloads the list, count and histogram from the public v1 API.
// The token lives in sessionStorage only.
//
// Rule for every module: data from the server is put on the page with
// textContent or element properties (see dom.js), never parsed as HTML.
//
// Native ES modules, no build step. The modules import each other without
// cycles: view.js and session.js learn what to redraw and load from the
// functions handed to them here, rather than by importing the sections.

import { loadCatalog } from './catalog.js';
import { closeAllDialogs, repositionAnchoredDialogs } from './dialogs.js';
import { loadView } from './loader.js';
import { setupMenu } from './menu.js';
import { buildConsole, renderView } from './page.js';
import { takeLinkToken, bindSessionControls, resumeSession } from './session.js';
import { state, ui } from './state.js';
import { onViewChange, viewFromUrl } from './view.js';

/** Once the account is known: builds the console (the first time), draws the view and loads it. */
function openConsole(fromForm) {
  buildConsole();
  renderView();
  if (fromForm) ui.title.focus();
  loadCatalog();
  loadView();
}

async function boot() {
  document.querySelector('.skip-link')?.addEventListener('click', (e) => {
    // Focus the landmark without a fragment navigation, which would add a
    // history entry and reload the view through popstate.
    const target = document.querySelector(e.currentTarget.getAttribute('href'));
    if (!target) return;
    e.preventDefault();
    target.focus();
  });
  const linkToken = takeLinkToken();
  onViewChange({ render: renderView, load: loadView });
  bindSessionControls({ onOpen: openConsole });
  setupMenu();
  window.addEventListener('popstate', () => {
    if (!state.account) return;
    closeAllDialogs();
    state.view = viewFromUrl();
    renderView();
    loadView();
  });
  // Keep anchored panels beside their buttons when the window changes size.
  window.addEventListener('resize', repositionAnchoredDialogs);

  await resumeSession(linkToken);
}

boot();
