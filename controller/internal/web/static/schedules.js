// Playlists, schedules and the week calendar. A playlist is built from
// clips of the library; a schedule plays one, once or on a recurrence, to
// targets picked in the township tree or by clicking villages on a map;
// the calendar shows a week of the county's time in seven columns.
// app.js calls init once with its helpers, open and openCalendar when the
// views show.
import { t, fmtTime, timeZone } from './i18n.js';
import { drawMap } from './map.js';
import { fmtDuration, busy } from './library.js';
import { actions } from './manage.js';

const $ = (id) => document.getElementById(id);

let ctx = null; // { api, may, showError, loadVillages, OPERATORS, MEDIA }
let villages = [];
let clips = [];
let lists = []; // playlists
const items = []; // the playlist being built: { audio_id, repeat }
const picked = new Set(); // villages picked one by one
let armed = 0; // the schedule whose withdrawal awaits its confirmation
let replacing = 0; // the schedule being edited: saving creates a new one and withdraws it
let week = 0; // the calendar's week, relative to this one

export function init(c) {
  ctx = c;
  $('pl-add').addEventListener('click', addItem);
  $('pl-form').addEventListener('submit', savePlaylist);
  $('pl-gap').addEventListener('input', renderItems);
  $('sc-form').addEventListener('submit', saveSchedule);
  $('sc-kind').addEventListener('change', showKind);
  $('sc-all').addEventListener('change', renderTargets);
  $('sc-tree').addEventListener('change', onTree);
  $('cal-prev').addEventListener('click', () => { week--; loadCalendar(); });
  $('cal-next').addEventListener('click', () => { week++; loadCalendar(); });
  $('cal-this').addEventListener('click', () => { week = 0; loadCalendar(); });
  const wd = $('sc-weekdays');
  for (let d = 1; d <= 7; d++) {
    const l = document.createElement('label');
    l.className = 'check';
    const i = document.createElement('input');
    i.type = 'checkbox';
    i.value = d;
    const s = document.createElement('span');
    s.dataset.i18n = 'wd.' + d;
    s.textContent = t('wd.' + d);
    l.append(i, ' ', s);
    wd.append(l);
  }
  showKind();
}

// ---------- county time ----------

// zoneParts reads an instant's calendar date and clock in the county's zone.
function zoneParts(ms) {
  const f = new Intl.DateTimeFormat('en-GB', { timeZone, year: 'numeric', month: '2-digit', day: '2-digit', hour: '2-digit', minute: '2-digit', second: '2-digit', hourCycle: 'h23', weekday: 'short' });
  const p = Object.fromEntries(f.formatToParts(new Date(ms)).map((x) => [x.type, x.value]));
  const wd = { Mon: 1, Tue: 2, Wed: 3, Thu: 4, Fri: 5, Sat: 6, Sun: 7 }[p.weekday];
  return { y: Number(p.year), mo: Number(p.month), d: Number(p.day), h: Number(p.hour), mi: Number(p.minute), s: Number(p.second), wd };
}

// zoneInstant is the instant at which the county's clocks read the given
// wall time (found by correcting the zone's offset, twice for a change).
function zoneInstant(y, mo, d, h = 0, mi = 0) {
  const naive = Date.UTC(y, mo - 1, d, h, mi);
  let at = naive;
  for (let i = 0; i < 2; i++) {
    const p = zoneParts(at);
    at = naive - (Date.UTC(p.y, p.mo - 1, p.d, p.h, p.mi, p.s) - at);
  }
  return at;
}

const pad = (n) => String(n).padStart(2, '0');
const dateText = (p) => `${p.y}-${pad(p.mo)}-${pad(p.d)}`;
const clockText = (ms) => { const p = zoneParts(ms); return `${pad(p.h)}:${pad(p.mi)}`; };

// ---------- targets ----------

function townships() { return [...new Set(villages.map((v) => v.township))].sort(); }

function currentTargets() {
  if ($('sc-all').checked) return { all: true };
  const towns = [...document.querySelectorAll('#sc-tree input.town:checked')].map((i) => i.value);
  const tset = new Set(towns);
  const vs = [...picked].filter((code) => !tset.has(villages.find((v) => v.code === code)?.township));
  const out = { all: false };
  if (towns.length) out.townships = towns;
  if (vs.length) out.villages = vs;
  return out;
}

