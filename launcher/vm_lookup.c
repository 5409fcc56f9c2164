#include "launcher/vm_lookup.h"

#include "common/cleanup.h"
#include "common/log.h"
#include "config/config.h"
#include "launcher/runtime_dir.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

enum { FIND_MAX = 8, ORPHAN_GRACE_MS = 2000 };

/* machine.qemu's and machine.user's defaults (config/config.c), for a VM whose config is gone */
#define DEFAULT_QEMU "qemu-system-x86_64"
#define DEFAULT_USER "ocvm"

int vm_lookup_qemu_id(const struct vm_config *c, const char *name, const char *config_path,
                      const char *dir, struct qemu_proc_id *ret)
{
    if (c)
        return qemu_proc_id_init(ret, name, dir, c->machine.qemu, c->machine.user);
    _cleanup_free_ char *path = NULL, *error = NULL;
    if (!config_path && config_path_for_name(name, &path) == 0)
        config_path = path;
    struct vm_config *loaded = NULL;
    if (!config_path || config_load(config_path, &loaded, &error) < 0)
        return qemu_proc_id_init(ret, name, dir, DEFAULT_QEMU, DEFAULT_USER);
    int r = qemu_proc_id_init(ret, name, dir, loaded->machine.qemu, loaded->machine.user);
    vm_config_free(loaded);
    return r;
}

/* Not locked: a QEMU of the VM still running under a live ocvm supervisor lost its runtime
 * directory; one under nobody is an orphan. */
static void lookup_by_qemu(const struct qemu_proc_id *id, struct vm_lookup *l)
{
    pid_t pids[FIND_MAX];
    int n = qemu_proc_find(id, pids, FIND_MAX);
    for (int i = 0; i < n; i++) {
        pid_t sup = qemu_proc_supervisor(pids[i], id->rundir);
        if (sup > 0 && !l->running) {
            l->running = true;
            l->supervisor_pid = sup;
            l->qemu_pid = pids[i];
            snprintf(
                l->why, sizeof(l->why),
                "%s is missing; found QEMU pid %d by its command line, run by supervisor pid %d",
                id->rundir, (int)pids[i], (int)sup);
        } else if (sup == 0 && l->n_orphans < VM_LOOKUP_MAX_ORPHANS)
            l->orphans[l->n_orphans++] = pids[i];
    }
}

int vm_lookup(const struct qemu_proc_id *id, struct vm_lookup *ret)
{
    const char *dir = id->rundir;
    struct vm_lookup l = {0};
    _cleanup_free_ char *state_path = runtime_file_path(dir, RUNTIME_STATE);
    if (!state_path)
        return -ENOMEM;
    int locked = runtime_dir_is_locked(dir);
    if (locked <= 0) {
        lookup_by_qemu(id, &l);
        *ret = l;
        return 0;
    }
    l.running = true;
    int r = state_read(state_path, &l.st);
    pid_t holder = 0;
    int h = runtime_dir_lock_holder(dir, &holder);
    if (r == 0 && l.st.supervisor_pid > 1 && h == 0 && holder == l.st.supervisor_pid) {
        l.have_state = true;
        l.supervisor_pid = l.st.supervisor_pid;
        l.qemu_pid = l.st.qemu_pid;
        *ret = l;
        return 0;
    }
    l.st = (struct vm_state){0};
    const char *what = r == -ENOENT ? "state.json missing"
                       : r < 0      ? "state.json unreadable"
                       : h < 0      ? "state.json unverified"
                                    : "state.json names another supervisor";
    pid_t q[FIND_MAX];
    int n = qemu_proc_find(id, q, FIND_MAX);
    l.qemu_pid = n > 0 ? q[0] : 0;
    pid_t written = 0;
    if (h < 0 && runtime_dir_lock_pid_written(dir, &written) == 0) {
        snprintf(l.why, sizeof(l.why),
                 "%s; the lock is held, by a pid this system does not show (the lock file "
                 "names pid %d, unverified)",
                 what, (int)written);
    } else if (h < 0) {
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

bool vm_lookup_supervisor_is(const struct qemu_proc_id *id, pid_t sup)
{
    pid_t holder;
    if (runtime_dir_lock_holder(id->rundir, &holder) == 0)
        return holder == sup;
    if (runtime_dir_is_locked(id->rundir) != 0)
        return false; /* held by a process not shown here, or unreadable */
    pid_t q[FIND_MAX];
    int n = qemu_proc_find(id, q, FIND_MAX);
    for (int i = 0; i < n; i++)
        if (qemu_proc_supervisor(q[i], id->rundir) == sup)
            return true;
    return false;
}

static int stop_orphans(const struct qemu_proc_id *id)
{
    pid_t pids[FIND_MAX];
    int n = qemu_proc_find(id, pids, FIND_MAX);
    if (n < 0) {
        log_msg(LOG_ERR, NULL, "look for a QEMU a dead supervisor left: %s", strerror(-n));
        return n;
    }
    for (int i = 0; i < n; i++) {
        pid_t sup = qemu_proc_supervisor(pids[i], id->rundir);
        if (sup > 0) {
            log_msg(LOG_ERR, NULL,
                    "QEMU pid %d of this VM is still run by supervisor pid %d, whose runtime "
                    "directory was removed: not starting a second one (ocvm down %s stops it)",
                    (int)pids[i], (int)sup, id->name);
            return -EBUSY;
        }
        log_msg(LOG_WARNING, NULL,
                "QEMU pid %d of this VM outlived its supervisor (an orphan): stopping it",
                (int)pids[i]);
        int r = qemu_proc_stop(id, pids[i], ORPHAN_GRACE_MS);
        if (r < 0 && r != -ESRCH) {
            log_msg(LOG_ERR, NULL,
                    "cannot stop the orphan QEMU pid %d: %s: not starting a second one",
                    (int)pids[i], strerror(-r));
            return r;
        }
    }
    return 0;
}

int vm_stop_orphans(const struct vm_config *c, const char *dir)
{
    struct qemu_proc_id id;
    int r = vm_lookup_qemu_id(c, c->name, NULL, dir, &id);
    if (r < 0)
        return r;
    r = stop_orphans(&id);
    qemu_proc_id_done(&id);
    return r;
}
