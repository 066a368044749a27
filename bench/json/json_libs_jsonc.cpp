// bench/json/json_libs_jsonc.cpp
// The JSON library bench's json-c cell (json_libs.cpp runs it).
#include <json-c/json.h>

#include <string>

#include "bench/json/json_libs.hpp"

namespace json_bench {

void run_jsonc(const doc& d, double s) {
  auto parse = [&] {
    json_tokener* tok = json_tokener_new();
    json_object* o = json_tokener_parse_ex(tok, d.text.data(), static_cast<int>(d.text.size()));
    json_tokener_free(tok);
    return o;
  };
  json_object* v = parse();
  check(v != nullptr, "json-c", d);
  if (v == nullptr) return;
  std::string out = json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN);
  json_object* again = json_tokener_parse(out.c_str());
  check(again != nullptr && json_object_equal(again, v), "json-c", d);
  json_object_put(again);
  double p = rate([&] { json_object_put(parse()); }, d.text.size(), s);
  // json-c caches the string in the object: write a fresh copy each time.
  double w = rate([&] {
    json_object* c = nullptr;
    json_object_deep_copy(v, &c, nullptr);
    (void)json_object_to_json_string_ext(c, JSON_C_TO_STRING_PLAIN);
    json_object_put(c);
  }, out.size(), s);
  report(d, "json-c(write incl. copy)", p, w, out.size());
  json_object_put(v);
}

}  // namespace json_bench
