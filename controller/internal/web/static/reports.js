// Coverage reports: for a range of days, every broadcast and schedule
// occurrence with how many villages played it and how, the townships, and
// why each village that did not play did not; a CSV export (the API's) and
// a printable page. app.js calls init once with its helpers and open when
// the view shows.
import { t, fmtTime, getLang, timeZone, reasonText, getCounty } from './i18n.js';

const $ = (id) => document.getElementById(id);

let ctx = null; // { api, showError, loadVillages }
let report = null;

// The columns of the tables, in order: the API's summary fields.
const COLS = ['played_by_box', 'played_by_hand', 'partial', 'failed', 'missed', 'offline', 'awaiting_confirmation', 'pending', 'cancelled', 'expired', 'rejected'];

export function init(c) {
  ctx = c;
  $('rp-form').addEventListener('submit', (e) => {
    e.preventDefault();
    location.hash = '#reports?' + query().toString();
  });
  $('rp-print').addEventListener('click', () => { location.hash = '#reports?' + query().toString() + '&print=1'; });
  $('rp-print-now').addEventListener('click', () => window.print());
  $('rp-back').addEventListener('click', () => { location.hash = '#reports?' + query().toString(); });
  $('rp-county').addEventListener('change', () => { localStorage.setItem('cx.county', $('rp-county').value.trim()); });
}

// today is the county's date, YYYY-MM-DD.
export function today() {
  return new Intl.DateTimeFormat('en-CA', { timeZone, year: 'numeric', month: '2-digit', day: '2-digit' }).format(new Date());
}

function query() {
  const q = new URLSearchParams();
  q.set('from', $('rp-from').value || today());
  q.set('to', $('rp-to').value || $('rp-from').value || today());
  if ($('rp-town').value) q.set('township', $('rp-town').value);
  return q;
}

export async function open(params) {
  const printing = params.get('print') === '1';
  document.body.classList.toggle('printable', printing);
  $('rp-from').value = params.get('from') || $('rp-from').value || today();
  $('rp-to').value = params.get('to') || $('rp-to').value || $('rp-from').value;
  try {
    const villages = await ctx.loadVillages();
    const towns = [...new Set(villages.map((v) => v.township))].sort();
    const sel = $('rp-town');
    const keep = params.get('township') ?? sel.value;
    sel.replaceChildren(new Option(t('vl.any'), ''), ...towns.map((n) => new Option(n, n)));
    sel.value = towns.includes(keep) ? keep : '';
    const q = query();
    report = await ctx.api('GET', '/api/v1/reports/coverage?' + q.toString());
    for (const [id, extra] of [['rp-csv', ''], ['rp-csv-villages', '&detail=villages']]) {
      $(id).href = '/api/v1/reports/coverage?' + q.toString() + '&format=csv&lang=' + getLang() + extra;
    }
    // The controller's county name heads the report; the field someone
    // types in (kept in this browser) only stands in while it is unset.
    const county = getCounty();
    $('rp-county-name').textContent = county;
    $('rp-county-name').hidden = !county;
    $('rp-county').hidden = !!county;
    if (!county && !$('rp-county').value) $('rp-county').value = localStorage.getItem('cx.county') || countyGuess(villages);
    render(printing);
  } catch (e) {
    ctx.showError(e.message);
  }
}

// leave is called when another view shows.
export function leave() { document.body.classList.remove('printable'); }

// countyGuess names the county by the code its villages share (the first
// six digits of a village code are its county's), until someone types the
// name.
function countyGuess(villages) {
  const codes = new Set(villages.map((v) => v.code.slice(0, 6)));
  return codes.size === 1 ? t('rp.countyCode', { code: [...codes][0] }) : '';
}

function td(text, cls, key) {
  const c = document.createElement('td');
  c.textContent = text;
  if (cls) c.className = cls;
  if (key) c.dataset.k = key;
  return c;
}

function itemName(it) {
  const kind = t('rp.kind.' + it.kind, { id: it.id });
  const ev = it.event_type ? ' · ' + t('ev.' + it.event_type) : '';
  return `${kind}${ev} · ${it.title}` + (it.test ? ' · ' + t('rp.test') : '');
}

