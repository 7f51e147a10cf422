/*
 * test_policy: the entitlement-policy C API (reservations, caps, tenants, run-time
 * limits, emergency seats, expiry, signed licenses), end to end through the header.
 *
 *  Phase 1, reservations and caps under contention: callcenter has 6 seats, profile
 *    "support" reserves 2 of them, "sales" is capped at 3, "backoffice" has neither.
 *    8 pthreads acquire round-robin over the three profiles, each holding at most 2
 *    handles for a few iterations (the oldest goes first), with a new user name per
 *    acquire. Shadow counters per profile (C11 atomics: raised after a successful
 *    acquire, lowered before the release, so they never count more than the library
 *    holds) are checked at every success: all <= 6, sales <= 3, sales + backoffice <= 4
 *    (support's 2 reserved seats never go to non-members). Every refusal's reason must
 *    fit the requester (RESERVED only for non-members, naming "support"; CAPPED only
 *    for sales, naming "sales" with the cap's limit 3; FULL only at 6/6). RESERVED and
 *    CAPPED refusals must both have happened and the shadow total must have reached 6
 *    (the threads run on, up to 20 times the planned acquires, until they have). At the
 *    end nothing is held.
 *  Phase 2, the same config one step at a time: the refusal texts of license_last_error
 *    ("reserved for profile 'support'", "profile 'sales' is capped at 3 'callcenter'
 *    seats"), all-or-nothing, members beyond their reservation, the report's pools, and
 *    FULL (not RESERVED) for a non-member once all 6 seats are taken.
 *  Phase 3, tenants and run-time limits: license_request.tenant routes to a tenant's
 *    pool (NULL or "" the default one); license_usage_in per tenant; release by id
 *    alone; LICENSE_ERR_UNKNOWN_TENANT;
 *    license_set_limit for a declared tenant, a new one and the default tenant, with a
 *    LICENSE_EVENT_LIMIT_CHANGED event naming the tenant; license_report_tenant; a
 *    caller built with the header before `tenant` existed is served by the default pool.
 *  Phase 4, emergency seats with a state_dir: the extra seats open at once, a second
 *    window is refused while one is open, the report shows it, and a restart (shutdown
 *    and init on the same config) keeps it through the state file. The window's end
 *    (one hour) cannot be waited for from C; tests/conformance/policy.rs covers the
 *    close, newest holders first, with an injected clock. Without [emergency],
 *    activation is refused.
 *  Phase 5, expiry: a type past its valid_until refuses logins with LICENSE_ERR_EXPIRED
 *    naming the type and the date, other types go on; with on_expiry = "revoke" the
 *    report shows the type EXPIRED.
 *  Phase 6, a vendor-signed license made with the `seatgate` CLI (path in the
 *    SEATGATE_CLI environment variable, set by the Makefile; the phase fails without
 *    it): it caps the config's limits, a type it does not list gets 0, a tampered copy
 *    or a license signed by an untrusted key makes license_init fail with
 *    LICENSE_ERR_LICENSE_FILE, and license_trust_key refuses malformed keys.
 *  Phase 7, NULL and bad arguments for every new function, initialized or not.
 *
 * Temporary files (state dirs, keys, licenses) live under one mkdtemp directory that
 * the test removes at the end; config files come from tc_write_config (removed at
 * exit). SEATGATE_TEST_QUICK=1 (valgrind) cuts the stress iterations.
 */
#include "common.h"

#include <dirent.h>
#include <fcntl.h>
#include <ftw.h>
#include <sched.h>
#include <spawn.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/stat.h>
#include <sys/wait.h>

extern char **environ;

/* In hot loops, as test_stress does: a failure is counted and printed, a pass is not,
 * so the pass count does not depend on how the scheduler interleaved the threads. */
#define CHECK_LOOP(cond, ...)                                                  \
    do {                                                                       \
        if (!(cond))                                                           \
            CHECK(cond, __VA_ARGS__);                                          \
    } while (0)

/* CHECK that `text` contains `needle`, printing the text on failure. */
#define CHECK_CONTAINS(text, needle, what)                                     \
    do {                                                                       \
        const char *cc_text_ = (text);                                         \
        CHECK(cc_text_ != NULL && strstr(cc_text_, (needle)) != NULL, "%s does not contain \"%s\": \"%s\"", (what), \
              (needle), cc_text_ ? cc_text_ : "(null)");                       \
    } while (0)

/* ---- helpers ---- */

static char tmp_dir[64]; /* the mkdtemp directory; removed at the end */

static void init_or_die(const char *path, const char *phase) {
    int32_t rc = license_init(path);
    CHECK(rc == LICENSE_OK, "%s: license_init returned %s: %s", phase, tc_code_name(rc), tc_last_error());
    if (rc != LICENSE_OK) {
        tc_summary("test_policy");
        exit(1);
    }
}

/* Seats used and limit of a type in a tenant's pool (NULL: the default tenant); both
 * UINT32_MAX when license_usage_in fails. */
struct usage {
    uint32_t used, limit;
};
static struct usage usage_in(const char *tenant, const char *type) {
    struct usage u = {UINT32_MAX, UINT32_MAX};
    if (license_usage_in(tenant, type, &u.used, &u.limit) != LICENSE_OK)
        u.used = u.limit = UINT32_MAX;
    return u;
}

static struct usage usage_of(const char *type) {
    struct usage u = {UINT32_MAX, UINT32_MAX};
    if (license_usage(type, &u.used, &u.limit) != LICENSE_OK)
        u.used = u.limit = UINT32_MAX;
    return u;
}

#define CHECK_USAGE(tenant, type, want_used, want_limit)                       \
    do {                                                                       \
        const char *cu_tenant_ = (tenant);                                     \
        struct usage cu_ = usage_in(cu_tenant_, (type));                       \
        CHECK(cu_.used == (want_used) && cu_.limit == (want_limit),            \
              "usage of '%s' in tenant %s: %u/%u, expected %u/%u (last error \"%s\")", (type), \
              cu_tenant_ ? cu_tenant_ : "(default)", cu_.used, cu_.limit, (unsigned)(want_used), (unsigned)(want_limit), \
              tc_last_error());                                                \
    } while (0)

static license_seat must_acquire_in(const char *tenant, const char *user, const char *profiles) {
    license_seat seat = 0;
    license_denial d;
    int32_t rc = tc_acquire_in(tenant, user, profiles, &seat, &d);
    CHECK(rc == LICENSE_OK && seat != 0, "acquire(tenant %s, %s, %s) returned %s; last error: \"%s\"",
          tenant ? tenant : "(default)", user, profiles, tc_code_name(rc), tc_last_error());
    return rc == LICENSE_OK ? seat : 0;
}

static license_seat must_acquire(const char *user, const char *profiles) {
    return must_acquire_in(NULL, user, profiles);
}

/* Releases a handle that an earlier check took; 0 (a failed acquire, already counted
 * as a failure) is skipped so one failure does not cascade into another. */
static void release_held(license_seat seat) {
    if (seat != 0)
        CHECK_RC(license_release(seat), LICENSE_OK);
}

/* One tenant's whole report in a malloc'd buffer (caller frees), or NULL with *rc. */
static char *tenant_report(const char *tenant, uint32_t format, int32_t *rc) {
    size_t extra = 1024;
    for (int attempt = 0; attempt < 8; attempt++, extra *= 2) {
        size_t needed = 0;
        int32_t r = license_report_tenant(tenant, format, 0, 0, NULL, 0, &needed);
        if (r != LICENSE_OK) {
            *rc = r;
            return NULL;
        }
        size_t len = needed + extra;
        char *buf = malloc(len);
        if (buf == NULL) {
            *rc = LICENSE_ERR_INTERNAL;
            return NULL;
        }
        r = license_report_tenant(tenant, format, 0, 0, buf, len, &needed);
        if (r == LICENSE_OK) {
            *rc = r;
            return buf;
        }
        free(buf);
        if (r != LICENSE_ERR_BUFFER_TOO_SMALL) {
            *rc = r;
            return NULL;
        }
    }
    *rc = LICENSE_ERR_BUFFER_TOO_SMALL;
    return NULL;
}

/* The default tenant's text report, checked for `needle`. */
static void check_report_contains(const char *needle, const char *when) {
    int32_t rc = LICENSE_OK;
    char *text = tc_report(LICENSE_REPORT_TEXT, &rc);
    CHECK(text != NULL, "%s: license_report returned %s", when, tc_code_name(rc));
    if (text != NULL) {
        CHECK(strstr(text, needle) != NULL, "%s: the report does not contain \"%s\":\n%s", when, needle, text);
        free(text);
    }
}

