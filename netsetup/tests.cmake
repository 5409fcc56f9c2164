# Tests of netsetup/: they link ocvm_netsetup (and common below it), nothing from config/ or
# launcher/; their input is a struct netsetup_plan written out by hand (tests/support/plans.h).
# The integration test in network namespaces drives the launcher's path (launcher/tests.cmake).
foreach(suite firewall dns_config ruleset_diff)
  ocvm_unit_suite(${suite} ocvm_netsetup ocvm_test_golden)
endforeach()
