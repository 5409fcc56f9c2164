/* `ocvm console NAME`: attach the terminal to the running VM's serial console through the
 * supervisor's console socket; Ctrl-] detaches. One at a time: QEMU serves one client and would
 * leave a second one waiting in silence, so the one attached holds RUNDIR/console.lock and a
 * second is refused, naming its pid. */
#include "launcher/cli.h"
#include "common/cleanup.h"
#include "common/log.h"
#include "common/error.h"
#include "launcher/runtime_dir.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <termios.h>
#include <unistd.h>

enum { CONSOLE_ESCAPE = 0x1d }; /* Ctrl-] */

static int console_pump(int sock)
{
    struct pollfd p[2] = {{.fd = STDIN_FILENO, .events = POLLIN}, {.fd = sock, .events = POLLIN}};
    char buf[4096];
    for (;;) {
        if (poll(p, 2, -1) < 0) {
            if (errno == EINTR)
                continue;
            return negative_errno();
        }
        if (p[1].revents) {
            ssize_t n = read(sock, buf, sizeof(buf));
            if (n <= 0)
                return n < 0 ? negative_errno() : -ECONNRESET;
            if (write(STDOUT_FILENO, buf, (size_t)n) != n)
                return -EIO;
        }
        if (p[0].revents) {
            ssize_t n = read(STDIN_FILENO, buf, sizeof(buf));
            if (n <= 0)
                return 0; /* end of input: detach */
            char *esc = memchr(buf, CONSOLE_ESCAPE, (size_t)n);
            size_t len = esc ? (size_t)(esc - buf) : (size_t)n;
            if (len && send(sock, buf, len, MSG_NOSIGNAL) != (ssize_t)len)
                return negative_errno();
            if (esc)
                return 0;
        }
    }
}

/* Takes the console's lock (a POSIX write lock, whose holder F_GETLK names): 0 and *RET_FD; -EBUSY
 * with *HOLDER when another console has it. */
static int console_lock(const char *dir, int *ret_fd, pid_t *holder)
{
    _cleanup_free_ char *path = runtime_file_path(dir, RUNTIME_CONSOLE_LOCK);
    if (!path)
        return -ENOMEM;
    _cleanup_close_ int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0)
        return negative_errno();
    struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET};
    if (fcntl(fd, F_SETLK, &fl) < 0) {
        if (errno != EAGAIN && errno != EACCES)
            return negative_errno();
        fl = (struct flock){.l_type = F_WRLCK, .l_whence = SEEK_SET};
        *holder = fcntl(fd, F_GETLK, &fl) == 0 && fl.l_type != F_UNLCK ? fl.l_pid : 0;
        return -EBUSY;
    }
    *ret_fd = TAKE_FD(fd);
    return 0;
}

static int verb_console(int argc, char **argv)
{
    struct cli_args a;
    int r = cli_parse(&cli_verb_console, argc, argv, 0, &a);
    if (r <= 0)
        return r == 0 ? EXIT_OK : EXIT_USAGE;
    _cleanup_free_ char *name = NULL, *dir = NULL;
    if ((r = cli_vm_name(a.name, a.config, &name)))
        return r;
    if (runtime_dir_path(name, &dir) < 0 || runtime_dir_is_locked(dir) <= 0) {
        log_error(NULL, "not running");
        return EXIT_FAILED;
    }
    _cleanup_close_ int lock_fd = -1;
    pid_t holder = 0;
    if ((r = console_lock(dir, &lock_fd, &holder)) < 0) {
        if (r == -EBUSY)
            log_error(NULL,
                      "the console is already attached (ocvm console pid %d); one at a time: "
                      "detach it (Ctrl-]) or read %s/%s",
                      (int)holder, dir, runtime_file_name(RUNTIME_CONSOLE_LOG));
        else
            log_error(NULL, "lock the console: %s", strerror(-r));
        return EXIT_FAILED;
    }
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    _cleanup_free_ char *sock = runtime_file_path(dir, RUNTIME_CONSOLE_SOCKET);
    if (!sock ||
        snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", sock) >= (int)sizeof(sa.sun_path)) {
        log_error(NULL, "console socket path too long");
        return EXIT_FAILED;
    }
    _cleanup_close_ int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        log_error(NULL, "connect %s: %s", sa.sun_path, strerror(errno));
        return EXIT_FAILED;
    }
    struct termios saved, raw;
    bool tty = isatty(STDIN_FILENO) && tcgetattr(STDIN_FILENO, &saved) == 0;
    if (tty) {
        raw = saved;
        cfmakeraw(&raw);
        tcsetattr(STDIN_FILENO, TCSANOW, &raw);
        fprintf(stderr, "Connected to %s's console. Press Ctrl-] to detach.\r\n", name);
    }
    r = console_pump(fd);
    if (tty) {
        tcsetattr(STDIN_FILENO, TCSANOW, &saved);
        fprintf(stderr, "\nDetached from %s's console.\n", name);
    }
    if (r < 0 && r != -ECONNRESET) {
        log_error(NULL, "console: %s", strerror(-r));
        return EXIT_FAILED;
    }
    return EXIT_OK;
}

const struct cli_verb cli_verb_console = {
    .name = "console",
    .synopsis = "console NAME|--config FILE",
    .summary = "attach to the serial console (Ctrl-] detaches)",
    .help = "usage: ocvm console NAME|--config FILE\n"
            "Attach to the running VM's serial console; Ctrl-] or the end of input\n"
            "detaches. The console's output is also in console.log in the runtime directory.\n",
    .run = verb_console,
};
