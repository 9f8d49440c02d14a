// inroute agent console. Plain ES2020, no build step, no dependencies.
//
// Customer content is only ever put into the page as text (textContent or
// text nodes), never parsed as HTML markup.

'use strict';

// ---------------------------------------------------------------- strings

const STRINGS = {
  en: {
    console: 'agent console',
    signInTitle: 'Sign in',
    signInHelp: 'Enter your agent token (the token of your entry under agents: in config.yaml).',
    token: 'Agent token',
    signIn: 'Sign in',
    signingIn: 'Signing in…',
    badToken: 'This token was not accepted (401 unauthorized). Check it and try again.',
    sessionEnded: 'Your token is no longer accepted (401); please sign in again.',
    signOut: 'Sign out',
    role_agent: 'agent',
    role_admin: 'admin',
    openOf: '{open}/{capacity} open',
    takeNext: 'Take next',
    stopWaiting: 'Stop waiting',
    waitForWork: 'Wait for work (long-poll)',
    waitingForWork: 'Waiting for work…',
    taking: 'Taking…',
    nothingWaiting: 'Nothing waiting in your queues.',
    stoppedWaiting: 'Stopped waiting.',
    atCapacity: 'You are at capacity: resolve, release or transfer a conversation first.',
    took: 'Took conversation #{id}.',
    queues: 'Queues',
    queue: 'Queue',
    waiting: 'Waiting',
    oldest: 'Oldest',
    sla: 'SLA',
    atRiskN: '{n} at risk',
    breachedN: '{n} breached',
    noQueues: 'No queues.',
    agents: 'Agents',
    online: 'online',
    offline: 'offline',
    atRisk: 'At risk',
    breached: 'breached',
    dueIn: 'due in {t}',
    none: 'None',
    recent: 'Opened this session',
    search: 'Find a customer',
    searchPh: 'E-mail, phone, user id or contact id',
    searchBtn: 'Search',
    noResults: 'No conversations found.',
    emptyTitle: 'No conversation open',
    emptyHelp: 'Press “Take next” to get the most urgent waiting conversation of your queues.',
    u_urgent: 'urgent',
    u_high: 'high',
    u_normal: 'normal',
    u_low: 'low',
    s_queued: 'queued',
    s_assigned: 'assigned',
    s_waiting: 'waiting on customer',
    s_resolved: 'resolved',
    s_open: 'open',
    unassigned: 'unassigned',
    assignee: 'Assignee',
    leaseLeft: 'lease {t}',
    leaseExpired: 'lease expired',
    replyDue: 'reply due in {t}',
    replyOverdue: 'reply overdue by {t}',
    slaBreached: 'SLA breached',
    resolve: 'Resolve',
    release: 'Release',
    reopen: 'Reopen',
    transfer: 'Transfer',
    transferTo: 'Transfer to…',
    toQueues: 'Queues',
    toAgents: 'Agents',
    setUrgency: 'Set urgency',
    refresh: 'Refresh',
    contact: 'Contact',
    unnamed: 'Unnamed customer',
    verified: 'verified',
    whyHere: 'Why it is here',
    history: 'Other conversations',
    noHistory: 'None.',
    customer: 'Customer',
    replyBy: 'Reply',
    autoReply: 'auto-reply',
    d_queued: 'queued',
    d_sent: 'sent',
    d_delivered: 'delivered',
    d_failed: 'failed',
    routing: 'Routing: {queue} · {urgency}',
    rulesVersion: 'rules {v}',
    attachments: 'Attachments',
    attach: 'Attach files',
    attachRemove: 'Remove',
    attachRemoveName: 'Remove {name}',
    attachTooBig: '“{name}” is larger than {max}; it was not attached.',
    attachReadFailed: 'Could not read “{name}”.',
    attachReading: 'Still reading the attached files; try again in a moment.',
    attachDownload: 'Download {name}',
    attachLinkOnly: 'not downloadable here',
    sizeB: '{n} B',
    sizeKiB: '{n} KiB',
    sizeMiB: '{n} MiB',
    noText: '(no text)',
    ch_email: 'E-mail',
    ch_sms: 'SMS',
    ch_voice: 'Phone',
    ch_telegram: 'Telegram',
    ch_messenger: 'Messenger',
    ch_wechat: 'WeChat',
    ch_webchat: 'Web chat',
    ch_app: 'App',
    id_email: 'e-mail',
    id_phone: 'phone',
    id_app: 'app user',
    ev_routed: 'routed',
    ev_joined: 'joined the conversation',
    ev_reopened: 'reopened',
    ev_claimed: 'claimed',
    ev_resolved: 'resolved',
    ev_released: 'released',
    ev_transferred: 'transferred',
    ev_note: 'note',
    ev_lease_expired: 'lease expired',
    ev_urgency: 'urgency changed',
    ev_urgency_changed: 'urgency changed',
    ev_contacts_merged: 'contacts merged',
    ev_contacts_unmerged: 'contacts unmerged',
    ev_escalated: 'escalated',
    ev_rules_reloaded: 'routing rules reloaded',
    ev_replied: 'replied',
    ev_renewed: 'lease renewed',
    ev_sla_breached: 'SLA breached',
    ev_sla_escalated: 'SLA escalated',
    ev_delivery: 'delivery',
    byActor: 'by {a}',
    replyTab: 'Reply',
    noteTab: 'Internal note',
    replyPh: 'Write a reply to the customer… (Ctrl+Enter sends)',
    notePh: 'Internal note: only agents see it (Ctrl+Enter adds)',
    sendVia: 'Send via',
    send: 'Send',
    sending: 'Sending…',
    addNote: 'Add note',
    whereTheyWrote: 'where they wrote',
    callBack: 'Call back {v}',
    writeFirst: 'Write a reply first.',
    writeNoteFirst: 'Write a note first.',
    replySent: 'Reply sent on {ch}.',
    replyAlready: 'That reply had already been sent; it was not sent again.',
    noteAdded: 'Note added.',
    did_resolve: 'Conversation #{id} resolved.',
    did_release: 'Conversation #{id} released to its queue.',
    did_reopen: 'Conversation #{id} reopened.',
    did_transfer: 'Conversation #{id} transferred.',
    did_urgency: 'Urgency of #{id} set.',
    pickTarget: 'Pick a queue or an agent to transfer to.',
    error: 'Error',
    code_unauthorized: 'Not signed in',
    code_forbidden: 'Not allowed',
    code_not_found: 'Not found',
    code_at_capacity: 'At capacity',
    code_conflict: 'Not possible now',
    code_invalid_request: 'Invalid request',
    code_invalid_json: 'Invalid request',
    code_unavailable: 'Service unavailable, try again',
    code_network: 'Network error',
    code_internal: 'Server error',
    code_body_too_large: 'Too large',
    code_client: 'Console error',
    errNetwork: 'could not reach the server.',
    errBadJSON: 'the server sent an answer the console cannot read.',
    dismiss: 'Dismiss',
    updated: 'updated {t}',
    started: 'started {t}',
    ageS: '{n}s',
    ageM: '{n}m',
    ageH: '{n}h',
    ageD: '{n}d',
    you: 'you',
  },
  zh: {
    console: '坐席工作台',
    signInTitle: '登录',
    signInHelp: '请输入您的坐席令牌（config.yaml 中 agents: 下您的 token）。',
    token: '坐席令牌',
    signIn: '登录',
    signingIn: '正在登录…',
    badToken: '令牌无效（401 未授权），请检查后重试。',
    sessionEnded: '您的令牌已失效（401），请重新登录。',
    signOut: '退出登录',
    role_agent: '坐席',
    role_admin: '管理员',
    openOf: '处理中 {open}/{capacity}',
    takeNext: '领取下一个',
    stopWaiting: '停止等待',
    waitForWork: '等待新工作（长轮询）',
    waitingForWork: '正在等待新工作…',
    taking: '正在领取…',
    nothingWaiting: '您的队列中暂无待处理会话。',
    stoppedWaiting: '已停止等待。',
    atCapacity: '已达处理上限：请先解决、释放或转交一个会话。',
    took: '已领取会话 #{id}。',
    queues: '队列',
    queue: '队列',
    waiting: '等待',
    oldest: '最久',
    sla: 'SLA',
    atRiskN: '{n} 个临近超时',
    breachedN: '{n} 个已超时',
    noQueues: '暂无队列。',
    agents: '坐席',
    online: '在线',
    offline: '离线',
    atRisk: '临近超时',
    breached: '已超时',
    dueIn: '{t} 后到期',
    none: '无',
    recent: '本次打开过的会话',
    search: '查找客户',
    searchPh: '邮箱、电话、用户 ID 或联系人 ID',
    searchBtn: '搜索',
    noResults: '未找到会话。',
    emptyTitle: '未打开会话',
    emptyHelp: '点击“领取下一个”，获取您队列中最紧急的待处理会话。',
    u_urgent: '紧急',
    u_high: '高',
    u_normal: '普通',
    u_low: '低',
    s_queued: '排队中',
    s_assigned: '已分配',
    s_waiting: '等待客户回复',
    s_resolved: '已解决',
    s_open: '进行中',
    unassigned: '未分配',
    assignee: '处理人',
    leaseLeft: '租约剩余 {t}',
    leaseExpired: '租约已过期',
    replyDue: '{t} 内需回复',
    replyOverdue: '回复已超时 {t}',
    slaBreached: 'SLA 已超时',
    resolve: '解决',
    release: '释放',
    reopen: '重新打开',
    transfer: '转交',
    transferTo: '转交给…',
    toQueues: '队列',
    toAgents: '坐席',
    setUrgency: '设置紧急度',
    refresh: '刷新',
    contact: '联系人',
    unnamed: '未命名客户',
    verified: '已验证',
    whyHere: '路由原因',
    history: '其他会话',
    noHistory: '无。',
    customer: '客户',
    replyBy: '回复',
    autoReply: '自动回复',
    d_queued: '排队发送',
    d_sent: '已发送',
    d_delivered: '已送达',
    d_failed: '发送失败',
    routing: '路由：{queue} · {urgency}',
    rulesVersion: '规则 {v}',
    attachments: '附件',
    attach: '添加附件',
    attachRemove: '移除',
    attachRemoveName: '移除 {name}',
    attachTooBig: '“{name}”超过 {max}，未添加。',
    attachReadFailed: '无法读取“{name}”。',
    attachReading: '附件仍在读取中，请稍后再试。',
    attachDownload: '下载 {name}',
    attachLinkOnly: '无法在此下载',
    sizeB: '{n} 字节',
    sizeKiB: '{n} KiB',
    sizeMiB: '{n} MiB',
    noText: '（无文字）',
    ch_email: '邮件',
    ch_sms: '短信',
    ch_voice: '电话',
    ch_telegram: 'Telegram',
    ch_messenger: 'Messenger',
    ch_wechat: '微信',
    ch_webchat: '网页聊天',
    ch_app: '应用内',
    id_email: '邮箱',
    id_phone: '电话',
    id_app: '应用用户',
    ev_routed: '已路由',
    ev_joined: '并入会话',
    ev_reopened: '已重新打开',
    ev_claimed: '已领取',
    ev_resolved: '已解决',
    ev_released: '已释放',
    ev_transferred: '已转交',
    ev_note: '备注',
    ev_lease_expired: '租约过期',
    ev_urgency: '紧急度已变更',
    ev_urgency_changed: '紧急度已变更',
    ev_contacts_merged: '联系人已合并',
    ev_contacts_unmerged: '联系人已拆分',
    ev_escalated: '已升级',
    ev_rules_reloaded: '路由规则已重新加载',
    ev_replied: '已回复',
    ev_renewed: '租约已续期',
    ev_sla_breached: 'SLA 已超时',
    ev_sla_escalated: 'SLA 已升级',
    ev_delivery: '投递',
    byActor: '操作人 {a}',
    replyTab: '回复',
    noteTab: '内部备注',
    replyPh: '给客户写回复…（Ctrl+Enter 发送）',
    notePh: '内部备注，仅坐席可见（Ctrl+Enter 添加）',
    sendVia: '发送渠道',
    send: '发送',
    sending: '正在发送…',
    addNote: '添加备注',
    whereTheyWrote: '客户来信处',
    callBack: '回电 {v}',
    writeFirst: '请先填写回复内容。',
    writeNoteFirst: '请先填写备注内容。',
    replySent: '回复已通过{ch}发送。',
    replyAlready: '该回复已发送过，未重复发送。',
    noteAdded: '备注已添加。',
    did_resolve: '会话 #{id} 已解决。',
    did_release: '会话 #{id} 已释放回队列。',
    did_reopen: '会话 #{id} 已重新打开。',
    did_transfer: '会话 #{id} 已转交。',
    did_urgency: '会话 #{id} 的紧急度已设置。',
    pickTarget: '请选择要转交的队列或坐席。',
    error: '错误',
    code_unauthorized: '未登录',
    code_forbidden: '无权限',
    code_not_found: '未找到',
    code_at_capacity: '已达上限',
    code_conflict: '当前无法操作',
    code_invalid_request: '请求无效',
    code_invalid_json: '请求无效',
    code_unavailable: '服务暂不可用，请重试',
    code_network: '网络错误',
    code_internal: '服务器错误',
    code_body_too_large: '内容过大',
    code_client: '控制台错误',
    errNetwork: '无法连接服务器。',
    errBadJSON: '服务器返回了无法解析的内容。',
    dismiss: '关闭',
    updated: '更新于 {t}',
    started: '创建于 {t}',
    ageS: '{n}秒',
    ageM: '{n}分钟',
    ageH: '{n}小时',
    ageD: '{n}天',
    you: '您',
  },
};

