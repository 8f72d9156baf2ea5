// runnel dashboard: plain JavaScript, no library, no build step. Every
// figure comes from this box's own JSON API (/api/..., /topics/...).
'use strict';

const $ = (sel, el = document) => el.querySelector(sel);
const main = $('#main');
const state = { timer: null, page: '', hist: {}, tail: null, topic: null };

// ---- helpers --------------------------------------------------------------

function esc(s) {
  return String(s ?? '').replace(/[&<>"']/g, c => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' }[c]));
}
function num(n, d = 0) {
  if (n === null || n === undefined || Number.isNaN(n)) return '–';
  return Number(n).toLocaleString('en-US', { maximumFractionDigits: d, minimumFractionDigits: 0 });
}
function bytes(n) {
  if (n === null || n === undefined) return '–';
  const u = ['B', 'KB', 'MB', 'GB', 'TB']; let i = 0; n = Number(n);
  while (Math.abs(n) >= 1000 && i < u.length - 1) { n /= 1000; i++; }
  return num(n, n < 10 && i > 0 ? 2 : 1) + ' ' + u[i];
}
function dur(s) {
  if (s === null || s === undefined) return '–';
  s = Math.round(s);
  if (s < 60) return s + ' s';
  if (s < 3600) return Math.floor(s / 60) + ' min ' + (s % 60) + ' s';
  if (s < 86400) return Math.floor(s / 3600) + ' h ' + Math.floor((s % 3600) / 60) + ' min';
  return Math.floor(s / 86400) + ' d ' + Math.floor((s % 86400) / 3600) + ' h';
}
async function api(path, opts) {
  const r = await fetch(path, Object.assign({ headers: { Accept: 'application/json' } }, opts));
  const text = await r.text();
  let body = null;
  try { body = text ? JSON.parse(text) : null; } catch (e) { body = { message: text }; }
  if (!r.ok) throw new Error((body && body.message) || (r.status + ' ' + r.statusText));
  return body;
}
function spark(values) {
  if (values.length < 2) return '<svg class="spark" viewBox="0 0 100 30"></svg>';
  const mx = Math.max(...values, 1e-9);
  const pts = values.map((v, i) => (i * 100 / (values.length - 1)).toFixed(1) + ',' + (29 - v / mx * 27).toFixed(1));
  return '<svg class="spark" viewBox="0 0 100 30" preserveAspectRatio="none"><path d="M' + pts.join('L') + '"/></svg>';
}
function remember(key, v) {
  const h = state.hist[key] || (state.hist[key] = []);
  h.push(v); if (h.length > 60) h.shift();
  return h;
}
function card(title, body, id) {
  return '<section class="card"' + (id ? ' id="' + id + '"' : '') + '><h2>' + esc(title) + '</h2>' + body + '</section>';
}
function showError(e) {
  main.innerHTML = '<div class="card bad">Cannot load: ' + esc(e.message) + '</div>';
}
function poll(fn, ms = 2000) {
  clearInterval(state.timer);
  const run = () => { if (!document.hidden) fn().catch(showError); };
  run();
  state.timer = setInterval(run, ms);
}

// ---- theme ----------------------------------------------------------------

function applyTheme(t) {
  if (t) document.documentElement.dataset.theme = t; else delete document.documentElement.dataset.theme;
}
applyTheme(new URLSearchParams(location.search).get('theme') || localStorage.getItem('runnel-theme'));
$('#theme').onclick = () => {
  const dark = document.documentElement.dataset.theme === 'dark' ||
    (!document.documentElement.dataset.theme && matchMedia('(prefers-color-scheme: dark)').matches);
  const t = dark ? 'light' : 'dark';
  localStorage.setItem('runnel-theme', t); applyTheme(t);
};

// ---- alarms (every page) --------------------------------------------------

function renderAlarms(ov) {
  $('#node').textContent = ov.node_id + (ov.site ? ' @ ' + ov.site : '') + ' · ' + ov.version;
  $('#alarms').innerHTML = ov.alarms.map(a => '<div class="alarm ' + esc(a.severity) + '" data-alarm>' + esc(a.message) + '</div>').join('');
}

// ---- Overview -------------------------------------------------------------

async function overview() {
  const ov = await api('/api/overview');
  renderAlarms(ov);
  const rows = ov.ingest.map(r => {
    const h = remember('ingest-' + r.protocol, r.records_per_sec);
    return '<tr data-protocol="' + esc(r.protocol) + '"><td>' + esc(r.protocol) + '</td><td class="num" data-field="rate">' + num(r.records_per_sec, 1) +
      '</td><td class="num">' + bytes(r.bytes_per_sec) + '/s</td><td class="num" data-field="total">' + num(r.records_total) + '</td><td style="width:30%">' + spark(h) + '</td></tr>';
  }).join('');
  const d = ov.disk, w = ov.writes, f = ov.fsync, c = ov.clock;
  const used = d.total_bytes ? (1 - d.free_bytes / d.total_bytes) * 100 : 0;
  const emmc = w.emmc.length ? w.emmc.map(e => esc(e.device) + ': type A ' + lifeTime(e.life_time_a) + ', type B ' + lifeTime(e.life_time_b) +
    (e.pre_eol > 1 ? ' <span class="bad">pre-EOL ' + e.pre_eol + '</span>' : '')).join('<br>') : '<span class="muted">no eMMC wear data on this box</span>';
  const ro = ov.read_only.length ? '<table>' + ov.read_only.map(p => '<tr class="bad"><td>' + esc(p.topic) + '/' + p.partition + '</td><td>' + esc(p.error) + '</td></tr>').join('') + '</table>'
    : '<span class="ok">none</span>';
  main.innerHTML = '<div class="grid">' +
    card('Node', '<dl class="kv"><dt>node</dt><dd data-field="node">' + esc(ov.node_id) + '</dd><dt>site</dt><dd>' + esc(ov.site || '–') + '</dd><dt>version</dt><dd>' + esc(ov.version) +
      '</dd><dt>uptime</dt><dd data-field="uptime">' + dur(ov.uptime_seconds) + '</dd></dl>') +
    card('Clock', c.known ? (c.synchronized ? '<span class="big ok">synchronised</span>' : '<span class="big bad">not synchronised</span>') +
      '<div class="muted">max error ' + num(c.max_error_us / 1000, 1) + ' ms, estimated ' + num(c.est_error_us / 1000, 1) + ' ms (adjtimex)</div>' : '<span class="muted">' + esc(c.source) + '</span>', 'clock') +
    card('Disk', '<div class="big" data-field="free">' + bytes(d.free_bytes) + ' free</div><div class="bar"><div style="width:' + used.toFixed(1) + '%"' + (d.short ? ' class="over"' : '') + '></div></div>' +
      '<div>of ' + bytes(d.total_bytes) + (d.device ? ' on ' + esc(d.device) : '') + '</div><div data-field="hours">' +
      (d.hours_until_full === null ? (d.net_growth_bytes_per_sec === undefined ? 'measuring the net ingest rate…' : 'not filling at the current net rate') : 'full in <b>' + num(d.hours_until_full, 1) + ' h</b> at the current net rate') +
      '</div><div class="muted">then on-full <b>' + esc(d.on_full) + '</b> applies (guard ' + bytes(d.min_free_bytes) + ')</div>', 'disk') +
    card('Fsync', '<div class="big">' + (f.mean_ms !== undefined ? num(f.mean_ms, 2) + ' ms' : '–') + '</div><div class="muted">mean over the last minute; ' +
      num(f.mean_ms_since_start, 2) + ' ms since start, ' + num(f.fsyncs_total) + ' fsyncs</div>') +
    card('Device writes (wear)', '<dl class="kv"><dt>per day</dt><dd data-field="perday">' + bytes(w.process_write_bytes_per_day ?? w.process_write_bytes_per_day_since_start) + '</dd>' +
      '<dt>per byte ingested</dt><dd>' + num(w.device_bytes_per_byte ?? w.device_bytes_per_byte_since_start, 2) + '</dd>' +
      '<dt>device (all processes)</dt><dd>' + (w.device_write_bytes_per_day !== undefined ? bytes(w.device_write_bytes_per_day) + '/day' : '–') + '</dd>' +
      '<dt>eMMC life</dt><dd>' + emmc + '</dd></dl>') +
    card('Read-only partitions', ro) +
    '</div><div class="grid wide" style="margin-top:1rem">' +
    card('Ingest', '<table id="ingest" class="span"><tr><th>protocol</th><th class="num">records/s</th><th class="num">bytes/s</th><th class="num">records</th><th></th></tr>' + rows + '</table>') +
    '</div>';
}
function lifeTime(v) {
  if (!v) return '–';
  if (v >= 11) return '<span class="bad">exceeded</span>';
  return ((v - 1) * 10) + '-' + (v * 10) + '% used';
}

// ---- Uplink ---------------------------------------------------------------

// since renders a route's time (when it entered its state, or lost its
// link) and how long ago, by the box's clock: "since 14:03 · 2 h 5 min"
// (the date too when not today).
function since(field, label, at, now) {
  const t = Date.parse(at), n = Date.parse(now);
  if (!at || Number.isNaN(t) || t <= 0) return '';
  const d = new Date(t), today = new Date(n).toDateString() === d.toDateString();
  const hm = d.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
  return '<div class="muted" data-field="' + field + '" title="' + esc(d.toLocaleString()) + '">' + esc(label) + ' ' + esc(today ? hm : d.toLocaleDateString() + ' ' + hm) +
    ' · ' + dur(Math.max((n - t) / 1000, 0)) + '</div>';
}

async function uplink() {
  const [ov, up] = await Promise.all([api('/api/overview'), api('/api/uplink')]);
  renderAlarms(ov);
  const budget = up.budget_bytes_per_day;
  if (!up.routes.length) { main.innerHTML = card('Uplink', '<p class="muted">No forwarding routes on this node (set upstreams and routes in the configuration).</p>'); return; }
  const rows = up.routes.map(r => {
    const perDay = r.bytes_per_sec * 86400;
    const cls = r.state === 'connected' ? 'ok' : r.state === 'paused' ? 'warn' : 'bad';
    const pct = budget ? Math.min(perDay / budget * 100, 100) : 0;
    return '<tr data-route="' + esc(r.name) + '"><td><b>' + esc(r.name) + '</b><div class="muted">' + esc(r.kind) + ' → ' + esc(r.upstream) + '</div></td>' +
      '<td><span class="badge ' + cls + '">' + esc(r.state) + '</span>' + since('since', 'since', r.state_since, up.now) +
        (r.down_since && Date.parse(r.down_since) < Date.parse(r.state_since) - 1000 ? since('down-since', 'no link since', r.down_since, up.now) : '') + (r.last_ack ? '<div class="muted">last ack ' + esc(new Date(r.last_ack).toLocaleTimeString()) + '</div>' : '') + '</td>' +
      '<td class="num">' + num(r.lag_records) + '</td><td class="num">' + bytes(r.lag_bytes) + '</td><td class="num">' + dur(r.oldest_unsent_age_ns / 1e9) + '</td>' +
      '<td class="num">' + num(r.records_per_sec, 1) + '</td><td class="num">' + bytes(perDay) + (budget ? '<div class="bar"><div style="width:' + pct.toFixed(0) + '%"' + (perDay > budget ? ' class="over"' : '') + '></div></div>' : '') + '</td>' +
      '<td>' + (r.last_error ? '<span class="bad">' + esc(r.last_error) + '</span><div class="muted">' + esc(new Date(r.last_error_time).toLocaleString()) + '</div>' : '<span class="muted">–</span>') + '</td>' +
      '<td class="num">' + num(r.dropped_unforwarded) + '</td>' +
      '<td><button data-pause="' + esc(r.name) + '" data-paused="' + (r.state === 'paused') + '">' + (r.state === 'paused' ? 'Resume' : 'Pause') + '</button></td></tr>';
  }).join('');
  main.innerHTML = card('Routes' + (budget ? ' (link budget ' + bytes(budget) + '/day)' : ''),
    '<table id="routes"><tr><th>route</th><th>state</th><th class="num">backlog records</th><th class="num">backlog bytes</th><th class="num">oldest unsent</th><th class="num">records/s</th><th class="num">per day</th><th>last error</th><th class="num">dropped</th><th></th></tr>' + rows + '</table>');
  main.querySelectorAll('[data-pause]').forEach(b => b.onclick = async () => {
    try { await api('/api/routes/' + encodeURIComponent(b.dataset.pause) + (b.dataset.paused === 'true' ? '/resume' : '/pause'), { method: 'POST' }); uplink(); } catch (e) { alert(e.message); }
  });
}

// ---- Topics ---------------------------------------------------------------

async function topics(name) {
  const [ov, ts] = await Promise.all([api('/api/overview'), api('/api/topics')]);
  renderAlarms(ov);
  if (name) return topicPage(ts.find(t => t.name === name), name);
  const rows = ts.map(t => {
    const recs = t.partitions.reduce((a, p) => a + p.end - p.start, 0);
    const size = t.partitions.reduce((a, p) => a + p.bytes, 0);
    return '<tr data-topic="' + esc(t.name) + '"><td><a href="#/topics/' + encodeURIComponent(t.name) + '">' + esc(t.name) + '</a></td><td class="num">' + t.partitions.length +
      '</td><td class="num" data-field="records">' + num(recs) + '</td><td class="num">' + bytes(size) + '</td><td>' + retention(t) + '</td><td>' + esc(t.fsync) + '</td><td>' + esc(t.on_full) + '</td></tr>';
  }).join('');
  main.innerHTML = card('Topics', '<table id="topics"><tr><th>topic</th><th class="num">partitions</th><th class="num">records held</th><th class="num">size</th><th>retention</th><th>fsync</th><th>on full</th></tr>' + rows + '</table>');
}
function retention(t) {
  const a = t.retention_ms < 0 ? 'forever' : dur(t.retention_ms / 1000);
  return a + (t.retention_bytes >= 0 ? ', ' + bytes(t.retention_bytes) + '/partition' : '');
}
function topicPage(t, name) {
  if (!t) { main.innerHTML = card('Topic ' + name, '<p class="bad">No such topic.</p>'); return; }
  const parts = t.partitions.map(p => '<tr><td>' + p.partition + '</td><td class="num">' + num(p.start) + '</td><td class="num" data-field="end">' + num(p.end) +
    '</td><td class="num">' + bytes(p.bytes) + '</td><td class="num">' + p.segments + '</td><td>' + (p.error ? '<span class="bad">' + esc(p.error) + '</span>' : '') + '</td></tr>').join('');
  const popt = t.partitions.map(p => '<option>' + p.partition + '</option>').join('');
  if (state.topic !== name) {
    state.topic = name;
    main.innerHTML = '<p><a href="#/topics">← topics</a></p><div class="grid wide">' +
      card(name, '<div id="tparts"></div><p class="muted">retention ' + retention(t) + ', fsync ' + esc(t.fsync) + ', on full ' + esc(t.on_full) + '</p>') +
      card('Produce', '<div class="row"><input id="pkey" placeholder="key (optional)"><select id="ppart"><option value="">partition: by key</option>' + popt + '</select></div>' +
        '<textarea id="pval" rows="3" style="width:100%" placeholder="value (text, or JSON)"></textarea><div class="row"><button class="primary" id="psend">Produce</button><span id="pres" class="muted"></span></div>') +
      '</div><div class="grid wide" style="margin-top:1rem">' +
      card('Messages', '<div class="row"><select id="bpart">' + popt + '</select><select id="bfrom"><option value="newest">newest</option><option value="oldest">oldest</option><option value="offset">offset</option><option value="time">time</option></select>' +
        '<input id="barg" placeholder="offset or 2026-01-31T12:00" size="18"><select id="bview"><option>text</option><option>json</option><option>hex</option></select><button id="bgo">Show</button></div><div id="browse"></div>') +
      card('Live tail', '<div class="row"><button id="tgo">Start</button><span id="tstate" class="muted">stopped</span></div><div id="tail-list"></div>') +
      '</div>';
    $('#psend').onclick = () => produce(name);
    $('#bgo').onclick = () => browse(name).catch(e => { $('#browse').innerHTML = '<p class="bad">' + esc(e.message) + '</p>'; });
    $('#tgo').onclick = () => toggleTail(name);
  }
  $('#tparts').innerHTML = '<table id="parts"><tr><th>partition</th><th class="num">start</th><th class="num">end</th><th class="num">size</th><th class="num">segments</th><th></th></tr>' + parts + '</table>';
}
async function produce(topic) {
  const rec = {}; const k = $('#pkey').value, v = $('#pval').value, p = $('#ppart').value;
  if (k) rec.key = k;
  try { rec.value = JSON.parse(v); } catch (e) { rec.value = v; }
  if (typeof rec.value === 'number' || typeof rec.value === 'boolean') rec.value = v; // keep text as typed
  if (p !== '') rec.partition = Number(p);
  try {
    const r = await api('/topics/' + encodeURIComponent(topic), { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ records: [rec] }) });
    $('#pres').textContent = 'stored at partition ' + r.offsets[0].partition + ', offset ' + r.offsets[0].offset;
  } catch (e) { $('#pres').innerHTML = '<span class="bad">' + esc(e.message) + '</span>'; }
}
function show(v, enc, view) {
  if (v === null || v === undefined) return '<span class="muted">null</span>';
  let bytesArr = null;
  if (enc === 'base64') bytesArr = Uint8Array.from(atob(v), c => c.charCodeAt(0));
  if (view === 'hex') {
    const b = bytesArr || new TextEncoder().encode(v);
    return '<pre>' + Array.from(b, x => x.toString(16).padStart(2, '0')).join(' ') + '</pre>';
  }
  if (bytesArr) return '<pre class="muted">base64 ' + esc(v) + '</pre>';
  if (view === 'json') { try { return '<pre>' + esc(JSON.stringify(JSON.parse(v), null, 2)) + '</pre>'; } catch (e) { /* not JSON */ } }
  return '<pre>' + esc(v) + '</pre>';
}
function recordRow(r, view) {
  const hs = r.headers.map(h => esc(h.key) + '=' + esc(h.value ?? 'null')).join('<br>');
  return '<tr><td class="num">' + r.partition + '/' + r.offset + '</td><td>' + esc(new Date(r.timestamp).toISOString()) + '</td><td>' + show(r.key, r.key_encoding, view) +
    '</td><td>' + show(r.value, r.value_encoding, view) + '</td><td class="mono">' + hs + '</td></tr>';
}
const recordHead = '<tr><th class="num">p/offset</th><th>timestamp</th><th>key</th><th>value</th><th>headers</th></tr>';
async function browse(topic) {
  const p = $('#bpart').value, from = $('#bfrom').value, arg = $('#barg').value, view = $('#bview').value, n = 20;
  const offs = await api('/api/topics/' + encodeURIComponent(topic) + '/offsets' + (from === 'time' ? '?time=' + Date.parse(arg) : ''));
  const po = offs.find(o => String(o.partition) === p);
  let off = po.start;
  if (from === 'newest') off = Math.max(po.start, po.end - n);
  if (from === 'offset') off = Math.min(Math.max(Number(arg) || 0, po.start), po.end);
  if (from === 'time') off = po.offset;
  const recs = await api('/topics/' + encodeURIComponent(topic) + '/partitions/' + p + '/records?timeout=0&max_bytes=262144&offset=' + off);
  $('#browse').innerHTML = recs.length ? '<table id="browse-table">' + recordHead + recs.slice(0, n).map(r => recordRow(r, view)).join('') + '</table>' : '<p class="muted">No records from offset ' + off + '.</p>';
}
function toggleTail(topic) {
  if (state.tail) { state.tail.close(); state.tail = null; $('#tgo').textContent = 'Start'; $('#tstate').textContent = 'stopped'; return; }
  const es = new EventSource('/topics/' + encodeURIComponent(topic) + '/tail?from=latest');
  state.tail = es;
  $('#tgo').textContent = 'Stop'; $('#tstate').textContent = 'connecting…';
  const list = $('#tail-list');
  list.innerHTML = '<table id="tail-table">' + recordHead + '</table>';
  es.onopen = () => { $('#tstate').textContent = 'live'; };
  es.onerror = () => { $('#tstate').textContent = 'reconnecting…'; };
  es.onmessage = ev => {
    const tb = $('#tail-table'); if (!tb) return;
    tb.insertAdjacentHTML('beforeend', recordRow(JSON.parse(ev.data), 'text'));
    while (tb.rows.length > 201) tb.deleteRow(1);
    $('#tstate').textContent = 'live · last event ' + ev.lastEventId;
  };
  es.addEventListener('gap', ev => {
    const g = JSON.parse(ev.data);
    $('#tail-table').insertAdjacentHTML('beforeend', '<tr><td colspan="5" class="warn">partition ' + g.partition + ': offsets ' + g.from + '–' + (g.to - 1) + ' deleted by retention</td></tr>');
  });
}

