// The console: a small single-page app over the HTTP API. It routes by the
// URL fragment (#map, #emergency, #approvals, #villages, #village) and
// keeps no state that the API does not have.
import { t, apply, setLang, getLang, fmtTime, reasonText, setCounty, say } from './i18n.js';
import { errorText, rowText } from './i18n-errors.js';
import { drawMap, statusKey, STATUS_KEYS, COLORS, swatchSVG } from './map.js';
import * as library from './library.js'; // W1
import * as schedules from './schedules.js'; // W1
import * as reports from './reports.js'; // W2
import * as audit from './audit.js'; // W2
import * as throttles from './throttles.js'; // login limits, on the users screen
import * as users from './users.js'; // users and roles (admins)
import * as villageAdmin from './villageadmin.js'; // editing a village, replacing its box, box settings
import * as unplayed from './unplayed.js'; // the map's villages that did not play
import * as upper from './ebd.js'; // 上级平台: the national emergency-broadcast chain

const $ = (id) => document.getElementById(id);

const READERS = ['admin', 'operator', 'approver', 'viewer'];
const OPERATORS = ['admin', 'operator'];
const APPROVERS = ['admin', 'approver'];
const MEDIA = ['admin', 'operator', 'approver']; // W1: who may list clips and playlists

let me = null;
let villages = [];

// crypto.randomUUID exists only in secure contexts (https, localhost); a
// county console served over plain http on the LAN still needs a fresh
// Idempotency-Key per submission.
if (!crypto.randomUUID) {
  crypto.randomUUID = () => {
    const b = crypto.getRandomValues(new Uint8Array(16));
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    const h = [...b].map((x) => x.toString(16).padStart(2, '0')).join('');
    return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
  };
}
let villageByCode = new Map();

function csrf() {
  const m = document.cookie.match(/(?:^|;\s*)cx_csrf=([^;]+)/);
  return m ? decodeURIComponent(m[1]) : '';
}

class APIError extends Error {
  constructor(status, code, message) { super(message); this.status = status; this.code = code; }
}

// api calls the HTTP API with the session cookie; changes carry the CSRF
// header.
async function api(method, path, body, extra) {
  const headers = { Accept: 'application/json', ...extra };
  if (method !== 'GET') headers['X-CSRF-Token'] = csrf();
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  let res;
  try {
    res = await fetch(path, { method, headers, credentials: 'same-origin', body: body === undefined ? undefined : JSON.stringify(body) });
  } catch (e) {
    throw new APIError(0, 'network', t('err.network'));
  }
  if (res.status === 204) return null;
  const data = await res.json().catch(() => null);
  // Stored, but the broker has not taken it yet; the controller goes on
  // sending it by itself, so the clerk must not do it again.
  if (res.headers.get('X-Cunxiang-Delivery') === 'pending') showError(t('err.accepted'));
  if (!res.ok) {
    const code = data?.error?.code ?? 'error';
    if (res.status === 401 && me) { showLogin('session'); }
    let msg = errorText(data?.error) || res.statusText;
    if (res.status === 403) msg = t('err.forbidden') + ': ' + msg;
    const err = new APIError(res.status, code, msg);
    err.details = data?.error?.details ?? []; // 409 in use: where (manage.js)
    err.field = data?.error?.field ?? ''; // the field msg is about (schedules.js)
    err.raw = data?.error?.message ?? ''; // the English message, for screens that read it
    err.retryAfter = res.headers.get('Retry-After'); // 503: busy, try again then
    throw err;
  }
  return data;
}

function showError(msg) {
  const el = $('global-error');
  el.textContent = msg;
  el.hidden = !msg;
  if (msg) setTimeout(() => { if (el.textContent === msg) el.hidden = true; }, 8000);
}

function may(roles) { return me && roles.includes(me.role); }

// ---------- session ----------

function showLogin(err) {
  me = null;
  $('nav').hidden = true;
  $('logout').hidden = true;
  $('who').textContent = '';
  document.querySelectorAll('.view').forEach((v) => { v.hidden = v.id !== 'view-login'; });
  const e = $('login-error');
  if (err) {
    e.dataset.i18n = err === 'session' ? 'err.session' : 'login.error.' + err;
    e.textContent = t(e.dataset.i18n);
  }
  e.hidden = !err;
  $('username').focus();
}

async function logout() {
  try {
    await fetch('/console/logout', { method: 'POST', headers: { 'X-CSRF-Token': csrf() }, credentials: 'same-origin' });
  } finally {
    stopStream();
    location.href = '/';
  }
}

// changePassword changes the user's own password. The server then ends
// every session of the user, so the console goes back to the login page.
async function changePassword(ev) {
  ev.preventDefault();
  const err = $('pw-error');
  err.hidden = true;
  if ($('pw-new').value !== $('pw-repeat').value) {
    err.textContent = t('account.mismatch');
    err.hidden = false;
    return;
  }
  try {
    await api('POST', '/api/v1/me/password', { current_password: $('pw-current').value, new_password: $('pw-new').value });
  } catch (e) {
    err.textContent = e.status === 429 ? t('login.error.throttled')
      : (e.raw ?? e.message).startsWith('current_password') ? t('account.wrongCurrent')
      : (e.raw ?? e.message).startsWith('new_password') ? t('account.badNew') : e.message;
    err.hidden = false;
    return;
  }
  stopStream();
  // The session has ended on the server; clear its cookies too, so the
  // login page does not try it first.
  try {
    await fetch('/console/logout', { method: 'POST', headers: { 'X-CSRF-Token': csrf() }, credentials: 'same-origin' });
  } catch { /* the login page follows either way */ }
  location.href = '/?error=password_changed';
}

// ---------- routing ----------

function defaultView() {
  if (may(READERS)) return 'map';
  if (may(OPERATORS)) return 'emergency';
  if (me?.role === 'village' && me.village) return 'village';
  return 'none';
}