function reach(targets) {
  if (targets.all) return villages;
  const towns = new Set(targets.townships ?? []);
  const codes = new Set(targets.villages ?? []);
  return villages.filter((v) => towns.has(v.township) || codes.has(v.code));
}

// summary names targets in the reader's language.
function summary(targets, text) {
  if (targets?.all) return t('targets.all');
  if (text) return text;
  const names = (targets?.villages ?? []).map((c) => villages.find((v) => v.code === c)?.name ?? c);
  return (targets?.townships ?? []).concat(names).join('、');
}

function buildTree() {
  const box = $('sc-tree');
  const key = villages.map((v) => v.code).join('|');
  if (box.dataset.built === key) return;
  box.replaceChildren(...townships().map((name) => {
    const vs = villages.filter((v) => v.township === name);
    const d = document.createElement('details');
    d.className = 'town';
    d.dataset.township = name;
    const s = document.createElement('summary');
    const l = document.createElement('label');
    l.className = 'check';
    const i = document.createElement('input');
    i.type = 'checkbox';
    i.className = 'town';
    i.value = name;
    const span = document.createElement('span');
    span.textContent = `${name} (${vs.length})`;
    l.append(i, ' ', span);
    s.append(l);
    const list = document.createElement('div');
    list.className = 'tree-villages';
    for (const v of vs) {
      const vl = document.createElement('label');
      vl.className = 'check';
      const vi = document.createElement('input');
      vi.type = 'checkbox';
      vi.className = 'village';
      vi.value = v.code;
      const vs2 = document.createElement('span');
      vs2.textContent = v.name + (v.device === 'agent' ? '' : ' · ' + t('device.manual'));
      vl.append(vi, ' ', vs2);
      list.append(vl);
    }
    d.append(s, list);
    return d;
  }));
  box.dataset.built = key;
}

function onTree(e) {
  const i = e.target;
  if (i.classList.contains('village')) {
    if (i.checked) picked.add(i.value); else picked.delete(i.value);
  }
  renderTargets();
}

function togglePick(code) {
  if ($('sc-all').checked) return;
  const v = villages.find((x) => x.code === code);
  const town = document.querySelector(`#sc-tree input.town[value="${CSS.escape(v?.township ?? '')}"]`);
  if (town?.checked) return; // the whole township is in already
  if (picked.has(code)) picked.delete(code); else picked.add(code);
  renderTargets();
}

// renderTargets brings the tree, the map and the count in line with the
// choice.
function renderTargets() {
  const all = $('sc-all').checked;
  const targets = currentTargets();
  const towns = new Set(targets.townships ?? []);
  document.querySelectorAll('#sc-tree input').forEach((i) => {
    i.disabled = all;
    if (i.classList.contains('village')) {
      const v = villages.find((x) => x.code === i.value);
      i.checked = all || towns.has(v?.township) || picked.has(i.value);
      i.disabled = all || towns.has(v?.township);
    }
  });
  const reached = reach(targets);
  const set = new Set(reached.map((v) => v.code));
  const svg = $('sc-map');
  drawMap(svg, villages, new Map(), '', togglePick);
  svg.setAttribute('aria-label', t('sc.mapAria'));
  // Each village is a toggle button (drawMap makes it one: Tab, Enter,
  // Space): pressed when the targets reach it, named with that state, and
  // disabled while 全县 or its township has it in already.
  const byCode = new Map(villages.map((v) => [v.code, v]));
  svg.querySelectorAll('.vm').forEach((m) => {
    const v = byCode.get(m.dataset.code);
    const inside = set.has(v.code);
    const fixed = all || towns.has(v.township);
    const c = m.querySelector('circle.v');
    c.classList.toggle('reached', inside);
    c.classList.toggle('picked', picked.has(v.code) && !fixed);
    c.setAttribute('r', inside ? '9' : '6');
    m.querySelector('.ring').setAttribute('r', inside ? '14' : '11');
    const label = `${v.name} · ${t(inside ? 'sc.pin.in' : 'sc.pin.out')} · ${v.township}`;
    m.setAttribute('aria-label', label);
    c.querySelector('title').textContent = label;
    m.setAttribute('aria-pressed', String(inside));
    if (fixed) m.setAttribute('aria-disabled', 'true');
  });
  const n = $('sc-reach');
  n.dataset.count = reached.length;
  const manual = reached.filter((v) => v.device !== 'agent').length;
  n.textContent = t('sc.reach', { n: reached.length }) + (manual ? ' ' + t('sc.reachManual', { n: manual }) : '');
}

