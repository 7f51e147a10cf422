/*
 * test_multiprocess: the shm backend ([backend] kind = "shm") across real processes.
 *
 * Every process that calls license_init with the same [backend] path maps one seat
 * table, so one limit holds for all of them. The test forks real processes; children
 * report through exit codes, pipes and a MAP_SHARED|MAP_ANONYMOUS region made before
 * the first fork (C11 atomics), and the parent waitpids every child and fails on any
 * exit status but 0 (or on a signal other than the SIGKILL it sent itself).
 *
 *  Phase 1, three processes x 4 threads, each process calling license_init itself
 *    after the fork, hammer a small pool (callcenter, limit 5, count = "session") and
 *    bundles over it and two smaller types (crm 3, chat 2), with a user name per
 *    acquire. A cross-process shadow count per type is raised after each successful
 *    acquire and lowered before each release; its maximum (CAS max) must stay within
 *    every limit and reach it (contention happened), and it must end at 0. Every
 *    refusal names a type of the bundle at used == limit. The parent maps the same
 *    table meanwhile and a checker thread reads license_usage (used <= limit) all
 *    along. At the end seatgate's own counts are 0, the shared billing counters agree
 *    with the shadow (peak == limit, seats taken == successful acquires of the type)
 *    and the report has no holders.
 *  Phase 2, Kamailio's model: license_init in the parent ([reaper] enabled = false,
 *    so the fork is single-threaded), then 4 children race for one type (limit 6) for
 *    distinct users until refused. Together they get exactly 6 (a shared tally); the
 *    parent's license_usage, license_stats and report show 6 used, by the children's
 *    pids; each child releases its own handles and exits; usage is back to 0.
 *  Phase 3, kill -9: (a) a child fills a type and is SIGKILLed; the parent's polling
 *    acquire (a refusal reaps first) gets a seat well within 5 s, then exactly `limit`
 *    seats, and a RELEASED event with reason LICENSE_RELEASE_OWNER_GONE arrived for
 *    each of the child's handles. (b) With a 1 s lease and reclaim_dead_owners = false,
 *    the seats come back only when the lease runs out (never before it: measured from
 *    just before the child's first acquire; a forced license_reap before then
 *    reclaims nothing), with reason LICENSE_RELEASE_EXPIRED. (c) Kamailio's model: a
 *    child forked after the parent's init takes seats with the inherited engine and
 *    is SIGKILLed; license_reap (no reaper thread) reclaims exactly its handles and
 *    never the parent's own.
 *  Phase 4, bad input: a table made with capacity = 10 refuses capacity = 20 (from
 *    another process while it is in use, and after a shutdown in the same process)
 *    with LICENSE_ERR_BACKEND naming the path and the capacity; a file that is not a
 *    seatgate table (a short "hello", and 8 KiB of 'x') is LICENSE_ERR_BACKEND "not a
 *    seatgate table" and is left as it was; a path in a missing directory is
 *    LICENSE_ERR_BACKEND naming it; the created table has mode 0600; capacity = 3
 *    with a session type of limit 10 refuses a 4th handle with LICENSE_ERR_TABLE_FULL,
 *    taking nothing.
 *  Phase 5, license_shutdown in one process frees only its own handles: children A
 *    and B and the parent hold seats (no reaper threads, so only the test reaps).
 *    A's shutdown leaves B's and the parent's counted, also after a forced reap past
 *    the owner check (which reclaims nothing, with no event); the parent's shutdown
 *    leaves B's (B sees its own 2); B's shutdown frees its last. Then Kamailio's model
 *    with the default reaper: a "main" process inits, a worker it forks takes a seat
 *    and calls license_shutdown: the call returns, no panic is printed, and the
 *    worker's seat is freed while main's stays. (The worker then ends by SIGKILL so
 *    that valgrind does not leak-check a process forked while a thread ran: see
 *    p5_worker.)
 *
 *  Phase 6, tenants: a child gives tenant "acme" its limit at run time (the config
 *    names only globex) and logs alice in there; the parent, which never heard of
 *    acme, releases that handle (it carries acme's number from the table's tenant
 *    registry, 2 after globex's 1), and the child then sees acme 0 used. The parent
 *    still serves no acme logins (LICENSE_ERR_UNKNOWN_TENANT): it was never given
 *    acme's limit.
 *
 * Phase 1 forks before anything is initialized; phases 2 and 3c fork after
 * license_init with [reaper] enabled = false, so every fork of this process is from a
 * single-threaded state. Only phase 5's "main" child forks with a thread running (the
 * reaper), which is the documented model being tested.
 *
 * Timing: polling loops have deadlines; a "not yet" check is made only when the
 * measured time proves the deadline had not passed. Every table lives under /dev/shm
 * with this process's pid in its name and is removed at exit. SEATGATE_TEST_QUICK=1
 * (valgrind) cuts the iteration counts and widens the time bounds.
 */
#include "common.h"

#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdbool.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>

/* ---- small helpers ---- */

/* In hot loops: a failure is counted and printed, a pass is not, so the pass count
 * does not depend on how many iterations the scheduler allowed. */
#define CHECK_LOOP(cond, ...)                                                  \
    do {                                                                       \
        if (!(cond))                                                           \
            CHECK(cond, __VA_ARGS__);                                          \
    } while (0)

#define BIT(t) (1u << (t))

static long timing_notes; /* checks skipped because this machine was too slow */

static void sleep_s(double seconds) {
    struct timespec ts;
    ts.tv_sec = (time_t)seconds;
    ts.tv_nsec = (long)((seconds - (double)ts.tv_sec) * 1e9);
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

static void timing_note(const char *what) {
    timing_notes++;
    fprintf(stderr, "test_multiprocess: note: %s (machine too slow for this check; skipped)\n", what);
}

/* How long a parent waits for a child's message or exit: generous, since it only
 * bounds a hang (valgrind runs every process several times slower). */
static double child_timeout(void) { return tc_quick() ? 120.0 : 30.0; }

static uint32_t rnd(uint64_t *s) {
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return (uint32_t)(*s >> 11);
}

static license_seat must_acquire(const char *user, const char *profiles) {
    license_seat seat = 0;
    int32_t rc = license_try_acquire(user, profiles, &seat);
    CHECK(rc == LICENSE_OK && seat != 0, "[pid %d] acquire(%s, %s) returned %s; last error: \"%s\"", (int)getpid(),
          user, profiles, tc_code_name(rc), tc_last_error());
    return rc == LICENSE_OK ? seat : 0;
}

static void check_used(const char *type, uint32_t want, const char *when) {
    uint32_t used = tc_usage(type);
    CHECK(used == want, "[pid %d] %s: '%s' used %u, expected %u", (int)getpid(), when, type, used, want);
}

static license_type_stats stats_of(const char *type) {
    license_type_stats st;
    memset(&st, 0, sizeof st);
    st.size = sizeof st;
    CHECK_RC(license_stats(type, &st), LICENSE_OK);
    return st;
}

/* license_init that must succeed; false (with the failure counted) if it did not. */
static bool init_ok(const char *config, const char *who) {
    int32_t rc = license_init(config);
    CHECK(rc == LICENSE_OK, "%s (pid %d): license_init returned %s: %s", who, (int)getpid(), tc_code_name(rc),
          tc_last_error());
    return rc == LICENSE_OK;
}

static bool contains(const char *text, const char *needle) { return text != NULL && strstr(text, needle) != NULL; }

/* ---- seat tables under /dev/shm, removed at exit (by the parent only) ---- */

#define MAX_TABLES 32
static char table_paths[MAX_TABLES][128];
static int n_tables;
static pid_t main_pid;

static void remove_tables(void) {
    if (getpid() != main_pid)
        return;
    for (int i = 0; i < n_tables; i++)
        unlink(table_paths[i]);
    n_tables = 0;
}

/* A fresh path /dev/shm/seatgate-test-<pid>-<tag> (nothing there yet). */
static const char *table_path(const char *tag) {
    if (n_tables == 0)
        atexit(remove_tables);
    if (n_tables >= MAX_TABLES) {
        fprintf(stderr, "table_path: more than %d tables\n", MAX_TABLES);
        exit(2);
    }
    char *p = table_paths[n_tables++];
    snprintf(p, sizeof table_paths[0], "/dev/shm/seatgate-test-%d-%s", (int)main_pid, tag);
    unlink(p);
    return p;
}

/* ---- state shared by every process (MAP_SHARED | MAP_ANONYMOUS, made before any fork) ---- */

enum { T_CC, T_CRM, T_CHAT, P1_TYPES };
static const char *const P1_NAMES[P1_TYPES] = {"callcenter", "crm", "chat"};
static const uint32_t P1_LIMITS[P1_TYPES] = {5, 3, 2};
#define P1_PROCS 3
#define P1_THREADS 4
#define P2_CHILDREN 4
#define P2_LIMIT 6

struct shared {
    /* checks made in children, added to the parent's count when it reaps them */
    atomic_long child_passed, child_failed;
    /* start line */
    atomic_int ready;
    atomic_bool go;
    /* phase 1 */
    atomic_int shadow[P1_TYPES];
    atomic_int shadow_max[P1_TYPES];
    atomic_long taken[P1_TYPES]; /* successful acquires that hold the type */
    atomic_long refused_by[P1_TYPES];
    atomic_long ok, refused;
    /* phase 2 */
    atomic_int tally;
    atomic_int got[P2_CHILDREN];
    atomic_int done;
    atomic_bool release;
    /* phase 5 */
    atomic_bool worker_done;
};
static struct shared *sh;

static void shared_reset(void) {
    memset(sh, 0, sizeof *sh); /* only between phases, with no child alive */
}

/* ---- children ---- */

struct child {
    pid_t pid;
    int to_child;   /* parent -> child: one-byte commands */
    int from_child; /* child -> parent: reports */
    const char *name;
};

/* In a child: its ends of the two pipes, and its name for messages. */
static int ctl_in = -1, rep_out = -1;
static const char *child_name = "parent";

/* Moves this child's check counts into the shared region (before it may be killed). */
static void child_flush_counts(void) {
    atomic_fetch_add(&sh->child_passed, atomic_exchange(&tc_passed, 0));
    atomic_fetch_add(&sh->child_failed, atomic_exchange(&tc_failed, 0));
}

/* A child ends here: never exit(), which would run the parent's atexit handlers
 * (removing its config files and tables). Exit status 1 when a check failed. */
static void child_exit(void) {
    long failed = atomic_load(&tc_failed);
    child_flush_counts();
    fflush(NULL);
    _exit(failed == 0 ? 0 : 1);
}

static void child_send(const void *buf, size_t len) {
    const char *p = buf;
    while (len > 0) {
        ssize_t n = write(rep_out, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            fprintf(stderr, "%s: cannot write to the parent: %s\n", child_name, strerror(errno));
            _exit(3);
        }
        p += n;
        len -= (size_t)n;
    }
}

/* Waits for the parent's next command; the parent gone (EOF) ends the child. */
static char child_wait_cmd(void) {
    char c;
    for (;;) {
        ssize_t n = read(ctl_in, &c, 1);
        if (n == 1)
            return c;
        if (n < 0 && errno == EINTR)
            continue;
        child_flush_counts();
        _exit(3);
    }
}

/* Waits (bounded) until the shared start flag is set. */
static bool wait_go(void) {
    double deadline = tc_now() + child_timeout();
    while (!atomic_load(&sh->go)) {
        if (tc_now() > deadline)
            return false;
        sched_yield(); /* no sleep: every waiter starts at once */
    }
    return true;
}

/* Forks a child that runs body(arg) and exits. The parent must be single-threaded
 * (no seatgate reaper, no helper thread) when it calls this. */
static struct child spawn(const char *name, void (*body)(void *), void *arg) {
    int down[2], up[2];
    if (pipe(down) != 0 || pipe(up) != 0) {
        fprintf(stderr, "pipe: %s\n", strerror(errno));
        exit(2);
    }
    fflush(NULL);
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0) {
        fprintf(stderr, "fork: %s\n", strerror(errno));
        exit(2);
    }
    if (pid == 0) {
        /* a child never outlives a crashed parent */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(3);
        close(down[1]);
        close(up[0]);
        ctl_in = down[0];
        rep_out = up[1];
        child_name = name;
        atomic_store(&tc_passed, 0);
        atomic_store(&tc_failed, 0);
        body(arg);
        child_exit();
    }
    close(down[0]);
    close(up[1]);
    return (struct child){pid, down[1], up[0], name};
}

