# Tests of vsock/: they link ocvm_vsock (and common below it), nothing from config/ or launcher/.
ocvm_unit_suite(endpoint ocvm_vsock)

add_executable(test_relay tests/unit/test_relay.c)
target_link_libraries(test_relay PRIVATE ocvm_vsock PkgConfig::CHECK pthread)
add_test(NAME unit/relay COMMAND test_relay)
set_tests_properties(unit/relay PROPERTIES SKIP_RETURN_CODE 77 TIMEOUT 300)

# The hand-made guest (rings in a malloc'd buffer) shared by the tests and the fuzz target, and
# a probe of how often an idle event loop wakes.
add_library(ocvm_fake_guest STATIC tests/support/fake_guest.c tests/support/loop_probe.c)
target_link_libraries(ocvm_fake_guest PUBLIC ocvm_vsock)

foreach(suite virtqueue vsock_dev vhost_user)
  ocvm_unit_suite(${suite} ocvm_fake_guest)
endforeach()

# The sandboxed backend and its connect broker. backend_main.c is built again here with its
# test-only trigger (-DOCVM_TEST_HOOKS: a call outside the seccomp filter); the ocvm binary never
# has it.
ocvm_unit_suite(backend_sandbox ocvm_vsock)
target_sources(test_backend_sandbox PRIVATE vsock/backend_main.c)
target_compile_definitions(test_backend_sandbox PRIVATE OCVM_TEST_HOOKS)
# Fuzzing: the descriptor-chain walker and packet parser fed hostile rings (fuzz_vring), and the
# vhost-user back-end fed a hostile front-end (fuzz_vhost_user). The sources under test are
# compiled into each target so that they carry the fuzzer's coverage. Each corpus is also
# replayed through the same entry point with the normal compiler, so every build (and the ASan
# one) runs it.
set(OCVM_FUZZ_vring_SOURCES tests/fuzz/fuzz_vring.c vsock/virtqueue.c vsock/vsock_pkt.c)
set(OCVM_FUZZ_vhost_user_SOURCES tests/fuzz/fuzz_vhost_user.c vsock/vhost_user.c common/log.c
  vsock/virtqueue.c vsock/vsock_conn.c vsock/listen_rest.c)
foreach(target vring vhost_user)
  if(CMAKE_C_COMPILER_ID STREQUAL "Clang")
    add_executable(fuzz_${target} ${OCVM_FUZZ_${target}_SOURCES})
    target_compile_options(fuzz_${target} PRIVATE -fsanitize=fuzzer,address,undefined)
    target_link_options(fuzz_${target} PRIVATE -fsanitize=fuzzer,address,undefined)
    target_link_libraries(fuzz_${target} PRIVATE PkgConfig::SYSTEMD)
  endif()
  add_executable(fuzz_${target}_replay ${OCVM_FUZZ_${target}_SOURCES} tests/fuzz/replay_main.c)
  target_link_libraries(fuzz_${target}_replay PRIVATE PkgConfig::SYSTEMD)
  add_test(NAME fuzz/${target}_corpus
    COMMAND fuzz_${target}_replay ${CMAKE_SOURCE_DIR}/tests/fuzz/corpus/${target})
  set_tests_properties(fuzz/${target}_corpus PROPERTIES TIMEOUT 300)
endforeach()

# A real QEMU and the demo guest against the backend (skips without them).
add_test(NAME integration/vsock_backend_qemu
  COMMAND ${CMAKE_SOURCE_DIR}/tests/support/vsock_backend_qemu.sh ${CMAKE_BINARY_DIR})
set_tests_properties(integration/vsock_backend_qemu PROPERTIES SKIP_RETURN_CODE 77 TIMEOUT 600
  ENVIRONMENT "OCVM_SOURCE_DIR=${CMAKE_SOURCE_DIR}")
