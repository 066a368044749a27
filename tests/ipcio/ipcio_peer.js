// tests/ipcio/ipcio_peer.js
// A TEST PEER, not conch code: an independent ipcIO server and client in plain node, written from
// PROTOCOLS.md §3 (npm ipcio 0.6.2's wire, whose package is not available here), used to check that
// conch's ipcIO peers interoperate. It reproduces the real library's receive quirks on purpose:
// each read is parsed on its own (CR/LF deleted, "}{" -> "},{", wrapped in [ ]), falsy
// id/command/data/delivery become null, a split message is lost (error 101).
//
// Usage: node ipcio_peer.js server <prefix> <domain>
//          Handlers: ping -> emit pong(data) to the sender and return data; add -> a + b; echo -> data;
//          shout -> broadcast shouted(data); quit -> close everything, exit 0.
//          Prints "ready" once listening; a line per command received ("cmd <name> <command> <json>").
//        node ipcio_peer.js clients <prefix> <domain>
//          Scenario against a server (conch's, with the handlers of tests/ipcio/interop_test.cpp):
//          handshake, name conflict, send, deliver, client-to-client emit and delivery,
//          broadcast, discover, falsy data; exits 0 when every check passed.
//        node ipcio_peer.js bench <prefix> <domain> <clients> <bytes> <secs>   (see bench() below)
'use strict';
const net = require('net');
const fs = require('fs');
const crypto = require('crypto');

const hex32 = () => crypto.randomBytes(16).toString('hex');
const lost = Symbol('lost');
const msg = (id, command, data, delivery) =>
  JSON.stringify({ id: id ?? null, command: command ?? null, data: data === undefined ? null : data,
                   delivery: delivery ?? null });

// The real library's per-read parser.
function parseChunk(chunk) {
  const text = '[' + chunk.toString().replace(/[\r\n]/g, '').replace(/}{/g, '},{') + ']';
  let arr;
  try { arr = JSON.parse(text); } catch (e) { return [{ id: null, command: 'error', data: 101, delivery: null }]; }
  if (!Array.isArray(arr)) return [{ id: null, command: 'error', data: 102, delivery: null }];
  return arr.map((el) => {
    const o = (el !== null && typeof el === 'object' && !Array.isArray(el)) ? el : { command: null, data: el };
    return { id: o.id || null, command: o.command || null, data: o.data || null, delivery: o.delivery || null };
  });
}

function fail(why) {
  console.error('ipcio_peer: FAIL: ' + why);
  process.exit(1);
}

// ---- server ----
function server(prefix, domain) {
  const path = `${prefix}.${domain}`;
  try { fs.unlinkSync(path); } catch (e) { /* none */ }
  const clients = new Map();  // name -> { own socket, domain socket }
  const deliveries = new Map();  // delivery -> sender name
  const sockets = new Set();
  const handlers = {
    ping: (c) => { emit(c.name, 'pong', c.data); return c.data; },
    add: (c) => c.data.a + c.data.b,
    echo: (c) => c.data,
    shout: (c) => { broadcast('shouted', c.data); return null; },
    quit: () => { setImmediate(shutdown); return null; },
  };
  const write = (sock, text) => { if (sock && !sock.destroyed) sock.write(text); };
  function emit(name, command, data, delivery) {
    const c = clients.get(name);
    if (c) write(c.own, msg(null, command, data, delivery));
  }
  function broadcast(command, data) { for (const name of clients.keys()) emit(name, command, data); }
  function shutdown() {
    for (const s of sockets) s.destroy();
    srv.close(() => process.exit(0));
  }
  const srv = net.createServer((dsock) => {
    sockets.add(dsock);
    let myName = null;
    dsock.on('close', () => { sockets.delete(dsock); if (myName) { const c = clients.get(myName); if (c && c.domain === dsock) { clients.delete(myName); if (c.own) c.own.destroy(); } } });
    dsock.on('error', () => {});
    dsock.on('data', (chunk) => {
      for (const m of parseChunk(chunk)) {
        if (m.command === 'handshake') {
          const name = m.data;
          if (clients.has(name)) { write(dsock, msg(name, 'error', 201)); continue; }
          const channel = hex32();
          const entry = { domain: dsock, own: null };
          clients.set(name, entry);
          myName = name;
          const cpath = `${path}.${channel}`;
          const one = net.createServer((own) => {
            one.close();
            sockets.add(own);
            entry.own = own;
            own.on('error', () => {});
            own.on('close', () => { sockets.delete(own); if (clients.get(name) === entry) clients.delete(name); dsock.destroy(); });
            own.on('data', (c2) => {
              for (const k of parseChunk(c2)) {
                console.log(`cmd ${name} ${k.command} ${JSON.stringify(k.data)}`);
                if (k.command === 'deliver') {
                  const sender = deliveries.get(k.delivery);
                  deliveries.delete(k.delivery);
                  if (sender) emit(sender, 'deliver', k.data, k.delivery);
                  continue;
                }
                const h = handlers[k.command];
                if (!h) continue;
                const ret = h({ data: k.data, name, uuid: channel });
                if (k.delivery) write(own, msg(null, 'deliver', ret, k.delivery));
              }
            });
          });
          one.listen(cpath, () => write(dsock, msg(name, 'handshake', channel)));
        } else if (m.command === 'discover') {
          write(dsock, msg(m.id, 'discover', { clients: [...clients.keys()], command_handlers: Object.keys(handlers) }));
        } else if (m.command === 'broadcast') {
          const inner = JSON.parse(m.data);
          broadcast(inner.command, inner.data);
        } else if (m.command === 'emit') {
          const inner = JSON.parse(m.data);
          if (m.delivery) deliveries.set(m.delivery, m.id);
          emit(inner.id, inner.command, inner.data, inner.delivery);
        }
      }
    });
  });
  srv.listen(path, () => console.log('ready'));
}