// ---------- field errors ----------

// FIELDS maps the API's field names to the form's elements.
const FIELDS = {
  playlist_id: 'sc-playlist', once_at: 'sc-once', targets: 'sc-targets', timezone: 'sc-kind', recurring: 'sc-kind',
  'recurring.times': 'sc-times', 'recurring.weekdays': 'sc-weekdays', 'recurring.start_date': 'sc-start',
  'recurring.end_date': 'sc-end', 'recurring.except_dates': 'sc-except',
  name: 'pl-name', items: 'pl-items', gap_ms: 'pl-gap',
};

function clearErrors(form) {
  form.querySelectorAll('.field-error').forEach((e) => e.remove());
  form.querySelectorAll('.has-error').forEach((e) => e.classList.remove('has-error'));
}

// showFieldError puts the API's message next to the field it names
// ("recurring.times[1]: …"), or in the form's own error line.
function showFieldError(form, general, e) {
  // The server names the field; the message is already in the console's
  // language (an older controller puts the field in front of it).
  const m = e.field ? /^([a-z_]+(?:\.[a-z_]+)*)(?:\[(\d+)\])?(?:\.[a-z_]+)*$/.exec(e.field)?.concat(e.message)
    : /^([a-z_]+(?:\.[a-z_]+)*)(?:\[(\d+)\])?(?:\.[a-z_]+)*: (.*)$/s.exec(e.message ?? '');
  let el = null;
  if (m && e.status === 400) {
    const base = m[1];
    el = $(FIELDS[base] ?? FIELDS[base.split('.')[0]] ?? '');
    if (!el && base.startsWith('targets')) el = $('sc-targets');
    if (!el && base.startsWith('items')) el = $('pl-items');
  }
  if (!el) {
    general.textContent = e.message;
    general.hidden = false;
    return;
  }
  const p = document.createElement('p');
  p.className = 'field-error error';
  p.dataset.field = m[1];
  // Next to its field, the reason needs no field name in front.
  p.textContent = m[3];
  el.classList.add('has-error');
  el.insertAdjacentElement('afterend', p);
}

// ---------- playlists ----------

export async function open() {
  const op = ctx.may(ctx.OPERATORS);
  $('pl-form').hidden = !op;
  $('sc-form').hidden = !op;
  busy('view-schedules', true);
  try {
    villages = await ctx.loadVillages();
    const media = ctx.may(ctx.MEDIA);
    const [a, p] = await Promise.all([
      media ? ctx.api('GET', '/api/v1/audio') : { audio: [] },
      media ? ctx.api('GET', '/api/v1/playlists') : { playlists: [] },
    ]);
    clips = a.audio ?? [];
    lists = p.playlists ?? [];
    const sel = $('pl-clip');
    const keep = sel.value;
    sel.replaceChildren(...(clips.length ? clips.map((c) => new Option(`${c.title || '#' + c.id} (${fmtDuration(c.duration_ms)})`, String(c.id))) : [new Option(t('em.noAudio'), '')]));
    if (keep) sel.value = keep;
    renderItems();
    renderPlaylists();
    buildTree();
    renderTargets();
    $('sc-tz').textContent = t('sc.tzIs', { tz: timeZone });
    // Sensible starting values in county time: in ten minutes; from today.
    const soon = zoneParts(Date.now() + 10 * 60000);
    if (!$('sc-once').value) $('sc-once').value = `${dateText(soon)}T${pad(soon.h)}:${pad(soon.mi)}:00`;
    if (!$('sc-start').value) $('sc-start').value = dateText(zoneParts(Date.now()));
    await renderSchedules();
  } catch (e) {
    ctx.showError(e.message);
  } finally {
    busy('view-schedules', false);
  }
}

