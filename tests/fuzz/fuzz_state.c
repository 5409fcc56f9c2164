/* libFuzzer target: RUNDIR/state.json as `ocvm status` and `ocvm down` read it (launcher/state.c,
 * state_read); the file is the supervisor's, but the reader must hold against any content. Input:
 * the file (given to state_read through a memfd). Checks: whatever state_read accepts,
 * state_write writes back in a form state_read accepts again and that is then stable: read,
 * write, read, write gives the same text twice. */
#include "launcher/state.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "re");
    if (!f)
        return NULL;
    char *buf = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&buf, &len);
    int ch;
    while (m && (ch = fgetc(f)) != EOF)
        fputc(ch, m);
    if (m)
        fclose(m);
    fclose(f);
    return buf;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 64u << 10)
        return 0;
    int fd = memfd_create("state.json", MFD_CLOEXEC);
    if (fd < 0)
        return 0;
    if (write(fd, data, size) != (ssize_t)size) {
        close(fd);
        return 0;
    }
    char dir[] = "/tmp/ocvm-fuzz-state-XXXXXX"; /* state_write wants a directory to rename in */
    if (!mkdtemp(dir))
        abort();
    char in[64], out[sizeof(dir) + 16];
    snprintf(in, sizeof(in), "/proc/self/fd/%d", fd);
    snprintf(out, sizeof(out), "%s/state.json", dir);

    struct vm_state s, again;
    if (state_read(in, &s) == 0) {
        if (state_write(out, &s) < 0)
            abort();
        char *first = slurp(out);
        if (state_read(out, &again) < 0) {
            fprintf(stderr, "state_read refuses what state_write wrote:\n%s\n", first);
            abort();
        }
        if (state_write(out, &again) < 0)
            abort();
        char *second = slurp(out);
        if (!first || !second || strcmp(first, second) != 0) {
            fprintf(stderr, "state changed on a round trip:\n%s\n---\n%s\n", first, second);
            abort();
        }
        free(first);
        free(second);
        unlink(out);
    }
    rmdir(dir);
    close(fd);
    return 0;
}