function route() {
  if (!me) return;
  const [name, query] = (location.hash.slice(1) || defaultView()).split('?');
  const allowed = { map: may(READERS), emergency: may(OPERATORS), approvals: may(APPROVERS), villages: may(READERS), village: me.role === 'village' && !!me.village, none: true };
  Object.assign(allowed, { library: may(MEDIA), schedules: may(READERS), calendar: may(READERS) }); // W1
  Object.assign(allowed, { reports: may(READERS), audit: may(['admin']) }); // W2
  allowed.account = !!me.user_id;
  allowed.users = may(['admin']);
  allowed.ebd = may(READERS);
  const view = allowed[name] ? name : defaultView();
  document.querySelectorAll('.view').forEach((v) => { v.hidden = v.id !== 'view-' + view; });
  document.querySelectorAll('#nav a').forEach((a) => { a.classList.toggle('active', a.dataset.view === view); });
  const params = new URLSearchParams(query || '');
  if (view === 'map') openMap(params);
  if (view === 'emergency') openEmergency();
  if (view === 'approvals') openApprovals();
  if (view === 'villages') openVillages();
  if (view === 'village') openVillage();
  if (view === 'library') library.open(); // W1
  if (view === 'schedules') schedules.open();
  if (view === 'calendar') schedules.openCalendar();
  if (view === 'reports') reports.open(params); else reports.leave(); // W2
  if (view === 'audit') audit.open();
  if (view === 'users') { users.open(); throttles.open(); }
  if (view === 'ebd') upper.open();
}

// ---------- the coverage map ----------

const mapState = { subject: '', report: null, selected: '', broadcasts: [], schedules: [], loaded: false };

async function loadVillages() {
  const data = await api('GET', '/api/v1/villages');
  villages = data.villages ?? [];
  villageByCode = new Map(villages.map((v) => [v.code, v]));
}

function subjectLabel(b) {
  const target = b.targets?.all ? t('targets.all') : (b.targets?.townships ?? []).concat(b.targets?.villages ?? []).join('、');
  const from = b.source === 'cap' ? t('map.fromCAP') + ' ' : b.source?.startsWith('ebd:') ? t('map.fromEBD') + ' ' : '';
  return `${b.test ? t('em.testMark') + ' ' : ''}${from}#${b.id} · ${t('priority.' + b.priority)} · ${b.event_type ? t('ev.' + b.event_type) : ''} · ${target} · ${t('state.' + b.state)}${b.state === 'scheduled' && b.starts_at ? ' ' + fmtTime(b.starts_at) : ''} · ${fmtTime(b.created_at)}`;
}

async function loadSubjects() {
  const [bs, ss] = await Promise.all([
    api('GET', '/api/v1/broadcasts?limit=50'),
    api('GET', '/api/v1/schedules').catch(() => ({ schedules: [] })),
  ]);
  mapState.broadcasts = bs.broadcasts ?? [];
  mapState.schedules = ss.schedules ?? [];
  const sel = $('subject');
  const keep = mapState.subject || sel.value;
  sel.replaceChildren();
  if (!mapState.broadcasts.length && !mapState.schedules.length) {
    sel.append(new Option(t('map.none'), ''));
  }
  if (mapState.broadcasts.length) {
    const g = document.createElement('optgroup');
    g.label = t('map.broadcasts');
    for (const b of mapState.broadcasts) g.append(new Option(subjectLabel(b), 'b:' + b.id));
    sel.append(g);
  }
  if (mapState.schedules.length) {
    const g = document.createElement('optgroup');
    g.label = t('map.schedules');
    for (const s of mapState.schedules) {
      // A once-schedule that already played is over, not 生效中.
      const ended = s.state && s.state !== 'active' ? ' · ' + t('sc.state.' + s.state) : '';
      g.append(new Option(`${t('map.schedules')} #${s.id} · ${t('map.latest')}${ended}`, 's:' + s.id));
      for (const at of s.next ?? []) g.append(new Option(`${t('map.schedules')} #${s.id} · ${fmtTime(at)}`, 's:' + s.id + '@' + at));
    }
    sel.append(g);
  }
  let values = [...sel.options].map((o) => o.value);
  // W1: an occurrence opened from the calendar stays picked once it is no longer coming.
  if (keep.startsWith('s:') && keep.includes('@') && !values.includes(keep) && mapState.schedules.some((s) => 's:' + s.id === keep.split('@')[0])) {
    const [sid, at] = keep.slice(2).split('@');
    sel.append(new Option(`${t('map.schedules')} #${sid} · ${fmtTime(at)}`, keep));
    values = [...sel.options].map((o) => o.value);
  }
  sel.value = values.includes(keep) ? keep : (values[0] ?? '');
  mapState.subject = sel.value;
}

async function openMap(params) {
  try {
    if (!villages.length) await loadVillages();
    if (params.get('b')) mapState.subject = 'b:' + params.get('b');
    if (params.get('s')) mapState.subject = 's:' + params.get('s'); // W1: an occurrence from the calendar
    await loadSubjects();
    await refreshCoverage();
    startStream();
    refreshApprovalBadge().catch(() => {});
  } catch (e) {
    showError(e.message);
  } finally {
    loaded();
  }
}

async function refreshCoverage() {
  const s = mapState.subject;
  let report = null;
  if (s.startsWith('b:')) {
    report = await api('GET', `/api/v1/broadcasts/${s.slice(2)}/coverage`);
  } else if (s.startsWith('s:')) {
    const [id, at] = s.slice(2).split('@');
    report = await api('GET', `/api/v1/schedules/${id}/coverage` + (at ? '?at=' + encodeURIComponent(at) : ''));
  }
  if (s !== mapState.subject) return; // the user picked another meanwhile
  mapState.report = report;
  renderMap();
}

