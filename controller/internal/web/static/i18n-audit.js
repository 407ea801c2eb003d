// The audit log's details in the reader's language: a template per action
// (au.d.<action>), filled from the entry's params, times in county time.
// The English templates are the server's (package audit), word for word,
// with the same placeholders as the Chinese ones (TestAuditTexts).
//
// Template rules, as the server's: {name} is that parameter; a part in
// [ ] is kept only when every parameter it names is set, and {name?} names
// one without showing it (a yes/no parameter); separators left at either
// end are dropped.
import { dict, t, fmtTime } from './i18n.js';
import { errorText } from './i18n-errors.js';

Object.assign(dict.zh, {
  // The actions i18n.js does not name.
  'au.act.user.create': '新建用户', 'au.act.user.update': '修改用户', 'au.act.user.delete': '删除用户',
  'au.act.user.password_changed': '修改密码', 'au.act.user.password_change_failed': '修改密码失败',
  'au.act.token.create': '创建令牌', 'au.act.token.revoke': '吊销令牌',
  'au.act.village.import': '导入村庄', 'au.act.village.update': '修改村庄', 'au.act.village.enroll_token': '签发注册令牌',
  'au.act.audio.upload': '上传音频', 'au.act.audio.upload_duplicate': '重复上传音频', 'au.act.audio.tts': '语音合成',
  'au.act.audio.tts_duplicate': '重复语音合成', 'au.act.audio.rename': '音频改名', 'au.act.audio.delete': '删除音频',
  'au.act.playlist.update': '修改节目单', 'au.act.playlist.delete': '删除节目单',
  'au.act.schedule.create': '新建排程', 'au.act.schedule.withdraw': '撤回排程',
  'au.act.cap.alert': 'CAP 预警', 'au.act.cap.cancel': 'CAP 取消',
  'au.act.ebd.received': '上级平台数据包', 'au.act.ebd.refused': '上级平台数据包（拒收）', 'au.act.ebd.replayed': '上级平台数据包（重复）',
  'au.act.ebd.terminal': '修改终端资源编码', 'au.act.ebd': '上级平台',

  'au.d.login': '[控制台{console?}]登录，会话令牌 token/{token}，有效至 {expires_at}',
  'au.d.login.failed': '[控制台：{console?}]{error}',
  'au.d.logout': '[从控制台退出{console?}]',
  'au.d.denied': '[角色 {role}：]{error}',
  'au.d.login_throttle.clear': '[全部来源{all?}][用户 {user}][，来源 {source}]：已解除 {cleared} 条',
  'au.d.user.create': '{username}（{role}[，{village}]）[，已停用{disabled?}]',
  'au.d.user.update': '{username}（{role}[，{village}]）[，已停用{disabled?}][，已重设密码{password_changed?}]',
  'au.d.user.delete': '',
  'au.d.user.password_changed': '本人修改了密码，所有登录已退出',
  'au.d.user.password_change_failed': '当前密码不对',
  'au.d.token.create': '{name}（{role}），代表 {principal}',
  'au.d.token.revoke': '',
  'au.d.village.import': '新增 {created} 个，更新 {updated} 个，共 {total} 个村',
  'au.d.village.update': '[村名 “{name_from}” → “{name_to}”，][乡镇 “{township_from}” → “{township_to}”，][纬度 {lat_from} → {lat_to}，][经度 {lon_from} → {lon_to}，][设备 {device_from} → {device_to}][没有改动{unchanged?}]',
  'au.d.village.enroll_token': '[为更换广播盒，{replacement?}]注册令牌有效期至 {expires_at}',
  'au.d.agent.enroll': '广播盒程序版本 {version}',
  'au.d.agent.revoke': '凭据已吊销，连接已断开，未用的注册令牌已作废',
  'au.d.config.put': '[音量 {volume}%][；静音时段 {quiet_hours}][；时区 {timezone}][清除了设置{unset?}]，发往 {groups}',
  'au.d.audio.upload': '“{title}” {sha256}，{duration_ms} 毫秒，来自 {source}',
  'au.d.audio.upload_duplicate': '与已有音频相同：{sha256}',
  'au.d.audio.tts': '“{title}” {sha256}，{duration_ms} 毫秒，语音 {voice} 合成',
  'au.d.audio.tts_duplicate': '与已有音频相同：{sha256}',
  'au.d.audio.rename': '“{title_from}” → “{title_to}”',
  'au.d.audio.delete': '“{title}”',
  'au.d.playlist.create': '“{name}”，{items} 段',
  'au.d.playlist.update': '“{name}”，{items} 段，间隔 {gap_ms} 毫秒',
  'au.d.playlist.delete': '“{name}”',
  'au.d.schedule.create': '节目单 #{playlist}，[一次：{once_at}][{times}][，{weekdays}][，自 {start_date} 起][，至 {end_date}][，{except_dates} 除外]（{timezone}），发往 {groups}',
  'au.d.schedule.withdraw': '发往 {groups}',
  'au.d.broadcast.create': '[【演练/测试】{test?}]{priority}，{severity}[，{event_type}]，“{content}”[（音频 #{audio}）][（节目单 #{playlist}）]，发往 {groups}[，{starts_at} 开始]，{expires_at} 截止[，需审批{needs_approval?}]',
  'au.d.broadcast.approve': '[【演练/测试】{test?}]{priority}，{severity}[，{event_type}]，“{content}”[（音频 #{audio}）][（节目单 #{playlist}）]，发往 {groups}[，{starts_at} 开始]，{expires_at} 截止[，需审批{needs_approval?}]',
  'au.d.broadcast.reject': '驳回理由：{reason}',
  'au.d.broadcast.cancel': '发往 {groups}',
  'au.d.broadcast.resend': '发往 {groups}',
  'au.d.confirmation.create': '[广播 #{broadcast}][排程 #{schedule}（{occurrence_at}）]，{played_at} 人工播放[；{note}]',
  'au.d.cap.alert': '[已拒绝：{error}][重复的消息：已于 {received_at} 收到（来自 {received_by}）并处理过，不再处理][{status} {msg_type}，发出于 {sent_at}][；{priority}，{severity}][，{event_type}][，地区编码 {geocodes}][：广播 #{broadcast}（{state}）][；取消了广播 {cancelled}][；{note}]',
  'au.d.cap.cancel': '[已拒绝：{error}][重复的消息：已于 {received_at} 收到（来自 {received_by}）并处理过，不再处理][{status} {msg_type}，发出于 {sent_at}][；{priority}，{severity}][，{event_type}][，地区编码 {geocodes}][：广播 #{broadcast}（{state}）][；取消了广播 {cancelled}][；{note}]',
  'au.d.ebd.received': '{type} {ebdid}，来自 {src}：结果 {code}[：广播 #{broadcast}]',
  'au.d.ebd.refused': '[{type} ][{ebdid} ][来自 {src} ]已拒收，结果 {code}：{error}',
  'au.d.ebd.replayed': '{type} {ebdid}，来自 {src}，重复收到：按第一次的结果回复（结果 {code}）[，广播 #{broadcast}]',
  'au.d.ebd.terminal': '终端资源编码 {from} → {to}[（恢复为按村代码生成的编码{derived?}）]',
});

