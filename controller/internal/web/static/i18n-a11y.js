// Texts for keyboard and screen-reader use of the console (the map's
// markers, the loading note), added to the dictionaries of i18n.js.
import { dict } from './i18n.js';

Object.assign(dict.zh, {
  'map.aria': '村庄地图：按 Tab 键逐个选中村庄，按回车键查看详情',
  'map.notTargeted': '不在本次范围内',
  'loading': '正在加载…',
});

Object.assign(dict.en, {
  'map.aria': 'Village map: Tab moves from village to village, Enter shows its details',
  'map.notTargeted': 'not targeted',
  'loading': 'Loading…',
});
