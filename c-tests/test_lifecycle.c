/*
 * test_lifecycle: the seat lifecycle through the C API, against the real clock.
 *
 *  Phase 1, leases: a holder that keeps calling license_touch keeps its seat and keeps
 *    a second user out; once it stops, the seat is reclaimed never before the lease
 *    (measured on CLOCK_MONOTONIC from just before the last successful touch) and
 *    within lease + 5 s, after which the old handle is LICENSE_ERR_UNKNOWN_SEAT for
 *    touch and release. With no acquire traffic at all, the reaper thread reclaims an
 *    expired seat by itself, and the RELEASED (EXPIRED) event arrives on a thread other
 *    than main. license_touch_user renews every handle of a user (and counts them) and
 *    is LICENSE_ERR_UNKNOWN_USER for a user holding nothing.
 *  Phase 2, reload under load: threads acquire and release a pool and a 2-type bundle
 *    while the main thread reloads between configs with other limits. A shadow count
 *    per type never exceeds the largest limit ever configured, every refusal names a
 *    type of the request with a limit of some config and a consistent reason
 *    (FULL at used == limit, OVER_LIMIT above it), and seats taken before the reloads
 *    stay valid through all of them. Then, on its own: a limit lowered below use keeps
 *    every holder, refuses new acquires with LICENSE_DENIAL_OVER_LIMIT and shows
 *    "over limit"; a removed type still held shows "orphaned" and its holder releases.
 *  Phase 3, broken reloads (bad TOML, unknown key, negative limit, missing file): each
 *    is LICENSE_ERR_CONFIG naming the file (and "file:LINE:" when there is a line),
 *    leaves the JSON report identical but for "generated_at", and acquires behave as
 *    before; license_reload(NULL) still rereads the original file.
 *  Phase 4, re-entrant callbacks from 4 threads under a watchdog: ACQUIRED calls
 *    license_report (size query + call), license_usage, a nested acquire and its
 *    release; RELOADED calls license_usage; one DENIED calls license_reload(NULL). Every
 *    nested call succeeds, every event kind is seen, every event's fields are sane, and
 *    nothing arrives after the callback is removed.
 *  Phase 5, dependent licenses: REQUIREMENT_MISSING with its denial; releasing the
 *    user's last "connect" releases their "callcenter" handles (reason DEPENDENCY) and
 *    nobody else's; a second "connect" handle keeps it; license_release_user (ADMIN)
 *    releases all and counts them; only NORMAL/ADMIN are accepted from callers.
 *  Phase 6, linger and billing counters: a released count = "user" seat stays counted
 *    and reserved for its user (others refused, the user back at once without a new
 *    seat taken), is free for others after the window (never before it, within window
 *    + 5 s), and an admin release frees at once; license_stats' peak, acquired and
 *    denied match what the phase did, license_stats_reset restarts the peak at current
 *    use, and a too small out->size is LICENSE_ERR_INVALID_ARGUMENT.
 *  Phase 7, the event mask: a bit that names no event is LICENSE_ERR_INVALID_ARGUMENT;
 *    license_event_mask_parse reads names and refuses an unknown one, naming it; a
 *    mask set before init holds after it. With LICENSE_EVENTS_ALERTS, logins and
 *    logouts are not heard, but a limit set, a refusal, a dependency release and an
 *    admin release are (not the logout that caused the dependency release). With the
 *    threshold bits only, exactly the crossings are heard, with exact counts; with
 *    LICENSE_EVENTS_ALL a login and a logout are heard again; with 0, nothing.
 *
 * Timing: no check depends on the scheduler being prompt. A "still refused" check is
 * made only when the measured time proves the deadline had not passed; a deadline is
 * measured from just before the call that set it. SEATGATE_TEST_QUICK=1 (valgrind)
 * scales every lease and linger by 4 and cuts the iteration counts.
 */
#include "common.h"

#include <sched.h>
#include <stdbool.h>
#include <stddef.h>

/* ---- small helpers ---- */

/* In hot loops, as test_stress does: a failure is counted and printed, a pass is not,
 * so the pass count does not depend on how many iterations the scheduler allowed. */
#define CHECK_LOOP(cond, ...)                                                  \
    do {                                                                       \
        if (!(cond))                                                           \
            CHECK(cond, __VA_ARGS__);                                          \
    } while (0)
#define CHECK_RC_LOOP(expr, want)                                              \
    do {                                                                       \
        int32_t loop_rc_ = (expr);                                             \
        int32_t loop_want_ = (want);                                           \
        if (loop_rc_ != loop_want_)                                            \
            CHECK(loop_rc_ == loop_want_, "%s returned %s, expected %s; last error: \"%s\"", #expr, \
                  tc_code_name(loop_rc_), tc_code_name(loop_want_), tc_last_error()); \
    } while (0)

static pthread_t main_thread;
static long timing_notes; /* checks skipped because this machine was too slow (main thread only) */