const URGENCIES = ['urgent', 'high', 'normal', 'low'];
const CHANNELS = ['email', 'sms', 'voice', 'telegram', 'messenger', 'wechat', 'webchat', 'app'];

// ---------------------------------------------------------------- helpers

const $ = (id) => document.getElementById(id);

function storageGet(store, key) {
  try { return store.getItem(key); } catch { return null; }
}
function storageSet(store, key, value) {
  try {
    if (value == null) store.removeItem(key); else store.setItem(key, value);
  } catch { /* storage unavailable: keep going without it */ }
}

let lang = storageGet(localStorage, 'inroute.lang') === 'zh' ? 'zh' : 'en';

function t(key, params) {
  let s = STRINGS[lang][key];
  if (s === undefined) s = STRINGS.en[key];
  if (s === undefined) return key;
  if (params) {
    s = s.replace(/\{(\w+)\}/g, (_, k) => {
      const v = typeof params[k] === 'function' ? params[k]() : params[k];
      return v == null ? '' : String(v);
    });
  }
  return s;
}

// A message shown to the agent is a string or {key, params}; the latter is
// translated again when the language changes.
function say(m) {
  if (m == null) return '';
  return typeof m === 'string' ? m : t(m.key, m.params);
}
// tOr translates key, or falls back to the raw value for unknown ones.
function tOr(key, raw) {
  const s = STRINGS[lang][key] ?? STRINGS.en[key];
  return s === undefined ? String(raw ?? '') : s;
}

// el builds an element. Strings among children become text nodes; attrs
// are set as attributes (never as HTML).
function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  if (attrs) {
    for (const [k, v] of Object.entries(attrs)) {
      if (v == null || v === false) continue;
      if (k === 'class') e.className = v;
      else if (k === 'text') e.textContent = v;
      else if (k.startsWith('on') && typeof v === 'function') e.addEventListener(k.slice(2), v);
      else e.setAttribute(k, v === true ? '' : String(v));
    }
  }
  for (const c of children.flat(Infinity)) {
    if (c == null || c === false) continue;
    e.append(c instanceof Node ? c : String(c));
  }
  return e;
}

