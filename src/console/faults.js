// The faults armed on the hub (GET /api/faults), each removable (DELETE /api/faults/{id}).
'use strict';

async function loadFaults() {
  try { state.faults = await api('GET', '/api/faults'); } catch (e) { state.faults = e; }
}

let faultTimer = null;
function refreshFaultsSoon() {
  if (faultTimer) return;
  faultTimer = setTimeout(() => { faultTimer = null; loadFaults().then(renderFaults); }, 500);
}

// `device E69UADXUYY/light2, nth 2`: unset fields left out, device ids as the console writes them.
const fieldsText = (o, skip) => Object.entries(o || {})
  .filter(([k, v]) => k !== skip && v !== null && v !== undefined)
  .map(([k, v]) => {
    if (v && v.product_id && v.device_name) return `${k} ${devKey(v)}`;
    return `${k} ${typeof v === 'object' ? JSON.stringify(v) : v}`;
  }).join(', ');

function describeFault(f) {
  const r = f.rule || {};
  const when = r.when || {};
  const action = r.action || {};
  const fires = typeof r.fires === 'object' ? `${Object.values(r.fires)[0]} times` : r.fires;
  const params = fieldsText(action, 'do');
  const where = fieldsText(when, 'on');
  return el('tr', {},
    el('td', { class: 'mono', text: `#${f.id}` }),
    el('td', {}, el('b', { text: (action.do || '?').replace(/_/g, ' ') }), params ? ` (${params})` : ''),
    el('td', { text: `on ${(when.on || '?').replace(/_/g, ' ')}${where ? `: ${where}` : ''}` }),
    el('td', { text: `${fires}, fired ${f.fired}` }),
    el('td', {}, el('button', { type: 'button', class: 'small', 'data-fault': f.id, text: 'Remove' })));
}

async function removeFault(id) {
  // A 404 means it is already gone, which is what the user asked for.
  await api('DELETE', `/api/faults/${id}`).catch(() => null);
  await loadFaults();
  renderFaults();
}

function renderFaults() {
  const f = state.faults;
  let body;
  if (f === undefined) body = el('p', { class: 'empty', text: 'Loading…' });
  else if (f instanceof Error) {
    body = el('p', { class: 'empty', text: f.status === 404 ? 'This hub does not list faults.' : `Cannot list faults: ${f.message}` });
  } else if (!f.length) body = el('p', { class: 'empty', text: 'None: the hub behaves (faults are armed with POST /api/faults).' });
  else body = el('table', {}, el('tbody', {}, ...f.map(describeFault)));
  $('faults').replaceChildren(body);
}
