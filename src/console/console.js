// The otasim hub console: every action goes through the control API under /api, live state
// comes from the server-sent events of /api/events. No framework, no build step.
'use strict';
(() => {
  const METHOD_NAMES = {
    versions: 'by version', devices_and_versions: 'by devices and versions', devices: 'by device list',
  };

  // ---- loading -------------------------------------------------------------------------------

  async function loadFirmware() { state.firmware = await api('GET', '/api/firmware'); }
  // A fetched task may be older than the device events that arrived while it was in flight:
  // per device, the update with the longer history is the newer one.
  async function loadTasks() {
    const tasks = await api('GET', '/api/tasks');
    for (const t of tasks) {
      for (const [k, u] of Object.entries(t.devices)) {
        const live = (state.devices.get(k) || {}).update;
        if (live && live.task_id === t.id && live.history.length > u.history.length) t.devices[k] = live;
      }
    }
    state.tasks = new Map(tasks.map((t) => [t.id, t]));
  }
  // Devices need no fetch: the event stream sends every device when it opens, then changes.
  async function loadAll() {
    await Promise.all([loadCodes().then(renderLegend), loadFirmware(), loadTasks(), loadFaults()]);
    schedule();
    if (state.selected) await loadTimeline();
  }

  let queued = false;
  function schedule() {
    if (queued) return;
    queued = true;
    setTimeout(() => { queued = false; render(); }, 0);
  }
  function render() {
    renderFleet(); renderFirmware(); renderPushChoices(); renderTasks(); renderFaults();
    renderDevicePicker();
  }

  // ---- fleet ---------------------------------------------------------------------------------

  function updatePill(u) {
    if (!u) return el('span', { class: 'note', text: '—' });
    const s = u.state;
    let text = s.state;
    if (s.state === 'downloading') text += ` ${s.percent}%`;
    if (s.state === 'failed') text += ` ${s.code}`;
    return el('span', { class: `pill ${s.state}`, title: `task #${u.task_id}: ${u.target_version}`, text: `${text} → ${u.target_version}` });
  }

  function deviceRow(d) {
    const k = devKey(d.device);
    return el('tr', { 'data-device': k, title: 'show its timeline' },
      el('td', {}, el('span', { class: `dot ${d.online ? 'on' : ''}` }), ' ', d.device.device_name),
      el('td', { class: 'mono', text: d.device.product_id }),
      el('td', { class: 'mono', text: d.version || '?' }),
      el('td', { text: (d.online ? 'online' : 'offline') + (d.enabled === false ? ', disabled' : '') }),
      el('td', {}, updatePill(d.update)));
  }

  function subTable(subs) {
    const head = el('tr', {}, ...['Subdevice', 'Product', 'Version', 'State', 'Update'].map((t) => el('th', { text: t })));
    return el('table', {}, el('thead', {}, head), el('tbody', {}, ...subs.map(deviceRow)));
  }

  function renderFleet() {
    const all = [...state.devices.values()];
    const subs = all.filter((d) => d.kind === 'subdevice');
    const groups = all.filter((d) => d.kind === 'gateway').map((g) => {
      const mine = subs.filter((s) => s.bound_to && devKey(s.bound_to) === devKey(g.device));
      return el('div', { class: 'gw', 'data-device': devKey(g.device) },
        el('div', { class: 'gw-head' },
          el('span', { class: `dot ${g.online ? 'on' : ''}` }),
          el('span', { class: 'mono', text: devKey(g.device) }),
          el('span', { class: 'kind', text: `gateway · ${g.online ? 'connected' : 'not connected'} · ${plural(mine.length, 'subdevice')}` })),
        mine.length ? subTable(mine) : el('p', { class: 'empty', text: 'No subdevice bound.' }));
    });
    const loose = subs.filter((s) => !s.bound_to);
    if (loose.length) {
      groups.push(el('div', { class: 'gw' },
        el('div', { class: 'gw-head', text: 'Not bound to a gateway' }), subTable(loose)));
    }
    const none = el('p', { class: 'empty', text: 'No devices registered: start otasim hub with --fleet FILE, or POST /api/gateways and /api/subdevices.' });
    $('fleet').replaceChildren(...(groups.length ? groups : [none]));
  }

  // ---- firmware ------------------------------------------------------------------------------

  function renderFirmware() {
    const rows = state.firmware.map((f) => el('tr', { 'data-firmware': `${f.product_id}/${f.version}` },
      el('td', { class: 'mono', text: f.product_id }), el('td', { class: 'mono', text: f.version }),
      el('td', { class: 'num', text: bytes(f.size_bytes) }), el('td', { class: 'mono', text: f.md5 })));
    if (!rows.length) rows.push(el('tr', {}, el('td', { colspan: 4, class: 'empty', text: 'No firmware uploaded yet.' })));
    $('firmware').tBodies[0].replaceChildren(...rows);
    const products = new Set([...state.devices.values()].map((d) => d.device.product_id));
    state.firmware.forEach((f) => products.add(f.product_id));
    $('products').replaceChildren(...[...products].sort().map((p) => el('option', { value: p })));
  }

  async function upload(ev) {
    ev.preventDefault();
    const form = new FormData();
    const product = $('upload-product').value.trim();
    const version = $('upload-version').value.trim();
    form.append('product_id', product);
    form.append('version', version);
    const file = $('upload-file').files[0];
    if (file) form.append('file', file, file.name);
    $('upload-submit').disabled = true;
    try {
      const info = await api('POST', '/api/firmware/form', form);
      say('upload-message', true, `Uploaded ${info.product_id} ${info.version}: ${bytes(info.size_bytes)}, MD5 ${info.md5}`);
      await loadFirmware();
      $('push-firmware').dataset.want = `${info.product_id}\n${info.version}`;
      schedule();
    } catch (e) {
      say('upload-message', false, `Upload refused: ${e.message}. Nothing was changed.`);
    } finally {
      $('upload-submit').disabled = false;
    }
  }

  // ---- push ----------------------------------------------------------------------------------

  function chosenFirmware() {
    const v = $('push-firmware').value;
    if (!v) return null;
    const [product_id, version] = v.split('\n');
    return { product_id, version };
  }

  // Adds missing checkboxes and drops stale ones, keeping what the user ticked.
  function syncChoices(box, group, items) {
    const have = new Map([...box.querySelectorAll('label')].map((l) => [l.dataset.value, l]));
    const want = new Set(items.map((i) => i.value));
    for (const [v, l] of have) if (!want.has(v)) l.remove();
    for (const i of items) {
      let l = have.get(i.value);
      if (!l) {
        l = el('label', { 'data-value': i.value },
          el('input', { type: 'checkbox', name: group, value: i.value, checked: i.checked }), ' ', el('span'));
        box.append(l);
      }
      l.querySelector('span').textContent = i.label;
    }
    if (!items.length) box.replaceChildren(el('span', { class: 'note', text: 'none known for this product' }));
    else box.querySelectorAll('span.note').forEach((n) => n.remove());
  }

  function renderPushChoices() {
    const sel = $('push-firmware');
    const current = sel.dataset.want || sel.value;
    delete sel.dataset.want;
    const opts = state.firmware.map((f) => el('option', {
      value: `${f.product_id}\n${f.version}`, text: `${f.product_id} ${f.version} (${bytes(f.size_bytes)})`,
    }));
    if (!opts.length) opts.push(el('option', { value: '', text: 'upload firmware first' }));
    const same = opts.map((o) => o.value).join('|') === [...sel.options].map((o) => o.value).join('|');
    if (!same) sel.replaceChildren(...opts);
    if ([...sel.options].some((o) => o.value === current)) sel.value = current;
    const fw = chosenFirmware();
    const subs = [...state.devices.values()]
      .filter((d) => d.kind === 'subdevice' && fw && d.device.product_id === fw.product_id);
    const versions = [...new Set(subs.map((d) => d.version).filter((v) => v && v !== fw.version))].sort();
    syncChoices($('push-version-choices'), 'from', versions.map((v) => ({
      value: v, checked: true, label: `${v} (${plural(subs.filter((d) => d.version === v).length, 'device')})`,
    })));
    syncChoices($('push-device-choices'), 'device', subs.map((d) => ({
      value: d.device.device_name, checked: false,
      label: `${d.device.device_name} (${d.version || '?'}${d.online ? '' : ', offline'})`,
    })));
  }

  function showMethod() {
    const m = document.querySelector('input[name=method]:checked').value;
    $('push-versions').hidden = m === 'devices';
    $('push-devices').hidden = m === 'versions';
    $('push-list').hidden = m !== 'devices';
  }

  function pushRequest() {
    const fw = chosenFirmware() || { product_id: '', version: '' };
    const method = document.querySelector('input[name=method]:checked').value;
    const checked = (group) => [...document.querySelectorAll(`input[name=${group}]:checked`)].map((i) => i.value);
    const split = (text) => text.split(/[\s,]+/).map((s) => s.trim()).filter(Boolean);
    const from = [...new Set([...checked('from'), ...split($('push-versions-extra').value)])];
    const devices = [...new Set([...checked('device'), ...(method === 'devices' ? split($('push-names').value) : [])])];
    const req = { product_id: fw.product_id, version: fw.version, method };
    if (method !== 'devices') req.from_versions = from;
    if (method !== 'versions') req.devices = devices;
    const options = taskOptions();
    if (Object.keys(options).length) req.options = options;
    return req;
  }

  // Only what the user set: the API's defaults stand for the rest, and its errors name the field.
  function taskOptions() {
    const num = (id) => ($(id).value.trim() === '' ? undefined : Number($(id).value));
    const ms = (id) => (num(id) === undefined ? undefined : Math.round(num(id) * 1000));
    const o = {
      timeout_ms: ms('opt-timeout'), retries: num('opt-retries'),
      retry_interval_ms: ms('opt-retry-interval'), start_delay_ms: ms('opt-start-delay'),
    };
    if (num('opt-rate-devices') !== undefined) {
      o.rate_limit = { devices: num('opt-rate-devices'), per_ms: ms('opt-rate-per') ?? 60000 };
    }
    if ($('opt-override').checked) o.override_running = true;
    return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined));
  }

  async function push(ev) {
    ev.preventDefault();
    const req = pushRequest();
    $('push-submit').disabled = true;
    try {
      const { task_id } = await api('POST', '/api/tasks', req);
      say('push-message', true, `Task #${task_id} created: ${req.product_id} ${req.version}, ${METHOD_NAMES[req.method]}.`);
      await loadTasks();
      schedule();
      const first = Object.keys((state.tasks.get(task_id) || { devices: {} }).devices).sort()[0];
      if (!state.selected && first) selectDevice(first);
    } catch (e) {
      say('push-message', false, `Push refused: ${e.message}. No task was created.`);
    } finally {
      $('push-submit').disabled = false;
    }
  }

  // ---- tasks ---------------------------------------------------------------------------------

  function renderLegend() {
    const codes = Object.entries(CODES.ota).sort(([a], [b]) => Number(b) - Number(a));
    $('code-legend').textContent = `Failure codes: ${codes.map(([c, m]) => `${c} ${m}`).join(' · ')}`;
  }

  function progress(s) {
    switch (s.state) {
      case 'downloading': return s.percent;
      case 'queued': case 'pushed': return 0;
      default: return 100;
    }
  }

  function stateDetail(u) {
    const s = u.state;
    const attempt = u.attempts > 1 ? ` (attempt ${u.attempts})` : '';
    const why = s.message ? ` — ${s.message}` : '';
    if (s.state === 'failed') return el('span', { class: 'why', text: `${codeText(s.code)}${why}${attempt}` });
    if (s.state === 'waiting_retry') return el('span', { class: 'why', text: `${codeText(s.code)}${why}; retrying${attempt}` });
    if (s.state === 'cancelled') return el('span', { class: 'note', text: `cancelled: ${s.reason}` });
    const text = {
      queued: 'queued: waits for the start delay or the rate limit',
      pushed: u.commands_sent ? `update_firmware sent${u.commands_sent > 1 ? ` ×${u.commands_sent}` : ''}` : 'waiting for the device to come online',
      downloading: `downloading, ${s.percent}%`, burning: 'burning into the device',
      done: 'done, waiting for its new version', succeeded: `now runs ${u.target_version}`,
    }[s.state] || s.state;
    return el('span', { class: 'note', text: text + attempt });
  }

  // A device whose own link or whose gateway is down cannot be downloading or burning: show it
  // as offline instead of a bar that seems to move.
  function offlineNow(k) {
    const d = state.devices.get(k);
    if (!d) return false;
    const gw = d.bound_to ? state.devices.get(devKey(d.bound_to)) : null;
    return !d.online || (gw !== null && gw !== undefined && !gw.online);
  }

  // The state a row shows: `offline` while an unfinished update waits on a device that is gone.
  function shownState(k, st) {
    return !isFinal(st) && st !== 'queued' && offlineNow(k) ? 'offline' : st;
  }

  function taskRow(tbody, k, u) {
    let tr = tbody.querySelector(`tr[data-device="${CSS.escape(k)}"]`);
    if (!tr) {
      tr = el('tr', { 'data-device': k },
        el('td', { class: 'dev mono', text: shortName(k), title: k }), el('td', { class: 'ver mono' }),
        el('td', { class: 'bar' }, el('div', { class: 'bar-outer' }, el('div', { class: 'bar-inner' }))),
        el('td', { class: 'state' }), el('td', { class: 'detail' }));
      tbody.append(tr);
    }
    const s = u.state;
    const offline = shownState(k, s.state) === 'offline';
    tr.dataset.state = offline ? 'offline' : s.state;
    tr.cells[1].textContent = `${u.from_version || '?'} → ${u.target_version}`;
    const bar = tr.querySelector('.bar-inner');
    bar.className = `bar-inner ${offline ? 'offline' : s.state}`;
    bar.style.width = `${progress(s)}%`;
    const pill = offline ? 'offline' : (s.state === 'downloading' ? `${s.percent}%` : s.state);
    tr.cells[3].replaceChildren(el('span', { class: `pill ${offline ? 'offline' : s.state}`, text: pill }));
    tr.cells[4].replaceChildren(offline
      ? el('span', { class: 'note', text: `offline (its gateway is not connected) while ${s.state === 'downloading' ? `downloading at ${s.percent}%` : s.state}; the update goes on when it is back` })
      : stateDetail(u));
  }

  function describeRequest(r) {
    const names = (r.devices || []).join(', ');
    const from = (r.from_versions || []).join(', ');
    if (r.method === 'versions') return `every device on ${from}`;
    if (r.method === 'devices_and_versions') return `${names}, if on ${from}`;
    return names;
  }

  function describeOptions(o) {
    if (!o) return null;
    const secs = (ms) => `${ms / 1000} s`;
    const parts = [];
    if (o.timeout_ms) parts.push(`timeout ${secs(o.timeout_ms)}`);
    if (o.retries) parts.push(`${o.retries} retries every ${secs(o.retry_interval_ms || 0)}`);
    if (o.rate_limit) parts.push(`${o.rate_limit.devices} devices per ${secs(o.rate_limit.per_ms)}`);
    if (o.start_delay_ms) parts.push(`starts after ${secs(o.start_delay_ms)}`);
    if (o.override_running) parts.push('overrides running updates');
    return parts.length ? el('span', { class: 'note', text: `options: ${parts.join(', ')}` }) : null;
  }

  function taskHead(t) {
    const updates = Object.values(t.devices);
    const counts = {};
    Object.entries(t.devices).forEach(([k, u]) => {
      const shown = shownState(k, u.state.state);
      counts[shown] = (counts[shown] || 0) + 1;
    });
    const finished = updates.every((u) => isFinal(u.state.state));
    const failed = counts.failed || 0;
    const collapsed = state.collapsed.has(t.id);
    const failures = Object.entries(t.failures || {}).map(([code, n]) => `${n} × ${codeText(code)}`);
    const skipped = Object.entries(t.skipped || {}).map(([k, other]) => `${shortName(k)} (pending under task #${other})`);
    return el('div', { class: 'task-head' },
      el('button', { type: 'button', class: 'toggle', 'data-toggle': t.id, 'aria-expanded': String(!collapsed), title: collapsed ? 'expand' : 'collapse', text: collapsed ? '▸' : '▾' }),
      el('span', { class: 'title', text: `Task #${t.id}: ${t.request.product_id} ${t.request.version}` }),
      el('span', { class: 'note', text: `${METHOD_NAMES[t.request.method] || t.request.method}: ${describeRequest(t.request)}` }),
      ...Object.entries(counts).map(([s, n]) => el('span', { class: `pill ${s}`, text: `${n} ${s}` })),
      t.cancelled ? el('span', { class: 'pill cancelled', text: 'task cancelled' }) : null,
      finished ? el('span', { class: failed ? 'finished failed' : 'finished', text: failed ? `finished with ${failed} failed` : 'finished' })
        : (t.cancelled ? null : el('button', { type: 'button', class: 'small', 'data-cancel': t.id, text: 'Cancel task' })),
      describeOptions(t.options),
      failures.length ? el('span', { class: 'why', text: `failures: ${failures.join(', ')}` }) : null,
      skipped.length ? el('span', { class: 'note', text: `skipped: ${skipped.join(', ')}` }) : null);
  }

  function renderTasks() {
    const box = $('tasks');
    const tasks = [...state.tasks.values()].sort((a, b) => b.id - a.id);
    if (!tasks.length) { box.replaceChildren(el('p', { class: 'empty', text: 'No update pushed yet.' })); return; }
    box.querySelectorAll('p.empty').forEach((p) => p.remove());
    let shown = 0;
    tasks.forEach((t, i) => {
      let div = box.querySelector(`div.task[data-task="${t.id}"]`);
      if (!div) div = el('div', { class: 'task', 'data-task': t.id }, el('div'), el('table', {}, el('tbody')));
      div.firstChild.replaceWith(taskHead(t));
      div.classList.toggle('collapsed', state.collapsed.has(t.id));
      div.hidden = !taskMatches(t);
      if (!div.hidden) shown += 1;
      const tbody = div.querySelector('tbody');
      for (const [k, u] of Object.entries(t.devices).sort(([a], [b]) => a.localeCompare(b))) taskRow(tbody, k, u);
      if (box.children[i] !== div) box.insertBefore(div, box.children[i] || null);
    });
    $('task-count').textContent = shown === tasks.length ? plural(tasks.length, 'task') : `${shown} of ${plural(tasks.length, 'task')} shown`;
  }

  // The filter matches a task's id (`#3`), product, version, method, device names and states.
  function taskMatches(t) {
    const finished = Object.values(t.devices).every((u) => isFinal(u.state.state));
    if ($('task-hide-finished').checked && finished) return false;
    const words = $('task-filter').value.toLowerCase().split(/\s+/).filter(Boolean);
    if (!words.length) return true;
    const hay = [`#${t.id}`, t.request.product_id, t.request.version, t.request.method,
      ...Object.keys(t.devices), ...Object.values(t.devices).map((u) => u.state.state),
      finished ? 'finished' : 'running', t.cancelled ? 'cancelled' : ''].join(' ').toLowerCase();
    return words.every((w) => hay.includes(w));
  }

  function toggleTask(id, collapse) {
    if (collapse) state.collapsed.add(id); else state.collapsed.delete(id);
  }

  async function cancelTask(id) {
    try {
      const t = await api('POST', `/api/tasks/${id}/cancel`);
      state.tasks.set(t.id, t);
      schedule();
    } catch (e) {
      say('push-message', false, `Cancel refused: ${e.message}.`);
    }
  }

  function onDevice(d) {
    const k = devKey(d.device);
    state.devices.set(k, d);
    if (d.update) {
      const t = state.tasks.get(d.update.task_id);
      if (t) t.devices[k] = d.update;
      else loadTasks().then(schedule, () => {});
    }
    refreshFaultsSoon();
    schedule();
  }

  // ---- wiring --------------------------------------------------------------------------------

  function connect() {
    const live = $('live');
    const es = new EventSource('/api/events');
    es.onopen = () => {
      live.textContent = 'live';
      live.className = 'live';
      loadAll().catch((e) => { live.textContent = `error: ${e.message}`; });
    };
    es.onerror = () => { live.textContent = 'reconnecting…'; live.className = 'live off'; };
    es.addEventListener('device', (m) => onDevice(JSON.parse(m.data)));
    es.addEventListener('transcript', (m) => {
      const e = JSON.parse(m.data);
      if (e.direction === 'event' && e.topic.startsWith('fault')) refreshFaultsSoon();
      if (state.selected && entryIsAbout(e, state.selected)) {
        $('timeline').querySelectorAll('li.note').forEach((n) => n.remove());
        addEntries([e]);
      }
    });
    es.addEventListener('lagged', () => { loadAll().catch(() => {}); });
  }

  $('upload-form').addEventListener('submit', upload);
  $('push-form').addEventListener('submit', push);
  $('push-firmware').addEventListener('change', renderPushChoices);
  document.querySelectorAll('input[name=method]').forEach((r) => r.addEventListener('change', showMethod));
  $('transcript-device').addEventListener('change', (e) => selectDevice(e.target.value));
  document.addEventListener('click', (e) => {
    const cancel = e.target.closest('button[data-cancel]');
    if (cancel) { cancelTask(cancel.dataset.cancel); return; }
    const toggle = e.target.closest('button[data-toggle]');
    if (toggle) {
      const id = Number(toggle.dataset.toggle);
      toggleTask(id, !state.collapsed.has(id));
      renderTasks();
      return;
    }
    const fault = e.target.closest('button[data-fault]');
    if (fault) { removeFault(fault.dataset.fault); return; }
    const row = e.target.closest('#fleet tr[data-device], #tasks tr[data-device]');
    if (row) selectDevice(row.dataset.device);
  });
  $('task-filter').addEventListener('input', () => renderTasks());
  $('task-hide-finished').addEventListener('change', () => renderTasks());
  $('task-collapse-all').addEventListener('click', () => { state.tasks.forEach((t) => toggleTask(t.id, true)); renderTasks(); });
  $('task-expand-all').addEventListener('click', () => { state.collapsed.clear(); renderTasks(); });
  showMethod();
  renderFaults();
  connect();
})();
