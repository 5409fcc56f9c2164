# netsetup: bridge, TAP, nft table (issue 3). Included from the top-level CMakeLists.txt after
# ocvm_core is defined; adds its sources to ocvm_core and its own tests.
target_sources(ocvm_core PRIVATE
  netsetup/cidr.c
  netsetup/dns_config.c
  netsetup/firewall.c
  netsetup/link.c
  netsetup/netsetup.c
  netsetup/ruleset_diff.c
)
target_link_libraries(ocvm_core PUBLIC PkgConfig::NL PkgConfig::NFT)

foreach(suite firewall dns_config ruleset_diff)
  ocvm_unit_suite(${suite} ocvm_test_golden)
endforeach()

# Runs netsetup_up/down/cleanup/audit for the integration test, inside the test's namespaces.
add_executable(netsetup_driver tests/support/netsetup_driver.c)
target_link_libraries(netsetup_driver PRIVATE ocvm_core)

add_test(NAME integration/netsetup
  COMMAND ${CMAKE_SOURCE_DIR}/tests/integration/netsetup.sh ${CMAKE_BINARY_DIR})
set_tests_properties(integration/netsetup PROPERTIES SKIP_RETURN_CODE 77 TIMEOUT 300
  ENVIRONMENT "OCVM_SOURCE_DIR=${CMAKE_SOURCE_DIR}" RUN_SERIAL TRUE)
