// The pgha status page: polls this agent's GET /status and /cluster once a second and /history
// every 15 s, and redraws. Every value reaches the DOM as textContent or an SVG attribute, never
// as markup. No framework, no external resources (the Content-Security-Policy forbids them).
'use strict';

const POLL_MS = 1000; // once a second: the agent answers from its loop's snapshot, no etcd read
const HISTORY_EVERY = 15; // /history may read etcd: every 15th poll, and when the leader changes
const FETCH_TIMEOUT_MS = 3000; // a hung agent shows as an error after 3 s instead of freezing the page
const CHART_POINTS = 120; // the chart keeps the last 2 minutes of polls
const MAX_EVENTS = 100;

const $ = (id) => document.getElementById(id);
const SVG = 'http://www.w3.org/2000/svg';

const state = {
  polls: 0,
  prev: null, // the previous /cluster body
  prevPlan: null,
  lastLeader: null, // the last leader seen (a switchover shows a poll or two without one)
  historyLen: null,
  samples: [], // [{ lag: Map<member, bytes|null> }], oldest first
  colors: new Map(),
  events: [],
  failing: false,
  historyDue: 0, // a poll number: read /history again then (a promotion is recorded after the new leader takes the key)
};

function el(tag, text, cls) {
  const e = document.createElement(tag);
  if (text !== undefined && text !== null) e.textContent = String(text);
  if (cls) e.className = cls;
  return e;
}

function fmtBytes(n) {
  if (n === null || n === undefined) return '–';
  const units = ['B', 'kB', 'MB', 'GB', 'TB'];
  let v = n;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) { v /= 1024; i += 1; }
  return `${i === 0 ? v : v.toFixed(1)} ${units[i]}`;
}

function fmtLsn(n) {
  if (n === null || n === undefined) return '–';
  const hi = Math.floor(n / 2 ** 32);
  const lo = n % 2 ** 32;
  return `${hi.toString(16).toUpperCase()}/${lo.toString(16).toUpperCase()}`;
}

function clock(d = new Date()) {
  return d.toTimeString().slice(0, 8);
}

async function getJson(path) {
  const ctl = new AbortController();
  const timer = setTimeout(() => ctl.abort(), FETCH_TIMEOUT_MS);
  try {
    const r = await fetch(path, { cache: 'no-store', headers: { accept: 'application/json' }, signal: ctl.signal });
    const body = await r.json().catch(() => null);
    if (!r.ok) throw new Error(`${path}: HTTP ${r.status}${body && body.message ? ` (${body.message})` : ''}`);
    return body;
  } finally {
    clearTimeout(timer);
  }
}

function addEvent(text) {
  state.events.unshift({ at: new Date(), text });
  state.events.length = Math.min(state.events.length, MAX_EVENTS);
  const list = $('events');
  const li = el('li');
  li.append(el('time', clock(state.events[0].at)), document.createTextNode(text));
  list.prepend(li);
  while (list.children.length > MAX_EVENTS) list.lastChild.remove();
}

/** Events from the difference between two /cluster bodies. */
function diffCluster(a, b) {
  if (a.leader !== b.leader) {
    const was = state.lastLeader !== null && state.lastLeader !== b.leader ? ` (was ${state.lastLeader})` : '';
    addEvent(b.leader === null ? `leader key released by ${a.leader ?? '?'}: no leader` : `new leader: ${b.leader}${was}`);
  }
  if (a.pause !== b.pause && b.pause !== null) addEvent(b.pause ? 'cluster paused (maintenance mode)' : 'cluster resumed');
  const before = new Map(a.members.map((m) => [m.name, m]));
  const after = new Map(b.members.map((m) => [m.name, m]));
  for (const [name, m] of after) {
    const o = before.get(name);
    if (o === undefined) { addEvent(`${name} joined (${m.role}, ${m.state})`); continue; }
    if (o.role !== m.role) addEvent(`${name}: role ${o.role} → ${m.role}`);
    if (o.state !== m.state) addEvent(`${name}: state ${o.state} → ${m.state}`);
    if (o.timeline !== m.timeline && m.timeline !== null) addEvent(`${name}: timeline ${o.timeline ?? '?'} → ${m.timeline}`);
  }
  for (const name of before.keys()) if (!after.has(name)) addEvent(`${name} left (its member key expired or was removed)`);
  const s = (x) => (x.scheduled_switchover ? `${x.scheduled_switchover.at}` : null);
  if (s(a) !== s(b)) addEvent(b.scheduled_switchover ? `switchover scheduled at ${b.scheduled_switchover.at}` : 'scheduled switchover gone (done or cancelled)');
}

