# tests/support/check_headers.cmake
# Every public header compiles on its own, included twice (self-contained,
# guarded): a user's first #include never needs another one before it.
#
#   cmake -DROOT=<checkout> -DCXX=<compiler> -DINCLUDES=<dir;dir> -DWORK=<dir>
#         [-DSHARD=i -DSHARDS=n] -P check_headers.cmake
# With SHARDS, only the headers whose position modulo n is i (a shard with
# none fails: the sharding would hide a header set that shrank to nothing).
# Headers under detail/ are internals, reached only through public ones.
file(GLOB_RECURSE headers RELATIVE ${ROOT}/include ${ROOT}/include/conch/*.hpp)
list(FILTER headers EXCLUDE REGEX "/detail/")
if(DEFINED SHARDS)
  set(mine "")
  set(i 0)
  foreach(h IN LISTS headers)
    math(EXPR pos "${i} % ${SHARDS}")
    if(pos EQUAL SHARD)
      list(APPEND mine ${h})
    endif()
    math(EXPR i "${i} + 1")
  endforeach()
  set(headers ${mine})
endif()
list(LENGTH headers count)
if(count EQUAL 0)
  message(FATAL_ERROR "headers: no public headers under ${ROOT}/include/conch (shard ${SHARD} of ${SHARDS})")
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
