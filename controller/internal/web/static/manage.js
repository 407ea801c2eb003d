// Renaming and deleting clips and playlists, for operators. Deleting asks
// once more; what is still in use is refused by the server (409), and the
// console says, in its own language, where it is used. library.js and
// schedules.js put these buttons on their rows.
import { t, fmtTime } from './i18n.js';
import './i18n-admin.js';

// usesText names the uses a 409 lists (details: field = kind, line = id,
// reason = name).
export function usesText(details) {
  return (details ?? []).map((d) => {
    if (d.field === 'schedule') return t('cm.use.schedule', { id: d.line, name: d.reason ? fmtWhen(d.reason) : '' });
    if (d.field === 'broadcast') return t('cm.use.broadcast', { id: d.line });
    return t('cm.use.playlist', { name: d.reason || '#' + d.line });
  }).join('、');
}

// A schedule's time in a 409 is "2026-03-01 17:00" (county time) or
// "07:30,18:00" (times of day); either is shown as it is.
function fmtWhen(s) { return /^\d{4}-/.test(s) ? s : s.replaceAll(',', '、'); }

// errorText is the console's text for a failed rename or delete.
export function errorText(e, name, editing) {
  if (e.status === 409 && e.details?.length) return t(editing ? 'cm.inUseEdit' : 'cm.inUse', { name, uses: usesText(e.details) });
  if (e.status === 400 && /^(title|name):/.test(e.raw ?? e.message)) return t('cm.err.title');
  return e.message;
}

function button(text, cls, onClick) {
  const b = document.createElement('button');
  b.type = 'button';
  b.className = cls;
  b.textContent = text;
  b.addEventListener('click', onClick);
  return b;
}

// actions returns the rename and delete buttons of one clip or playlist.
//   o: { kind: 'clip' | 'list', id, name, path, field: 'title' | 'name',
//        nameEl (the element showing the name), api, done(msg), fail(msg) }
export function actions(o) {
  const box = document.createElement('span');
  box.className = 'row-actions';
  const rest = () => {
    box.replaceChildren(
      button(t('cm.rename'), 'small rename-btn', rename),
      button(t('cm.delete'), 'small delete-btn', ask),
    );
  };
  const rename = () => {
    const input = document.createElement('input');
    input.className = 'rename-input';
    input.value = o.name;
    input.maxLength = 200;
    input.setAttribute('aria-label', t('cm.rename'));
    const save = async () => {
      try {
        const x = await o.api('PATCH', o.path, { [o.field]: input.value });
        o.done(t('cm.renamed', { name: x[o.field] }));
      } catch (e) {
        o.fail(errorText(e, o.name));
      }
    };
    input.addEventListener('keydown', (ev) => { if (ev.key === 'Enter') { ev.preventDefault(); save(); } if (ev.key === 'Escape') rest(); });
    box.replaceChildren(input, button(t('cm.save'), 'small primary rename-save', save), button(t('cm.cancel'), 'small', rest));
    input.focus();
  };
  const ask = () => {
    const q = document.createElement('span');
    q.className = 'error';
    q.textContent = t('cm.deleteAsk');
    box.replaceChildren(q, button(t('cm.deleteYes'), 'small danger delete-confirm', del), button(t('cm.cancel'), 'small', rest));
  };
  const del = async () => {
    try {
      await o.api('DELETE', o.path);
      o.done(t(o.kind === 'clip' ? 'cm.deletedClip' : 'cm.deletedList', { name: o.name }));
    } catch (e) {
      rest();
      o.fail(errorText(e, o.name));
    }
  };
  rest();
  return box;
}
