# tests/support/check_skip.cmake
# cmake -P script: on a host without io_uring every runtime test is skipped (exit 77), none fails.
#
#   cmake -DWRAPPER=<without_io_uring> -DERRNO=ENOSYS|EPERM -DCTEST=<ctest>
#         -DBINARY=<a Catch test binary> -DTESTS_DIR=<build>/tests -DDIRS=core,channels,...
#         -P check_skip.cmake
#
# without_io_uring (tests/support/without_io_uring.c) makes io_uring_setup
# fail with ERRNO. Under it this script runs
#  1. BINARY with no arguments: it must exit 77 and say why (the listener in
#     tests/support/io_uring_listener.cpp stops it at its first case);
#  2. ctest in each TESTS_DIR/<one of DIRS>, the real tests with their real properties
#     (SKIP_RETURN_CODE): every test there must be reported Skipped. Each
#     directory gets its own Testing/ folder, away from the outer ctest's.
cmake_minimum_required(VERSION 3.25)
foreach(var WRAPPER ERRNO CTEST BINARY TESTS_DIR DIRS)
  if(NOT ${var})
    message(FATAL_ERROR "check_skip.cmake: -D${var}=... is missing")
  endif()
endforeach()
if(ERRNO STREQUAL "ENOSYS")
  set(reason "Function not implemented")
else()
  set(reason "Operation not permitted")
endif()

execute_process(COMMAND ${WRAPPER} ${ERRNO} ${BINARY}
                RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
if(NOT rc EQUAL 77)
  message(FATAL_ERROR "${BINARY} without io_uring (${ERRNO}) exited ${rc}, not 77:\n${out}\n${err}")
endif()
if(NOT err MATCHES "skipped: this test needs io_uring[^\n]*${reason}")
  message(FATAL_ERROR "${BINARY} exited 77 without naming the reason (${reason}):\n${err}")
endif()
message(STATUS "${BINARY}: exit 77: ${err}")

set(total 0)
string(REPLACE "," ";" DIRS "${DIRS}")  # commas: add_test would split a ';' list
foreach(name IN LISTS DIRS)
  set(dir ${TESTS_DIR}/${name})
  execute_process(COMMAND ${WRAPPER} ${ERRNO} ${CTEST} --test-dir ${dir} -j2 --timeout 120 --no-tests=error
                  RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  # One "Test #n: name ...***Skipped" line per test; anything else failed or passed.
  string(REGEX MATCHALL "Test +#[0-9]+: [^\n]*" lines "${out}")
  list(LENGTH lines n)
  set(skipped 0)
  foreach(line IN LISTS lines)
    if(line MATCHES "\\*\\*\\*Skipped")
      math(EXPR skipped "${skipped} + 1")
    else()
      message(SEND_ERROR "${dir}: not skipped without io_uring (${ERRNO}): ${line}")
    endif()
  endforeach()
  if(n EQUAL 0 OR NOT rc EQUAL 0)
    message(FATAL_ERROR "${dir}: ctest exited ${rc} after ${n} tests:\n${out}\n${err}")
  endif()
  message(STATUS "${dir}: ${skipped} of ${n} tests skipped")
  math(EXPR total "${total} + ${skipped}")
endforeach()
message(STATUS "without io_uring (${ERRNO}): ${total} tests skipped, none failed")