// ---- client ----
// A client of the peer: handshake, then both sockets; `on` handlers return deliver results.
function client(prefix, domain, name) {
  const path = `${prefix}.${domain}`;
  const self = { name, handlers: {}, waiters: [], inbox: [], own: null, dom: null };
  const deliver = new Map();
  self.ready = new Promise((resolve, reject) => {
    const dom = net.connect(path, () => dom.write(msg(null, 'handshake', name)));
    self.dom = dom;
    dom.on('error', reject);
    dom.on('data', (chunk) => {
      for (const m of parseChunk(chunk)) {
        if (m.command === 'error' && m.id === name) reject(new Error('error ' + m.data));
        else if (m.command === 'handshake' && m.id === name) {
          const own = net.connect(`${path}.${m.data}`, () => resolve(self));
          self.own = own;
          own.on('error', reject);
          own.on('data', (c2) => {
            for (const k of parseChunk(c2)) {
              if (k.command === 'deliver' && deliver.has(k.delivery)) { deliver.get(k.delivery)(k.data); deliver.delete(k.delivery); continue; }
              const h = self.handlers[k.command];
              if (h) {
                const ret = h(k.data);
                if (k.delivery) own.write(msg(null, 'deliver', ret, k.delivery));
              }
              self.inbox.push(k);
              self.waiters = self.waiters.filter((w) => !w());
            }
          });
        } else if (m.command === 'discover') {
          const w = deliver.get('discover');
          deliver.delete('discover');
          if (w) w(m.data);
        }
      }
    });
  });
  // Resolves with the next received command `cmd` (from the inbox).
  self.next = (cmd) => new Promise((resolve) => {
    const look = () => {
      const i = self.inbox.findIndex((k) => k.command === cmd);
      if (i < 0) return false;
      resolve(self.inbox.splice(i, 1)[0]);
      return true;
    };
    if (!look()) self.waiters.push(look);
  });
  self.send = (cmd, data) => self.own.write(msg(null, cmd, data));
  // Resolves with the answer; with `limit` ms, with `lost` if none came (the real parser drops
  // a message split across reads).
  self.deliver = (cmd, data, limit) => new Promise((resolve) => {
    const d = hex32();
    deliver.set(d, resolve);
    self.own.write(msg(null, cmd, data, d));
    if (limit) setTimeout(() => { if (deliver.delete(d)) resolve(lost); }, limit);
  });
  self.emit = (target, cmd, data, d) =>
    self.dom.write(msg(name, 'emit', msg(target, cmd, data, d), d));
  self.deliverTo = (target, cmd, data) => new Promise((resolve) => {
    const d = hex32();
    deliver.set(d, resolve);
    self.emit(target, cmd, data, d);
  });
  self.broadcast = (cmd, data) => self.dom.write(msg(name, 'broadcast', msg(null, cmd, data)));
  self.discover = () => new Promise((resolve) => {
    deliver.set('discover', resolve);
    self.dom.write(msg(name, 'discover', null));
  });
  self.close = () => { self.own.destroy(); self.dom.destroy(); };
  return self;
}

