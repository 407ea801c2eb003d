// The 上级平台 page (everyone who sees the map; terminal codes are set by
// admins): this platform's place in the national emergency-broadcast
// chain (GY/T 384), the link to the upper platform (heartbeats each way,
// the last error, the reports waiting), the certificates, the packets
// received with what came of them, the reports sent, and the village
// boxes' resource codes (GET /api/v1/ebd/…). It reads again every 15 s
// while it shows. app.js calls init once and open when the view shows.
import { t, fmtTime, say } from './i18n.js';
import './i18n-ebd.js';
import { errorText } from './i18n-errors.js';
import { td } from './audit.js';

const $ = (id) => document.getElementById(id);

const REFRESH_MS = 15000;

let ctx = null; // { api, showError, me }
let timer = 0;
let editing = ''; // the village whose terminal code is being edited

export function init(c) {
  ctx = c;
  $('ebd-refresh').addEventListener('click', () => { load(); });
}

export async function open() {
  editing = '';
  $('ebd-term-msg').hidden = true;
  await load();
  clearInterval(timer);
  timer = setInterval(() => {
    if ($('view-ebd').hidden) { clearInterval(timer); timer = 0; return; }
    if (!editing) load();
  }, REFRESH_MS);
}

async function load() {
  try {
    const st = await ctx.api('GET', '/api/v1/ebd/status');
    renderStatus(st);
    if (!st.enabled) {
      for (const id of ['ebd-in-rows', 'ebd-out-rows', 'ebd-term-rows']) $(id).replaceChildren();
      return;
    }
    const [inb, outb, terms] = await Promise.all([
      ctx.api('GET', '/api/v1/ebd/inbound?limit=50'),
      ctx.api('GET', '/api/v1/ebd/outbound?limit=50'),
      ctx.api('GET', '/api/v1/ebd/terminals'),
    ]);
    renderInbound(inb.packets ?? []);
    renderOutbound(outb.reports ?? [], !!st.upstream);
    if (!editing) renderTerminals(terms.terminals ?? []);
  } catch (e) {
    ctx.showError(e.message);
  }
}

function typeText(type) {
  if (!type) return '—';
  const k = 'ebd.type.' + type;
  const l = t(k);
  return l === k ? type : `${l} (${type})`;
}

// fact adds a line to the facts list: a label and a value (text or node).
function fact(dl, key, value, cls) {
  const dt = document.createElement('dt');
  dt.textContent = t(key);
  const dd = document.createElement('dd');
  if (value instanceof Node) dd.append(value); else dd.textContent = value;
  if (cls) dd.className = cls;
  dd.dataset.fact = key.slice('ebd.f.'.length);
  dl.append(dt, dd);
}

function renderStatus(st) {
  $('ebd-off').hidden = st.enabled;
  for (const id of ['ebd-facts-card', 'ebd-certs-card', 'ebd-in-card', 'ebd-out-card', 'ebd-term-card']) $(id).hidden = !st.enabled;
  if (!st.enabled) return;
  const dl = $('ebd-facts');
  dl.replaceChildren();
  fact(dl, 'ebd.f.ebrid', st.ebr_id, 'mono');
  fact(dl, 'ebd.f.door', st.door_url || location.origin + '/api/v1/ebd', 'mono');
  fact(dl, 'ebd.f.approval', t(st.local_approval ? 'ebd.f.approvalLocal' : 'ebd.f.approvalUp'));
  fact(dl, 'ebd.f.heartbeatIn', st.heartbeat_received_at ? fmtTime(st.heartbeat_received_at) : t('ebd.never'), 'when');
  const u = st.upstream;
  if (!u) {
    fact(dl, 'ebd.f.upstream', t('ebd.f.upstreamNone'), 'warn-text');
  } else {
    fact(dl, 'ebd.f.upstream', u.url, 'mono');
    fact(dl, 'ebd.f.upstreamEBRID', u.ebr_id || '—', 'mono');
    const link = !u.heartbeat_sent_at ? 'wait' : u.reachable ? 'up' : 'down';
    fact(dl, 'ebd.f.link', t('ebd.link.' + link), 'link-state ' + link);
    fact(dl, 'ebd.f.heartbeatSent', u.heartbeat_sent_at ? fmtTime(u.heartbeat_sent_at) : t('ebd.never'), 'when');
    fact(dl, 'ebd.f.heartbeatAt', u.heartbeat_at ? fmtTime(u.heartbeat_at) : t('ebd.never'), 'when');
    fact(dl, 'ebd.f.lastSent', u.last_sent_at ? fmtTime(u.last_sent_at) : t('ebd.never'), 'when');
    if (u.last_error) fact(dl, 'ebd.f.lastError', `${fmtTime(u.last_error_at)} · ${u.last_error}`, 'error-text');
    fact(dl, 'ebd.f.queued', u.queued ? t('ebd.queued', { n: u.queued, at: fmtTime(u.oldest_queued_at) }) : t('ebd.queuedNone'), u.queued ? 'queued' : '');
  }
  $('ebd-cert').href = '/api/v1/ebd/certificate';
  $('ebd-cert').hidden = !st.certificate;
  const certs = [];
  if (st.certificate) certs.push(['own', st.certificate]);
  for (const c of st.trusted ?? []) certs.push(['trusted', c]);
  $('ebd-cert-rows').replaceChildren(...certs.map(([use, c]) => {
    const tr = document.createElement('tr');
    tr.dataset.sn = c.cert_sn;
    tr.dataset.use = use;
    tr.append(td(t('ebd.c.' + use)), td(c.cert_sn, 'mono'), td(c.subject, 'subject'), td(fmtTime(c.not_after), 'when'),
      td(t('ebd.cs.' + c.state), 'state ' + c.state));
    return tr;
  }));
}

