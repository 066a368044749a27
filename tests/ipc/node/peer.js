// tests/ipc/node/peer.js
// A real node-ipc 9.2.1 peer for conch's interop tests (node code, not conch's).
//
//   node peer.js server MODULES WHERE N          node-ipc server at WHERE (a path, or host:port)
//   node peer.js client MODULES WHERE N ID [K]   node-ipc client named ID (K: expected broadcasts, default 1)
//   node peer.js echo-server MODULES WHERE       a server that only echoes "ping" (reconnect tests)
//   node peer.js echo-client MODULES WHERE ID C  a client that says "hello" on each connect, exits after C connects
//
// Protocol both sides follow (N events each way, order checked per sender):
//   client -> server  "seq" {id, seq: 0..N-1}; server echoes each back as "seq"
//   client -> server  "done" {id}
//   server -> client  "whoami" <the id the server learnt from data.id>, then
//                     "down" {seq: 0..N-1}, then broadcast "bcast" once every
//                     client is done, then "end"
// The client exits 0 only if every check held; it prints what failed.
'use strict';
const path = require('path');
const [mode, modulesArg, where, nArg, id, kArg] = process.argv.slice(2);
const modules = path.resolve(modulesArg || '.');
const pkg = require(path.join(modules, 'node-ipc', 'package.json'));
if (pkg.version !== '9.2.1') {
  console.error(`peer.js: node-ipc ${pkg.version} found; only 9.2.1 is allowed`);
  process.exit(3);
}
const ipc = require(path.join(modules, 'node-ipc'));
ipc.config.silent = true;
ipc.config.retry = 100;
const n = Number(nArg || 0);
const tcp = /^[^/]*:\d+$/.test(where);
const [host, port] = tcp ? [where.slice(0, where.lastIndexOf(':')), Number(where.slice(where.lastIndexOf(':') + 1))] : [];

function fail(msg) {
  console.error(`peer.js ${mode} ${id || ''}: ${msg}`);
  process.exit(1);
}
// A test that hangs is a failure with a reason, never a silent timeout.
setTimeout(() => fail('timed out after 120 s'), 120000).unref();

function serve(setup) {
  ipc.config.id = 'node-peer';
  if (tcp) ipc.serveNet(host, port, () => setup(ipc.server));
  else ipc.serve(where, () => setup(ipc.server));
  ipc.server.start();
}

function connect(name, onClient) {
  ipc.config.id = name;
  if (tcp) ipc.connectToNet('peer', host, port, () => onClient(ipc.of.peer));
  else ipc.connectTo('peer', where, () => onClient(ipc.of.peer));
}

if (mode === 'server') {
  let done = [];
  serve((srv) => {
    srv.on('seq', (data, socket) => srv.emit(socket, 'seq', data));
    srv.on('done', (data, socket) => {
      srv.emit(socket, 'whoami', socket.id);
      for (let i = 0; i < n; i++) srv.emit(socket, 'down', { seq: i });
      done.push(socket);
      srv.broadcast('bcast', { clients: done.length });
      srv.emit(socket, 'end', {});
    });
    console.log('ready');
  });
} else if (mode === 'client') {
  const k = Number(kArg || 1);
  let up = 0, down = 0, bcasts = 0, whoami = null;
  connect(id, (c) => {
    c.on('connect', () => {
      if (up !== 0 || down !== 0) fail('reconnected in the middle of the exchange');
      for (let i = 0; i < n; i++) c.emit('seq', { id, seq: i });
      c.emit('done', { id });
    });
    c.on('seq', (d) => {
      if (d.seq !== up) fail(`echo ${d.seq} arrived when ${up} was due`);
      up++;
    });
    c.on('whoami', (d) => { whoami = d; });
    c.on('down', (d) => {
      if (d.seq !== down) fail(`down ${d.seq} arrived when ${down} was due`);
      down++;
    });
    c.on('bcast', () => { bcasts++; });
    c.on('end', () => {
      if (up !== n) fail(`${up} of ${n} echoes before end`);
      if (down !== n) fail(`${down} of ${n} events before end`);
      if (whoami !== id) fail(`the server named us ${JSON.stringify(whoami)}`);
      // Broadcasts for clients that finish later may still come: wait for k.
      const finish = () => {
        if (bcasts < k) return setTimeout(finish, 10);
        console.log(`client ${id}: ${n} each way in order, named ${whoami}, ${bcasts} broadcasts`);
        process.exit(0);
      };
      finish();
    });
    c.on('error', (e) => { if (e && e.message === 'Invalid JSON response format') fail('bad JSON from the server: ' + JSON.stringify(String(e.response).slice(0, 200))); });
  });
} else if (mode === 'echo-server') {
  serve((srv) => {
    srv.on('ping', (data, socket) => srv.emit(socket, 'pong', data));
    console.log('ready');
  });
} else if (mode === 'echo-client') {
  const want = Number(kArg || 1);
  let connects = 0;
  connect(id, (c) => {
    c.on('connect', () => {
      connects++;
      c.emit('hello', { id, connects });
    });
    c.on('bye', () => {
      if (connects >= want) {
        console.log(`echo-client ${id}: ${connects} connects`);
        process.exit(0);
      }
    });
  });
} else {
  fail('unknown mode');
}
