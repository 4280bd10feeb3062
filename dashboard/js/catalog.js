// The event catalog: value suggestions for the filter dialog and labels for
// metadata keys in the details panel. Loaded once per page; without it,
// suggestions are empty and labels fall back to the keys themselves.

import { getJson } from './api.js';
import { handleAuthFailure } from './session.js';
import { state } from './state.js';

/** The answer of GET /v1/catalog, or null before it came (or if it failed). */
let catalog = null;

/** Asks for the catalog once; a failure leaves suggestions and labels to fall back. */
export async function loadCatalog() {
  if (catalog) return;
  try {
    catalog = await getJson('/v1/catalog');
  } catch (e) {
    if (handleAuthFailure(e)) return;
    catalog = null; // suggestions and labels degrade to keys
  }
}

function catalogEntries() {
  const out = [];
  for (const level of catalog?.levels || []) {
    for (const cat of level.categories || []) {
      for (const ev of cat.events || []) out.push({ level: level.level, category: cat.name, event: ev });
    }
  }
  return out;
}

/** Values to suggest for a filter on `column` (events and categories from the catalog). */
export function suggestionsFor(column) {
  const entries = catalogEntries().filter((e) => !state.view.workflow || e.level === 'workflow');
  const set = new Set();
  if (column === 'event') entries.forEach((e) => set.add(e.event.name));
  else if (column === 'category') entries.forEach((e) => set.add(e.category));
  else if (column === 'level') ['account', 'workflow'].forEach((v) => set.add(v));
  return [...set].sort((a, b) => a.localeCompare(b));
}

function humanize(key) {
  const s = String(key).replace(/_/g, ' ');
  return s.charAt(0).toUpperCase() + s.slice(1);
}

/** The catalog label of a metadata key for this record's event. */
export function fieldLabel(record, key) {
  const entries = catalogEntries();
  const own = entries.find((e) => e.level === record.level && e.category === record.category && e.event.name === record.event);
  const field = own?.event.fields?.find((f) => f.key === key);
  if (field) return field.label;
  for (const e of entries) {
    const f = e.event.fields?.find((x) => x.key === key);
    if (f) return f.label;
  }
  return humanize(key);
}
