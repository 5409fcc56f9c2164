/* log: the one logger of ocvm, ocvm-guest and the vsock backend. A line reads
 * "PROGRAM: [VM: ][STAGE: ]message" on stderr; when stderr is the journal (systemd's
 * JOURNAL_STREAM names it) the same line goes to the journal natively, with PRIORITY,
 * SYSLOG_IDENTIFIER, OCVM_VM and OCVM_STAGE fields (and OCVM_PID_QEMU while a QEMU runs). Lines
 * above the maximum level are dropped; a struct log_ratelimit bounds a line that may repeat and
 * counts what it held back. The program name, VM, QEMU pid and level are process-wide (set once at
 * start): a logger is the one place where that is the nature of the thing. No libsystemd: the
 * static ocvm-guest uses it too. */
#pragma once

#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <syslog.h>

/* PROGRAM prefixes every line and is the journal's SYSLOG_IDENTIFIER ("ocvm", "ocvm-guest").
 * Reads $OCVM_LOG_LEVEL (err, warning, notice, info, debug) for the maximum level (default
 * info) and decides once whether stderr is the journal. */
void log_setup(const char *program);
/* The VM every later line is about (NULL: none); copied. */
void log_set_vm(const char *vm);
/* The QEMU (its pid) every later journal line is about, as OCVM_PID_QEMU=; 0: none (the field is
 * left out). Not on stderr: the line a user reads stays the same. */
void log_set_qemu_pid(pid_t pid);
void log_set_max_level(int level);
int log_get_max_level(void);
/* For tests: the journal's native socket (default /run/systemd/journal/socket). */
void log_set_journal_socket(const char *path);
/* For a process about to lose the right to open sockets (the sandboxed vsock backend): when lines
 * go to the journal, connects its socket now and sends every later line on that one. */
void log_journal_connect(void);

/* One line at syslog LEVEL about STAGE (e.g. "netsetup", "relay"; NULL: none). */
void log_msg(int level, const char *stage, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void log_msgv(int level, const char *stage, const char *fmt, va_list ap)
    __attribute__((format(printf, 3, 0)));

#define log_error(stage, ...) log_msg(LOG_ERR, stage, __VA_ARGS__)
#define log_warning(stage, ...) log_msg(LOG_WARNING, stage, __VA_ARGS__)
#define log_notice(stage, ...) log_msg(LOG_NOTICE, stage, __VA_ARGS__)
#define log_info(stage, ...) log_msg(LOG_INFO, stage, __VA_ARGS__)
#define log_debug(stage, ...) log_msg(LOG_DEBUG, stage, __VA_ARGS__)

/* At most BURST lines per INTERVAL_MS of one kind; the rest are counted, not printed. */
struct log_ratelimit {
    uint64_t interval_ms;
    unsigned burst;
    uint64_t window_start_ms; /* 0: no window yet */
    unsigned in_window;
    uint64_t held_back; /* lines refused since the last one let through */
};
#define LOG_RATELIMIT_INIT(interval, n)                                                            \
    {                                                                                              \
        .interval_ms = (interval), .burst = (n)                                                    \
    }

/* True when a line may go out now (NOW_MS on a monotonic clock). *ret_held_back (may be NULL)
 * gets the number of lines refused since the last one let through, and that count restarts. */
bool log_ratelimit_pass(struct log_ratelimit *rl, uint64_t now_ms, uint64_t *ret_held_back);
/* log_msg through RL: when lines were held back before this one, it ends with
 * " (N similar messages suppressed)". Returns whether the line went out. */
bool log_ratelimited(struct log_ratelimit *rl, int level, const char *stage, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
bool log_ratelimitedv(struct log_ratelimit *rl, int level, const char *stage, const char *fmt,
                      va_list ap) __attribute__((format(printf, 4, 0)));
