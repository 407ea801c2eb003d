// The coverage map: villages as markers at their coordinates over a base
// layer drawn from the village data alone (each township's convex hull and
// its name), so it works with no tiles and no network.
import { t } from './i18n.js';
import './i18n-a11y.js';

const SVG = 'http://www.w3.org/2000/svg';

// STATUS_KEYS are the map's statuses, in legend order.
export const STATUS_KEYS = ['played_box', 'played_hand', 'playing', 'partial', 'failed', 'missed', 'offline', 'awaiting', 'pending', 'cancelled', 'rejected', 'expired'];

export const COLORS = {
  played_box: '#1e9e45',
  played_hand: '#0f8b8d',
  playing: '#2f6fd6',
  partial: '#f08c00',
  failed: '#d62828',
  missed: '#5c2a2a',
  offline: '#495057',
  awaiting: '#8e44ad',
  pending: '#adb5bd',
  cancelled: '#c9a66b',
  rejected: '#7a4a00',
  expired: '#8d7b68',
  none: '#ffffff',
};

// GLYPHS draws each status's own symbol inside its marker (and in the
// legend), so statuses are told apart by shape, not by colour alone
// (box-played and hand-confirmed greens are 1.18:1 to each other). d is an
// SVG path in a box from -5 to 5; ink is at least 3:1 on the status's
// colour (controller/internal/web/contrast_test.go checks both).
export const GLYPHS = {
  played_box: { ink: '#ffffff', d: 'M-4.5 0.5 L-1.5 3.5 L4.5 -3.5' },
  played_hand: { ink: '#ffffff', d: 'M-4.5 -1.5 L-1.8 1.2 L4.5 -4.5 M-4.5 4 L4.5 4' },
  playing: { ink: '#ffffff', d: 'M-3 -4.5 L5 0 L-3 4.5 Z', solid: true },
  partial: { ink: '#000000', d: 'M0 -5 A5 5 0 0 1 0 5 Z', solid: true },
  failed: { ink: '#ffffff', d: 'M-4 -4 L4 4 M4 -4 L-4 4' },
  missed: { ink: '#ffffff', d: 'M0 -5 L0 1.2 M0 4.2 L0 4.4' },
  offline: { ink: '#ffffff', d: 'M-4.5 0 L4.5 0' },
  awaiting: { ink: '#ffffff', d: 'M-4 -5 L4 -5 L0 0 Z M-4 5 L4 5 L0 0 Z', solid: true },
  pending: { ink: '#000000', d: 'M0 -2.2 A2.2 2.2 0 1 1 0 2.2 A2.2 2.2 0 1 1 0 -2.2 Z', solid: true },
  cancelled: { ink: '#000000', d: 'M-4 4 L4 -4' },
  rejected: { ink: '#ffffff', d: 'M-3.5 -3.5 H3.5 V3.5 H-3.5 Z', solid: true },
  expired: { ink: '#ffffff', d: 'M0 -4.6 A4.6 4.6 0 1 1 -0.01 -4.6 M0 -2.5 L0 0 L2.5 1.5' },
};

// glyph is a status's symbol centred on (x, y): a path around its own
// origin in a translated group, so app.css may scale it (bigger markers on
// a phone) without moving it.
function glyph(key, x, y) {
  const g = GLYPHS[key];
  if (!g) return null;
  const p = el('path', { class: 'glyph' + (g.solid ? ' solid' : ''), d: g.d, fill: g.solid ? g.ink : 'none', stroke: g.solid ? 'none' : g.ink });
  p.dataset.glyph = key;
  const at = el('g', { transform: `translate(${x} ${y})` });
  at.append(p);
  return at;
}

// swatchSVG is the legend's picture of a status: the marker as on the map.
export function swatchSVG(key) {
  const s = el('svg', { class: 'swatch', viewBox: '-10 -10 20 20', 'aria-hidden': 'true', focusable: 'false' });
  s.append(el('circle', { r: '9', fill: COLORS[key], stroke: '#1d232b', 'stroke-width': '1.5' }));
  const g = glyph(key, 0, 0);
  if (g) {
    const p = g.firstChild;
    p.setAttribute('stroke-width', '2.2');
    p.setAttribute('stroke-linecap', 'round');
    p.setAttribute('stroke-linejoin', 'round');
    s.append(g);
  }
  return s;
}

// statusKey maps a village's coverage line (and its presence) to a map status.
export function statusKey(vs, village) {
  const offline = village?.device === 'agent' && village.presence !== 'online';
  switch (vs.status) {
    case 'played': return vs.confirmed_by_hand ? 'played_hand' : 'played_box';
    case 'pending':
      if (vs.reported_at) return 'playing';
      return offline ? 'offline' : 'pending';
    case 'missed': return offline ? 'offline' : 'missed';
    case 'awaiting_confirmation': return 'awaiting';
    case 'partial': case 'failed': case 'cancelled': case 'rejected': case 'expired': return vs.status;
    default: return 'pending';
  }
}

function el(name, attrs) {
  const e = document.createElementNS(SVG, name);
  for (const [k, v] of Object.entries(attrs ?? {})) e.setAttribute(k, v);
  return e;
}

