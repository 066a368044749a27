# bench/sockets.cmake
# Socket echo benchmark (issue 4): the conch server, two plain-C reference
# servers (epoll; liburing with multishot accept+recv and provided buffers),
# the Go and Asio servers users pick (issue 15) and a load generator of our own. bench/run_sockets.sh runs the matrix with
# the server pinned to CPU 0 and the generator to CPU 1, and tabulates it.
add_executable(conch_bench_sock_echo ${CMAKE_CURRENT_LIST_DIR}/sock_echo_conch.cpp)
target_link_libraries(conch_bench_sock_echo PRIVATE conch::sockets conch_warnings)

foreach(name sock_epoll_server sock_uring_server sock_loadgen)
  add_executable(conch_bench_${name} ${CMAKE_CURRENT_LIST_DIR}/${name}.c)
  set_target_properties(conch_bench_${name} PROPERTIES C_STANDARD 11 C_EXTENSIONS ON)
  target_compile_options(conch_bench_${name} PRIVATE -O2 -Wall -Wextra -Werror)
endforeach()
target_link_libraries(conch_bench_sock_uring_server PRIVATE PkgConfig::URING)

# The peers users pick (issue 15), each built only where its toolchain is:
# Boost.Asio with C++20 coroutines, on its epoll reactor and on io_uring
# (BOOST_ASIO_HAS_IO_URING + BOOST_ASIO_DISABLE_EPOLL: io_uring for sockets
# too), from one source; and Go's net package (go build, no modules: nothing
# is downloaded). run_sockets.sh skips a server whose binary is missing.
find_package(Boost 1.81 QUIET)
if(Boost_FOUND)
  foreach(backend epoll uring)
    add_executable(conch_bench_sock_asio_${backend} ${CMAKE_CURRENT_LIST_DIR}/sock_asio_server.cpp)
    target_link_libraries(conch_bench_sock_asio_${backend} PRIVATE Boost::headers Threads::Threads conch_warnings)
  endforeach()
  target_compile_definitions(conch_bench_sock_asio_uring PRIVATE BOOST_ASIO_HAS_IO_URING BOOST_ASIO_DISABLE_EPOLL)
  target_link_libraries(conch_bench_sock_asio_uring PRIVATE PkgConfig::URING)
else()
  message(STATUS "conch: Boost 1.81 headers not found; the Asio echo servers are not built")
endif()
find_program(CONCH_GO_EXECUTABLE go)
if(CONCH_GO_EXECUTABLE)
  set(conch_go_echo ${CMAKE_CURRENT_BINARY_DIR}/conch_bench_sock_go_server)
  add_custom_command(OUTPUT ${conch_go_echo}
    COMMAND ${CMAKE_COMMAND} -E env GO111MODULE=off GOFLAGS= GOPATH=${CMAKE_CURRENT_BINARY_DIR}/go-path
            GOCACHE=${CMAKE_CURRENT_BINARY_DIR}/go-cache
            ${CONCH_GO_EXECUTABLE} build -o ${conch_go_echo} ${CMAKE_CURRENT_LIST_DIR}/go/echo/main.go
    DEPENDS ${CMAKE_CURRENT_LIST_DIR}/go/echo/main.go
    COMMENT "go build conch_bench_sock_go_server")
  add_custom_target(conch_bench_sock_go_server ALL DEPENDS ${conch_go_echo})
else()
  message(STATUS "conch: go not found; the Go echo server is not built (apt-get install golang-go)")
endif()

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