static void send_cmd(const struct child *c, char cmd) {
    ssize_t n;
    do
        n = write(c->to_child, &cmd, 1);
    while (n < 0 && errno == EINTR);
    CHECK(n == 1, "cannot send '%c' to %s (pid %d): %s", cmd, c->name, (int)c->pid, strerror(errno));
}

/* Reads exactly `len` bytes from the child within child_timeout(); false on EOF or
 * timeout (the failure is counted). */
static bool recv_from(const struct child *c, void *buf, size_t len) {
    char *p = buf;
    double deadline = tc_now() + child_timeout();
    while (len > 0) {
        int left_ms = (int)((deadline - tc_now()) * 1000);
        if (left_ms <= 0) {
            CHECK(0, "%s (pid %d) sent nothing within %.0f s", c->name, (int)c->pid, child_timeout());
            return false;
        }
        struct pollfd pfd = {c->from_child, POLLIN, 0};
        int r = poll(&pfd, 1, left_ms);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            continue;
        ssize_t n = read(c->from_child, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            CHECK(0, "%s (pid %d) closed its pipe before reporting (it died?)", c->name, (int)c->pid);
            return false;
        }
        p += n;
        len -= (size_t)n;
    }
    return true;
}

/* Waits (bounded) for the child to end; want_signal 0: it must exit with status 0,
 * else it must die of that signal. Adds its checks to this process's count. */
static void wait_child(struct child *c, int want_signal) {
    double deadline = tc_now() + child_timeout();
    int status = 0;
    bool hung = false;
    for (;;) {
        pid_t r = waitpid(c->pid, &status, WNOHANG);
        if (r == c->pid)
            break;
        if (r < 0 && errno != EINTR) {
            CHECK(0, "waitpid(%s, pid %d): %s", c->name, (int)c->pid, strerror(errno));
            return;
        }
        if (tc_now() > deadline) {
            hung = true;
            kill(c->pid, SIGKILL);
            while (waitpid(c->pid, &status, 0) < 0 && errno == EINTR) {
            }
            break;
        }
        sleep_s(0.002);
    }
    CHECK(!hung, "%s (pid %d) did not end within %.0f s: killed", c->name, (int)c->pid, child_timeout());
    if (!hung) {
        if (want_signal == 0)
            CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0, "%s (pid %d) ended with %s %d", c->name,
                  (int)c->pid, WIFEXITED(status) ? "exit status" : "signal",
                  WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
        else
            CHECK(WIFSIGNALED(status) && WTERMSIG(status) == want_signal, "%s (pid %d) ended with %s %d, not signal %d",
                  c->name, (int)c->pid, WIFEXITED(status) ? "exit status" : "signal",
                  WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status), want_signal);
    }
    close(c->to_child);
    close(c->from_child);
    c->pid = 0;
    atomic_fetch_add(&tc_passed, atomic_exchange(&sh->child_passed, 0));
    atomic_fetch_add(&tc_failed, atomic_exchange(&sh->child_failed, 0));
}

/* ---- RELEASED events seen by this process ---- */

#define MAX_EVENTS 512
static pthread_mutex_t ev_mutex = PTHREAD_MUTEX_INITIALIZER;
static struct {
    license_seat seat;
    uint32_t reason, used, limit;
    char type[LICENSE_MAX_NAME_LEN + 1];
} ev_released[MAX_EVENTS];
static int ev_n;
static int ev_marker;

static void ev_callback(void *user_data, const license_event *e) {
    if (user_data != &ev_marker || e->kind != LICENSE_EVENT_RELEASED)
        return;
    pthread_mutex_lock(&ev_mutex);
    if (ev_n < MAX_EVENTS) {
        ev_released[ev_n].seat = e->seat;
        ev_released[ev_n].reason = e->reason;
        ev_released[ev_n].used = e->used;
        ev_released[ev_n].limit = e->limit;
        snprintf(ev_released[ev_n].type, sizeof ev_released[0].type, "%s", e->license_type ? e->license_type : "");
        ev_n++;
    }
    pthread_mutex_unlock(&ev_mutex);
}

static void ev_reset(void) {
    pthread_mutex_lock(&ev_mutex);
    ev_n = 0;
    pthread_mutex_unlock(&ev_mutex);
}

/* RELEASED events for `seat` with `reason` (UINT32_MAX: any reason). */
static int ev_count(license_seat seat, uint32_t reason) {
    int n = 0;
    pthread_mutex_lock(&ev_mutex);
    for (int i = 0; i < ev_n; i++)
        if (ev_released[i].seat == seat && (reason == UINT32_MAX || ev_released[i].reason == reason))
            n++;
    pthread_mutex_unlock(&ev_mutex);
    return n;
}

/* true if every RELEASED event of `seat` names `type` with `limit`, and a count
 * under the limit (the count right after that handle went). */
static bool ev_fields_ok(license_seat seat, const char *type, uint32_t limit) {
    bool ok = true;
    pthread_mutex_lock(&ev_mutex);
    for (int i = 0; i < ev_n; i++)
        if (ev_released[i].seat == seat)
            ok = ok && strcmp(ev_released[i].type, type) == 0 && ev_released[i].limit == limit &&
                 ev_released[i].used < limit;
    pthread_mutex_unlock(&ev_mutex);
    return ok;
}

/* Waits (up to `seconds`) until every seat in `seats` has a RELEASED event with
 * `reason`: the reaper thread may deliver them just after an acquire saw the seats
 * free. Returns how many have one. */
static int ev_wait_all(const license_seat *seats, int n, uint32_t reason, double seconds) {
    double deadline = tc_now() + seconds;
    for (;;) {
        int have = 0;
        for (int i = 0; i < n; i++)
            if (ev_count(seats[i], reason) > 0)
                have++;
        if (have == n || tc_now() > deadline)
            return have;
        sleep_s(0.005);
    }
}

/* ==== Phase 1: 3 processes x 4 threads over a small pool and bundles ==== */

