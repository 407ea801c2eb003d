// Users and roles (admins): everyone who logs in, with their display
// name, role, village, state and last login; creating a user (an approver
// for the two-person rule, say) with an initial password; editing the
// name, role and village; resetting a password; disabling, enabling and
// deleting. Below, the login limits (throttles.js). app.js calls init
// once and open when the view shows.
import { t, fmtTime } from './i18n.js';
import './i18n-admin.js';
import { td } from './audit.js';

const $ = (id) => document.getElementById(id);

const ROLES = ['admin', 'operator', 'approver', 'viewer', 'village'];

let ctx = null; // { api, showError, loadVillages, me }
let users = [];
let villages = [];
let editing = null; // the user being edited, or null to create one
let armed = 0; // the user whose deletion awaits its confirmation

export function init(c) {
  ctx = c;
  $('us-role').replaceChildren(...ROLES.map((r) => new Option(t('role.' + r), r)));
  $('us-role').value = 'approver';
  $('us-role').addEventListener('change', showVillage);
  $('us-form').addEventListener('submit', onSubmit);
  $('us-cancel').addEventListener('click', () => { startCreate(); });
}

export async function open() {
  try {
    [villages] = await Promise.all([ctx.loadVillages(), load()]);
    const sel = $('us-village');
    const keep = sel.value;
    sel.replaceChildren(new Option('—', ''), ...villages.map((v) => new Option(`${v.name} · ${v.township} (${v.code})`, v.code)));
    sel.value = keep;
    for (const o of $('us-role').options) o.textContent = t('role.' + o.value);
    if (!editing) startCreate(true);
    showVillage();
  } catch (e) {
    ctx.showError(e.message);
  }
}

async function load() {
  const data = await ctx.api('GET', '/api/v1/users');
  users = data.users ?? [];
  render();
}

function note(msg) {
  const m = $('us-msg');
  m.textContent = msg;
  m.hidden = !msg;
}

function villageName(code) {
  const v = villages.find((x) => x.code === code);
  return v ? v.name : code;
}

function button(text, cls, onClick) {
  const b = document.createElement('button');
  b.type = 'button';
  b.className = cls;
  b.textContent = text;
  b.addEventListener('click', onClick);
  return b;
}

function render() {
  $('us-count').textContent = t('us.count', { n: users.length });
  $('us-rows').replaceChildren(...users.map((u) => {
    const tr = document.createElement('tr');
    tr.dataset.id = u.id;
    tr.dataset.username = u.username;
    tr.classList.toggle('disabled', u.disabled);
    const me = u.id === ctx.me().user_id;
    const name = (u.display_name || u.username) + (me ? t('us.me') : '');
    const state = td(u.disabled ? t('us.disabled') : t('us.active'), 'state ' + (u.disabled ? 'off' : 'on'));
    const act = document.createElement('td');
    act.className = 'actions';
    if (armed === u.id) {
      const q = document.createElement('span');
      q.className = 'error';
      q.textContent = t('us.deleteAsk', { name: u.display_name || u.username });
      act.append(q, ' ', button(t('us.deleteYes'), 'small danger delete-confirm', () => remove(u)), ' ',
        button(t('us.no'), 'small', () => { armed = 0; render(); }));
    } else {
      act.append(button(t('us.edit'), 'small edit-btn', () => startEdit(u)));
      if (!me) {
        act.append(' ', button(u.disabled ? t('us.enable') : t('us.disable'), 'small toggle-btn', () => toggle(u)), ' ',
          button(t('us.delete'), 'small delete-btn', () => { armed = u.id; render(); }));
      }
    }
    tr.append(td(name, 'name'), td(u.username, 'mono'), td(t('role.' + u.role), 'role'), td(u.village ? villageName(u.village) : '—'),
      state, td(u.last_login_at ? fmtTime(u.last_login_at) : t('us.never'), 'when'), act);
    return tr;
  }));
}

function showVillage() {
  $('us-village-box').hidden = $('us-role').value !== 'village';
}

// startCreate empties the form for a new user (keep: leave what is typed).
function startCreate(keep) {
  editing = null;
  $('us-form-title').textContent = t('us.create');
  $('us-username').disabled = false;
  if (!keep) {
    for (const id of ['us-username', 'us-display', 'us-password']) $(id).value = '';
    $('us-role').value = 'approver';
  }
  $('us-password-label').textContent = t('us.password');
  $('us-password').required = true;
  $('us-submit').textContent = t('us.submit');
  $('us-cancel').hidden = true;
  $('us-error').hidden = true;
  showVillage();
}

function startEdit(u) {
  editing = u;
  $('us-form-title').textContent = t('us.editTitle', { name: u.display_name || u.username });
  $('us-username').value = u.username;
  $('us-username').disabled = true;
  $('us-display').value = u.display_name;
  $('us-role').value = u.role;
  $('us-village').value = u.village || '';
  $('us-password').value = '';
  $('us-password').required = false;
  $('us-password-label').textContent = t('us.newPassword');
  $('us-submit').textContent = t('us.save');
  $('us-cancel').hidden = false;
  $('us-error').hidden = true;
  showVillage();
  $('us-form').scrollIntoView({ block: 'nearest' });
  $('us-display').focus();
}

// errText says in the console's language what the server refused.
function errText(e) {
  const m = e.raw || e.message || '';
  if (e.status === 409 && /taken/.test(m)) return t('us.err.taken');
  if (/no admin/.test(m) || /last admin/.test(m)) return t('us.err.lastAdmin');
  if (m.startsWith('username')) return t('us.err.username');
  if (m.startsWith('password')) return t('us.err.password');
  if (m.startsWith('village')) return t('us.err.village');
  if (m.startsWith('display_name')) return t('us.err.display');
  return e.message;
}

async function onSubmit(ev) {
  ev.preventDefault();
  const err = $('us-error');
  err.hidden = true;
  const role = $('us-role').value;
  const village = role === 'village' ? $('us-village').value : '';
  if (role === 'village' && !village) { err.textContent = t('us.err.village'); err.hidden = false; return; }
  const pw = $('us-password').value;
  const btn = $('us-submit');
  btn.disabled = true;
  try {
    if (editing) {
      const body = { display_name: $('us-display').value, role, village };
      if (pw) body.password = pw;
      const u = await ctx.api('PATCH', `/api/v1/users/${editing.id}`, body);
      note(t(pw ? 'us.passwordReset' : 'us.saved', { name: u.display_name || u.username }));
    } else {
      if (pw.length < 10) { err.textContent = t('us.err.password'); err.hidden = false; return; }
      const u = await ctx.api('POST', '/api/v1/users', { username: $('us-username').value, display_name: $('us-display').value, role, village, password: pw });
      note(t('us.created', { name: u.display_name || u.username, role: t('role.' + u.role) }));
    }
    startCreate();
    await load();
  } catch (e) {
    err.textContent = errText(e);
    err.hidden = false;
  } finally {
    btn.disabled = false;
  }
}

async function toggle(u) {
  try {
    const x = await ctx.api('PATCH', `/api/v1/users/${u.id}`, { disabled: !u.disabled });
    note(t(x.disabled ? 'us.disabledMsg' : 'us.enabledMsg', { name: x.display_name || x.username }));
    await load();
  } catch (e) {
    ctx.showError(errText(e));
  }
}

async function remove(u) {
  armed = 0;
  try {
    await ctx.api('DELETE', `/api/v1/users/${u.id}`);
    note(t('us.deleted', { name: u.display_name || u.username }));
    if (editing?.id === u.id) startCreate();
    await load();
  } catch (e) {
    render();
    ctx.showError(errText(e));
  }
}
