#include "launcher/vm_lookup.h"

#include "common/cleanup.h"
#include "common/log.h"
#include "launcher/qemu_proc.h"
#include "launcher/runtime_dir.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

enum { FIND_MAX = 8, ORPHAN_GRACE_MS = 2000 };

/* Not locked: a QEMU of NAME still running under a live ocvm supervisor lost its runtime
 * directory; one under nobody is an orphan. */
static void lookup_by_qemu(const char *name, const char *dir, struct vm_lookup *l)
{
    pid_t pids[FIND_MAX];
    int n = qemu_proc_find(name, dir, pids, FIND_MAX);
    for (int i = 0; i < n; i++) {
        pid_t sup = qemu_proc_supervisor(pids[i]);
        if (sup > 0 && !l->running) {
            l->running = true;
            l->supervisor_pid = sup;
            l->qemu_pid = pids[i];
            snprintf(
                l->why, sizeof(l->why),
                "%s is missing; found QEMU pid %d by its command line, run by supervisor pid %d",
                dir, (int)pids[i], (int)sup);
        } else if (sup == 0 && l->n_orphans < VM_LOOKUP_MAX_ORPHANS)
            l->orphans[l->n_orphans++] = pids[i];
    }
}

int vm_lookup(const char *name, const char *dir, struct vm_lookup *ret)
{
    struct vm_lookup l = {0};
    _cleanup_free_ char *state_path = runtime_file_path(dir, RUNTIME_STATE);
    if (!state_path)
        return -ENOMEM;
    int locked = runtime_dir_is_locked(dir);
    if (locked <= 0) {
        lookup_by_qemu(name, dir, &l);
        *ret = l;
        return 0;
    }
    l.running = true;
    int r = state_read(state_path, &l.st);
    pid_t holder = 0;
    int h = runtime_dir_lock_holder(dir, &holder);
    if (r == 0 && l.st.supervisor_pid > 1 && (h < 0 || holder == l.st.supervisor_pid)) {
        l.have_state = true;
        l.supervisor_pid = l.st.supervisor_pid;
        l.qemu_pid = l.st.qemu_pid;
        *ret = l;
        return 0;
    }
    l.st = (struct vm_state){0};
    const char *what = r == -ENOENT ? "state.json missing"
                       : r < 0      ? "state.json unreadable"
                                    : "state.json names another supervisor";
    pid_t q[FIND_MAX];
    int n = qemu_proc_find(name, dir, q, FIND_MAX);
    l.qemu_pid = n > 0 ? q[0] : 0;
    if (h < 0) {
        snprintf(l.why, sizeof(l.why), "%s; the lock is held, by a pid this system does not show",
                 what);
    } else {
        l.supervisor_pid = holder;
        snprintf(l.why, sizeof(l.why), "%s; supervisor pid %d holds the lock", what, (int)holder);
    }
    l.st.supervisor_pid = l.supervisor_pid;
    l.st.qemu_pid = l.qemu_pid;
    snprintf(l.st.phase, sizeof(l.st.phase), "unknown");
    *ret = l;
    return 0;
}

int vm_stop_orphans(const char *name, const char *dir)
{
    pid_t pids[FIND_MAX];
    int n = qemu_proc_find(name, dir, pids, FIND_MAX);
    if (n < 0) {
        log_msg(LOG_ERR, NULL, "look for a QEMU a dead supervisor left: %s", strerror(-n));
        return n;
    }
    for (int i = 0; i < n; i++) {
        pid_t sup = qemu_proc_supervisor(pids[i]);
        if (sup > 0) {
            log_msg(LOG_ERR, NULL,
                    "QEMU pid %d of this VM is still run by supervisor pid %d, whose runtime "
                    "directory was removed: not starting a second one (ocvm down %s stops it)",
                    (int)pids[i], (int)sup, name);
            return -EBUSY;
        }
        log_msg(LOG_WARNING, NULL,
                "QEMU pid %d of this VM outlived its supervisor (an orphan): stopping it",
                (int)pids[i]);
        int r = qemu_proc_stop(pids[i], name, dir, ORPHAN_GRACE_MS);
        if (r < 0 && r != -ESRCH) {
            log_msg(LOG_ERR, NULL,
                    "cannot stop the orphan QEMU pid %d: %s: not starting a second one",
                    (int)pids[i], strerror(-r));
            return r;
        }
    }
    return 0;
}
