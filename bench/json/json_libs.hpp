// bench/json/json_libs.hpp
// What the JSON library bench's files share (jansson and json-c cannot share a translation unit: both define json_object).
#pragma once

#include <cstddef>
#include <functional>
#include <string>

namespace json_bench {

struct doc {
  std::string name, text;
};
double rate(const std::function<void()>& f, std::size_t bytes, double seconds);
void report(const doc& d, const char* lib, double parse, double write, std::size_t out_bytes);
void check(bool ok, const char* lib, const doc& d);
void run_jansson(const doc& d, double s);
void run_jsonc(const doc& d, double s);

}  // namespace json_bench
