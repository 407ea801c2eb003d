// The audio library: the clips with their length and loudness, uploads
// (WAV or MP3) with a progress bar, a preview player and text to speech.
// app.js calls init once with its helpers and open whenever the view shows.
import { t, fmtTime } from './i18n.js';
import { errorText } from './i18n-errors.js';
import { actions } from './manage.js';

const $ = (id) => document.getElementById(id);

let ctx = null; // { api, may, showError, csrf, OPERATORS }
let uploading = false;

export function init(c) {
  ctx = c;
  $('lib-form').addEventListener('submit', onUpload);
  $('lib-file').addEventListener('change', () => { setProgress(0); $('lib-error').hidden = true; $('lib-msg').hidden = true; });
  $('tts-form').addEventListener('submit', onSpeak);
}

// fmtDuration writes a clip or playlist length: "1.5 秒", or "3:05" from a minute.
export function fmtDuration(ms) {
  const s = (ms ?? 0) / 1000;
  if (s < 60) return t('lib.seconds', { n: s.toFixed(1) });
  const whole = Math.round(s);
  const h = Math.floor(whole / 3600), m = Math.floor((whole % 3600) / 60), sec = String(whole % 60).padStart(2, '0');
  return h ? `${h}:${String(m).padStart(2, '0')}:${sec}` : `${m}:${sec}`;
}

function fmtDB(v, unit) {
  if (v === null || v === undefined) return t('lib.unmeasured');
  return (unit === 'dB' && v > 0 ? '+' : '') + v.toFixed(1) + ' ' + unit;
}

export async function open() {
  const op = ctx.may(ctx.OPERATORS);
  $('lib-form').hidden = !op;
  $('tts-form').hidden = !op;
  busy('view-library', true);
  try {
    await refresh();
  } catch (e) {
    ctx.showError(e.message);
  } finally {
    busy('view-library', false);
  }
}

// busy marks a view as loading (aria-busy) until its data is in.
export function busy(id, on) {
  if (on) $(id).setAttribute('aria-busy', 'true'); else $(id).removeAttribute('aria-busy');
}

async function refresh() {
  const data = await ctx.api('GET', '/api/v1/audio');
  const clips = (data.audio ?? []).slice().sort((a, b) => b.id - a.id);
  $('lib-count').textContent = t('lib.count', { n: clips.length });
  const td = (text, cls) => {
    const c = document.createElement('td');
    c.textContent = text;
    if (cls) c.className = cls;
    return c;
  };
  $('lib-rows').replaceChildren(...clips.map((a) => {
    const tr = document.createElement('tr');
    tr.dataset.id = a.id;
    const title = td(a.title || '#' + a.id, 'title');
    const dur = td(fmtDuration(a.duration_ms), 'dur num');
    dur.dataset.ms = a.duration_ms;
    const lufs = td(fmtDB(a.loudness_lufs, 'LUFS'), 'lufs num');
    if (a.loudness_lufs !== null && a.loudness_lufs !== undefined) lufs.dataset.lufs = a.loudness_lufs;
    const gain = td(fmtDB(a.gain_db, 'dB'), 'gain num');
    const play = document.createElement('td');
    const b = document.createElement('button');
    b.type = 'button';
    b.className = 'preview-btn';
    b.textContent = t('lib.preview');
    b.addEventListener('click', () => preview(a));
    play.append(b);
    if (ctx.may(ctx.OPERATORS)) play.append(' ', clipActions(a, title));
    tr.append(td('#' + a.id, 'num'), title, dur, lufs, gain, td(fmtTime(a.created_at)), td(a.created_by_name || a.created_by || '—', 'by'), play);
    return tr;
  }));
  if (!clips.length) {
    const tr = document.createElement('tr');
    const c = td(t('lib.empty'), 'empty');
    c.colSpan = 8;
    tr.append(c);
    $('lib-rows').append(tr);
  }
}

// clipActions renames and deletes a clip (manage.js); the answer shows
// above the table.
function clipActions(a, nameEl) {
  const note = (id, msg) => {
    for (const x of ['lib-manage-msg', 'lib-manage-error']) $(x).hidden = x !== id;
    $(id).textContent = msg;
  };
  return actions({
    kind: 'clip', id: a.id, name: a.title || '#' + a.id, path: `/api/v1/audio/${a.id}`, field: 'title', nameEl, api: ctx.api,
    done: (msg) => { note('lib-manage-msg', msg); refresh().catch((e) => ctx.showError(e.message)); },
    fail: (msg) => note('lib-manage-error', msg),
  });
}

