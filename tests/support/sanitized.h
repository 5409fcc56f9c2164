/* sanitized: SANITIZED is defined in an AddressSanitizer build, whose allocator and exit-time
 * leak check make system calls a seccomp sandbox forbids: tests of sandboxed code skip there. */
#pragma once

#if defined(__SANITIZE_ADDRESS__)
#define SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SANITIZED 1
#endif
#endif
