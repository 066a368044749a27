// bench/ipc_node_bench.js
// node-ipc 9.2.1 sides of the node-ipc benchmark (bench/run_ipc.sh): an echo server, and clients that time round trips.
//
//   node ipc_node_bench.js server MODULES PATH EXPECT           echo "ping" to its sender; after EXPECT
//                                                              echoes print cpu_us_per_event and exit
//   node ipc_node_bench.js client MODULES PATH CLIENTS BYTES N  CLIENTS connections in this process, N round
//                                                              trips each, 16 in flight; prints a bench= line
// The clients are the same whichever server they talk to (node-ipc's or conch_bench_ipc --serve), so the
// server is the only difference between those cells. Exits 1 on a lost or reordered echo.
'use strict';
const path = require('path');
const [mode, modulesArg, where, a1, a2, a3] = process.argv.slice(2);
const ipc = require(path.join(path.resolve(modulesArg), 'node-ipc'));
ipc.config.silent = true;
ipc.config.retry = 20;
const now = () => Number(process.hrtime.bigint());
const fail = (why) => { console.error('ipc_node_bench: ' + why); process.exit(1); };
setTimeout(() => fail('timed out after 300 s'), 300000).unref();

if (mode === 'server') {
  const expect = Number(a1);
  let n = 0;
  ipc.config.id = 'bench';
  ipc.serve(where, () => {
    ipc.server.on('ping', (d, sock) => {
      ipc.server.emit(sock, 'ping', d);
      if (++n === expect) {
        const u = process.cpuUsage();
        console.log(`cpu_us_per_event=${((u.user + u.system) / n).toFixed(2)}`);
        setTimeout(() => { ipc.server.stop(); process.exit(0); }, 200);
      }
    });
    console.log('ready');
  });
  ipc.server.start();
} else if (mode === 'client') {
  const clients = Number(a1), bytes = Number(a2), n = Number(a3);
  const pad = 'x'.repeat(bytes);
  const lat = [];
  let finished = 0, t0 = 0;
  const report = () => {
    const secs = (now() - t0) / 1e9;
    lat.sort((x, y) => x - y);
    const pct = (p) => (lat[Math.floor(p * (lat.length - 1))] / 1e3).toFixed(1);
    console.log(`bench=ipc_node_clients param=clients:${clients},payload:${bytes} ` +
                `value=${Math.round(lat.length / secs)} unit=msg/s p50_us=${pct(0.5)} p99_us=${pct(0.99)}`);
    process.exit(0);
  };
  let connected = 0;
  const starters = [];
  for (let i = 0; i < clients; i++) {
    const id = 'c' + i;
    ipc.connectTo(id, where, () => {
      const c = ipc.of[id];
      let sent = 0, got = 0, started = false;
      const ping = () => c.emit('ping', { seq: sent++, t: now(), pad });
      starters.push(() => { for (let k = 0; k < Math.min(16, n); k++) ping(); });
      c.on('connect', () => {
        if (started) fail('reconnected mid-run');
        started = true;
        if (++connected === clients) { t0 = now(); for (const s of starters) s(); }
      });
      c.on('ping', (d) => {
        if (d.seq !== got) fail(`echo ${d.seq} when ${got} was due`);
        got++;
        lat.push(now() - d.t);
        if (sent < n) ping();
        if (got === n && ++finished === clients) report();
      });
    });
  }
} else {
  fail('unknown mode ' + mode);
}
