// tests/fuzz/replay_main.cpp
// The replay driver: runs a fuzz target's LLVMFuzzerTestOneInput over every file of its corpus, without libFuzzer.
//
//   conch_fuzz_replay_frames tests/fuzz/corpus/frames [more files or folders]
//
// Linked into each target in the ordinary (g++) build, so CTest runs every
// target over its committed corpus (`fuzz_replay.<target>`): a regression
// input committed after a fix keeps failing loudly if the bug comes back. A
// target reports a bug by aborting (a crash, a sanitizer report, a failed
// check), exactly as under libFuzzer. Exits 1 when it finds no input at all:
// a replay that checks nothing must not pass.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <system_error>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size);
extern "C" __attribute__((weak)) int LLVMFuzzerInitialize(int* argc, char*** argv);

namespace {

// Every regular file named by `arg` (the file itself or a folder's files),
// sorted so that runs are repeatable.
std::vector<std::filesystem::path> inputs_of(const char* arg) {
  namespace fs = std::filesystem;
  std::vector<fs::path> out;
  std::error_code ec;
  if (fs::is_directory(arg, ec)) {
    for (const auto& e : fs::recursive_directory_iterator(arg, ec))
      if (e.is_regular_file()) out.push_back(e.path());
    std::sort(out.begin(), out.end());
  } else if (fs::is_regular_file(arg, ec)) {
    out.emplace_back(arg);
  } else {
    std::fprintf(stderr, "fuzz replay: no such file or folder: %s\n", arg);
  }
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  if (LLVMFuzzerInitialize != nullptr) LLVMFuzzerInitialize(&argc, &argv);
  std::size_t ran = 0;
  for (int i = 1; i < argc; ++i) {
    for (const auto& p : inputs_of(argv[i])) {
      std::ifstream f(p, std::ios::binary);
      std::vector<std::uint8_t> bytes((std::istreambuf_iterator<char>(f)),
                                      std::istreambuf_iterator<char>());
      if (!f.good() && !f.eof()) {
        std::fprintf(stderr, "fuzz replay: cannot read %s\n", p.c_str());
        return 1;
      }
      // The data pointer of an empty vector may be null; libFuzzer passes a
      // valid pointer, so do the same.
      static const std::uint8_t none = 0;
      LLVMFuzzerTestOneInput(bytes.empty() ? &none : bytes.data(), bytes.size());
      ++ran;
    }
  }
  std::printf("fuzz replay: %zu inputs ran clean\n", ran);
  if (ran == 0) {
    std::fprintf(stderr, "fuzz replay: no inputs found\n");
    return 1;
  }
  return 0;
}