// ---- Consumers ------------------------------------------------------------

async function consumers() {
  const [ov, gs] = await Promise.all([api('/api/overview'), api('/api/consumers')]);
  renderAlarms(ov);
  if (!gs.length) { main.innerHTML = card('Consumer groups', '<p class="muted">No consumer groups (Kafka clients with a group.id appear here).</p>'); return; }
  main.innerHTML = '<div class="grid">' + gs.map(g => card(g.name,
    '<div><span class="badge">' + esc(g.state) + '</span> ' + g.members.length + ' members, lag <b data-field="lag">' + num(g.lag_records) + '</b> records</div>' +
    '<table><tr><th>member</th><th>client</th><th>host</th></tr>' + g.members.map(m => '<tr><td class="mono">' + esc(m.id) + '</td><td>' + esc(m.client_id) + '</td><td>' + esc(m.client_host) + '</td></tr>').join('') + '</table>' +
    '<table><tr><th>partition</th><th class="num">committed</th><th class="num">end</th><th class="num">lag</th><th class="num">lag (time)</th></tr>' +
    g.partitions.map(p => '<tr><td>' + esc(p.topic) + '/' + p.partition + '</td><td class="num">' + (p.committed < 0 ? 'none' : num(p.committed)) + '</td><td class="num">' + num(p.end) + '</td><td class="num">' + num(p.lag_records) +
      '</td><td class="num">' + (p.lag_seconds === null ? '–' : dur(p.lag_seconds)) + '</td></tr>').join('') + '</table>')).join('') + '</div>';
}

