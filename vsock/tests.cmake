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

# The sandboxed backend and its connect broker. backend_sandbox.c is built again here with its
# test-only trigger (-DOCVM_TEST_HOOKS: a call outside the seccomp filter); the ocvm binary never
# has it.
ocvm_unit_suite(backend_sandbox ocvm_vsock)
target_sources(test_backend_sandbox PRIVATE vsock/backend_sandbox.c)
target_compile_definitions(test_backend_sandbox PRIVATE OCVM_TEST_HOOKS)
# The host relay's child (`ocvm relay-child`), built again with the same trigger.
ocvm_unit_suite(relay_child ocvm_vsock)
target_sources(test_relay_child PRIVATE vsock/backend_sandbox.c)
target_compile_definitions(test_relay_child PRIVATE OCVM_TEST_HOOKS)
# What ocvm-guest reads from the kernel command line (only ocvm-guest links it).
ocvm_unit_suite(guest_cmdline ocvm_vsock)
target_sources(test_guest_cmdline PRIVATE vsock/guest_cmdline.c)

# Fuzzing (ocvm_fuzz_target, tests/fuzz/): the descriptor-chain walker and packet parser fed
# hostile rings (vring), the vhost-user back-end fed a hostile front-end (vhost_user), the hybrid
# `CONNECT PORT\n` line and `OK N\n` reply (connect_line), and the guest's kernel command line
# parameters (guest_cmdline).
ocvm_fuzz_target(vring SOURCES tests/fuzz/fuzz_vring.c vsock/virtqueue.c vsock/vsock_pkt.c
  LIBS PkgConfig::SYSTEMD)
ocvm_fuzz_target(vhost_user SOURCES tests/fuzz/fuzz_vhost_user.c vsock/vhost_user.c common/log.c
  vsock/virtqueue.c vsock/vsock_conn.c vsock/listen_rest.c LIBS PkgConfig::SYSTEMD)
ocvm_fuzz_target(connect_line SOURCES tests/fuzz/fuzz_connect_line.c vsock/vsock_conn.c
  vsock/endpoint_socket.c LIBS ocvm_vsock)
ocvm_fuzz_target(guest_cmdline SOURCES tests/fuzz/fuzz_guest_cmdline.c vsock/guest_cmdline.c
  vsock/endpoint.c LIBS ocvm_common)

# A real QEMU and the demo guest against the backend (skips without them).
add_test(NAME integration/vsock_backend_qemu
  COMMAND ${CMAKE_SOURCE_DIR}/tests/support/vsock_backend_qemu.sh ${CMAKE_BINARY_DIR})
set_tests_properties(integration/vsock_backend_qemu PROPERTIES SKIP_RETURN_CODE 77 TIMEOUT 600
  ENVIRONMENT "OCVM_SOURCE_DIR=${CMAKE_SOURCE_DIR}")
