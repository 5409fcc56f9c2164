# Tests of policy/: they link ocvm_policy and the layers below it, nothing from launcher/.
ocvm_unit_suite(rules ocvm_policy ocvm_test_vm)
ocvm_unit_suite(gateway_config ocvm_policy ocvm_test_vm ocvm_test_golden)

# Renders gateway.openclaw for the check against the real openclaw package (skipped, 77, when it
# is not installed).
add_executable(gateway_config_driver tests/support/gateway_config_driver.c)
target_link_libraries(gateway_config_driver PRIVATE ocvm_policy)
add_test(NAME integration/gateway_config_openclaw
  COMMAND ${CMAKE_SOURCE_DIR}/tests/integration/gateway_config_openclaw.sh ${CMAKE_BINARY_DIR})
set_tests_properties(integration/gateway_config_openclaw PROPERTIES SKIP_RETURN_CODE 77
  TIMEOUT 300 ENVIRONMENT "OCVM_SOURCE_DIR=${CMAKE_SOURCE_DIR}")
ocvm_unit_suite(audit ocvm_policy ocvm_test_vm)

# Fuzzing (ocvm_fuzz_target, tests/fuzz/): a VM's config text through the strict loader, then the
# rules, OpenClaw's merged config and the canonical text over what it accepted.
ocvm_fuzz_target(config SOURCES tests/fuzz/fuzz_config.c config/config.c config/config_json.c
  common/json_reader.c common/json_pos.c vsock/endpoint.c policy/rules.c policy/gateway_config.c
  LIBS ocvm_policy)
