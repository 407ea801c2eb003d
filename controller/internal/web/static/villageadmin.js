// Editing one village (admins): its name, township, coordinates and
// device, checked by the server as the CSV import checks a row; replacing
// its box (the old one revoked, a new enrollment command made, in one
// step); and the box settings (quiet hours, volume) of its township and
// of the village itself. app.js calls init once and edit(v) from the
// villages table.
import { t, fmtTime } from './i18n.js';
import './i18n-admin.js';

const $ = (id) => document.getElementById(id);

let ctx = null; // { api, showError, reload, showEnroll, towns }
let current = null; // the village being edited

export function init(c) {
  ctx = c;
  $('ve-form').addEventListener('submit', save);
  $('ve-close').addEventListener('click', close);
  $('ve-replace').addEventListener('click', askReplace);
}

export function close() {
  current = null;
  $('ve-panel').hidden = true;
}

// edit opens the panel for village v (as GET /api/v1/villages lists it).
export function edit(v) {
  current = v;
  $('ve-title').textContent = t('ve.title', { name: v.name, code: v.code });
  $('ve-name').value = v.name;
  $('ve-town').value = v.township;
  $('ve-lat').value = v.lat;
  $('ve-lon').value = v.lon;
  $('ve-device').value = v.device;
  $('ve-towns').replaceChildren(...ctx.towns().map((n) => new Option(n)));
  for (const id of ['ve-errors', 've-msg']) $(id).hidden = true;
  resetReplace();
  $('ve-box-part').hidden = v.device !== 'agent';
  $('ve-panel').hidden = false;
  $('ve-panel').scrollIntoView({ block: 'start' });
  $('ve-name').focus();
  loadSettings(v).catch((e) => ctx.showError(e.message));
}

// num reads a coordinate as typed, full-width digits from a Chinese IME
// included; NaN if it is not a number (the server then names the field).
function num(s) {
  const v = s.trim().replace(/[０-９．－]/g, (c) => String.fromCharCode(c.charCodeAt(0) - 0xFEE0));
  return v === '' ? NaN : Number(v);
}

async function save(ev) {
  ev.preventDefault();
  const v = current;
  if (!v) return;
  const box = $('ve-errors');
  box.hidden = true;
  $('ve-msg').hidden = true;
  const body = { name: $('ve-name').value, township: $('ve-town').value, device: $('ve-device').value };
  const bad = [];
  for (const f of ['lat', 'lon']) {
    const x = num($('ve-' + f).value);
    if (Number.isFinite(x)) body[f] = x; else bad.push({ field: f, reason: t('ve.err.number') });
  }
  if (bad.length) { showErrors(bad); return; }
  try {
    const out = await ctx.api('PATCH', `/api/v1/villages/${encodeURIComponent(v.code)}`, body);
    current = out;
    $('ve-title').textContent = t('ve.title', { name: out.name, code: out.code });
    $('ve-msg').textContent = t('ve.saved', { name: out.name });
    $('ve-msg').hidden = false;
    $('ve-box-part').hidden = out.device !== 'agent';
    await ctx.reload();
    loadSettings(out).catch((e) => ctx.showError(e.message));
  } catch (e) {
    showErrors(e.details?.length ? e.details : [{ field: '', reason: e.message }]);
  }
}

// showErrors lists what the server (or the form) refused, field by field.
function showErrors(details) {
  const box = $('ve-errors');
  const head = document.createElement('p');
  head.textContent = t('ve.err', { n: details.length });
  const ul = document.createElement('ul');
  for (const d of details) {
    const li = document.createElement('li');
    li.dataset.field = d.field;
    li.textContent = (d.field ? t('field.' + d.field) + '：' : '') + reasonText(d);
    ul.append(li);
  }
  box.replaceChildren(head, ul);
  box.hidden = false;
}

// reasonText words the CSV rules' reasons in the console's language.
function reasonText(d) {
  const r = d.reason || '';
  if (r === 'is empty') return t('ve.err.empty');
  if (/characters long/.test(r)) return t('ve.err.long');
  if (/control character/.test(r)) return t('ve.err.control');
  if (/is outside/.test(r) || /not a number/.test(r)) return t(d.field === 'lat' ? 've.err.lat' : 've.err.lon');
  if (d.field === 'device') return t('ve.err.device');
  return r;
}

// ---------- replacing the box ----------

function resetReplace() {
  const b = $('ve-replace');
  b.hidden = false;
  b.disabled = false;
  $('ve-replace-ask').hidden = true;
}

function askReplace() {
  const v = current;
  $('ve-replace').hidden = true;
  const ask = $('ve-replace-ask');
  ask.replaceChildren();
  const q = document.createElement('span');
  q.className = 'error';
  q.textContent = t('ve.replaceAsk', { name: v.name });
  const yes = document.createElement('button');
  yes.type = 'button';
  yes.className = 'danger replace-confirm';
  yes.textContent = t('ve.replaceYes');
  yes.addEventListener('click', () => replace(yes));
  const no = document.createElement('button');
  no.type = 'button';
  no.textContent = t('ve.no');
  no.addEventListener('click', resetReplace);
  ask.append(q, ' ', yes, ' ', no);
  ask.hidden = false;
}