function age(seconds) {
  if (seconds == null || !isFinite(seconds)) return '—';
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return t('ageS', { n: s });
  if (s < 3600) return t('ageM', { n: Math.floor(s / 60) });
  if (s < 86400) return t('ageH', { n: Math.floor(s / 3600) });
  return t('ageD', { n: Math.floor(s / 86400) });
}

function parseTime(v) {
  if (!v) return null;
  const d = new Date(v);
  return isNaN(d.getTime()) || d.getFullYear() < 1971 ? null : d;
}

function fmtTime(v) {
  const d = parseTime(v);
  if (!d) return '';
  const loc = lang === 'zh' ? 'zh-CN' : 'en-GB';
  const today = new Date();
  const sameDay = d.toDateString() === today.toDateString();
  const opts = sameDay
    ? { hour: '2-digit', minute: '2-digit', second: '2-digit' }
    : { month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit' };
  return new Intl.DateTimeFormat(loc, opts).format(d);
}

function clock(ms) {
  const s = Math.max(0, Math.floor(ms / 1000));
  const m = Math.floor(s / 60);
  return m >= 60 ? `${Math.floor(m / 60)}:${String(m % 60).padStart(2, '0')}:${String(s % 60).padStart(2, '0')}`
    : `${m}:${String(s % 60).padStart(2, '0')}`;
}

// size says a byte count the way people read it.
function size(n) {
  if (n == null || !isFinite(n) || n < 0) return '';
  if (n < 1024) return t('sizeB', { n });
  if (n < 1024 * 1024) return t('sizeKiB', { n: (n / 1024).toFixed(n < 10 * 1024 ? 1 : 0) });
  return t('sizeMiB', { n: (n / (1024 * 1024)).toFixed(1) });
}

function chLabel(ch) { return tOr('ch_' + ch, ch); }
function urgencyLabel(u) { return tOr('u_' + u, u); }
function statusLabel(s) { return tOr('s_' + s, s); }

// newKey makes an idempotency key; getRandomValues works on plain http too.
function newKey() {
  const b = new Uint8Array(16);
  crypto.getRandomValues(b);
  return 'console-' + Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
}

// The API lives next to the console: /console/ → /v1/...
const ROOT = new URL('../', new URL('.', location.href));
const apiURL = (p) => new URL(p, ROOT).toString();

class ApiError extends Error {
  constructor(status, code, message) {
    super(typeof message === 'string' ? message : say(message));
    this.status = status;
    this.code = code;
    if (typeof message !== 'string') this.msg = message;
  }
}

async function api(method, path, body, opts = {}) {
  const headers = { Accept: 'application/json' };
  const tok = opts.token ?? state.token;
  if (tok) headers.Authorization = 'Bearer ' + tok;
  Object.assign(headers, opts.headers || {});
  const init = { method, headers, signal: opts.signal, cache: 'no-store', credentials: 'omit' };
  if (body !== undefined) {
    headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  let res;
  try {
    res = await fetch(apiURL(path), init);
  } catch (e) {
    if (e && e.name === 'AbortError') throw e;
    throw new ApiError(0, 'network', { key: 'errNetwork' });
  }
  if (res.status === 204) return { status: 204, data: null };
  const text = await res.text();
  let data = null;
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      if (!res.ok) throw new ApiError(res.status, 'http_' + res.status, text.slice(0, 300));
      throw new ApiError(res.status, 'bad_json', { key: 'errBadJSON' });
    }
  }
  if (!res.ok) {
    const e = data && data.error;
    throw new ApiError(res.status, (e && e.code) || 'http_' + res.status, (e && e.message) || res.statusText || String(res.status));
  }
  return { status: res.status, data };
}

// ---------------------------------------------------------------- state

const state = {
  token: storageGet(sessionStorage, 'inroute.token'),
  me: null,
  board: null,
  boardAt: null,
  view: null,
  viewJSON: '',
  taking: false,
  takeAbort: null,
  sending: false,
  reading: 0,
  busy: false,
  timers: [],
  renewTimer: null,
  renewFor: null,
  openDetails: new Set(),
  drafts: loadJSON('inroute.drafts', {}),
  recent: loadJSON('inroute.recent', []),
  tab: 'reply',
};

function loadJSON(key, def) {
  try {
    const v = JSON.parse(storageGet(sessionStorage, key) || 'null');
    return v == null ? def : v;
  } catch { return def; }
}
function saveJSON(key, v) { storageSet(sessionStorage, key, JSON.stringify(v)); }

// ---------------------------------------------------------------- banner

let noticeTimer = null;

function errorText(err) {
  if (err instanceof ApiError) {
    const head = tOr('code_' + err.code, err.code);
    return `${head}${head === err.code ? '' : ` (${err.code})`}: ${err.msg ? say(err.msg) : err.message}`;
  }
  return `${t('error')}: ${(err && err.message) || String(err)}`;
}

function showError(err) {
  if (err && err.name === 'AbortError') return;
  state.lastError = err;
  $('banner-text').textContent = errorText(err);
  $('banner').hidden = false;
}
function clearError() { state.lastError = null; $('banner').hidden = true; $('banner-text').textContent = ''; }

function notice(m) {
  const n = $('notice');
  state.noticeMsg = m;
  n.textContent = say(m);
  n.hidden = false;
  clearTimeout(noticeTimer);
  noticeTimer = setTimeout(() => { n.hidden = true; }, 6000);
}

// handle reports an API error; a 401 ends the session.
function handle(err) {
  if (err && err.name === 'AbortError') return;
  if (err instanceof ApiError && err.status === 401) {
    signOut({ key: 'sessionEnded' });
    return;
  }
  showError(err);
}

window.addEventListener('error', (e) => showError(new ApiError(0, 'client', e.message || 'script error')));
window.addEventListener('unhandledrejection', (e) => handle(e.reason instanceof Error ? e.reason : new ApiError(0, 'client', String(e.reason))));

// ---------------------------------------------------------------- language

function applyLang() {
  document.documentElement.lang = lang === 'zh' ? 'zh-CN' : 'en';
  document.title = `inroute · ${t('console')}`;
  for (const n of document.querySelectorAll('[data-i18n]')) n.textContent = t(n.dataset.i18n);
  for (const n of document.querySelectorAll('[data-i18n-ph]')) n.placeholder = t(n.dataset.i18nPh);
  for (const b of document.querySelectorAll('.lang button')) b.setAttribute('aria-pressed', String(b.dataset.lang === lang));
  renderTakeButton();
  renderMe();
  renderBoard();
  renderRecent();
  if (state.view) renderView(false);
  if (state.takeMsg != null) $('take-status').textContent = say(state.takeMsg);
  if (!$('notice').hidden) $('notice').textContent = say(state.noticeMsg);
  if (state.signinMsg != null) $('signin-error').textContent = say(state.signinMsg);
  if (!$('banner').hidden && state.lastError) $('banner-text').textContent = errorText(state.lastError);
}

function setLang(l) {
  lang = l === 'zh' ? 'zh' : 'en';
  storageSet(localStorage, 'inroute.lang', lang);
  applyLang();
}

// ---------------------------------------------------------------- sign in

async function signIn(token, silent) {
  const btn = $('sign-in');
  setSigninError(null);
  btn.disabled = true;
  btn.textContent = t('signingIn');
  try {
    const { data } = await api('GET', 'v1/me', undefined, { token });
    state.token = token;
    storageSet(sessionStorage, 'inroute.token', token);
    state.me = data;
    enterDesk();
  } catch (e) {
    state.token = null;
    storageSet(sessionStorage, 'inroute.token', null);
    if (e instanceof ApiError && e.status === 401) {
      setSigninError({ key: silent ? 'sessionEnded' : 'badToken' });
    } else {
      setSigninError(errorText(e));
    }
    showSignin();
  } finally {
    btn.disabled = false;
    btn.textContent = t('signIn');
  }
}

