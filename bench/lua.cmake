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

# Four CPU-bound Lua states against one on a 2-thread runtime (issue 20).
if(TARGET conch_lua)
  add_executable(conch_bench_lua_states ${CMAKE_CURRENT_SOURCE_DIR}/lua_states_bench.cpp)
  target_link_libraries(conch_bench_lua_states PRIVATE conch::conch conch_warnings)
  if(CONCH_BUILD_TESTS)
    add_test(NAME bench_lua_states COMMAND conch_bench_lua_states 1 4)
    set_tests_properties(bench_lua_states PROPERTIES LABELS bench TIMEOUT 120
      PASS_REGULAR_EXPRESSION "bench=lua_states param=states:4,place:least_busy value=")
  endif()
endif()

# Lua combinators against the go loops a user would write (bench/lua/ops.lua),
# through the stock lua5.4 and conch.so; the smoke test only checks it runs.
find_program(CONCH_LUA54 lua5.4)
if(TARGET conch_lua_module AND CONCH_LUA54 AND CONCH_BUILD_TESTS AND NOT CONCH_SANITIZE)
  add_test(NAME bench_lua_ops
           COMMAND conch_io_uring_gate ${CONCH_LUA54}
             -e "package.cpath='$<TARGET_FILE_DIR:conch_lua_module>/?.so'"
             ${CMAKE_CURRENT_SOURCE_DIR}/lua/ops.lua 2000)
  set_tests_properties(bench_lua_ops PROPERTIES LABELS bench TIMEOUT 120 SKIP_RETURN_CODE 77
    PASS_REGULAR_EXPRESSION "bench=lua_ops case=conch_map param=n:2000 value=")
endif()
