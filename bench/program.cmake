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

# Server mode (issue 14): requests/s of a line echo handler with 16 and 256
# clients, slua's too when SLUA=path is given (bench/run_program_server.sh).
# The smoke test runs both client counts with few requests; the load
# generator checks every reply and fails the script on a wrong one.
add_executable(conch_bench_line_loadgen ${CMAKE_CURRENT_LIST_DIR}/line_loadgen.c)
set_target_properties(conch_bench_line_loadgen PROPERTIES C_STANDARD 11 C_EXTENSIONS ON)
target_compile_options(conch_bench_line_loadgen PRIVATE -O2 -Wall -Wextra -Werror)
if(TARGET conch_program AND CONCH_BUILD_TESTS)
  add_test(NAME bench_program_server_smoke
           COMMAND /bin/bash ${CMAKE_CURRENT_SOURCE_DIR}/run_program_server.sh)
  set_tests_properties(bench_program_server_smoke PROPERTIES LABELS bench TIMEOUT 300
    ENVIRONMENT "CONCH=$<TARGET_FILE:conch_program>;LOADGEN=$<TARGET_FILE:conch_bench_line_loadgen>;REQS=20"
    PASS_REGULAR_EXPRESSION "param=conch_c256 value=[0-9]+")
endif()