static void sleep_s(double seconds) {
    struct timespec ts;
    ts.tv_sec = (time_t)seconds;
    ts.tv_nsec = (long)((seconds - (double)ts.tv_sec) * 1e9);
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/* Lease and linger lengths: a few hundred ms, four times that under valgrind. */
static double scaled(double seconds) { return tc_quick() ? seconds * 4 : seconds; }

static void timing_note(const char *what) {
    timing_notes++;
    fprintf(stderr, "test_lifecycle: note: %s (machine too slow for this check; skipped)\n", what);
}

static license_seat must_acquire(const char *user, const char *profiles) {
    license_seat seat = 0;
    int32_t rc = license_try_acquire(user, profiles, &seat);
    CHECK(rc == LICENSE_OK && seat != 0, "acquire(%s, %s) returned %s; last error: \"%s\"", user, profiles,
          tc_code_name(rc), tc_last_error());
    return rc == LICENSE_OK ? seat : 0;
}

static void check_used(const char *type, uint32_t want, const char *when) {
    uint32_t used = tc_usage(type);
    CHECK(used == want, "%s: '%s' used %u, expected %u", when, type, used, want);
}

static license_type_stats stats_of(const char *type) {
    license_type_stats st;
    memset(&st, 0, sizeof st);
    st.size = sizeof st;
    CHECK_RC(license_stats(type, &st), LICENSE_OK);
    return st;
}

static void init_or_die(const char *path, const char *phase) {
    int32_t rc = license_init(path);
    CHECK(rc == LICENSE_OK, "%s: license_init returned %s: %s", phase, tc_code_name(rc), tc_last_error());
    if (rc != LICENSE_OK) {
        tc_summary("test_lifecycle");
        exit(1);
    }
}

/* ---- watchdog: a phase that deadlocks aborts with a message instead of hanging ---- */

static pthread_mutex_t wd_mutex = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t wd_cond = PTHREAD_COND_INITIALIZER;
static bool wd_done;
static const char *wd_phase;
static int wd_seconds;
static pthread_t wd_thread;

static void *watchdog(void *unused) {
    (void)unused;
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += wd_seconds;
    pthread_mutex_lock(&wd_mutex);
    while (!wd_done) {
        if (pthread_cond_timedwait(&wd_cond, &wd_mutex, &deadline) == ETIMEDOUT && !wd_done) {
            fprintf(stderr, "test_lifecycle: %s did not finish within %d s: deadlock? aborting\n", wd_phase,
                    wd_seconds);
            fflush(stderr);
            abort();
        }
    }
    pthread_mutex_unlock(&wd_mutex);
    return NULL;
}

static void watchdog_arm(const char *phase, int seconds) {
    wd_done = false;
    wd_phase = phase;
    wd_seconds = seconds;
    tc_spawn(&wd_thread, watchdog, NULL);
}

static void watchdog_disarm(void) {
    pthread_mutex_lock(&wd_mutex);
    wd_done = true;
    pthread_cond_signal(&wd_cond);
    pthread_mutex_unlock(&wd_mutex);
    pthread_join(wd_thread, NULL);
}

/* ==== Phase 1: leases ==== */

/* RELEASED events with reason EXPIRED, and whether each came on the main thread. */
#define MAX_EXPIRED 64
static pthread_mutex_t p1_mutex = PTHREAD_MUTEX_INITIALIZER;
static struct {
    license_seat seat;
    bool on_main;
    char type[LICENSE_MAX_NAME_LEN + 1];
} p1_expired[MAX_EXPIRED];
static int p1_n_expired;
static int p1_marker;

static void p1_callback(void *user_data, const license_event *e) {
    if (user_data != &p1_marker || e->kind != LICENSE_EVENT_RELEASED || e->reason != LICENSE_RELEASE_EXPIRED)
        return;
    pthread_mutex_lock(&p1_mutex);
    if (p1_n_expired < MAX_EXPIRED) {
        p1_expired[p1_n_expired].seat = e->seat;
        p1_expired[p1_n_expired].on_main = pthread_equal(pthread_self(), main_thread) != 0;
        snprintf(p1_expired[p1_n_expired].type, sizeof p1_expired[0].type, "%s",
                 e->license_type ? e->license_type : "(null)");
        p1_n_expired++;
    }
    pthread_mutex_unlock(&p1_mutex);
}

/* Index of the expired event of `seat`, or -1. */
static int p1_find_expired(license_seat seat) {
    int found = -1;
    pthread_mutex_lock(&p1_mutex);
    for (int i = 0; i < p1_n_expired; i++)
        if (p1_expired[i].seat == seat)
            found = i;
    pthread_mutex_unlock(&p1_mutex);
    return found;
}

/* A touches every ttl/6 for a while and B stays out; then A stops, and B gets in only
 * after the lease, within lease + 5 s. */
static void phase1_touch_then_expire(double ttl) {
    double t_touch = tc_now(); /* always taken just before the call that set the deadline */
    license_seat a = must_acquire("alice", "desk");
    bool skipped = false;
    for (int i = 0; i < 6 && !skipped; i++) {
        sleep_s(ttl / 6);
        double before = tc_now();
        int32_t rc = license_touch(a);
        double after = tc_now();
        if (after - t_touch < ttl) {
            CHECK(rc == LICENSE_OK, "touch %d of a live lease returned %s", i, tc_code_name(rc));
        } else if (rc != LICENSE_OK) {
            timing_note("phase 1: more than a lease passed between two touches");
            skipped = true;
            break;
        }
        t_touch = before;

        license_seat b = 0;
        license_denial d;
        rc = tc_acquire_ex("bob", "desk", &b, &d);
        after = tc_now();
        if (after - t_touch < ttl) {
            CHECK(rc == LICENSE_ERR_LIMIT_REACHED, "bob got a seat %.3f s after alice's touch (lease %.3f s): %s",
                  after - t_touch, ttl, tc_code_name(rc));
            if (rc == LICENSE_ERR_LIMIT_REACHED)
                CHECK(strcmp(d.license_type, "desk") == 0 && d.reason == LICENSE_DENIAL_FULL && d.used == 1 &&
                          d.limit == 1,
                      "denial: %s %u/%u reason %u", d.license_type, d.used, d.limit, d.reason);
        }
        if (rc == LICENSE_OK) {
            if (after - t_touch >= ttl)
                timing_note("phase 1: a lease ran out between a touch and the next acquire");
            CHECK_RC(license_release(b), LICENSE_OK);
            skipped = true;
        }
    }
    if (!skipped) {
        /* A stops touching; B polls. */
        double bound = ttl + 5.0;
        license_seat b = 0;
        int32_t rc;
        double now;
        long polls = 0;
        do {
            rc = license_try_acquire("bob", "desk", &b);
            now = tc_now();
            polls++;
            if (rc == LICENSE_OK)
                break;
            CHECK_LOOP(rc == LICENSE_ERR_LIMIT_REACHED, "bob's poll returned %s", tc_code_name(rc));
            sleep_s(0.010);
        } while (now - t_touch <= bound);
        double elapsed = now - t_touch;
        CHECK(rc == LICENSE_OK, "bob never got the expired seat (%.3f s after the last touch, %ld polls)", elapsed,
              polls);
        CHECK(elapsed >= ttl, "the seat was reclaimed %.3f s after the last touch, before its lease of %.3f s",
              elapsed, ttl);
        CHECK(elapsed <= bound, "the seat was reclaimed only %.3f s after the last touch (lease %.3f s)", elapsed,
              ttl);
        if (rc == LICENSE_OK)
            CHECK_RC(license_release(b), LICENSE_OK);
    }
    CHECK_RC(license_touch(a), LICENSE_ERR_UNKNOWN_SEAT);
    CHECK_RC(license_release(a), LICENSE_ERR_UNKNOWN_SEAT);
    check_used("desk", 0, "phase 1 after the expired lease");
}

/* With no acquire traffic, the reaper thread reclaims an expired seat by itself. */
static void phase1_reaper(double ttl) {
    license_seat a = must_acquire("carol", "desk");
    double t_touch = tc_now();
    CHECK_RC(license_touch(a), LICENSE_OK);
    double bound = ttl + 5.0, now;
    uint32_t used;
    do {
        used = tc_usage("desk");
        now = tc_now();
        if (used == 0)
            break;
        sleep_s(0.005);
    } while (now - t_touch <= bound);
    CHECK(used == 0, "the reaper did not reclaim the expired seat within %.3f s", now - t_touch);
    CHECK(now - t_touch >= ttl, "the reaper reclaimed the seat %.3f s after the touch, before the lease of %.3f s",
          now - t_touch, ttl);
    /* The event is delivered after the table changed: give it time to arrive. */
    int idx = -1;
    double t0 = tc_now();
    while ((idx = p1_find_expired(a)) < 0 && tc_now() - t0 < 5.0)
        sleep_s(0.005);
    CHECK(idx >= 0, "no RELEASED event with reason EXPIRED for seat %llu", (unsigned long long)a);
    if (idx >= 0) {
        pthread_mutex_lock(&p1_mutex);
        bool on_main = p1_expired[idx].on_main;
        char type[sizeof p1_expired[0].type];
        memcpy(type, p1_expired[idx].type, sizeof type);
        pthread_mutex_unlock(&p1_mutex);
        CHECK(!on_main, "the reaper's EXPIRED event arrived on the main thread");
        CHECK(strcmp(type, "desk") == 0, "the EXPIRED event names '%s', not 'desk'", type);
    }
    CHECK_RC(license_touch(a), LICENSE_ERR_UNKNOWN_SEAT);
    CHECK_RC(license_release(a), LICENSE_ERR_UNKNOWN_SEAT);
}

/* license_touch_user renews every handle of the user. */
static void phase1_touch_user(double ttl) {
    double t_touch = tc_now(), start = t_touch; /* before the calls that set the deadlines */
    license_seat h[3] = {must_acquire("dave", "phone"), must_acquire("dave", "phone"), must_acquire("dave", "desk")};
    bool in_time = true;
    /* Renew only through license_touch_user for 1.5 leases: every handle survives. */
    do {
        double before = tc_now();
        uint32_t renewed = 0;
        int32_t rc = license_touch_user("dave", &renewed);
        if (tc_now() - t_touch >= ttl) { /* a lease may have run out in between */
            in_time = false;
            break;
        }
        CHECK(rc == LICENSE_OK && renewed == 3, "license_touch_user returned %s, renewed %u (expected 3)",
              tc_code_name(rc), renewed);
        t_touch = before;
        sleep_s(ttl / 6);
    } while (tc_now() - start < 1.5 * ttl);
    for (int i = 0; i < 3 && in_time; i++) {
        int32_t rc = license_touch(h[i]);
        if (tc_now() - t_touch >= ttl)
            in_time = false;
        else
            CHECK(rc == LICENSE_OK, "handle %d of dave: license_touch returned %s", i, tc_code_name(rc));
    }
    if (in_time) {
        check_used("phone", 1, "dave's two phone handles (count = user)");
        uint32_t n = 0;
        CHECK_RC(license_release_user("dave", LICENSE_RELEASE_NORMAL, &n), LICENSE_OK);
        CHECK(n == 3, "license_release_user released %u handles, expected 3", n);
    } else {
        timing_note("phase 1: license_touch_user was not called within a lease");
        license_release_user("dave", LICENSE_RELEASE_NORMAL, NULL);
    }
    uint32_t renewed = 0;
    CHECK_RC(license_touch_user("dave", &renewed), LICENSE_ERR_UNKNOWN_USER);
    CHECK_RC(license_touch_user("nobody", &renewed), LICENSE_ERR_UNKNOWN_USER);
    CHECK_RC(license_touch_user("nobody", NULL), LICENSE_ERR_UNKNOWN_USER);
    check_used("phone", 0, "phase 1 end");
    check_used("desk", 0, "phase 1 end");
}

static void phase1_leases(void) {
    double ttl = scaled(0.300);
    const char *path = tc_write_configf("[licenses.desk]\n"
                                     "limit = 1\n"
                                     "lease = \"%dms\"\n"
                                     "\n"
                                     "[licenses.phone]\n"
                                     "limit = 5\n"
                                     "lease = \"%dms\"\n"
                                     "\n"
                                     "[reaper]\n"
                                     "enabled = true\n"
                                     "interval = \"50ms\"\n",
                                     (int)(ttl * 1000), (int)(ttl * 1000));
    CHECK_RC(license_set_event_callback(p1_callback, &p1_marker), LICENSE_OK);
    init_or_die(path, "phase 1");
    phase1_touch_then_expire(ttl);
    phase1_reaper(ttl);
    phase1_touch_user(ttl);
    license_shutdown();
    CHECK_RC(license_set_event_callback(NULL, NULL), LICENSE_OK);
}

/* ==== Phase 2: reload under load ==== */

enum { P2_POOL, P2_AGENT, P2_CRM, P2_TYPES };
static const char *const P2_NAMES[P2_TYPES] = {"pool", "agent", "crm"};
#define P2_CONFIGS 4
/* Limits per config, in reload order: 3 -> 5 -> 2 -> 4 for the pool. */
static const uint32_t P2_LIMITS[P2_CONFIGS][P2_TYPES] = {{3, 4, 3}, {5, 6, 4}, {2, 3, 2}, {4, 5, 3}};
#define P2_BIT(t) (1u << (t))

static atomic_int p2_shadow[P2_TYPES];
static atomic_int p2_shadow_max[P2_TYPES];
static atomic_bool p2_stop;
static atomic_bool p2_go;
static atomic_int p2_ready;
static atomic_long p2_ops, p2_refusals, p2_over_limit_refusals;

struct p2_thread {
    int id;
    const char *long_profile; /* NULL: this thread holds no long-lived seat */
    unsigned long_mask;
    license_seat long_seat;
};

static uint32_t p2_max_limit(int t) {
    uint32_t m = 0;
    for (int c = 0; c < P2_CONFIGS; c++)
        if (P2_LIMITS[c][t] > m)
            m = P2_LIMITS[c][t];
    return m;
}

static bool p2_is_some_limit(int t, uint32_t limit) {
    for (int c = 0; c < P2_CONFIGS; c++)
        if (P2_LIMITS[c][t] == limit)
            return true;
    return false;
}

static void p2_shadow_up(unsigned mask) {
    for (int t = 0; t < P2_TYPES; t++) {
        if (!(mask & P2_BIT(t)))
            continue;
        int v = atomic_fetch_add(&p2_shadow[t], 1) + 1;
        if ((uint32_t)v > p2_max_limit(t))
            CHECK((uint32_t)v <= p2_max_limit(t), "shadow count of '%s' reached %d; no config allows more than %u",
                  P2_NAMES[t], v, p2_max_limit(t));
        int m = atomic_load(&p2_shadow_max[t]);
        while (v > m && !atomic_compare_exchange_weak(&p2_shadow_max[t], &m, v)) {
        }
    }
}

static void p2_shadow_down(unsigned mask) {
    for (int t = 0; t < P2_TYPES; t++)
        if (mask & P2_BIT(t))
            atomic_fetch_sub(&p2_shadow[t], 1);
}

static void *p2_worker(void *arg) {
    struct p2_thread *me = arg;
    char user[64];
    if (me->long_profile != NULL) {
        snprintf(user, sizeof user, "long-%d", me->id);
        me->long_seat = must_acquire(user, me->long_profile);
        if (me->long_seat != 0)
            p2_shadow_up(me->long_mask);
    }
    /* No stress before every long-lived seat is in: they must fit the first config. */
    atomic_fetch_add(&p2_ready, 1);
    while (!atomic_load(&p2_go))
        sched_yield();

    uint64_t rng = 0x9E3779B97F4A7C15ull * (uint64_t)(me->id + 1);
    long i = 0;
    while (!atomic_load(&p2_stop)) {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        bool bundle = (rng >> 20) & 1;
        const char *profiles = bundle ? "op" : "pool";
        unsigned mask = bundle ? (P2_BIT(P2_AGENT) | P2_BIT(P2_CRM)) : P2_BIT(P2_POOL);
        snprintf(user, sizeof user, "w%d-%ld", me->id, i++);
        license_seat seat = 0;
        license_denial d;
        int32_t rc = tc_acquire_ex(user, profiles, &seat, &d);
        if (rc == LICENSE_OK) {
            p2_shadow_up(mask);
            if (i % 4 == 0)
                CHECK_RC_LOOP(license_touch(seat), LICENSE_OK);
            p2_shadow_down(mask);
            CHECK_RC_LOOP(license_release(seat), LICENSE_OK);
        } else if (rc == LICENSE_ERR_LIMIT_REACHED) {
            atomic_fetch_add(&p2_refusals, 1);
            int t = -1;
            for (int k = 0; k < P2_TYPES; k++)
                if (strcmp(d.license_type, P2_NAMES[k]) == 0)
                    t = k;
            CHECK_LOOP(t >= 0 && (mask & P2_BIT(t)), "'%s' refused a request for '%s'", d.license_type, profiles);
            if (t >= 0) {
                CHECK_LOOP(p2_is_some_limit(t, d.limit), "denial of '%s' gives limit %u, which no config has",
                           d.license_type, d.limit);
                CHECK_LOOP(d.used <= p2_max_limit(t), "denial of '%s' gives used %u, above every limit",
                           d.license_type, d.used);
            }
            if (d.reason == LICENSE_DENIAL_OVER_LIMIT)
                atomic_fetch_add(&p2_over_limit_refusals, 1);
            CHECK_LOOP((d.reason == LICENSE_DENIAL_FULL && d.used == d.limit) ||
                           (d.reason == LICENSE_DENIAL_OVER_LIMIT && d.used > d.limit),
                       "denial of '%s': reason %u with %u/%u", d.license_type, d.reason, d.used, d.limit);
        } else {
            CHECK_LOOP(rc == LICENSE_OK || rc == LICENSE_ERR_LIMIT_REACHED, "acquire(%s, %s) returned %s: %s",
                       user, profiles, tc_code_name(rc), tc_last_error());
        }
        atomic_fetch_add(&p2_ops, 1);
        if (tc_quick())
            sched_yield();
    }
    /* After the last reload: the seat taken before the first one is still held. */
    if (me->long_seat != 0) {
        CHECK_RC(license_touch(me->long_seat), LICENSE_OK);
        p2_shadow_down(me->long_mask);
        CHECK_RC(license_release(me->long_seat), LICENSE_OK);
    }
    return NULL;
}

static const char *p2_config(int c) {
    return tc_write_configf("[licenses.pool]\nlimit = %u\n\n"
                         "[licenses.agent]\nlimit = %u\n\n"
                         "[licenses.crm]\nlimit = %u\n\n"
                         "[profiles.op]\nconsumes = [\"agent\", \"crm\"]\n",
                         P2_LIMITS[c][P2_POOL], P2_LIMITS[c][P2_AGENT], P2_LIMITS[c][P2_CRM]);
}

static void phase2_reload_under_load(void) {
    const char *paths[P2_CONFIGS];
    for (int c = 0; c < P2_CONFIGS; c++)
        paths[c] = p2_config(c);
    init_or_die(paths[0], "phase 2");

    int n = tc_quick() ? 2 : 8;
    int n_long = n < 4 ? n : 4; /* long-lived: pool, op, pool, op: fits config 0 */
    struct p2_thread threads[8];
    pthread_t tids[8];
    for (int t = 0; t < P2_TYPES; t++) {
        atomic_store(&p2_shadow[t], 0);
        atomic_store(&p2_shadow_max[t], 0);
    }
    atomic_store(&p2_stop, false);
    atomic_store(&p2_go, false);
    atomic_store(&p2_ready, 0);
    for (int i = 0; i < n; i++) {
        threads[i].id = i;
        threads[i].long_seat = 0;
        threads[i].long_profile = i < n_long ? (i % 2 == 0 ? "pool" : "op") : NULL;
        threads[i].long_mask =
            i < n_long ? (i % 2 == 0 ? P2_BIT(P2_POOL) : (P2_BIT(P2_AGENT) | P2_BIT(P2_CRM))) : 0u;
        tc_spawn(&tids[i], p2_worker, &threads[i]);
    }
    while (atomic_load(&p2_ready) < n)
        sleep_s(0.001);
    atomic_store(&p2_go, true);

    int reloads = tc_quick() ? 8 : 40;
    for (int r = 1; r <= reloads; r++) {
        int c = r % P2_CONFIGS;
        sleep_s(tc_quick() ? 0.030 : 0.005);
        CHECK_RC(license_reload(paths[c]), LICENSE_OK);
        uint32_t used = 0, limit = 0;
        CHECK_RC(license_usage("pool", &used, &limit), LICENSE_OK);
        CHECK(limit == P2_LIMITS[c][P2_POOL], "after reload %d the pool's limit is %u, expected %u", r, limit,
              P2_LIMITS[c][P2_POOL]);
        for (int i = 0; i < n; i++)
            if (threads[i].long_seat != 0)
                CHECK_RC(license_touch(threads[i].long_seat), LICENSE_OK);
    }
    sleep_s(tc_quick() ? 0.030 : 0.005);
    atomic_store(&p2_stop, true);
    for (int i = 0; i < n; i++)
        pthread_join(tids[i], NULL);

    for (int i = 0; i < n; i++)
        if (threads[i].long_profile != NULL)
            CHECK(threads[i].long_seat != 0, "thread %d got no long-lived seat", i);
    for (int t = 0; t < P2_TYPES; t++) {
        int m = atomic_load(&p2_shadow_max[t]);
        CHECK(m >= 1 && (uint32_t)m <= p2_max_limit(t), "'%s': shadow max %d, largest limit %u", P2_NAMES[t], m,
              p2_max_limit(t));
        CHECK(atomic_load(&p2_shadow[t]) == 0, "'%s': shadow count %d at the end", P2_NAMES[t],
              atomic_load(&p2_shadow[t]));
        check_used(P2_NAMES[t], 0, "phase 2 after the reload storm");
    }
    long ops = atomic_load(&p2_ops);
    CHECK(ops >= n, "only %ld acquires ran during %d reloads", ops, reloads);
    fprintf(stderr, "test_lifecycle: phase 2: %ld acquires (%ld refused, %ld of them over limit) across %d reloads\n",
            ops, atomic_load(&p2_refusals), atomic_load(&p2_over_limit_refusals), reloads);
    license_shutdown();
}

/* A lowered limit keeps its holders and refuses newcomers; a removed type stays
 * releasable. */
static void phase2_over_limit_and_orphan(void) {
    const char *before = tc_write_config("[licenses.seat]\nlimit = 3\n\n[licenses.gone]\nlimit = 2\n");
    const char *after = tc_write_config("[licenses.seat]\nlimit = 1\n");
    init_or_die(before, "phase 2b");
    license_seat s[3] = {must_acquire("u1", "seat"), must_acquire("u2", "seat"), must_acquire("u3", "seat")};
    license_seat g = must_acquire("u4", "gone");
    CHECK_RC(license_reload(after), LICENSE_OK);

    uint32_t used = 0, limit = 0;
    CHECK_RC(license_usage("seat", &used, &limit), LICENSE_OK);
    CHECK(used == 3 && limit == 1, "after lowering the limit: 'seat' %u/%u, expected 3/1", used, limit);
    license_seat x = 0;
    license_denial d;
    CHECK_RC(tc_acquire_ex("u5", "seat", &x, &d), LICENSE_ERR_LIMIT_REACHED);
    CHECK(strcmp(d.license_type, "seat") == 0 && d.reason == LICENSE_DENIAL_OVER_LIMIT && d.used == 3 &&
              d.limit == 1,
          "denial: '%s' %u/%u reason %u, expected 'seat' 3/1 OVER_LIMIT", d.license_type, d.used, d.limit, d.reason);
    for (int i = 0; i < 3; i++)
        CHECK_RC(license_touch(s[i]), LICENSE_OK);
    CHECK_RC(license_touch(g), LICENSE_OK);
    CHECK_RC(license_usage("gone", &used, &limit), LICENSE_ERR_UNKNOWN_LICENSE_TYPE);
    CHECK_RC(license_try_acquire("u6", "gone", &x), LICENSE_ERR_UNKNOWN_PROFILE);

    int32_t rc;
    char *text = tc_report(LICENSE_REPORT_TEXT, &rc);
    CHECK(text != NULL, "text report: %s", tc_code_name(rc));
    if (text != NULL) {
        CHECK(strstr(text, "over limit") != NULL, "the report does not say \"over limit\":\n%s", text);
        CHECK(strstr(text, "orphaned") != NULL, "the report does not say \"orphaned\":\n%s", text);
    }
    free(text);

    CHECK_RC(license_release(g), LICENSE_OK);
    text = tc_report(LICENSE_REPORT_TEXT, &rc);
    CHECK(text != NULL && strstr(text, "orphaned") == NULL, "the report still says \"orphaned\" after its last "
                                                            "seat went:\n%s", text ? text : "(none)");
    free(text);

    /* Over limit until use falls under the limit: 2/1 still over, 1/1 full, 0/1 free. */
    CHECK_RC(license_release(s[0]), LICENSE_OK);
    CHECK_RC(tc_acquire_ex("u5", "seat", &x, &d), LICENSE_ERR_LIMIT_REACHED);
    CHECK(d.reason == LICENSE_DENIAL_OVER_LIMIT && d.used == 2, "at 2/1: reason %u, used %u", d.reason, d.used);
    CHECK_RC(license_release(s[1]), LICENSE_OK);
    CHECK_RC(tc_acquire_ex("u5", "seat", &x, &d), LICENSE_ERR_LIMIT_REACHED);
    CHECK(d.reason == LICENSE_DENIAL_FULL && d.used == 1, "at 1/1: reason %u, used %u", d.reason, d.used);
    CHECK_RC(license_release(s[2]), LICENSE_OK);
    x = must_acquire("u5", "seat");
    CHECK_RC(license_release(x), LICENSE_OK);
    check_used("seat", 0, "phase 2b end");
    license_shutdown();
}

/* ==== Phase 3: broken reloads change nothing ==== */

/* The JSON report without its "generated_at" line (malloc'd). */
static char *json_without_generated_at(void) {
    int32_t rc;
    char *json = tc_report(LICENSE_REPORT_JSON, &rc);
    CHECK(json != NULL, "JSON report: %s", tc_code_name(rc));
    if (json == NULL)
        return NULL;
    char *out = malloc(strlen(json) + 1);
    if (out == NULL) {
        free(json);
        return NULL;
    }
    char *o = out;
    int dropped = 0;
    for (const char *p = json; *p != '\0';) {
        const char *eol = strchr(p, '\n');
        size_t len = eol ? (size_t)(eol - p) + 1 : strlen(p);
        if (strstr(p, "\"generated_at\"") != NULL && strstr(p, "\"generated_at\"") < p + len) {
            dropped++;
        } else {
            memcpy(o, p, len);
            o += len;
        }
        p += len;
    }
    *o = '\0';
    CHECK(dropped == 1, "the JSON report has %d \"generated_at\" lines", dropped);
    free(json);
    return out;
}

/* The refusals and grants that phase 3 expects, the same before and after. */
static void phase3_behaviour(const char *when) {
    license_seat x = 0;
    license_denial d;
    int32_t rc = tc_acquire_ex("zed", "small", &x, &d);
    CHECK(rc == LICENSE_ERR_LIMIT_REACHED, "%s: a third 'small' login returned %s", when, tc_code_name(rc));
    CHECK(strcmp(d.license_type, "small") == 0 && d.used == 2 && d.limit == 2 && d.reason == LICENSE_DENIAL_FULL,
          "%s: denial '%s' %u/%u reason %u", when, d.license_type, d.used, d.limit, d.reason);
    x = must_acquire("zed", "big");
    CHECK_RC(license_release(x), LICENSE_OK);
    uint32_t used, limit;
    CHECK_RC(license_usage("small", &used, &limit), LICENSE_OK);
    CHECK(used == 2 && limit == 2, "%s: 'small' %u/%u", when, used, limit);
    CHECK_RC(license_usage("big", &used, &limit), LICENSE_OK);
    CHECK(used == 1 && limit == 5, "%s: 'big' %u/%u", when, used, limit);
    CHECK_RC(license_usage("extra", &used, &limit), LICENSE_ERR_UNKNOWN_LICENSE_TYPE);
}

struct broken {
    const char *name;
    const char *text;   /* NULL: a path that does not exist */
    const char *marker; /* the text on the line the error must name */
};

static void phase3_broken_reload(void) {
    static const char GOOD[] = "[licenses.small]\nlimit = 2\n\n[licenses.big]\nlimit = 5\n\n"
                               "[profiles.both]\nconsumes = [\"small\", \"big\"]\n";
    /* Each broken file would also change limits and add a type if it were applied. */
    static const struct broken cases[] = {
        {"bad TOML",
         "[licenses.small]\nlimit = 10\n\n[licenses.big]\nlimit = 5\n\n[licenses.extra]\nlimit = = 3\n",
         "limit = = 3"},
        {"unknown key",
         "[licenses.small]\nlimit = 10\n\n[licenses.big]\nlimit = 50\ncolour = \"blue\"\n\n"
         "[licenses.extra]\nlimit = 1\n",
         "colour = "},
        {"negative limit", "[licenses.small]\nlimit = 10\n\n[licenses.big]\ndescription = \"x\"\nlimit = -4\n",
         "limit = -4"},
        {"unreadable path", NULL, NULL},
    };
    const char *good = tc_write_config(GOOD);
    init_or_die(good, "phase 3");
    license_seat held[3] = {must_acquire("p", "small"), must_acquire("q", "small"), must_acquire("r", "big")};
    phase3_behaviour("before the broken reloads");

    char *json_before = json_without_generated_at();
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const struct broken *c = &cases[i];
        char missing[128];
        const char *path;
        if (c->text != NULL) {
            path = tc_write_config(c->text);
        } else {
            snprintf(missing, sizeof missing, "/tmp/seatgate-test-missing-%ld.toml", (long)getpid());
            unlink(missing);
            path = missing;
        }
        int32_t rc = license_reload(path);
        CHECK(rc == LICENSE_ERR_CONFIG, "%s: license_reload returned %s", c->name, tc_code_name(rc));
        char err[1024];
        tc_last_error_into(err, sizeof err);
        if (c->text != NULL) {
            char prefix[256];
            snprintf(prefix, sizeof prefix, "%s:%d:", path, tc_line_of(c->text, c->marker));
            CHECK(tc_starts_with(err, prefix), "%s: last error \"%s\" does not start with \"%s\"", c->name, err,
                  prefix);
        } else {
            /* No line to name: the header promises `file: cannot read config file: ...`. */
            char prefix[256];
            snprintf(prefix, sizeof prefix, "%s: ", path);
            CHECK(tc_starts_with(err, prefix) && strstr(err, "cannot read") != NULL,
                  "%s: last error \"%s\" does not start with \"%s\" and say \"cannot read\"", c->name, err, prefix);
        }
        char *json_after = json_without_generated_at();
        CHECK(json_before != NULL && json_after != NULL && strcmp(json_before, json_after) == 0,
              "%s: the JSON report changed:\n--- before\n%s\n--- after\n%s", c->name,
              json_before ? json_before : "(none)", json_after ? json_after : "(none)");
        free(json_after);
    }
    free(json_before);
    phase3_behaviour("after the broken reloads");

    /* The failed paths did not become the config file: NULL rereads the good one. */
    CHECK_RC(license_reload(NULL), LICENSE_OK);
    phase3_behaviour("after license_reload(NULL)");
    for (int i = 0; i < 3; i++)
        CHECK_RC(license_release(held[i]), LICENSE_OK);
    license_shutdown();
}

