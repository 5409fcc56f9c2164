/* proc_status: one line of /proc/PID/status, for tests that check what a process gave up. */
#pragma once

#include <check.h>
#include <stdio.h>
#include <string.h>
#include <sys/types.h>

/* The text of /proc/PID/status line KEY ("NoNewPrivs"), after the tab, without the newline. */
static inline void proc_status_line(pid_t pid, const char *key, char *buf, size_t size)
{
    char path[64], line[256];
    snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    ck_assert_ptr_nonnull(f);
    buf[0] = '\0';
    while (fgets(line, sizeof(line), f))
        if (strncmp(line, key, strlen(key)) == 0 && line[strlen(key)] == ':') {
            const char *v = line + strlen(key) + 1;
            v += strspn(v, " \t");
            snprintf(buf, size, "%s", v);
            for (size_t n = strlen(buf); n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == ' ');)
                buf[--n] = '\0';
        }
    fclose(f);
}