async function replace(btn) {
  const v = current;
  btn.disabled = true;
  try {
    const tok = await ctx.api('POST', `/api/v1/villages/${encodeURIComponent(v.code)}/replace`);
    resetReplace();
    await ctx.reload();
    ctx.showEnroll(v, tok, t('ve.replaced'));
  } catch (e) {
    btn.disabled = false;
    ctx.showError(e.message);
  }
}

// ---------- box settings ----------

async function loadSettings(v) {
  const town = await ctx.api('GET', `/api/v1/townships/${encodeURIComponent(v.township)}/config`);
  settingsForm($('ve-town-cfg'), t('ve.townSettings', { town: v.township }), `/api/v1/townships/${encodeURIComponent(v.township)}/config`, town);
  const vf = $('ve-village-cfg');
  vf.hidden = v.device !== 'agent';
  if (v.device === 'agent') {
    const own = await ctx.api('GET', `/api/v1/villages/${encodeURIComponent(v.code)}/config`);
    settingsForm(vf, t('ve.villageSettings'), `/api/v1/villages/${encodeURIComponent(v.code)}/config`, own);
  }
}

const windowRe = /^\s*(\d{1,2})[:：](\d{2})\s*[-–—~～至到]\s*(\d{1,2})[:：](\d{2})\s*$/;

// parseQuiet reads "22:00-06:00, 12:00-13:30" (full-width digits and
// colons from a Chinese IME too) into windows; null if it cannot.
export function parseQuiet(s) {
  s = s.replace(/[０-９：]/g, (c) => String.fromCharCode(c.charCodeAt(0) - 0xFEE0));
  const out = [];
  for (const part of s.split(/[,，;；、]/).map((x) => x.trim()).filter(Boolean)) {
    const m = part.match(windowRe);
    if (!m) return null;
    const hm = (h, mi) => `${h.padStart(2, '0')}:${mi}`;
    out.push({ from: hm(m[1], m[2]), to: hm(m[3], m[4]) });
  }
  return out;
}

function settingsForm(form, title, path, cfg) {
  const h = document.createElement('h4');
  h.textContent = title;
  const quiet = document.createElement('input');
  quiet.className = 'cfg-quiet';
  quiet.placeholder = t('ve.quietHint');
  quiet.value = (cfg.quiet_hours ?? []).map((w) => `${w.from}-${w.to}`).join(', ');
  const vol = document.createElement('input');
  vol.className = 'cfg-volume';
  vol.type = 'number';
  vol.min = 0;
  vol.max = 100;
  vol.value = cfg.volume ?? 0;
  const label = (key, input) => {
    const l = document.createElement('label');
    const s = document.createElement('span');
    s.textContent = t(key);
    l.append(s, input);
    return l;
  };
  const who = document.createElement('p');
  who.className = 'hint';
  who.textContent = cfg.updated_at ? t('ve.updatedBy', { by: cfg.updated_by_name || cfg.updated_by, at: fmtTime(cfg.updated_at) }) : '';
  const err = document.createElement('p');
  err.className = 'error';
  err.setAttribute('role', 'alert');
  err.hidden = true;
  const msg = document.createElement('p');
  msg.className = 'ok';
  msg.hidden = true;
  const btn = document.createElement('button');
  btn.type = 'submit';
  btn.className = 'cfg-save';
  btn.textContent = t('ve.saveSettings');
  form.replaceChildren(h, label('ve.quiet', quiet), label('ve.volume', vol), btn, who, err, msg);
  form.onsubmit = async (ev) => {
    ev.preventDefault();
    err.hidden = true;
    msg.hidden = true;
    const windows = parseQuiet(quiet.value);
    const volume = num(String(vol.value));
    if (!windows) { err.textContent = t('ve.err.quiet'); err.hidden = false; return; }
    if (!Number.isInteger(volume) || volume < 0 || volume > 100) { err.textContent = t('ve.err.volume'); err.hidden = false; return; }
    btn.disabled = true;
    try {
      const out = await ctx.api('PUT', path, { quiet_hours: windows, volume });
      quiet.value = (out.quiet_hours ?? []).map((w) => `${w.from}-${w.to}`).join(', ');
      vol.value = out.volume ?? 0;
      who.textContent = t('ve.updatedBy', { by: out.updated_by_name || out.updated_by, at: fmtTime(out.updated_at) });
      msg.textContent = t('ve.settingsSaved');
      msg.hidden = false;
    } catch (e) {
      err.textContent = (e.raw ?? e.message).startsWith('quiet_hours') ? t('ve.err.quiet') : (e.raw ?? e.message).startsWith('volume') ? t('ve.err.volume') : e.message;
      err.hidden = false;
    } finally {
      btn.disabled = false;
    }
  };
}
