# bench/ops.cmake
# Combinator throughput (issue 3): pipeline with n = 1, 2, 4 workers and mult with 8 taps.
add_executable(conch_bench_ops ${CMAKE_CURRENT_SOURCE_DIR}/ops_bench.cpp)
target_link_libraries(conch_bench_ops PRIVATE conch::conch conch_warnings)
