# bench/json.cmake
# JSON library choice (issue 14): the Debian C/C++ libraries side by side
# (conch_bench_json_libs, built when all their headers are installed), and
# conch.util's json against lua-cjson from Lua (bench/json/json_bench.lua).
# Figures: bench/NOTES.md "JSON".
find_path(CONCH_JANSSON_H jansson.h)
find_path(CONCH_JSONC_H json-c/json.h)
find_path(CONCH_YAJL_H yajl/yajl_tree.h)
find_path(CONCH_NLOHMANN_H nlohmann/json.hpp)
find_path(CONCH_RAPIDJSON_H rapidjson/document.h)
if(CONCH_JANSSON_H AND CONCH_JSONC_H AND CONCH_YAJL_H AND CONCH_NLOHMANN_H AND CONCH_RAPIDJSON_H)
  add_executable(conch_bench_json_libs ${CMAKE_CURRENT_SOURCE_DIR}/json/json_libs.cpp
    ${CMAKE_CURRENT_SOURCE_DIR}/json/json_libs_jansson.cpp ${CMAKE_CURRENT_SOURCE_DIR}/json/json_libs_jsonc.cpp)
  target_include_directories(conch_bench_json_libs PRIVATE ${PROJECT_SOURCE_DIR})
  target_link_libraries(conch_bench_json_libs PRIVATE jansson json-c yajl)
  if(CONCH_BUILD_TESTS)
    add_test(NAME bench_json_libs COMMAND conch_bench_json_libs 0.02)
    set_tests_properties(bench_json_libs PROPERTIES LABELS bench TIMEOUT 120)
  endif()
else()
  message(STATUS "conch: JSON library bench skipped (needs libjansson-dev libjson-c-dev libyajl-dev nlohmann-json3-dev rapidjson-dev)")
endif()
find_program(CONCH_LUA54_BENCH lua5.4)
if(TARGET conch_lua_module AND CONCH_LUA54_BENCH AND CONCH_BUILD_TESTS AND NOT CONCH_SANITIZE)
  add_test(NAME bench_json_lua
           COMMAND ${CONCH_LUA54_BENCH} -e "package.cpath='$<TARGET_FILE_DIR:conch_lua_module>/?.so;'..package.cpath"
                   ${CMAKE_CURRENT_SOURCE_DIR}/json/json_bench.lua 0.02)
  set_tests_properties(bench_json_lua PROPERTIES LABELS bench TIMEOUT 120)
endif()
