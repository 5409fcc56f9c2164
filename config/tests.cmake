# Tests of config/: the unit suite, and the pass/fail corpus run through `ocvm cmdline`.
ocvm_unit_suite(config ocvm_config)