static const struct p1_kind {
    const char *profiles;
    unsigned mask;
} P1_KINDS[] = {
    {"callcenter", BIT(T_CC)},
    {"agent", BIT(T_CC) | BIT(T_CRM)},
    {"full", BIT(T_CC) | BIT(T_CRM) | BIT(T_CHAT)},
    {"crm,chat", BIT(T_CRM) | BIT(T_CHAT)},
    {"chat", BIT(T_CHAT)},
};
#define P1_N_KINDS (sizeof P1_KINDS / sizeof P1_KINDS[0])
#define P1_HOLD 2 /* handles a thread keeps before releasing its oldest */

struct p1_thread {
    int proc, thread, iters;
};

static int p1_type_index(const char *name) {
    for (int t = 0; t < P1_TYPES; t++)
        if (strcmp(P1_NAMES[t], name) == 0)
            return t;
    return -1;
}

static void p1_shadow_up(unsigned mask, const char *profiles) {
    for (int t = 0; t < P1_TYPES; t++) {
        if (!(mask & BIT(t)))
            continue;
        atomic_fetch_add(&sh->taken[t], 1);
        int v = atomic_fetch_add(&sh->shadow[t], 1) + 1;
        CHECK_LOOP((uint32_t)v <= P1_LIMITS[t], "[pid %d] after acquiring %s: '%s' has %d holders, limit %u",
                   (int)getpid(), profiles, P1_NAMES[t], v, P1_LIMITS[t]);
        int m = atomic_load(&sh->shadow_max[t]);
        while (v > m && !atomic_compare_exchange_weak(&sh->shadow_max[t], &m, v)) {
        }
    }
}

static void p1_shadow_down(unsigned mask) {
    for (int t = 0; t < P1_TYPES; t++)
        if (mask & BIT(t))
            atomic_fetch_sub(&sh->shadow[t], 1);
}

static void p1_release(license_seat seat, unsigned mask) {
    p1_shadow_down(mask); /* before the seat is free for anyone else */
    int32_t rc = license_release(seat);
    CHECK_LOOP(rc == LICENSE_OK, "[pid %d] release returned %s: %s", (int)getpid(), tc_code_name(rc),
               tc_last_error());
}

static void *p1_worker(void *arg) {
    const struct p1_thread *w = arg;
    uint64_t seed = 0x9E3779B97F4A7C15ull ^ ((uint64_t)(w->proc * P1_THREADS + w->thread + 1) * 0x100000001B3ull);
    license_seat held[P1_HOLD];
    unsigned held_mask[P1_HOLD];
    int n_held = 0;
    long ok = 0, refused = 0;
    if (!wait_go()) {
        CHECK(0, "[pid %d] the start signal never came", (int)getpid());
        return NULL;
    }
    for (int i = 0; i < w->iters; i++) {
        const struct p1_kind *k = &P1_KINDS[rnd(&seed) % P1_N_KINDS];
        char user[48];
        snprintf(user, sizeof user, "p%d-t%d-%d", w->proc, w->thread, i);
        license_seat h = 0;
        license_denial d;
        int32_t rc = tc_acquire_ex(user, k->profiles, &h, &d);
        if (rc == LICENSE_OK) {
            ok++;
            p1_shadow_up(k->mask, k->profiles);
            if (n_held == P1_HOLD) {
                p1_release(held[0], held_mask[0]);
                held[0] = held[1];
                held_mask[0] = held_mask[1];
                n_held = 1;
            }
            held[n_held] = h;
            held_mask[n_held] = k->mask;
            n_held++;
            if (rnd(&seed) % 8 == 0)
                sched_yield(); /* hold a while: more contention */
        } else if (rc == LICENSE_ERR_LIMIT_REACHED) {
            refused++;
            int t = p1_type_index(d.license_type);
            CHECK_LOOP(t >= 0 && (k->mask & BIT(t)) && d.limit == P1_LIMITS[t] && d.used == d.limit &&
                           d.reason == LICENSE_DENIAL_FULL,
                       "[pid %d] %s refused by '%.64s' %u/%u reason %u: not a full type of the bundle", (int)getpid(),
                       k->profiles, d.license_type, d.used, d.limit, d.reason);
            if (t >= 0)
                atomic_fetch_add(&sh->refused_by[t], 1);
        } else {
            CHECK_LOOP(0, "[pid %d] acquire(%s, %s) returned %s: %s", (int)getpid(), user, k->profiles,
                       tc_code_name(rc), tc_last_error());
        }
        if (n_held > 0 && rnd(&seed) % 4 == 0) {
            p1_release(held[0], held_mask[0]);
            held[0] = held[1];
            held_mask[0] = held_mask[1];
            n_held--;
        }
    }
    while (n_held > 0) {
        n_held--;
        p1_release(held[n_held], held_mask[n_held]);
    }
    atomic_fetch_add(&sh->ok, ok);
    atomic_fetch_add(&sh->refused, refused);
    return NULL;
}

struct p1_child_arg {
    const char *config;
    int proc, iters;
};

static void p1_child(void *arg) {
    const struct p1_child_arg *a = arg;
    bool inited = init_ok(a->config, "phase 1 worker process");
    pthread_t ts[P1_THREADS];
    struct p1_thread ws[P1_THREADS];
    if (inited)
        for (int i = 0; i < P1_THREADS; i++) {
            ws[i] = (struct p1_thread){a->proc, i, a->iters};
            tc_spawn(&ts[i], p1_worker, &ws[i]);
        }
    atomic_fetch_add(&sh->ready, 1); /* even after a failed init: the parent must not wait */
    if (!inited)
        return;
    for (int i = 0; i < P1_THREADS; i++)
        pthread_join(ts[i], NULL);
    license_shutdown();
}

static atomic_bool p1_stop_checker;
static long p1_checker_reads;
static uint32_t p1_checker_max[P1_TYPES];

static void *p1_checker(void *unused) {
    (void)unused;
    while (!atomic_load(&p1_stop_checker)) {
        for (int t = 0; t < P1_TYPES; t++) {
            uint32_t used = 0, limit = 0;
            int32_t rc = license_usage(P1_NAMES[t], &used, &limit);
            CHECK_LOOP(rc == LICENSE_OK, "checker: license_usage(%s) returned %s", P1_NAMES[t], tc_code_name(rc));
            if (rc != LICENSE_OK)
                continue;
            p1_checker_reads++;
            CHECK_LOOP(used <= limit && limit == P1_LIMITS[t], "checker: '%s' used %u, limit %u (config %u)",
                       P1_NAMES[t], used, limit, P1_LIMITS[t]);
            if (used > p1_checker_max[t])
                p1_checker_max[t] = used;
        }
        sleep_s(0.0002); /* leave the CPUs to the workers */
    }
    return NULL;
}

/* Phase 1 on one backend: `backend` is the [backend] section, `table` the shm file to
 * remove afterwards (NULL for redis). */
