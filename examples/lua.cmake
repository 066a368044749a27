# examples/lua.cmake
# Lua examples, run by the stock lua5.4 with the built conch.so; each is also
# a CTest smoke test (label examples), unless lua5.4 is missing or a
# sanitizer is on (conch.so cannot load into an uninstrumented lua5.4 then).
find_program(CONCH_LUA54 lua5.4)
if(CONCH_BUILD_TESTS AND CONCH_LUA54 AND NOT CONCH_SANITIZE AND TARGET conch_lua_module)
  foreach(name producer_consumer echo_server chat_server)
    add_test(NAME example.lua.${name}
             COMMAND ${CONCH_LUA54}
               -e "package.cpath='$<TARGET_FILE_DIR:conch_lua_module>/?.so'; package.path='${PROJECT_SOURCE_DIR}/lua/?.lua;'..package.path"
               ${CMAKE_CURRENT_LIST_DIR}/lua/${name}.lua --demo)
    set_tests_properties(example.lua.${name} PROPERTIES LABELS examples TIMEOUT 60)
  endforeach()
endif()