function addItem() {
  const id = Number($('pl-clip').value);
  if (!id) return;
  const repeat = Math.max(1, Math.min(100, Number($('pl-repeat').value) || 1));
  items.push({ audio_id: id, repeat });
  renderItems();
}

function totalMS() {
  const gap = Math.max(0, Number($('pl-gap').value) || 0) * 1000;
  let total = 0, plays = 0;
  for (const it of items) {
    const c = clips.find((x) => x.id === it.audio_id);
    total += (c?.duration_ms ?? 0) * it.repeat;
    plays += it.repeat;
  }
  return total + Math.max(0, plays - 1) * gap;
}

function renderItems() {
  const ol = $('pl-items');
  ol.replaceChildren(...items.map((it, i) => {
    const li = document.createElement('li');
    li.dataset.audio = it.audio_id;
    const c = clips.find((x) => x.id === it.audio_id);
    const s = document.createElement('span');
    s.className = 'what';
    s.textContent = `${c?.title || '#' + it.audio_id} · ${fmtDuration(c?.duration_ms)} × ${it.repeat}`;
    const btn = (label, cls, fn, disabled) => {
      const b = document.createElement('button');
      b.type = 'button';
      b.className = 'small ' + cls;
      b.textContent = label;
      b.title = t('pl.' + cls);
      b.disabled = !!disabled;
      b.addEventListener('click', fn);
      return b;
    };
    const move = (d) => () => { const [x] = items.splice(i, 1); items.splice(i + d, 0, x); renderItems(); };
    li.append(s, btn('↑', 'up', move(-1), i === 0), btn('↓', 'down', move(1), i === items.length - 1),
      btn('✕', 'remove', () => { items.splice(i, 1); renderItems(); }));
    return li;
  }));
  const ms = totalMS();
  $('pl-total').dataset.ms = ms;
  $('pl-total').textContent = t('pl.total', { dur: fmtDuration(ms) });
}

async function savePlaylist(ev) {
  ev.preventDefault();
  const form = $('pl-form');
  clearErrors(form);
  const err = $('pl-error');
  err.hidden = true;
  $('pl-msg').hidden = true;
  try {
    if (!plKey) plKey = crypto.randomUUID();
    const p = await ctx.api('POST', '/api/v1/playlists', {
      name: $('pl-name').value.trim(), gap_ms: Math.round(Math.max(0, Number($('pl-gap').value) || 0) * 1000), items,
    }, { 'Idempotency-Key': plKey });
    plKey = null; // the form is emptied below: the next one is new
    items.length = 0;
    $('pl-name').value = '';
    const m = $('pl-msg');
    m.textContent = t('pl.saved', { name: p.name, dur: fmtDuration(p.total_ms) });
    m.dataset.id = p.id;
    m.hidden = false;
    await open();
    $('sc-playlist').value = String(p.id);
  } catch (e) {
    if (e.status && e.status < 500) plKey = null; // refused: the corrected form is a new request
    showFieldError(form, err, e);
  }
}

function renderPlaylists() {
  const sel = $('sc-playlist');
  const keep = sel.value;
  sel.replaceChildren(new Option(lists.length ? '—' : t('pl.none'), ''), ...lists.map((p) => new Option(`${p.name} (${fmtDuration(p.total_ms)})`, String(p.id))));
  sel.value = lists.some((p) => String(p.id) === keep) ? keep : '';
  $('pl-list').replaceChildren(...lists.slice().reverse().map((p) => {
    const li = document.createElement('li');
    li.dataset.id = p.id;
    const n = (p.items ?? []).map((it) => {
      const c = clips.find((x) => x.id === it.audio_id);
      return (c?.title || '#' + it.audio_id) + (it.repeat > 1 ? ' × ' + it.repeat : '');
    }).join(' → ');
    li.textContent = `${p.name} · ${fmtDuration(p.total_ms)} · ${n}`;
    if (ctx.may(ctx.OPERATORS)) li.append(' ', listActions(p)); // manage.js
    return li;
  }));
}