// hull is the convex hull of points (Andrew's monotone chain).
function hull(pts) {
  const p = [...pts].sort((a, b) => a[0] - b[0] || a[1] - b[1]);
  if (p.length < 3) return p;
  const cross = (o, a, b) => (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0]);
  const lower = [];
  for (const q of p) { while (lower.length >= 2 && cross(lower[lower.length - 2], lower[lower.length - 1], q) <= 0) lower.pop(); lower.push(q); }
  const upper = [];
  for (const q of p.reverse()) { while (upper.length >= 2 && cross(upper[upper.length - 2], upper[upper.length - 1], q) <= 0) upper.pop(); upper.push(q); }
  return lower.slice(0, -1).concat(upper.slice(0, -1));
}

const W = 1000;
const PAD = 50;

// project fits the villages into a W-wide box, keeping distances true
// (longitude shrunk by the cosine of the mean latitude).
function projection(vs) {
  const lats = vs.map((v) => v.lat), lons = vs.map((v) => v.lon);
  const minLat = Math.min(...lats), maxLat = Math.max(...lats), minLon = Math.min(...lons), maxLon = Math.max(...lons);
  const k = Math.cos(((minLat + maxLat) / 2) * Math.PI / 180);
  const spanX = Math.max((maxLon - minLon) * k, 1e-6), spanY = Math.max(maxLat - minLat, 1e-6);
  const s = (W - 2 * PAD) / Math.max(spanX, spanY * 1.2);
  const h = Math.max(spanY * s + 2 * PAD, 300);
  return { h, xy: (v) => [PAD + (v.lon - minLon) * k * s, PAD + (maxLat - v.lat) * s] };
}

// drawMap draws villages into svg; statuses maps a village code to its
// status line (villages not targeted have none and are drawn hollow).
export function drawMap(svg, villages, statuses, selected, onPick) {
  const vs = villages.filter((v) => Number.isFinite(v.lat) && Number.isFinite(v.lon));
  // The map is redrawn on every report: keep the keyboard's place.
  const focused = svg.contains(document.activeElement) ? document.activeElement.dataset?.code : null;
  svg.setAttribute('role', 'group');
  svg.setAttribute('aria-label', t('map.aria'));
  svg.replaceChildren();
  if (!vs.length) return;
  const { h, xy } = projection(vs);
  svg.setAttribute('viewBox', `0 0 ${W} ${Math.round(h)}`);

  const towns = new Map();
  for (const v of vs) {
    if (!towns.has(v.township)) towns.set(v.township, []);
    towns.get(v.township).push(xy(v));
  }
  const base = el('g', { class: 'base' });
  const labels = el('g', { class: 'labels' });
  for (const [name, pts] of towns) {
    const hp = hull(pts);
    const poly = el('polygon', { class: 'hull', points: hp.map((p) => p.join(',')).join(' ') });
    base.append(poly);
    const outline = el('polygon', { points: hp.map((p) => p.join(',')).join(' '), fill: 'none', stroke: '#b4c3a5', 'stroke-width': '1', 'stroke-dasharray': '4 4' });
    base.append(outline);
    const cx = pts.reduce((a, p) => a + p[0], 0) / pts.length;
    const top = Math.min(...pts.map((p) => p[1]));
    const label = el('text', { class: 'town-label', x: cx.toFixed(1), y: (top - 16).toFixed(1) });
    label.textContent = name;
    labels.append(label);
  }
  const marks = el('g', { class: 'villages' });
  let refocus = null;
  // Tab goes township by township, then west to east.
  const order = [...vs].sort((a, b) => a.township.localeCompare(b.township, 'zh') || a.lon - b.lon);
  for (const v of order) {
    const [x, y] = xy(v);
    const st = statuses.get(v.code);
    const key = st ? st.key : 'none';
    const label = `${v.name} · ${st ? t('status.' + key) : t('map.notTargeted')} · ${v.township}`;
    // A marker is a button: Tab reaches it, Enter or Space opens its details.
    const m = el('g', { class: 'vm', tabindex: '0', role: 'button', 'aria-label': label });
    m.dataset.code = v.code;
    m.dataset.status = key;
    if (v.code === selected) m.setAttribute('aria-pressed', 'true');
    const cx = x.toFixed(1), cy = y.toFixed(1);
    const c = el('circle', { class: 'v ' + key + (v.code === selected ? ' sel' : ''), cx, cy, r: st ? '9' : '6', fill: COLORS[key] });
    c.dataset.code = v.code;
    c.dataset.status = key;
    const title = el('title');
    title.textContent = label;
    c.append(title);
    // The ring after the marker: '#map circle' still finds a visible one first.
    m.append(c, el('circle', { class: 'ring', cx, cy, r: st ? '14' : '11' }));
    const g = glyph(key, cx, cy);
    if (g) m.append(g);
    m.addEventListener('click', () => onPick(v.code));
    m.addEventListener('keydown', (e) => {
      if (e.key === 'Enter' || e.key === ' ') { e.preventDefault(); onPick(v.code); }
    });
    if (v.code === focused) refocus = m;
    marks.append(m);
  }
  svg.append(base, marks, labels);
  refocus?.focus({ preventScroll: true });
}
