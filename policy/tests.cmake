# Tests of policy/: they link ocvm_policy and the layers below it, nothing from launcher/.
ocvm_unit_suite(rules ocvm_policy ocvm_test_golden)