// ---- MQTT -----------------------------------------------------------------

async function mqtt() {
  const [ov, m] = await Promise.all([api('/api/overview'), api('/api/mqtt')]);
  renderAlarms(ov);
  if (!m.enabled) { main.innerHTML = card('MQTT', '<p class="muted">MQTT is off on this node.</p>'); return; }
  const b = m.broker;
  main.innerHTML = '<div class="grid">' +
    card('Clients (' + b.clients.length + ')', '<table id="mqtt-clients"><tr><th>client</th><th>remote</th><th>user</th><th>v</th><th>subscriptions</th></tr>' + b.clients.map(c =>
      '<tr><td>' + esc(c.id) + (c.connected ? '' : ' <span class="muted">(offline)</span>') + '</td><td>' + esc(c.remote) + '</td><td>' + esc(c.user || '') + '</td><td>' + c.protocol + '</td><td class="mono">' +
      c.subscriptions.map(s => esc(s.filter) + ' q' + s.qos).join('<br>') + '</td></tr>').join('') + '</table>') +
    card('Retained messages (' + b.retained.length + ')', '<table id="mqtt-retained"><tr><th>topic</th><th class="num">bytes</th><th>payload</th></tr>' + b.retained.map(r =>
      '<tr><td>' + esc(r.topic) + '</td><td class="num">' + r.size + '</td><td><pre>' + esc(r.payload) + '</pre></td></tr>').join('') + '</table>') +
    '</div>' + (b.truncated ? '<p class="muted">Lists cut at 500 entries.</p>' : '');
}