// listActions renames and deletes a playlist (manage.js).
function listActions(p) {
  const note = (id, msg) => {
    for (const x of ['pl-msg', 'pl-error']) $(x).hidden = x !== id;
    $(id).textContent = msg;
  };
  return actions({
    kind: 'list', id: p.id, name: p.name, path: `/api/v1/playlists/${p.id}`, field: 'name', api: ctx.api,
    done: (msg) => { note('pl-msg', msg); open().catch((e) => ctx.showError(e.message)); },
    fail: (msg) => note('pl-error', msg),
  });
}

// ---------- schedules ----------

function showKind() {
  const once = $('sc-kind').value === 'once';
  $('sc-once-box').hidden = !once;
  $('sc-rec-box').hidden = once;
}

function splitList(v) { return v.split(/[\s,，、;；]+/).map((x) => x.trim()).filter(Boolean); }

// times reads the times of day as typed: full-width digits and colons
// from a Chinese IME (７：３０) become 07:30, and an hour of one digit is
// padded; anything else goes to the server as typed, which names it.
export function times(v) {
  return splitList(v.normalize('NFKC')).map((x) => (/^\d:\d\d$/.test(x) ? '0' + x : x));
}

function scheduleRequest() {
  const req = { playlist_id: Number($('sc-playlist').value) || 0, targets: currentTargets(), timezone: timeZone };
  if ($('sc-kind').value === 'once') {
    req.once_at = $('sc-once').value; // wall-clock time in the county's zone
  } else {
    const r = { times: times($('sc-times').value), start_date: $('sc-start').value };
    const wd = [...document.querySelectorAll('#sc-weekdays input:checked')].map((i) => Number(i.value));
    if (wd.length && wd.length < 7) r.weekdays = wd;
    if ($('sc-end').value) r.end_date = $('sc-end').value;
    const ex = splitList($('sc-except').value);
    if (ex.length) r.except_dates = ex;
    req.recurring = r;
  }
  return req;
}

let scKey = null;
let plKey = null;
async function saveSchedule(ev) {
  ev.preventDefault();
  const form = $('sc-form');
  clearErrors(form);
  const err = $('sc-error');
  err.hidden = true;
  $('sc-msg').hidden = true;
  const btn = $('sc-save');
  btn.disabled = true;
  try {
    // One Idempotency-Key per version of the form: saving it again
    // unchanged answers with the same schedule instead of a duplicate.
    if (!scKey) { scKey = crypto.randomUUID(); $('sc-form').addEventListener('input', () => { scKey = null; }, { once: true }); }
    const s = await ctx.api('POST', '/api/v1/schedules', scheduleRequest(), { 'Idempotency-Key': scKey });
    const m = $('sc-msg');
    m.textContent = t('sc.saved', { id: s.id, next: s.next?.length ? fmtTime(s.next[0]) : '—' });
    m.dataset.id = s.id;
    m.hidden = false;
    if (replacing) {
      // An edit is the new schedule, then the old one withdrawn: boxes
      // get both commands, and the audit log shows both.
      const old = replacing;
      stopEditing();
      await ctx.api('DELETE', `/api/v1/schedules/${old}`);
      m.textContent = t('sc.replaced', { id: s.id, old });
    }
    await renderSchedules();
  } catch (e) {
    if (e.status && e.status < 500) scKey = null; // refused: the corrected form is a new request
    showFieldError(form, err, e);
  } finally {
    btn.disabled = false;
  }
}

function whenText(s) {
  if (s.once_at) return t('sc.onceText', { at: fmtTime(s.once_at) });
  const r = s.recurring ?? {};
  const days = r.weekdays?.length ? r.weekdays.map((d) => t('wd.' + d)).join('、') : t('sc.everyDay');
  let txt = t('sc.recText', { times: (r.times ?? []).join('、'), days, start: r.start_date });
  if (r.end_date) txt += ' ' + t('sc.until', { end: r.end_date });
  if (r.except_dates?.length) txt += ' ' + t('sc.except', { dates: r.except_dates.join('、') });
  return txt;
}