function setSigninError(m) {
  const p = $('signin-error');
  state.signinMsg = m;
  p.textContent = say(m);
  p.hidden = m == null;
}

function showSignin() {
  $('desk').hidden = true;
  $('signin').hidden = false;
  $('who').hidden = true;
  $('sign-out').hidden = true;
  $('token').focus();
}

function enterDesk() {
  $('signin').hidden = true;
  $('desk').hidden = false;
  $('who').hidden = false;
  $('sign-out').hidden = false;
  $('token').value = '';
  renderMe();
  stopTimers();
  refreshBoard();
  state.timers.push(setInterval(refreshBoard, 5000));
  state.timers.push(setInterval(refreshView, 5000));
  state.timers.push(setInterval(renderLease, 1000));
  const m = /^#\/c\/(\d+)$/.exec(location.hash);
  if (m) openConversation(Number(m[1]));
}

function stopTimers() {
  for (const id of state.timers) clearInterval(id);
  state.timers = [];
  stopRenew();
}

function signOut(message) {
  stopTimers();
  if (state.takeAbort) state.takeAbort.abort();
  state.token = null;
  state.me = null;
  state.board = null;
  state.view = null;
  state.viewJSON = '';
  storageSet(sessionStorage, 'inroute.token', null);
  // What this agent opened and wrote stays with this agent.
  state.recent = [];
  state.drafts = {};
  saveJSON('inroute.recent', []);
  saveJSON('inroute.drafts', {});
  renderRecent();
  $('reply-text').value = '';
  $('note-text').value = '';
  delete $('reply-text').dataset.conv;
  renderAttachList();
  setAttachError(null);
  history.replaceState(null, '', location.pathname);
  $('conv').hidden = true;
  $('empty').hidden = false;
  clearError();
  setSigninError(message);
  showSignin();
}

function renderMe() {
  const me = state.me;
  if (!me) return;
  $('who-name').textContent = me.name;
  $('who-role').textContent = tOr('role_' + me.role, me.role);
  $('who-role').className = 'badge role role-' + me.role;
  $('who-load').textContent = t('openOf', { open: me.open ?? 0, capacity: me.capacity ?? '?' });
  $('who-load').classList.toggle('full', me.capacity != null && me.open >= me.capacity);
}

async function refreshMe() {
  try {
    const { data } = await api('GET', 'v1/me');
    state.me = data;
    renderMe();
  } catch (e) { handle(e); }
}

// ---------------------------------------------------------------- queue board

let boardLoading = false;

async function refreshBoard() {
  if (!state.token || boardLoading) return;
  boardLoading = true;
  try {
    const [q, me] = await Promise.all([api('GET', 'v1/queues'), api('GET', 'v1/me')]);
    state.board = q.data || {};
    state.boardAt = new Date();
    state.me = me.data;
    renderMe();
    renderBoard();
    renderTransferTargets();
  } catch (e) {
    handle(e);
  } finally {
    boardLoading = false;
  }
}

function renderBoard() {
  const b = state.board;
  if (!b) return;
  const queues = b.queues || [];
  const body = $('board-body');
  body.replaceChildren(...queues.map(boardRow));
  if (!queues.length) body.append(el('tr', null, el('td', { colspan: 4, class: 'muted' }, t('noQueues'))));
  $('board-updated').textContent = state.boardAt ? t('updated', { t: fmtTime(state.boardAt) }) : '';

  const agents = b.agents || [];
  $('agents').replaceChildren(...agents.map((a) => el('li', { class: a.online ? 'online' : 'offline', 'data-testid': 'agent', 'data-agent': a.name },
    el('span', { class: 'dot', 'aria-hidden': 'true' }),
    el('span', { class: 'agent-name' }, a.name),
    el('span', { class: 'muted small' }, a.online ? t('online') : t('offline')),
    el('span', { class: 'agent-load' }, `${a.open ?? 0}/${a.capacity ?? '?'}`))));
  if (!agents.length) $('agents').append(el('li', { class: 'muted' }, t('none')));

  const risk = b.at_risk || [];
  $('at-risk').replaceChildren(...risk.map((r) => {
    const due = parseTime(r.due);
    const when = r.breached ? t('breached') : due ? t('dueIn', { t: age((due - Date.now()) / 1000) }) : '';
    return el('li', null, el('button', { type: 'button', class: 'link', 'data-testid': 'at-risk-item', onclick: () => openConversation(r.id) },
      el('span', { class: 'conv-ref' }, '#' + r.id), ' ',
      el('span', { class: 'badge u-' + r.urgency }, urgencyLabel(r.urgency)), ' ',
      el('span', null, r.queue), ' ',
      el('span', { class: r.breached ? 'bad' : 'warn' }, when)));
  }));
  if (!risk.length) $('at-risk').append(el('li', { class: 'muted' }, t('none')));
}

function boardRow(q) {
  const by = q.by_urgency || {};
  const chips = URGENCIES.filter((u) => by[u] && by[u].waiting > 0).map((u) =>
    el('span', { class: 'chip u-' + u, 'data-urgency': u, title: `${urgencyLabel(u)}: ${by[u].waiting}, ${t('oldest')} ${age(by[u].oldest_seconds)}` },
      `${urgencyLabel(u)} ${by[u].waiting} · ${age(by[u].oldest_seconds)}`));
  const sla = [];
  if (q.breached > 0) sla.push(el('span', { class: 'chip bad', 'data-testid': 'breached' }, t('breachedN', { n: q.breached })));
  if (q.at_risk > 0) sla.push(el('span', { class: 'chip warn', 'data-testid': 'at-risk-count' }, t('atRiskN', { n: q.at_risk })));
  return el('tr', { 'data-testid': 'queue-row', 'data-queue': q.name, 'data-waiting': q.waiting ?? 0, class: q.waiting > 0 ? 'has-work' : '' },
    el('td', null,
      el('div', { class: 'qname', title: q.description || '' }, q.name),
      chips.length ? el('div', { class: 'chips' }, chips) : null),
    el('td', { class: 'num', 'data-testid': 'queue-depth' }, String(q.waiting ?? 0)),
    el('td', { class: 'num', 'data-testid': 'queue-oldest' }, q.waiting > 0 ? age(q.oldest_seconds) : '—'),
    el('td', null, sla.length ? sla : el('span', { class: 'muted' }, '—')));
}

// ---------------------------------------------------------------- take next

function renderTakeButton() {
  const b = $('take-next');
  if (state.taking && state.takeWaiting) {
    b.textContent = t('stopWaiting');
    b.disabled = false;
  } else {
    b.textContent = state.taking ? t('taking') : t('takeNext');
    b.disabled = state.taking;
  }
}

function setTakeStatus(m, cls) {
  const p = $('take-status');
  state.takeMsg = m;
  p.textContent = say(m);
  p.className = 'take-status ' + (cls || 'muted');
}

async function takeNext() {
  if (state.taking) {
    if (state.takeAbort) state.takeAbort.abort();
    return;
  }
  const ctrl = new AbortController();
  state.taking = true;
  state.takeAbort = ctrl;
  try {
    for (;;) {
      const wait = $('wait-toggle').checked;
      state.takeWaiting = wait;
      renderTakeButton();
      setTakeStatus({ key: wait ? 'waitingForWork' : 'taking' });
      const { status, data } = await api('POST', 'v1/agent/next' + (wait ? '?wait=30s' : ''), undefined, { signal: ctrl.signal });
      if (status === 204) {
        if (wait && $('wait-toggle').checked && !ctrl.signal.aborted) continue;
        setTakeStatus({ key: 'nothingWaiting' });
        break;
      }
      if (!data || !data.conversation) {
        setTakeStatus('');
        throw new ApiError(status, 'bad_json', { key: 'errBadJSON' });
      }
      setTakeStatus({ key: 'took', params: { id: data.conversation.id } }, 'ok');
      clearError();
      showView(data, true);
      break;
    }
  } catch (e) {
    if (e && e.name === 'AbortError') setTakeStatus({ key: 'stoppedWaiting' });
    else if (e instanceof ApiError && e.code === 'at_capacity') {
      setTakeStatus({ key: 'atCapacity' }, 'warn');
      showError(e);
    } else {
      setTakeStatus('');
      handle(e);
    }
  } finally {
    state.taking = false;
    state.takeWaiting = false;
    state.takeAbort = null;
    renderTakeButton();
    if (state.token) refreshBoard();
  }
}

