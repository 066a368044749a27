# bench/channels.cmake
# Channel workloads A-F of issue 2: conch (conch_bench_channels), the
# Boost.Fiber baseline (conch_bench_fiber) and Asio's channel (conch_bench_asio). The Go baseline (bench/go/main.go)
# is built by bench/run_channels.sh, which also runs and tabulates them all.
add_executable(conch_bench_channels ${CMAKE_CURRENT_SOURCE_DIR}/chan_workloads.cpp)
# Only the layers it uses, so a broken sockets or Lua layer cannot stop it building.
target_link_libraries(conch_bench_channels PRIVATE conch::channels conch_warnings)

# Boost.Fiber is a baseline only: without it the conch benchmarks still build.
find_package(Boost 1.81 QUIET COMPONENTS fiber context)
if(Boost_FOUND)
  add_executable(conch_bench_fiber ${CMAKE_CURRENT_SOURCE_DIR}/fiber_workloads.cpp)
  target_link_libraries(conch_bench_fiber PRIVATE Boost::fiber Boost::context Threads::Threads
                        conch_warnings)
else()
  message(STATUS "conch: Boost.Fiber 1.81 not found; conch_bench_fiber is not built "
                 "(apt-get install libboost-fiber1.81-dev)")
endif()

# Boost.Asio's experimental channel with C++20 coroutines (issue 15), header-only from
# Debian's libboost-dev: a peer users pick. Without it the others still build.
find_package(Boost 1.81 QUIET)
if(Boost_FOUND AND EXISTS "${Boost_INCLUDE_DIRS}/boost/asio/experimental/channel.hpp")
  add_executable(conch_bench_asio ${CMAKE_CURRENT_SOURCE_DIR}/asio_workloads.cpp)
  target_link_libraries(conch_bench_asio PRIVATE Boost::headers Threads::Threads conch_warnings)
else()
  message(STATUS "conch: boost/asio/experimental/channel.hpp not found; conch_bench_asio is not built "
                 "(apt-get install libboost1.81-dev)")
endif()

# Smoke runs at a small n: each workload checks the sum it received and
# exits 1 on a mismatch, so these catch a broken benchmark (or channel) in
# seconds. Labelled `bench`; `make test` runs them (`ctest -L bench` alone).
if(CONCH_BUILD_TESTS)
  foreach(w A B C D E F)
    foreach(t 1 2)
      add_test(NAME bench_channels_${w}_${t} COMMAND conch_bench_channels ${w} ${t} 2000)
      set_tests_properties(bench_channels_${w}_${t} PROPERTIES LABELS bench TIMEOUT 60)
    endforeach()
    if(TARGET conch_bench_fiber)
      add_test(NAME bench_fiber_${w} COMMAND conch_bench_fiber ${w} 2000)
      set_tests_properties(bench_fiber_${w} PROPERTIES LABELS bench TIMEOUT 60)
    endif()
    if(TARGET conch_bench_asio)
      add_test(NAME bench_asio_${w} COMMAND conch_bench_asio ${w} 2000)
      set_tests_properties(bench_asio_${w} PROPERTIES LABELS bench TIMEOUT 60)
    endif()
  endforeach()
endif()