static void phase1_hammer_on(const char *label, const char *backend, const char *table, int iters) {
    double t0 = tc_now();
    const char *config = tc_write_configf("[licenses.callcenter]\nlimit = 5\ncount = \"session\"\n\n"
                                       "[licenses.crm]\nlimit = 3\n\n"
                                       "[licenses.chat]\nlimit = 2\n\n"
                                       "[profiles.agent]\nconsumes = [\"callcenter\", \"crm\"]\n\n"
                                       "[profiles.full]\nconsumes = [\"callcenter\", \"crm\", \"chat\"]\n\n"
                                       "%s",
                                       backend);
    shared_reset();
    struct child kids[P1_PROCS];
    struct p1_child_arg args[P1_PROCS];
    char names[P1_PROCS][32];
    for (int p = 0; p < P1_PROCS; p++) {
        args[p] = (struct p1_child_arg){config, p, iters};
        snprintf(names[p], sizeof names[p], "phase 1 process %d", p);
        kids[p] = spawn(names[p], p1_child, &args[p]);
    }
    /* Every child has mapped the table (they raced to create it); now the parent maps
     * it too and watches the counts while the children run. */
    double deadline = tc_now() + child_timeout();
    while (atomic_load(&sh->ready) < P1_PROCS && tc_now() < deadline)
        sleep_s(0.001);
    CHECK(atomic_load(&sh->ready) == P1_PROCS, "phase 1: only %d of %d processes got ready", atomic_load(&sh->ready),
          P1_PROCS);
    bool inited = init_ok(config, "phase 1 parent");
    pthread_t checker;
    atomic_store(&p1_stop_checker, false);
    if (inited)
        tc_spawn(&checker, p1_checker, NULL);
    double t_run = tc_now();
    atomic_store(&sh->go, true);
    for (int p = 0; p < P1_PROCS; p++)
        wait_child(&kids[p], 0);
    double run_s = tc_now() - t_run;
    if (!inited)
        return;
    atomic_store(&p1_stop_checker, true);
    pthread_join(checker, NULL);

    long ok = atomic_load(&sh->ok), refused = atomic_load(&sh->refused);
    long attempts = (long)P1_PROCS * P1_THREADS * iters;
    CHECK(ok + refused == attempts, "phase 1: %ld ok + %ld refused != %ld attempts", ok, refused, attempts);
    CHECK(ok > 0 && refused > 0, "phase 1: %ld ok, %ld refused: no contention", ok, refused);
    CHECK(p1_checker_reads > 0, "phase 1: the parent's checker never read a count");
    for (int t = 0; t < P1_TYPES; t++) {
        int max = atomic_load(&sh->shadow_max[t]);
        CHECK((uint32_t)max <= P1_LIMITS[t], "phase 1: '%s' had %d holders at once across processes, limit %u",
              P1_NAMES[t], max, P1_LIMITS[t]);
        CHECK((uint32_t)max == P1_LIMITS[t], "phase 1: '%s' peaked at %d of %u: the test made no contention",
              P1_NAMES[t], max, P1_LIMITS[t]);
        CHECK(atomic_load(&sh->shadow[t]) == 0, "phase 1: shadow count of '%s' ends at %d", P1_NAMES[t],
              atomic_load(&sh->shadow[t]));
        check_used(P1_NAMES[t], 0, "phase 1 end");
        /* the billing counters live in the table: every process's seats are in them */
        license_type_stats st = stats_of(P1_NAMES[t]);
        CHECK(st.peak == P1_LIMITS[t], "phase 1: '%s' stats peak %u, limit %u (shadow peak %d)", P1_NAMES[t], st.peak,
              P1_LIMITS[t], max);
        CHECK(st.acquired == (uint64_t)atomic_load(&sh->taken[t]),
              "phase 1: '%s' stats say %llu seats taken, the processes took %ld", P1_NAMES[t],
              (unsigned long long)st.acquired, atomic_load(&sh->taken[t]));
    }
    int32_t rc;
    char *json = tc_report(LICENSE_REPORT_JSON, &rc);
    CHECK(json != NULL, "phase 1: final JSON report: %s", tc_code_name(rc));
    CHECK(contains(json, "\"holders\": []"), "phase 1: the final report still has holders");
    free(json);
    license_shutdown();
    if (table != NULL)
        CHECK(unlink(table) == 0, "phase 1: cannot remove %s: %s", table, strerror(errno));
    fprintf(stderr,
            "test_multiprocess: phase 1 (%s): %d processes x %d threads x %d: %ld ok, %ld refused (callcenter %ld, crm %ld, "
            "chat %ld); peaks callcenter %d/%u crm %d/%u chat %d/%u (parent's reads up to %u/%u/%u, %ld reads); "
            "%.2f s running, %.2f s in all\n",
            label, P1_PROCS, P1_THREADS, iters, ok, refused, atomic_load(&sh->refused_by[T_CC]),
            atomic_load(&sh->refused_by[T_CRM]), atomic_load(&sh->refused_by[T_CHAT]),
            atomic_load(&sh->shadow_max[T_CC]), P1_LIMITS[T_CC], atomic_load(&sh->shadow_max[T_CRM]), P1_LIMITS[T_CRM],
            atomic_load(&sh->shadow_max[T_CHAT]), P1_LIMITS[T_CHAT], p1_checker_max[T_CC], p1_checker_max[T_CRM],
            p1_checker_max[T_CHAT], p1_checker_reads, run_s, tc_now() - t0);
}

static void phase1_hammer(void) {
    const char *table = table_path("p1");
    char section[1024];
    snprintf(section, sizeof section, "[backend]\nkind = \"shm\"\npath = \"%s\"\ncapacity = 1000\n", table);
    phase1_hammer_on("shm", section, table, tc_quick() ? 300 : 25000);

    /* The same three processes on one Redis: `make test` starts a redis-server on a
     * free port of 127.0.0.1 (scripts/with-redis.sh) and names it here. */
    const char *port = getenv("SEATGATE_TEST_REDIS_PORT");
    CHECK(port != NULL && atoi(port) > 0,
          "SEATGATE_TEST_REDIS_PORT is not set: run this test through `make test-c` (scripts/with-redis.sh "
          "starts a redis-server for it)");
    if (port == NULL || atoi(port) <= 0)
        return;
    snprintf(section, sizeof section,
             "[backend]\nkind = \"redis\"\nurl = \"redis://127.0.0.1:%d\"\nprefix = \"mp-%ld\"\n"
             "timeout = \"5s\"\n",
             atoi(port), (long)getpid());
    phase1_hammer_on("redis", section, NULL, tc_quick() ? 60 : 1500);
}

/* ==== Phase 2: Kamailio's model, license_init in the parent, then fork ==== */

struct p2_arg {
    int index;
};

static void p2_child(void *arg) {
    int me = ((const struct p2_arg *)arg)->index;
    license_seat seats[64];
    int n = 0;
    atomic_fetch_add(&sh->ready, 1);
    if (!wait_go()) {
        CHECK(0, "[%s] the start signal never came", child_name);
        return;
    }
    /* as many seats as this child can get, for distinct users, until refused */
    for (int i = 0; i < 64; i++) {
        char user[32];
        snprintf(user, sizeof user, "kam%d-u%d", me, i);
        license_denial d;
        int32_t rc = tc_acquire_ex(user, "pbx", &seats[n], &d);
        if (rc == LICENSE_OK) {
            n++;
            atomic_fetch_add(&sh->tally, 1);
            sched_yield(); /* let the other workers in: a race, not a queue */
            continue;
        }
        CHECK(rc == LICENSE_ERR_LIMIT_REACHED, "[%s] acquire returned %s: %s", child_name, tc_code_name(rc),
              tc_last_error());
        if (rc == LICENSE_ERR_LIMIT_REACHED)
            CHECK(strcmp(d.license_type, "pbx") == 0 && d.used == P2_LIMIT && d.limit == P2_LIMIT,
                  "[%s] refused by '%.64s' %u/%u", child_name, d.license_type, d.used, d.limit);
        break;
    }
    atomic_store(&sh->got[me], n);
    atomic_fetch_add(&sh->done, 1);
    double deadline = tc_now() + child_timeout();
    while (!atomic_load(&sh->release) && tc_now() < deadline)
        sleep_s(0.001);
    CHECK(atomic_load(&sh->release), "[%s] the parent never said release", child_name);
    for (int i = 0; i < n; i++)
        CHECK_RC(license_release(seats[i]), LICENSE_OK);
    /* a worker exits without license_shutdown, as a Kamailio child does */
}

static void phase2_kamailio(void) {
    double t0 = tc_now();
    const char *table = table_path("p2");
    /* no reaper thread: the parent forks from a single-threaded state */
    const char *config = tc_write_configf("[licenses.pbx]\nlimit = %d\n\n[reaper]\nenabled = false\n\n"
                                       "[backend]\nkind = \"shm\"\npath = \"%s\"\ncapacity = 64\n",
                                       P2_LIMIT, table);
    shared_reset();
    if (!init_ok(config, "phase 2 parent"))
        return;
    check_used("pbx", 0, "phase 2 start");
    struct child kids[P2_CHILDREN];
    struct p2_arg args[P2_CHILDREN];
    char names[P2_CHILDREN][32];
    for (int i = 0; i < P2_CHILDREN; i++) {
        args[i].index = i;
        snprintf(names[i], sizeof names[i], "phase 2 worker %d", i);
        kids[i] = spawn(names[i], p2_child, &args[i]);
    }
    double deadline = tc_now() + child_timeout();
    while (atomic_load(&sh->ready) < P2_CHILDREN && tc_now() < deadline)
        sleep_s(0.001);
    atomic_store(&sh->go, true);
    deadline = tc_now() + child_timeout();
    while (atomic_load(&sh->done) < P2_CHILDREN && tc_now() < deadline)
        sleep_s(0.001);
    CHECK(atomic_load(&sh->done) == P2_CHILDREN, "phase 2: only %d of %d workers finished acquiring",
          atomic_load(&sh->done), P2_CHILDREN);

    int sum = 0;
    char split[64] = "";
    for (int i = 0; i < P2_CHILDREN; i++) {
        int g = atomic_load(&sh->got[i]);
        sum += g;
        snprintf(split + strlen(split), sizeof split - strlen(split), "%s%d", i ? "+" : "", g);
    }
    CHECK(atomic_load(&sh->tally) == P2_LIMIT && sum == P2_LIMIT,
          "phase 2: the workers got %d seats together (tally %d, split %s), limit %d", sum, atomic_load(&sh->tally),
          split, P2_LIMIT);
    uint32_t used = 0, limit = 0;
    CHECK_RC(license_usage("pbx", &used, &limit), LICENSE_OK);
    CHECK(used == P2_LIMIT && limit == P2_LIMIT, "phase 2: the parent sees pbx %u/%u, expected %d/%d", used, limit,
          P2_LIMIT, P2_LIMIT);
    license_type_stats st = stats_of("pbx");
    CHECK(st.used == P2_LIMIT && st.peak == P2_LIMIT && st.acquired == P2_LIMIT,
          "phase 2: stats used %u peak %u acquired %llu", st.used, st.peak, (unsigned long long)st.acquired);
    license_seat extra = 0;
    CHECK_RC(license_try_acquire("kam-parent", "pbx", &extra), LICENSE_ERR_LIMIT_REACHED);
    /* the report shows the holders, by the pid of the worker that took each */
    int32_t rc;
    char *text = tc_report(LICENSE_REPORT_TEXT, &rc);
    CHECK(text != NULL, "phase 2: text report: %s", tc_code_name(rc));
    CHECK(contains(text, "6/6"), "phase 2: the report does not show pbx 6/6:\n%s", text ? text : "");
    for (int i = 0; i < P2_CHILDREN && text != NULL; i++) {
        char node[32], user[32];
        snprintf(node, sizeof node, "pid %d", (int)kids[i].pid);
        snprintf(user, sizeof user, "kam%d-u0", i);
        bool has_seat = atomic_load(&sh->got[i]) > 0;
        CHECK(contains(text, node) == has_seat && contains(text, user) == has_seat,
              "phase 2: worker %d (pid %d) holds %d seats, but the report %s it:\n%s", i, (int)kids[i].pid,
              atomic_load(&sh->got[i]), has_seat ? "does not show" : "shows", text);
    }
    free(text);

    atomic_store(&sh->release, true);
    for (int i = 0; i < P2_CHILDREN; i++)
        wait_child(&kids[i], 0);
    check_used("pbx", 0, "phase 2, every worker released and exited");
    license_seat mine = must_acquire("kam-parent", "pbx");
    CHECK_RC(license_release(mine), LICENSE_OK);
    license_shutdown();
    CHECK(unlink(table) == 0, "phase 2: cannot remove %s: %s", table, strerror(errno));
    fprintf(stderr, "test_multiprocess: phase 2: %d workers forked after init got %s = %d seats of %d; %.2f s\n",
            P2_CHILDREN, split, sum, P2_LIMIT, tc_now() - t0);
}

