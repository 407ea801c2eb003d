// The map's list of villages that did not play the chosen broadcast or
// schedule occurrence, always in view beside the map: each with its
// class and reason, filtered by township and class, exported as CSV by
// the server (…/coverage?format=csv, formula cells neutralised), and, for
// a broadcast that was sent, sent again to exactly those villages as a
// new broadcast (which passes the two-person rule like any other).
import { t, reasonText, fmtTime } from './i18n.js';

const $ = (id) => document.getElementById(id);
let ctx = null;
// cur is what the list shows: the subject ("b:3", "s:2@…"), its coverage
// report and, for a broadcast, the broadcast.
const cur = { subject: '', report: null, broadcast: null };

export function init(c) {
  ctx = c;
  $('up-town').addEventListener('change', render);
  $('up-class').addEventListener('change', render);
  $('up-resend').addEventListener('click', () => { onResend().catch((e) => ctx.showError(e.message)); });
}

// missed are the villages of the report that did not play: not played,
// and not sounding right now.
function missed() {
  return (cur.report?.villages ?? []).filter((v) => v.status !== 'played' && !(v.status === 'pending' && v.reported_at));
}

// show renders the list for a subject; called on every coverage refresh.
export function show(subject, report, broadcast) {
  if (subject !== cur.subject) disarm();
  cur.subject = subject;
  cur.report = report;
  cur.broadcast = broadcast;
  if (subject !== ($('up-msg').dataset.subject ?? '')) { $('up-msg').hidden = true; }
  render();
}

function options(sel, values, label) {
  const keep = sel.value;
  sel.replaceChildren(new Option(t('up.any'), ''), ...values.map((v) => new Option(label(v), v)));
  sel.value = values.includes(keep) ? keep : '';
}

function csvURL() {
  const s = cur.subject;
  const q = new URLSearchParams({ format: 'csv' });
  if ($('up-town').value) q.set('township', $('up-town').value);
  if ($('up-class').value) q.set('class', $('up-class').value);
  if (s.startsWith('b:')) return `/api/v1/broadcasts/${s.slice(2)}/coverage?${q}`;
  const [id] = s.slice(2).split('@');
  if (cur.report?.occurrence) q.set('at', cur.report.occurrence);
  return `/api/v1/schedules/${id}/coverage?${q}`;
}

export function render() {
  const all = missed();
  options($('up-town'), [...new Set(all.map((v) => v.township))].sort(), (x) => x);
  options($('up-class'), [...new Set(all.map((v) => v.class))], (c) => t('rp.class.' + c));
  const town = $('up-town').value, cls = $('up-class').value;
  const shown = all.filter((v) => (!town || v.township === town) && (!cls || v.class === cls));
  const count = $('up-count');
  count.dataset.n = all.length;
  count.dataset.shown = shown.length;
  count.textContent = !cur.report ? t('up.noSubject') : !all.length ? t('up.none') : shown.length === all.length ? t('up.count', { n: all.length }) : t('up.shown', { shown: shown.length, n: all.length });
  $('up-list').replaceChildren(...shown.map((v) => {
    const li = document.createElement('li');
    li.dataset.code = v.code;
    li.dataset.class = v.class;
    li.dataset.township = v.township;
    const name = document.createElement('span');
    name.className = 'name';
    name.textContent = `${v.name} · ${v.township}`;
    const c = document.createElement('span');
    c.className = 'class ' + v.class;
    c.textContent = t('rp.class.' + v.class);
    const why = document.createElement('div');
    why.className = 'why';
    why.textContent = reasonText(v) || '—';
    li.append(name, ' ', c, why);
    return li;
  }));
  const a = $('up-csv');
  a.hidden = !cur.report || !all.length;
  a.href = cur.report ? csvURL() : '#';
  const b = cur.broadcast;
  const resend = $('up-resend');
  resend.hidden = !(b && ['in_progress', 'done', 'expired'].includes(cur.report?.state ?? b.state) && all.length && ctx.may(ctx.OPERATORS));
  if (!resend.classList.contains('armed')) resend.textContent = t('up.resend', { n: all.length });
}

// Resending arms on the first press and sends on the second, as cancel.
let armed = null;
let key = null;
function disarm() {
  clearTimeout(armed);
  armed = null;
  const r = $('up-resend');
  r.classList.remove('armed');
  key = null;
}

async function onResend() {
  const r = $('up-resend');
  const codes = missed().map((v) => v.code);
  if (!r.classList.contains('armed')) {
    r.classList.add('armed');
    r.textContent = t('up.resendConfirm', { n: codes.length });
    key = crypto.randomUUID(); // one submission, one broadcast
    armed = setTimeout(() => { disarm(); render(); }, 8000);
    return;
  }
  const b = cur.broadcast;
  const k = key;
  disarm();
  render();
  const req = {
    targets: { all: false, villages: codes },
    priority: b.priority, severity: b.severity, event_type: b.event_type ?? '', repeat: b.repeat || 1, test: !!b.test,
    // as long as the first one was allowed, at least 15 minutes from now
    expires_at: new Date(Date.now() + Math.max(15 * 60e3, new Date(b.expires_at) - new Date(b.created_at))).toISOString(),
  };
  if (b.volume) req.volume = b.volume;
  if (b.force_full_volume) req.force_full_volume = true;
  if (b.audio_id) req.audio_id = b.audio_id; else if (b.playlist_id) req.playlist_id = b.playlist_id; else if (b.text) req.text = b.text;
  else { ctx.showError(t('up.resendNoContent')); return; }
  const nb = await ctx.api('POST', '/api/v1/broadcasts', req, { 'Idempotency-Key': k ?? crypto.randomUUID() });
  const m = $('up-msg');
  m.textContent = t('up.resent', { id: nb.id, n: codes.length, state: t('state.' + nb.state) }) + ' ';
  const link = document.createElement('a');
  link.href = '#map?b=' + nb.id;
  link.textContent = fmtTime(nb.created_at);
  m.append(link);
  m.dataset.id = nb.id;
  m.dataset.subject = cur.subject;
  m.hidden = false;
  ctx.onResent?.(nb);
}
