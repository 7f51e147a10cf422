/*
 * test_stress: pthread stress of the seatgate C API.
 *
 *  Part A: N threads, each with its own user name per iteration, acquire and release
 *    single types and 2-3-type bundles over small pools (one a count = "session"
 *    type). An independent shadow counter per type (C11 atomics) is raised after each
 *    successful acquire and lowered just before each release; it must never exceed
 *    the type's limit. Every refusal must name a type of the bundle at used == limit.
 *    A checker thread reads license_usage (used <= limit) and reports throughout. At
 *    the end every count is 0 and the JSON report has no holders.
 *  Part B: many threads share K users on a count = "user" type whose limit is K. At
 *    most K distinct users ever hold it, so no acquire may be refused (a refusal would
 *    mean a user's second handle was counted twice). used <= K throughout, 0 at the end.
 *  Part C: threads acquire and release while the main thread shuts down and
 *    re-initializes a few times. Every code must be OK, NOT_INITIALIZED,
 *    LIMIT_REACHED or UNKNOWN_SEAT; nothing crashes; the final table ends at 0.
 *  Part D: several threads release the same handle at once: exactly one gets
 *    LICENSE_OK, the others LICENSE_ERR_UNKNOWN_SEAT, and the user's other handle
 *    keeps its seat.
 *  Part E: several threads call license_init at once: exactly one succeeds.
 *  Part F: a bundle refused by its last type must not make a concurrent request for
 *    an earlier type of that bundle fail while that type has a free seat (the
 *    header: a seat held for an instant and given back never causes a refusal).
 *
 * SEATGATE_TEST_QUICK=1 (valgrind) cuts the iteration counts.
 */
#include "common.h"

#include <sched.h>
#include <stdbool.h>

/* ---- config ---- */

enum { T_POOL, T_AGENT, T_CRM, T_SESS, T_SHARED, N_TYPES };
static const char *const TYPE_NAMES[N_TYPES] = {"pool", "agent", "crm", "sess", "shared"};
#define K_SHARED 4

static const char CONFIG[] =
    "[licensee]\n"
    "name = \"Stress Test\"\n"
    "\n"
    "[licenses.pool]\n"
    "limit = 3\n"
    "\n"
    "[licenses.agent]\n"
    "limit = 4\n"
    "\n"
    "[licenses.crm]\n"
    "limit = 2\n"
    "\n"
    "[licenses.sess]\n"
    "limit = 3\n"
    "count = \"session\"\n"
    "\n"
    "[licenses.shared]\n"
    "limit = 4\n" /* K_SHARED */
    "\n"
    "[licenses.taken]\n" /* Part F: its one seat is held throughout */
    "limit = 1\n"
    "\n"
    "[profiles.op]\n"
    "consumes = [\"agent\", \"crm\"]\n"
    "\n"
    "[profiles.op_sess]\n"
    "consumes = [\"agent\", \"sess\"]\n"
    "\n"
    "[profiles.trio]\n"
    "consumes = [\"pool\", \"agent\", \"sess\"]\n"
    "\n"
    "[profiles.pool_crm]\n"
    "consumes = [\"pool\", \"crm\"]\n";

struct kind {
    const char *profiles;
    unsigned mask; /* bit per type */
};

#define BIT(t) (1u << (t))
#define SEAT_NONE ((license_seat)0)
static const struct kind KINDS[] = {
    {"pool", BIT(T_POOL)},
    {"sess", BIT(T_SESS)},
    {"op", BIT(T_AGENT) | BIT(T_CRM)},
    {"op_sess", BIT(T_AGENT) | BIT(T_SESS)},
    {"trio", BIT(T_POOL) | BIT(T_AGENT) | BIT(T_SESS)},
    {"pool_crm", BIT(T_POOL) | BIT(T_CRM)},
    {"op,pool", BIT(T_AGENT) | BIT(T_CRM) | BIT(T_POOL)},
    {"sess,op_sess", BIT(T_AGENT) | BIT(T_SESS)}, /* sess named twice: still one seat */
};
#define N_KINDS (sizeof KINDS / sizeof KINDS[0])

static uint32_t limits[N_TYPES];

/* ---- shared state ---- */

static atomic_int shadow[N_TYPES];
static atomic_int shadow_max[N_TYPES];
static atomic_bool stop_checker;
static atomic_long checker_reads;
static atomic_long checker_reports;
static atomic_long checker_over_limit;

static int n_threads(void) { return 8; }

static int iterations(int plain, int quick) { return tc_quick() ? quick : plain; }

static uint32_t rnd(uint64_t *s) {
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return (uint32_t)(*s >> 11);
}

static int type_index(const char *name) {
    for (int t = 0; t < N_TYPES; t++)
        if (strcmp(TYPE_NAMES[t], name) == 0)
            return t;
    return -1;
}

