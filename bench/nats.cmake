# bench/nats.cmake
# NATS (issue 16): conch's client vs the official JavaScript client through one nats-server (run_nats.sh).
add_executable(conch_bench_nats ${CMAKE_CURRENT_SOURCE_DIR}/nats_bench.cpp)
target_link_libraries(conch_bench_nats PRIVATE conch::conch conch_warnings)
# Smoke test: small sizes, each run checks it received every message (exit 1 otherwise).
if(TARGET conch_nats_with_server)
  add_test(NAME bench_nats_smoke
           COMMAND conch_nats_with_server sh -c
             "$<TARGET_FILE:conch_bench_nats> \"$CONCH_NATS_URL\" pubsub 2000 16 && $<TARGET_FILE:conch_bench_nats> \"$CONCH_NATS_URL\" pubsub 500 1024 && $<TARGET_FILE:conch_bench_nats> \"$CONCH_NATS_URL\" reqrep 200")
  set_tests_properties(bench_nats_smoke PROPERTIES LABELS "bench;nats" TIMEOUT 300 SKIP_RETURN_CODE 77)
endif()
# The worker pool through NATS vs in-process (run_nats_pool.sh): a few jobs per cell.
if(TARGET conch_nats_with_server AND TARGET conch_program)
  add_test(NAME bench_nats_pool_smoke
           COMMAND conch_nats_with_server /bin/bash ${CMAKE_CURRENT_SOURCE_DIR}/run_nats_pool.sh)
  set_tests_properties(bench_nats_pool_smoke PROPERTIES LABELS "bench;nats" TIMEOUT 300 SKIP_RETURN_CODE 77
    ENVIRONMENT "CONCH=$<TARGET_FILE:conch_program>;JOBS=300;REPS=1"
    PASS_REGULAR_EXPRESSION "param=hop_cost_inflight16 value=")
endif()
