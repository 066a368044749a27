# bench/ipcio.cmake
# ipcIO round trips (issue 18): conch <-> conch, the node test peer's clients -> a conch server,
# and node <-> node (tests/ipcio/ipcio_peer.js both sides). Smoke test (label bench): a fraction
# of a second per cell, checking every cell completed round trips with intact echoes.
add_executable(conch_bench_ipcio ${CMAKE_CURRENT_SOURCE_DIR}/ipcio_bench.cpp)
target_include_directories(conch_bench_ipcio PRIVATE ${PROJECT_SOURCE_DIR})
target_link_libraries(conch_bench_ipcio PRIVATE conch::conch conch_warnings)
if(CONCH_BUILD_TESTS)
  add_test(NAME bench_ipcio_smoke
           COMMAND conch_io_uring_gate $<TARGET_FILE:conch_bench_ipcio> 0.2 ${PROJECT_SOURCE_DIR}/tests/ipcio/ipcio_peer.js)
  set_tests_properties(bench_ipcio_smoke PROPERTIES LABELS bench TIMEOUT 300 SKIP_RETURN_CODE 77)
endif()