static void shadow_up(unsigned mask, const char *who) {
    for (int t = 0; t < N_TYPES; t++) {
        if (!(mask & BIT(t)))
            continue;
        int v = atomic_fetch_add(&shadow[t], 1) + 1;
        if ((uint32_t)v > limits[t])
            CHECK((uint32_t)v <= limits[t], "%s: shadow count of '%s' reached %d, limit %u", who, TYPE_NAMES[t],
                  v, limits[t]);
        int m = atomic_load(&shadow_max[t]);
        while (v > m && !atomic_compare_exchange_weak(&shadow_max[t], &m, v)) {
        }
    }
}

static void shadow_down(unsigned mask) {
    for (int t = 0; t < N_TYPES; t++)
        if (mask & BIT(t))
            atomic_fetch_sub(&shadow[t], 1);
}

/* ---- checker thread: used <= limit at every read ---- */

struct checker_arg {
    int types_from, types_to; /* which types to watch */
    int with_reports;
    int tolerate_uninitialized; /* Part C */
};

static void *checker(void *p) {
    struct checker_arg *a = p;
    long loops = 0;
    while (!atomic_load(&stop_checker)) {
        for (int t = a->types_from; t < a->types_to; t++) {
            uint32_t used = 0, limit = 0;
            int32_t rc = license_usage(TYPE_NAMES[t], &used, &limit);
            if (rc == LICENSE_ERR_NOT_INITIALIZED && a->tolerate_uninitialized)
                continue;
            if (rc != LICENSE_OK) {
                CHECK(rc == LICENSE_OK, "checker: license_usage(%s) returned %s", TYPE_NAMES[t], tc_code_name(rc));
                continue;
            }
            atomic_fetch_add(&checker_reads, 1);
            if (used > limit || limit != limits[t]) {
                atomic_fetch_add(&checker_over_limit, 1);
                CHECK(used <= limit && limit == limits[t], "checker: '%s' used %u, limit %u (config %u)",
                      TYPE_NAMES[t], used, limit, limits[t]);
            }
        }
        /* reports are slow under valgrind: fewer there */
        if (a->with_reports && loops % (tc_quick() ? 128 : 64) == 0) {
            int32_t rc;
            char *json = tc_report(LICENSE_REPORT_JSON, &rc);
            if (json == NULL && rc == LICENSE_ERR_NOT_INITIALIZED && a->tolerate_uninitialized) {
                /* a shutdown in between */
            } else {
                CHECK(json != NULL, "checker: JSON report failed: %s", tc_code_name(rc));
                if (json)
                    CHECK(strstr(json, "\"over limit\"") == NULL, "checker: a report shows a type over its limit");
                atomic_fetch_add(&checker_reports, 1);
            }
            free(json);
        }
        loops++;
        if (tc_quick() || loops % 16 == 0)
            sched_yield();
    }
    return NULL;
}

static void start_checker(pthread_t *t, struct checker_arg *a) {
    atomic_store(&stop_checker, false);
    tc_spawn(t, checker, a);
}

static void stop_and_join_checker(pthread_t t) {
    atomic_store(&stop_checker, true);
    pthread_join(t, NULL);
}

static void join_all(pthread_t *ts, int n) {
    for (int i = 0; i < n; i++)
        pthread_join(ts[i], NULL);
}

/* ---- Part A ---- */

#define HOLD 2 /* handles a worker keeps before releasing its oldest */

struct a_worker {
    int id;
    int iters;
    long ok, refused;
    long refused_by[N_TYPES];
};