/* ==== Phase 3: kill -9 ==== */

#define P3_MAX_SEATS 8

struct p3_report {
    double t_before; /* CLOCK_MONOTONIC just before the first acquire */
    double t_after;  /* ... just after the last one */
    int n;
    license_seat seats[P3_MAX_SEATS];
};

struct p3_arg {
    const char *config; /* NULL: use the engine inherited from the parent */
    const char *type;
    int seats;
};

/* Takes `seats` seats, reports them, and blocks until killed. */
static void p3_victim(void *arg) {
    const struct p3_arg *a = arg;
    struct p3_report r;
    memset(&r, 0, sizeof r);
    if (a->config != NULL && !init_ok(a->config, child_name)) {
        child_send(&r, sizeof r);
        return;
    }
    r.t_before = tc_now();
    for (int i = 0; i < a->seats && i < P3_MAX_SEATS; i++) {
        char user[48];
        snprintf(user, sizeof user, "doomed-%d", i);
        r.seats[i] = must_acquire(user, a->type);
        if (r.seats[i] != 0)
            r.n++;
    }
    r.t_after = tc_now();
    child_flush_counts(); /* this process dies by SIGKILL */
    child_send(&r, sizeof r);
    child_wait_cmd(); /* blocks: the parent kills us */
    CHECK(0, "[%s] was not killed", child_name);
}

/* Polls license_try_acquire(user, type) until it succeeds or `deadline_s` passes.
 * Returns the time of success, or -1. */
static double poll_acquire(const char *user, const char *type, double t_from, double deadline_s,
                           license_seat *seat) {
    for (;;) {
        int32_t rc = license_try_acquire(user, type, seat);
        double now = tc_now();
        if (rc == LICENSE_OK)
            return now;
        CHECK_LOOP(rc == LICENSE_ERR_LIMIT_REACHED, "polling acquire of '%s' returned %s: %s", type,
                   tc_code_name(rc), tc_last_error());
        if (now - t_from > deadline_s)
            return -1;
        sleep_s(0.005);
    }
}

/* Takes every seat the parent can still get (distinct users); returns the count. */
static int take_all(const char *type, const char *prefix, license_seat *seats, int max) {
    int n = 0;
    for (; n < max; n++) {
        char user[48];
        snprintf(user, sizeof user, "%s-%d", prefix, n);
        int32_t rc = license_try_acquire(user, type, &seats[n]);
        if (rc != LICENSE_OK) {
            CHECK(rc == LICENSE_ERR_LIMIT_REACHED, "take_all(%s) returned %s", type, tc_code_name(rc));
            break;
        }
    }
    return n;
}

static void release_all(const license_seat *seats, int n) {
    for (int i = 0; i < n; i++)
        CHECK_RC(license_release(seats[i]), LICENSE_OK);
}

/* (a) reclaim_dead_owners (default), no lease. */
static void phase3a_owner_gone(void) {
    double t0 = tc_now();
    const int limit = 3;
    const char *table = table_path("p3a");
    const char *config = tc_write_configf("[licenses.desk]\nlimit = %d\n\n"
                                       "[backend]\nkind = \"shm\"\npath = \"%s\"\ncapacity = 64\n",
                                       limit, table);
    struct p3_arg va = {config, "desk", limit};
    struct child victim = spawn("phase 3a victim", p3_victim, &va);
    ev_reset();
    CHECK_RC(license_set_event_callback(ev_callback, &ev_marker), LICENSE_OK);
    bool inited = init_ok(config, "phase 3a parent");
    struct p3_report r;
    memset(&r, 0, sizeof r);
    if (!recv_from(&victim, &r, sizeof r) || !inited || r.n != limit) {
        CHECK(0, "phase 3a: the victim took %d of %d seats", r.n, limit);
        kill(victim.pid, SIGKILL);
        wait_child(&victim, SIGKILL);
        license_shutdown();
        return;
    }
    check_used("desk", (uint32_t)limit, "phase 3a, the victim holds every seat");
    license_seat s = 0;
    license_denial d;
    CHECK_RC(tc_acquire_ex("alive-0", "desk", &s, &d), LICENSE_ERR_LIMIT_REACHED);
    CHECK(d.used == (uint32_t)limit && d.limit == (uint32_t)limit, "phase 3a: denial %u/%u", d.used, d.limit);

    double t_kill = tc_now();
    CHECK(kill(victim.pid, SIGKILL) == 0, "kill: %s", strerror(errno));
    wait_child(&victim, SIGKILL);
    double bound = tc_quick() ? 10.0 : 5.0, well_within = tc_quick() ? 5.0 : 1.5;
    double t_ok = poll_acquire("alive-0", "desk", t_kill, bound, &s);
    CHECK(t_ok > 0, "phase 3a: no seat came back within %.1f s of kill -9", bound);
    if (t_ok > 0)
        CHECK(t_ok - t_kill <= well_within, "phase 3a: the first seat came back only %.2f s after kill -9",
              t_ok - t_kill);
    license_seat more[8];
    more[0] = s;
    int n = t_ok > 0 ? 1 + take_all("desk", "alive-more", more + 1, 7) : 0;
    CHECK(n == limit, "phase 3a: after the kill the parent could take %d seats, limit %d", n, limit);
    check_used("desk", (uint32_t)limit, "phase 3a, the parent holds every seat");

    int with_event = ev_wait_all(r.seats, r.n, LICENSE_RELEASE_OWNER_GONE, 2.0);
    CHECK(with_event == r.n, "phase 3a: %d of the dead process's %d handles got a RELEASED event with reason "
                             "OWNER_GONE",
          with_event, r.n);
    for (int i = 0; i < r.n; i++) {
        CHECK(ev_count(r.seats[i], UINT32_MAX) == 1, "phase 3a: the dead process's handle %d got %d RELEASED events",
              i, ev_count(r.seats[i], UINT32_MAX));
        CHECK(ev_fields_ok(r.seats[i], "desk", (uint32_t)limit), "phase 3a: a RELEASED event of handle %d has the "
                                                                 "wrong type, limit or count",
              i);
    }
    release_all(more, n);
    check_used("desk", 0, "phase 3a end");
    license_shutdown();
    CHECK_RC(license_set_event_callback(NULL, NULL), LICENSE_OK);
    CHECK(unlink(table) == 0, "phase 3a: cannot remove %s: %s", table, strerror(errno));
    fprintf(stderr, "test_multiprocess: phase 3a: kill -9 of a holder of %d seats: first seat back after %.3f s; "
                    "%.2f s\n",
            limit, t_ok > 0 ? t_ok - t_kill : -1.0, tc_now() - t0);
}