function renderMap() {
  const r = mapState.report;
  const statuses = new Map();
  for (const vs of r?.villages ?? []) statuses.set(vs.code, { ...vs, key: statusKey(vs, villageByCode.get(vs.code)) });
  drawMap($('map'), villages, statuses, mapState.selected, (code) => { mapState.selected = code; renderMap(); });

  const h = $('headline');
  if (r) {
    // Boxes that are playing right now are counted first: "0 / 81 played"
    // alone reads as a failure while 79 are sounding.
    const playing = [...statuses.values()].filter((v) => v.key === 'playing').length;
    h.textContent = playing
      ? t('map.headlinePlaying', { playing, played: r.played, targeted: r.targeted })
      : t('map.headline', { played: r.played, targeted: r.targeted });
    h.dataset.playing = playing;
    h.dataset.played = r.played;
    h.dataset.targeted = r.targeted;
  } else {
    h.textContent = t('map.none');
    delete h.dataset.played;
  }
  const st = $('subject-state');
  st.textContent = r?.state ? `${t('map.state')}: ${t('state.' + r.state)}` : '';
  st.dataset.state = r?.state ?? '';
  const bc = mapState.subject.startsWith('b:') ? mapState.broadcasts.find((b) => 'b:' + b.id === mapState.subject) : null;
  const rr = $('subject-reason');
  rr.textContent = bc?.reject_reason ? t('map.rejected', { by: bc.rejected_by_name || bc.rejected_by, reason: bc.reject_reason }) : '';
  rr.hidden = !bc?.reject_reason;

  const running = r?.state && ['pending_approval', 'scheduled', 'sending', 'in_progress'].includes(r.state);
  $('cancel-box').hidden = !(running && mapState.subject.startsWith('b:') && may(OPERATORS));
  if ($('cancel-msg').dataset.id && 'b:' + $('cancel-msg').dataset.id !== mapState.subject) $('cancel-msg').hidden = true;

  // Legend, with the count of each status.
  const counts = {};
  for (const v of statuses.values()) counts[v.key] = (counts[v.key] ?? 0) + 1;
  $('legend').replaceChildren(...STATUS_KEYS.map((k) => {
    const li = document.createElement('li');
    li.dataset.status = k;
    const sw = swatchSVG(k); // the marker's colour and shape, as on the map
    const label = document.createElement('span');
    label.textContent = t('status.' + k);
    const n = document.createElement('span');
    n.className = 'n';
    n.textContent = counts[k] ?? 0;
    li.append(sw, label, n);
    return li;
  }));

  // Per township.
  const rows = (r?.townships ?? []).map((tw) => {
    const tr = document.createElement('tr');
    tr.dataset.township = tw.name;
    if (tw.targeted > 0 && tw.played === tw.targeted) tr.className = 'done';
    const a = document.createElement('td');
    a.textContent = tw.name;
    const b = document.createElement('td');
    b.className = 'num';
    b.textContent = `${tw.played} / ${tw.targeted}`;
    tr.append(a, b);
    return tr;
  });
  $('townships').replaceChildren(...rows);
  renderDetails(statuses);
  unplayed.show(mapState.subject, r, bc);
}

function renderDetails(statuses) {
  const box = $('details');
  const code = mapState.selected;
  const v = villageByCode.get(code);
  if (!v) { box.hidden = true; return; }
  const s = statuses.get(code);
  const rows = [
    ['village.code', v.code],
    ['village.township', v.township],
    ['village.device', t('device.' + v.device)],
    ['village.presence', v.device === 'agent' ? t('presence.' + (v.presence || 'never')) : '—'],
    ['village.lastSeen', fmtTime(v.last_seen)],
    ['village.status', s ? t('status.' + s.key) : '—'],
    ['village.reason', reasonText(s) || '—'],
    ['village.reportedAt', fmtTime(s?.reported_at)],
  ];
  if (s?.confirmed_by) rows.push(['village.confirmedBy', s.confirmed_by_name || s.confirmed_by]);
  const h = document.createElement('h3');
  h.textContent = v.name;
  const dl = document.createElement('dl');
  for (const [k, val] of rows) {
    const dt = document.createElement('dt');
    dt.textContent = t(k);
    const dd = document.createElement('dd');
    dd.textContent = val;
    dl.append(dt, dd);
  }
  const evh = document.createElement('h3');
  evh.textContent = t('village.events');
  const evs = document.createElement('ul');
  evs.id = 'details-events';
  evs.className = 'events';
  box.replaceChildren(h, dl, evh, evs);
  box.hidden = false;
  if (v.device === 'agent') loadEvents(code, evs); else evs.replaceChildren(evItem(t('village.noBox')));
}

function evItem(text) {
  const li = document.createElement('li');
  li.textContent = text;
  return li;
}

// loadEvents shows a village's latest reports in the details box.
async function loadEvents(code, ul) {
  try {
    const data = await api('GET', `/api/v1/villages/${encodeURIComponent(code)}/events?limit=10`);
    if (mapState.selected !== code || !ul.isConnected) return;
    const es = data.events ?? [];
    ul.replaceChildren(...(es.length ? es.map((e) => {
      const li = document.createElement('li');
      li.dataset.type = e.type;
      const ty = document.createElement('span');
      ty.className = 'ev-type ' + e.type;
      ty.textContent = t('evt.' + e.type);
      const about = e.broadcast_id ? t('vb.broadcast', { id: e.broadcast_id }) : e.schedule_id ? t('vb.schedule', { id: e.schedule_id }) : '';
      li.append(fmtTime(e.at) + ' · ', ty, about ? ' · ' + about : '', e.test ? ' · ' + t('rp.test') : '');
      if (e.reason) {
        const why = document.createElement('div');
        why.className = 'ev-why';
        why.textContent = e.reason;
        li.append(why);
      }
      return li;
    }) : [evItem(t('village.noEvents'))]));
  } catch (e) {
    showError(e.message);
  }
}

// cancel arms on the first press and cancels on the second: no dialogs.
let cancelArmed = null;
async function onCancel() {
  const btn = $('cancel-btn');
  if (!btn.classList.contains('armed')) {
    btn.classList.add('armed');
    btn.textContent = t('cancel.confirm');
    cancelArmed = setTimeout(disarmCancel, 5000);
    return;
  }
  disarmCancel();
  try {
    const id = mapState.subject.slice(2);
    await api('DELETE', `/api/v1/broadcasts/${id}`);
    // Say it was done: the button disappears with the running state.
    const m = $('cancel-msg');
    say(m, 'cancel.msg', { id });
    m.dataset.id = id;
    m.hidden = false;
    await loadSubjects();
    await refreshCoverage();
  } catch (e) {
    showError(e.message);
  }
}
function disarmCancel() {
  clearTimeout(cancelArmed);
  const btn = $('cancel-btn');
  btn.classList.remove('armed');
  btn.textContent = t('cancel.big');
}

// ---------- live updates ----------

