# The user-space vhost-user vsock backend (issue 4): its sources go into ocvm_core; its unit
# tests, the fuzz target (clang only) and a corpus replay that runs with any compiler.
target_sources(ocvm_core PRIVATE
  vsock/virtqueue.c
  vsock/vsock_pkt.c
  vsock/vsock_conn.c
  vsock/vsock_table.c
  vsock/vsock_dev.c
  vsock/vhost_user.c
  vsock/backend_main.c
)

# The hand-made guest (rings in a malloc'd buffer) shared by the tests and the fuzz target.
add_library(ocvm_fake_guest STATIC tests/support/fake_guest.c)
target_link_libraries(ocvm_fake_guest PUBLIC ocvm_core)

foreach(suite virtqueue vsock_dev vhost_user)
  if(NOT EXISTS ${CMAKE_SOURCE_DIR}/tests/unit/test_${suite}.c)
    continue()
  endif()
  add_executable(test_${suite} tests/unit/test_${suite}.c)
  target_link_libraries(test_${suite} PRIVATE ocvm_fake_guest ocvm_core PkgConfig::CHECK)
  target_compile_definitions(test_${suite} PRIVATE
    SOURCE_DIR="${CMAKE_SOURCE_DIR}" BUILD_DIR="${CMAKE_BINARY_DIR}")
  add_test(NAME unit/${suite} COMMAND test_${suite})
  set_tests_properties(unit/${suite} PROPERTIES SKIP_RETURN_CODE 77 TIMEOUT 120
    ENVIRONMENT "CK_FORK=yes")
endforeach()

# Runs the backend on its own (what `ocvm vsock-backend` will run) for the QEMU test.
add_executable(vsock_backend_driver tests/support/vsock_backend_driver.c)
target_link_libraries(vsock_backend_driver PRIVATE ocvm_core)

# Fuzzing: the descriptor-chain walker and the packet parser, fed hostile rings. The sources
# under test are compiled into the target so that they carry the fuzzer's coverage.
set(OCVM_FUZZ_VRING_SOURCES tests/fuzz/fuzz_vring.c vsock/virtqueue.c vsock/vsock_pkt.c)
if(CMAKE_C_COMPILER_ID STREQUAL "Clang")
  add_executable(fuzz_vring ${OCVM_FUZZ_VRING_SOURCES})
  target_compile_options(fuzz_vring PRIVATE -fsanitize=fuzzer,address,undefined)
  target_link_options(fuzz_vring PRIVATE -fsanitize=fuzzer,address,undefined)
endif()
# The corpus replayed through the same entry point with the normal compiler, so CI covers it.
add_executable(fuzz_vring_replay ${OCVM_FUZZ_VRING_SOURCES} tests/fuzz/replay_main.c)
add_test(NAME fuzz/vring_corpus
  COMMAND fuzz_vring_replay ${CMAKE_SOURCE_DIR}/tests/fuzz/corpus/vring)
set_tests_properties(fuzz/vring_corpus PROPERTIES TIMEOUT 120)

# A real QEMU and the demo guest against the backend (skips without them).
add_test(NAME integration/vsock_backend_qemu
  COMMAND ${CMAKE_SOURCE_DIR}/tests/support/vsock_backend_qemu.sh ${CMAKE_BINARY_DIR})
set_tests_properties(integration/vsock_backend_qemu PROPERTIES SKIP_RETURN_CODE 77 TIMEOUT 600
  ENVIRONMENT "OCVM_SOURCE_DIR=${CMAKE_SOURCE_DIR}")
