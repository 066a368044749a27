# Makefile
# Entry points for people and CI: deps, demo, test, sanitizer and clang builds.
#
#   make demo         install missing Debian packages, build, run examples/demo.cpp
#   make test         build everything (RelWithDebInfo), run every CTest test
#   make test-asan    Debug + AddressSanitizer/UBSan, run the tests
#   make test-tsan    clang-16, RelWithDebInfo + ThreadSanitizer, warnings as errors, run the tests
#   make test-clang   clang-16, warnings as errors, run the tests without a sanitizer (not in CI: test-tsan covers clang)
#   make bench-channels   run bench/run_channels.sh
#   make bench-sockets    the socket echo matrix (bench/run_sockets.sh), conch vs epoll vs liburing
#   make bench-lua        run bench/run_lua.sh
#   make bench-nats       run bench/run_nats.sh (conch NATS client vs the JavaScript client)
#   make bench        every benchmark family side by side: bench/report/ (report.md, plots); QUICK=1: a few minutes
#   make fuzz         clang-16 libFuzzer + ASan/UBSan: each tests/fuzz target for FUZZ_SECONDS (60)
#   make clean        remove the build directories this Makefile creates (bench ones too)
#
# Variables: BUILD_ROOT (where the build-* directories go; default: the
# checkout), JOBS (parallel compile and test jobs; default 2), CMAKE_ARGS
# (extra arguments for every configure step).

SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

SRC_DIR    := $(patsubst %/,%,$(dir $(abspath $(lastword $(MAKEFILE_LIST)))))
BUILD_ROOT ?= $(SRC_DIR)
JOBS       ?= 2
CMAKE_ARGS ?=

BUILD       := $(BUILD_ROOT)/build
BUILD_ASAN  := $(BUILD_ROOT)/build-asan
BUILD_TSAN  := $(BUILD_ROOT)/build-tsan
BUILD_CLANG := $(BUILD_ROOT)/build-clang

# Debian 12 packages the build, the tests and the comparisons need (README.md
# "Dependencies" says why each one is there). Others may append with +=.
DEBIAN_PACKAGES := g++ make cmake pkg-config time \
  liburing-dev libabsl-dev catch2 liblua5.4-dev lua5.4 \
  clang-16 libclang-rt-16-dev \
  golang-go libboost-fiber1.81-dev socat nodejs
# `make bench`'s plots (issue 15).
DEBIAN_PACKAGES += gnuplot-nox
# TLS and conch.util (issue 14); the JSON comparison's rivals and documents.
DEBIAN_PACKAGES += libssl-dev openssl libpcre2-dev rapidjson-dev \
  lua-cjson iso-codes libjansson-dev libjson-c-dev libyajl-dev nlohmann-json3-dev
# The Lua echo comparison's peers (bench/run_lua_echo.sh, issue 17).
DEBIAN_PACKAGES += lua-cqueues lua-luv
# The NATS client's tests and benchmark (issue 16): the server, and npm for the official JS client.
DEBIAN_PACKAGES += nats-server npm

# Tests labelled `bench` are the benchmarks' smoke runs at quick sizes: each
# checks what it received (sums, echoed bytes) and exits non-zero otherwise;
# they run in `make test` (the other builds have no benchmarks).
# --no-tests=error: a run that finds no test fails.
CTEST := ctest --output-on-failure -j$(JOBS) --timeout 600 --no-tests=error
# The sanitizer and clang runs skip the packaging and docs tests: they check
# CMake plumbing and header hygiene, which the plain run covers, and compile
# conch again (about two minutes of CI's 2 cores).
CTEST_SAN := $(CTEST) -LE '^(bench|packaging|docs)$$'

export ASAN_OPTIONS  ?= halt_on_error=1:abort_on_error=0:detect_leaks=1:check_initialization_order=1
export UBSAN_OPTIONS ?= halt_on_error=1:print_stacktrace=1
export TSAN_OPTIONS  ?= halt_on_error=1:second_deadlock_stack=1:history_size=4

# The TSan runtimes of GCC 12 and clang 16 expect at most 28 bits of mmap
# randomisation; on kernels configured with more (vm.mmap_rnd_bits > 28) their
# binaries die with "unexpected memory mapping". Running without ASLR avoids it.
TSAN_RUN := $(shell [ "$$(cat /proc/sys/vm/mmap_rnd_bits 2>/dev/null || echo 0)" -gt 28 ] && echo "setarch $$(uname -m) -R")