// JSON text with object keys sorted: a Lua peer's tables have no key order.
const canon = (v) => JSON.stringify(v, (k, x) => (x && typeof x === 'object' && !Array.isArray(x)
  ? Object.fromEntries(Object.keys(x).sort().map((key) => [key, x[key]])) : x));

function same(a, b, what) {
  if (canon(a) !== canon(b)) fail(`${what}: got ${JSON.stringify(a)}, want ${JSON.stringify(b)}`);
  console.log('ok ' + what);
}

async function clients(prefix, domain) {
  const alpha = await client(prefix, domain, 'alpha').ready;
  same(true, true, 'handshake alpha');
  const dup = await client(prefix, domain, 'alpha').ready.then(() => 'accepted', (e) => e.message);
  same(dup, 'error 201', 'name conflict');
  alpha.send('ping', { seq: 1, text: 'hello' });
  same((await alpha.next('pong')).data, { seq: 1, text: 'hello' }, 'send ping, pong emitted back');
  same(await alpha.deliver('add', { a: 2, b: 3 }), 5, 'deliver add');
  const beta = await client(prefix, domain, 'beta').ready;
  beta.handlers.double = (d) => d * 2;
  alpha.emit('beta', 'hello', { from: 'alpha' });
  same((await beta.next('hello')).data, { from: 'alpha' }, 'client-to-client emit');
  same(await alpha.deliverTo('beta', 'double', 21), 42, 'client-to-client delivery');
  alpha.broadcast('news', [1, 2, 3]);
  same((await alpha.next('news')).data, [1, 2, 3], 'broadcast reaches the sender');
  same((await beta.next('news')).data, [1, 2, 3], 'broadcast reaches beta');
  const d = await alpha.discover();
  same(d.clients.sort(), ['alpha', 'beta'], 'discover clients');
  same(d.command_handlers.includes('add') && d.command_handlers.includes('ping'), true, 'discover handlers');
  alpha.send('ask_broadcast', 'to all');
  same((await beta.next('from_server')).data, 'to all', 'server broadcast');
  same((await alpha.next('from_server')).data, 'to all', 'server broadcast to the asker');
  // falsy data as sent: conch's handler "kinds" returns the JSON types it got, as a string.
  same(await alpha.deliver('kinds', 0), 'number:0', 'data 0 arrives as 0');
  same(await alpha.deliver('kinds', false), 'false', 'data false arrives as false');
  same(await alpha.deliver('kinds', ''), 'string:', 'data "" arrives as ""');
  alpha.close();
  beta.close();
  process.exit(0);
}

// Load for bench/ipcio_bench.cpp: `n` clients, 16 delivers of "echo" in flight each, `size`-byte
// string payloads, for `secs` s; prints "rt=<round trips> bad=<wrong echoes> p50=<ms> p99=<ms> lost=<n>"
// (lost: no answer within 1 s, what the real per-read parser does to a message split across reads).
async function bench(prefix, domain, n, size, secs) {
  const payload = 'x'.repeat(size);
  const cs = [];
  for (let i = 0; i < n; i++) cs.push(await client(prefix, domain, `bench${i}-${hex32()}`).ready);
  const lat = [];
  let bad = 0;
  let dropped = 0;
  const end = Date.now() + secs * 1000;
  const loop = async (c) => {
    while (Date.now() < end) {
      const t0 = process.hrtime.bigint();
      const r = await c.deliver('echo', payload, 1000);
      if (r === lost) { dropped++; continue; }
      lat.push(Number(process.hrtime.bigint() - t0) / 1e6);
      if (r !== payload) bad++;
    }
  };
  const runs = [];
  for (const c of cs) for (let k = 0; k < 16; k++) runs.push(loop(c));
  await Promise.all(runs);
  lat.sort((a, b) => a - b);
  const q = (f) => (lat.length ? lat[Math.min(lat.length - 1, Math.floor(f * lat.length))] : 0);
  console.log(`rt=${lat.length} bad=${bad} p50=${q(0.5).toFixed(3)} p99=${q(0.99).toFixed(3)} lost=${dropped}`);
  for (const c of cs) c.close();
  process.exit(0);
}

const [mode, prefix, domain] = process.argv.slice(2);
setTimeout(() => fail('timed out'), 120000).unref();
if (mode === 'server') server(prefix, domain);
else if (mode === 'clients') clients(prefix, domain).catch((e) => fail(e.stack));
else if (mode === 'bench') {
  const [n, size, secs] = process.argv.slice(5).map(Number);
  bench(prefix, domain, n, size, secs).catch((e) => fail(e.stack));
}
else fail('usage: node ipcio_peer.js server|clients <prefix> <domain>');