// ---------------------------------------------------------------- conversation

async function openConversation(id) {
  try {
    const { data } = await api('GET', `v1/conversations/${encodeURIComponent(id)}`);
    showView(data, true);
  } catch (e) { handle(e); }
}

let viewLoading = false;

async function refreshView() {
  const v = state.view;
  if (!v || viewLoading || state.busy || document.hidden || state.goneID === v.conversation.id) return;
  const id = v.conversation.id;
  viewLoading = true;
  try {
    const { data } = await api('GET', `v1/conversations/${id}`);
    if (state.view && state.view.conversation.id === id && !state.busy) showView(data, false);
  } catch (e) {
    // A conversation that went out of reach (transferred to a queue that
    // is not ours, purged) is reported once, not every five seconds.
    if (e instanceof ApiError && (e.status === 403 || e.status === 404)) state.goneID = id;
    handle(e);
  } finally {
    viewLoading = false;
  }
}

function showView(view, fresh) {
  if (!view || !view.conversation) return;
  const json = JSON.stringify(view);
  const sameConv = state.view && state.view.conversation.id === view.conversation.id;
  if (!fresh && sameConv && json === state.viewJSON) return;
  if (!sameConv) state.openDetails = new Set();
  state.goneID = null;
  state.view = view;
  state.viewJSON = json;
  const c = view.conversation;
  if (location.hash !== `#/c/${c.id}`) history.replaceState(null, '', `#/c/${c.id}`);
  rememberRecent(c);
  renderView(!sameConv);
  scheduleRenew();
}

function rememberRecent(c) {
  const item = { id: c.id, queue: c.queue, urgency: c.urgency, status: c.status };
  state.recent = [item, ...state.recent.filter((r) => r.id !== c.id)].slice(0, 10);
  saveJSON('inroute.recent', state.recent);
  renderRecent();
}

function renderRecent() {
  const list = $('recent');
  list.replaceChildren(...state.recent.map((r) => el('li', null,
    el('button', { type: 'button', class: 'link', 'data-testid': 'recent-item', onclick: () => openConversation(r.id) },
      el('span', { class: 'conv-ref' }, '#' + r.id), ' ',
      el('span', { class: 'badge u-' + r.urgency }, urgencyLabel(r.urgency)), ' ',
      el('span', null, r.queue || ''), ' ',
      el('span', { class: 'muted small' }, statusLabel(r.status))))));
  if (!state.recent.length) list.append(el('li', { class: 'muted' }, t('none')));
}

function renderView(scrollToEnd) {
  const v = state.view;
  const c = v.conversation;
  $('empty').hidden = true;
  $('conv').hidden = false;

  $('c-id').textContent = '#' + c.id;
  const u = $('c-urgency');
  u.textContent = urgencyLabel(c.urgency);
  u.className = 'badge u-' + c.urgency;
  u.dataset.urgency = c.urgency;
  const s = $('c-status');
  s.textContent = statusLabel(c.status);
  s.className = 'badge status st-' + c.status;
  s.dataset.status = c.status;
  $('c-queue').textContent = c.queue || '—';
  $('c-assignee').textContent = c.assignee ? (state.me && c.assignee === state.me.name ? `${c.assignee} (${t('you')})` : c.assignee) : t('unassigned');
  const via = c.last_channel && c.last_channel !== c.channel ? `${chLabel(c.channel)} → ${chLabel(c.last_channel)}` : chLabel(c.channel);
  $('c-channel').textContent = `${via} · ${t('started', { t: () => fmtTime(c.created_at) })}`;
  $('c-subject').textContent = c.subject || '';
  $('c-tags').replaceChildren(...(c.tags || []).map((tag) => el('span', { class: 'tag' }, tag)));
  renderLease();
  renderSLA();

  const resolved = c.status === 'resolved';
  $('resolve').hidden = resolved;
  $('release').hidden = resolved || !c.assignee;
  $('reopen').hidden = !resolved;
  for (const id of ['transfer', 'transfer-target', 'set-urgency', 'urgency-select']) $(id).disabled = resolved;
  const us = $('urgency-select');
  us.replaceChildren(...URGENCIES.map((x) => el('option', { value: x, selected: x === c.urgency }, urgencyLabel(x))));
  renderTransferTargets();

  renderContact(v);
  const ex = v.explain || [];
  $('c-explain').replaceChildren(...ex.map((line) => el('li', null, line)));
  if (!ex.length) $('c-explain').append(el('li', { class: 'muted' }, t('none')));
  renderHistory(v);
  renderTimeline(v, scrollToEnd);
  renderComposer(v);
}

function renderLease() {
  const box = $('c-lease');
  const c = state.view && state.view.conversation;
  const until = c && parseTime(c.lease_until);
  if (!until || c.status === 'resolved') {
    box.hidden = true;
    box.textContent = '';
    return;
  }
  const left = until - Date.now();
  box.hidden = false;
  box.textContent = left > 0 ? t('leaseLeft', { t: clock(left) }) : t('leaseExpired');
  box.className = 'lease' + (left <= 0 ? ' bad' : left < 60000 ? ' warn' : '');
  renderSLA();
}

function renderSLA() {
  const box = $('c-sla');
  const c = state.view && state.view.conversation;
  if (!c || c.status === 'resolved') { box.textContent = ''; return; }
  const due = parseTime(c.first_response_due) || parseTime(c.next_response_due);
  if (c.sla_breached) {
    box.textContent = due ? t('replyOverdue', { t: age((Date.now() - due) / 1000) }) : t('slaBreached');
    box.className = 'sla bad';
  } else if (due) {
    const left = (due - Date.now()) / 1000;
    box.textContent = left >= 0 ? t('replyDue', { t: age(left) }) : t('replyOverdue', { t: age(-left) });
    box.className = 'sla' + (left < 0 ? ' bad' : '');
  } else {
    box.textContent = '';
  }
}

function renderTransferTargets() {
  const sel = $('transfer-target');
  const v = state.view;
  if (!v) return;
  const prev = sel.value;
  const c = v.conversation;
  const queues = ((state.board && state.board.queues) || []).map((q) => q.name).filter((n) => n !== c.queue);
  const me = state.me && state.me.name;
  const agents = ((state.board && state.board.agents) || []).map((a) => a.name).filter((n) => n !== me && n !== c.assignee);
  const opts = [el('option', { value: '' }, t('transferTo'))];
  if (queues.length) opts.push(el('optgroup', { label: t('toQueues') }, queues.map((n) => el('option', { value: 'queue:' + n }, n))));
  if (agents.length) opts.push(el('optgroup', { label: t('toAgents') }, agents.map((n) => el('option', { value: 'agent:' + n }, n))));
  sel.replaceChildren(...opts);
  sel.value = [...sel.options].some((o) => o.value === prev) ? prev : '';
}

function renderContact(v) {
  const ct = v.contact || {};
  $('contact-name').textContent = ct.name || t('unnamed');
  const ids = ct.identities || [];
  $('identities').replaceChildren(...ids.map((i) => el('li', { 'data-testid': 'identity', 'data-kind': i.kind },
    el('span', { class: 'id-kind' }, tOr('id_' + i.kind, i.kind)),
    el('span', { class: 'id-value' }, i.value),
    i.verified ? el('span', { class: 'chip ok' }, t('verified')) : null)));
}