comma := ,

.PHONY: help deps demo build test test-asan test-tsan test-clang bench-channels bench-sockets bench-lua bench-nats bench fuzz clean

help:
	@sed -n '4,18p' $(SRC_DIR)/Makefile | sed 's/^# \{0,1\}//'

# ---- dependencies ----

# Installs only what dpkg does not already have; `apt-get update` runs only
# when something is missing, so a second `make deps` takes a fraction of a second.
# npm counts as present when the command exists: a nodejs that bundles it
# (NodeSource's) conflicts with Debian's npm package.
deps:
	@missing=""; \
	for p in $(DEBIAN_PACKAGES); do \
	  case $$p in npm) command -v npm >/dev/null 2>&1 && continue;; esac; \
	  dpkg-query -W -f='$${db:Status-Abbrev}' "$$p" 2>/dev/null | grep -q '^ii' || missing="$$missing $$p"; \
	done; \
	if [ -z "$$missing" ]; then echo "deps: all Debian packages present"; exit 0; fi; \
	echo "deps: missing:$$missing"; \
	if [ "$$(id -u)" != 0 ]; then \
	  echo "deps: not root; install them first: sudo apt-get install -y$$missing" >&2; exit 1; \
	fi; \
	export DEBIAN_FRONTEND=noninteractive; \
	apt-get update -q; \
	apt-get install -y -q --no-install-recommends $$missing

# ---- the default build (RelWithDebInfo) ----

# configure(dir, extra cmake args)
define configure
	mkdir -p $(1)
	cmake -S $(SRC_DIR) -B $(1) $(2) $(CMAKE_ARGS) > $(1)/configure.log 2>&1 || { cat $(1)/configure.log; exit 1; }
	@echo "configured $(1) ($(2))"
endef

build: deps
	$(call configure,$(BUILD),-DCMAKE_BUILD_TYPE=RelWithDebInfo)
	cmake --build $(BUILD) -j$(JOBS)

demo: deps
	$(call configure,$(BUILD),-DCMAKE_BUILD_TYPE=RelWithDebInfo)
	cmake --build $(BUILD) -j$(JOBS) --target conch_example_demo
	$(BUILD)/examples/conch_example_demo

test: build
	cd $(BUILD) && $(CTEST)

# ---- sanitizers and the second compiler ----

test-asan: deps
	$(call configure,$(BUILD_ASAN),-DCMAKE_BUILD_TYPE=Debug -DCONCH_SANITIZE=address$(comma)undefined -DCONCH_BUILD_BENCH=OFF)
	cmake --build $(BUILD_ASAN) -j$(JOBS)
	cd $(BUILD_ASAN) && $(CTEST_SAN)

# RelWithDebInfo: TSan at -O0 makes the stress tests several times slower
# without finding more. clang-16: the same build is the second compiler's
# check (warnings as errors), so CI needs no separate clang build.
test-tsan: deps
	$(call configure,$(BUILD_TSAN),-DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_COMPILER=clang++-16 -DCMAKE_C_COMPILER=clang-16 -DCONCH_WERROR=ON -DCONCH_SANITIZE=thread -DCONCH_BUILD_BENCH=OFF)
	cmake --build $(BUILD_TSAN) -j$(JOBS)
	cd $(BUILD_TSAN) && $(TSAN_RUN) $(CTEST_SAN)

test-clang: deps
	$(call configure,$(BUILD_CLANG),-DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_COMPILER=clang++-16 -DCMAKE_C_COMPILER=clang-16 -DCONCH_WERROR=ON -DCONCH_BUILD_BENCH=OFF)
	cmake --build $(BUILD_CLANG) -j$(JOBS)
	cd $(BUILD_CLANG) && $(CTEST_SAN)

# ---- fuzzing (tests/fuzz/README.md) ----