Object.assign(dict.en, {
  'au.act.user.create': 'User created', 'au.act.user.update': 'User changed', 'au.act.user.delete': 'User deleted',
  'au.act.user.password_changed': 'Password changed', 'au.act.user.password_change_failed': 'Password change failed',
  'au.act.token.create': 'Token created', 'au.act.token.revoke': 'Token revoked',
  'au.act.village.import': 'Villages imported', 'au.act.village.update': 'Village changed', 'au.act.village.enroll_token': 'Enrollment token issued',
  'au.act.audio.upload': 'Audio uploaded', 'au.act.audio.upload_duplicate': 'Audio uploaded again', 'au.act.audio.tts': 'Speech made',
  'au.act.audio.tts_duplicate': 'Speech made again', 'au.act.audio.rename': 'Audio renamed', 'au.act.audio.delete': 'Audio deleted',
  'au.act.playlist.update': 'Playlist changed', 'au.act.playlist.delete': 'Playlist deleted',
  'au.act.schedule.create': 'Schedule made', 'au.act.schedule.withdraw': 'Schedule withdrawn',
  'au.act.cap.alert': 'CAP alert', 'au.act.cap.cancel': 'CAP cancel',
  'au.act.ebd.received': 'upper-platform packet', 'au.act.ebd.refused': 'upper-platform packet refused', 'au.act.ebd.replayed': 'upper-platform packet repeated',
  'au.act.ebd.terminal': 'Terminal code changed', 'au.act.ebd': 'upper platform',

  'au.d.login': '[console {console?}]session token/{token} until {expires_at}',
  'au.d.login.failed': '[console: {console?}]{error}',
  'au.d.logout': '[console{console?}]',
  'au.d.denied': '[role {role}: ]{error}',
  'au.d.login_throttle.clear': '[every source{all?}][user {user}][ from {source}]: {cleared} cleared',
  'au.d.user.create': '{username} ({role}[ of {village}])[, disabled{disabled?}]',
  'au.d.user.update': '{username} ({role}[ of {village}])[, disabled{disabled?}][, password changed{password_changed?}]',
  'au.d.user.delete': '',
  'au.d.user.password_changed': 'by the user; every session ended',
  'au.d.user.password_change_failed': 'wrong current password',
  'au.d.token.create': '{name} ({role}), acts as {principal}',
  'au.d.token.revoke': '',
  'au.d.village.import': 'created {created}, updated {updated}, total {total}',
  'au.d.village.update': '[name "{name_from}" -> "{name_to}", ][township "{township_from}" -> "{township_to}", ][lat {lat_from} -> {lat_to}, ][lon {lon_from} -> {lon_to}, ][device {device_from} -> {device_to}][no change{unchanged?}]',
  'au.d.village.enroll_token': '[for a replacement box; {replacement?}]expires {expires_at}',
  'au.d.agent.enroll': 'agent version {version}',
  'au.d.agent.revoke': 'credentials revoked, sessions disconnected, unused enrollment tokens spent',
  'au.d.config.put': '[volume {volume}%][; quiet hours {quiet_hours}][; time zone {timezone}][nothing set{unset?}], to {groups}',
  'au.d.audio.upload': '"{title}" {sha256}, {duration_ms} ms, from {source}',
  'au.d.audio.upload_duplicate': '{sha256}',
  'au.d.audio.tts': '"{title}" {sha256}, {duration_ms} ms, spoken in voice {voice}',
  'au.d.audio.tts_duplicate': '{sha256}',
  'au.d.audio.rename': '"{title_from}" -> "{title_to}"',
  'au.d.audio.delete': '"{title}"',
  'au.d.playlist.create': '"{name}", {items} items',
  'au.d.playlist.update': '"{name}", {items} items, gap {gap_ms} ms',
  'au.d.playlist.delete': '"{name}"',
  'au.d.schedule.create': 'playlist {playlist}, [once at {once_at}][at {times}][ on weekdays {weekdays}][ from {start_date}][ until {end_date}][ except {except_dates}] ({timezone}), groups {groups}',
  'au.d.schedule.withdraw': 'groups {groups}',
  'au.d.broadcast.create': '[TEST {test?}]{priority} severity {severity}[ {event_type}], "{content}"[ (audio {audio})][ (playlist {playlist})], groups {groups}[, starts {starts_at}], expires {expires_at}[, needs approval{needs_approval?}]',
  'au.d.broadcast.approve': '[TEST {test?}]{priority} severity {severity}[ {event_type}], "{content}"[ (audio {audio})][ (playlist {playlist})], groups {groups}[, starts {starts_at}], expires {expires_at}[, needs approval{needs_approval?}]',
  'au.d.broadcast.reject': '{reason}',
  'au.d.broadcast.cancel': 'groups {groups}',
  'au.d.broadcast.resend': 'groups {groups}',
  'au.d.confirmation.create': '[broadcast {broadcast}][schedule {schedule} at {occurrence_at}] played at {played_at} by hand[; {note}]',
  'au.d.cap.alert': '[refused: {error}][duplicate: this message was received at {received_at} (from {received_by}) and acted on then; it is not acted on again][{status} {msg_type} sent {sent_at}][, {priority} severity {severity}][ {event_type}][, geocodes {geocodes}][: broadcast {broadcast} ({state})][, cancelled {cancelled}][; {note}]',
  'au.d.cap.cancel': '[refused: {error}][duplicate: this message was received at {received_at} (from {received_by}) and acted on then; it is not acted on again][{status} {msg_type} sent {sent_at}][, {priority} severity {severity}][ {event_type}][, geocodes {geocodes}][: broadcast {broadcast} ({state})][, cancelled {cancelled}][; {note}]',
  'au.d.ebd.received': '{type} {ebdid} from {src}: result {code}[: broadcast {broadcast}]',
  'au.d.ebd.refused': '[{type} ][{ebdid} ][from {src} ]refused, result {code}: {error}',
  'au.d.ebd.replayed': '{type} {ebdid} from {src} received again: answered as the first time (result {code})[, broadcast {broadcast}]',
  'au.d.ebd.terminal': 'terminal code {from} -> {to}[ (derived from the village code{derived?})]',
});