let stream = null;
let debounce = null;
let bdebounce = null;

// refreshApprovalBadge shows, on the approvals tab, how many broadcasts
// wait for approval.
async function refreshApprovalBadge() {
  const a = document.querySelector('#nav a[data-view="approvals"]');
  if (!a || !may(APPROVERS)) return;
  const data = await api('GET', '/api/v1/broadcasts?limit=100');
  const n = (data.broadcasts ?? []).filter((b) => b.state === 'pending_approval' && b.created_by_key !== me.person).length;
  let badge = a.querySelector('.count-badge');
  if (!badge) { badge = document.createElement('span'); badge.className = 'count-badge'; a.append(badge); }
  badge.textContent = n;
  badge.hidden = !n;
}

// refreshSentState updates the state of the broadcast just sent from the
// emergency form (等待审批 → 发送中 or 已驳回).
async function refreshSentState() {
  const badge = $('em-state');
  const id = badge?.closest('#em-result')?.querySelector('[data-id]')?.dataset.id ?? badge?.dataset.id;
  if (!badge || !id) return;
  const b = await api('GET', `/api/v1/broadcasts/${id}`);
  badge.dataset.state = b.state;
  say(badge, 'state.' + b.state);
  const note = $('em-approval-note');
  if (note && b.state !== 'pending_approval') note.hidden = true;
}
function startStream() {
  if (stream || !may(READERS)) return;
  stream = new EventSource('/api/v1/stream');
  const live = $('live');
  // data-i18n: a language switch relabels it (the dot is drawn by app.css).
  stream.addEventListener('hello', () => { live.dataset.i18n = 'map.live'; live.textContent = t('map.live'); live.classList.remove('down'); });
  stream.addEventListener('reports', () => {
    clearTimeout(debounce);
    debounce = setTimeout(async () => {
      try {
        if ($('view-map').hidden) return;
        await Promise.all([loadVillages(), loadSubjects()]);
        await refreshCoverage();
      } catch (e) { showError(e.message); }
    }, 300);
  });
  // A broadcast changed state: the approvals badge, the approval list,
  // the sender's 等待审批 and the map's subject list follow at once.
  stream.addEventListener('broadcasts', () => {
    clearTimeout(bdebounce);
    bdebounce = setTimeout(async () => {
      try {
        await refreshApprovalBadge();
        if (!$('view-approvals').hidden) await openApprovals();
        await refreshSentState();
        if (!$('view-map').hidden) { await loadSubjects(); await refreshCoverage(); }
      } catch (e) { showError(e.message); }
    }, 200);
  });
  stream.onerror = () => { live.dataset.i18n = 'map.offline'; live.textContent = t('map.offline'); live.classList.add('down'); };
}
function stopStream() { if (stream) { stream.close(); stream = null; } }

// ---------- emergency ----------

let audioList = [];
async function openEmergency() {
  try {
    if (!villages.length) await loadVillages();
    const towns = [...new Set(villages.map((v) => v.township))].sort();
    const box = $('em-towns');
    $('em-village-list').replaceChildren(...villages.map((v) => new Option(`${v.name} · ${v.township}`, v.code)));
    if (box.dataset.built !== towns.join('|')) {
      box.replaceChildren(...towns.map((name) => {
        const l = document.createElement('label');
        l.className = 'check';
        const i = document.createElement('input');
        i.type = 'checkbox';
        i.name = 'township';
        i.value = name;
        const s = document.createElement('span');
        s.textContent = `${name} (${villages.filter((v) => v.township === name).length})`;
        l.append(i, ' ', s);
        return l;
      }));
      box.dataset.built = towns.join('|');
    }
    const data = await api('GET', '/api/v1/audio');
    audioList = data.audio ?? [];
    const sel = $('em-audio');
    const keep = sel.value;
    sel.replaceChildren(new Option(audioList.length ? '—' : t('em.noAudio'), ''));
    for (const a of audioList) sel.append(new Option(`${a.title || '#' + a.id} (${(a.duration_ms / 1000).toFixed(1)} s)`, String(a.id)));
    sel.value = keep;
    labelExpiry();
  } catch (e) {
    showError(e.message);
  }
}

function labelExpiry() {
  for (const o of $('em-expiry').options) {
    const n = Number(o.value);
    o.textContent = n < 60 ? t('em.min', { n }) : t('em.hours', { n: n / 60 });
  }
}

function emTargets() {
  if ($('em-all').checked) return { all: true };
  return { all: false, townships: [...document.querySelectorAll('#em-towns input:checked')].map((i) => i.value), villages: [...emVillages] };
}

// Single villages picked by name or code, besides whole townships.
const emVillages = new Set();
function emAddVillage() {
  const q = $('em-village-q').value.trim();
  if (!q) return;
  const v = villageByCode.get(q) ?? villages.find((x) => x.name === q || `${x.name} · ${x.township}` === q);
  if (!v) { emError('em.err.village'); return; }
  emError('');
  emVillages.add(v.code);
  $('em-village-q').value = '';
  renderEmVillages();
}
function renderEmVillages() {
  $('em-village-chips').replaceChildren(...[...emVillages].map((code) => {
    const v = villageByCode.get(code);
    const li = document.createElement('li');
    li.dataset.code = code;
    const x = document.createElement('button');
    x.type = 'button';
    x.textContent = '×';
    x.title = t('em.villageRemove');
    x.addEventListener('click', () => { emVillages.delete(code); renderEmVillages(); });
    li.append(`${v?.name ?? code} · ${v?.township ?? ''}`, x);
    return li;
  }));
}

function reached(targets) {
  if (targets.all) return villages;
  const set = new Set(targets.townships ?? []);
  return villages.filter((v) => set.has(v.township) || (targets.villages ?? []).includes(v.code));
}

function emRequest() {
  const req = {
    targets: emTargets(),
    priority: $('em-priority').value,
    severity: Number($('em-severity').value),
    event_type: $('em-event').value,
    expires_at: new Date(Date.now() + Number($('em-expiry').value) * 60000).toISOString(),
    repeat: Number($('em-repeat').value) || 1,
  };
  if ($('em-test').checked) req.test = true; // a drill: test tone, never real coverage
  const vol = Number($('em-volume').value);
  if (vol) req.volume = vol;
  const audio = Number($('em-audio').value);
  const text = $('em-text').value.trim();
  if (audio) req.audio_id = audio; else if (text) req.text = text;
  return req;
}