# The libFuzzer targets, built by clang-16 with ASan+UBSan in build-fuzz, each
# run for FUZZ_SECONDS on a scratch copy of its corpus; fails on a finding.
# (The ordinary builds replay the committed corpora as CTests: fuzz_replay.*.)
BUILD_FUZZ   := $(BUILD_ROOT)/build-fuzz
FUZZ_SECONDS ?= 60
FUZZ_TARGETS ?= frames address nats json_stream json lua_values lua_options
fuzz: deps
	$(call configure,$(BUILD_FUZZ),-DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_COMPILER=clang++-16 -DCMAKE_C_COMPILER=clang-16 -DCONCH_SANITIZE=address$(comma)undefined -DCONCH_FUZZ=ON -DCONCH_BUILD_BENCH=OFF -DCONCH_BUILD_EXAMPLES=OFF)
	cmake --build $(BUILD_FUZZ) -j$(JOBS) --target $(addprefix conch_fuzz_,$(FUZZ_TARGETS))
	bash $(SRC_DIR)/tests/fuzz/run.sh $(BUILD_FUZZ)/tests/fuzz $(FUZZ_SECONDS) $(FUZZ_TARGETS)

# ---- benchmarks ----

bench-channels: deps
	@if [ ! -f $(SRC_DIR)/bench/run_channels.sh ]; then \
	  echo "bench-channels: bench/run_channels.sh does not exist yet" >&2; exit 1; fi
	BUILD_ROOT=$(BUILD_ROOT) JOBS=$(JOBS) CMAKE_ARGS="$(CMAKE_ARGS)" bash $(SRC_DIR)/bench/run_channels.sh

# Release build in build-bench (shared with bench-channels). SECS and RUNS
# pass through to the script (seconds per cell, rounds of the matrix).
BUILD_BENCH := $(BUILD_ROOT)/build-bench
bench-sockets: deps
	$(call configure,$(BUILD_BENCH),-DCMAKE_BUILD_TYPE=Release)
	cmake --build $(BUILD_BENCH) -j$(JOBS) --target conch_bench_sock_echo conch_bench_sock_epoll_server conch_bench_sock_uring_server conch_bench_sock_loadgen \
	  $$(cmake --build $(BUILD_BENCH) --target help | grep -o 'conch_bench_sock_\(go_server\|asio_epoll\|asio_uring\)' | sort -u)
	bash $(SRC_DIR)/bench/run_sockets.sh $(BUILD_BENCH)/bench

bench-lua: deps
	BUILD_ROOT=$(BUILD_ROOT) JOBS=$(JOBS) bash $(SRC_DIR)/bench/run_lua.sh

# NATS (issue 16): conch's client vs the official JavaScript client, one local nats-server.
bench-nats: deps
	$(call configure,$(BUILD_BENCH),-DCMAKE_BUILD_TYPE=Release)
	cmake --build $(BUILD_BENCH) -j$(JOBS) --target conch_bench_nats conch_nats_with_server
	bash $(SRC_DIR)/bench/run_nats.sh $(BUILD_BENCH)
# Every family of bench/ (bench/report.sh), one Release build in build-bench;
# writes bench/report/ over the last one. Targets a missing toolchain did not
# define (the Go and Asio peers, Boost.Fiber) are left out; the report says so.
BENCH_TARGETS := conch_bench_channels conch_bench_fiber conch_bench_ops conch_bench_lua conch_lua_module conch_lsocket_module \
  conch_program conch_bench_sock_echo conch_bench_sock_epoll_server conch_bench_sock_uring_server \
  conch_bench_sock_loadgen conch_bench_sock_go_server conch_bench_sock_asio_epoll conch_bench_sock_asio_uring \
  conch_bench_line_loadgen conch_bench_ipc conch_bench_ipcio conch_bench_nats conch_nats_with_server conch_bench_asio
QUICK ?=
bench: deps
	$(call configure,$(BUILD_BENCH),-DCMAKE_BUILD_TYPE=Release)
	have=$$(cmake --build $(BUILD_BENCH) --target help); \
	cmake --build $(BUILD_BENCH) -j$(JOBS) --target $$(for t in $(BENCH_TARGETS); do grep -qw "$$t" <<<"$$have" && echo $$t; done)
	BENCH_COMMAND="make bench$(if $(QUICK), QUICK=$(QUICK))$(if $(RUNS), RUNS=$(RUNS))" QUICK=$(QUICK) JOBS=$(JOBS) bash $(SRC_DIR)/bench/report.sh $(BUILD_BENCH)

clean:
	rm -rf $(BUILD) $(BUILD_ASAN) $(BUILD_TSAN) $(BUILD_CLANG) $(BUILD_BENCH) $(BUILD_FUZZ) $(BUILD_ROOT)/build-lua-rel