// preview loads the clip, exactly as stored, into the page's player.
function preview(a) {
  const p = $('lib-player');
  p.src = `/api/v1/audio/${a.id}/content`;
  p.dataset.id = a.id;
  $('lib-now').textContent = t('lib.nowPlaying', { title: a.title || '#' + a.id });
  $('lib-preview').hidden = false;
  // Playing needs the user's gesture, which the click is; if the browser
  // still refuses, the player's own controls remain.
  p.play().catch(() => {});
}

function setProgress(pct) {
  const bar = $('lib-progress');
  bar.value = pct;
  bar.dataset.pct = pct;
  $('lib-pct').textContent = pct + '%';
}

function uploadError(msg) {
  const e = $('lib-error');
  e.textContent = t('lib.failed', { msg });
  e.hidden = false;
}

// onUpload sends the file with XMLHttpRequest, whose upload events give a
// true progress bar (fetch has none), with the CSRF header api() sends.
function onUpload(ev) {
  ev.preventDefault();
  if (uploading) return;
  const file = $('lib-file').files[0];
  $('lib-error').hidden = true;
  $('lib-msg').hidden = true;
  if (!file) { uploadError(t('lib.err.noFile')); return; }
  const fd = new FormData();
  const title = $('lib-title').value.trim();
  if (title) fd.append('title', title);
  fd.append('file', file, file.name);
  const xhr = new XMLHttpRequest();
  xhr.open('POST', '/api/v1/audio');
  xhr.setRequestHeader('Accept', 'application/json');
  xhr.setRequestHeader('X-CSRF-Token', ctx.csrf());
  xhr.responseType = 'json';
  xhr.upload.addEventListener('progress', (e) => { if (e.lengthComputable && e.total > 0) setProgress(Math.floor((e.loaded * 100) / e.total)); });
  // The whole body has been sent; the server now converts and measures it.
  xhr.upload.addEventListener('load', () => { setProgress(100); $('lib-pct').textContent = '100% · ' + t('lib.processing'); });
  xhr.addEventListener('load', async () => {
    uploading = false;
    $('lib-upload').disabled = false;
    const data = xhr.response;
    if (xhr.status === 200 || xhr.status === 201) {
      setProgress(100);
      const m = $('lib-msg');
      m.textContent = t(xhr.status === 201 ? 'lib.uploaded' : 'lib.duplicate', { title: data.title, dur: fmtDuration(data.duration_ms), lufs: fmtDB(data.loudness_lufs, 'LUFS') });
      m.hidden = false;
      $('lib-form').reset();
      $('lib-progress').dataset.done = data.id;
      try { await refresh(); } catch (e) { ctx.showError(e.message); }
      return;
    }
    setProgress(0);
    let msg = errorText(data?.error) || xhr.statusText;
    if (xhr.status === 403) msg = t('err.forbidden') + ': ' + msg;
    if (xhr.status === 401) msg = t('err.session');
    const retry = xhr.getResponseHeader('Retry-After');
    if (xhr.status === 503 && retry) { uploadError(t('lib.busy', { s: retry })); return; }
    uploadError(msg);
  });
  xhr.addEventListener('error', () => { uploading = false; $('lib-upload').disabled = false; setProgress(0); uploadError(t('err.network')); });
  uploading = true;
  $('lib-upload').disabled = true;
  setProgress(0);
  xhr.send(fd);
}

async function onSpeak(ev) {
  ev.preventDefault();
  const err = $('tts-error');
  const msg = $('tts-msg');
  err.hidden = true;
  msg.hidden = true;
  const text = $('tts-text').value.trim();
  if (!text) { err.textContent = t('tts.err.empty'); err.hidden = false; return; }
  const btn = $('tts-submit');
  btn.disabled = true;
  msg.textContent = t('tts.working');
  msg.hidden = false;
  try {
    const body = { text };
    const title = $('tts-title').value.trim();
    if (title) body.title = title;
    const a = await ctx.api('POST', '/api/v1/audio/tts', body);
    msg.textContent = t('tts.done', { title: a.title, dur: fmtDuration(a.duration_ms) });
    msg.dataset.id = a.id;
    $('tts-form').reset();
    await refresh();
  } catch (e) {
    msg.hidden = true;
    // 503: the controller has no speech synthesizer; its message says what to install.
    if (e.status === 503 && e.retryAfter) err.textContent = t('lib.busy', { s: e.retryAfter });
    else err.textContent = e.status === 503 ? t('tts.unavailable', { msg: e.message }) : t('lib.failed', { msg: e.message });
    err.hidden = false;
  } finally {
    btn.disabled = false;
  }
}
