// Shared by the console's scripts: DOM and API helpers, and the page's state.
'use strict';

const $ = (id) => document.getElementById(id);
// What codes mean and which task states are final come from the hub (`GET /api/codes`): a new
// code or state is added in Rust only.
const CODES = { ota: {}, gateway: {}, final_states: ['succeeded', 'failed', 'cancelled'] };
async function loadCodes() { Object.assign(CODES, await api('GET', '/api/codes')); }
const isFinal = (s) => CODES.final_states.includes(s);
const state = {
  devices: new Map(), firmware: [], tasks: new Map(), faults: undefined,
  selected: '', seen: new Set(), collapsed: new Set(),
};

const devKey = (id) => `${id.product_id}/${id.device_name}`;
const shortName = (k) => k.split('/')[1] || k;
// 29,972 B; 200.0 MiB (209,715,200 B): the exact count always, a unit from 1 MiB on.
function bytes(n) {
  const exact = `${n.toLocaleString('en-US')} B`;
  if (n < 1024 * 1024) return exact;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let v = n / 1024, u = 0;
  while (v >= 1024 && u < units.length - 1) { v /= 1024; u += 1; }
  return `${v.toFixed(1)} ${units[u]} (${exact})`;
}
const plural = (n, word) => `${n} ${word}${n === 1 ? '' : 's'}`;
const codeText = (code) => `${code} ${CODES.ota[String(code)] || 'unknown code'}`;

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') node.className = v;
    else if (k === 'text') node.textContent = v;
    else node.setAttribute(k, v === true ? '' : v);
  }
  for (const c of children) if (c !== null && c !== undefined) node.append(c);
  return node;
}

async function api(method, path, body) {
  const init = { method, headers: {} };
  if (body instanceof FormData) init.body = body;
  else if (body !== undefined) {
    init.body = JSON.stringify(body);
    init.headers['content-type'] = 'application/json';
  }
  const res = await fetch(path, init);
  const text = await res.text();
  let json = null;
  try { json = text ? JSON.parse(text) : null; } catch (_) { json = null; }
  if (!res.ok) {
    const what = json && json.error ? json.error : (text || res.statusText);
    const field = json && json.field ? ` (field: ${json.field})` : '';
    const err = new Error(`${what}${field}`);
    err.status = res.status;
    throw err;
  }
  return json;
}

function say(id, ok, text) {
  const p = $(id);
  p.hidden = false;
  p.className = `message ${ok ? 'ok' : 'error'}`;
  p.setAttribute('role', ok ? 'status' : 'alert');
  p.textContent = text;
}