function renderHistory(v) {
  const h = v.history || [];
  $('history').replaceChildren(...h.map((x) => el('li', null,
    el('button', { type: 'button', class: 'link', 'data-testid': 'history-item', onclick: () => openConversation(x.id) },
      el('span', { class: 'conv-ref' }, '#' + x.id), ' ',
      el('span', { class: 'ch ch-' + x.channel }, chLabel(x.channel)), ' ',
      el('span', { class: 'muted small' }, statusLabel(x.status)), ' ',
      x.topic || '', x.subject ? ` · ${x.subject}` : '', ' ',
      el('span', { class: 'muted small' }, fmtTime(x.created_at))))));
  if (!h.length) $('history').append(el('li', { class: 'muted' }, t('noHistory')));
}

function renderTimeline(v, scrollToEnd) {
  const wrap = $('timeline-wrap');
  const nearEnd = wrap.scrollHeight - wrap.scrollTop - wrap.clientHeight < 60;
  const items = [];
  (v.messages || []).forEach((m, i) => items.push({ at: parseTime(m.received_at), order: 0, i, node: () => messageItem(m) }));
  (v.events || []).forEach((e, i) => items.push({ at: parseTime(e.at), order: 1, i, node: () => eventItem(e) }));
  items.sort((a, b) => ((a.at ? a.at.getTime() : 0) - (b.at ? b.at.getTime() : 0)) || (a.order - b.order) || (a.i - b.i));
  $('timeline').replaceChildren(...items.map((x) => x.node()));
  if (scrollToEnd || nearEnd || state.scrollNext) wrap.scrollTop = wrap.scrollHeight;
  state.scrollNext = false;
}

function messageItem(m) {
  const inbound = m.direction === 'in';
  const meta = [
    el('span', { class: 'ch ch-' + m.channel, 'data-testid': 'message-channel', title: m.channel }, el('span', { class: 'ch-icon', 'aria-hidden': 'true' }), chLabel(m.channel)),
    el('span', { class: 'dir' }, inbound ? t('customer') : t('replyBy')),
  ];
  if (inbound) {
    if (m.from_value) meta.push(el('span', { class: 'muted small from' }, m.from_value));
  } else if (m.author) {
    meta.push(el('span', { class: 'author', 'data-testid': 'message-author' }, m.author));
  }
  if (m.auto) meta.push(el('span', { class: 'chip auto', 'data-testid': 'auto-reply' }, t('autoReply')));
  if (m.automatic) meta.push(el('span', { class: 'chip auto', 'data-testid': 'automatic', title: m.automatic }, tOr('automatic_' + m.automatic, m.automatic)));
  if (!inbound && m.delivery_status) {
    const st = m.delivery_status;
    meta.push(el('span', { class: 'chip delivery d-' + st, 'data-testid': 'delivery', 'data-status': st, title: m.delivery_error || '' },
      tOr('d_' + st, st) + (st === 'failed' && m.delivery_error ? `: ${m.delivery_error}` : '')));
  }
  meta.push(el('time', { datetime: m.received_at || '', title: m.received_at || '' }, fmtTime(m.received_at)));

  const text = m.text || '';
  const children = [
    el('div', { class: 'meta' }, meta),
    el('div', { class: 'text' + (text ? '' : ' muted'), 'data-testid': 'message-text' }, text || t('noText')),
  ];
  const att = m.attachments || [];
  if (att.length) {
    children.push(el('ul', { class: 'plain attachments', 'aria-label': t('attachments'), 'data-testid': 'attachments' }, att.map(attachmentItem)));
  }
  const d = m.decision;
  if (inbound && d) {
    const det = el('details', { class: 'why-msg', 'data-testid': 'explain' },
      el('summary', null, t('routing', { queue: d.queue || '—', urgency: urgencyLabel(d.urgency) }), d.topic ? ` · ${d.topic}` : ''),
      el('ol', { class: 'explain-lines' }, (d.explain || []).map((line) => el('li', null, line))),
      d.rules_version ? el('div', { class: 'muted small' }, t('rulesVersion', { v: d.rules_version })) : null);
    if (state.openDetails.has(m.id)) det.open = true;
    det.addEventListener('toggle', () => { if (det.open) state.openDetails.add(m.id); else state.openDetails.delete(m.id); });
    children.push(det);
  }
  return el('li', {
    class: `msg ${inbound ? 'in' : 'out'}${m.auto ? ' auto' : ''}`, 'data-testid': 'message',
    'data-id': m.id, 'data-direction': m.direction, 'data-channel': m.channel,
  }, children);
}

// attachmentItem shows one attachment of a message: inroute's own files
// (ref sha256:...) download through the API with the token, a channel's
// http(s) URL opens in a new tab, anything else is only named.
function attachmentItem(a) {
  const ref = typeof a.ref === 'string' && a.ref ? a.ref : typeof a.url === 'string' ? a.url : '';
  const name = a.name || a.content_type || 'attachment';
  const sz = a.size ? el('span', { class: 'muted small att-size' }, size(a.size)) : null;
  let link;
  if (ref.startsWith('sha256:')) {
    link = el('button', {
      type: 'button', class: 'link att-link', 'data-testid': 'attachment-download', 'data-ref': ref,
      title: t('attachDownload', { name }), onclick: () => downloadAttachment(a, ref, name),
    }, name);
  } else if (/^https?:\/\//i.test(ref)) {
    link = el('a', { class: 'att-link', href: ref, target: '_blank', rel: 'noopener noreferrer' }, name);
  } else {
    link = el('span', { class: 'att-name', title: ref ? t('attachLinkOnly') : null }, name);
  }
  return el('li', { class: 'attachment', 'data-testid': 'attachment-item', 'data-name': name, 'data-size': a.size ?? '' }, link, sz ? ' ' : null, sz);
}

// downloadAttachment fetches a stored attachment with the agent's token and
// saves it under its own name and content type.
async function downloadAttachment(a, ref, name) {
  let res;
  try {
    res = await fetch(apiURL('v1/attachments/' + encodeURIComponent(ref)), {
      headers: { Authorization: 'Bearer ' + state.token }, cache: 'no-store', credentials: 'omit',
    });
  } catch {
    showError(new ApiError(0, 'network', { key: 'errNetwork' }));
    return;
  }
  if (!res.ok) {
    let code = 'http_' + res.status;
    let msg = res.statusText || String(res.status);
    try {
      const e = JSON.parse(await res.text()).error;
      if (e && e.code) code = e.code;
      if (e && e.message) msg = e.message;
    } catch { /* not JSON: keep the status */ }
    handle(new ApiError(res.status, code, msg));
    return;
  }
  const blob = new Blob([await res.arrayBuffer()], { type: a.content_type || 'application/octet-stream' });
  const url = URL.createObjectURL(blob);
  const link = el('a', { href: url, download: name, hidden: true });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60000);
}

const ISO_TIME = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d/;

function eventValue(v) {
  if (typeof v === 'string' && ISO_TIME.test(v)) return fmtTime(v) || v;
  return typeof v === 'object' ? JSON.stringify(v) : String(v);
}

// Event data the timeline shows elsewhere, or nobody needs to read.
const HIDDEN_EVENT_DATA = new Set(['message_id', 'conversation_id', 'contact_id']);

function eventItem(e) {
  const kind = e.kind || '';
  if (kind === 'note') {
    const text = (e.data && (e.data.text || e.data.note)) || e.text || '';
    return el('li', { class: 'note', 'data-testid': 'note', 'data-kind': kind },
      el('div', { class: 'meta' },
        el('span', { class: 'chip note-chip' }, t('ev_note')),
        e.actor ? el('span', { class: 'author' }, e.actor) : null,
        el('time', { datetime: e.at || '', title: e.at || '' }, fmtTime(e.at))),
      el('div', { class: 'text' }, text));
  }
  const data = e.data && typeof e.data === 'object' ? Object.entries(e.data)
    .filter(([k, v]) => v !== '' && v != null && !HIDDEN_EVENT_DATA.has(k))
    .map(([k, v]) => `${k}: ${eventValue(v)}`.slice(0, 200)) : [];
  return el('li', { class: 'event', 'data-testid': 'event', 'data-kind': kind },
    el('span', { class: 'ev-kind' }, tOr('ev_' + kind, kind)),
    e.actor ? el('span', { class: 'muted' }, t('byActor', { a: e.actor })) : null,
    data.length ? el('span', { class: 'ev-data' }, data.join(' · ')) : null,
    el('time', { datetime: e.at || '', title: e.at || '' }, fmtTime(e.at)));
}

