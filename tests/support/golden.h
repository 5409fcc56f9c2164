/* golden: what the golden-file tests share: read a file whole, rewrite text, and compare with
 * tests/golden/NAME (written instead when UPDATE_GOLDEN is set, to regenerate deliberately). */
#pragma once

/* The whole file at PATH (allocated, NUL-terminated), or NULL. */
char *golden_read_file(const char *path);
/* Returns S with every FROM replaced by TO; S is freed. */
char *golden_replace(char *s, const char *from, const char *to);
/* Asserts GOT equals tests/golden/NAME, naming the first line that differs. */
void golden_check(const char *name, const char *got);
