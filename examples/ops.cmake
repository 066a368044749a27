# examples/ops.cmake
# The combinator examples (issue 3); each also runs as a CTest smoke test.
foreach(name log_pipeline)
  add_executable(conch_example_${name} ${CMAKE_CURRENT_LIST_DIR}/${name}.cpp)
  target_link_libraries(conch_example_${name} PRIVATE conch::conch conch_warnings)
  if(CONCH_BUILD_TESTS)
    add_test(NAME example.${name} COMMAND conch_example_${name})
    set_tests_properties(example.${name} PROPERTIES LABELS examples TIMEOUT 60)
  endif()
endforeach()
