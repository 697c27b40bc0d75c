// Faults, armed and removed live (as Toxiproxy's toxics): hub rules (GET/POST /api/faults,
// DELETE /api/faults/{id}) and COS download rules (GET/POST /api/cos/faults,
// DELETE /api/cos/faults/{id}), in the formats of the API; a form arms either from a preset.
'use strict';

async function loadFaults() {
  const [hub, cos] = await Promise.all([
    api('GET', '/api/faults').catch((e) => e),
    api('GET', '/api/cos/faults').catch((e) => e),
  ]);
  state.faults = hub;
  state.cosFaults = cos;
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

const firesText = (fires) => (typeof fires === 'object' ? `${Object.values(fires)[0]} times` : fires);

function describeFault(f) {
  const r = f.rule || {};
  const when = r.when || {};
  const action = r.action || {};
  const params = fieldsText(action, 'do');
  const where = fieldsText(when, 'on');
  return el('tr', {},
    el('td', { class: 'mono', text: `#${f.id}` }),
    el('td', {}, el('b', { text: (action.do || '?').replace(/_/g, ' ') }), params ? ` (${params})` : ''),
    el('td', { text: `on ${(when.on || '?').replace(/_/g, ' ')}${where ? `: ${where}` : ''}` }),
    el('td', { text: `${firesText(r.fires)}, fired ${f.fired}` }),
    el('td', {}, el('button', { type: 'button', class: 'small', 'data-fault': f.id, text: 'Remove' })));
}

function describeCosFault(f) {
  const r = f.rule || {};
  const verdict = r.verdict || {};
  const params = fieldsText(verdict, 'kind');
  const where = fieldsText(r.when || {});
  return el('tr', {},
    el('td', { class: 'mono', text: `COS #${f.id}` }),
    el('td', {}, el('b', { text: (verdict.kind || '?').replace(/_/g, ' ') }), params ? ` (${params})` : ''),
    el('td', { text: where ? `requests with ${where}` : 'every request' }),
    el('td', { text: `${firesText(r.fires)}, fired ${f.fired}` }),
    el('td', {}, el('button', { type: 'button', class: 'small', 'data-cos-fault': f.id, text: 'Remove' })));
}

async function removeFault(id) {
  // A 404 means it is already gone, which is what the user asked for.
  await api('DELETE', `/api/faults/${id}`).catch(() => null);
  await loadFaults();
  renderFaults();
}

async function removeCosFault(id) {
  await api('DELETE', `/api/cos/faults/${id}`).catch(() => null);
  await loadFaults();
  renderFaults();
}

function faultTable(list, describe, empty, what) {
  if (list === undefined) return el('p', { class: 'empty', text: 'Loading…' });
  if (list instanceof Error) {
    return el('p', { class: 'empty', text: list.status === 404 || list.status === 501 ? `This hub has no ${what}.` : `Cannot list ${what}: ${list.message}` });
  }
  if (!list.length) return el('p', { class: 'empty', text: empty });
  return el('table', {}, el('tbody', {}, ...list.map(describe)));
}

function renderFaults() {
  $('faults').replaceChildren(
    faultTable(state.faults, describeFault, 'None: the hub behaves.', 'hub faults'),
    faultTable(state.cosFaults, describeCosFault, 'COS serves every download as asked.', 'COS faults'));
  renderFaultForm();
}

// ---- arming ----------------------------------------------------------------------------------

// The device a hub preset is about: the one whose timeline is shown, else the first subdevice.
function presetDevice() {
  const k = state.selected || [...state.devices.keys()].find((d) => state.devices.get(d).kind === 'subdevice') || 'PRODUCT_ID/DEVICE_NAME';
  const [product_id, device_name] = k.split('/');
  return { product_id, device_name };
}

// The object a COS preset is about: the newest firmware, else any object.
function presetObject() {
  const f = state.firmware && state.firmware.length ? state.firmware[state.firmware.length - 1] : null;
  return f ? { object: f.object } : {};
}

const FAULT_PRESETS = {
  cos: {
    'cut after N bytes': () => ({ when: presetObject(), verdict: { kind: 'cut_after', bytes: 10000 }, fires: 'once' }),
    '403 (URL expired)': () => ({ when: presetObject(), verdict: { kind: 'status', code: 403 }, fires: 'always' }),
    '404 (no such object)': () => ({ when: presetObject(), verdict: { kind: 'status', code: 404 }, fires: 'always' }),
    '503 with Retry-After': () => ({ when: presetObject(), verdict: { kind: 'status', code: 503, retry_after_secs: 5 }, fires: 'once' }),
    'corrupt bytes (wrong MD5)': () => ({ when: presetObject(), verdict: { kind: 'corrupt', offset: 100 }, fires: 'always' }),
    'stall after N bytes': () => ({ when: presetObject(), verdict: { kind: 'stall_after', bytes: 10000, for_ms: 5000 }, fires: 'once' }),
    'throttle': () => ({ when: presetObject(), verdict: { kind: 'throttle', bytes_per_sec: 20000 }, fires: 'always' }),
    'ignore Range': () => ({ when: presetObject(), verdict: { kind: 'ignore_range' }, fires: 'always' }),
    'reset the connection': () => ({ when: presetObject(), verdict: { kind: 'reset', after_bytes: 10000 }, fires: 'once' }),
  },
  hub: {
    'wrong MD5 in update_firmware': () => ({ when: { on: 'update_firmware', device: presetDevice() }, action: { do: 'wrong_md5' }, fires: 'always' }),
    'wrong size in update_firmware': () => ({ when: { on: 'update_firmware', device: presetDevice() }, action: { do: 'wrong_size', file_size: 1 }, fires: 'once' }),
    'duplicate update_firmware': () => ({ when: { on: 'update_firmware', device: presetDevice() }, action: { do: 'duplicate_update' }, fires: 'once' }),
    'kick the gateway on its report': () => ({ when: { on: 'message', device: presetDevice(), message_type: 'report_progress' }, action: { do: 'kick' }, fires: 'once' }),
  },
};

function fillPreset() {
  const target = $('fault-target').value;
  const name = $('fault-preset').value;
  const make = FAULT_PRESETS[target][name];
  if (make) $('fault-rule').value = JSON.stringify(make(), null, 1);
}

function renderPresetChoices() {
  const target = $('fault-target').value;
  $('fault-preset').replaceChildren(...Object.keys(FAULT_PRESETS[target]).map((n) => el('option', { value: n, text: n })));
  fillPreset();
}

async function armFault(ev) {
  ev.preventDefault();
  const target = $('fault-target').value;
  let rule;
  try { rule = JSON.parse($('fault-rule').value); } catch (e) { say('fault-message', false, `The rule is not JSON: ${e.message}`); return; }
  try {
    const made = await (target === 'cos'
      ? api('POST', '/api/cos/faults', rule)
      : api('POST', '/api/faults', rule));
    say('fault-message', true, `Armed ${target === 'cos' ? 'COS' : 'hub'} fault #${made.id}.`);
  } catch (e) {
    say('fault-message', false, e.message);
  }
  await loadFaults();
  renderFaults();
}

// The form is made once, beside the lists, so a refresh of the lists never loses an edit.
function renderFaultForm() {
  if ($('fault-form')) return;
  const form = el('form', { id: 'fault-form', class: 'fault-form' },
    el('label', {}, 'Arm a ', el('select', { id: 'fault-target' },
      el('option', { value: 'cos', text: 'COS (download)' }), el('option', { value: 'hub', text: 'hub (MQTT)' }))),
    ' fault: ', el('select', { id: 'fault-preset' }),
    el('textarea', { id: 'fault-rule', rows: '5', spellcheck: 'false', 'aria-label': 'the rule as JSON' }),
    el('button', { type: 'submit', id: 'fault-arm', text: 'Arm' }),
    el('p', { id: 'fault-message', class: 'message', hidden: true }));
  $('faults').after(form);
  $('fault-target').addEventListener('change', renderPresetChoices);
  $('fault-preset').addEventListener('change', fillPreset);
  form.addEventListener('submit', armFault);
  renderPresetChoices();
}

document.addEventListener('click', (e) => {
  const cos = e.target.closest('button[data-cos-fault]');
  if (cos) removeCosFault(cos.dataset.cosFault);
});
