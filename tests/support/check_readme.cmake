# tests/support/check_readme.cmake
# cmake -P script: README.md's code comes from examples/, and examples/README.md lists every example.
#
#   cmake -DROOT=<checkout> -P check_readme.cmake
# 1. Every ```cpp block of README.md occurs verbatim (indentation included)
#    in one of examples/*.cpp, and every ```lua block in one of
#    examples/lua/*.lua. The README's snippets then always compile and run,
#    because the examples do (STYLE.md B.8).
# 2. Every program in examples/ (*.cpp, lua/*.lua) has a row in the table of
#    examples/README.md, and every program that table names exists.
# Each violation is printed; the script fails if there is any.
cmake_minimum_required(VERSION 3.25)
if(NOT ROOT)
  message(FATAL_ERROR "usage: cmake -DROOT=<checkout> -P check_readme.cmake")
endif()

set(bad 0)

# check_blocks(<lang> <glob>): the ```<lang> blocks of README.md against the
# files matching <glob>; sets <lang>_blocks to how many there are.
function(check_blocks lang pattern)
  file(READ "${ROOT}/README.md" readme)
  file(GLOB sources "${ROOT}/${pattern}")
  set(blocks 0)
  set(failed ${bad})
  set(fence_open "```${lang}\n")
  string(LENGTH "${fence_open}" open_len)
  while(TRUE)
    string(FIND "${readme}" "${fence_open}" start)
    if(start EQUAL -1)
      break()
    endif()
    math(EXPR start "${start} + ${open_len}")
    string(SUBSTRING "${readme}" ${start} -1 readme)
    string(FIND "${readme}" "\n```" end)
    if(end EQUAL -1)
      message(FATAL_ERROR "README.md: a ```${lang} block is not closed")
    endif()
    string(SUBSTRING "${readme}" 0 ${end} block)
    string(SUBSTRING "${readme}" ${end} -1 readme)
    math(EXPR blocks "${blocks} + 1")

    set(found "")
    foreach(f IN LISTS sources)
      file(READ "${f}" src)
      string(FIND "${src}" "${block}\n" at)
      if(NOT at EQUAL -1)
        set(found "${f}")
        break()
      endif()
    endforeach()
    if(NOT found)
      math(EXPR failed "${failed} + 1")
      message("README.md: ${lang} block ${blocks} is not in any ${pattern} file:\n${block}\n")
    endif()
  endwhile()
  if(blocks EQUAL 0)
    math(EXPR failed "${failed} + 1")
    message("README.md: no ${lang} blocks found (has the fence changed?)")
  endif()
  set(${lang}_blocks ${blocks} PARENT_SCOPE)
  set(bad ${failed} PARENT_SCOPE)
endfunction()

check_blocks(cpp "examples/*.cpp")
check_blocks(lua "examples/lua/*.lua")

# The table of examples/README.md: rows start with | `<path>` |.
file(READ "${ROOT}/examples/README.md" index)
string(REGEX MATCHALL "\n\\| `[^`]+` \\|" rows "${index}")
set(listed "")
foreach(row IN LISTS rows)
  string(REGEX REPLACE "^\n\\| `([^`]+)` \\|$" "\\1" name "${row}")
  list(APPEND listed "${name}")
  if(NOT EXISTS "${ROOT}/examples/${name}")
    math(EXPR bad "${bad} + 1")
    message("examples/README.md: lists ${name}, which is not in examples/")
  endif()
endforeach()
file(GLOB programs RELATIVE "${ROOT}/examples" "${ROOT}/examples/*.cpp" "${ROOT}/examples/lua/*.lua")
list(LENGTH programs program_count)
foreach(name IN LISTS programs)
  if(NOT name IN_LIST listed)
    math(EXPR bad "${bad} + 1")
    message("examples/README.md: examples/${name} has no row in the table")
  endif()
endforeach()

if(bad GREATER 0)
  message(FATAL_ERROR "README check: ${bad} problem(s), see above")
endif()
message(STATUS "README.md: all ${cpp_blocks} cpp and ${lua_blocks} lua blocks are copied from examples/; "
               "examples/README.md lists all ${program_count} programs")