async function renderSchedules() {
  const data = await ctx.api('GET', '/api/v1/schedules');
  const ss = (data.schedules ?? []).slice().sort((a, b) => b.id - a.id);
  const name = (id) => lists.find((p) => p.id === id)?.name ?? t('sc.playlistN', { id });
  const list = $('sc-list');
  if (!ss.length) {
    const li = document.createElement('li');
    li.className = 'empty';
    li.textContent = t('sc.none');
    list.replaceChildren(li);
    return;
  }
  list.replaceChildren(...ss.map((s) => {
    const li = document.createElement('li');
    li.dataset.id = s.id;
    const h = document.createElement('div');
    h.className = 'what';
    h.textContent = `#${s.id} · ${name(s.playlist_id)} · ${whenText(s)}`;
    // A once-schedule that already played is over (已结束), not 生效中.
    const st = document.createElement('span');
    st.className = 'sc-state ' + (s.state ?? 'active');
    st.textContent = t('sc.state.' + (s.state ?? 'active'));
    h.append(st);
    li.dataset.state = s.state ?? 'active';
    const meta = document.createElement('div');
    meta.className = 'meta';
    meta.textContent = `${t('sc.targets')}: ${summary(s.targets)} · ${t('sc.villages', { n: reach(s.targets).length })} · ${t('sc.next')}: ${s.next?.length ? fmtTime(s.next[0]) : '—'} · ${s.created_by_name || s.created_by}`;
    li.append(h, meta);
    if (ctx.may(ctx.OPERATORS)) {
      const b = withdrawButtons(s);
      const e = document.createElement('button');
      e.type = 'button';
      e.className = 'edit-btn';
      e.textContent = t('sc.edit');
      e.addEventListener('click', () => editSchedule(s));
      b.prepend(e);
      li.append(b);
    }
    return li;
  }));
}

// editSchedule fills the form with schedule s; saving makes a new
// schedule and withdraws s (a published schedule is never changed in
// place on the boxes).
function editSchedule(s) {
  replacing = s.id;
  $('sc-playlist').value = String(s.playlist_id);
  $('sc-kind').value = s.once_at ? 'once' : 'recurring';
  showKind();
  const pad2 = (n) => String(n).padStart(2, '0');
  if (s.once_at) {
    const p = zoneParts(Date.parse(s.once_at));
    $('sc-once').value = `${p.y}-${pad2(p.mo)}-${pad2(p.d)}T${pad2(p.h)}:${pad2(p.mi)}:${pad2(p.s)}`;
  } else {
    const r = s.recurring ?? {};
    $('sc-times').value = (r.times ?? []).join(', ');
    $('sc-start').value = r.start_date ?? '';
    $('sc-end').value = r.end_date ?? '';
    $('sc-except').value = (r.except_dates ?? []).join(', ');
    const wd = new Set(r.weekdays?.length ? r.weekdays : [1, 2, 3, 4, 5, 6, 7]);
    document.querySelectorAll('#sc-weekdays input').forEach((i) => { i.checked = wd.has(Number(i.value)); });
  }
  const tg = s.targets ?? {};
  $('sc-all').checked = !!tg.all;
  const towns = new Set(tg.townships ?? []);
  document.querySelectorAll('#sc-tree input.town').forEach((i) => { i.checked = towns.has(i.value); });
  picked.clear();
  for (const c of tg.villages ?? []) picked.add(c);
  renderTargets();
  const note = $('sc-editing');
  const cancel = document.createElement('button');
  cancel.type = 'button';
  cancel.className = 'small';
  cancel.textContent = t('cm.cancel');
  cancel.addEventListener('click', stopEditing);
  note.replaceChildren(t('sc.editing', { id: s.id }), ' ', cancel);
  note.hidden = false;
  $('sc-form').scrollIntoView({ block: 'start' });
}

function stopEditing() {
  replacing = 0;
  $('sc-editing').hidden = true;
}

