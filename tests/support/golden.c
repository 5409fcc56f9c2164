#include "tests/support/golden.h"

#include "common/cleanup.h"

#include <check.h>
#include <string.h>

char *golden_read_file(const char *path)
{
    _cleanup_fclose_ FILE *f = fopen(path, "re");
    if (!f)
        return NULL;
    char *buf = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&buf, &len);
    if (!m)
        return NULL;
    char chunk[4096];
    size_t n;
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
        fwrite(chunk, 1, n, m);
    fclose(m);
    return buf;
}

char *golden_replace(char *s, const char *from, const char *to)
{
    char *out = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&out, &len);
    const char *p = s, *q;
    while ((q = strstr(p, from))) {
        fwrite(p, 1, (size_t)(q - p), m);
        fputs(to, m);
        p = q + strlen(from);
    }
    fputs(p, m);
    fclose(m);
    free(s);
    return out;
}

void golden_check(const char *name, const char *got)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/tests/golden/%s", SOURCE_DIR, name);
    if (getenv("UPDATE_GOLDEN")) {
        FILE *f = fopen(path, "we");
        ck_assert_msg(f, "cannot write %s", path);
        fputs(got, f);
        fclose(f);
        return;
    }
    _cleanup_free_ char *want = golden_read_file(path);
    ck_assert_msg(want, "missing golden file %s (UPDATE_GOLDEN=1 makes it)", path);
    if (strcmp(want, got) != 0) {
        const char *w = want, *g = got;
        unsigned line = 1;
        while (*w && *w == *g) {
            if (*w == '\n')
                line++;
            w++;
            g++;
        }
        ck_abort_msg("%s differs at line %u:\nwant: %.80s\ngot:  %.80s", name, line, w, g);
    }
}
