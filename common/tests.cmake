# Tests of common/ link ocvm_common alone.