function vol0() { return Number($('em-volume').value); }

function emError(key) {
  const e = $('em-error');
  e.textContent = key ? t(key) : '';
  e.hidden = !key;
}

function emNext(ev) {
  ev.preventDefault();
  const req = emRequest();
  if (!req.targets.all && !req.targets.townships.length && !req.targets.villages.length) return emError('em.err.targets');
  if (!Number.isInteger(req.repeat) || req.repeat < 1 || req.repeat > 100) return emError('em.err.repeat');
  if (!Number.isInteger(vol0()) || vol0() < 0 || vol0() > 100) return emError('em.err.volume');
  if (!req.audio_id && !req.text) return emError('em.err.content');
  emError('');
  const vs = reached(req.targets);
  $('em-count').textContent = t('em.confirmCount', { n: vs.length });
  $('em-count').dataset.count = vs.length;
  const manual = vs.filter((v) => v.device !== 'agent').length;
  $('em-manual').textContent = manual ? t('em.confirmManual', { n: manual }) : '';
  $('em-test-note').hidden = !req.test;
  // One Idempotency-Key per submission: pressing 确认发送 again (or a
  // retry after a lost answer) cannot send a second broadcast.
  emKey = crypto.randomUUID();
  $('em-step1').hidden = true;
  $('em-step2').hidden = false;
  $('em-result').hidden = true;
  $('em-send').focus();
}

function emBack() {
  $('em-step1').hidden = false;
  $('em-step2').hidden = true;
}

let emKey = null;
async function emSend() {
  const btn = $('em-send');
  if (btn.disabled) return;
  btn.disabled = true;
  try {
    const b = await api('POST', '/api/v1/broadcasts', emRequest(), { 'Idempotency-Key': emKey ?? crypto.randomUUID() });
    emKey = null;
    const res = $('em-result');
    const p = document.createElement('p');
    const badge = document.createElement('span');
    badge.className = 'badge';
    badge.id = 'em-state';
    badge.dataset.id = b.id;
    badge.dataset.state = b.state;
    say(badge, 'state.' + b.state);
    p.append(say(document.createElement('span'), 'em.sent', { id: b.id }), ' ', badge);
    const parts = [p];
    if (b.test) {
      const tm = document.createElement('span');
      tm.className = 'test-mark';
      tm.id = 'em-test-mark';
      say(tm, 'em.testMark');
      p.prepend(tm, ' ');
    }
    if (b.state === 'pending_approval') {
      const n = document.createElement('p');
      n.className = 'error';
      n.id = 'em-approval-note';
      say(n, 'em.needsApproval');
      parts.push(n);
    }
    const a = document.createElement('a');
    a.href = '#map?b=' + b.id;
    a.id = 'em-view-map';
    say(a, 'em.viewMap');
    parts.push(a);
    res.replaceChildren(...parts);
    res.hidden = false;
    emBack();
    emReset();
    mapState.subject = 'b:' + b.id;
  } catch (e) {
    emError('');
    $('em-error').textContent = e.message;
    $('em-error').hidden = false;
  } finally {
    btn.disabled = false;
  }
}

// emReset empties the form after a broadcast was sent, so nothing is left
// to send twice.
function emReset() {
  $('em-form')?.reset();
  // reset() fires no change event: let 全县's handler enable the townships again.
  $('em-all')?.dispatchEvent(new Event('change'));
  $('em-form')?.classList.remove('testing');
  emVillages.clear();
  renderEmVillages();
}

// ---------- approvals ----------

async function openApprovals() {
  try {
    if (!villages.length) await loadVillages();
    const data = await api('GET', '/api/v1/broadcasts?limit=100');
    const pending = (data.broadcasts ?? []).filter((b) => b.state === 'pending_approval');
    const list = $('ap-list');
    if (!pending.length) {
      const li = document.createElement('p');
      li.textContent = t('ap.none');
      list.replaceChildren(li);
      return;
    }
    list.replaceChildren(...pending.map((b) => {
      const li = document.createElement('li');
      li.dataset.id = b.id;
      const h = document.createElement('h3');
      h.textContent = subjectLabel(b);
      const meta = approvalDetails(b);
      const ok = document.createElement('button');
      ok.className = 'danger approve';
      ok.textContent = t('ap.approve');
      ok.addEventListener('click', () => decide(b.id, true));
      const no = document.createElement('button');
      no.className = 'reject';
      no.textContent = t('ap.reject');
      // Rejecting asks why: the operator sees the reason.
      const why = document.createElement('div');
      why.className = 'ap-reason';
      why.hidden = true;
      const reason = document.createElement('textarea');
      reason.rows = 2;
      reason.className = 'reason';
      reason.maxLength = 500;
      reason.placeholder = t('ap.reasonHint');
      const send = document.createElement('button');
      send.className = 'danger reject-send';
      send.textContent = t('ap.rejectSend');
      send.addEventListener('click', () => {
        if (!reason.value.trim()) { showError(t('ap.err.reason')); reason.focus(); return; }
        decide(b.id, false, reason.value.trim());
      });
      why.append(reason, send);
      no.addEventListener('click', () => { why.hidden = false; reason.focus(); });
      const btns = document.createElement('div');
      btns.className = 'buttons';
      // The server refuses one's own approval; the console does not offer it.
      if (b.created_by_key && b.created_by_key === me.person) {
        const own = document.createElement('p');
        own.className = 'meta own';
        own.textContent = t('ap.own');
        btns.append(own);
      } else {
        btns.append(ok, no);
      }
      li.append(h, meta, btns, why);
      return li;
    }));
  } catch (e) {
    showError(e.message);
  }
}