/* ---- files under the mkdtemp directory ---- */

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
    (void)st, (void)flag, (void)ftw;
    if (remove(path) != 0)
        fprintf(stderr, "test_policy: cannot remove %s: %s\n", path, strerror(errno));
    return 0;
}

static void remove_tmp_dir(void) {
    if (tmp_dir[0] != '\0' && access(tmp_dir, F_OK) == 0)
        nftw(tmp_dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* The directory is removed at the end of main and, should the test stop early, at exit. */
static void make_tmp_dir(void) {
    snprintf(tmp_dir, sizeof tmp_dir, "/tmp/seatgate-policy-XXXXXX");
    if (mkdtemp(tmp_dir) == NULL) {
        fprintf(stderr, "test_policy: mkdtemp: %s\n", strerror(errno));
        exit(2);
    }
    atexit(remove_tmp_dir);
}

/* tmp_dir/name into `out`. */
static const char *tmp_path(char *out, size_t len, const char *name) {
    int n = snprintf(out, len, "%s/%s", tmp_dir, name);
    if (n < 0 || (size_t)n >= len) {
        fprintf(stderr, "test_policy: path too long: %s/%s\n", tmp_dir, name);
        exit(2);
    }
    return out;
}

static bool write_file(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    if (f == NULL)
        return false;
    bool ok = fputs(text, f) >= 0;
    return fclose(f) == 0 && ok;
}

/* The whole file in a malloc'd, NUL-terminated buffer, or NULL. */
static char *read_file(const char *path) {
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return NULL;
    size_t cap = 4096, len = 0;
    char *buf = malloc(cap);
    while (buf != NULL) {
        size_t n = fread(buf + len, 1, cap - len - 1, f);
        len += n;
        if (n == 0)
            break;
        if (len + 1 == cap) {
            char *bigger = realloc(buf, cap * 2);
            if (bigger == NULL) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = bigger;
            cap *= 2;
        }
    }
    fclose(f);
    if (buf != NULL)
        buf[len] = '\0';
    return buf;
}

/* ==== Phase 1: reservations and caps under contention ==== */

#define CC_LIMIT 6
#define SUPPORT_RESERVE 2
#define SALES_CAP 3

static const char TEAMS_CONFIG[] = "[licenses.users]\n"
                                   "limit = 1000\n"
                                   "\n"
                                   "[licenses.callcenter]\n"
                                   "limit = 6\n" /* CC_LIMIT */
                                   "\n"
                                   "[profiles.support]\n"
                                   "consumes = [\"users\", \"callcenter\"]\n"
                                   "reserve = { callcenter = 2 }\n" /* SUPPORT_RESERVE */
                                   "\n"
                                   "[profiles.sales]\n"
                                   "consumes = [\"users\", \"callcenter\"]\n"
                                   "cap = { callcenter = 3 }\n" /* SALES_CAP */
                                   "\n"
                                   "[profiles.backoffice]\n"
                                   "consumes = [\"users\", \"callcenter\"]\n";

enum { P_SUPPORT, P_SALES, P_BACKOFFICE, N_PROFILES };
static const char *const PROFILE_NAMES[N_PROFILES] = {"support", "sales", "backoffice"};

#define N_THREADS 8
#define N_REASONS 8 /* license_denial_reason values, with room */

static atomic_int shadow[N_PROFILES];
static atomic_int max_total_seen;
static atomic_long attempts, successes, refusals[N_REASONS], other_codes, violations;
static atomic_long reserved_by_profile[N_PROFILES], capped_by_profile[N_PROFILES];
static atomic_bool go;
static int iterations, max_iterations;

/* What the stress must have seen: both kinds of policy refusal and a full type. */
static bool coverage_reached(void) {
    return atomic_load(&refusals[LICENSE_DENIAL_RESERVED]) > 0 && atomic_load(&refusals[LICENSE_DENIAL_CAPPED]) > 0 &&
           atomic_load(&max_total_seen) == CC_LIMIT;
}

/* Each thread holds at most 2 handles, each for at most this many of its iterations
 * (the oldest goes first). Without the age limit, threads that hold one seat each and
 * are refused from then on would keep the type full forever: every later refusal
 * would be FULL, and the reservation and the cap would never be tested. */
#define SEAT_LIFE 4

struct held_seat {
    int profile;
    license_seat seat;
    int since; /* the iteration that took it */
};

static void release_oldest(struct held_seat *held, int *n_held) {
    struct held_seat oldest = held[0];
    held[0] = held[1];
    (*n_held)--;
    /* Lowered before the release: the shadow never counts a seat the library freed. */
    atomic_fetch_sub(&shadow[oldest.profile], 1);
    int32_t rc = license_release(oldest.seat);
    CHECK_LOOP(rc == LICENSE_OK, "release of a held %s seat returned %s: %s", PROFILE_NAMES[oldest.profile],
               tc_code_name(rc), tc_last_error());
}

static void check_refusal(int p, const license_denial *d) {
    uint32_t reason = d->reason;
    if (reason < N_REASONS)
        atomic_fetch_add(&refusals[reason], 1);
    CHECK_LOOP(strcmp(d->license_type, "callcenter") == 0, "a %s request was refused by '%s', not callcenter",
               PROFILE_NAMES[p], d->license_type);
    switch (reason) {
    case LICENSE_DENIAL_RESERVED:
        atomic_fetch_add(&reserved_by_profile[p], 1);
        CHECK_LOOP(p != P_SUPPORT, "a support member was refused as RESERVED (%u/%u, profile \"%s\")", d->used,
                   d->limit, d->profile);
        CHECK_LOOP(strcmp(d->profile, "support") == 0, "a RESERVED refusal names profile \"%s\", not \"support\"",
                   d->profile);
        /* A reservation or cap refusal reads `used` after the refusal, so concurrent
         * logins and logouts may have moved it: the exact counts are checked in
         * phase 2, alone. */
        CHECK_LOOP(d->used <= CC_LIMIT && d->limit == CC_LIMIT, "RESERVED at %u/%u, expected a limit of %d",
                   d->used, d->limit, CC_LIMIT);
        break;
    case LICENSE_DENIAL_CAPPED:
        atomic_fetch_add(&capped_by_profile[p], 1);
        CHECK_LOOP(p == P_SALES, "a %s request was refused as CAPPED (profile \"%s\")", PROFILE_NAMES[p], d->profile);
        CHECK_LOOP(strcmp(d->profile, "sales") == 0, "a CAPPED refusal names profile \"%s\", not \"sales\"",
                   d->profile);
        CHECK_LOOP(d->used <= SALES_CAP && d->limit == SALES_CAP, "CAPPED at %u/%u, expected the cap's limit %d",
                   d->used, d->limit, SALES_CAP);
        break;
    case LICENSE_DENIAL_FULL: /* the type's own count, taken when it refused */
        CHECK_LOOP(d->used == CC_LIMIT && d->limit == CC_LIMIT, "FULL at %u/%u, expected %d/%d", d->used, d->limit,
                   CC_LIMIT, CC_LIMIT);
        break;
    default:
        CHECK_LOOP(false, "a %s request was refused with reason %u (%u/%u)", PROFILE_NAMES[p], reason, d->used,
                   d->limit);
    }
}

static void *stress_thread(void *arg) {
    int t = (int)(intptr_t)arg;
    struct held_seat held[2];
    int n_held = 0;
    while (!atomic_load(&go))
        sched_yield();
    /* At least `iterations` acquires; then on until the coverage is reached, which the
     * scheduler decides: the checks in phase1_stress fail if it never is. */
    for (int i = 0; i < max_iterations && (i < iterations || !coverage_reached()); i++) {
        while (n_held > 0 && (n_held == 2 || i - held[0].since >= SEAT_LIFE))
            release_oldest(held, &n_held);
        int p = (t + i) % N_PROFILES; /* round-robin over the profiles */
        char user[32];
        snprintf(user, sizeof user, "u%d-%d", t, i);
        license_seat seat = 0;
        license_denial d;
        int32_t rc = tc_acquire_ex(user, PROFILE_NAMES[p], &seat, &d);
        if (rc == LICENSE_OK) {
            atomic_fetch_add(&successes, 1);
            int mine = atomic_fetch_add(&shadow[p], 1) + 1;
            int support = atomic_load(&shadow[P_SUPPORT]);
            int sales = atomic_load(&shadow[P_SALES]);
            int backoffice = atomic_load(&shadow[P_BACKOFFICE]);
            int total = support + sales + backoffice;
            if (total > CC_LIMIT || (p == P_SALES && mine > SALES_CAP) || sales + backoffice > CC_LIMIT - SUPPORT_RESERVE)
                atomic_fetch_add(&violations, 1);
            CHECK_LOOP(total <= CC_LIMIT, "callcenter holders: %d (support %d, sales %d, backoffice %d) > limit %d",
                       total, support, sales, backoffice, CC_LIMIT);
            CHECK_LOOP(p != P_SALES || mine <= SALES_CAP, "sales holds %d callcenter seats, over its cap of %d", mine,
                       SALES_CAP);
            CHECK_LOOP(sales + backoffice <= CC_LIMIT - SUPPORT_RESERVE,
                       "non-members hold %d (sales %d + backoffice %d): support's %d reserved seats were taken",
                       sales + backoffice, sales, backoffice, SUPPORT_RESERVE);
            int m = atomic_load(&max_total_seen);
            while (total > m && !atomic_compare_exchange_weak(&max_total_seen, &m, total)) {
            }
            held[n_held].profile = p;
            held[n_held].seat = seat;
            held[n_held].since = i;
            n_held++;
        } else if (rc == LICENSE_ERR_LIMIT_REACHED) {
            check_refusal(p, &d);
        } else {
            atomic_fetch_add(&other_codes, 1);
            CHECK_LOOP(false, "acquire(%s, %s) returned %s: %s", user, PROFILE_NAMES[p], tc_code_name(rc),
                       tc_last_error());
        }
        atomic_fetch_add(&attempts, 1);
        /* Let another thread run: on a machine with fewer cores than threads, a thread
         * would otherwise run its whole loop alone in one time slice. */
        sched_yield();
    }
    while (n_held > 0)
        release_oldest(held, &n_held);
    return NULL;
}

static void phase1_stress(void) {
    iterations = tc_quick() ? 300 : 4000;
    max_iterations = 20 * iterations;
    init_or_die(tc_write_config(TEAMS_CONFIG), "phase 1");
    pthread_t threads[N_THREADS];
    for (int t = 0; t < N_THREADS; t++)
        tc_spawn(&threads[t], stress_thread, (void *)(intptr_t)t);
    atomic_store(&go, true);
    for (int t = 0; t < N_THREADS; t++)
        pthread_join(threads[t], NULL);

    long ok = atomic_load(&successes);
    fprintf(stderr,
            "test_policy: phase 1: %d threads, %ld acquires: %ld taken, refused %ld FULL, %ld RESERVED, %ld CAPPED; "
            "max holders seen %d\n",
            N_THREADS, atomic_load(&attempts), ok, atomic_load(&refusals[LICENSE_DENIAL_FULL]),
            atomic_load(&refusals[LICENSE_DENIAL_RESERVED]), atomic_load(&refusals[LICENSE_DENIAL_CAPPED]),
            atomic_load(&max_total_seen));
    CHECK(ok > 0, "no acquire succeeded in the stress");
    CHECK(atomic_load(&violations) == 0, "%ld successes broke the limit, the cap or the reservation",
          atomic_load(&violations));
    CHECK(atomic_load(&other_codes) == 0, "%ld acquires returned neither OK nor LIMIT_REACHED",
          atomic_load(&other_codes));
    CHECK(atomic_load(&refusals[LICENSE_DENIAL_RESERVED]) > 0, "no refusal was RESERVED: the reservation never bit");
    CHECK(atomic_load(&refusals[LICENSE_DENIAL_CAPPED]) > 0, "no refusal was CAPPED: the cap never bit");
    CHECK(atomic_load(&reserved_by_profile[P_SUPPORT]) == 0 && atomic_load(&capped_by_profile[P_SUPPORT]) == 0 &&
              atomic_load(&capped_by_profile[P_BACKOFFICE]) == 0,
          "RESERVED/CAPPED refusals went to the wrong profiles (support %ld/%ld, backoffice capped %ld)",
          atomic_load(&reserved_by_profile[P_SUPPORT]), atomic_load(&capped_by_profile[P_SUPPORT]),
          atomic_load(&capped_by_profile[P_BACKOFFICE]));
    CHECK(atomic_load(&max_total_seen) == CC_LIMIT, "the most callcenter holders seen at once was %d, not %d",
          atomic_load(&max_total_seen), CC_LIMIT);
    for (int p = 0; p < N_PROFILES; p++)
        CHECK(atomic_load(&shadow[p]) == 0, "shadow count of %s ended at %d", PROFILE_NAMES[p],
              atomic_load(&shadow[p]));
    struct usage cc = usage_of("callcenter"), users = usage_of("users");
    CHECK(cc.used == 0 && cc.limit == CC_LIMIT, "callcenter after the stress: %u/%u, expected 0/%d", cc.used,
          cc.limit, CC_LIMIT);
    CHECK(users.used == 0, "users after the stress: %u used, expected 0", users.used);
    license_shutdown();
}

/* ==== Phase 2: refusal texts, one step at a time ==== */

/* Every seat is taken, the reserved ones by support itself: nothing is free, so a
 * non-member is refused because the type is full. (The header: RESERVED means "the
 * free seats of the type are reserved for other profiles"; FULL "every seat of the
 * type is taken".) */
static void check_nonmember_at_full(const char *holders) {
    license_seat x = 0;
    license_denial d;
    CHECK_RC(tc_acquire_ex("bx", "backoffice", &x, &d), LICENSE_ERR_LIMIT_REACHED);
    CHECK(d.reason == LICENSE_DENIAL_FULL && d.used == CC_LIMIT && d.limit == CC_LIMIT && d.profile[0] == '\0',
          "a non-member at 6/6 (%s): reason %u %u/%u profile \"%s\", expected FULL 6/6 and no profile; last error "
          "\"%s\"", holders, d.reason, d.used, d.limit, d.profile, tc_last_error());
    CHECK(strstr(tc_last_error(), "reserved") == NULL,
          "a non-member at 6/6 (%s) is told the seats left are reserved, but none is left: \"%s\"", holders,
          tc_last_error());
}

static void phase2_refusal_texts(void) {
    init_or_die(tc_write_config(TEAMS_CONFIG), "phase 2");
    license_seat b[4];
    for (int i = 0; i < 4; i++) {
        char user[16];
        snprintf(user, sizeof user, "b%d", i + 1);
        b[i] = must_acquire(user, "backoffice");
    }
    /* 4 of 6 taken, the 2 free ones are support's. */
    license_seat x = 0;
    license_denial d;
    CHECK_RC(tc_acquire_ex("b5", "backoffice", &x, &d), LICENSE_ERR_LIMIT_REACHED);
    CHECK(d.reason == LICENSE_DENIAL_RESERVED && strcmp(d.license_type, "callcenter") == 0 &&
              strcmp(d.profile, "support") == 0 && d.used == 4 && d.limit == CC_LIMIT,
          "denial: '%s' %u/%u reason %u profile \"%s\"", d.license_type, d.used, d.limit, d.reason, d.profile);
    CHECK_CONTAINS(tc_last_error(), "reserved for profile 'support'", "the RESERVED refusal's last error");
    CHECK_CONTAINS(tc_last_error(), "'callcenter'", "the RESERVED refusal's last error");
    CHECK(usage_of("users").used == 4, "the refused bundle kept its users seat (all or nothing): %u used",
          usage_of("users").used);
    CHECK_RC(tc_acquire_ex("s0", "sales", &x, &d), LICENSE_ERR_LIMIT_REACHED);
    CHECK(d.reason == LICENSE_DENIAL_RESERVED && strcmp(d.profile, "support") == 0,
          "a sales member (not a support member) refused with reason %u profile \"%s\"", d.reason, d.profile);
    for (int i = 0; i < 4; i++)
        release_held(b[i]);

    /* Sales up to its cap; the 4th sales login is refused although seats are free. */
    license_seat s[3] = {must_acquire("s1", "sales"), must_acquire("s2", "sales"), must_acquire("s3", "sales")};
    CHECK_RC(tc_acquire_ex("s4", "sales", &x, &d), LICENSE_ERR_LIMIT_REACHED);
    CHECK(d.reason == LICENSE_DENIAL_CAPPED && strcmp(d.license_type, "callcenter") == 0 &&
              strcmp(d.profile, "sales") == 0 && d.used == SALES_CAP && d.limit == SALES_CAP,
          "denial: '%s' %u/%u reason %u profile \"%s\"", d.license_type, d.used, d.limit, d.reason, d.profile);
    CHECK_CONTAINS(tc_last_error(), "profile 'sales' is capped at 3 'callcenter' seats",
                   "the CAPPED refusal's last error");
    check_report_contains("sales capped: 3/3", "sales at its cap");
    /* Others go on: backoffice takes the last unreserved seat and support its 2
     * reserved ones (6/6); then even a support member is refused, as FULL. */
    license_seat bo = must_acquire("b1", "backoffice");
    license_seat sup[2] = {must_acquire("p1", "support"), must_acquire("p2", "support")};
    CHECK(usage_of("callcenter").used == CC_LIMIT, "callcenter used %u, expected %d", usage_of("callcenter").used,
          CC_LIMIT);
    check_report_contains("reserved for support: 2/2", "support holding its reservation");
    CHECK_RC(tc_acquire_ex("p3", "support", &x, &d), LICENSE_ERR_LIMIT_REACHED);
    CHECK(d.reason == LICENSE_DENIAL_FULL && d.used == CC_LIMIT && d.limit == CC_LIMIT,
          "a support member at 6/6: reason %u %u/%u, expected FULL 6/6", d.reason, d.used, d.limit);
    check_nonmember_at_full("support 2, sales 3, backoffice 1");
    /* A support member beyond the reservation shares the unreserved seats. */
    release_held(s[0]);
    license_seat p3 = must_acquire("p3", "support");
    CHECK(usage_of("callcenter").used == CC_LIMIT, "callcenter used %u after p3, expected %d",
          usage_of("callcenter").used, CC_LIMIT);
    check_nonmember_at_full("support 3, sales 2, backoffice 1");
    release_held(p3);
    release_held(s[1]);
    release_held(s[2]);
    release_held(bo);
    release_held(sup[0]);
    release_held(sup[1]);
    CHECK(usage_of("callcenter").used == 0 && usage_of("users").used == 0, "phase 2 end: callcenter %u, users %u",
          usage_of("callcenter").used, usage_of("users").used);
    license_shutdown();
}

/* ==== Phase 3: tenants and run-time limits ==== */

#define MAX_EVENTS 64
static pthread_mutex_t ev_mutex = PTHREAD_MUTEX_INITIALIZER;
static struct {
    uint32_t kind;
    uint32_t limit;
    bool has_tenant;
    char tenant[LICENSE_MAX_NAME_LEN + 1];
    char type[LICENSE_MAX_NAME_LEN + 1];
    char detail[256];
} events[MAX_EVENTS];
static int n_events;
static int ev_marker;

static void record_event(void *user_data, const license_event *e) {
    if (user_data != &ev_marker)
        return;
    if (e->kind != LICENSE_EVENT_LIMIT_CHANGED && e->kind != LICENSE_EVENT_EMERGENCY_STARTED)
        return;
    pthread_mutex_lock(&ev_mutex);
    if (n_events < MAX_EVENTS) {
        events[n_events].kind = e->kind;
        events[n_events].limit = e->limit;
        /* Read `tenant` only from a library that has the field. */
        bool has = e->size >= offsetof(license_event, tenant) + sizeof e->tenant && e->tenant != NULL;
        events[n_events].has_tenant = has;
        snprintf(events[n_events].tenant, sizeof events[0].tenant, "%s", has ? e->tenant : "");
        snprintf(events[n_events].type, sizeof events[0].type, "%s", e->license_type ? e->license_type : "");
        snprintf(events[n_events].detail, sizeof events[0].detail, "%s", e->detail ? e->detail : "");
        n_events++;
    }
    pthread_mutex_unlock(&ev_mutex);
}

static void clear_events(void) {
    pthread_mutex_lock(&ev_mutex);
    n_events = 0;
    pthread_mutex_unlock(&ev_mutex);
}

/* Index of the last event of `kind`, or -1; copies it to the out-parameters. */
static int last_event(uint32_t kind, char *tenant, bool *has_tenant, char *type, uint32_t *limit) {
    int found = -1;
    pthread_mutex_lock(&ev_mutex);
    for (int i = 0; i < n_events; i++)
        if (events[i].kind == kind)
            found = i;
    if (found >= 0) {
        memcpy(tenant, events[found].tenant, sizeof events[0].tenant);
        memcpy(type, events[found].type, sizeof events[0].type);
        *has_tenant = events[found].has_tenant;
        *limit = events[found].limit;
    }
    pthread_mutex_unlock(&ev_mutex);
    return found;
}

static int count_events(uint32_t kind) {
    int n = 0;
    pthread_mutex_lock(&ev_mutex);
    for (int i = 0; i < n_events; i++)
        n += events[i].kind == kind;
    pthread_mutex_unlock(&ev_mutex);
    return n;
}

/* The last LIMIT_CHANGED event is about `type` of `tenant` (NULL: the default tenant,
 * so `tenant` must be NULL in the event) with effective limit `limit`. */
static void check_limit_event(const char *tenant, const char *type, uint32_t limit, const char *when) {
    char ev_tenant[LICENSE_MAX_NAME_LEN + 1] = "", ev_type[LICENSE_MAX_NAME_LEN + 1] = "";
    bool has_tenant = false;
    uint32_t ev_limit = 0;
    int idx = last_event(LICENSE_EVENT_LIMIT_CHANGED, ev_tenant, &has_tenant, ev_type, &ev_limit);
    CHECK(idx >= 0, "%s: no LICENSE_EVENT_LIMIT_CHANGED event", when);
    if (idx < 0)
        return;
    if (tenant != NULL)
        CHECK(has_tenant && strcmp(ev_tenant, tenant) == 0, "%s: LIMIT_CHANGED event's tenant is %s%s%s, expected "
              "\"%s\"", when, has_tenant ? "\"" : "", has_tenant ? ev_tenant : "NULL", has_tenant ? "\"" : "", tenant);
    else
        CHECK(!has_tenant, "%s: LIMIT_CHANGED event for the default tenant has tenant \"%s\", expected NULL", when,
              ev_tenant);
    CHECK(strcmp(ev_type, type) == 0 && ev_limit == limit, "%s: LIMIT_CHANGED event for '%s' limit %u, expected "
          "'%s' limit %u", when, ev_type, ev_limit, type, limit);
}

static void phase3_tenants(void) {
    const char *path = tc_write_config("[licenses.users]\nlimit = 3\n\n"
                                       "[licenses.callcenter]\nlimit = 2\n\n"
                                       "[profiles.agent]\nconsumes = [\"users\", \"callcenter\"]\n\n"
                                       "[tenants.acme]\nlicenses = { users = 1 }\n\n"
                                       "[tenants.globex]\n");
    clear_events();
    CHECK_RC(license_set_event_callback(record_event, &ev_marker), LICENSE_OK);
    init_or_die(path, "phase 3");

    /* acme has one users seat: alice takes it, bob is refused there ... */
    license_seat alice_acme = must_acquire_in("acme", "alice", "users");
    license_seat x = 0;
    license_denial d;
    int32_t rc = tc_acquire_in("acme", "bob", "users", &x, &d);
    CHECK(rc == LICENSE_ERR_LIMIT_REACHED, "bob in acme returned %s, expected LIMIT_REACHED; last error \"%s\"",
          tc_code_name(rc), tc_last_error());
    if (rc == LICENSE_ERR_LIMIT_REACHED)
        CHECK(strcmp(d.license_type, "users") == 0 && d.used == 1 && d.limit == 1 && d.reason == LICENSE_DENIAL_FULL,
              "bob's denial in acme: '%s' %u/%u reason %u", d.license_type, d.used, d.limit, d.reason);
    if (rc == LICENSE_OK)
        release_held(x);
    /* ... but gets in at globex and in the default tenant, which acme's use does not touch. */
    license_seat bob_globex = must_acquire_in("globex", "bob", "agent");
    license_seat bob_default = must_acquire("bob", "users");
    CHECK_USAGE("acme", "users", 1, 1);
    CHECK_USAGE("globex", "users", 1, 3);
    CHECK_USAGE("globex", "callcenter", 1, 2);
    CHECK_USAGE(NULL, "users", 1, 3);
    CHECK_USAGE("", "users", 1, 3);
    CHECK_USAGE(NULL, "callcenter", 0, 2);
    /* "" is the default tenant, as NULL is. */
    license_seat carl_default = must_acquire_in("", "carl", "callcenter");
    CHECK_USAGE(NULL, "callcenter", 1, 2);
    release_held(carl_default);
    struct usage u = usage_of("users");
    CHECK(u.used == 1 && u.limit == 3, "license_usage(users) = %u/%u, expected the default tenant's 1/3", u.used,
          u.limit);

    /* A tenant seat is released by its id alone. */
    release_held(alice_acme);
    CHECK_USAGE("acme", "users", 0, 1);
    if (alice_acme != 0)
        CHECK_RC(license_release(alice_acme), LICENSE_ERR_UNKNOWN_SEAT);

    /* Unknown tenants. */
    CHECK_RC(tc_acquire_in("nope", "bob", "users", &x, &d), LICENSE_ERR_UNKNOWN_TENANT);
    CHECK_CONTAINS(tc_last_error(), "nope", "the unknown tenant's last error");
    uint32_t used = 77, limit = 77;
    CHECK_RC(license_usage_in("nope", "users", &used, &limit), LICENSE_ERR_UNKNOWN_TENANT);
    CHECK(used == 77 && limit == 77, "a failed license_usage_in wrote its outputs (%u/%u)", used, limit);
    size_t needed = 0;
    CHECK_RC(license_report_tenant("nope", LICENSE_REPORT_TEXT, 0, 0, NULL, 0, &needed), LICENSE_ERR_UNKNOWN_TENANT);
    CHECK_RC(license_usage_in("acme", "nope", &used, &limit), LICENSE_ERR_UNKNOWN_LICENSE_TYPE);

    /* A run-time limit lets bob into acme at once, and the event names the tenant. */
    alice_acme = must_acquire_in("acme", "alice", "users");
    CHECK_RC(tc_acquire_in("acme", "bob", "users", &x, &d), LICENSE_ERR_LIMIT_REACHED);
    clear_events();
    CHECK_RC(license_set_limit("acme", "users", 2), LICENSE_OK);
    check_limit_event("acme", "users", 2, "license_set_limit(acme, users, 2)");
    license_seat bob_acme = must_acquire_in("acme", "bob", "users");
    CHECK_USAGE("acme", "users", 2, 2);
    CHECK_USAGE("globex", "users", 1, 3);
    CHECK_RC(license_set_limit(NULL, "nope", 1), LICENSE_ERR_UNKNOWN_LICENSE_TYPE);
    CHECK_RC(license_set_limit("acme", "nope", 1), LICENSE_ERR_UNKNOWN_LICENSE_TYPE);

    /* A tenant the config does not know, set up at run time. */
    CHECK_RC(tc_acquire_in("hooli", "dan", "users", &x, &d), LICENSE_ERR_UNKNOWN_TENANT);
    clear_events();
    CHECK_RC(license_set_limit("hooli", "users", 1), LICENSE_OK);
    check_limit_event("hooli", "users", 1, "license_set_limit(hooli, users, 1)");
    CHECK_USAGE("hooli", "users", 0, 1);
    CHECK_USAGE("hooli", "callcenter", 0, 2); /* its other types keep the global limits */
    license_seat dan = must_acquire_in("hooli", "dan", "agent");
    rc = tc_acquire_in("hooli", "eve", "users", &x, &d);
    CHECK(rc == LICENSE_ERR_LIMIT_REACHED && strcmp(d.license_type, "users") == 0 && d.used == 1 && d.limit == 1,
          "eve in hooli: %s, denial '%s' %u/%u", tc_code_name(rc), d.license_type, d.used, d.limit);
    if (rc == LICENSE_OK)
        release_held(x);
    CHECK_USAGE("hooli", "users", 1, 1);

    /* The default tenant, and back to the config's limit. */
    clear_events();
    CHECK_RC(license_set_limit(NULL, "users", 7), LICENSE_OK);
    check_limit_event(NULL, "users", 7, "license_set_limit(NULL, users, 7)");
    CHECK_USAGE(NULL, "users", 1, 7);
    CHECK_USAGE("globex", "users", 1, 3);
    CHECK_RC(license_set_limit("", "users", 8), LICENSE_OK); /* "" is the default tenant too */
    CHECK_USAGE(NULL, "users", 1, 8);
    CHECK_RC(license_set_limit(NULL, "users", -1), LICENSE_OK);
    CHECK_USAGE(NULL, "users", 1, 3);

    /* The tenant's report. */
    int32_t rrc = LICENSE_OK;
    char *text = tenant_report("acme", LICENSE_REPORT_TEXT, &rrc);
    CHECK(text != NULL, "license_report_tenant(acme, TEXT) returned %s: %s", tc_code_name(rrc), tc_last_error());
    if (text != NULL) {
        CHECK_CONTAINS(text, "Tenant: acme", "acme's text report");
        CHECK_CONTAINS(text, "alice", "acme's text report");
        CHECK(strstr(text, "dan") == NULL, "acme's report shows hooli's user dan:\n%s", text);
        free(text);
    }
    text = tenant_report("hooli", LICENSE_REPORT_JSON, &rrc);
    CHECK(text != NULL, "license_report_tenant(hooli, JSON) returned %s: %s", tc_code_name(rrc), tc_last_error());
    if (text != NULL) {
        CHECK_CONTAINS(text, "\"dan\"", "hooli's JSON report");
        free(text);
    }

    /* A caller built before `tenant` existed: its size ends before the field, which is
     * then never read, so the request goes to the default tenant. */
    license_request old;
    memset(&old, 0, sizeof old);
    old.size = offsetof(license_request, tenant);
    old.user = "carol";
    old.profiles = "users";
    old.tenant = "nope"; /* past size: must be ignored */
    license_seat carol = 0;
    CHECK_RC(license_try_acquire_ex(&old, &carol, NULL), LICENSE_OK);
    CHECK_USAGE(NULL, "users", 2, 3);
    release_held(carol);

    release_held(alice_acme);
    release_held(bob_acme);
    release_held(bob_globex);
    release_held(bob_default);
    release_held(dan);
    CHECK_USAGE("acme", "users", 0, 2);
    CHECK_USAGE("globex", "users", 0, 3);
    CHECK_USAGE("hooli", "users", 0, 1);
    CHECK_USAGE(NULL, "users", 0, 3);
    license_shutdown();
    CHECK_RC(license_set_event_callback(NULL, NULL), LICENSE_OK);
}

/* ==== Phase 4: emergency seats ==== */

static const char *emergency_config(const char *state_dir) {
    return tc_write_configf("state_dir = \"%s\"\n\n"
                            "[licenses.users]\nlimit = 2\n\n"
                            "[licenses.callcenter]\nlimit = 10\n\n"
                            "[profiles.agent]\nconsumes = [\"users\", \"callcenter\"]\n\n"
                            "[emergency]\nseats = 2\ntypes = [\"users\"]\nduration = \"1h\"\n",
                            state_dir);
}

/* Regular, non-hidden, non-empty files in `dir`: a state file, not a temp file. (The
 * header promises a state file in state_dir, not its name.) */
static int count_state_files(const char *dir) {
    DIR *d = opendir(dir);
    if (d == NULL)
        return -1;
    int n = 0;
    struct dirent *ent;
    while ((ent = readdir(d)) != NULL) {
        if (ent->d_name[0] == '.')
            continue;
        char path[512];
        snprintf(path, sizeof path, "%s/%s", dir, ent->d_name);
        struct stat st;
        if (stat(path, &st) == 0 && S_ISREG(st.st_mode) && st.st_size > 0)
            n++;
    }
    closedir(d);
    return n;
}

static void phase4_emergency(void) {
    char state_dir[256];
    tmp_path(state_dir, sizeof state_dir, "state");
    CHECK(mkdir(state_dir, 0700) == 0, "mkdir %s: %s", state_dir, strerror(errno));
    const char *path = emergency_config(state_dir);
    clear_events();
    CHECK_RC(license_set_event_callback(record_event, &ev_marker), LICENSE_OK);
    init_or_die(path, "phase 4");

    license_seat a = must_acquire("a", "agent");
    license_seat b = must_acquire("b", "agent");
    license_seat x = 0;
    license_denial d;
    CHECK_RC(tc_acquire_ex("c", "agent", &x, &d), LICENSE_ERR_LIMIT_REACHED);
    CHECK(strcmp(d.license_type, "users") == 0 && d.used == 2 && d.limit == 2, "denial before the window: '%s' %u/%u",
          d.license_type, d.used, d.limit);

    int64_t end = 0;
    time_t before = time(NULL);
    CHECK_RC(license_emergency_activate(&end), LICENSE_OK);
    time_t after = time(NULL);
    CHECK(end >= (int64_t)before + 3600 - 1 && end <= (int64_t)after + 3600 + 1,
          "the window ends at %lld, expected about now + 3600 (%lld .. %lld)", (long long)end,
          (long long)before + 3600, (long long)after + 3600);
    CHECK(count_events(LICENSE_EVENT_EMERGENCY_STARTED) == 1, "%d EMERGENCY_STARTED events, expected 1",
          count_events(LICENSE_EVENT_EMERGENCY_STARTED));
    struct usage u = usage_of("users");
    CHECK(u.used == 2 && u.limit == 4, "users during the window: %u/%u, expected 2/4", u.used, u.limit);
    u = usage_of("callcenter");
    CHECK(u.limit == 10, "callcenter is not an emergency type, yet its limit is %u", u.limit);
    license_seat c = must_acquire("c", "agent");
    license_seat e = must_acquire("e", "agent");
    CHECK_RC(tc_acquire_ex("f", "agent", &x, &d), LICENSE_ERR_LIMIT_REACHED);
    CHECK(strcmp(d.license_type, "users") == 0 && d.used == 4 && d.limit == 4,
          "the fifth login's denial: '%s' %u/%u, expected users 4/4", d.license_type, d.used, d.limit);

    int64_t end2 = 12345;
    CHECK_RC(license_emergency_activate(&end2), LICENSE_ERR_EMERGENCY_UNAVAILABLE);
    CHECK_CONTAINS(tc_last_error(), "already open", "the second activation's last error");
    CHECK(end2 == 12345, "a refused activation wrote ends_unix_out (%lld)", (long long)end2);
    check_report_contains("Emergency: open", "an open window");
    CHECK(count_state_files(state_dir) >= 1, "no state file in %s after the activation", state_dir);

    /* A restart does not forget the window: the state file keeps it. (Its end, one
     * hour away, is covered by tests/conformance/policy.rs with an injected clock.) */
    license_shutdown();
    init_or_die(path, "phase 4 restart");
    CHECK(count_state_files(state_dir) >= 1, "no state file in %s after the restart", state_dir);
    CHECK_RC(license_emergency_activate(NULL), LICENSE_ERR_EMERGENCY_UNAVAILABLE);
    CHECK_CONTAINS(tc_last_error(), "already open", "the activation after the restart's last error");
    CHECK_RC(license_reap(NULL), LICENSE_OK);
    u = usage_of("users");
    CHECK(u.used == 0 && u.limit == 4, "users after the restart: %u/%u, expected 0/4 (the window is still open)",
          u.used, u.limit);
    check_report_contains("Emergency: open", "the window after a restart");
    license_shutdown();
    (void)a, (void)b, (void)c, (void)e; /* forgotten by the shutdown */

    /* ends_unix_out may be NULL: a fresh state dir, one more window. */
    char state2[256];
    tmp_path(state2, sizeof state2, "state2");
    CHECK(mkdir(state2, 0700) == 0, "mkdir %s: %s", state2, strerror(errno));
    init_or_die(emergency_config(state2), "phase 4, second state dir");
    CHECK_RC(license_emergency_activate(NULL), LICENSE_OK);
    u = usage_of("users");
    CHECK(u.limit == 4, "users limit %u after an activation with ends_unix_out NULL, expected 4", u.limit);
    license_shutdown();

    /* Without [emergency] there is nothing to open. */
    init_or_die(tc_write_config("[licenses.users]\nlimit = 2\n"), "phase 4, no [emergency]");
    end = 12345;
    CHECK_RC(license_emergency_activate(&end), LICENSE_ERR_EMERGENCY_UNAVAILABLE);
    CHECK_CONTAINS(tc_last_error(), "[emergency]", "the activation without [emergency]'s last error");
    CHECK(end == 12345, "a refused activation wrote ends_unix_out (%lld)", (long long)end);
    u = usage_of("users");
    CHECK(u.limit == 2, "users limit %u after a refused activation, expected 2", u.limit);
    license_shutdown();
    CHECK_RC(license_set_event_callback(NULL, NULL), LICENSE_OK);
}

/* ==== Phase 5: expiry ==== */

static void phase5_expiry(void) {
    init_or_die(tc_write_config("[licenses.users]\nlimit = 5\n\n"
                                "[licenses.chat]\nlimit = 5\nvalid_until = \"2020-01-31\"\n"),
                "phase 5");
    license_seat x = 0;
    CHECK_RC(license_try_acquire("a", "chat", &x), LICENSE_ERR_EXPIRED);
    CHECK_CONTAINS(tc_last_error(), "2020-01-31", "the expired type's last error");
    CHECK_CONTAINS(tc_last_error(), "chat", "the expired type's last error");
    CHECK_RC(license_try_acquire("a", "users,chat", &x), LICENSE_ERR_EXPIRED);
    CHECK(tc_usage("users") == 0 && tc_usage("chat") == 0, "a refused expired bundle took seats: users %u, chat %u",
          tc_usage("users"), tc_usage("chat"));
    license_seat a = must_acquire("a", "users");
    CHECK(tc_usage("users") == 1, "users used %u, expected 1", tc_usage("users"));
    check_report_contains("EXPIRED 2020-01-31", "a deny_new type past its date");
    release_held(a);
    license_shutdown();

    init_or_die(tc_write_config("[licenses.users]\nlimit = 5\n\n"
                                "[licenses.chat]\nlimit = 5\nvalid_until = \"2020-01-31\"\non_expiry = \"revoke\"\n"),
                "phase 5, revoke");
    CHECK_RC(license_reap(NULL), LICENSE_OK);
    check_report_contains("EXPIRED 2020-01-31", "a revoke type past its date");
    CHECK_RC(license_try_acquire("a", "chat", &x), LICENSE_ERR_EXPIRED);
    a = must_acquire("a", "users");
    release_held(a);
    license_shutdown();
}

/* ==== Phase 6: a vendor-signed license ==== */

/* Runs the CLI with `args` (NULL-terminated, args[0] unused), its output appended to
 * tmp_dir/cli.log; returns its exit status, or -1 if it could not run. */
static int run_cli(const char *cli, const char *const *args) {
    char log_path[256];
    tmp_path(log_path, sizeof log_path, "cli.log");
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, STDOUT_FILENO, log_path, O_WRONLY | O_CREAT | O_APPEND, 0600);
    posix_spawn_file_actions_adddup2(&fa, STDOUT_FILENO, STDERR_FILENO);
    char *argv[16];
    int n = 0;
    argv[n++] = (char *)cli;
    for (int i = 1; args[i] != NULL && n < 15; i++)
        argv[n++] = (char *)args[i];
    argv[n] = NULL;
    pid_t pid;
    int rc = posix_spawn(&pid, cli, &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    if (rc != 0) {
        fprintf(stderr, "test_policy: cannot run %s: %s\n", cli, strerror(rc));
        return -1;
    }
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        char *log = read_file(log_path);
        fprintf(stderr, "test_policy: %s %s failed (status %d); its output:\n%s\n", cli, args[1], status,
                log ? log : "(none)");
        free(log);
        return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    }
    return 0;
}

/* Generates a key pair at tmp_dir/prefix and signs `body` (the [license] table) with
 * it into tmp_dir/out; returns false (after counting a failure) when the CLI fails. */
static bool make_license(const char *cli, const char *prefix, const char *body, const char *out) {
    char key_prefix[256], key_file[300], unsigned_path[256], signed_path[256];
    tmp_path(key_prefix, sizeof key_prefix, prefix);
    snprintf(key_file, sizeof key_file, "%s.key", key_prefix);
    tmp_path(unsigned_path, sizeof unsigned_path, "unsigned.toml");
    tmp_path(signed_path, sizeof signed_path, out);
    const char *keygen[] = {NULL, "keygen", "--out", key_prefix, NULL};
    int rc = run_cli(cli, keygen);
    CHECK(rc == 0, "seatgate keygen --out %s exited with %d", key_prefix, rc);
    if (rc != 0)
        return false;
    CHECK(write_file(unsigned_path, body), "cannot write %s: %s", unsigned_path, strerror(errno));
    const char *sign[] = {NULL, "sign", "--key", key_file, unsigned_path, "-o", signed_path, NULL};
    rc = run_cli(cli, sign);
    CHECK(rc == 0, "seatgate sign --key %s %s -o %s exited with %d", key_file, unsigned_path, signed_path, rc);
    return rc == 0;
}

static const char *license_config(const char *license_path) {
    return tc_write_configf("license_file = \"%s\"\n\n"
                            "[licenses.users]\nlimit = 10\n\n"
                            "[licenses.callcenter]\nlimit = 5\n\n"
                            "[licenses.chat]\nlimit = 4\n\n"
                            "[profiles.agent]\nconsumes = [\"users\", \"callcenter\"]\n",
                            license_path);
}

static const char LICENSE_BODY[] = "[license]\n"
                                   "format = 1\n"
                                   "licensee = \"Acme Call Center\"\n"
                                   "license_id = \"ACME-CTEST-1\"\n"
                                   "issued = \"2020-01-01\"\n"
                                   "valid_until = \"2099-12-31\"\n"
                                   "[license.limits]\n"
                                   "users = 3\n"
                                   "callcenter = 8\n"
                                   "\n"
                                   "[info]\n"
                                   "description = \"3 users, 8 call-center operators\"\n";

static void phase6_signed_license(void) {
    const char *cli = getenv("SEATGATE_CLI");
    CHECK(cli != NULL && cli[0] != '\0', "SEATGATE_CLI is not set: run this test through `make test-c`, or set it "
          "to target/release/seatgate");
    if (cli == NULL || cli[0] == '\0')
        return;
    CHECK(access(cli, X_OK) == 0, "SEATGATE_CLI=%s is not an executable: %s (run `make lib`)", cli, strerror(errno));
    if (access(cli, X_OK) != 0)
        return;
    if (!make_license(cli, "vendor", LICENSE_BODY, "acme.license"))
        return;

    char pub_path[256], license_path[256];
    tmp_path(pub_path, sizeof pub_path, "vendor.pub");
    tmp_path(license_path, sizeof license_path, "acme.license");
    char *pub = read_file(pub_path);
    CHECK(pub != NULL, "cannot read %s: %s", pub_path, strerror(errno));
    if (pub == NULL)
        return;
    pub[strcspn(pub, "\r\n")] = '\0';
    CHECK(tc_starts_with(pub, "seatgate-ed25519-public:"), "%s does not hold a public key: \"%s\"", pub_path, pub);

    /* Not trusted yet: refused. (No key is compiled into the test build.) */
    const char *config = license_config(license_path);
    CHECK_RC(license_init(config), LICENSE_ERR_LICENSE_FILE);
    CHECK_RC(license_trust_key(pub), LICENSE_OK);
    free(pub);

    init_or_die(config, "phase 6");
    struct usage u = usage_of("users");
    CHECK(u.limit == 3, "users limit %u, expected min(config 10, signed 3) = 3", u.limit);
    u = usage_of("callcenter");
    CHECK(u.limit == 5, "callcenter limit %u, expected min(config 5, signed 8) = 5", u.limit);
    u = usage_of("chat");
    CHECK(u.used == 0 && u.limit == 0, "chat, not in the license: %u/%u, expected 0/0", u.used, u.limit);
    license_seat x = 0;
    license_denial d;
    CHECK_RC(tc_acquire_ex("a", "chat", &x, &d), LICENSE_ERR_LIMIT_REACHED);
    CHECK(strcmp(d.license_type, "chat") == 0 && d.limit == 0 && d.reason == LICENSE_DENIAL_NO_SEATS,
          "chat's denial: '%s' %u/%u reason %u, expected chat 0/0 NO_SEATS", d.license_type, d.used, d.limit,
          d.reason);
    license_seat s[3] = {must_acquire("a", "agent"), must_acquire("b", "agent"), must_acquire("c", "agent")};
    CHECK_RC(tc_acquire_ex("d", "agent", &x, &d), LICENSE_ERR_LIMIT_REACHED);
    CHECK(strcmp(d.license_type, "users") == 0 && d.used == 3 && d.limit == 3, "the 4th agent's denial: '%s' %u/%u",
          d.license_type, d.used, d.limit);
    check_report_contains("Signed license: ACME-CTEST-1", "a signed license");
    for (int i = 0; i < 3; i++)
        release_held(s[i]);
    license_shutdown();

    /* One signed value changed: the signature no longer matches. */
    char *text = read_file(license_path);
    CHECK(text != NULL && strstr(text, "users = 3\n") != NULL, "the signed license lacks \"users = 3\": %s",
          text ? text : "(unreadable)");
    if (text != NULL && strstr(text, "users = 3\n") != NULL) {
        strstr(text, "users = 3\n")[8] = '9';
        char tampered[256];
        tmp_path(tampered, sizeof tampered, "tampered.license");
        CHECK(write_file(tampered, text), "cannot write %s", tampered);
        CHECK_RC(license_init(license_config(tampered)), LICENSE_ERR_LICENSE_FILE);
        CHECK_CONTAINS(tc_last_error(), "signature", "the tampered license's last error");
        CHECK_RC(license_usage("users", &u.used, &u.limit), LICENSE_ERR_NOT_INITIALIZED);
    }
    free(text);

    /* Signed by a second key that nobody trusted. */
    if (make_license(cli, "other", LICENSE_BODY, "other.license")) {
        char other[256];
        tmp_path(other, sizeof other, "other.license");
        CHECK_RC(license_init(license_config(other)), LICENSE_ERR_LICENSE_FILE);
        CHECK_CONTAINS(tc_last_error(), "trusted", "the untrusted license's last error");
    }
    /* The good license still loads. */
    init_or_die(config, "phase 6, the good license again");
    license_shutdown();
}

/* ==== Phase 7: NULL and bad arguments ==== */

static void phase7_bad_arguments(void) {
    char long_tenant[LICENSE_MAX_NAME_LEN + 2];
    memset(long_tenant, 't', sizeof long_tenant - 1);
    long_tenant[sizeof long_tenant - 1] = '\0'; /* 64 bytes: one over the cap */
    char max_tenant[LICENSE_MAX_NAME_LEN + 1];
    memset(max_tenant, 'm', sizeof max_tenant - 1);
    max_tenant[sizeof max_tenant - 1] = '\0'; /* 63 bytes: the longest name */
    char long_key[400];
    memset(long_key, 'k', sizeof long_key - 1);
    long_key[sizeof long_key - 1] = '\0';
    uint32_t used = 77, limit = 77;
    int64_t end = 12345;
    size_t needed = 0;
    char buf[64];

    /* Not initialized: argument errors first, then NOT_INITIALIZED. */
    CHECK_RC(license_set_limit(NULL, NULL, 1), LICENSE_ERR_INVALID_ARGUMENT);
    CHECK_RC(license_set_limit(long_tenant, "users", 1), LICENSE_ERR_INVALID_ARGUMENT);
    CHECK_RC(license_set_limit(NULL, "users", (int64_t)UINT32_MAX + 1), LICENSE_ERR_INVALID_ARGUMENT);
    CHECK_RC(license_set_limit(NULL, "users", 1), LICENSE_ERR_NOT_INITIALIZED);
    CHECK_RC(license_set_limit("bad name", "users", 1), LICENSE_ERR_NOT_INITIALIZED);
    CHECK_RC(license_usage_in(NULL, NULL, &used, &limit), LICENSE_ERR_INVALID_ARGUMENT);
    CHECK_RC(license_usage_in(NULL, "users", NULL, &limit), LICENSE_ERR_INVALID_ARGUMENT);
    CHECK_RC(license_usage_in(NULL, "users", &used, &limit), LICENSE_ERR_NOT_INITIALIZED);
    CHECK_RC(license_emergency_activate(&end), LICENSE_ERR_NOT_INITIALIZED);
    CHECK_RC(license_emergency_activate(NULL), LICENSE_ERR_NOT_INITIALIZED);
    CHECK_RC(license_report_tenant(NULL, LICENSE_REPORT_TEXT, 0, 0, NULL, 0, &needed), LICENSE_ERR_INVALID_ARGUMENT);
    CHECK_RC(license_report_tenant("acme", LICENSE_REPORT_TEXT, 0, 0, NULL, 0, &needed), LICENSE_ERR_NOT_INITIALIZED);
    /* buf NULL with len > 0 is a pointer error, checked before initialization. */
    CHECK_RC(license_report_tenant("acme", LICENSE_REPORT_TEXT, 0, 0, NULL, 5, &needed), LICENSE_ERR_INVALID_ARGUMENT);
    CHECK(used == 77 && limit == 77 && end == 12345, "failed calls wrote their outputs (%u/%u, end %lld)", used, limit,
          (long long)end);

    /* license_trust_key works initialized or not. */
    CHECK_RC(license_trust_key(NULL), LICENSE_ERR_INVALID_ARGUMENT);
    CHECK_RC(license_trust_key("garbage"), LICENSE_ERR_LICENSE_FILE);
    CHECK(strlen(tc_last_error()) > 0, "license_trust_key(\"garbage\") left no last error");
    CHECK_RC(license_trust_key("seatgate-ed25519-public:AAAA"), LICENSE_ERR_LICENSE_FILE);
    CHECK_RC(license_trust_key(""), LICENSE_ERR_INVALID_ARGUMENT);
    CHECK_RC(license_trust_key(long_key), LICENSE_ERR_INVALID_ARGUMENT);

    init_or_die(tc_write_config("[licenses.users]\nlimit = 2\n\n[tenants.acme]\nlicenses = { users = 1 }\n"),
                "phase 7");
    /* license_set_limit */
    CHECK_RC(license_set_limit(NULL, NULL, 1), LICENSE_ERR_INVALID_ARGUMENT);
    CHECK_RC(license_set_limit("acme", NULL, 1), LICENSE_ERR_INVALID_ARGUMENT);
    CHECK_RC(license_set_limit(NULL, "", 1), LICENSE_ERR_INVALID_ARGUMENT);
    CHECK_RC(license_set_limit(long_tenant, "users", 1), LICENSE_ERR_INVALID_ARGUMENT);
    CHECK_RC(license_set_limit("bad name", "users", 1), LICENSE_ERR_INVALID_ARGUMENT);
    CHECK_RC(license_set_limit("bad/name", "users", 1), LICENSE_ERR_INVALID_ARGUMENT);
    CHECK_RC(license_set_limit(NULL, "users", (int64_t)UINT32_MAX + 1), LICENSE_ERR_INVALID_ARGUMENT);
    CHECK_CONTAINS(tc_last_error(), "4294967295", "the too-large limit's last error");
    CHECK_RC(license_set_limit(NULL, "users", INT64_MAX), LICENSE_ERR_INVALID_ARGUMENT);
    struct usage u = usage_of("users");
    CHECK(u.limit == 2, "refused license_set_limit calls changed the limit to %u", u.limit);
    CHECK_RC(license_set_limit(NULL, "users", (int64_t)UINT32_MAX), LICENSE_OK);
    u = usage_of("users");
    CHECK(u.limit == UINT32_MAX, "limit %u after setting UINT32_MAX", u.limit);
    CHECK_RC(license_set_limit(NULL, "users", INT64_MIN), LICENSE_OK); /* any negative: back to the config's */
    u = usage_of("users");
    CHECK(u.limit == 2, "limit %u after removing the run-time limit, expected the config's 2", u.limit);
    CHECK_RC(license_set_limit(NULL, "users", -1), LICENSE_OK); /* removing twice is fine */
    CHECK_RC(license_set_limit(max_tenant, "users", 1), LICENSE_OK);
    CHECK_USAGE(max_tenant, "users", 0, 1);

    /* license_usage_in */
    used = limit = 77;
    CHECK_RC(license_usage_in(NULL, NULL, &used, &limit), LICENSE_ERR_INVALID_ARGUMENT);
    CHECK_RC(license_usage_in("acme", "users", NULL, &limit), LICENSE_ERR_INVALID_ARGUMENT);
    CHECK_RC(license_usage_in("acme", "users", &used, NULL), LICENSE_ERR_INVALID_ARGUMENT);
    CHECK_RC(license_usage_in(long_tenant, "users", &used, &limit), LICENSE_ERR_INVALID_ARGUMENT);
    CHECK_RC(license_usage_in("bad name", "users", &used, &limit), LICENSE_ERR_INVALID_ARGUMENT);
    CHECK_RC(license_usage_in(NULL, "nope", &used, &limit), LICENSE_ERR_UNKNOWN_LICENSE_TYPE);
    CHECK_RC(license_usage_in("globex", "users", &used, &limit), LICENSE_ERR_UNKNOWN_TENANT);
    CHECK(used == 77 && limit == 77, "failed license_usage_in calls wrote %u/%u", used, limit);
    CHECK_RC(license_usage_in("acme", "users", &used, &limit), LICENSE_OK);
    CHECK(used == 0 && limit == 1, "acme's users: %u/%u, expected 0/1", used, limit);

    /* license_try_acquire_ex with a bad tenant */
    license_seat x = 0;
    license_denial d;
    CHECK_RC(tc_acquire_in(long_tenant, "a", "users", &x, &d), LICENSE_ERR_INVALID_ARGUMENT);
    CHECK_RC(tc_acquire_in("bad name", "a", "users", &x, &d), LICENSE_ERR_INVALID_ARGUMENT);
    CHECK(x == 0 && tc_usage("users") == 0, "a refused acquire took a seat (handle %llu, users %u)",
          (unsigned long long)x, tc_usage("users"));

    /* license_report_tenant */
    CHECK_RC(license_report_tenant(NULL, LICENSE_REPORT_TEXT, 0, 0, NULL, 0, &needed), LICENSE_ERR_INVALID_ARGUMENT);
    CHECK_RC(license_report_tenant(long_tenant, LICENSE_REPORT_TEXT, 0, 0, NULL, 0, &needed),
             LICENSE_ERR_INVALID_ARGUMENT);
    CHECK_RC(license_report_tenant("acme", 99, 0, 0, buf, sizeof buf, &needed), LICENSE_ERR_INVALID_ARGUMENT);
    CHECK_RC(license_report_tenant("acme", LICENSE_REPORT_TEXT, 0, 0, NULL, 5, &needed), LICENSE_ERR_INVALID_ARGUMENT);
    CHECK_RC(license_report_tenant("globex", LICENSE_REPORT_TEXT, 0, 0, NULL, 0, &needed),
             LICENSE_ERR_UNKNOWN_TENANT);
    /* Pointers before names: buf NULL with len > 0 wins over the unknown tenant. */
    CHECK_RC(license_report_tenant("globex", LICENSE_REPORT_TEXT, 0, 0, NULL, 5, &needed),
             LICENSE_ERR_INVALID_ARGUMENT);
    needed = 0;
    int32_t rc = license_report_tenant("acme", LICENSE_REPORT_TEXT, 0, 0, NULL, 0, &needed);
    CHECK(rc == LICENSE_OK, "acme's report size query returned %s: %s", tc_code_name(rc), tc_last_error());
    if (rc == LICENSE_OK) {
        CHECK(needed > sizeof buf, "acme's report needs %zu bytes; the test expects more than %zu", needed,
              sizeof buf);
        size_t full = needed;
        memset(buf, 'x', sizeof buf);
        rc = license_report_tenant("acme", LICENSE_REPORT_TEXT, 0, 0, buf, sizeof buf, &needed);
        CHECK(rc == LICENSE_ERR_BUFFER_TOO_SMALL, "acme's report into %zu bytes returned %s", sizeof buf,
              tc_code_name(rc));
        if (rc == LICENSE_ERR_BUFFER_TOO_SMALL)
            CHECK(memchr(buf, '\0', sizeof buf) != NULL && needed == full && tc_starts_with(buf, "seatgate"),
                  "a truncated tenant report: not NUL-terminated, needed %zu (was %zu), or not the report's start: "
                  "\"%.20s\"", needed, full, buf);
    }
    CHECK_RC(license_report_tenant("acme", LICENSE_REPORT_TEXT, 0, 0, NULL, 0, NULL), LICENSE_OK);

    /* license_emergency_activate: NULL is allowed (phase 4); here no [emergency]. */
    CHECK_RC(license_emergency_activate(NULL), LICENSE_ERR_EMERGENCY_UNAVAILABLE);
    license_shutdown();
}

int main(void) {
    double t0 = tc_now();
    make_tmp_dir();
    struct {
        const char *name;
        void (*run)(void);
    } phases[] = {
        {"1 (reservation/cap stress)", phase1_stress},
        {"2 (refusal texts)", phase2_refusal_texts},
        {"3 (tenants)", phase3_tenants},
        {"4 (emergency)", phase4_emergency},
        {"5 (expiry)", phase5_expiry},
        {"6 (signed license)", phase6_signed_license},
        {"7 (bad arguments)", phase7_bad_arguments},
    };
    for (size_t i = 0; i < sizeof phases / sizeof phases[0]; i++) {
        double t = tc_now();
        phases[i].run();
        license_shutdown(); /* in case a phase stopped early */
        fprintf(stderr, "test_policy: phase %s %.2f s\n", phases[i].name, tc_now() - t);
    }
    remove_tmp_dir();
    struct stat st;
    CHECK(stat(tmp_dir, &st) != 0 && errno == ENOENT, "the temp dir %s is still there", tmp_dir);
    fprintf(stderr, "test_policy: %.2f s\n", tc_now() - t0);
    return tc_summary("test_policy");
}
