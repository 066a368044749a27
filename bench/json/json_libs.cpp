// bench/json/json_libs.cpp
// The Debian JSON libraries side by side: parse (bytes -> DOM) and write (DOM -> bytes) on the same documents.
//
//   conch_bench_json_libs [seconds] [file.json ...]
//
// Prints `bench=json_parse|json_write param=doc:<name>,lib:<lib> value=<MB/s> unit=MB/s`
// (CPU time). Candidates: RapidJSON (rapidjson-dev), Jansson (libjansson-dev),
// nlohmann/json (nlohmann-json3-dev), json-c (libjson-c-dev), YAJL
// (libyajl-dev; its tree API has no writer, so parse only). Each library
// writes what it parsed and the output must parse again (exit 1 otherwise).
// Without files it reads Debian's iso-codes documents.
#include <yajl/yajl_tree.h>

#include <cstdio>
#include <ctime>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <rapidjson/document.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>
#include <sstream>
#include <string>
#include <vector>

#include "bench/json/json_libs.hpp"

namespace json_bench {

double cpu_now() {
  timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

// MB/s of f over `bytes` per call, run for `seconds` of CPU time after one warm-up call.
double rate(const std::function<void()>& f, std::size_t bytes, double seconds) {
  f();
  long n = 0;
  double t0 = cpu_now(), t = 0;
  do {
    f();
    ++n;
    t = cpu_now() - t0;
  } while (t < seconds);
  return static_cast<double>(bytes) * static_cast<double>(n) / t / 1e6;
}

int bad = 0;

void report(const doc& d, const char* lib, double parse, double write, std::size_t out_bytes) {
  std::printf("bench=json_parse param=doc:%s,bytes:%zu,lib:%s value=%.1f unit=MB/s\n", d.name.c_str(), d.text.size(),
              lib, parse);
  if (write > 0)
    std::printf("bench=json_write param=doc:%s,bytes:%zu,lib:%s value=%.1f unit=MB/s\n", d.name.c_str(), out_bytes,
                lib, write);
}

void check(bool ok, const char* lib, const doc& d) {
  if (!ok) {
    std::fprintf(stderr, "json_libs: %s failed on %s\n", lib, d.name.c_str());
    ++bad;
  }
}

void run_rapidjson(const doc& d, double s) {
  rapidjson::Document dom;
  dom.Parse<rapidjson::kParseFullPrecisionFlag>(d.text.data(), d.text.size());
  check(!dom.HasParseError(), "rapidjson", d);
  rapidjson::StringBuffer out;
  auto write = [&] {
    out.Clear();
    rapidjson::Writer<rapidjson::StringBuffer> w(out);
    dom.Accept(w);
  };
  write();
  rapidjson::Document again;
  again.Parse(out.GetString(), out.GetSize());
  check(!again.HasParseError() && again == dom, "rapidjson", d);
  double p = rate([&] {
    rapidjson::Document x;
    x.Parse<rapidjson::kParseFullPrecisionFlag>(d.text.data(), d.text.size());
  }, d.text.size(), s);
  report(d, "rapidjson", p, rate(write, out.GetSize(), s), out.GetSize());
}

void run_nlohmann(const doc& d, double s) {
  nlohmann::json v = nlohmann::json::parse(d.text, nullptr, false);
  check(!v.is_discarded(), "nlohmann", d);
  std::string out = v.dump();
  check(nlohmann::json::parse(out, nullptr, false) == v, "nlohmann", d);
  double p = rate([&] {
    nlohmann::json x = nlohmann::json::parse(d.text, nullptr, false);
    (void)x;
  }, d.text.size(), s);
  double w = rate([&] { (void)v.dump(); }, out.size(), s);
  report(d, "nlohmann", p, w, out.size());
}

void run_yajl(const doc& d, double s) {
  char err[256];
  yajl_val v = yajl_tree_parse(d.text.c_str(), err, sizeof err);
  check(v != nullptr, "yajl", d);
  yajl_tree_free(v);
  double p = rate([&] { yajl_tree_free(yajl_tree_parse(d.text.c_str(), err, sizeof err)); }, d.text.size(), s);
  report(d, "yajl(parse only)", p, 0, 0);
}

}  // namespace json_bench

using namespace json_bench;

int main(int argc, char** argv) {
  double seconds = argc > 1 ? std::atof(argv[1]) : 1.0;
  std::vector<std::string> files;
  for (int i = 2; i < argc; ++i) files.emplace_back(argv[i]);
  if (files.empty())
    for (const char* n : {"iso_639-3.json", "iso_3166-2.json", "iso_4217.json", "schema-639-3.json"})
      files.push_back(std::string("/usr/share/iso-codes/json/") + n);
  std::vector<doc> docs;
  for (const std::string& f : files) {
    std::ifstream in(f, std::ios::binary);
    if (!in) continue;
    std::stringstream ss;
    ss << in.rdbuf();
    docs.push_back({f.substr(f.find_last_of('/') + 1), ss.str()});
  }
  if (docs.empty()) {
    std::fprintf(stderr, "json_libs: no documents (install iso-codes or pass files)\n");
    return 1;
  }
  for (const doc& d : docs) {
    run_rapidjson(d, seconds);
    run_jansson(d, seconds);
    run_nlohmann(d, seconds);
    run_jsonc(d, seconds);
    run_yajl(d, seconds);
  }
  return bad == 0 ? 0 : 1;
}