// approvalDetails is what an approver must see before deciding: what will
// sound (each clip playable, the spoken text), where, how loud, how often,
// until when, and who sent it when.
function approvalDetails(b) {
  const dl = document.createElement('dl');
  dl.className = 'ap-details';
  const row = (key, ...content) => {
    const dt = document.createElement('dt');
    dt.textContent = t(key);
    const dd = document.createElement('dd');
    dd.dataset.field = key;
    dd.append(...content);
    dl.append(dt, dd);
  };
  const clips = (b.playlist?.items ?? []).map((it) => {
    const a = document.createElement('audio');
    a.controls = true;
    a.preload = 'none';
    a.src = `/api/v1/audio/${it.audio_id}/content`;
    return a;
  });
  if (b.text) {
    const q = document.createElement('blockquote');
    q.className = 'ap-text';
    q.textContent = b.text;
    clips.unshift(q);
  }
  row('ap.content', ...clips);
  const vs = reached(b.targets);
  const where = b.targets.all ? t('ap.all') : [...(b.targets.townships ?? []), ...(b.targets.villages ?? []).map((c) => villageByCode.get(c)?.name ?? c)].join('、');
  row('ap.targets', `${where} · ${t('ap.villages', { n: vs.length })}`);
  row('em.priority', t('priority.' + b.priority));
  row('em.severity', t('em.sev.' + b.severity));
  if (b.starts_at) row('ap.starts', fmtTime(b.starts_at));
  row('ap.expires', fmtTime(b.expires_at));
  row('ap.repeat', t('ap.times', { n: b.repeat || 1 }));
  row('ap.volume', b.volume ? `${b.volume}%` : t('ap.volumeDefault'));
  row('ap.by', `${b.created_by_name || b.created_by} · ${fmtTime(b.created_at)}`);
  if (b.source) row('ap.source', sourceText(b));
  return dl;
}

// sourceText says which door a broadcast came through: a CAP alert, or
// the upper platform of the national chain with its message's EBMID.
function sourceText(b) {
  if (b.source === 'cap') return t('ap.sourceCAP');
  if (b.source?.startsWith('ebd:')) return t('ap.sourceEBD', { id: b.source.slice(4), ebm: b.ebm_id ?? '' });
  return b.source;
}

async function decide(id, approve, reason) {
  try {
    const b = approve
      ? await api('POST', `/api/v1/broadcasts/${id}/approve`)
      : await api('POST', `/api/v1/broadcasts/${id}/reject`, { reason });
    const m = $('ap-msg');
    say(m, 'ap.done', { id, state: { t: 'state.' + b.state } });
    m.hidden = false;
    await openApprovals();
  } catch (e) {
    showError(e.message);
  }
}

// ---------- villages ----------

const ADMINS = ['admin'];

function cell(text, cls) {
  const td = document.createElement('td');
  td.textContent = text;
  if (cls) td.className = cls;
  return td;
}

async function openVillages() {
  try {
    await loadVillages();
    $('imp-box').hidden = !may(ADMINS);
    if (!villages.length) $('imp-box').open = true; // a new county starts here
    const sel = $('vl-town');
    const keep = sel.value;
    const towns = [...new Set(villages.map((v) => v.township))].sort();
    sel.replaceChildren(new Option(t('vl.any'), ''), ...towns.map((n) => new Option(n, n)));
    sel.value = towns.includes(keep) ? keep : '';
    renderVillages();
  } catch (e) {
    showError(e.message);
  }
}

function renderVillages() {
  const town = $('vl-town').value;
  const device = $('vl-device').value;
  const presence = $('vl-presence').value;
  const q = $('vl-q').value.trim().toLowerCase();
  const shown = villages.filter((v) => (!q || `${v.code} ${v.name} ${v.township}`.toLowerCase().includes(q)) && (!town || v.township === town) && (!device || v.device === device) &&
    (!presence || (v.device === 'agent' && (v.presence || 'never') === presence)));
  $('vl-count').textContent = t('vl.count', { n: shown.length });
  $('vl-rows').replaceChildren(...shown.map((v) => {
    const tr = document.createElement('tr');
    tr.dataset.code = v.code;
    const p = v.device === 'agent' ? (v.presence || 'never') : '';
    const pres = cell(p ? t('presence.' + p) : '—', p ? 'presence ' + p : '');
    const act = document.createElement('td');
    if (may(ADMINS)) {
      const e = document.createElement('button');
      e.type = 'button';
      e.className = 'edit-btn';
      e.textContent = t('vl.edit');
      e.addEventListener('click', () => villageAdmin.edit(v));
      act.append(e, ' ');
    }
    if (v.device === 'agent' && may(ADMINS)) {
      const b = document.createElement('button');
      b.type = 'button';
      b.className = 'enroll-btn';
      b.textContent = t('vl.enroll');
      b.addEventListener('click', () => issueToken(v));
      act.append(b);
      if (v.enrolled) {
        const r = document.createElement('button');
        r.type = 'button';
        r.className = 'revoke-btn';
        r.textContent = t('vl.revoke');
        r.addEventListener('click', () => revokeBox(v));
        act.append(' ', r);
      } else if (v.revoked) {
        act.append(' ', t('vl.revoked'));
      }
    }
    tr.append(cell(v.code, 'mono'), cell(v.name), cell(v.township), cell(t('device.' + v.device)), pres,
      cell(v.device === 'agent' ? fmtTime(v.last_seen) : '—'), act);
    return tr;
  }));
}

async function issueToken(v) {
  try {
    const tok = await api('POST', `/api/v1/villages/${encodeURIComponent(v.code)}/enroll`);
    showEnroll(v, tok);
  } catch (e) {
    showError(e.message);
  }
}

// showEnroll shows the command that enrolls a box with token tok, headed
// by note if given (a replaced box).
function showEnroll(v, tok, note) {
  $('vl-enroll-title').textContent = (note ? note + ' ' : '') + t('vl.enrollFor', { name: v.name, code: v.code, expires: fmtTime(tok.expires_at) });
  $('vl-cmd').textContent = `cunxiang-agent --village ${v.code} --controller ${location.origin} --data /var/lib/cunxiang --enroll ${tok.token}`;
  $('vl-copied').hidden = true;
  $('vl-enroll').hidden = false;
  $('vl-enroll').scrollIntoView({ block: 'nearest' });
}

// revokeBox cuts a lost or stolen box off at once, after a confirmation.
async function revokeBox(v) {
  if (!window.confirm(t('vl.revokeConfirm', { name: v.name, code: v.code }))) return;
  try {
    await api('POST', `/api/v1/villages/${encodeURIComponent(v.code)}/revoke`);
    await loadVillages();
  } catch (e) {
    showError(e.message);
  }
}

