# bench/program.cmake
# The `conch` program's worker pool (issue 14): jobs/s for tiny string jobs
# (batch, 16 in flight, one at a time, inline), CPU-bound jobs with 2 workers
# against 1, and slua side by side when SLUA=path is given
# (bench/run_program.sh). The smoke test runs every cell with few jobs.
if(TARGET conch_program AND CONCH_BUILD_TESTS)
  add_test(NAME bench_program_smoke
           COMMAND /bin/bash ${CMAKE_CURRENT_SOURCE_DIR}/run_program.sh)
  set_tests_properties(bench_program_smoke PROPERTIES LABELS bench TIMEOUT 300
    ENVIRONMENT "CONCH=$<TARGET_FILE:conch_program>;JOBS=2000;CPU_JOBS=100"
    PASS_REGULAR_EXPRESSION "bench=program param=cpu_w2_vs_w1 value=")
endif()
