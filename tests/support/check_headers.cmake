# tests/support/check_headers.cmake
# Every public header compiles on its own, included twice (self-contained,
# guarded): a user's first #include never needs another one before it.
#
#   cmake -DROOT=<checkout> -DCXX=<compiler> -DINCLUDES=<dir;dir> -DWORK=<dir>
#         -P check_headers.cmake
# Headers under detail/ are internals, reached only through public ones.
file(GLOB_RECURSE headers RELATIVE ${ROOT}/include ${ROOT}/include/conch/*.hpp)
list(FILTER headers EXCLUDE REGEX "/detail/")
list(LENGTH headers count)
if(count EQUAL 0)
  message(FATAL_ERROR "headers: no public headers under ${ROOT}/include/conch")
endif()
set(flags -std=c++20 -Wall -Wextra -Werror -fsyntax-only -I${ROOT}/include)
foreach(dir IN LISTS INCLUDES)
  list(APPEND flags -I${dir})
endforeach()
file(MAKE_DIRECTORY ${WORK})
set(failed "")
foreach(h IN LISTS headers)
  string(MAKE_C_IDENTIFIER "${h}" id)
  set(tu ${WORK}/${id}.cpp)
  file(WRITE ${tu} "#include \"${h}\"\n#include \"${h}\"\n")
  execute_process(COMMAND ${CXX} ${flags} ${tu} RESULT_VARIABLE rc ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message("headers: ${h} does not compile on its own:\n${err}")
    list(APPEND failed ${h})
  endif()
endforeach()
if(failed)
  message(FATAL_ERROR "headers: not self-contained: ${failed}")
endif()
message("headers: ${count} public headers compile alone")