async function copyCommand() {
  const text = $('vl-cmd').textContent;
  try {
    await navigator.clipboard.writeText(text);
  } catch {
    const r = document.createRange();
    r.selectNodeContents($('vl-cmd'));
    const s = getSelection();
    s.removeAllRanges();
    s.addRange(r);
  }
  $('vl-copied').hidden = false;
}

async function onImportFile() {
  const f = $('imp-file').files[0];
  if (f) $('imp-text').value = await f.text();
}

async function onImport(ev) {
  ev.preventDefault();
  const text = $('imp-text').value;
  const msg = $('imp-msg');
  const box = $('imp-errors');
  msg.hidden = true;
  box.hidden = true;
  if (!text.trim()) { showImportFailure(t('imp.empty'), [], ''); return; }
  const btn = $('imp-submit');
  btn.disabled = true;
  try {
    const res = await fetch('/api/v1/villages/import', {
      method: 'POST', credentials: 'same-origin', body: text,
      headers: { Accept: 'application/json', 'Content-Type': 'text/csv', 'X-CSRF-Token': csrf() },
    });
    const data = await res.json().catch(() => null);
    if (!res.ok) {
      showImportFailure(errorText(data?.error) || res.statusText, data?.error?.details ?? [], text);
      return;
    }
    say(msg, 'imp.done', { created: data.created ?? 0, updated: data.updated ?? 0, total: data.total ?? 0 });
    msg.hidden = false;
    await openVillages();
  } catch (e) {
    showImportFailure(t('err.network'), [], '');
  } finally {
    btn.disabled = false;
  }
}

// showImportFailure lists each row error next to the line it is about.
function showImportFailure(message, details, text) {
  const box = $('imp-errors');
  const head = document.createElement('p');
  head.className = 'error';
  head.textContent = t('imp.failed', { msg: message });
  const lines = text.split(/\r?\n/);
  const list = document.createElement('ol');
  list.className = 'row-errors';
  for (const d of details) {
    const li = document.createElement('li');
    li.dataset.line = d.line;
    const n = document.createElement('span');
    n.className = 'line-no';
    n.textContent = t('imp.line', { line: d.line });
    const src = document.createElement('code');
    src.textContent = lines[d.line - 1] ?? '';
    const why = document.createElement('span');
    why.className = 'reason';
    why.textContent = (d.field ? d.field + ': ' : '') + rowText(d);
    li.append(n, src, why);
    list.append(li);
  }
  box.replaceChildren(head, list);
  box.hidden = false;
}

// ---------- the village broadcaster ----------

const vbState = { armed: '', timer: null };

async function openVillage() {
  const code = me.village;
  try {
    const [v, ss, bs] = await Promise.all([
      api('GET', `/api/v1/villages/${encodeURIComponent(code)}`),
      api('GET', `/api/v1/villages/${encodeURIComponent(code)}/schedules?from=${encodeURIComponent(vbFrom())}`),
      api('GET', `/api/v1/villages/${encodeURIComponent(code)}/broadcasts`),
    ]);
    const manual = v.device !== 'agent';
    $('vb-title').textContent = t('vb.title', { name: v.name || code });
    $('vb-kind').textContent = t(manual ? 'vb.manual' : 'vb.agent');
    const now = Date.now();
    const occ = [];
    for (const s of ss.schedules ?? []) {
      // Coming, and since yesterday (a daily schedule's morning can still be confirmed), once each.
      const iso = (x) => new Date(x).toISOString();
      const times = new Set([...(s.next ?? []), ...(s.recent ?? [])].map(iso));
      if (s.once_at) times.add(iso(s.once_at));
      const confirmed = new Set((s.confirmed ?? []).map(iso));
      for (const at of times) occ.push({ key: `s:${s.id}@${at}`, what: t('vb.schedule', { id: s.id }), at, begun: Date.parse(at) <= now, confirmed: confirmed.has(at), body: { schedule_id: s.id, occurrence: at } });
    }
    occ.sort((a, b) => Date.parse(b.at) - Date.parse(a.at));
    const bcs = (bs.broadcasts ?? []).map((b) => ({ key: `b:${b.id}`, what: t('vb.broadcast', { id: b.id }), at: b.created_at, begun: true, state: b.state, confirmed: !!b.confirmed, body: { broadcast_id: b.id } }));
    $('vb-occ').replaceChildren(...vbItems(occ, manual));
    $('vb-bc').replaceChildren(...vbItems(bcs, manual));
  } catch (e) {
    showError(e.message);
  }
}

// vbFrom is the start of yesterday in county time (UTC+8, no DST).
function vbFrom() {
  const d = new Date(Date.now() + 8 * 3600e3);
  d.setUTCHours(0, 0, 0, 0);
  return new Date(d.getTime() - 8 * 3600e3 - 86400e3).toISOString();
}

function vbItems(items, manual) {
  if (!items.length) {
    const li = document.createElement('li');
    li.className = 'empty';
    li.textContent = t('vb.none');
    return [li];
  }
  return items.map((o) => {
    const li = document.createElement('li');
    li.dataset.key = o.key;
    const h = document.createElement('div');
    h.className = 'vb-what';
    h.textContent = `${o.what} · ${fmtTime(o.at)}` + (o.state ? ' · ' + t('state.' + o.state) : '');
    li.append(h);
    if (!o.begun) {
      const s = document.createElement('div');
      s.className = 'hint';
      s.textContent = t('vb.upcoming');
      li.append(s);
    } else if (manual && o.confirmed) {
      const b = document.createElement('button');
      b.type = 'button';
      b.className = 'confirm-big done';
      b.disabled = true;
      b.textContent = t('vb.confirmed');
      li.append(b);
    } else if (manual) {
      const b = document.createElement('button');
      b.type = 'button';
      b.className = 'confirm-big';
      b.textContent = t('vb.confirm');
      b.addEventListener('click', () => vbTap(b, o));
      li.append(b);
    }
    return li;
  });
}