/* (b) reclaim_dead_owners = false with a 1 s lease: back only when the lease ends. */
static void phase3b_lease_only(void) {
    double t0 = tc_now();
    const int limit = 2;
    const double lease = 1.0;
    const char *table = table_path("p3b");
    const char *config = tc_write_configf("[licenses.hot]\nlimit = %d\nlease = \"1s\"\n\n"
                                       "[backend]\nkind = \"shm\"\npath = \"%s\"\ncapacity = 64\n"
                                       "reclaim_dead_owners = false\n",
                                       limit, table);
    struct p3_arg va = {config, "hot", limit};
    struct child victim = spawn("phase 3b victim", p3_victim, &va);
    ev_reset();
    CHECK_RC(license_set_event_callback(ev_callback, &ev_marker), LICENSE_OK);
    bool inited = init_ok(config, "phase 3b parent");
    struct p3_report r;
    memset(&r, 0, sizeof r);
    if (!recv_from(&victim, &r, sizeof r) || !inited || r.n != limit) {
        CHECK(0, "phase 3b: the victim took %d of %d seats", r.n, limit);
        kill(victim.pid, SIGKILL);
        wait_child(&victim, SIGKILL);
        license_shutdown();
        return;
    }
    double t_kill = tc_now();
    CHECK(kill(victim.pid, SIGKILL) == 0, "kill: %s", strerror(errno));
    wait_child(&victim, SIGKILL);
    /* the owner is dead, and nothing is reclaimed before the lease */
    sleep_s(0.3); /* past the 250 ms owner check, so it would have run */
    uint32_t reclaimed = 99;
    CHECK_RC(license_reap(&reclaimed), LICENSE_OK);
    uint32_t used = tc_usage("hot");
    if (tc_now() < r.t_before + lease) {
        CHECK(reclaimed == 0 && used == (uint32_t)limit,
              "phase 3b: with reclaim_dead_owners = false, a reap %.3f s after the victim's first acquire reclaimed "
              "%u (used %u)",
              tc_now() - r.t_before, reclaimed, used);
    } else {
        timing_note("phase 3b: the lease ended before the forced reap");
    }
    license_seat s = 0;
    double bound = lease + (tc_quick() ? 8.0 : 3.0);
    double t_ok = poll_acquire("alive-0", "hot", t_kill, bound, &s);
    CHECK(t_ok > 0, "phase 3b: no seat came back within %.1f s of kill -9", bound);
    if (t_ok > 0) {
        CHECK(t_ok >= r.t_before + lease, "phase 3b: a seat came back %.3f s after the victim's first acquire, before "
                                          "its %.1f s lease",
              t_ok - r.t_before, lease);
        CHECK(t_ok <= r.t_after + lease + (tc_quick() ? 5.0 : 1.5),
              "phase 3b: the seats came back only %.3f s after the victim's last acquire (lease %.1f s)",
              t_ok - r.t_after, lease);
    }
    license_seat more[8];
    more[0] = s;
    int n = t_ok > 0 ? 1 + take_all("hot", "alive-more", more + 1, 7) : 0;
    CHECK(n == limit, "phase 3b: after the lease the parent could take %d seats, limit %d", n, limit);
    release_all(more, n); /* at once: they have a lease too */
    check_used("hot", 0, "phase 3b end");
    int with_event = ev_wait_all(r.seats, r.n, LICENSE_RELEASE_EXPIRED, 2.0);
    CHECK(with_event == r.n, "phase 3b: %d of the dead process's %d handles got a RELEASED event with reason EXPIRED",
          with_event, r.n);
    for (int i = 0; i < r.n; i++)
        CHECK(ev_count(r.seats[i], LICENSE_RELEASE_OWNER_GONE) == 0,
              "phase 3b: handle %d was reclaimed as OWNER_GONE with reclaim_dead_owners = false", i);
    license_shutdown();
    CHECK_RC(license_set_event_callback(NULL, NULL), LICENSE_OK);
    CHECK(unlink(table) == 0, "phase 3b: cannot remove %s: %s", table, strerror(errno));
    fprintf(stderr,
            "test_multiprocess: phase 3b: lease %.1f s, reclaim_dead_owners = false: first seat back %.3f s after the "
            "victim's first acquire; %.2f s\n",
            lease, t_ok > 0 ? t_ok - r.t_before : -1.0, tc_now() - t0);
}

/* (c) Kamailio's model: the victim uses the engine inherited from the parent; the
 * parent, without a reaper thread, reclaims with license_reap. */
static void phase3c_inherited_reap(void) {
    double t0 = tc_now();
    const int limit = 3, theirs = 2;
    const char *table = table_path("p3c");
    const char *config = tc_write_configf("[licenses.seat]\nlimit = %d\n\n[reaper]\nenabled = false\n\n"
                                       "[backend]\nkind = \"shm\"\npath = \"%s\"\ncapacity = 64\n",
                                       limit, table);
    ev_reset();
    CHECK_RC(license_set_event_callback(ev_callback, &ev_marker), LICENSE_OK);
    if (!init_ok(config, "phase 3c parent"))
        return;
    license_seat mine = must_acquire("parent-own", "seat"); /* taken before the fork: the parent's */
    struct p3_arg va = {NULL, "seat", theirs};
    struct child victim = spawn("phase 3c victim (inherited engine)", p3_victim, &va);
    struct p3_report r;
    memset(&r, 0, sizeof r);
    if (!recv_from(&victim, &r, sizeof r) || r.n != theirs) {
        CHECK(0, "phase 3c: the victim took %d of %d seats", r.n, theirs);
        kill(victim.pid, SIGKILL);
        wait_child(&victim, SIGKILL);
        license_shutdown();
        return;
    }
    check_used("seat", (uint32_t)limit, "phase 3c, parent 1 + victim 2");
    double t_kill = tc_now();
    CHECK(kill(victim.pid, SIGKILL) == 0, "kill: %s", strerror(errno));
    wait_child(&victim, SIGKILL);
    double bound = tc_quick() ? 10.0 : 5.0;
    uint32_t total = 0;
    double now;
    do {
        uint32_t n = 0;
        CHECK_RC(license_reap(&n), LICENSE_OK);
        total += n;
        now = tc_now();
        if (total >= (uint32_t)theirs)
            break;
        sleep_s(0.010);
    } while (now - t_kill <= bound);
    CHECK(total == (uint32_t)theirs, "phase 3c: license_reap reclaimed %u handles within %.2f s, expected %d", total,
          now - t_kill, theirs);
    CHECK(now - t_kill <= (tc_quick() ? 5.0 : 1.5), "phase 3c: license_reap reclaimed them only %.2f s after kill -9",
          now - t_kill);
    check_used("seat", 1, "phase 3c, after the reap (the parent's own seat stays)");
    CHECK(ev_wait_all(r.seats, r.n, LICENSE_RELEASE_OWNER_GONE, 0.5) == r.n,
          "phase 3c: the victim's handles did not get RELEASED events with reason OWNER_GONE");
    CHECK(ev_count(mine, UINT32_MAX) == 0, "phase 3c: the parent's own handle got a RELEASED event");
    CHECK_RC(license_touch(mine), LICENSE_OK);
    uint32_t n = 99;
    sleep_s(0.3); /* past another owner check: still nothing of the parent's goes */
    CHECK_RC(license_reap(&n), LICENSE_OK);
    CHECK(n == 0, "phase 3c: a second reap reclaimed %u handles", n);
    CHECK_RC(license_release(mine), LICENSE_OK);
    check_used("seat", 0, "phase 3c end");
    license_shutdown();
    CHECK_RC(license_set_event_callback(NULL, NULL), LICENSE_OK);
    CHECK(unlink(table) == 0, "phase 3c: cannot remove %s: %s", table, strerror(errno));
    fprintf(stderr, "test_multiprocess: phase 3c: inherited engine, kill -9, license_reap: %u reclaimed after %.3f s; "
                    "%.2f s\n",
            total, now - t_kill, tc_now() - t0);
}

/* ==== Phase 4: bad input, clear errors ==== */

static const char *shm_config(const char *table, int capacity, const char *types) {
    return tc_write_configf("%s\n[backend]\nkind = \"shm\"\npath = \"%s\"\ncapacity = %d\n", types, table, capacity);
}

/* init must fail with `want`, naming every needle; the library stays uninitialized. */
static void expect_init_error(const char *config, int32_t want, const char *what, const char *n1, const char *n2,
                              const char *n3) {
    int32_t rc = license_init(config);
    const char *err = tc_last_error();
    CHECK(rc == want, "[pid %d] %s: license_init returned %s, expected %s; last error: \"%s\"", (int)getpid(), what,
          tc_code_name(rc), tc_code_name(want), err);
    const char *needles[3] = {n1, n2, n3};
    for (int i = 0; i < 3; i++)
        if (needles[i] != NULL)
            CHECK(rc != want || contains(err, needles[i]), "[pid %d] %s: the error does not say \"%s\": \"%s\"",
                  (int)getpid(), what, needles[i], err);
    if (rc == LICENSE_OK)
        license_shutdown();
    uint32_t used, limit;
    CHECK_RC(license_usage("desk", &used, &limit), LICENSE_ERR_NOT_INITIALIZED);
}

struct p4_arg {
    const char *config;
    const char *table;
};

static void p4_other_capacity(void *arg) {
    const struct p4_arg *a = arg;
    child_wait_cmd(); /* the parent has the table open */
    expect_init_error(a->config, LICENSE_ERR_BACKEND, "capacity 20 on a capacity 10 table, another process",
                      a->table, "capacity = 20", NULL);
}

/* Writes `len` bytes of `fill` (or `text` when not NULL) to a new file. */
static void write_file(const char *path, const char *text, size_t len, char fill) {
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0644);
    CHECK(fd >= 0, "open %s: %s", path, strerror(errno));
    if (fd < 0)
        return;
    char buf[8192];
    if (text != NULL) {
        len = strlen(text);
        memcpy(buf, text, len);
    } else {
        memset(buf, fill, len);
    }
    CHECK(write(fd, buf, len) == (ssize_t)len, "write %s: %s", path, strerror(errno));
    close(fd);
}

/* true if the file still holds exactly `len` bytes of `text` / `fill`. */
static bool file_is(const char *path, const char *text, size_t len, char fill) {
    char buf[8193];
    if (text != NULL)
        len = strlen(text);
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        return false;
    ssize_t n = read(fd, buf, sizeof buf);
    close(fd);
    if (n != (ssize_t)len)
        return false;
    for (size_t i = 0; i < len; i++)
        if (buf[i] != (text != NULL ? text[i] : fill))
            return false;
    return true;
}

