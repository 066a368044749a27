# bench/sockets.cmake
# Socket echo benchmark (issue 4): the conch server, two plain-C reference
# servers (epoll; liburing with multishot accept+recv and provided buffers)
# and a load generator of our own. bench/run_sockets.sh runs the matrix with
# the server pinned to CPU 0 and the generator to CPU 1, and tabulates it.
add_executable(conch_bench_sock_echo ${CMAKE_CURRENT_LIST_DIR}/sock_echo_conch.cpp)
target_link_libraries(conch_bench_sock_echo PRIVATE conch::sockets conch_warnings)

foreach(name sock_epoll_server sock_uring_server sock_loadgen)
  add_executable(conch_bench_${name} ${CMAKE_CURRENT_LIST_DIR}/${name}.c)
  set_target_properties(conch_bench_${name} PROPERTIES C_STANDARD 11 C_EXTENSIONS ON)
  target_compile_options(conch_bench_${name} PRIVATE -O2 -Wall -Wextra -Werror)
endforeach()
target_link_libraries(conch_bench_sock_uring_server PRIVATE PkgConfig::URING)

# Smoke run: a tiny matrix cell per server, so a broken benchmark shows in
# CTest: the load generator compares every echoed byte and exits 1 on a
# difference or when nothing came back, which fails the script.
if(CONCH_BUILD_TESTS)
  add_test(NAME bench_sockets_smoke
           COMMAND ${CMAKE_CURRENT_LIST_DIR}/run_sockets.sh --smoke ${CMAKE_CURRENT_BINARY_DIR})
  set_tests_properties(bench_sockets_smoke PROPERTIES LABELS bench TIMEOUT 120)
endif()

# TLS echo throughput against plain (issue 14), one process, loopback.
add_executable(conch_bench_tls_echo ${CMAKE_CURRENT_LIST_DIR}/tls_echo.cpp)
target_link_libraries(conch_bench_tls_echo PRIVATE conch::sockets conch_warnings)
if(CONCH_BUILD_TESTS)
  add_test(NAME bench_tls_echo_smoke COMMAND conch_bench_tls_echo 4 1)
  set_tests_properties(bench_tls_echo_smoke PROPERTIES LABELS bench TIMEOUT 120)
endif()