// ---- Peers ----------------------------------------------------------------

async function peers() {
  const [ov, p] = await Promise.all([api('/api/overview'), api('/api/peers')]);
  renderAlarms(ov);
  if (p.enabled === false) { main.innerHTML = card('Peers', '<p class="muted" id="peers-off">Site replication is off on this node (start it with --join or --gossip-addr).</p>'); return; }
  const members = (p.peers || []).map(m => '<tr><td>' + esc(m.node_id) + '</td><td><span class="badge ' + (m.state === 'alive' ? 'ok' : 'bad') + '">' + esc(m.state) + '</span></td><td>' + esc(m.addr || m.gossip_addr || '') +
    '</td><td>' + esc(m.last_contact || '') + '</td></tr>').join('');
  const parts = (p.partitions || []).map(x => '<tr><td>' + esc(x.topic) + '/' + x.partition + '</td><td>' + esc((x.in_sync || []).join(', ')) + '</td><td>' +
    (x.mirrors || []).map(m => esc(m.node_id) + ': ' + num(m.lag_records) + ' rec, ' + num(m.lag_seconds, 1) + ' s').join('<br>') + '</td></tr>').join('');
  const copies = (p.copies || []).map(c => '<tr><td>' + esc(c.topic) + '/' + c.partition + '</td><td>' + esc(c.origin) + '</td><td class="num">' + num(c.lag_records) + '</td><td class="num">' + num(c.lag_seconds, 1) +
    '</td><td>' + (c.stalled ? '<span class="bad">stalled</span>' : '') + '</td></tr>').join('');
  main.innerHTML = '<div class="grid">' + card('Members', '<table><tr><th>node</th><th>state</th><th>address</th><th>last contact</th></tr>' + members + '</table>') +
    card("This node's partitions", '<table><tr><th>partition</th><th>in sync</th><th>mirrors (lag)</th></tr>' + parts + '</table>') +
    card('Copies held here', '<table><tr><th>partition</th><th>origin</th><th class="num">lag</th><th class="num">s</th><th></th></tr>' + copies + '</table>') + '</div>';
}

// ---- router ---------------------------------------------------------------

const pages = { overview, uplink, topics, consumers, mqtt, peers };
function route() {
  const [, page = 'overview', arg] = location.hash.split('/');
  if (state.tail && (page !== 'topics' || decodeURIComponent(arg || '') !== state.topic)) { state.tail.close(); state.tail = null; }
  if (page !== 'topics' || !arg) state.topic = null;
  document.querySelectorAll('#nav a').forEach(a => a.classList.toggle('active', a.getAttribute('href') === '#/' + page));
  const fn = pages[page] || overview;
  poll(() => fn(arg ? decodeURIComponent(arg) : undefined), page === 'overview' || page === 'uplink' ? 2000 : 3000);
}
window.addEventListener('hashchange', route);
document.addEventListener('visibilitychange', () => { if (!document.hidden) route(); });
route();
