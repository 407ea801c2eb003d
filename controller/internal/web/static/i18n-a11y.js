// Texts for keyboard and screen-reader use of the console (the map's
// markers, the schedule form's map of villages, the loading note), added
// to the dictionaries of i18n.js.
import { dict } from './i18n.js';

Object.assign(dict.zh, {
  'map.aria': '村庄地图：按 Tab 键逐个选中村庄，按回车键查看详情',
  'map.notTargeted': '不在本次范围内',
  'sc.mapAria': '选择目标村的地图：按 Tab 键逐个选中村庄，按回车键或空格键加入或去掉',
  'sc.pin.in': '已在目标内',
  'sc.pin.out': '不在目标内',
  'loading': '正在加载…',
});

Object.assign(dict.en, {
  'map.aria': 'Village map: Tab moves from village to village, Enter shows its details',
  'map.notTargeted': 'not targeted',
  'sc.mapAria': 'Map for picking villages: Tab moves from village to village, Enter or Space adds or removes it',
  'sc.pin.in': 'in the targets',
  'sc.pin.out': 'not in the targets',
  'loading': 'Loading…',
});