// vbTap arms on the first tap and confirms on the second.
async function vbTap(btn, o) {
  if (vbState.armed !== o.key) {
    document.querySelectorAll('#view-village .confirm-big.armed').forEach((b) => { b.classList.remove('armed'); b.textContent = t('vb.confirm'); });
    clearTimeout(vbState.timer);
    vbState.armed = o.key;
    btn.classList.add('armed');
    btn.textContent = t('vb.confirmAgain');
    vbState.timer = setTimeout(() => { vbState.armed = ''; btn.classList.remove('armed'); btn.textContent = t('vb.confirm'); }, 8000);
    return;
  }
  clearTimeout(vbState.timer);
  vbState.armed = '';
  btn.disabled = true;
  try {
    await api('POST', `/api/v1/villages/${encodeURIComponent(me.village)}/confirmations`, { ...o.body, played_at: new Date().toISOString() });
    btn.classList.remove('armed');
    btn.classList.add('done');
    btn.textContent = t('vb.confirmed');
    const m = $('vb-msg');
    m.textContent = t('vb.done', { what: o.what });
    m.hidden = false;
  } catch (e) {
    btn.disabled = false;
    btn.classList.remove('armed');
    btn.textContent = t('vb.confirm');
    showError(e.message);
  }
}

// ---------- start ----------

function relabel() {
  apply();
  $('lang').lang = getLang() === 'en' ? 'zh-CN' : 'en'; // the button names the other language, in it
  labelExpiry();
  if (me) {
    $('who').textContent = `${me.display_name || me.name} · ${t('role.' + me.role)}`;
    route();
  } else if (!$('login-error').hidden) {
    $('login-error').textContent = t($('login-error').dataset.i18n);
  }
}

// loaded removes index.html's loading note: the first API answers are in
// (or the login form is shown).
function loaded() { $('loading')?.remove(); }

async function start() {
  setLang(getLang());
  apply();
  $('lang').lang = getLang() === 'en' ? 'zh-CN' : 'en';
  labelExpiry();
  $('lang').addEventListener('click', () => { setLang(getLang() === 'en' ? 'zh' : 'en'); relabel(); });
  $('logout').addEventListener('click', logout);
  $('password-form').addEventListener('submit', changePassword);
  $('subject').addEventListener('change', (e) => {
    mapState.subject = e.target.value;
    mapState.selected = '';
    history.replaceState(null, '', '#map');
    refreshCoverage().catch((err) => showError(err.message));
  });
  $('cancel-btn').addEventListener('click', onCancel);
  $('em-form').addEventListener('submit', emNext);
  $('em-back').addEventListener('click', emBack);
  $('em-send').addEventListener('click', emSend);
  $('em-all').addEventListener('change', (e) => {
    document.querySelectorAll('#em-towns input').forEach((i) => { i.disabled = e.target.checked; });
    for (const id of ['em-village-q', 'em-village-add']) $(id).disabled = e.target.checked; // W2
  });
  window.addEventListener('hashchange', route);
  for (const id of ['vl-town', 'vl-device', 'vl-presence']) $(id).addEventListener('change', renderVillages);
  $('vl-q').addEventListener('input', renderVillages);
  villageAdmin.init({ api, showError, showEnroll, reload: async () => { await loadVillages(); renderVillages(); },
    towns: () => [...new Set(villages.map((x) => x.township))].sort() });
  $('vl-copy').addEventListener('click', copyCommand);
  $('imp-file').addEventListener('change', () => { onImportFile().catch((e) => showError(e.message)); });
  $('imp-form').addEventListener('submit', onImport);
  const w1 = { api, may, showError, csrf, OPERATORS, MEDIA, loadVillages: async () => { await loadVillages(); return villages; } }; // W1
  library.init(w1);
  schedules.init(w1);
  const w2 = { api, showError, loadVillages: async () => { await loadVillages(); return villages; } }; // W2
  reports.init(w2);
  audit.init(w2);
  throttles.init(w2);
  users.init({ ...w2, me: () => me });
  upper.init({ ...w2, me: () => me });
  $('em-village-add').addEventListener('click', emAddVillage);
  $('em-test').addEventListener('change', (e) => { $('em-form').classList.toggle('testing', e.target.checked); });
  unplayed.init({ api, may, showError, OPERATORS });
  $('em-village-q').addEventListener('keydown', (e) => { if (e.key === 'Enter') { e.preventDefault(); emAddVillage(); } });

  const err = new URLSearchParams(location.search).get('error');
  // No CSRF cookie means no session: show the form without asking (and
  // without a 401 in the browser's console).
  if (!csrf()) { loaded(); showLogin(err); return; }
  try {
    me = await api('GET', '/api/v1/me');
  } catch (e) {
    loaded();
    if (e.status === 401) { showLogin(err); return; }
    showError(e.message);
    return;
  }
  if (err) history.replaceState(null, '', '/' + location.hash);
  setCounty(me.county_name);
  apply();
  $('nav').hidden = false;
  $('logout').hidden = false;
  $('account-link').hidden = !me.user_id;
  document.querySelector('#nav [data-view=map]').hidden = !may(READERS);
  document.querySelector('#nav [data-view=emergency]').hidden = !may(OPERATORS);
  document.querySelector('#nav [data-view=approvals]').hidden = !may(APPROVERS);
  document.querySelector('#nav [data-view=villages]').hidden = !may(READERS);
  document.querySelector('#nav [data-view=village]').hidden = !(me.role === 'village' && me.village);
  document.querySelector('#nav [data-view=library]').hidden = !may(MEDIA); // W1
  document.querySelector('#nav [data-view=schedules]').hidden = !may(READERS);
  document.querySelector('#nav [data-view=calendar]').hidden = !may(READERS);
  document.querySelector('#nav [data-view=reports]').hidden = !may(READERS); // W2
  document.querySelector('#nav [data-view=audit]').hidden = !may(['admin']);
  document.querySelector('#nav [data-view=ebd]').hidden = !may(READERS);
  document.querySelector('#nav [data-view=users]').hidden = !may(['admin']);
  $('who').textContent = `${me.display_name || me.name} · ${t('role.' + me.role)}`;
  route();
  if ($('view-map').hidden) loaded(); // the map says when its first answers are in
}

start();