static void *part_a_worker(void *p) {
    struct a_worker *w = p;
    uint64_t seed = 0x9E3779B97F4A7C15ull ^ (uint64_t)(w->id + 1) * 0x100000001B3ull;
    license_seat held[HOLD];
    unsigned held_mask[HOLD];
    int n_held = 0;
    char who[64];
    for (int i = 0; i < w->iters; i++) {
        const struct kind *k = &KINDS[rnd(&seed) % N_KINDS];
        char user[48];
        snprintf(user, sizeof user, "a%d-%d", w->id, i);
        license_seat h = 0;
        int32_t rc;
        license_denial denial = {.size = sizeof(license_denial)};
        int use_ex = (i & 1);
        if (use_ex) {
            char ext[24];
            snprintf(ext, sizeof ext, "ext-%d", w->id);
            license_request req = {sizeof(license_request), user, k->profiles, ext, NULL, NULL};
            memset(&denial, 0, sizeof denial);
            denial.size = sizeof denial;
            rc = license_try_acquire_ex(&req, &h, &denial);
        } else {
            rc = license_try_acquire(user, k->profiles, &h);
        }
        if (rc == LICENSE_OK) {
            w->ok++;
            snprintf(who, sizeof who, "thread %d acquire %s", w->id, k->profiles);
            shadow_up(k->mask, who);
            if (n_held == HOLD) {
                shadow_down(held_mask[0]);
                int32_t r = license_release(held[0]);
                if (r != LICENSE_OK)
                    CHECK_RC(r, LICENSE_OK);
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
            w->refused++;
            if (use_ex) {
                int t = type_index(denial.license_type);
                if (t < 0 || !(k->mask & BIT(t)) || denial.limit != limits[t] || denial.used != denial.limit)
                    CHECK(0, "thread %d: %s refused by \"%.64s\" %u/%u: not a full type of the bundle", w->id,
                          k->profiles, denial.license_type, denial.used, denial.limit);
                else
                    w->refused_by[t]++;
            } else {
                /* the sentence names a full type of the bundle: "license type 'X' is full (n/n)" */
                char err[256];
                tc_last_error_into(err, sizeof err);
                char name[80] = "";
                unsigned used = 0, limit = 1;
                int t = -1;
                if (sscanf(err, "license type '%63[^']' is full (%u/%u)", name, &used, &limit) == 3)
                    t = type_index(name);
                if (t < 0 || !(k->mask & BIT(t)) || used != limit || limit != limits[t])
                    CHECK(0, "thread %d: %s refused with \"%s\": not a full type of the bundle", w->id,
                          k->profiles, err);
                else
                    w->refused_by[t]++;
            }
        } else {
            CHECK(0, "thread %d: acquire(%s, %s) returned %s: %s", w->id, user, k->profiles, tc_code_name(rc),
                  tc_last_error());
        }
        /* sometimes release the oldest handle early */
        if (n_held > 0 && rnd(&seed) % 4 == 0) {
            shadow_down(held_mask[0]);
            int32_t r = license_release(held[0]);
            if (r != LICENSE_OK)
                CHECK_RC(r, LICENSE_OK);
            held[0] = held[1];
            held_mask[0] = held_mask[1];
            n_held--;
        }
    }
    while (n_held > 0) {
        n_held--;
        shadow_down(held_mask[n_held]);
        CHECK_RC(license_release(held[n_held]), LICENSE_OK);
    }
    return NULL;
}

static void part_a(void) {
    double t0 = tc_now();
    int nt = n_threads();
    int iters = iterations(60000, 1000);
    pthread_t ts[16], chk;
    struct a_worker ws[16];
    struct checker_arg ca = {T_POOL, T_SHARED, 1, 0};
    for (int t = 0; t < N_TYPES; t++) {
        atomic_store(&shadow[t], 0);
        atomic_store(&shadow_max[t], 0);
    }
    start_checker(&chk, &ca);
    for (int i = 0; i < nt; i++) {
        memset(&ws[i], 0, sizeof ws[i]);
        ws[i].id = i;
        ws[i].iters = iters;
        tc_spawn(&ts[i], part_a_worker, &ws[i]);
    }
    join_all(ts, nt);
    stop_and_join_checker(chk);

    long ok = 0, refused = 0, refused_by[N_TYPES] = {0};
    for (int i = 0; i < nt; i++) {
        ok += ws[i].ok;
        refused += ws[i].refused;
        for (int t = 0; t < N_TYPES; t++)
            refused_by[t] += ws[i].refused_by[t];
    }
    CHECK(ok + refused == (long)nt * iters, "Part A: %ld ok + %ld refused != %ld attempts", ok, refused,
          (long)nt * iters);
    CHECK(ok > 0, "Part A: no acquire succeeded");
    CHECK(atomic_load(&checker_reads) > 0, "Part A: the checker never read a count");
    CHECK(atomic_load(&checker_over_limit) == 0, "Part A: the checker saw %ld counts over a limit",
          atomic_load(&checker_over_limit));
    for (int t = 0; t < T_SHARED; t++) {
        CHECK(atomic_load(&shadow[t]) == 0, "Part A: shadow of '%s' ends at %d", TYPE_NAMES[t],
              atomic_load(&shadow[t]));
        CHECK((uint32_t)atomic_load(&shadow_max[t]) <= limits[t], "Part A: shadow of '%s' peaked at %d > %u",
              TYPE_NAMES[t], atomic_load(&shadow_max[t]), limits[t]);
        uint32_t used = tc_usage(TYPE_NAMES[t]);
        CHECK(used == 0, "Part A: '%s' used %u at the end", TYPE_NAMES[t], used);
    }
    int32_t rc;
    char *json = tc_report(LICENSE_REPORT_JSON, &rc);
    CHECK(json != NULL, "Part A: final JSON report: %s", tc_code_name(rc));
    if (json) {
        CHECK(strstr(json, "\"holders\": []") != NULL, "Part A: the final report still has holders");
        CHECK(strstr(json, "\"total\": 0") != NULL, "Part A: the final report's paging total is not 0");
        free(json);
    }
    fprintf(stderr,
            "test_stress: Part A: %d threads x %d: %ld ok, %ld refused (pool %ld, agent %ld, crm %ld, sess %ld); "
            "peaks pool %d/%u agent %d/%u crm %d/%u sess %d/%u; checker %ld reads, %ld reports; %.2f s\n",
            nt, iters, ok, refused, refused_by[T_POOL], refused_by[T_AGENT], refused_by[T_CRM], refused_by[T_SESS],
            atomic_load(&shadow_max[T_POOL]), limits[T_POOL], atomic_load(&shadow_max[T_AGENT]), limits[T_AGENT],
            atomic_load(&shadow_max[T_CRM]), limits[T_CRM], atomic_load(&shadow_max[T_SESS]), limits[T_SESS],
            atomic_load(&checker_reads), atomic_load(&checker_reports), tc_now() - t0);
}

/* ---- Part B ---- */

struct b_worker {
    int id;
    int iters;
    long ok, refused, other;
};

static atomic_int user_handles[K_SHARED];

static void *part_b_worker(void *p) {
    struct b_worker *w = p;
    uint64_t seed = 0xD1B54A32D192ED03ull ^ (uint64_t)(w->id + 7) * 0x9E3779B97F4A7C15ull;
    license_seat held[HOLD];
    int held_user[HOLD];
    int n_held = 0;
    for (int i = 0; i < w->iters; i++) {
        int u = (int)(rnd(&seed) % K_SHARED);
        char user[32];
        snprintf(user, sizeof user, "shared-%d", u);
        license_seat h = 0;
        int32_t rc = license_try_acquire(user, "shared", &h);
        if (rc == LICENSE_OK) {
            w->ok++;
            atomic_fetch_add(&user_handles[u], 1);
            if (n_held == HOLD) {
                atomic_fetch_sub(&user_handles[held_user[0]], 1);
                int32_t r = license_release(held[0]);
                if (r != LICENSE_OK)
                    CHECK_RC(r, LICENSE_OK);
                held[0] = held[1];
                held_user[0] = held_user[1];
                n_held = 1;
            }
            held[n_held] = h;
            held_user[n_held] = u;
            n_held++;
        } else if (rc == LICENSE_ERR_LIMIT_REACHED) {
            /* at most K distinct users exist: a refusal is a double-counted user */
            if (w->refused++ < 3)
                CHECK(0, "Part B thread %d: %s refused: %s", w->id, user, tc_last_error());
        } else {
            w->other++;
            CHECK(0, "Part B thread %d: acquire returned %s: %s", w->id, tc_code_name(rc), tc_last_error());
        }
        if (rnd(&seed) % 3 == 0 && n_held > 0) {
            n_held--;
            atomic_fetch_sub(&user_handles[held_user[n_held]], 1);
            int32_t r = license_release(held[n_held]);
            if (r != LICENSE_OK)
                CHECK_RC(r, LICENSE_OK);
        }
        if (rnd(&seed) % 16 == 0)
            sched_yield();
    }
    while (n_held > 0) {
        n_held--;
        atomic_fetch_sub(&user_handles[held_user[n_held]], 1);
        CHECK_RC(license_release(held[n_held]), LICENSE_OK);
    }
    return NULL;
}

static void part_b(void) {
    double t0 = tc_now();
    int nt = n_threads() + 4;
    int iters = iterations(40000, 1000);
    pthread_t ts[16], chk;
    struct b_worker ws[16];
    struct checker_arg ca = {T_SHARED, T_SHARED + 1, 0, 0};
    CHECK(limits[T_SHARED] == K_SHARED, "Part B: 'shared' limit %u, expected K = %d", limits[T_SHARED], K_SHARED);
    atomic_store(&checker_reads, 0);
    start_checker(&chk, &ca);
    for (int i = 0; i < nt; i++) {
        memset(&ws[i], 0, sizeof ws[i]);
        ws[i].id = i;
        ws[i].iters = iters;
        tc_spawn(&ts[i], part_b_worker, &ws[i]);
    }
    join_all(ts, nt);
    stop_and_join_checker(chk);

    long ok = 0, refused = 0, other = 0;
    for (int i = 0; i < nt; i++) {
        ok += ws[i].ok;
        refused += ws[i].refused;
        other += ws[i].other;
    }
    CHECK(refused == 0, "Part B: %ld refusals among users who can never exceed the limit", refused);
    CHECK(other == 0, "Part B: %ld unexpected codes", other);
    CHECK(ok == (long)nt * iters, "Part B: %ld of %ld acquires succeeded", ok, (long)nt * iters);
    CHECK(atomic_load(&checker_over_limit) == 0, "Part B: the checker saw a count over the limit");
    CHECK(atomic_load(&checker_reads) > 0, "Part B: the checker never read a count");
    for (int u = 0; u < K_SHARED; u++)
        CHECK(atomic_load(&user_handles[u]) == 0, "Part B: shared-%d ends with %d handles", u,
              atomic_load(&user_handles[u]));
    CHECK(tc_usage("shared") == 0, "Part B: 'shared' used %u at the end", tc_usage("shared"));
    int32_t rc;
    char *json = tc_report(LICENSE_REPORT_JSON, &rc);
    CHECK(json != NULL && strstr(json, "\"holders\": []") != NULL, "Part B: the final report still has holders");
    free(json);
    fprintf(stderr, "test_stress: Part B: %d threads x %d over %d users: %ld ok, %ld refused; checker %ld reads; %.2f s\n",
            nt, iters, K_SHARED, ok, refused, atomic_load(&checker_reads), tc_now() - t0);
}

/* ---- Part C ---- */

static atomic_bool stop_c;
static atomic_int epoch; /* raised by the main thread after each re-init */
static atomic_long c_codes[10]; /* index -code */
static atomic_long c_bad;

static void c_note(int32_t rc, const char *what) {
    if (rc == LICENSE_OK || rc == LICENSE_ERR_NOT_INITIALIZED || rc == LICENSE_ERR_LIMIT_REACHED ||
        rc == LICENSE_ERR_UNKNOWN_SEAT) {
        atomic_fetch_add(&c_codes[-rc], 1);
        return;
    }
    atomic_fetch_add(&c_bad, 1);
    CHECK(0, "Part C: %s returned %d (%s): %s", what, (int)rc, tc_code_name(rc), tc_last_error());
}

static void *part_c_worker(void *p) {
    int id = *(int *)p;
    uint64_t seed = 0xA0761D6478BD642Full ^ (uint64_t)(id + 3) * 0xE7037ED1A0B428DBull;
    license_seat held[HOLD];
    int n_held = 0;
    long i = 0;
    /* one long-held handle, so that some handles outlive a shutdown + init */
    license_seat sticky = 0;
    int sticky_epoch = 0;
    long sticky_until = 0;
    int32_t last_acquire = LICENSE_OK;
    while (!atomic_load(&stop_c)) {
        if (sticky == 0) {
            char su[48];
            snprintf(su, sizeof su, "c%d-sticky-%ld", id, i);
            sticky_epoch = atomic_load(&epoch);
            int32_t rc = license_try_acquire(su, "sess", &sticky);
            c_note(rc, "acquire sticky");
            if (rc != LICENSE_OK)
                sticky = 0;
            sticky_until = i + 50 + (long)(rnd(&seed) % 500);
        } else if (atomic_load(&epoch) != sticky_epoch ||
                   (i >= sticky_until && last_acquire != LICENSE_ERR_NOT_INITIALIZED)) {
            /* after a restart this handle is from the old table: UNKNOWN_SEAT */
            c_note(license_release(sticky), "release sticky");
            sticky = 0;
        }
        const struct kind *k = &KINDS[rnd(&seed) % N_KINDS];
        char user[48];
        snprintf(user, sizeof user, "c%d-%ld", id, i++);
        license_seat h = 0;
        int32_t rc = license_try_acquire(user, k->profiles, &h);
        c_note(rc, "acquire");
        last_acquire = rc;
        if (rc == LICENSE_OK) {
            if (n_held == HOLD) {
                c_note(license_release(held[0]), "release");
                held[0] = held[1];
                n_held = 1;
            }
            held[n_held++] = h;
        }
        if (n_held > 0 && rnd(&seed) % 3 == 0)
            c_note(license_release(held[--n_held]), "release");
        if (rnd(&seed) % 8 == 0) {
            uint32_t used = 0, limit = 0;
            c_note(license_usage(TYPE_NAMES[rnd(&seed) % N_TYPES], &used, &limit), "usage");
        }
        if (tc_quick() || rnd(&seed) % 16 == 0)
            sched_yield(); /* under valgrind, let the main thread's restarts come round */
    }
    while (n_held > 0)
        c_note(license_release(held[--n_held]), "release");
    if (sticky != 0)
        c_note(license_release(sticky), "release sticky");
    return NULL;
}

static void sleep_ms(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

static void part_c(const char *path) {
    double t0 = tc_now();
    int nt = 6;
    int rounds = tc_quick() ? 4 : 8;
    long run_ms = tc_quick() ? 150 : 60;
    pthread_t ts[16], chk;
    int ids[16];
    struct checker_arg ca = {T_POOL, N_TYPES, 1, 1};
    atomic_store(&stop_c, false);
    atomic_store(&checker_over_limit, 0);
    start_checker(&chk, &ca);
    for (int i = 0; i < nt; i++) {
        ids[i] = i;
        tc_spawn(&ts[i], part_c_worker, &ids[i]);
    }
    for (int r = 0; r < rounds; r++) {
        sleep_ms(run_ms);
        /* a handle of the main thread's own (no worker uses 'shared') across the restart */
        license_seat mine = 0;
        CHECK_RC(license_try_acquire("main-across-restart", "shared", &mine), LICENSE_OK);
        license_shutdown();
        CHECK_RC(license_release(mine), LICENSE_ERR_NOT_INITIALIZED);
        sleep_ms(run_ms / 4);
        CHECK_RC(license_init(path), LICENSE_OK);
        atomic_fetch_add(&epoch, 1);
        CHECK_RC(license_release(mine), LICENSE_ERR_UNKNOWN_SEAT);
        CHECK(tc_usage("shared") == 0, "Part C: an old handle's release changed the new table");
    }
    sleep_ms(run_ms);
    atomic_store(&stop_c, true);
    join_all(ts, nt);
    stop_and_join_checker(chk);

    CHECK(atomic_load(&c_bad) == 0, "Part C: %ld calls returned an unexpected code", atomic_load(&c_bad));
    CHECK(atomic_load(&c_codes[0]) > 0, "Part C: no call succeeded");
    CHECK(atomic_load(&checker_over_limit) == 0, "Part C: the checker saw a count over a limit");
    /* every handle was given back (or was from an earlier table): the final table is empty */
    for (int t = 0; t < N_TYPES; t++)
        CHECK(tc_usage(TYPE_NAMES[t]) == 0, "Part C: '%s' used %u at the end", TYPE_NAMES[t],
              tc_usage(TYPE_NAMES[t]));
    int32_t rc;
    char *json = tc_report(LICENSE_REPORT_JSON, &rc);
    CHECK(json != NULL && strstr(json, "\"holders\": []") != NULL, "Part C: the final report still has holders");
    free(json);
    fprintf(stderr,
            "test_stress: Part C: %d threads, %d shutdown/init rounds: OK %ld, NOT_INITIALIZED %ld, "
            "LIMIT_REACHED %ld, UNKNOWN_SEAT %ld; %.2f s\n",
            nt, rounds, atomic_load(&c_codes[0]), atomic_load(&c_codes[-LICENSE_ERR_NOT_INITIALIZED]),
            atomic_load(&c_codes[-LICENSE_ERR_LIMIT_REACHED]), atomic_load(&c_codes[-LICENSE_ERR_UNKNOWN_SEAT]),
            tc_now() - t0);
}

/* ---- Part D: concurrent release of one handle ---- */

#define D_THREADS 4

static pthread_barrier_t d_start, d_done;
static license_seat d_handle;
static atomic_bool d_quit;
static atomic_int d_ok, d_unknown, d_other;

static void *part_d_worker(void *p) {
    (void)p;
    for (;;) {
        pthread_barrier_wait(&d_start);
        if (atomic_load(&d_quit))
            break;
        int32_t rc = license_release(d_handle);
        if (rc == LICENSE_OK)
            atomic_fetch_add(&d_ok, 1);
        else if (rc == LICENSE_ERR_UNKNOWN_SEAT)
            atomic_fetch_add(&d_unknown, 1);
        else
            atomic_fetch_add(&d_other, 1);
        pthread_barrier_wait(&d_done);
    }
    return NULL;
}

static void part_d(void) {
    double t0 = tc_now();
    int rounds = tc_quick() ? 100 : 3000;
    pthread_t ts[D_THREADS];
    pthread_barrier_init(&d_start, NULL, D_THREADS + 1);
    pthread_barrier_init(&d_done, NULL, D_THREADS + 1);
    atomic_store(&d_quit, false);
    for (int i = 0; i < D_THREADS; i++) {
        tc_spawn(&ts[i], part_d_worker, NULL);
    }
    int bad_rounds = 0;
    for (int r = 0; r < rounds; r++) {
        char user[32];
        snprintf(user, sizeof user, "dup-%d", r);
        license_seat h1 = 0, h2 = 0;
        int32_t a1 = license_try_acquire(user, "op", &h1);
        int32_t a2 = license_try_acquire(user, "op", &h2);
        if (a1 != LICENSE_OK || a2 != LICENSE_OK) {
            CHECK(0, "Part D: acquire returned %s / %s", tc_code_name(a1), tc_code_name(a2));
            break;
        }
        atomic_store(&d_ok, 0);
        atomic_store(&d_unknown, 0);
        atomic_store(&d_other, 0);
        d_handle = h1;
        pthread_barrier_wait(&d_start); /* all threads release h1 at once */
        pthread_barrier_wait(&d_done);
        uint32_t agent = tc_usage("agent"), crm = tc_usage("crm");
        int ok = atomic_load(&d_ok), unknown = atomic_load(&d_unknown), other = atomic_load(&d_other);
        if (ok != 1 || unknown != D_THREADS - 1 || other != 0 || agent != 1 || crm != 1) {
            if (bad_rounds++ < 3)
                CHECK(0, "Part D round %d: %d OK, %d UNKNOWN_SEAT, %d other; agent %u crm %u (h2 still holds 1)", r,
                      ok, unknown, other, agent, crm);
        }
        CHECK_RC(license_release(h2), LICENSE_OK);
    }
    atomic_store(&d_quit, true);
    pthread_barrier_wait(&d_start);
    join_all(ts, D_THREADS);
    pthread_barrier_destroy(&d_start);
    pthread_barrier_destroy(&d_done);
    CHECK(bad_rounds == 0, "Part D: %d of %d rounds broke \"exactly one release gets LICENSE_OK\"", bad_rounds, rounds);
    CHECK(tc_usage("agent") == 0 && tc_usage("crm") == 0, "Part D: seats left at the end");
    fprintf(stderr, "test_stress: Part D: %d rounds of %d threads releasing one handle; %.2f s\n", rounds, D_THREADS,
            tc_now() - t0);
}

/* ---- Part E: concurrent init ---- */

#define E_THREADS 6

static pthread_barrier_t e_start;
static const char *e_path;

static void *part_e_worker(void *p) {
    int32_t *out = p;
    pthread_barrier_wait(&e_start);
    *out = license_init(e_path);
    return NULL;
}

static void part_e(const char *path) {
    double t0 = tc_now();
    int rounds = tc_quick() ? 10 : 100;
    int bad = 0;
    e_path = path;
    license_shutdown();
    for (int r = 0; r < rounds; r++) {
        pthread_t ts[E_THREADS];
        int32_t codes[E_THREADS];
        pthread_barrier_init(&e_start, NULL, E_THREADS);
        for (int i = 0; i < E_THREADS; i++) {
            tc_spawn(&ts[i], part_e_worker, &codes[i]);
        }
        join_all(ts, E_THREADS);
        pthread_barrier_destroy(&e_start);
        int ok = 0, already = 0;
        for (int i = 0; i < E_THREADS; i++) {
            if (codes[i] == LICENSE_OK)
                ok++;
            else if (codes[i] == LICENSE_ERR_ALREADY_INITIALIZED)
                already++;
        }
        if ((ok != 1 || already != E_THREADS - 1) && bad++ < 3)
            CHECK(0, "Part E round %d: %d inits succeeded, %d ALREADY_INITIALIZED of %d", r, ok, already, E_THREADS);
        CHECK(tc_usage("pool") == 0, "Part E: a fresh table is not empty");
        if (r + 1 < rounds)
            license_shutdown();
    }
    CHECK(bad == 0, "Part E: %d of %d rounds did not have exactly one successful init", bad, rounds);
    fprintf(stderr, "test_stress: Part E: %d rounds of %d concurrent inits; %.2f s\n", rounds, E_THREADS,
            tc_now() - t0);
}

/* ---- Part F: a refused bundle's rollback must not refuse others ---- */

#define F_SPOILERS 2
#define F_VICTIMS 1

static atomic_bool f_stop;
static atomic_long f_spoiler_calls;

struct f_victim {
    int id;
    long max_iters;
    long attempts, ok, refused, release_failures, other;
    char first[256];
};

static void *part_f_spoiler(void *p) {
    int id = *(int *)p;
    long i = 0;
    while (!atomic_load(&f_stop)) {
        char user[48];
        snprintf(user, sizeof user, "spoiler%d-%ld", id, i++);
        license_seat h = SEAT_NONE;
        /* 'taken' is full (its seat is held): always refused, after the bundle has
         * tentatively taken a 'pool' seat (pool comes first in the config) */
        int32_t rc = license_try_acquire(user, "pool,taken", &h);
        if (rc != LICENSE_ERR_LIMIT_REACHED)
            CHECK(rc == LICENSE_ERR_LIMIT_REACHED, "Part F: pool,taken returned %s", tc_code_name(rc));
        atomic_fetch_add(&f_spoiler_calls, 1);
        if (tc_quick())
            sched_yield(); /* under valgrind's one-thread-at-a-time, leave the victims room */
    }
    return NULL;
}

static void *part_f_victim(void *p) {
    struct f_victim *v = p;
    char user[32];
    snprintf(user, sizeof user, "f-victim-%d", v->id);
    for (long i = 0; i < v->max_iters && !atomic_load(&f_stop); i++) {
        v->attempts++;
        license_seat h = 0;
        int32_t rc = license_try_acquire(user, "pool", &h);
        if (rc == LICENSE_OK) {
            v->ok++;
            if (license_release(h) != LICENSE_OK)
                v->release_failures++;
        } else if (rc == LICENSE_ERR_LIMIT_REACHED) {
            if (v->refused++ == 0)
                tc_last_error_into(v->first, sizeof v->first);
        } else {
            v->other++;
        }
    }
    return NULL;
}

static void part_f(void) {
    double t0 = tc_now();
    /* bounded by count and by time: the spoilers can starve the victims on few cores */
    long n = tc_quick() ? 1000 : 200000;
    double budget_s = tc_quick() ? 2.0 : 1.0;
    pthread_t spoilers[F_SPOILERS], victims[F_VICTIMS];
    int ids[F_SPOILERS];
    struct f_victim vs[F_VICTIMS];
    CHECK(tc_usage("pool") == 0, "Part F: pool in use at start");
    /* one holder leaves exactly one free 'pool' seat per victim: a victim can only be
     * refused by a seat that nobody holds */
    license_seat holders[3] = {0, 0, 0};
    int n_holders = (int)limits[T_POOL] - F_VICTIMS;
    CHECK(n_holders >= 0 && n_holders <= 3, "Part F: pool limit %u", limits[T_POOL]);
    for (int i = 0; i < n_holders && i < 3; i++) {
        char hu[32];
        snprintf(hu, sizeof hu, "f-holder-%d", i);
        CHECK_RC(license_try_acquire(hu, "pool", &holders[i]), LICENSE_OK);
    }
    CHECK(tc_usage("pool") + F_VICTIMS == limits[T_POOL], "Part F: pool used %u of %u", tc_usage("pool"),
          limits[T_POOL]);
    license_seat taken_holder = 0;
    CHECK_RC(license_try_acquire("f-taken-holder", "taken", &taken_holder), LICENSE_OK);
    atomic_store(&f_stop, false);
    for (int i = 0; i < F_SPOILERS; i++) {
        ids[i] = i;
        tc_spawn(&spoilers[i], part_f_spoiler, &ids[i]);
    }
    for (int i = 0; i < F_VICTIMS; i++) {
        memset(&vs[i], 0, sizeof vs[i]);
        vs[i].id = i;
        vs[i].max_iters = n;
        tc_spawn(&victims[i], part_f_victim, &vs[i]);
    }
    while (tc_now() - t0 < budget_s) {
        int done = 1;
        for (int i = 0; i < F_VICTIMS; i++)
            if (vs[i].attempts < n) /* racy read, only to end early */
                done = 0;
        if (done)
            break;
        sleep_ms(10);
    }
    atomic_store(&f_stop, true);
    join_all(victims, F_VICTIMS);
    join_all(spoilers, F_SPOILERS);

    long attempts = 0, ok = 0, refused = 0, release_failures = 0, other = 0;
    const char *first = "";
    for (int i = 0; i < F_VICTIMS; i++) {
        attempts += vs[i].attempts;
        ok += vs[i].ok;
        refused += vs[i].refused;
        release_failures += vs[i].release_failures;
        other += vs[i].other;
        if (vs[i].refused > 0 && first[0] == '\0')
            first = vs[i].first;
    }
    CHECK(release_failures == 0, "Part F: %ld releases failed", release_failures);
    CHECK(other == 0, "Part F: %ld acquires returned a code other than OK or LIMIT_REACHED", other);
    CHECK(ok + refused == attempts && attempts > 0, "Part F: %ld ok + %ld refused of %ld", ok, refused, attempts);
    for (int i = 0; i < n_holders && i < 3; i++)
        CHECK_RC(license_release(holders[i]), LICENSE_OK);
    CHECK_RC(license_release(taken_holder), LICENSE_OK);
    CHECK(tc_usage("pool") == 0 && tc_usage("taken") == 0, "Part F: pool or taken in use at the end");
    fprintf(stderr, "test_stress: Part F: %ld acquires of a free 'pool' seat beside %ld refused 'pool,taken' "
                    "requests: %ld refused; %.2f s\n",
            attempts, atomic_load(&f_spoiler_calls), refused, tc_now() - t0);
    /* Documented: "a seat that a concurrent bundle holds for an instant and then gives
     * back never causes a refusal". */
    CHECK(refused == 0,
          "%ld of %ld requests for 'pool' were refused although a seat was free for each; first: \"%s\". "
          "A bundle refused by a later type ('taken', 1/1) briefly held a 'pool' seat before giving it back",
          refused, attempts, first);
}

int main(void) {
    double t0 = tc_now();
    const char *path = tc_write_config(CONFIG);
    CHECK_RC(license_init(path), LICENSE_OK);
    for (int t = 0; t < N_TYPES; t++) {
        uint32_t used = 1, limit = 0;
        CHECK_RC(license_usage(TYPE_NAMES[t], &used, &limit), LICENSE_OK);
        CHECK(used == 0, "'%s' used %u at start", TYPE_NAMES[t], used);
        limits[t] = limit;
    }
    CHECK(limits[T_POOL] == 3 && limits[T_SESS] == 3 && limits[T_SHARED] == K_SHARED,
          "config limits pool %u sess %u shared %u", limits[T_POOL], limits[T_SESS], limits[T_SHARED]);

    part_a();
    part_b();
    part_c(path);
    part_d();
    part_e(path);
    part_f();

    license_shutdown();
    fprintf(stderr, "test_stress: %s mode, %.2f s in all\n", tc_quick() ? "quick" : "full", tc_now() - t0);
    return tc_summary("test_stress");
}
