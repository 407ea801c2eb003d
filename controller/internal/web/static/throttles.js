// Login limits (admins), on the users screen (users.js): the sources whose failed
// logins are being counted, which of them are refused for now, and a
// button to let each through again (GET and DELETE /api/v1/login-throttles).
// Failed logins slow down where they come from, never an account for
// everyone, so this list names addresses. app.js calls init once and open
// when the users view shows.
import { t, fmtTime } from './i18n.js';
import { td } from './audit.js';

const $ = (id) => document.getElementById(id);

let ctx = null; // { api, showError }

export function init(c) {
  ctx = c;
  $('lt-refresh').addEventListener('click', () => { load(); });
  $('lt-clear-all').addEventListener('click', () => { clear({}); });
}

export async function open() { await load(); }

async function load() {
  try {
    const data = await ctx.api('GET', '/api/v1/login-throttles');
    render(data.throttles ?? []);
  } catch (e) {
    ctx.showError(e.message);
  }
}

async function clear(q) {
  try {
    const data = await ctx.api('DELETE', '/api/v1/login-throttles?' + new URLSearchParams(q).toString());
    $('lt-note').textContent = t('lt.cleared', { n: data.cleared });
  } catch (e) {
    ctx.showError(e.message);
  }
  await load();
}

function render(rows) {
  $('lt-count').textContent = rows.length ? t('lt.count', { n: rows.length, m: rows.filter((r) => r.retry_after_s > 0).length }) : t('lt.none');
  $('lt-clear-all').hidden = rows.length === 0;
  $('lt-rows').replaceChildren(...rows.map((r) => {
    const tr = document.createElement('tr');
    tr.dataset.addr = r.addr;
    tr.dataset.user = r.user;
    tr.classList.toggle('refused', r.retry_after_s > 0);
    const state = r.retry_after_s > 0 ? t('lt.refused', { n: r.retry_after_s }) : t('lt.counting');
    const btn = document.createElement('button');
    btn.type = 'button';
    btn.className = 'small';
    btn.textContent = r.user ? t('lt.clear') : t('lt.clearAddr');
    btn.addEventListener('click', () => { clear(r.user ? { addr: r.addr, user: r.user } : { addr: r.addr }); });
    const action = document.createElement('td');
    action.append(btn);
    tr.append(td(r.addr, 'mono'), td(r.user || t('lt.wholeAddr')), td(String(r.failures)), td(fmtTime(r.last_failure_at), 'when'), td(state, 'state'), action);
    return tr;
  }));
}
