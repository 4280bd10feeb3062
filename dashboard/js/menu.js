// The sidebar on narrow screens: a Menu button in the top bar opens it as a
// panel; Escape, a click outside it or a wide window closes it. Its one link
// goes back to the default view of the account's log.

import { DEFAULT_PRESET } from './dates.js';
import { setView } from './view.js';

/** Shows or hides the Menu button for the window's width; set up by setupMenu. */
let applyWidth = null;

/** Wires the Menu button, the sidebar and its Audit Logs link. */
export function setupMenu() {
  const toggle = document.getElementById('menu-toggle');
  const sidebar = document.getElementById('sidebar');
  const mq = window.matchMedia('(max-width: 960px)');
  const apply = () => {
    const narrow = mq.matches;
    toggle.hidden = !narrow || document.getElementById('shell').hidden;
    if (!narrow) {
      sidebar.classList.remove('open');
      toggle.setAttribute('aria-expanded', 'false');
    }
  };
  mq.addEventListener('change', apply);
  toggle.addEventListener('click', () => {
    const open = !sidebar.classList.contains('open');
    sidebar.classList.toggle('open', open);
    toggle.setAttribute('aria-expanded', String(open));
    if (open) sidebar.querySelector('a')?.focus();
  });
  sidebar.addEventListener('keydown', (e) => {
    if (e.key === 'Escape' && sidebar.classList.contains('open')) {
      sidebar.classList.remove('open');
      toggle.setAttribute('aria-expanded', 'false');
      toggle.focus();
    }
  });
  document.addEventListener('click', (e) => {
    if (sidebar.classList.contains('open') && !sidebar.contains(e.target) && !toggle.contains(e.target)) {
      sidebar.classList.remove('open');
      toggle.setAttribute('aria-expanded', 'false');
    }
  });
  document.getElementById('nav-audit-logs').addEventListener('click', (e) => {
    e.preventDefault();
    sidebar.classList.remove('open');
    toggle.setAttribute('aria-expanded', 'false');
    setView({ range: DEFAULT_PRESET, from: '', to: '', filters: [], join: 'and', workflow: '' });
  });
  applyWidth = apply;
}

/** Shows the Menu button when the window is narrow and the console is on screen. */
export function applyMenu() {
  applyWidth?.();
}