function render(printing) {
  const r = report;
  $('rp-range').textContent = t('rp.range', { from: r.from, to: r.to }) + (r.township ? ' · ' + r.township : '');
  $('rp-generated').textContent = t('rp.generated', { at: fmtTime(r.generated_at) });
  const tot = $('rp-total');
  tot.textContent = t('rp.total', { played: r.totals.played, targeted: r.totals.targeted });
  tot.dataset.played = r.totals.played;
  tot.dataset.targeted = r.totals.targeted;
  $('rp-count').textContent = t('rp.count', { n: r.items.length });

  $('rp-rows').replaceChildren(...r.items.map((it) => {
    const tr = document.createElement('tr');
    tr.dataset.kind = it.kind;
    tr.dataset.id = it.id;
    tr.dataset.at = it.at;
    if (!it.counted) tr.className = 'uncounted';
    const head = td(t('map.headline', { played: it.played, targeted: it.targeted }), 'headline-cell');
    head.dataset.played = it.played;
    head.dataset.targeted = it.targeted;
    const state = td(it.reject_reason ? t('rp.stateWhy', { state: t('state.' + it.state), reason: it.reject_reason }) : t('state.' + it.state), 'state-cell');
    const what = td(itemName(it), 'what');
    const when = document.createElement('div');
    when.className = 'when';
    when.textContent = fmtTime(it.at);
    what.prepend(when);
    tr.append(what, head, state, td(it.targeted, 'num', 'targeted'), ...COLS.map((k) => td(it[k], 'num' + (it[k] ? '' : ' zero'), k)));
    return tr;
  }));
  if (!r.items.length) {
    const tr = document.createElement('tr');
    const c = td(t('rp.none'));
    c.colSpan = 4 + COLS.length;
    tr.append(c);
    $('rp-rows').append(tr);
  }

  // Day by day, when the range has more than one.
  $('rp-days-box').hidden = r.days.length < 2;
  $('rp-days').replaceChildren(...r.days.map((d) => {
    const tr = document.createElement('tr');
    tr.dataset.date = d.date;
    tr.append(td(d.date), td(`${d.played} / ${d.targeted}`, 'num'), td(d.items, 'num', 'items'), ...COLS.map((k) => td(d[k], 'num' + (d[k] ? '' : ' zero'), k)));
    return tr;
  }));

  $('rp-towns').replaceChildren(...r.townships.map((tw) => {
    const tr = document.createElement('tr');
    tr.dataset.township = tw.name;
    const head = td(`${tw.played} / ${tw.targeted}`, 'num');
    tr.append(td(tw.name), head, ...COLS.map((k) => td(tw[k], 'num' + (tw[k] ? '' : ' zero'), k)));
    return tr;
  }));

  // Why each village did not play, item by item: of the items that
  // count (a rejected or test broadcast was never meant to play).
  const missing = r.items.filter((it) => it.counted && it.not_played.length);
  $('rp-notplayed').replaceChildren(...(missing.length ? missing.map((it) => {
    const d = document.createElement('details');
    d.dataset.kind = it.kind;
    d.dataset.id = it.id;
    d.open = printing || missing.length <= 3;
    const s = document.createElement('summary');
    s.textContent = `${fmtTime(it.at)} · ${itemName(it)} · ${t('rp.notPlayedN', { n: it.not_played.length })}`;
    const table = document.createElement('table');
    table.className = 'vtable';
    const rows = it.not_played.map((v) => {
      const tr = document.createElement('tr');
      tr.dataset.code = v.code;
      tr.append(td(v.name), td(v.township), td(t('rp.class.' + v.class), 'class ' + v.class), td(reasonText(v) || '—', 'reason'));
      return tr;
    });
    table.append(...rows);
    const wrap = document.createElement('div');
    wrap.className = 'table-wrap';
    wrap.append(table);
    d.append(s, wrap);
    return d;
  }) : [Object.assign(document.createElement('p'), { textContent: t('rp.allPlayed') })]));
}