static void phase4_bad_input(void) {
    double t0 = tc_now();
    const char *types = "[licenses.desk]\nlimit = 5\n";

    /* capacity mismatch: another process while the table is in use, then this one */
    const char *table = table_path("p4-capacity");
    const char *cap10 = shm_config(table, 10, types);
    const char *cap20 = shm_config(table, 20, types);
    struct p4_arg a = {cap20, table};
    struct child other = spawn("phase 4 other capacity", p4_other_capacity, &a);
    if (init_ok(cap10, "phase 4 parent")) {
        struct stat st;
        CHECK(stat(table, &st) == 0, "phase 4: stat %s: %s", table, strerror(errno));
        CHECK((st.st_mode & 07777) == 0600, "phase 4: the table %s has mode %04o, expected 0600", table,
              (unsigned)(st.st_mode & 07777));
        CHECK(S_ISREG(st.st_mode) && st.st_size > 0, "phase 4: the table is not a non-empty file");
        license_seat s = must_acquire("cap-holder", "desk");
        send_cmd(&other, 'g');
        wait_child(&other, 0);
        check_used("desk", 1, "phase 4, after another process was refused the table");
        CHECK_RC(license_release(s), LICENSE_OK);
        license_shutdown();
    } else {
        kill(other.pid, SIGKILL);
        wait_child(&other, SIGKILL);
    }
    expect_init_error(cap20, LICENSE_ERR_BACKEND, "capacity 20 on a capacity 10 table, same process after shutdown",
                      table, "capacity = 20", NULL);
    if (init_ok(cap10, "phase 4, capacity 10 again")) { /* the refused opens left it intact */
        check_used("desk", 0, "phase 4, table reopened");
        license_shutdown();
    }

    /* files that are not seatgate tables are refused and left alone */
    const char *hello = table_path("p4-hello");
    write_file(hello, "hello", 0, 0);
    expect_init_error(shm_config(hello, 10, types), LICENSE_ERR_BACKEND, "a file holding \"hello\"",
                      "not a seatgate table", hello, NULL);
    CHECK(file_is(hello, "hello", 0, 0), "phase 4: the library changed the file %s that held \"hello\"", hello);
    const char *garbage = table_path("p4-garbage");
    write_file(garbage, NULL, 8192, 'x');
    expect_init_error(shm_config(garbage, 10, types), LICENSE_ERR_BACKEND, "a file of 8 KiB of 'x'",
                      "not a seatgate table", garbage, NULL);
    CHECK(file_is(garbage, NULL, 8192, 'x'), "phase 4: the library changed the file %s of 8 KiB of 'x'", garbage);
    char missing[160];
    snprintf(missing, sizeof missing, "/dev/shm/seatgate-test-%d-no-such-dir/table", (int)main_pid);
    expect_init_error(shm_config(missing, 10, types), LICENSE_ERR_BACKEND, "a path in a missing directory", missing,
                      NULL, NULL);

    /* a full table: capacity 3, a session type of limit 10 */
    const char *small = table_path("p4-small");
    if (init_ok(shm_config(small, 3, "[licenses.sess]\nlimit = 10\ncount = \"session\"\n"), "phase 4, capacity 3")) {
        license_seat s[3];
        for (int i = 0; i < 3; i++) {
            char user[16];
            snprintf(user, sizeof user, "u%d", i + 1);
            s[i] = must_acquire(user, "sess");
        }
        license_seat x = 0;
        license_denial d;
        memset(&d, 0, sizeof d);
        d.size = sizeof d;
        license_request req = {sizeof(license_request), "u4", "sess", NULL, NULL, NULL};
        CHECK_RC(license_try_acquire_ex(&req, &x, &d), LICENSE_ERR_TABLE_FULL);
        const char *err = tc_last_error();
        CHECK(contains(err, small) && contains(err, " 3 ") && contains(err, "capacity"),
              "phase 4: the TABLE_FULL error does not name the table and its capacity: \"%s\"", err);
        CHECK(x == 0 && d.license_type[0] == '\0', "phase 4: a TABLE_FULL refusal wrote the seat or the denial");
        check_used("sess", 3, "phase 4, after TABLE_FULL");
        CHECK_RC(license_try_acquire("u1", "sess", &x), LICENSE_ERR_TABLE_FULL); /* a known user: no handle either */
        check_used("sess", 3, "phase 4, after a second TABLE_FULL");
        license_type_stats st = stats_of("sess");
        CHECK(st.acquired == 3, "phase 4: %llu seats counted as taken, expected 3", (unsigned long long)st.acquired);
        CHECK_RC(license_release(s[0]), LICENSE_OK);
        license_seat y = must_acquire("u4", "sess"); /* a free handle: fine again */
        check_used("sess", 3, "phase 4, after a release and a new acquire");
        CHECK_RC(license_release(y), LICENSE_OK);
        CHECK_RC(license_release(s[1]), LICENSE_OK);
        CHECK_RC(license_release(s[2]), LICENSE_OK);
        check_used("sess", 0, "phase 4 end");
        license_shutdown();
    }
    fprintf(stderr, "test_multiprocess: phase 4 (bad input) %.2f s\n", tc_now() - t0);
}

/* ==== Phase 5: license_shutdown in one process frees only its own handles ==== */

struct p5_arg {
    const char *config;
    const char *prefix;
};

struct p5_report {
    int32_t rc;
    uint32_t used;
};

static void p5_holder(void *arg) {
    const struct p5_arg *a = arg;
    struct p5_report rep = {LICENSE_ERR_INTERNAL, 0};
    if (!init_ok(a->config, child_name)) {
        child_send(&rep, sizeof rep);
        return;
    }
    license_seat s[2];
    for (int i = 0; i < 2; i++) {
        char user[32];
        snprintf(user, sizeof user, "%s-%d", a->prefix, i);
        s[i] = must_acquire(user, "desk");
    }
    rep.rc = LICENSE_OK;
    rep.used = tc_usage("desk");
    child_send(&rep, sizeof rep);
    for (;;) {
        char cmd = child_wait_cmd();
        if (cmd == 'u') { /* report the use this process sees */
            rep.used = tc_usage("desk");
            child_send(&rep, sizeof rep);
        } else if (cmd == 's') { /* shut down, both seats held */
            license_shutdown();
            uint32_t used, limit;
            CHECK_RC(license_usage("desk", &used, &limit), LICENSE_ERR_NOT_INITIALIZED);
            CHECK_RC(license_release(s[0]), LICENSE_ERR_NOT_INITIALIZED);
            child_send(&rep, sizeof rep);
            return;
        } else if (cmd == 'r') { /* release one, shut down with the other held */
            CHECK_RC(license_release(s[0]), LICENSE_OK);
            license_shutdown();
            child_send(&rep, sizeof rep);
            return;
        }
    }
}

/* Kamailio's model with the default reaper: the "main" process inits (a reaper thread
 * starts), forks a worker that takes a seat and calls license_shutdown. */
struct p5_main_arg {
    const char *config;
    const char *worker_stderr; /* file the worker's stderr goes to */
};

static void p5_worker(void *arg) {
    (void)arg;
    license_seat s = must_acquire("worker", "desk");
    (void)s;
    check_used("desk", 2, "phase 5, the worker holds a seat beside main's");
    license_shutdown(); /* gives back the worker's own seat; the reaper thread is main's */
    uint32_t used, limit;
    CHECK_RC(license_usage("desk", &used, &limit), LICENSE_ERR_NOT_INITIALIZED);
    /* The verdict goes through the shared region, and the worker ends by SIGKILL:
     * forked while main's reaper thread ran, it holds that thread's memory, which no
     * live thread of the worker can reach, so valgrind would report it as lost at a
     * normal exit whatever seatgate does. */
    child_flush_counts();
    atomic_store(&sh->worker_done, true);
    fflush(NULL);
    kill(getpid(), SIGKILL);
    _exit(3);
}

