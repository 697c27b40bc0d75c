// One device's transcript as a readable timeline: fetched from /api/transcript, then live.
'use strict';

// The hub works out, in Rust, which devices an entry concerns (`about`), who spoke to whom
// (`who`), the message in words (`summary`) and a failure code's meaning (`code`): this file
// only renders them.
function entryIsAbout(e, k) { return (e.about || [e.device]).includes(k); }

function entryItem(e) {
  const what = el('span', { class: e.code ? 'what why' : 'what', text: e.summary });
  return el('li', { class: `dir-${e.direction}`, 'data-seq': e.seq },
    el('span', { class: 't', text: `${(e.at / 1000).toFixed(3)} s` }), el('span', { class: 'who', text: e.who }),
    what);
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