function renderSummary(c, st) {
  $('scope').textContent = c.scope;
  const leader = $('leader');
  leader.textContent = c.leader ?? 'none';
  leader.classList.toggle('none', c.leader === null);
  const lm = c.members.find((m) => m.name === c.leader);
  $('timeline').textContent = lm && lm.timeline !== null ? String(lm.timeline) : '–';
  $('member-count').textContent = String(c.members.length);
  $('scheduled').textContent = c.scheduled_switchover
    ? `${c.scheduled_switchover.at}${c.scheduled_switchover.to ? ` to ${c.scheduled_switchover.to}` : ''}` : 'none';
  $('served-by').textContent = st.name === null ? '(agent starting)' : `${st.name} (pgha ${st.patroni.version ?? '?'})`;
  $('last-plan').textContent = st.last_plan ?? '–';
  const pause = $('pause');
  pause.textContent = c.pause === null ? 'etcd not read yet' : c.pause ? 'paused' : 'not paused';
  pause.className = `badge${c.pause ? ' paused' : ''}`;
  const fresh = $('freshness');
  fresh.textContent = c.stale ? `stale view (${c.age_ms ?? '?'} ms old)` : 'live';
  fresh.className = `badge ${c.stale ? 'stale' : 'fresh'}`;
}

/** The tags that say something (as pghactl list): booleans only when set, a priority other than 1, anything else as name=value. */
function tagsText(tags) {
  if (!tags) return '';
  return Object.entries(tags).filter(([k, v]) => v !== false && v !== null && !(k === 'failover_priority' && v === 1))
    .map(([k, v]) => (v === true ? k : `${k}=${typeof v === 'object' ? JSON.stringify(v) : v}`)).join(' ');
}

function renderMembers(c) {
  const body = $('members').tBodies[0];
  const rows = c.members.slice().sort((x, y) => x.name.localeCompare(y.name)).map((m) => {
    const tr = el('tr', null, m.role === 'leader' ? 'leader' : '');
    tr.dataset.member = m.name;
    const host = m.host === null ? '–' : `${m.host}${m.port === null ? '' : `:${m.port}`}`;
    const cells = [
      [m.name], [m.role, m.role === 'leader' ? 'role-leader' : ''],
      [m.state, m.state === 'running' || m.state === 'streaming' ? '' : 'state-bad'], [host],
      [m.timeline ?? '–', 'num'], [fmtLsn(m.lsn), 'num'], [m.role === 'leader' ? '' : fmtBytes(m.lag), 'num'],
      [m.upstream ?? ''], [m.pending_restart ? 'yes' : ''], [tagsText(m.tags)],
    ];
    for (const [text, cls] of cells) tr.append(el('td', text, cls));
    return tr;
  });
  body.replaceChildren(...rows);
}

function colorOf(name) {
  if (!state.colors.has(name)) state.colors.set(name, `c${state.colors.size % 6}`);
  return state.colors.get(name);
}

function svg(tag, attrs, text) {
  const e = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
  if (text !== undefined) e.textContent = text;
  return e;
}