static void p5_main(void *arg) {
    const struct p5_main_arg *a = arg;
    if (!init_ok(a->config, child_name))
        return;
    license_seat own = must_acquire("main", "desk");
    /* This fork is not from a single-threaded state (seatgate's reaper runs): that is
     * the documented Kamailio model, license_init before fork. */
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        int fd = open(a->worker_stderr, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        if (fd >= 0) {
            dup2(fd, STDERR_FILENO);
            close(fd);
        }
        atomic_store(&tc_passed, 0);
        atomic_store(&tc_failed, 0);
        child_name = "phase 5 worker of main";
        p5_worker(NULL);
        child_exit();
    }
    CHECK(pid > 0, "[%s] fork: %s", child_name, strerror(errno));
    if (pid > 0) {
        /* the worker's checks reach the test's parent through the shared region */
        double deadline = tc_now() + child_timeout();
        int status = 0;
        pid_t r;
        while ((r = waitpid(pid, &status, WNOHANG)) == 0 && tc_now() < deadline)
            sleep_s(0.002);
        if (r != pid) {
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
        }
        CHECK(r == pid, "[%s] the worker's license_shutdown did not return within %.0f s", child_name,
              child_timeout());
        CHECK(r != pid || (WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL && atomic_load(&sh->worker_done)),
              "[%s] the worker did not get past license_shutdown: it ended with %s %d", child_name,
              WIFEXITED(status) ? "exit status" : "signal", WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
    }
    check_used("desk", 1, "phase 5, main after its worker's shutdown (main's seat only)");
    CHECK_RC(license_touch(own), LICENSE_OK);
    CHECK_RC(license_release(own), LICENSE_OK);
    license_shutdown();
}

static void phase5_shutdown_own(void) {
    double t0 = tc_now();
    const char *table = table_path("p5");
    /* no reaper threads: only this test's license_reap could reclaim a leftover of A */
    const char *config = shm_config(table, 64, "[licenses.desk]\nlimit = 6\n\n[reaper]\nenabled = false\n");
    struct p5_arg aa = {config, "A"}, ba = {config, "B"};
    struct child a = spawn("phase 5 holder A", p5_holder, &aa);
    struct child b = spawn("phase 5 holder B", p5_holder, &ba);
    struct p5_report ra, rb;
    bool ok = recv_from(&a, &ra, sizeof ra) & recv_from(&b, &rb, sizeof rb);
    ok = ok && ra.rc == LICENSE_OK && rb.rc == LICENSE_OK;
    ev_reset();
    CHECK_RC(license_set_event_callback(ev_callback, &ev_marker), LICENSE_OK);
    ok = init_ok(config, "phase 5 parent") && ok;
    if (!ok) {
        CHECK(0, "phase 5: a holder could not start");
        kill(a.pid, SIGKILL);
        kill(b.pid, SIGKILL);
        wait_child(&a, SIGKILL);
        wait_child(&b, SIGKILL);
        license_shutdown();
        return;
    }
    license_seat p = must_acquire("P", "desk");
    check_used("desk", 5, "phase 5, A 2 + B 2 + parent 1");

    send_cmd(&a, 's');
    recv_from(&a, &ra, sizeof ra);
    wait_child(&a, 0);
    check_used("desk", 3, "phase 5, after A's license_shutdown (B 2 + parent 1)");
    sleep_s(0.3); /* past the 250 ms owner check: A is gone, nothing of it is left */
    uint32_t n = 99;
    CHECK_RC(license_reap(&n), LICENSE_OK);
    CHECK(n == 0, "phase 5: a reap after A's clean exit reclaimed %u handles", n);
    pthread_mutex_lock(&ev_mutex);
    int released_here = ev_n;
    pthread_mutex_unlock(&ev_mutex);
    CHECK(released_here == 0, "phase 5: the parent saw %d RELEASED events for A's handles", released_here);
    check_used("desk", 3, "phase 5, after a forced reap");
    CHECK_RC(license_touch(p), LICENSE_OK);

    license_shutdown(); /* the parent's seat goes; B's stay */
    CHECK(ev_count(p, LICENSE_RELEASE_SHUTDOWN) == 1, "phase 5: the parent's shutdown gave no SHUTDOWN event for its "
                                                      "seat");
    CHECK_RC(license_set_event_callback(NULL, NULL), LICENSE_OK);
    send_cmd(&b, 'u');
    if (recv_from(&b, &rb, sizeof rb))
        CHECK(rb.used == 2, "phase 5: after the parent's shutdown B sees %u used, expected its own 2", rb.used);
    send_cmd(&b, 'r');
    recv_from(&b, &rb, sizeof rb);
    wait_child(&b, 0);
    if (init_ok(config, "phase 5 parent again")) {
        check_used("desk", 0, "phase 5, after B released one and shut down with the other");
        license_shutdown();
    }

    /* Kamailio's model with the reaper running in main */
    const char *table2 = table_path("p5-main");
    const char *worker_stderr = table_path("worker-stderr"); /* removed at exit like the tables */
    struct p5_main_arg ma = {shm_config(table2, 64, "[licenses.desk]\nlimit = 6\n"), worker_stderr};
    atomic_store(&sh->worker_done, false);
    struct child m = spawn("phase 5 main (init, then fork)", p5_main, &ma);
    wait_child(&m, 0);
    FILE *f = fopen(worker_stderr, "r");
    char text[4096] = "";
    if (f != NULL) {
        size_t len = fread(text, 1, sizeof text - 1, f);
        text[len] = '\0';
        fclose(f);
    }
    CHECK(f != NULL, "phase 5: the worker's stderr file is missing");
    char *backtrace = strstr(text, "stack backtrace:");
    if (backtrace != NULL)
        *backtrace = '\0'; /* the first lines say it */
    CHECK(strstr(text, "panicked") == NULL,
          "phase 5: license_shutdown in a worker forked after license_init panicked inside seatgate:\n%s", text);
    fprintf(stderr, "test_multiprocess: phase 5 (shutdown frees only its own) %.2f s\n", tc_now() - t0);
}

/* ---- phase 6: a tenant's handle names one tenant in every process ---- */

struct p6_report {
    int32_t rc;
    license_seat seat;
    uint32_t used;
};

/* A process that gives tenant "acme" its limit at run time (no other process has
 * heard of it) and logs alice in there. */
static void p6_child(void *arg) {
    struct p6_report r;
    memset(&r, 0, sizeof r); /* padding too: the whole struct goes down the pipe */
    r.rc = license_init(arg);
    if (r.rc == LICENSE_OK)
        r.rc = license_set_limit("acme", "desk", 2);
    if (r.rc == LICENSE_OK) {
        license_request req = {sizeof req, "alice", "desk", NULL, NULL, "acme"};
        r.rc = license_try_acquire_ex(&req, &r.seat, NULL);
    }
    child_send(&r, sizeof r);
    if (child_wait_cmd() == 'u') {
        uint32_t limit = 0;
        r.rc = license_usage_in("acme", "desk", &r.used, &limit);
        child_send(&r, sizeof r);
    }
    license_shutdown();
}

static void phase6_tenants(void) {
    double t0 = tc_now();
    const char *table = table_path("p6");
    const char *config =
        shm_config(table, 64, "[licenses.desk]\nlimit = 6\n\n[reaper]\nenabled = false\n\n[tenants.globex]\n");
    struct child c = spawn("phase 6 acme process", p6_child, (void *)config);
    struct p6_report r = {0, 0, 0};
    bool ok = recv_from(&c, &r, sizeof r) && r.rc == LICENSE_OK;
    CHECK(ok, "phase 6: the child could not log alice in to acme: %s", tc_code_name(r.rc));
    if (ok && init_ok(config, "phase 6 parent")) {
        /* globex is 1 for everyone (the config's only tenant), acme 2 (the registry's next) */
        CHECK(r.seat >> 48 == 2, "phase 6: acme's handle %llx does not carry tenant number 2",
              (unsigned long long)r.seat);
        CHECK_RC(license_release(r.seat), LICENSE_OK);
        /* released here, but not served here: acme's limit was given to the child only */
        uint32_t used = 99, limit = 0;
        CHECK_RC(license_usage_in("acme", "desk", &used, &limit), LICENSE_ERR_UNKNOWN_TENANT);
        license_request req = {sizeof req, "bob", "desk", NULL, NULL, "acme"};
        license_seat bob = 0;
        CHECK_RC(license_try_acquire_ex(&req, &bob, NULL), LICENSE_ERR_UNKNOWN_TENANT);
        send_cmd(&c, 'u');
        if (recv_from(&c, &r, sizeof r))
            CHECK(r.rc == LICENSE_OK && r.used == 0, "phase 6: the child sees acme %u used (%s) after the parent released it",
                  r.used, tc_code_name(r.rc));
        license_shutdown();
    } else {
        send_cmd(&c, 'q');
    }
    wait_child(&c, 0);
    const char *suffixes[] = {"@@tenants", "@acme", "@globex"};
    for (size_t i = 0; i < sizeof suffixes / sizeof suffixes[0]; i++) {
        char path[192];
        snprintf(path, sizeof path, "%s%s", table, suffixes[i]);
        unlink(path);
    }
    fprintf(stderr, "test_multiprocess: phase 6: a tenant added at run time in one process, released in another; %.2f s\n",
            tc_now() - t0);
}

int main(void) {
    double t0 = tc_now();
    main_pid = getpid();
    signal(SIGPIPE, SIG_IGN); /* a dead child's pipe is an error code, not a signal */
    CHECK(ATOMIC_INT_LOCK_FREE == 2 && ATOMIC_LONG_LOCK_FREE == 2 && ATOMIC_BOOL_LOCK_FREE == 2,
          "C11 atomics are not lock-free here: they cannot be shared between processes");
    sh = mmap(NULL, sizeof *sh, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (sh == MAP_FAILED) {
        fprintf(stderr, "mmap: %s\n", strerror(errno));
        return 2;
    }
    shared_reset();

    double t = tc_now();
    phase1_hammer();
    t = tc_now();
    phase2_kamailio();
    t = tc_now();
    phase3a_owner_gone();
    phase3b_lease_only();
    phase3c_inherited_reap();
    fprintf(stderr, "test_multiprocess: phase 3 (kill -9) %.2f s\n", tc_now() - t);
    phase4_bad_input();
    phase5_shutdown_own();
    phase6_tenants();

    munmap(sh, sizeof *sh);
    if (timing_notes > 0)
        fprintf(stderr, "test_multiprocess: %ld timing checks skipped on a slow machine\n", timing_notes);
    fprintf(stderr, "test_multiprocess: %s mode, %.2f s in all\n", tc_quick() ? "quick" : "full", tc_now() - t0);
    return tc_summary("test_multiprocess");
}
