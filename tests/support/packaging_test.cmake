# tests/support/packaging_test.cmake
# cmake -P script: builds and runs tests/support/consumer against conch.
#
#   -DMODE=install       cmake --install the already-built BUILD_DIR into a fresh
#                        prefix, then the consumer does find_package(conch).
#   -DMODE=subdirectory  the consumer does add_subdirectory(SOURCE_DIR).
# Other variables: SOURCE_DIR (the checkout), BUILD_DIR (the build tree under
# test), WORK_DIR (scratch space), CXX, C (compilers), BUILD_TYPE, SANITIZE,
# JOBS.
cmake_minimum_required(VERSION 3.25)

foreach(var MODE SOURCE_DIR BUILD_DIR WORK_DIR CXX C)
  if(NOT DEFINED ${var} OR "${${var}}" STREQUAL "")
    message(FATAL_ERROR "packaging_test.cmake: -D${var}=... is required")
  endif()
endforeach()
if(NOT JOBS)
  set(JOBS 2)
endif()
if(NOT BUILD_TYPE)
  set(BUILD_TYPE Debug)
endif()

# run(<step> <command...>): runs a command, fails the test with its output.
function(run step)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "${MODE}: ${step} failed (${rc}):\n  ${ARGN}\n${out}")
  endif()
  message(STATUS "${MODE}: ${step}: ok")
  set(last_output "${out}" PARENT_SCOPE)
endfunction()

set(consumer_args
  -DCMAKE_CXX_COMPILER=${CXX} -DCMAKE_C_COMPILER=${C} -DCMAKE_BUILD_TYPE=${BUILD_TYPE}
  -DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF)
if(SANITIZE)
  # The consumer's own objects and link need the sanitizer runtime too.
  list(APPEND consumer_args "-DCMAKE_CXX_FLAGS=-fsanitize=${SANITIZE}"
       "-DCMAKE_EXE_LINKER_FLAGS=-fsanitize=${SANITIZE}")
endif()

if(MODE STREQUAL "install")
  set(prefix ${WORK_DIR}/prefix)
  set(consumer_build ${WORK_DIR}/consumer)
  file(REMOVE_RECURSE ${prefix} ${consumer_build})
  run("cmake --install" ${CMAKE_COMMAND} --install ${BUILD_DIR} --prefix ${prefix})
  foreach(f include/conch/conch.hpp include/conch/core/task.hpp include/conch/chan/chan.hpp)
    if(NOT EXISTS ${prefix}/${f})
      message(FATAL_ERROR "install: ${f} is missing from the installed tree")
    endif()
  endforeach()
  file(GLOB_RECURSE config ${prefix}/conch-config.cmake)
  if(NOT config)
    message(FATAL_ERROR "install: no conch-config.cmake under ${prefix}")
  endif()
  run("configure consumer (find_package)" ${CMAKE_COMMAND} -S ${SOURCE_DIR}/tests/support/consumer
      -B ${consumer_build} -DCMAKE_PREFIX_PATH=${prefix} ${consumer_args})
elseif(MODE STREQUAL "subdirectory")
  set(consumer_build ${WORK_DIR}/consumer)  # kept between runs: rebuilds are incremental
  run("configure consumer (add_subdirectory)" ${CMAKE_COMMAND} -S ${SOURCE_DIR}/tests/support/consumer
      -B ${consumer_build} -DCONCH_SOURCE_DIR=${SOURCE_DIR} -DCONCH_CONSUMER_LINKS=conch::sockets
      ${consumer_args})
else()
  message(FATAL_ERROR "packaging_test.cmake: MODE must be install or subdirectory, not '${MODE}'")
endif()

run("build consumer" ${CMAKE_COMMAND} --build ${consumer_build} --target consumer -j ${JOBS})
run("run consumer" ${consumer_build}/consumer)
if(NOT last_output MATCHES "consumer: got 42")
  message(FATAL_ERROR "${MODE}: the consumer ran but printed:\n${last_output}")
endif()
message(STATUS "${MODE}: ${last_output}")
