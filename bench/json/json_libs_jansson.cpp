// bench/json/json_libs_jansson.cpp
// The JSON library bench's Jansson cell (json_libs.cpp runs it).
#include <jansson.h>

#include <cstdlib>
#include <cstring>

#include "bench/json/json_libs.hpp"

namespace json_bench {

void run_jansson(const doc& d, double s) {
  json_error_t err;
  json_t* v = json_loadb(d.text.data(), d.text.size(), 0, &err);
  check(v != nullptr, "jansson", d);
  if (v == nullptr) return;
  char* out = json_dumps(v, JSON_COMPACT);
  std::size_t n = std::strlen(out);
  json_t* again = json_loadb(out, n, 0, &err);
  check(again != nullptr && json_equal(again, v), "jansson", d);
  json_decref(again);
  std::free(out);
  double p = rate([&] { json_decref(json_loadb(d.text.data(), d.text.size(), 0, &err)); }, d.text.size(), s);
  double w = rate([&] { std::free(json_dumps(v, JSON_COMPACT)); }, n, s);
  report(d, "jansson", p, w, n);
  json_decref(v);
}

}  // namespace json_bench