// Parameters whose values are words of the console's dictionaries.
const WORDS = {
  role: 'role.', priority: 'priority.', severity: 'em.sev.', event_type: 'ev.', state: 'state.',
  device_from: 'device.', device_to: 'device.',
};

// value says one parameter in the console's language.
function value(k, v, p) {
  if (k === 'at' || k.endsWith('_at')) return fmtTime(v);
  if (k === 'error') return errorText({ reason: p.error_reason, params: p, message: v });
  if (k === 'groups') return v.split(' ').map((g) => (g === 'all' ? t('targets.all') : g)).join('、');
  if (k === 'weekdays') return v.split(' ').map((d) => t('wd.' + d)).join('、');
  const w = WORDS[k];
  return w && (w + v) in dict.zh ? t(w + v) : v;
}

const ends = /^[\s,;:，；：、]+|[\s,;:，；：、]+$/g;

// fill fills a template with params p by the rules above.
export function fill(tmpl, p) {
  const set = (k) => p[k] != null && p[k] !== '';
  return tmpl
    .replace(/\[([^[\]]*)\]/g, (m, part) => ([...part.matchAll(/\{(\w+)\??\}/g)].every(([, k]) => set(k)) ? part : ''))
    .replace(/\{(\w+)(\??)\}/g, (m, k, q) => (q || !set(k) ? '' : value(k, p[k], p)))
    .replace(ends, '');
}

// auditText says what an audit entry records, in the console's language;
// the stored English detail for an entry written before parameters were
// kept, or an action this console does not know.
export function auditText(e) {
  const key = 'au.d.' + e.action;
  if (!e.params || !(key in dict.zh)) return e.detail || '';
  return fill(t(key), e.params);
}
