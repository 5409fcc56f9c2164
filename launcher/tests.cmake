# Tests of launcher/.
foreach(suite qmp runtime_dir state liveness guest_notify socket_activation)
  ocvm_unit_suite(${suite} ocvm_launcher ocvm_test_golden)
endforeach()
ocvm_unit_suite(qemu_proc ocvm_launcher ocvm_test_golden)
ocvm_unit_suite(privileges ocvm_launcher)
ocvm_unit_suite(virtiofsd ocvm_launcher)
ocvm_unit_suite(run_log ocvm_launcher)
foreach(suite qemu_argv net_plan secrets libvirt_xml)
  ocvm_unit_suite(${suite} ocvm_launcher ocvm_test_vm ocvm_test_golden)
endforeach()

# Runs the launcher's network path (config -> net_plan -> netsetup up/down/cleanup/audit) for the
# integration test, inside the test's own namespaces.
add_executable(netsetup_driver tests/support/netsetup_driver.c)
target_link_libraries(netsetup_driver PRIVATE ocvm_launcher)

add_test(NAME integration/netsetup
  COMMAND ${CMAKE_SOURCE_DIR}/tests/integration/netsetup.sh ${CMAKE_BINARY_DIR})
set_tests_properties(integration/netsetup PROPERTIES SKIP_RETURN_CODE 77 TIMEOUT 300
  ENVIRONMENT "OCVM_SOURCE_DIR=${CMAKE_SOURCE_DIR}" RUN_SERIAL TRUE)

# Fuzzing (ocvm_fuzz_target, tests/fuzz/): what the launcher reads from outside. QEMU's QMP
# stream (qmp), the guest's sd_notify text (guest_notify), libvirt domain XML (libvirt_xml), and
# RUNDIR/state.json (state).
ocvm_fuzz_target(qmp SOURCES tests/fuzz/fuzz_qmp.c launcher/qmp.c
  LIBS ocvm_common PkgConfig::SYSTEMD PkgConfig::JANSSON)
ocvm_fuzz_target(guest_notify SOURCES tests/fuzz/fuzz_guest_notify.c launcher/guest_notify.c
  LIBS ocvm_vsock PkgConfig::SYSTEMD)
ocvm_fuzz_target(libvirt_xml SOURCES tests/fuzz/fuzz_libvirt_xml.c launcher/libvirt_import.c
  config/config_json.c LIBS ocvm_launcher PkgConfig::LIBXML PkgConfig::JANSSON)
ocvm_fuzz_target(state SOURCES tests/fuzz/fuzz_state.c launcher/state.c
  LIBS ocvm_common PkgConfig::JANSSON)