// ---------------------------------------------------------------- composer

// channelsFor lists the channels a reply can take to an identity of a kind.
function channelsFor(kind) {
  switch (kind) {
    case 'email': return ['email'];
    case 'phone': return ['sms', 'voice'];
    default: return CHANNELS.includes(kind) ? [kind] : [];
  }
}

function replyChoices(v) {
  const c = v.conversation;
  const lastIn = [...(v.messages || [])].reverse().find((m) => m.direction === 'in');
  const defCh = c.last_channel || (lastIn && lastIn.channel) || c.channel;
  const defTo = lastIn && lastIn.channel === defCh && lastIn.from_value ? { kind: lastIn.from_kind, value: lastIn.from_value } : null;
  const choices = [{
    value: '', channel: defCh,
    label: `${chLabel(defCh)}${defTo ? ' → ' + defTo.value : ''} (${t('whereTheyWrote')})`,
  }];
  for (const id of (v.contact && v.contact.identities) || []) {
    for (const ch of channelsFor(id.kind)) {
      if (defTo && ch === defCh && id.kind === defTo.kind && id.value === defTo.value) continue;
      choices.push({
        value: JSON.stringify({ channel: ch, to: { kind: id.kind, value: id.value } }), channel: ch,
        label: ch === 'voice' ? `${chLabel(ch)}: ${t('callBack', { v: id.value })}` : `${chLabel(ch)} → ${id.value}`,
      });
    }
  }
  return choices;
}

function draftFor(id) {
  const d = state.drafts[id] || (state.drafts[id] = { text: '', note: '', choice: '', key: null, sig: null });
  if (!Array.isArray(d.files)) d.files = [];
  return d;
}
// saveDrafts keeps the drafts in the session, with their files when they
// fit (storage is small), else without them: the files then stay in memory.
function saveDrafts() {
  try {
    sessionStorage.setItem('inroute.drafts', JSON.stringify(state.drafts));
  } catch {
    const slim = {};
    for (const [k, d] of Object.entries(state.drafts)) slim[k] = { ...d, files: [] };
    saveJSON('inroute.drafts', slim);
  }
}

// Files bigger than this are refused before upload (the server has its
// own limit, store.attachments.max_size).
const MAX_ATTACHMENT = 10 * 1024 * 1024;

function readBase64(file) {
  return new Promise((resolve, reject) => {
    const r = new FileReader();
    r.onload = () => {
      const s = String(r.result || '');
      resolve(s.slice(s.indexOf(',') + 1));
    };
    r.onerror = () => reject(r.error || new Error('read failed'));
    r.readAsDataURL(file);
  });
}

async function addFiles(files) {
  const v = state.view;
  if (!v) return;
  const id = v.conversation.id;
  const problems = [];
  state.reading = (state.reading || 0) + 1;
  try {
    for (const f of files) {
      if (f.size > MAX_ATTACHMENT) {
        problems.push({ key: 'attachTooBig', params: { name: f.name, max: () => size(MAX_ATTACHMENT) } });
        continue;
      }
      try {
        const data = await readBase64(f);
        draftFor(id).files.push({ id: newKey(), name: f.name, content_type: f.type || 'application/octet-stream', size: f.size, data });
      } catch {
        problems.push({ key: 'attachReadFailed', params: { name: f.name } });
      }
    }
  } finally {
    state.reading -= 1;
  }
  saveDrafts();
  setAttachError(problems);
  renderAttachList();
}

function setAttachError(problems) {
  state.attachMsgs = problems && problems.length ? problems : null;
  const p = $('attach-error');
  p.replaceChildren(...(state.attachMsgs || []).map((m) => el('span', null, say(m))));
  p.hidden = !state.attachMsgs;
}

function removeFile(fileID) {
  const v = state.view;
  if (!v) return;
  const d = draftFor(v.conversation.id);
  d.files = d.files.filter((f) => f.id !== fileID);
  saveDrafts();
  renderAttachList();
}

function renderAttachList() {
  const list = $('attach-list');
  const v = state.view;
  const files = v ? draftFor(v.conversation.id).files : [];
  list.replaceChildren(...files.map((f) => el('li', { class: 'attach-file', 'data-testid': 'attach-file', 'data-name': f.name },
    el('span', { class: 'att-name' }, f.name), ' ',
    el('span', { class: 'muted small' }, size(f.size)), ' ',
    el('button', {
      type: 'button', class: 'ghost small', 'data-testid': 'attach-remove',
      'aria-label': t('attachRemoveName', { name: f.name }), onclick: () => removeFile(f.id),
    }, t('attachRemove')))));
  list.hidden = !files.length;
}

function renderComposer(v) {
  const id = v.conversation.id;
  const d = draftFor(id);
  const ta = $('reply-text');
  if (ta.dataset.conv !== String(id)) {
    ta.dataset.conv = String(id);
    ta.value = d.text;
    $('note-text').value = d.note;
  }
  const sel = $('reply-channel');
  const choices = replyChoices(v);
  sel.replaceChildren(...choices.map((ch) => el('option', { value: ch.value, 'data-channel': ch.channel }, ch.label)));
  sel.value = choices.some((ch) => ch.value === d.choice) ? d.choice : '';
  renderAttachList();
  if (state.attachMsgs) setAttachError(state.attachMsgs);
  renderSendButton();
}

function renderSendButton() {
  const b = $('send');
  b.disabled = state.sending;
  b.textContent = state.sending ? t('sending') : t('send');
}

function setTab(tab) {
  state.tab = tab;
  $('pane-reply').hidden = tab !== 'reply';
  $('pane-note').hidden = tab !== 'note';
  $('tab-reply').setAttribute('aria-selected', String(tab === 'reply'));
  $('tab-note').setAttribute('aria-selected', String(tab === 'note'));
  (tab === 'reply' ? $('reply-text') : $('note-text')).focus();
}

async function sendReply() {
  const v = state.view;
  if (!v || state.sending) return;
  const id = v.conversation.id;
  const d = draftFor(id);
  const text = $('reply-text').value;
  if (state.reading) { showError(new ApiError(0, 'invalid_request', { key: 'attachReading' })); return; }
  const files = d.files;
  if (!text.trim() && !files.length) { showError(new ApiError(0, 'invalid_request', { key: 'writeFirst' })); return; }
  const choice = $('reply-channel').value;
  // One key per draft, kept until the reply is accepted: a retry or a
  // second click sends the same key, and the API answers with the first
  // reply instead of sending another.
  const sig = JSON.stringify([id, text, choice, files.map((f) => f.id)]);
  if (!d.key || d.sig !== sig) { d.key = newKey(); d.sig = sig; }
  d.text = text;
  d.choice = choice;
  saveDrafts();
  const body = { text, key: d.key };
  if (files.length) body.attachments = files.map((f) => ({ name: f.name, content_type: f.content_type, data: f.data }));
  if (choice) Object.assign(body, JSON.parse(choice));
  state.sending = true;
  renderSendButton();
  try {
    const { data } = await api('POST', `v1/conversations/${id}/reply`, body, { headers: { 'Idempotency-Key': d.key } });
    delete state.drafts[id];
    saveDrafts();
    state.scrollNext = true;
    if ($('reply-text').dataset.conv === String(id)) $('reply-text').value = '';
    setAttachError(null);
    renderAttachList();
    clearError();
    const m = data && data.message;
    const ch = (m && m.channel) || body.channel || v.conversation.last_channel;
    notice(data && data.created === false ? { key: 'replyAlready' } : { key: 'replySent', params: { ch: () => chLabel(ch) } });
    await reloadAfterAction(id);
  } catch (e) {
    handle(e);
  } finally {
    state.sending = false;
    renderSendButton();
  }
}