/* ==== Phase 4: re-entrant callbacks ==== */

enum { EV_KINDS = 7 };
static atomic_long p4_events[EV_KINDS];
static atomic_long p4_bad_events;
static atomic_long p4_special_acquired, p4_nested_ok, p4_nested_failed;
static atomic_long p4_reloaded_usage_ok, p4_reloaded_usage_failed;
static atomic_int p4_denied_reload_started;
static atomic_int p4_denied_reload_rc;
static pthread_mutex_t p4_mutex = PTHREAD_MUTEX_INITIALIZER;
static char p4_first_problem[512];
static int p4_marker;

static void p4_problem(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void p4_problem(const char *fmt, ...) {
    pthread_mutex_lock(&p4_mutex);
    if (p4_first_problem[0] == '\0') {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(p4_first_problem, sizeof p4_first_problem, fmt, ap);
        va_end(ap);
    }
    pthread_mutex_unlock(&p4_mutex);
}

/* Every field as the header documents it. */
static void p4_check_fields(const license_event *e) {
    const char *bad = NULL;
    bool has_type = e->kind != LICENSE_EVENT_RELOADED;
    bool has_user = e->kind == LICENSE_EVENT_ACQUIRED || e->kind == LICENSE_EVENT_RELEASED ||
                    e->kind == LICENSE_EVENT_DENIED;
    bool has_seat = e->kind == LICENSE_EVENT_ACQUIRED || e->kind == LICENSE_EVENT_RELEASED;
    bool threshold = e->kind == LICENSE_EVENT_THRESHOLD_UP || e->kind == LICENSE_EVENT_THRESHOLD_DOWN;
    int64_t now_ms = (int64_t)time(NULL) * 1000;
    if (e->size < offsetof(license_event, detail) + sizeof(char *))
        bad = "size too small";
    else if (e->kind < LICENSE_EVENT_ACQUIRED || e->kind > LICENSE_EVENT_RELOADED)
        bad = "unknown kind";
    else if (e->detail == NULL || e->detail[0] == '\0')
        bad = "detail NULL or empty";
    else if (has_type != (e->license_type != NULL))
        bad = "license_type NULL-ness";
    else if (has_user != (e->user != NULL))
        bad = "user NULL-ness";
    else if (has_seat != (e->seat != 0))
        bad = "seat zero-ness";
    else if (e->time_unix_ms < now_ms - 60000 || e->time_unix_ms > now_ms + 60000)
        bad = "time_unix_ms more than a minute off";
    else if (threshold != (e->threshold_percent != 0) || (threshold && e->threshold_percent != 50))
        bad = "threshold_percent";
    else if (e->kind == LICENSE_EVENT_RELEASED && e->reason != LICENSE_RELEASE_NORMAL)
        bad = "RELEASED reason is not NORMAL";
    else if (e->kind == LICENSE_EVENT_DENIED && e->reason != LICENSE_DENIAL_FULL)
        bad = "DENIED reason is not FULL";
    else if (e->kind != LICENSE_EVENT_RELEASED && e->kind != LICENSE_EVENT_DENIED && e->reason != 0)
        bad = "reason not 0";
    else if (has_type && e->kind != LICENSE_EVENT_DENIED && e->used > e->limit)
        bad = "used above limit";
    if (bad != NULL) {
        atomic_fetch_add(&p4_bad_events, 1);
        p4_problem("event kind %u (%s): %s; type %s user %s seat %llu used %u limit %u pct %u reason %u time %lld",
                   e->kind, e->detail ? e->detail : "(null)", bad, e->license_type ? e->license_type : "(null)",
                   e->user ? e->user : "(null)", (unsigned long long)e->seat, e->used, e->limit,
                   e->threshold_percent, e->reason, (long long)e->time_unix_ms);
    }
}

/* The report from inside a callback: a size query, then the call (retrying if the report
 * grew meanwhile). */
static int32_t p4_report_in_callback(void) {
    for (int attempt = 0; attempt < 8; attempt++) {
        size_t needed = 0;
        int32_t rc = license_report(LICENSE_REPORT_TEXT, NULL, 0, &needed);
        if (rc != LICENSE_OK || needed == 0)
            return rc != LICENSE_OK ? rc : LICENSE_ERR_INTERNAL;
        size_t len = needed + 512;
        char *buf = malloc(len);
        if (buf == NULL)
            return LICENSE_ERR_INTERNAL;
        rc = license_report(LICENSE_REPORT_TEXT, buf, len, &needed);
        bool ok = rc == LICENSE_OK && strstr(buf, "agent") != NULL;
        free(buf);
        if (rc != LICENSE_ERR_BUFFER_TOO_SMALL)
            return ok ? LICENSE_OK : (rc != LICENSE_OK ? rc : LICENSE_ERR_INTERNAL);
    }
    return LICENSE_ERR_BUFFER_TOO_SMALL;
}

static void p4_callback(void *user_data, const license_event *e) {
    if (user_data != &p4_marker) {
        atomic_fetch_add(&p4_bad_events, 1);
        p4_problem("user_data %p, expected %p", user_data, (void *)&p4_marker);
        return;
    }
    if (e->kind < EV_KINDS)
        atomic_fetch_add(&p4_events[e->kind], 1);
    p4_check_fields(e);

    if (e->kind == LICENSE_EVENT_ACQUIRED && e->user != NULL && tc_starts_with(e->user, "special-")) {
        atomic_fetch_add(&p4_special_acquired, 1);
        int32_t rc_report = p4_report_in_callback();
        uint32_t used = 0, limit = 0;
        int32_t rc_usage = license_usage("agent", &used, &limit);
        char nested_user[64];
        snprintf(nested_user, sizeof nested_user, "nested-%llu", (unsigned long long)e->seat);
        license_seat nested = 0;
        int32_t rc_acquire = license_try_acquire(nested_user, "nest", &nested);
        int32_t rc_release = rc_acquire == LICENSE_OK ? license_release(nested) : LICENSE_OK;
        if (rc_report == LICENSE_OK && rc_usage == LICENSE_OK && used >= 1 && limit == 4 &&
            rc_acquire == LICENSE_OK && rc_release == LICENSE_OK) {
            atomic_fetch_add(&p4_nested_ok, 1);
        } else {
            atomic_fetch_add(&p4_nested_failed, 1);
            p4_problem("nested calls: report %s, usage %s (%u/%u), acquire %s, release %s", tc_code_name(rc_report),
                       tc_code_name(rc_usage), used, limit, tc_code_name(rc_acquire), tc_code_name(rc_release));
        }
    } else if (e->kind == LICENSE_EVENT_RELOADED) {
        uint32_t used = 0, limit = 0;
        if (license_usage("agent", &used, &limit) == LICENSE_OK && limit == 4) {
            atomic_fetch_add(&p4_reloaded_usage_ok, 1);
        } else {
            atomic_fetch_add(&p4_reloaded_usage_failed, 1);
            p4_problem("license_usage from a RELOADED event failed: %s", tc_last_error());
        }
    } else if (e->kind == LICENSE_EVENT_DENIED) {
        int expected = 0;
        if (atomic_compare_exchange_strong(&p4_denied_reload_started, &expected, 1)) {
            int32_t rc = license_reload(NULL);
            atomic_store(&p4_denied_reload_rc, rc);
            if (rc != LICENSE_OK)
                p4_problem("license_reload(NULL) from a DENIED event returned %s: %s", tc_code_name(rc),
                           tc_last_error());
        }
    }
}

static int p4_iterations(void) { return tc_quick() ? 15 : 150; }

static void *p4_worker(void *arg) {
    int id = (int)(intptr_t)arg;
    char special[64], tiny[64];
    snprintf(tiny, sizeof tiny, "tiny-%d", id);
    for (int i = 0; i < p4_iterations(); i++) {
        snprintf(special, sizeof special, "special-%d-%d", id, i);
        license_seat s = 0;
        int32_t rc = license_try_acquire(special, "agent", &s);
        CHECK_LOOP(rc == LICENSE_OK, "thread %d: acquire(%s, agent) returned %s: %s", id, special,
                   tc_code_name(rc), tc_last_error());
        license_seat t = 0;
        rc = license_try_acquire(tiny, "tiny", &t);
        CHECK_LOOP(rc == LICENSE_OK || rc == LICENSE_ERR_LIMIT_REACHED, "thread %d: acquire(tiny) returned %s",
                   id, tc_code_name(rc));
        if (rc == LICENSE_OK)
            CHECK_RC_LOOP(license_release(t), LICENSE_OK);
        if (s != 0)
            CHECK_RC_LOOP(license_release(s), LICENSE_OK);
    }
    return NULL;
}

static void phase4_reentrant_callbacks(void) {
    const char *path = tc_write_config("[defaults]\nalert_at = 50\n\n"
                                       "[licenses.agent]\nlimit = 4\n\n"
                                       "[licenses.nest]\nlimit = 8\n\n"
                                       "[licenses.tiny]\nlimit = 1\n");
    watchdog_arm("phase 4 (re-entrant callbacks)", 60);
    init_or_die(path, "phase 4");
    CHECK_RC(license_set_event_callback(p4_callback, &p4_marker), LICENSE_OK);

    enum { N = 4 };
    pthread_t tids[N];
    for (int i = 0; i < N; i++)
        tc_spawn(&tids[i], p4_worker, (void *)(intptr_t)i);
    /* Reloads from the main thread meanwhile: RELOADED events race with the others. */
    for (int r = 0; r < 3; r++) {
        sleep_s(tc_quick() ? 0.050 : 0.005);
        CHECK_RC(license_reload(path), LICENSE_OK);
    }
    for (int i = 0; i < N; i++)
        pthread_join(tids[i], NULL);

    /* The same again on one thread, so that every kind is certain to appear. */
    license_seat a = must_acquire("main-1", "agent");
    license_seat b = must_acquire("main-2", "agent"); /* 2/4: THRESHOLD_UP */
    CHECK_RC(license_release(b), LICENSE_OK);         /* 1/4: THRESHOLD_DOWN */
    CHECK_RC(license_release(a), LICENSE_OK);
    license_seat t = must_acquire("main-t1", "tiny");
    license_seat u = 0;
    CHECK_RC(license_try_acquire("main-t2", "tiny", &u), LICENSE_ERR_LIMIT_REACHED); /* DENIED */
    CHECK_RC(license_release(t), LICENSE_OK);

    long special = (long)N * p4_iterations();
    CHECK(atomic_load(&p4_special_acquired) == special, "%ld ACQUIRED events of special users, expected %ld",
          atomic_load(&p4_special_acquired), special);
    CHECK(atomic_load(&p4_nested_ok) == special && atomic_load(&p4_nested_failed) == 0,
          "nested calls: %ld ok, %ld failed (first problem: %s)", atomic_load(&p4_nested_ok),
          atomic_load(&p4_nested_failed), p4_first_problem);
    CHECK(atomic_load(&p4_denied_reload_started) == 1 && atomic_load(&p4_denied_reload_rc) == LICENSE_OK,
          "license_reload(NULL) from a DENIED event: started %d, returned %s", atomic_load(&p4_denied_reload_started),
          tc_code_name(atomic_load(&p4_denied_reload_rc)));
    long reloaded = atomic_load(&p4_events[LICENSE_EVENT_RELOADED]);
    CHECK(reloaded == 4, "%ld RELOADED events, expected 4 (3 from main, 1 from a callback)", reloaded);
    CHECK(atomic_load(&p4_reloaded_usage_ok) == reloaded && atomic_load(&p4_reloaded_usage_failed) == 0,
          "license_usage from RELOADED events: %ld ok, %ld failed", atomic_load(&p4_reloaded_usage_ok),
          atomic_load(&p4_reloaded_usage_failed));
    static const char *const names[EV_KINDS] = {"", "ACQUIRED", "RELEASED", "DENIED", "THRESHOLD_UP",
                                                "THRESHOLD_DOWN", "RELOADED"};
    for (int k = LICENSE_EVENT_ACQUIRED; k <= LICENSE_EVENT_RELOADED; k++)
        CHECK(atomic_load(&p4_events[k]) > 0, "no %s event", names[k]);
    /* Every acquire of this phase that succeeded was released: the counts match. */
    CHECK(atomic_load(&p4_events[LICENSE_EVENT_ACQUIRED]) == atomic_load(&p4_events[LICENSE_EVENT_RELEASED]),
          "%ld ACQUIRED events but %ld RELEASED", atomic_load(&p4_events[LICENSE_EVENT_ACQUIRED]),
          atomic_load(&p4_events[LICENSE_EVENT_RELEASED]));
    CHECK(atomic_load(&p4_bad_events) == 0, "%ld events with wrong fields; first: %s", atomic_load(&p4_bad_events),
          p4_first_problem);

    /* Removed: nothing more arrives. */
    CHECK_RC(license_set_event_callback(NULL, NULL), LICENSE_OK);
    long before = 0;
    for (int k = 0; k < EV_KINDS; k++)
        before += atomic_load(&p4_events[k]);
    t = must_acquire("main-t1", "tiny");
    CHECK_RC(license_try_acquire("main-t2", "tiny", &u), LICENSE_ERR_LIMIT_REACHED);
    CHECK_RC(license_release(t), LICENSE_OK);
    CHECK_RC(license_reload(NULL), LICENSE_OK);
    long after = 0;
    for (int k = 0; k < EV_KINDS; k++)
        after += atomic_load(&p4_events[k]);
    CHECK(after == before, "%ld events arrived after the callback was removed", after - before);
    check_used("agent", 0, "phase 4 end");
    check_used("nest", 0, "phase 4 end");
    check_used("tiny", 0, "phase 4 end");
    license_shutdown();
    watchdog_disarm();
    fprintf(stderr, "test_lifecycle: phase 4: %ld events, %ld nested acquires from callbacks\n",
            atomic_load(&p4_events[1]) + atomic_load(&p4_events[2]) + atomic_load(&p4_events[3]) +
                atomic_load(&p4_events[4]) + atomic_load(&p4_events[5]) + atomic_load(&p4_events[6]),
            atomic_load(&p4_nested_ok));
}

/* ==== Phase 5: dependent licenses ==== */

#define MAX_RELEASES 64
static pthread_mutex_t p5_mutex = PTHREAD_MUTEX_INITIALIZER;
static struct {
    license_seat seat;
    uint32_t reason;
    char type[LICENSE_MAX_NAME_LEN + 1];
    char user[32];
} p5_released[MAX_RELEASES];
static int p5_n_released;
static int p5_marker;
/* The last DENIED event's missing type ("" if none came, "(null)" if NULL). */
static char p5_denied_requires[LICENSE_MAX_NAME_LEN + 1];

static void p5_callback(void *user_data, const license_event *e) {
    if (user_data != &p5_marker)
        return;
    if (e->kind == LICENSE_EVENT_DENIED) {
        pthread_mutex_lock(&p5_mutex);
        snprintf(p5_denied_requires, sizeof p5_denied_requires, "%s", e->requires ? e->requires : "(null)");
        pthread_mutex_unlock(&p5_mutex);
        return;
    }
    if (e->kind != LICENSE_EVENT_RELEASED)
        return;
    pthread_mutex_lock(&p5_mutex);
    if (p5_n_released < MAX_RELEASES) {
        p5_released[p5_n_released].seat = e->seat;
        p5_released[p5_n_released].reason = e->reason;
        snprintf(p5_released[p5_n_released].type, sizeof p5_released[0].type, "%s",
                 e->license_type ? e->license_type : "(null)");
        snprintf(p5_released[p5_n_released].user, sizeof p5_released[0].user, "%s", e->user ? e->user : "(null)");
        p5_n_released++;
    }
    pthread_mutex_unlock(&p5_mutex);
}

/* How many RELEASED events for `seat` of `type` with `reason` (all reasons: UINT32_MAX). */
static int p5_count_released(license_seat seat, const char *type, uint32_t reason) {
    int n = 0;
    pthread_mutex_lock(&p5_mutex);
    for (int i = 0; i < p5_n_released; i++)
        if (p5_released[i].seat == seat && strcmp(p5_released[i].type, type) == 0 &&
            (reason == UINT32_MAX || p5_released[i].reason == reason))
            n++;
    pthread_mutex_unlock(&p5_mutex);
    return n;
}

static void phase5_dependencies(void) {
    const char *path = tc_write_config("[licenses.connect]\nlimit = 5\n\n"
                                       "[licenses.callcenter]\nlimit = 5\nrequires = [\"connect\"]\n\n"
                                       "[profiles.agent]\nconsumes = [\"connect\", \"callcenter\"]\n");
    init_or_die(path, "phase 5");
    CHECK_RC(license_set_event_callback(p5_callback, &p5_marker), LICENSE_OK);

    /* Alone, callcenter is refused and nothing is taken. */
    license_seat x = 0;
    license_denial d;
    CHECK_RC(tc_acquire_ex("alice", "callcenter", &x, &d), LICENSE_ERR_REQUIREMENT_MISSING);
    CHECK(d.reason == LICENSE_DENIAL_REQUIREMENT_MISSING && strcmp(d.license_type, "callcenter") == 0 &&
              strcmp(d.requires, "connect") == 0,
          "denial: type '%s' reason %u requires '%s'", d.license_type, d.reason, d.requires);
    CHECK(strstr(tc_last_error(), "connect") != NULL, "last error \"%s\" does not name 'connect'", tc_last_error());
    pthread_mutex_lock(&p5_mutex);
    CHECK(strcmp(p5_denied_requires, "connect") == 0, "DENIED event's requires is \"%s\", expected \"connect\"",
          p5_denied_requires);
    pthread_mutex_unlock(&p5_mutex);
    check_used("callcenter", 0, "after REQUIREMENT_MISSING");
    check_used("connect", 0, "after REQUIREMENT_MISSING");
    /* Requested together, it is fine. */
    x = must_acquire("alice", "connect,callcenter");
    CHECK_RC(license_release(x), LICENSE_OK);
    CHECK(p5_count_released(x, "callcenter", LICENSE_RELEASE_NORMAL) == 1, "the bundle's callcenter release was not "
                                                                           "NORMAL");

    /* Bob holds both; his seats are never touched by alice's releases. */
    license_seat b1 = must_acquire("bob", "connect");
    license_seat b2 = must_acquire("bob", "callcenter");

    /* Alice: connect then callcenter, separately. Releasing connect takes callcenter. */
    license_seat h1 = must_acquire("alice", "connect");
    license_seat h2 = must_acquire("alice", "callcenter");
    check_used("callcenter", 2, "alice and bob on callcenter");
    CHECK_RC(license_release(h1), LICENSE_OK);
    check_used("callcenter", 1, "after alice's last connect went");
    check_used("connect", 1, "after alice's last connect went");
    CHECK(p5_count_released(h1, "connect", LICENSE_RELEASE_NORMAL) == 1, "no NORMAL release event for h1");
    CHECK(p5_count_released(h2, "callcenter", LICENSE_RELEASE_DEPENDENCY) == 1,
          "no RELEASED event with reason DEPENDENCY for alice's callcenter seat");
    CHECK_RC(license_release(h2), LICENSE_ERR_UNKNOWN_SEAT);
    CHECK_RC(license_touch(h2), LICENSE_ERR_UNKNOWN_SEAT);
    CHECK_RC(license_touch(b1), LICENSE_OK);
    CHECK_RC(license_touch(b2), LICENSE_OK);
    CHECK(p5_count_released(b2, "callcenter", UINT32_MAX) == 0, "bob's callcenter seat got a RELEASED event");

    /* Two connect handles: releasing one keeps callcenter. */
    license_seat h3 = must_acquire("alice", "connect");
    license_seat h4 = must_acquire("alice", "connect");
    license_seat h5 = must_acquire("alice", "callcenter");
    CHECK_RC(license_release(h3), LICENSE_OK);
    CHECK_RC(license_touch(h5), LICENSE_OK);
    check_used("callcenter", 2, "alice still has a connect handle");
    CHECK(p5_count_released(h5, "callcenter", UINT32_MAX) == 0, "h5 released although alice kept connect");
    CHECK_RC(license_release(h4), LICENSE_OK);
    CHECK(p5_count_released(h5, "callcenter", LICENSE_RELEASE_DEPENDENCY) == 1, "h5 not released as DEPENDENCY");
    CHECK_RC(license_touch(h5), LICENSE_ERR_UNKNOWN_SEAT);
    check_used("callcenter", 1, "after alice's second connect went");

    /* Log out everywhere. */
    license_seat h6 = must_acquire("alice", "connect");
    license_seat h7 = must_acquire("alice", "callcenter");
    license_seat h8 = must_acquire("alice", "agent");
    uint32_t n = 0;
    CHECK_RC(license_release_user("alice", LICENSE_RELEASE_ADMIN, &n), LICENSE_OK);
    CHECK(n == 3, "license_release_user released %u handles, expected 3", n);
    CHECK(p5_count_released(h6, "connect", LICENSE_RELEASE_ADMIN) == 1 &&
              p5_count_released(h7, "callcenter", LICENSE_RELEASE_ADMIN) == 1 &&
              p5_count_released(h8, "connect", LICENSE_RELEASE_ADMIN) == 1 &&
              p5_count_released(h8, "callcenter", LICENSE_RELEASE_ADMIN) == 1,
          "license_release_user(ADMIN) did not give one ADMIN event per type of each handle");
    CHECK_RC(license_touch(h6), LICENSE_ERR_UNKNOWN_SEAT);
    CHECK_RC(license_release(h8), LICENSE_ERR_UNKNOWN_SEAT);
    CHECK_RC(license_release_user("alice", LICENSE_RELEASE_ADMIN, &n), LICENSE_ERR_UNKNOWN_USER);
    check_used("connect", 1, "after alice logged out everywhere");
    check_used("callcenter", 1, "after alice logged out everywhere");

    /* Callers may give only NORMAL or ADMIN; a refused release frees nothing. */
    const uint32_t not_callers[] = {LICENSE_RELEASE_EXPIRED, LICENSE_RELEASE_DEPENDENCY, LICENSE_RELEASE_SHUTDOWN,
                                    99};
    for (size_t i = 0; i < sizeof not_callers / sizeof not_callers[0]; i++) {
        CHECK_RC(license_release_as(b2, not_callers[i]), LICENSE_ERR_INVALID_ARGUMENT);
        CHECK_RC(license_release_user("bob", not_callers[i], &n), LICENSE_ERR_INVALID_ARGUMENT);
    }
    CHECK_RC(license_touch(b2), LICENSE_OK);
    n = 0;
    CHECK_RC(license_release_user("bob", LICENSE_RELEASE_NORMAL, &n), LICENSE_OK);
    CHECK(n == 2, "license_release_user(bob) released %u handles, expected 2", n);
    check_used("connect", 0, "phase 5 end");
    check_used("callcenter", 0, "phase 5 end");
    license_shutdown();
    CHECK_RC(license_set_event_callback(NULL, NULL), LICENSE_OK);
}

/* ==== Phase 6: linger and billing counters ==== */

static void phase6_linger(void) {
    double linger = scaled(0.300);
    const char *path = tc_write_configf("[licenses.ext]\nlimit = 1\nlinger = \"%dms\"\n\n"
                                     "[licenses.pool]\nlimit = 3\ncount = \"session\"\n\n"
                                     "[reaper]\nenabled = true\ninterval = \"50ms\"\n",
                                     (int)(linger * 1000));
    init_or_die(path, "phase 6");
    uint64_t acquired = 0, denied = 0; /* what ext's counters must say */

    license_seat a = must_acquire("alice", "ext");
    acquired++;
    double t_release = tc_now();
    CHECK_RC(license_release(a), LICENSE_OK);
    bool in_window = true;

    /* Within the window: counted, others refused, alice back at once for free. */
    uint32_t used = tc_usage("ext");
    if (tc_now() - t_release < linger)
        CHECK(used == 1, "a lingering seat is not counted (used %u)", used);
    else
        in_window = false;
    license_seat b = 0;
    license_denial d;
    int32_t rc = tc_acquire_ex("bob", "ext", &b, &d);
    if (tc_now() - t_release < linger) {
        CHECK(rc == LICENSE_ERR_LIMIT_REACHED, "bob took alice's lingering seat: %s", tc_code_name(rc));
        CHECK(rc != LICENSE_ERR_LIMIT_REACHED || (d.reason == LICENSE_DENIAL_FULL && d.used == 1 && d.limit == 1),
              "denial '%s' %u/%u reason %u", d.license_type, d.used, d.limit, d.reason);
    } else {
        in_window = false;
    }
    if (rc == LICENSE_ERR_LIMIT_REACHED)
        denied++;
    if (rc == LICENSE_OK) {
        acquired++;
        CHECK_RC(license_release_as(b, LICENSE_RELEASE_ADMIN), LICENSE_OK);
    }
    uint64_t acquired_before = stats_of("ext").acquired;
    rc = license_try_acquire("alice", "ext", &a);
    double t_back = tc_now();
    CHECK(rc == LICENSE_OK, "alice could not take her lingering seat back: %s", tc_code_name(rc));
    if (in_window && t_back - t_release < linger) {
        license_type_stats st = stats_of("ext");
        CHECK(st.acquired == acquired_before, "taking a lingering seat back counted as a new seat (%llu -> %llu)",
              (unsigned long long)acquired_before, (unsigned long long)st.acquired);
        check_used("ext", 1, "alice back on her lingering seat");
    } else {
        timing_note("phase 6: the linger window ended before alice came back");
        in_window = false;
    }
    acquired = stats_of("ext").acquired; /* 1, unless the window ended first */

    /* After the window: bob gets in, never before it and within window + 5 s. */
    t_release = tc_now();
    CHECK_RC(license_release(a), LICENSE_OK);
    double bound = linger + 5.0, now;
    do {
        rc = license_try_acquire("bob", "ext", &b);
        now = tc_now();
        if (rc == LICENSE_OK)
            break;
        CHECK_LOOP(rc == LICENSE_ERR_LIMIT_REACHED, "bob's poll returned %s", tc_code_name(rc));
        denied++;
        sleep_s(0.010);
    } while (now - t_release <= bound);
    CHECK(rc == LICENSE_OK, "bob never got the seat (%.3f s after alice's release)", now - t_release);
    CHECK(now - t_release >= linger, "bob got the seat %.3f s after alice's release, inside the %.3f s window",
          now - t_release, linger);
    CHECK(now - t_release <= bound, "bob got the seat only %.3f s after alice's release", now - t_release);
    if (rc == LICENSE_OK)
        acquired++;

    /* An admin release frees at once, and so does an admin logout of a lingering seat. */
    CHECK_RC(license_release_as(b, LICENSE_RELEASE_ADMIN), LICENSE_OK);
    check_used("ext", 0, "right after an admin release");
    a = must_acquire("alice", "ext");
    acquired++;
    CHECK_RC(license_release(a), LICENSE_OK);
    uint32_t n = 99;
    rc = license_release_user("alice", LICENSE_RELEASE_ADMIN, &n);
    CHECK(rc == LICENSE_OK && n == 0, "admin logout of a user with only a lingering seat: %s, %u handles",
          tc_code_name(rc), n);
    check_used("ext", 0, "right after an admin logout of a lingering seat");

    license_type_stats st = stats_of("ext");
    CHECK(st.used == 0 && st.limit == 1 && st.peak == 1 && st.peak_since_reset == 1,
          "ext stats: used %u limit %u peak %u since reset %u", st.used, st.limit, st.peak, st.peak_since_reset);
    CHECK(st.acquired == acquired, "ext acquired %llu, expected %llu", (unsigned long long)st.acquired,
          (unsigned long long)acquired);
    CHECK(st.denied == denied, "ext denied %llu, expected %llu", (unsigned long long)st.denied,
          (unsigned long long)denied);
    if (in_window)
        CHECK(acquired == 3 && denied >= 2, "the phase took %llu ext seats and was refused %llu times",
              (unsigned long long)acquired, (unsigned long long)denied);

    /* Peaks: 3 held, 2 released; a reset starts at the current use. */
    license_seat p[3] = {must_acquire("p1", "pool"), must_acquire("p2", "pool"), must_acquire("p3", "pool")};
    license_seat q = 0;
    CHECK_RC(license_try_acquire("p4", "pool", &q), LICENSE_ERR_LIMIT_REACHED);
    CHECK_RC(license_release(p[0]), LICENSE_OK);
    CHECK_RC(license_release(p[1]), LICENSE_OK);
    st = stats_of("pool");
    CHECK(st.used == 1 && st.peak == 3 && st.peak_since_reset == 3 && st.acquired == 3 && st.denied == 1,
          "pool stats before reset: used %u peak %u since reset %u acquired %llu denied %llu", st.used, st.peak,
          st.peak_since_reset, (unsigned long long)st.acquired, (unsigned long long)st.denied);
    CHECK_RC(license_stats_reset(), LICENSE_OK);
    st = stats_of("pool");
    CHECK(st.peak == 3 && st.peak_since_reset == 1 && st.acquired == 3 && st.denied == 1,
          "pool stats after reset: peak %u since reset %u acquired %llu denied %llu", st.peak, st.peak_since_reset,
          (unsigned long long)st.acquired, (unsigned long long)st.denied);
    st = stats_of("ext");
    CHECK(st.peak == 1 && st.peak_since_reset == 0, "ext after reset: peak %u, since reset %u", st.peak,
          st.peak_since_reset);
    p[0] = must_acquire("p1", "pool");
    st = stats_of("pool");
    CHECK(st.peak == 3 && st.peak_since_reset == 2 && st.acquired == 4, "pool: peak %u since reset %u acquired %llu",
          st.peak, st.peak_since_reset, (unsigned long long)st.acquired);
    CHECK_RC(license_release(p[0]), LICENSE_OK);
    CHECK_RC(license_release(p[2]), LICENSE_OK);

    /* out->size: too small is refused and nothing is written; larger is fine. */
    license_type_stats small;
    memset(&small, 0xAB, sizeof small);
    small.size = sizeof small - 1;
    CHECK_RC(license_stats("ext", &small), LICENSE_ERR_INVALID_ARGUMENT);
    CHECK(small.used == 0xABABABABu && small.acquired == 0xABABABABABABABABull,
          "a refused license_stats wrote into the struct");
    small.size = 0;
    CHECK_RC(license_stats("ext", &small), LICENSE_ERR_INVALID_ARGUMENT);
    struct {
        license_type_stats s;
        unsigned char tail[16];
    } big;
    memset(&big, 0xCD, sizeof big);
    big.s.size = sizeof big;
    CHECK_RC(license_stats("pool", &big.s), LICENSE_OK);
    bool tail_kept = true;
    for (size_t i = 0; i < sizeof big.tail; i++)
        tail_kept = tail_kept && big.tail[i] == 0xCD;
    CHECK(big.s.size == sizeof big && big.s.limit == 3 && big.s.acquired == 4 && tail_kept,
          "license_stats with a larger size: size %zu limit %u acquired %llu, tail kept %d", big.s.size, big.s.limit,
          (unsigned long long)big.s.acquired, (int)tail_kept);
    CHECK_RC(license_stats("nope", &big.s), LICENSE_ERR_UNKNOWN_LICENSE_TYPE);
    check_used("pool", 0, "phase 6 end");
    license_shutdown();
}

/* ==== Phase 7: the event mask ==== */

#define P7_MAX 64
static pthread_mutex_t p7_mutex = PTHREAD_MUTEX_INITIALIZER;
static struct {
    uint32_t kind, reason, used;
    char type[LICENSE_MAX_NAME_LEN + 1];
} p7_events[P7_MAX];
static int p7_n;
static int p7_marker;

static void p7_callback(void *user_data, const license_event *e) {
    if (user_data != &p7_marker)
        return;
    pthread_mutex_lock(&p7_mutex);
    if (p7_n < P7_MAX) {
        p7_events[p7_n].kind = e->kind;
        p7_events[p7_n].reason = e->reason;
        p7_events[p7_n].used = e->used;
        snprintf(p7_events[p7_n].type, sizeof p7_events[0].type, "%s", e->license_type ? e->license_type : "");
    }
    p7_n++;
    pthread_mutex_unlock(&p7_mutex);
}

/* The events heard since the last call, as "KIND/REASON/TYPE/USED" joined by spaces
 * (KIND and REASON as numbers), and forgets them. */
static const char *p7_take(void) {
    static char out[2048];
    size_t at = 0;
    out[0] = '\0';
    pthread_mutex_lock(&p7_mutex);
    for (int i = 0; i < p7_n && i < P7_MAX; i++)
        at += (size_t)snprintf(out + at, sizeof out - at, "%s%u/%u/%s/%u", i ? " " : "", p7_events[i].kind,
                               p7_events[i].reason, p7_events[i].type, p7_events[i].used);
    if (p7_n > P7_MAX)
        snprintf(out + at, sizeof out - at, " (and %d more)", p7_n - P7_MAX);
    p7_n = 0;
    pthread_mutex_unlock(&p7_mutex);
    return out;
}

#define P7_EXPECT(want, when)                                                          \
    do {                                                                               \
        const char *got_ = p7_take();                                                  \
        CHECK(strcmp(got_, want) == 0, "%s: heard \"%s\", expected \"%s\"", when, got_, want); \
    } while (0)

static void phase7_event_mask(void) {
    /* A bit that names no event is refused, and the mask stays as it was. */
    CHECK_RC(license_set_event_mask(LICENSE_EVENTS_ALL | 1u), LICENSE_ERR_INVALID_ARGUMENT);
    CHECK(strstr(tc_last_error(), "name no event") != NULL, "last error \"%s\"", tc_last_error());
    CHECK_RC(license_set_event_mask(1u << 20), LICENSE_ERR_INVALID_ARGUMENT);
    /* Masks as a config file names them. */
    uint32_t mask = 0;
    CHECK_RC(license_event_mask_parse("alerts, threshold", &mask), LICENSE_OK);
    CHECK(mask == (LICENSE_EVENTS_ALERTS | LICENSE_EVENTS_THRESHOLD_UP | LICENSE_EVENTS_THRESHOLD_DOWN),
          "\"alerts, threshold\" is %#x", mask);
    CHECK_RC(license_event_mask_parse("acquired,forced_releases", &mask), LICENSE_OK);
    CHECK(mask == (LICENSE_EVENTS_ACQUIRED | LICENSE_EVENTS_RELEASED_FORCED), "acquired,forced_releases is %#x", mask);
    CHECK_RC(license_event_mask_parse("all", &mask), LICENSE_OK);
    CHECK(mask == LICENSE_EVENTS_ALL, "all is %#x", mask);
    CHECK_RC(license_event_mask_parse("alerts, logins", &mask), LICENSE_ERR_INVALID_ARGUMENT);
    CHECK(strstr(tc_last_error(), "'logins'") != NULL && strstr(tc_last_error(), "limit_changed") != NULL,
          "last error \"%s\" does not name the word and the choices", tc_last_error());
    CHECK(mask == LICENSE_EVENTS_ALL, "a refused parse changed the mask to %#x", mask);
    /* Set before init, it holds once the library starts. */
    CHECK_RC(license_set_event_mask(LICENSE_EVENTS_ALERTS), LICENSE_OK);
    CHECK_RC(license_set_event_callback(p7_callback, &p7_marker), LICENSE_OK);
    const char *path = tc_write_config("[licenses.connect]\nlimit = 4\n\n"
                                       "[licenses.desk]\nlimit = 4\nalert_at = 50\nrequires = [\"connect\"]\n");
    init_or_die(path, "phase 7");
    char want[256];

    /* Alerts only: logins and logouts are not heard, whatever path they take. */
    license_seat c = must_acquire("alice", "connect");
    license_seat d1 = must_acquire("alice", "desk");
    license_seat d2 = must_acquire("bob", "connect,desk");
    CHECK_RC(license_release(d2), LICENSE_OK);
    P7_EXPECT("", "alerts: two logins and a logout");
    /* A refusal is. */
    CHECK_RC(license_set_limit(NULL, "desk", 1), LICENSE_OK);
    license_seat x = 0;
    license_denial denial;
    CHECK_RC(tc_acquire_ex("carol", "connect,desk", &x, &denial), LICENSE_ERR_LIMIT_REACHED);
    snprintf(want, sizeof want, "%u/0/desk/1 %u/%u/desk/1", LICENSE_EVENT_LIMIT_CHANGED, LICENSE_EVENT_DENIED,
             LICENSE_DENIAL_FULL);
    P7_EXPECT(want, "alerts: a limit set, then a refusal");
    CHECK_RC(license_set_limit(NULL, "desk", 4), LICENSE_OK);
    (void)p7_take();
    /* So is a release the host did not ask for (the dependency), but not the logout
     * that caused it. */
    CHECK_RC(license_release(c), LICENSE_OK);
    snprintf(want, sizeof want, "%u/%u/desk/0", LICENSE_EVENT_RELEASED, LICENSE_RELEASE_DEPENDENCY);
    P7_EXPECT(want, "alerts: connect released, desk goes with it");
    CHECK_RC(license_release(d1), LICENSE_ERR_UNKNOWN_SEAT);
    /* And an admin's. */
    license_seat e = must_acquire("erin", "connect");
    uint32_t n = 0;
    CHECK_RC(license_release_user("erin", LICENSE_RELEASE_ADMIN, &n), LICENSE_OK);
    snprintf(want, sizeof want, "%u/%u/connect/0", LICENSE_EVENT_RELEASED, LICENSE_RELEASE_ADMIN);
    P7_EXPECT(want, "alerts: an admin logs erin out");
    (void)e;

    /* Thresholds only, changed while running: desk's 50% of 4 is 2 seats, counted
     * exactly (used = 2 going up, 1 coming down). */
    CHECK_RC(license_set_event_mask(LICENSE_EVENTS_THRESHOLD_UP | LICENSE_EVENTS_THRESHOLD_DOWN), LICENSE_OK);
    license_seat f1 = must_acquire("frank", "connect,desk");
    license_seat f2 = must_acquire("gina", "connect,desk");
    CHECK_RC(license_release(f2), LICENSE_OK);
    CHECK_RC(license_release(f1), LICENSE_OK);
    snprintf(want, sizeof want, "%u/0/desk/2 %u/0/desk/1", LICENSE_EVENT_THRESHOLD_UP, LICENSE_EVENT_THRESHOLD_DOWN);
    P7_EXPECT(want, "thresholds: desk up to 2 of 4 and down again");

    /* Every event again. */
    CHECK_RC(license_set_event_mask(LICENSE_EVENTS_ALL), LICENSE_OK);
    license_seat h = must_acquire("hal", "connect");
    CHECK_RC(license_release(h), LICENSE_OK);
    snprintf(want, sizeof want, "%u/0/connect/1 %u/%u/connect/0", LICENSE_EVENT_ACQUIRED, LICENSE_EVENT_RELEASED,
             LICENSE_RELEASE_NORMAL);
    P7_EXPECT(want, "all: a login and a logout");

    /* Nothing: the callback stays registered and hears nothing. */
    CHECK_RC(license_set_event_mask(0), LICENSE_OK);
    h = must_acquire("hal", "connect");
    CHECK_RC(license_release(h), LICENSE_OK);
    CHECK_RC(tc_acquire_ex("ivy", "nosuch", &x, &denial), LICENSE_ERR_UNKNOWN_PROFILE);
    P7_EXPECT("", "none: a login, a logout, an unknown profile");

    check_used("connect", 0, "phase 7 end");
    check_used("desk", 0, "phase 7 end");
    license_shutdown();
    CHECK_RC(license_set_event_mask(LICENSE_EVENTS_ALL), LICENSE_OK);
    CHECK_RC(license_set_event_callback(NULL, NULL), LICENSE_OK);
}

int main(void) {
    double t0 = tc_now();
    main_thread = pthread_self();
    double t = tc_now();
    phase1_leases();
    fprintf(stderr, "test_lifecycle: phase 1 (leases) %.2f s\n", tc_now() - t);
    t = tc_now();
    phase2_reload_under_load();
    phase2_over_limit_and_orphan();
    fprintf(stderr, "test_lifecycle: phase 2 (reload) %.2f s\n", tc_now() - t);
    t = tc_now();
    phase3_broken_reload();
    fprintf(stderr, "test_lifecycle: phase 3 (broken reload) %.2f s\n", tc_now() - t);
    t = tc_now();
    phase4_reentrant_callbacks();
    fprintf(stderr, "test_lifecycle: phase 4 (callbacks) %.2f s\n", tc_now() - t);
    t = tc_now();
    phase5_dependencies();
    fprintf(stderr, "test_lifecycle: phase 5 (dependencies) %.2f s\n", tc_now() - t);
    t = tc_now();
    phase6_linger();
    fprintf(stderr, "test_lifecycle: phase 6 (linger, stats) %.2f s\n", tc_now() - t);
    t = tc_now();
    phase7_event_mask();
    fprintf(stderr, "test_lifecycle: phase 7 (event mask) %.2f s\n", tc_now() - t);
    if (timing_notes > 0)
        fprintf(stderr, "test_lifecycle: %ld timing checks skipped on a slow machine\n", timing_notes);
    fprintf(stderr, "test_lifecycle: %.2f s\n", tc_now() - t0);
    return tc_summary("test_lifecycle");
}
