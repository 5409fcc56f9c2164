# Tests of launcher/.
foreach(suite qmp runtime_dir state)
  ocvm_unit_suite(${suite} ocvm_launcher ocvm_test_golden)
endforeach()
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
