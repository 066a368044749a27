// tests/nats/js/peer.js
// The official NATS JavaScript client as conch's interop peer: answers, forwards with headers, asks back.
//
//   node peer.js nats://127.0.0.1:PORT
//
// js.echo     request/reply: answers "js:" + data
// to.js       control: "quit" drains and exits 0; "ask" requests conch.echo
//             and publishes "answer " + the reply on from.js; anything else
//             is published on from.js as "js saw <data> header <X-From>" with
//             header Seen-By: js
"use strict";
const { connect, StringCodec, headers } = require("nats");
const sc = StringCodec();

(async () => {
  const nc = await connect({ servers: process.argv[2], name: "js-peer" });
  const echo = nc.subscribe("js.echo");
  (async () => {
    for await (const m of echo) m.respond(sc.encode("js:" + sc.decode(m.data)));
  })();
  const ctl = nc.subscribe("to.js");
  await nc.flush();
  for await (const m of ctl) {
    const d = sc.decode(m.data);
    if (d === "quit") break;
    if (d === "ask") {
      const r = await nc.request("conch.echo", sc.encode("from-js"), { timeout: 5000 });
      nc.publish("from.js", sc.encode("answer " + sc.decode(r.data)));
      continue;
    }
    const h = headers();
    h.set("Seen-By", "js");
    const from = m.headers ? m.headers.get("X-From") : "none";
    nc.publish("from.js", sc.encode("js saw " + d + " header " + from), { headers: h });
  }
  await nc.drain();
})().catch((e) => {
  console.error("peer.js:", e);
  process.exit(1);
});
