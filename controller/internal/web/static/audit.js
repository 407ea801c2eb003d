// The audit log (admins): who did what, to what, from where (the detail
// in the reader's language and county time, i18n-audit.js); filtered by
// user, action, days and free text, fifty entries a page, paging back by
// id as the API does. app.js calls init once with its helpers and open
// when the view shows.
import { t, fmtTime } from './i18n.js';
import { auditText } from './i18n-audit.js';

const $ = (id) => document.getElementById(id);

const PAGE = 50;
// The actions the API writes, for the filter (GET /api/v1/audit).
export const ACTIONS = ['login', 'login.failed', 'logout', 'denied', 'user', 'token', 'village', 'agent.enroll', 'config.put',
  'audio', 'playlist.create', 'schedule', 'broadcast', 'broadcast.create', 'broadcast.approve', 'broadcast.reject',
  'broadcast.cancel', 'broadcast.resend', 'confirmation.create', 'login_throttle.clear', 'ebd'];

let ctx = null; // { api, showError }
const pages = []; // the "before" id of each page shown: [0, id, …]

export function init(c) {
  ctx = c;
  $('au-form').addEventListener('submit', (e) => { e.preventDefault(); pages.length = 0; load(0); });
  $('au-older').addEventListener('click', () => load(Number($('au-older').dataset.before)));
  $('au-newer').addEventListener('click', () => { pages.pop(); load(pages.pop() ?? 0); });
  $('au-reset').addEventListener('click', () => {
    for (const id of ['au-actor', 'au-action', 'au-from', 'au-to', 'au-q']) $(id).value = '';
    pages.length = 0;
    load(0);
  });
}

export async function open() {
  const sel = $('au-action');
  const keep = sel.value;
  sel.replaceChildren(new Option(t('vl.any'), ''), ...ACTIONS.map((a) => new Option(actionLabel(a), a)));
  sel.value = keep;
  try {
    const users = await ctx.api('GET', '/api/v1/users');
    $('au-users').replaceChildren(...(users.users ?? []).map((u) => new Option(u.display_name || u.username, u.username)));
  } catch (e) {
    ctx.showError(e.message);
  }
  pages.length = 0;
  await load(0);
}

function actionLabel(a) {
  const l = t('au.act.' + a);
  return l === 'au.act.' + a ? a : `${l} (${a})`;
}

// dayStart is the instant the county's day begins, as RFC 3339.
function dayStart(date) { return date + 'T00:00:00+08:00'; }

function nextDay(date) {
  const d = new Date(date + 'T00:00:00Z');
  d.setUTCDate(d.getUTCDate() + 1);
  return d.toISOString().slice(0, 10);
}

async function load(before) {
  const q = new URLSearchParams({ limit: String(PAGE) });
  const actor = $('au-actor').value.trim();
  if (actor) q.set('actor', actor);
  if ($('au-action').value) q.set('action', $('au-action').value);
  if ($('au-from').value) q.set('since', dayStart($('au-from').value));
  if ($('au-to').value) q.set('until', dayStart(nextDay($('au-to').value)));
  if ($('au-q').value.trim()) q.set('q', $('au-q').value.trim());
  if (before) q.set('before', String(before));
  try {
    const data = await ctx.api('GET', '/api/v1/audit?' + q.toString());
    const es = data.entries ?? [];
    pages.push(before);
    render(es);
    const older = $('au-older');
    older.hidden = es.length < PAGE;
    older.dataset.before = es.length ? es[es.length - 1].id : 0;
    $('au-newer').hidden = pages.length < 2;
    $('au-page').textContent = t('au.page', { n: pages.length });
  } catch (e) {
    ctx.showError(e.message);
  }
}

export function td(text, cls) {
  const c = document.createElement('td');
  c.textContent = text;
  if (cls) c.className = cls;
  return c;
}

function render(es) {
  $('au-count').textContent = es.length ? t('au.count', { n: es.length }) : t('au.none');
  $('au-rows').replaceChildren(...es.map((e) => {
    const tr = document.createElement('tr');
    tr.dataset.id = e.id;
    tr.dataset.actor = e.actor;
    tr.dataset.action = e.action;
    tr.append(td(fmtTime(e.at), 'when'), td(e.actor_name && e.actor_name !== e.actor ? `${e.actor_name} (${e.actor})` : e.actor), td(actionLabel(e.action), 'action'), td(e.object, 'mono'), td(auditText(e), 'detail'), td(e.remote_addr || '', 'mono'));
    return tr;
  }));
}
