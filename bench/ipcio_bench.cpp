// bench/ipcio_bench.cpp
// ipcIO round trips (deliver "echo"): conch <-> conch, node peer clients -> conch server, node <-> node.
//
// Usage: conch_bench_ipcio [secs=2] [peer.js]   (with the peer: also the node cells)
// Each cell: N clients (1, 16), 16 delivers in flight per client, a payload of
// 64 B or 4 KiB (a JSON string), for `secs`; round trips/s and p50/p99
// latency. Lines: bench=ipcio param=<pair>/<clients>x<bytes> value=<n> unit=rt/s p50_ms=.. p99_ms=..
// Exits 1 if a conch cell completed no round trip, a node cell did not run, or
// an echo came back changed (the smoke test, label bench, runs it for a
// fraction of a second). Node clients parse each read alone, as ipcio does,
// so replies split across reads are lost and counted (`lost`); with 16 x 4 KiB
// in flight that is nearly all of them, with ipcio's own server too.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <unistd.h>
#include <vector>

#include "conch/conch.hpp"
#include "conch/net/ipcio.hpp"

using namespace std::chrono_literals;
using conch::chan;
using conch::task;
using conch::ipc::ipcio_client;
using conch::ipc::ipcio_server;
using conch::ipc::json;

namespace {

struct cell_result {
  std::size_t round_trips = 0;
  std::size_t bad = 0;
  std::size_t lost = 0;  // node clients: answers that never came (the real parser's split-read loss)
  double p50_ms = 0, p99_ms = 0;
};

void print(const char* pair, int clients, std::size_t bytes, double secs, const cell_result& r) {
  std::printf("bench=ipcio param=%s/%dx%zuB value=%.0f unit=rt/s p50_ms=%.3f p99_ms=%.3f bad=%zu lost=%zu\n", pair,
              clients, bytes, static_cast<double>(r.round_trips) / secs, r.p50_ms, r.p99_ms, r.bad, r.lost);
  std::fflush(stdout);
}

void quantiles(std::vector<double>& lat, cell_result& r) {
  std::sort(lat.begin(), lat.end());
  r.round_trips = lat.size();
  if (lat.empty()) return;
  r.p50_ms = lat[lat.size() / 2];
  r.p99_ms = lat[std::min(lat.size() - 1, lat.size() * 99 / 100)];
}

std::string unique_domain(const char* tag) { return "bench-" + std::string(tag) + "-" + std::to_string(::getpid()); }

task<json> echo(json d, std::string) { co_return std::move(d); }

// One in-flight slot: delivers until the deadline, recording latencies.
task<std::vector<double>> slot(ipcio_client c, std::string payload, std::chrono::steady_clock::time_point end,
                               std::size_t* bad) {
  std::vector<double> lat;
  json p;
  p.SetString(payload.data(), static_cast<rapidjson::SizeType>(payload.size()), p.GetAllocator());
  while (std::chrono::steady_clock::now() < end) {
    const auto t0 = std::chrono::steady_clock::now();
    auto r = co_await c.deliver("echo", p);
    lat.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
    if (!r.ok() || !r->IsString() || r->GetStringLength() != payload.size()) ++*bad;
  }
  co_return lat;
}

task<cell_result> conch_cell(int clients, std::size_t bytes, double secs) {
  const std::string domain = unique_domain("cc");
  auto srv = ipcio_server::listen({.domain = domain});
  cell_result res;
  if (!srv.ok()) {
    std::fprintf(stderr, "listen: %s\n", std::string(srv.status().message()).c_str());
    co_return res;
  }
  (void)srv->handle("echo", echo);
  std::vector<ipcio_client> cs;
  const conch::ipc::ipcio_options opts{.domain = domain};  // named: GCC 12 (no braced temporary in co_await)
  for (int i = 0; i < clients; ++i) {
    auto c = co_await ipcio_client::connect("c" + std::to_string(i), opts);
    if (!c.ok()) co_return res;
    cs.push_back(*c);
  }
  const std::string payload(bytes, 'x');
  const auto end = std::chrono::steady_clock::now() + std::chrono::duration_cast<std::chrono::nanoseconds>(
                                                          std::chrono::duration<double>(secs));
  std::vector<chan<std::vector<double>>> runs;
  for (auto& c : cs)
    for (int k = 0; k < 16; ++k) runs.push_back(conch::go(slot(c, payload, end, &res.bad)));
  std::vector<double> all;
  for (auto& r : runs) {
    std::optional<std::vector<double>> v = co_await r.recv();
    if (v) all.insert(all.end(), v->begin(), v->end());
  }
  quantiles(all, res);
  for (auto& c : cs) c.close();
  srv->close();
  co_return res;
}

// Runs a shell command, parses the node bench's "rt=.. bad=.. p50=.. p99=.." line.
cell_result run_node_clients(const std::string& cmd) {
  cell_result r;
  FILE* f = ::popen(cmd.c_str(), "r");
  if (f == nullptr) return r;
  char line[512];
  while (std::fgets(line, sizeof line, f) != nullptr)
    std::sscanf(line, "rt=%zu bad=%zu p50=%lf p99=%lf lost=%zu", &r.round_trips, &r.bad, &r.p50_ms, &r.p99_ms,
                &r.lost);
  ::pclose(f);
  return r;
}

std::string node_cmd(const std::string& peer, const std::string& domain, int clients, std::size_t bytes,
                     double secs) {
  return "node '" + peer + "' bench /tmp/IPC.io '" + domain + "' " + std::to_string(clients) + " " +
         std::to_string(bytes) + " " + std::to_string(secs);
}

task<cell_result> node_to_conch_cell(std::string peer, int clients, std::size_t bytes, double secs) {
  const std::string domain = unique_domain("nc");
  auto srv = ipcio_server::listen({.domain = domain});
  if (!srv.ok()) co_return cell_result{};
  (void)srv->handle("echo", echo);
  const std::string cmd = node_cmd(peer, domain, clients, bytes, secs);
  auto run = [cmd] { return run_node_clients(cmd); };  // named: GCC 12
  chan<cell_result> done = conch::thread(run);
  std::optional<cell_result> r = co_await done.recv();
  srv->close();
  co_return r.value_or(cell_result{});
}

cell_result node_to_node_cell(const std::string& peer, int clients, std::size_t bytes, double secs) {
  const std::string domain = unique_domain("nn");
  const std::string server = "node '" + peer + "' server /tmp/IPC.io '" + domain + "'";
  FILE* s = ::popen(server.c_str(), "r");  // prints "ready" once listening
  char line[64] = {};
  if (s == nullptr || std::fgets(line, sizeof line, s) == nullptr) return {};
  cell_result r = run_node_clients(node_cmd(peer, domain, clients, bytes, secs));
  // Stop the server: a client that sends "quit".
  const std::string quit = "node -e \"const n=require('net');const c=n.connect('/tmp/IPC.io." + domain +
                           "',()=>c.write(JSON.stringify({id:null,command:'handshake',data:'q',delivery:null})));"
                           "c.on('data',d=>{const m=JSON.parse(d);const o=n.connect('/tmp/IPC.io." + domain +
                           ".'+m.data,()=>{o.write(JSON.stringify({id:null,command:'quit',data:null,delivery:null}));"
                           "setTimeout(()=>process.exit(0),200)})})\"";
  if (std::system(quit.c_str()) != 0) std::fprintf(stderr, "ipcio bench: stopping the node server failed\n");
  ::pclose(s);
  return r;
}

}  // namespace

