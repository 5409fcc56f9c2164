# Tests of config/: the unit suite, and the pass/fail corpus run through `ocvm cmdline`.

# What the config-loading suites share (tests/support/vm_fixture.h): a temporary directory with
# stand-ins for a config's host files, and configs loaded into it, the examples among them.
add_library(ocvm_test_vm STATIC tests/support/vm_fixture.c)
target_link_libraries(ocvm_test_vm PUBLIC ocvm_config ocvm_test_golden PkgConfig::CHECK)
target_compile_definitions(ocvm_test_vm PRIVATE SOURCE_DIR="${CMAKE_SOURCE_DIR}")

ocvm_unit_suite(config ocvm_config ocvm_test_vm)
