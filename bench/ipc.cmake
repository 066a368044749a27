# bench/ipc.cmake
# conch::ipc (issue 18, node-ipc half): conch <-> conch events/s and p50/p99 latency,
# 64 B and 4 KiB payloads, 1 and 16 clients, 16 events in flight per client.
add_executable(conch_bench_ipc ${CMAKE_CURRENT_SOURCE_DIR}/ipc_bench.cpp)
target_link_libraries(conch_bench_ipc PRIVATE conch::conch conch_warnings)
# Smoke run (label bench): tiny counts; the binary fails unless every echo came back in order.
add_test(NAME bench_ipc_smoke COMMAND conch_bench_ipc --events 200)
set_tests_properties(bench_ipc_smoke PROPERTIES LABELS bench TIMEOUT 300 SKIP_RETURN_CODE 77)
