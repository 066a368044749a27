// bench/nats/bench.js
// The official NATS JavaScript client on the same workloads as conch_bench_nats (same output lines).
//
//   NODE_PATH=.../node_modules node bench.js URL pubsub N SIZE | URL reqrep N
"use strict";
const { connect } = require("nats");

async function pubsub(url, n, size) {
  const pub = await connect({ servers: url });
  const sub = await connect({ servers: url });
  const s = sub.subscribe("bench.ps");
  await sub.flush();
  const payload = new Uint8Array(size).fill(120);
  const t0 = process.hrtime.bigint();
  const done = (async () => {
    let got = 0;
    for await (const m of s) {
      if (m.data.length !== size) break;
      if (++got === n) break;
    }
    return got;
  })();
  for (let i = 0; i < n; i++) pub.publish("bench.ps", payload);
  await pub.flush();
  const got = await done;
  const secs = Number(process.hrtime.bigint() - t0) / 1e9;
  await pub.close();
  await sub.close();
  if (got !== n) throw new Error(`received ${got} of ${n}`);
  console.log(`bench=nats_pubsub param=js,size=${size} value=${Math.round(n / secs)} unit=msg/s`);
}

async function reqrep(url, n) {
  const srv = await connect({ servers: url });
  const cli = await connect({ servers: url });
  const s = srv.subscribe("bench.rr");
  (async () => { for await (const m of s) m.respond(m.data); })();
  await srv.flush();
  const payload = new Uint8Array(16).fill(120);
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < n; i++) {
    const r = await cli.request("bench.rr", payload, { timeout: 5000 });
    if (r.data.length !== 16) throw new Error("wrong answer");
  }
  const secs = Number(process.hrtime.bigint() - t0) / 1e9;
  await srv.close();
  await cli.close();
  console.log(`bench=nats_reqrep param=js,size=16 value=${Math.round(n / secs)} unit=rt/s`);
}

const [url, mode, n, size] = process.argv.slice(2);
(mode === "pubsub" ? pubsub(url, Number(n), Number(size)) : reqrep(url, Number(n))).catch((e) => {
  console.error("bench.js:", e);
  process.exit(1);
});