// withdrawButtons asks once more before a schedule is withdrawn.
function withdrawButtons(s) {
  const box = document.createElement('div');
  box.className = 'buttons';
  const w = document.createElement('button');
  w.type = 'button';
  w.className = 'withdraw';
  if (armed !== s.id) {
    w.textContent = t('sc.withdraw');
    w.addEventListener('click', () => { armed = s.id; renderSchedules().catch((e) => ctx.showError(e.message)); });
    box.append(w);
    return box;
  }
  const q = document.createElement('span');
  q.className = 'error';
  q.textContent = t('sc.withdrawAsk', { id: s.id });
  w.className = 'danger withdraw-confirm';
  w.textContent = t('sc.withdrawYes');
  w.addEventListener('click', async () => {
    w.disabled = true;
    try {
      await ctx.api('DELETE', `/api/v1/schedules/${s.id}`);
      armed = 0;
      const m = $('sc-msg');
      m.textContent = t('sc.withdrawn', { id: s.id });
      m.hidden = false;
      await renderSchedules();
    } catch (e) {
      w.disabled = false;
      ctx.showError(e.message);
    }
  });
  const no = document.createElement('button');
  no.type = 'button';
  no.className = 'withdraw-no';
  no.textContent = t('sc.withdrawNo');
  no.addEventListener('click', () => { armed = 0; renderSchedules().catch((e) => ctx.showError(e.message)); });
  box.append(q, w, no);
  return box;
}

// ---------- the week calendar ----------

export async function openCalendar() {
  busy('view-calendar', true);
  try {
    villages = await ctx.loadVillages();
    await loadCalendar();
  } catch (e) {
    ctx.showError(e.message);
  } finally {
    busy('view-calendar', false);
  }
}

async function loadCalendar() {
  const now = Date.now();
  const p = zoneParts(now);
  // Monday of this week in the county, moved by whole weeks; dates roll
  // over through Date.UTC.
  const base = new Date(Date.UTC(p.y, p.mo - 1, p.d - (p.wd - 1) + 7 * week));
  const days = [];
  for (let i = 0; i < 8; i++) {
    const d = new Date(base.getTime() + i * 86400000);
    days.push({ y: d.getUTCFullYear(), mo: d.getUTCMonth() + 1, d: d.getUTCDate(), wd: i + 1 });
  }
  const starts = days.map((d) => zoneInstant(d.y, d.mo, d.d));
  const from = new Date(starts[0]).toISOString(), to = new Date(starts[7]).toISOString();
  busy('view-calendar', true);
  try {
    const data = await ctx.api('GET', `/api/v1/calendar?from=${encodeURIComponent(from)}&to=${encodeURIComponent(to)}`);
    const today = dateText(p);
    $('cal-range').textContent = t('cal.range', { from: dateText(days[0]), to: dateText(days[6]) });
    $('cal-grid').dataset.from = from;
    const occ = data.occurrences ?? [];
    $('cal-count').textContent = t('cal.count', { n: occ.length });
    $('cal-grid').replaceChildren(...days.slice(0, 7).map((d, i) => {
      const col = document.createElement('div');
      col.className = 'cal-day' + (dateText(d) === today ? ' today' : '');
      col.dataset.date = dateText(d);
      const h = document.createElement('h3');
      h.textContent = `${t('wd.' + d.wd)} ${pad(d.mo)}-${pad(d.d)}`;
      col.append(h);
      const mine = occ.filter((o) => { const at = Date.parse(o.at); return at >= starts[i] && at < starts[i + 1]; });
      if (!mine.length) {
        const e = document.createElement('p');
        e.className = 'hint';
        e.textContent = t('cal.free');
        col.append(e);
      }
      for (const o of mine) col.append(calItem(o, now));
      return col;
    }));
  } catch (e) {
    ctx.showError(e.message);
  } finally {
    busy('view-calendar', false);
  }
}

function calItem(o, now) {
  const a = document.createElement('a');
  a.className = 'cal-item' + (Date.parse(o.end) < now ? ' past' : '');
  a.dataset.schedule = o.schedule_id;
  a.dataset.at = o.at;
  a.href = `#map?s=${o.schedule_id}@${encodeURIComponent(o.at)}`;
  a.title = t('cal.openMap');
  const time = document.createElement('strong');
  time.textContent = `${clockText(Date.parse(o.at))}–${clockText(Date.parse(o.end))}`;
  const what = document.createElement('span');
  what.className = 'pl';
  what.textContent = `${o.playlist || '#' + o.playlist_id} · #${o.schedule_id}`;
  const where = document.createElement('span');
  where.className = 'where';
  where.textContent = `${summary(o.targets, o.targets_summary)} · ${t('sc.villages', { n: o.village_count })} · ${t('priority.' + o.priority)}`;
  a.append(time, what, where);
  return a;
}

