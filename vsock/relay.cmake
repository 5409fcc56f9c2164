# The relay engine (host and guest side) and its tests.
target_sources(ocvm_core PRIVATE vsock/relay.c)

add_executable(test_relay tests/unit/test_relay.c)
target_link_libraries(test_relay PRIVATE ocvm_core PkgConfig::CHECK pthread)
add_test(NAME unit/relay COMMAND test_relay)
set_tests_properties(unit/relay PROPERTIES SKIP_RETURN_CODE 77 TIMEOUT 300)
