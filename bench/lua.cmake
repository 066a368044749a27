# bench/lua.cmake
# Lua channel workloads A (ping-pong) and B (SPSC, 1024 buffer) through the
# embedding API (conch_bench_lua) and the stock lua5.4 + conch.so; compared
# with C++ conch and Go by bench/run_lua.sh.
if(TARGET conch_lua)
  add_executable(conch_bench_lua ${CMAKE_CURRENT_SOURCE_DIR}/lua_bench.cpp)
  target_link_libraries(conch_bench_lua PRIVATE conch::conch conch_warnings)
  target_compile_definitions(conch_bench_lua PRIVATE CONCH_BENCH_LUA_DIR="${CMAKE_CURRENT_SOURCE_DIR}/lua")
  if(CONCH_BUILD_TESTS)
    foreach(w A B)
      add_test(NAME bench_lua_${w} COMMAND conch_bench_lua ${w} 20000)
      set_tests_properties(bench_lua_${w} PROPERTIES LABELS bench TIMEOUT 60)
    endforeach()
  endif()
endif()
