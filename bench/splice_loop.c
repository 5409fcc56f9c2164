/* splice_loop: the "plain splice loop" reference relay for bench/relay. Not part of ocvm.
 *   splice_loop LISTEN_PORT TARGET_PORT
 * Loopback only. Per client: connect to the target, then one thread per direction doing blocking
 * splice(2) socket -> pipe -> socket with the default 64 KiB pipe; EOF becomes shutdown(SHUT_WR).
 * No limits, timeouts or error reporting: it is the floor a relay is measured against. */
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

struct pump {
    int from, to;
    int *refs; /* both directions done: close the sockets */
    pthread_mutex_t *lock;
};

static void *pump(void *arg)
{
    struct pump *p = arg;
    int pp[2];
    if (pipe2(pp, O_CLOEXEC) == 0) {
        for (;;) {
            ssize_t n = splice(p->from, NULL, pp[1], NULL, 65536, SPLICE_F_MOVE);
            if (n <= 0)
                break;
            while (n > 0) {
                ssize_t m = splice(pp[0], NULL, p->to, NULL, (size_t)n, SPLICE_F_MOVE);
                if (m <= 0)
                    goto out;
                n -= m;
            }
        }
    out:
        close(pp[0]);
        close(pp[1]);
    }
    shutdown(p->to, SHUT_WR);
    pthread_mutex_lock(p->lock);
    int last = --*p->refs == 0;
    pthread_mutex_unlock(p->lock);
    if (last) {
        close(p->from);
        close(p->to);
        free(p->refs);
        free(p->lock);
    }
    free(p);
    return NULL;
}

static void start(int from, int to, int *refs, pthread_mutex_t *lock)
{
    struct pump *p = malloc(sizeof(*p));
    pthread_t t;
    *p = (struct pump){.from = from, .to = to, .refs = refs, .lock = lock};
    pthread_create(&t, NULL, pump, p);
    pthread_detach(t);
}

int main(int argc, char **argv)
{
    if (argc != 3)
        return 2;
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;
    setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    sa.sin_port = htons((uint16_t)atoi(argv[1]));
    if (bind(l, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(l, 4096) < 0)
        return 1;
    sa.sin_port = htons((uint16_t)atoi(argv[2]));
    for (;;) {
        int c = accept4(l, NULL, NULL, SOCK_CLOEXEC);
        if (c < 0)
            continue;
        int t = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (connect(t, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
            close(c);
            close(t);
            continue;
        }
        int *refs = malloc(sizeof(*refs));
        pthread_mutex_t *lock = malloc(sizeof(*lock));
        *refs = 2;
        pthread_mutex_init(lock, NULL);
        start(c, t, refs, lock);
        start(t, c, refs, lock);
    }
}
