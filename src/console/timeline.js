// One device's transcript as a readable timeline: fetched from /api/transcript, then live.
// MQTT in and out, hub events, and the COS requests made with the URLs signed for the device.
'use strict';

// The device a topic belongs to, as the hub's transcript filter reads it.
function topicDevice(topic) {
  const p = topic.split('/');
  if (p.length === 4 && p[0] === '$ota' && (p[1] === 'update' || p[1] === 'report')) return { kind: 'ota', dev: `${p[2]}/${p[3]}` };
  if (p.length === 5 && p[0] === '$gateway' && p[1] === 'operation' && p[2] === 'result') return { kind: 'op', dev: `${p[3]}/${p[4]}` };
  if (p.length === 4 && p[0] === '$gateway' && p[1] === 'operation') return { kind: 'op', dev: `${p[2]}/${p[3]}` };
  return null;
}

function parseJson(text) { try { return JSON.parse(text); } catch (_) { return null; } }

function opDevices(e) {
  const j = parseJson(e.payload);
  const ds = j && j.payload && Array.isArray(j.payload.devices) ? j.payload.devices : [];
  return ds.map((d) => ({ k: `${d.product_id}/${d.device_name}`, result: d.result }));
}

// A COS request names every device that holds a URL for its object.
function httpRecord(e) { return e.direction === 'http' ? parseJson(e.payload) || {} : null; }

function entryIsAbout(e, k) {
  const h = httpRecord(e);
  if (h) return Array.isArray(h.devices) && h.devices.includes(k);
  const t = topicDevice(e.topic);
  if (!t) return e.client_id === k.replace('/', '');
  return t.dev === k || (t.kind === 'op' && opDevices(e).some((d) => d.k === k));
}

function describeEntry(e) {
  const t = topicDevice(e.topic);
  const j = parseJson(e.payload);
  if (e.direction === 'event') return [el('b', { text: e.topic }), ` ${e.payload}`];
  if (e.direction === 'http') return describeHttp(e, j || {});
  if (t && t.kind === 'op') {
    const ds = opDevices(e).map((d) => shortName(d.k) + (d.result === undefined ? '' : ` → result ${d.result}`));
    return [el('b', { text: (j && j.type) || 'operation' }), ` ${ds.join(', ')}`, el('span', { class: 'note', text: `  via ${shortName(t.dev)}` })];
  }
  if (!j) return [e.topic, ' ', e.payload.slice(0, 160)];
  if (j.type === 'report_version') return [el('b', { text: 'reports version ' }), (j.report || {}).version];
  if (j.type === 'report_progress') {
    const r = j.report || {};
    const p = r.progress || {};
    let s = p.state || '?';
    if (p.percent !== undefined) s += ` ${p.percent}%`;
    const code = Number(p.result_code || 0);
    const fail = code ? ` — ${codeText(code)}${p.result_msg ? `: ${p.result_msg}` : ''}` : '';
    return [el('b', { text: s }), fail, el('span', { class: 'note', text: `  (${r.version})` })];
  }
  if (j.type === 'update_firmware') {
    return [el('b', { text: `update_firmware ${j.version}` }), `: ${bytes(Number(j.file_size) || 0)}, MD5 ${j.md5sum}`];
  }
  if (j.type === 'report_version_rsp') return [el('b', { text: 'version acknowledged' }), ` ${j.version} (result ${j.result_code})`];
  return [el('b', { text: j.type || e.topic }), ` ${e.payload.slice(0, 160)}`];
}

// `GET /E69UADXUYY_2.0 bytes=65536- → 206, 534,464 B, complete`, and the fault that decided it.
function describeHttp(e, h) {
  const parts = [el('b', { text: e.topic })];
  if (h.range) parts.push(` ${h.range}`);
  const ok = h.status < 400 && h.end === 'complete';
  parts.push(` → ${h.status}, ${bytes(Number(h.bytes_sent) || 0)}, `, el('span', { class: ok ? '' : 'why', text: String(h.end || '?').replace(/_/g, ' ') }));
  const kind = h.fault && h.fault.verdict ? h.fault.verdict.kind : null;
  if (kind) parts.push(el('span', { class: 'note', text: `  (COS fault #${h.fault.id}: ${kind.replace(/_/g, ' ')})` }));
  return parts;
}

function entryItem(e) {
  const who = topicDevice(e.topic);
  const h = httpRecord(e);
  const httpWho = h && Array.isArray(h.devices) && h.devices.length ? h.devices.map(shortName).join(', ') : (h || {}).client;
  const dev = who ? shortName(who.dev) : e.client_id;
  const arrow = { in: `${dev} → hub`, out: `hub → ${dev}`, refused: `${dev} ✗ hub (refused)`, event: e.client_id, http: `${httpWho} ⇐ COS` }[e.direction];
  return el('li', { class: `dir-${e.direction}`, 'data-seq': e.seq },
    el('span', { class: 't', text: `${(e.at / 1000).toFixed(3)} s` }), el('span', { class: 'who', text: arrow }),
    el('span', { class: 'what' }, ...describeEntry(e)));
}

function addEntries(entries) {
  const list = $('timeline');
  const atBottom = list.scrollTop + list.clientHeight >= list.scrollHeight - 4;
  const fresh = entries.filter((e) => !state.seen.has(e.seq)).sort((a, b) => a.seq - b.seq);
  for (const e of fresh) {
    state.seen.add(e.seq);
    const item = entryItem(e);
    // Entries nearly always come in order: append, and only search for the rare late one.
    const last = list.lastElementChild;
    const late = last && Number(last.dataset.seq) > e.seq;
    const after = late ? [...list.children].find((li) => Number(li.dataset.seq) > e.seq) : null;
    list.insertBefore(item, after || null);
  }
  if (atBottom) list.scrollTop = list.scrollHeight;
}

async function loadTimeline() {
  const k = state.selected;
  state.seen = new Set();
  $('timeline').replaceChildren();
  if (!k) {
    $('timeline').append(el('li', { class: 'note', text: 'Pick a device above, or click a row in the fleet or in a task.' }));
    return;
  }
  const d = state.devices.get(k);
  const mine = api('GET', `/api/transcript?device=${encodeURIComponent(k)}`);
  const gw = d && d.bound_to ? api('GET', `/api/transcript?device=${encodeURIComponent(devKey(d.bound_to))}`) : Promise.resolve([]);
  const [a, b] = await Promise.all([mine, gw]);
  if (state.selected !== k) return;
  addEntries([...a, ...b.filter((e) => entryIsAbout(e, k))]);
  if (!$('timeline').children.length) $('timeline').append(el('li', { class: 'note', text: 'Nothing yet.' }));
}

function renderDevicePicker() {
  const sel = $('transcript-device');
  const keys = [...state.devices.keys()].sort();
  const have = [...sel.options].slice(1).map((o) => o.value);
  if (have.join('|') === keys.join('|')) return;
  sel.replaceChildren(el('option', { value: '', text: 'choose a device' }),
    ...keys.map((k) => el('option', { value: k, text: `${k} (${state.devices.get(k).kind})` })));
  sel.value = state.selected;
}

function selectDevice(k) {
  state.selected = k;
  $('transcript-device').value = k;
  loadTimeline().catch((e) => $('timeline').replaceChildren(el('li', { class: 'why', text: e.message })));
}
