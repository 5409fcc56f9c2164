# Tests of common/: they link ocvm_common alone.
ocvm_unit_suite(log ocvm_common)