async function addNote() {
  const v = state.view;
  if (!v || state.busy) return;
  const id = v.conversation.id;
  const text = $('note-text').value;
  if (!text.trim()) { showError(new ApiError(0, 'invalid_request', { key: 'writeNoteFirst' })); return; }
  await act('note', { text }, () => {
    draftFor(id).note = '';
    saveDrafts();
    state.scrollNext = true;
    $('note-text').value = '';
    notice({ key: 'noteAdded' });
  });
}

async function reloadAfterAction(id) {
  try {
    const { data } = await api('GET', `v1/conversations/${id}`);
    if (state.view && state.view.conversation.id === id) showView(data, true);
  } catch (e) { handle(e); }
  refreshBoard();
}

// act runs a conversation action and shows the view it answers with.
async function act(action, body, done) {
  const v = state.view;
  if (!v || state.busy) return;
  const id = v.conversation.id;
  state.busy = true;
  document.body.classList.add('busy');
  try {
    const { data } = await api('POST', `v1/conversations/${id}/${action}`, body);
    clearError();
    if (done) done(data);
    if (data && data.conversation && data.conversation.id === id) {
      showView(data, true);
      refreshBoard();
    } else {
      await reloadAfterAction(id);
    }
  } catch (e) {
    handle(e);
    if (e instanceof ApiError && (e.status === 409 || e.status === 404)) reloadAfterAction(id);
  } finally {
    state.busy = false;
    document.body.classList.remove('busy');
  }
}

function simpleAction(action) {
  return () => {
    const id = state.view && state.view.conversation.id;
    return act(action, {}, () => notice({ key: 'did_' + action, params: { id } }));
  };
}

function transfer() {
  const target = $('transfer-target').value;
  if (!target) { showError(new ApiError(0, 'invalid_request', { key: 'pickTarget' })); return; }
  const i = target.indexOf(':');
  const body = { [target.slice(0, i)]: target.slice(i + 1) };
  const id = state.view && state.view.conversation.id;
  return act('transfer', body, () => notice({ key: 'did_transfer', params: { id } }));
}

function setUrgency() {
  const id = state.view && state.view.conversation.id;
  return act('urgency', { urgency: $('urgency-select').value }, () => notice({ key: 'did_urgency', params: { id } }));
}

// ---------------------------------------------------------------- lease

// A claimed conversation nobody has answered yet holds a lease: renew it
// every lease/3 while it is open here.
function renewable(v) {
  const c = v && v.conversation;
  if (!c || !c.lease_until || c.status === 'resolved' || !state.me || c.assignee !== state.me.name) return false;
  return !(v.messages || []).some((m) => m.direction === 'out' && !m.auto);
}

function scheduleRenew() {
  const v = state.view;
  if (!renewable(v)) { stopRenew(); return; }
  const id = v.conversation.id;
  if (state.renewFor === id && state.renewTimer) return;
  stopRenew();
  const every = Math.max(5, ((state.me && state.me.lease_seconds) || 300) / 3) * 1000;
  state.renewFor = id;
  state.renewTimer = setInterval(() => renew(id), every);
}

function stopRenew() {
  if (state.renewTimer) clearInterval(state.renewTimer);
  state.renewTimer = null;
  state.renewFor = null;
}

async function renew(id) {
  if (!state.view || state.view.conversation.id !== id || !renewable(state.view)) { stopRenew(); return; }
  try {
    const { data } = await api('POST', `v1/conversations/${id}/renew`, {});
    if (data && data.lease_until && state.view && state.view.conversation.id === id) {
      state.view.conversation.lease_until = data.lease_until;
      renderLease();
    }
  } catch (e) {
    handle(e);
    if (e instanceof ApiError && (e.status === 403 || e.status === 404 || e.status === 409)) {
      stopRenew();
      reloadAfterAction(id);
    }
  }
}

// ---------------------------------------------------------------- search

async function search(q) {
  const list = $('search-results');
  if (!q.trim()) { list.replaceChildren(); return; }
  try {
    const { data } = await api('GET', 'v1/conversations?contact=' + encodeURIComponent(q.trim()));
    const convs = (data && data.conversations) || [];
    list.replaceChildren(...convs.map((c) => el('li', null,
      el('button', { type: 'button', class: 'link', 'data-testid': 'search-item', onclick: () => openConversation(c.id) },
        el('span', { class: 'conv-ref' }, '#' + c.id), ' ',
        el('span', { class: 'ch ch-' + c.channel }, chLabel(c.channel)), ' ',
        el('span', { class: 'muted small' }, statusLabel(c.status)), ' ',
        c.queue || c.topic || '', ' ',
        el('span', { class: 'muted small' }, fmtTime(c.created_at))))));
    if (!convs.length) list.append(el('li', { class: 'muted' }, t('noResults')));
  } catch (e) { handle(e); }
}

// ---------------------------------------------------------------- wiring

function wire() {
  $('signin-form').addEventListener('submit', (e) => {
    e.preventDefault();
    const tok = $('token').value.trim();
    if (tok) signIn(tok, false);
  });
  $('sign-out').addEventListener('click', () => signOut());
  for (const b of document.querySelectorAll('.lang button')) b.addEventListener('click', () => setLang(b.dataset.lang));
  $('banner-close').addEventListener('click', clearError);
  $('take-next').addEventListener('click', takeNext);
  $('resolve').addEventListener('click', simpleAction('resolve'));
  $('release').addEventListener('click', simpleAction('release'));
  $('reopen').addEventListener('click', simpleAction('reopen'));
  $('transfer').addEventListener('click', transfer);
  $('set-urgency').addEventListener('click', setUrgency);
  $('refresh').addEventListener('click', () => { if (state.view) reloadAfterAction(state.view.conversation.id); });
  $('send').addEventListener('click', sendReply);
  $('add-note').addEventListener('click', addNote);
  $('tab-reply').addEventListener('click', () => setTab('reply'));
  $('tab-note').addEventListener('click', () => setTab('note'));
  $('reply-text').addEventListener('input', () => {
    if (!state.view) return;
    draftFor(state.view.conversation.id).text = $('reply-text').value;
    saveDrafts();
  });
  $('note-text').addEventListener('input', () => {
    if (!state.view) return;
    draftFor(state.view.conversation.id).note = $('note-text').value;
    saveDrafts();
  });
  $('attach-input').addEventListener('change', () => {
    const input = $('attach-input');
    const files = [...(input.files || [])];
    input.value = '';
    if (files.length) addFiles(files);
  });
  $('reply-channel').addEventListener('change', () => {
    if (!state.view) return;
    draftFor(state.view.conversation.id).choice = $('reply-channel').value;
    saveDrafts();
  });
  $('reply-text').addEventListener('keydown', (e) => { if (e.key === 'Enter' && (e.ctrlKey || e.metaKey)) { e.preventDefault(); sendReply(); } });
  $('note-text').addEventListener('keydown', (e) => { if (e.key === 'Enter' && (e.ctrlKey || e.metaKey)) { e.preventDefault(); addNote(); } });
  $('search-form').addEventListener('submit', (e) => { e.preventDefault(); search($('search').value); });
  window.addEventListener('hashchange', () => {
    const m = /^#\/c\/(\d+)$/.exec(location.hash);
    if (m && state.token && (!state.view || state.view.conversation.id !== Number(m[1]))) openConversation(Number(m[1]));
  });
  document.addEventListener('visibilitychange', () => {
    if (!document.hidden && state.token) { refreshBoard(); refreshView(); }
  });
}

function main() {
  wire();
  applyLang();
  if (state.token) signIn(state.token, true);
  else showSignin();
}

main();
