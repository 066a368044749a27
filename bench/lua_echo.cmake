# bench/lua_echo.cmake
# Lua echo servers (issue 17): conch, lsocket on conch, cqueues, luv, side by side
# (bench/run_lua_echo.sh, bench/lua/echo_server.lua; instructions a message under callgrind:
# bench/profile_lua_echo.sh). Smoke run: every server
# (conch, lsocket, cqueues, luv; the real lsocket with LSOCKET_REAL) for a moment at
# 64 B and 16 KiB, so a broken one shows in CTest (the load
# generator checks every echoed byte and fails when nothing comes back).
find_program(CONCH_LUA54_BENCH lua5.4)
if(CONCH_BUILD_TESTS AND TARGET conch_lua_module AND CONCH_LUA54_BENCH AND NOT CONCH_SANITIZE)
  add_test(NAME bench_lua_echo_smoke
           COMMAND conch_io_uring_gate ${CMAKE_CURRENT_LIST_DIR}/run_lua_echo.sh --smoke ${PROJECT_BINARY_DIR})
  set_tests_properties(bench_lua_echo_smoke PROPERTIES LABELS bench TIMEOUT 120 SKIP_RETURN_CODE 77)
endif()