int main(int argc, char** argv) {
  const double secs = argc > 1 ? std::atof(argv[1]) : 2.0;
  const std::string peer = argc > 2 ? argv[2] : "";
  const bool node = !peer.empty() && std::system("command -v node >/dev/null 2>&1") == 0;
  bool ok = true;
  conch::runtime rt({.threads = 2});
  for (int clients : {1, 16}) {
    for (std::size_t bytes : {std::size_t{64}, std::size_t{4096}}) {
      cell_result cc = rt.block_on(conch_cell(clients, bytes, secs));
      print("conch-conch", clients, bytes, secs, cc);
      ok = ok && cc.round_trips > 0 && cc.bad == 0;
      if (!node) continue;
      cell_result nc = rt.block_on(node_to_conch_cell(peer, clients, bytes, secs));
      print("node-conch", clients, bytes, secs, nc);
      // The node peer parses each read alone, as ipcio does: a reply split across reads is lost
      // (counted), so a node cell must have run and echoed nothing wrong, not answered everything.
      ok = ok && nc.round_trips + nc.lost > 0 && nc.bad == 0;
      cell_result nn = node_to_node_cell(peer, clients, bytes, secs);
      print("node-node", clients, bytes, secs, nn);
      ok = ok && nn.round_trips + nn.lost > 0 && nn.bad == 0;
    }
  }
  if (!ok) std::fprintf(stderr, "ipcio bench: a cell completed nothing or echoed wrong data\n");
  return ok ? 0 : 1;
}