// resultText says what came of a packet: the answer's description (the
// standard's Chinese text first), and for a refusal its reason in the
// reader's language.
function resultText(p) {
  let s = `${t('ebd.o.' + p.outcome)} · ${p.result_code} ${p.result_desc || ''}`.trim();
  if (p.reason) s += '：' + errorText({ reason: p.reason, params: p.params, message: p.error });
  return s;
}

function renderInbound(ps) {
  $('ebd-in-count').textContent = ps.length ? t('ebd.in.count', { n: ps.length }) : t('ebd.in.none');
  $('ebd-in-rows').replaceChildren(...ps.map((p) => {
    const tr = document.createElement('tr');
    tr.dataset.ebdid = p.ebdid;
    tr.dataset.outcome = p.outcome;
    tr.classList.toggle('refused', p.outcome === 'refused');
    const bc = document.createElement('td');
    if (p.broadcast_id) {
      const a = document.createElement('a');
      a.href = `#map?b=${p.broadcast_id}`;
      a.className = 'bc-link';
      a.textContent = t('ebd.bc', { id: p.broadcast_id });
      bc.append(a);
    }
    tr.append(td(fmtTime(p.received_at), 'when'), td(typeText(p.type)), td(resultText(p), 'res'), bc, td(p.src || '—', 'mono'),
      td(p.ebdid, 'mono'));
    return tr;
  }));
}

function renderOutbound(rs, upstream) {
  $('ebd-out-count').textContent = rs.length ? t('ebd.in.count', { n: rs.length }) : t(upstream ? 'ebd.out.none' : 'ebd.f.upstreamNone');
  $('ebd-out-rows').replaceChildren(...rs.map((r) => {
    const tr = document.createElement('tr');
    tr.dataset.ebdid = r.ebdid;
    tr.dataset.state = r.state;
    let answer = r.result_code !== undefined ? `${r.result_code} ${r.result_desc || ''}`.trim() : r.last_error || '';
    if (r.next_attempt_at && r.attempts) answer = `${answer} · ${t('ebd.next', { at: fmtTime(r.next_attempt_at) })}`;
    const what = typeText(r.type) + (r.broadcast_id ? ' · ' + t('ebd.bc', { id: r.broadcast_id }) : '');
    tr.append(td(fmtTime(r.created_at), 'when'), td(what), td(t('ebd.os.' + r.state), 'state ' + r.state), td(answer, 'answer'),
      td(String(r.attempts), 'num'), td(r.ebdid, 'mono'));
    return tr;
  }));
}

function renderTerminals(ts) {
  const admin = ctx.me()?.role === 'admin';
  $('ebd-term-count').textContent = ts.length ? '' : t('ebd.t.none');
  $('ebd-term-rows').replaceChildren(...ts.map((x) => {
    const tr = document.createElement('tr');
    tr.dataset.code = x.village;
    const code = td(x.ebr_id, 'mono ebrid');
    const act = document.createElement('td');
    if (admin) {
      const b = document.createElement('button');
      b.type = 'button';
      b.className = 'small edit-code';
      b.textContent = t('ebd.t.edit');
      b.addEventListener('click', () => { startEdit(tr, x); });
      act.append(b);
    }
    tr.append(td(x.village, 'mono'), td(x.name), td(x.township), code, td(t(x.assigned ? 'ebd.t.assigned' : 'ebd.t.derived'), 'from'), act);
    return tr;
  }));
}

// startEdit turns a terminal's row into a small form: the code, save and
// cancel; the server checks it and says why it refuses.
function startEdit(tr, x) {
  editing = x.village;
  $('ebd-term-error').hidden = true;
  const input = document.createElement('input');
  input.className = 'mono code-input';
  input.value = x.assigned ? x.ebr_id : '';
  input.placeholder = x.derived;
  input.maxLength = 23;
  input.inputMode = 'numeric';
  input.setAttribute('aria-label', t('ebd.t.code') + ' · ' + x.name);
  const save = document.createElement('button');
  save.type = 'button';
  save.className = 'small primary save-code';
  save.textContent = t('ebd.t.save');
  const cancel = document.createElement('button');
  cancel.type = 'button';
  cancel.className = 'small';
  cancel.textContent = t('ebd.t.cancel');
  const cell = tr.querySelector('td.ebrid');
  cell.replaceChildren(input);
  tr.lastChild.replaceChildren(save, cancel);
  input.focus();
  const submit = async () => {
    save.disabled = true;
    try {
      const got = await ctx.api('PUT', '/api/v1/ebd/terminals/' + encodeURIComponent(x.village), { ebr_id: input.value.trim() });
      editing = '';
      const m = $('ebd-term-msg');
      say(m, 'ebd.t.saved', { name: got.name, code: got.ebr_id });
      m.hidden = false;
      await load();
    } catch (e) {
      save.disabled = false;
      const err = $('ebd-term-error');
      err.textContent = e.message;
      err.hidden = false;
    }
  };
  save.addEventListener('click', submit);
  input.addEventListener('keydown', (e) => { if (e.key === 'Enter') { e.preventDefault(); submit(); } });
  cancel.addEventListener('click', () => { editing = ''; $('ebd-term-error').hidden = true; load(); });
}
