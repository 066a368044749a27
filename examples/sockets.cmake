# examples/sockets.cmake
# The socket examples, and smoke tests that run a server and a client against each other.
foreach(name echo_server echo_client chat_server)
  add_executable(conch_example_${name} ${CMAKE_CURRENT_LIST_DIR}/${name}.cpp)
  target_link_libraries(conch_example_${name} PRIVATE conch::conch conch::sockets conch_warnings)
endforeach()
if(CONCH_BUILD_TESTS)
  # server --once on an abstract name (no file to clean up), then the client.
  set(conch_sock_smoke [=[
    addr="@conch-example-$1-$$"
    "$2" "$addr" --once > /dev/null & srv=$!
    out=$("$3" "$addr" hello world) || { kill $srv 2>/dev/null; exit 1; }
    wait $srv || exit 1
    printf '%s\n' "$out"
    [ "$out" = "$4" ]]=])
  add_test(NAME example.echo_round_trip
           COMMAND sh -c "${conch_sock_smoke}" smoke echo
                   $<TARGET_FILE:conch_example_echo_server> $<TARGET_FILE:conch_example_echo_client>
                   "hello
world")
  add_test(NAME example.chat_round_trip
           COMMAND sh -c "${conch_sock_smoke}" smoke chat
                   $<TARGET_FILE:conch_example_chat_server> $<TARGET_FILE:conch_example_echo_client>
                   "client1: hello
client1: world")
  set_tests_properties(example.echo_round_trip example.chat_round_trip
                       PROPERTIES LABELS "examples;sockets" TIMEOUT 60)
endif()