function renderChart(c) {
  state.samples.push({ lag: new Map(c.members.filter((m) => m.role !== 'leader').map((m) => [m.name, m.lag])) });
  if (state.samples.length > CHART_POINTS) state.samples.shift();
  const names = [...new Set(state.samples.flatMap((s) => [...s.lag.keys()]))].sort();
  const max = Math.max(1024, ...state.samples.flatMap((s) => [...s.lag.values()].filter((v) => v !== null)));
  const chart = $('lag-chart');
  // Drawn in the chart's own pixels (viewBox = its size), so text is never stretched.
  const W = Math.max(320, Math.round(chart.getBoundingClientRect().width)), H = 160, L = 64, T = 8, B = 20;
  chart.setAttribute('viewBox', `0 0 ${W} ${H}`);
  const x = (i) => L + ((W - L - 4) * i) / (CHART_POINTS - 1);
  const y = (v) => T + (H - T - B) * (1 - v / max);
  const parts = [
    svg('line', { x1: L, y1: y(0), x2: W - 4, y2: y(0), class: 'axis' }),
    svg('line', { x1: L, y1: y(max), x2: W - 4, y2: y(max), class: 'axis' }),
    svg('text', { x: 4, y: y(max) + 4 }, fmtBytes(max)),
    svg('text', { x: 4, y: y(0) + 4 }, '0'),
    svg('text', { x: L, y: H - 4 }, `${Math.round((CHART_POINTS * POLL_MS) / 1000)} s ago`),
    svg('text', { x: W - 30, y: H - 4 }, 'now'),
  ];
  const offset = CHART_POINTS - state.samples.length;
  for (const name of names) {
    // One polyline per unbroken run: a poll without a value (unknown lag, member gone) is a gap.
    let run = [];
    const flush = () => {
      if (run.length > 0) parts.push(svg('polyline', { points: run.join(' '), class: colorOf(name), 'data-member': name }));
      run = [];
    };
    state.samples.forEach((s, i) => {
      const v = s.lag.get(name);
      if (v === null || v === undefined) { flush(); return; }
      run.push(`${x(offset + i).toFixed(1)},${y(v).toFixed(1)}`);
    });
    flush();
  }
  chart.replaceChildren(...parts);
  $('chart-span').textContent = `${Math.round((CHART_POINTS * POLL_MS) / 1000)} s`;
  $('lag-legend').replaceChildren(...names.map((n) => {
    const li = el('li', null, colorOf(n));
    const last = state.samples.at(-1).lag.get(n);
    li.append(el('span', `${n}: ${fmtBytes(last ?? null)}`));
    return li;
  }));
}

function renderHistory(h) {
  const body = $('history').tBodies[0];
  body.replaceChildren(...h.slice().reverse().map((e) => {
    const tr = el('tr');
    for (const [text, cls] of [[e.timeline, 'num'], [e.leader], [e.reason], [e.lsn], [e.time]]) tr.append(el('td', text, cls));
    return tr;
  }));
  $('history-note').textContent = h.length === 0 ? 'No promotion recorded yet (the first leader bootstrapped the cluster).' : '';
  if (state.historyLen !== null && h.length > state.historyLen) {
    for (const e of h.slice(state.historyLen)) addEvent(`promotion recorded: ${e.leader} on timeline ${e.timeline} (${e.reason})`);
  }
  state.historyLen = h.length;
}

async function pollHistory() {
  try {
    renderHistory(await getJson('/history'));
  } catch (err) {
    $('history-note').textContent = `history unavailable: ${err.message}`;
  }
}

async function poll() {
  state.polls += 1;
  try {
    const [st, c] = await Promise.all([getJson('/status'), getJson('/cluster')]);
    if (state.failing) addEvent('agent reachable again');
    state.failing = false;
    if (state.prev !== null) diffCluster(state.prev, c);
    else addEvent(`page opened: leader ${c.leader ?? 'none'}, ${c.members.length} member(s)`);
    if (st.last_plan !== null && st.last_plan !== state.prevPlan) addEvent(`${st.name ?? 'agent'} plan: ${st.last_plan}`);
    state.prevPlan = st.last_plan;
    const leaderChanged = state.prev !== null && state.prev.leader !== c.leader;
    state.prev = c;
    if (c.leader !== null) state.lastLeader = c.leader;
    renderSummary(c, st);
    renderMembers(c);
    renderChart(c);
    if (leaderChanged) state.historyDue = state.polls + 3;
    if (state.polls % HISTORY_EVERY === 1 || leaderChanged || state.polls === state.historyDue) void pollHistory();
    $('error').textContent = '';
    $('updated').textContent = `updated ${clock()}`;
    document.body.dataset.leader = c.leader ?? '';
  } catch (err) {
    if (!state.failing) addEvent(`cannot read the agent: ${err.message}`);
    state.failing = true;
    $('error').textContent = err.message;
    const fresh = $('freshness');
    fresh.textContent = 'agent unreachable';
    fresh.className = 'badge down';
  } finally {
    setTimeout(poll, POLL_MS);
  }
}

poll();
