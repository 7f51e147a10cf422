/*
 * pbx_login: a simulated call-center login storm against seatgate.
 *
 *   build/pbx_login examples/seats.toml        (or: make demo)
 *
 * What a PBX or call-center server does with seatgate:
 *   1. license_init() at startup, refusing to start on a bad license file, and
 *      printing the config's lints as warnings;
 *   2. at every agent login (SIP REGISTER, softphone sign-in, CRM session...),
 *      license_try_acquire_ex() from whichever worker thread handles it; on a
 *      refusal, tell the agent which license type is full;
 *   3. license_release() at logout;
 *   4. license_report() for the admin's "online licenses" page;
 *   5. license_shutdown() on the way out.
 *
 * Each wave of the morning storm runs on several worker threads at once; every
 * result is kept and the lines are printed afterwards in arrival order, so the
 * output reads the same from run to run (which agents win the last seats, and the
 * seat handle numbers, differ).
 */
#define _POSIX_C_SOURCE 200809L

#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "seatgate.h"

#define WORKERS 4

/* One login as the PBX sees it. */
typedef struct {
    const char *user;
    const char *profiles;
    const char *extension; /* phone line or device; may be NULL */
    const char *session;   /* SIP Call-ID, CRM session id...; may be NULL */
} login_spec;

/* What came back for one login. */
typedef struct {
    int32_t rc;
    license_seat seat;
    license_denial denial; /* valid when rc == LICENSE_ERR_LIMIT_REACHED */
    char detail[256];      /* license_last_error() of the worker, on failure */
    int held;              /* 1 while the demo still owns `seat` */
} login_result;

/*
 * The morning, in arrival order, in two waves that each hit the PBX at once.
 * 08:55, the early shift: 2 chat-team operators while chat has 0 seats, the front
 * desk, and 3 concurrent 1C sessions for 2 integration_1c seats.
 * 09:00, the rush: 14 operators for 8 callcenter seats, 5 admins for 3 crm seats,
 * and one more chat-team operator. Her refused bundle never costs an operator the
 * last callcenter seat: seatgate refuses only when a type's seats are really held.
 */
static const login_spec storm[] = {
    {"wendy.clarke", "operator,chat_team", "1101", NULL},
    {"1c-connector", "integration", NULL, "1c-sess-7f3a"},
    {"tatiana.novak", "receptionist", "100", NULL},
    {"xavier.dupont", "operator,chat_team", "1102", NULL},
    {"1c-connector", "integration", NULL, "1c-sess-7f3b"},
    {"victor.lobby", "receptionist", "101", NULL},
    {"1c-connector", "integration", NULL, "1c-sess-7f3c"},
#define EARLY_SHIFT 7
    {"anna.petrova", "operator", "1001", NULL},
    {"olga.kuznetsova", "admin", NULL, "crm-web-51c2"},
    {"boris.ivanov", "operator", "1002", NULL},
    {"carla.mendes", "operator", "1003", NULL},
    {"paul.martin", "admin", NULL, "crm-web-51c3"},
    {"david.cohen", "operator", "1004", NULL},
    {"elena.popescu", "operator", "1005", NULL},
    {"farid.haddad", "operator", "1006", NULL},
    {"yasmin.aziz", "operator,chat_team", "1103", NULL},
    {"qing.li", "admin", NULL, "crm-web-51c4"},
    {"grace.okafor", "operator", "1007", NULL},
    {"hiro.tanaka", "operator", "1008", NULL},
    {"ines.garcia", "operator", "1009", NULL},
    {"rachel.adams", "admin", NULL, "crm-web-51c5"},
    {"jonas.berg", "operator", "1010", NULL},
    {"kate.murphy", "operator", "1011", NULL},
    {"liam.oconnor", "operator", "1012", NULL},
    {"sergei.volkov", "admin", NULL, "crm-web-51c6"},
    {"maria.rossi", "operator", "1013", NULL},
    {"nikolai.smirnov", "operator", "1014", NULL},
};
#define STORM_LOGINS (sizeof storm / sizeof storm[0])

/* The running config's license types, listed through the API, for the usage lines. */
static uint32_t license_type_total(void) {
    uint32_t n = 0;
    return license_type_count(&n) == LICENSE_OK ? n : 0;
}

static const char *license_type_at(uint32_t index, char name[LICENSE_MAX_NAME_LEN + 1]) {
    return license_type_name(index, name, LICENSE_MAX_NAME_LEN + 1, NULL) == LICENSE_OK ? name : "?";
}

static login_result storm_result[STORM_LOGINS];
static pthread_barrier_t storm_start;

/* Seats acquired outside the storm (second device, retries), released at the end. */
static login_result extra_result[16];
static login_spec extra_spec[16];
static size_t extra_count;

/* ---- tallies for the summary line ---- */

static unsigned accepted, refused;
typedef struct {
    char reason[96]; /* "callcenter full", or a status name */
    unsigned count;
} reason_tally;
static reason_tally reasons[16];
static size_t reason_count;
static int check_failed;

static void tally(const login_result *r) {
    if (r->rc == LICENSE_OK) {
        accepted++;
        return;
    }
    refused++;
    char reason[96];
    if (r->rc == LICENSE_ERR_LIMIT_REACHED)
        snprintf(reason, sizeof reason, "%s full", r->denial.license_type);
    else
        snprintf(reason, sizeof reason, "%s", license_strerror(r->rc));
    for (size_t i = 0; i < reason_count; i++) {
        if (strcmp(reasons[i].reason, reason) == 0) {
            reasons[i].count++;
            return;
        }
    }
    if (reason_count < sizeof reasons / sizeof reasons[0]) {
        snprintf(reasons[reason_count].reason, sizeof reasons[0].reason, "%s", reason);
        reasons[reason_count++].count = 1;
    }
}

static int by_reason(const void *a, const void *b) {
    return strcmp(((const reason_tally *)a)->reason, ((const reason_tally *)b)->reason);
}

static void check(int ok, const char *what) {
    if (!ok) {
        printf("  CHECK FAILED: %s\n", what);
        check_failed = 1;
    }
}

/* ---- calls into seatgate ---- */

/* The calling thread's last failure detail, or the status name if there is none. */
static void last_error(int32_t rc, char *buf, size_t len) {
    buf[0] = '\0';
    license_last_error(buf, len, NULL); /* a too-long sentence comes back cut short */
    if (buf[0] == '\0')
        snprintf(buf, len, "%s", license_strerror(rc));
}

static void do_login(const login_spec *spec, login_result *out) {
    license_request req = {
        .size = sizeof req,
        .user = spec->user,
        .profiles = spec->profiles,
        .extension = spec->extension,
        .session = spec->session,
    };
    memset(out, 0, sizeof *out);
    out->denial.size = sizeof out->denial;
    out->rc = license_try_acquire_ex(&req, &out->seat, &out->denial);
    if (out->rc == LICENSE_OK)
        out->held = 1;
    else /* license_last_error is per thread: read it here, in the worker */
        last_error(out->rc, out->detail, sizeof out->detail);
}

/* "user@extension", or "user@session" for logins without a phone. */
static const char *who(const login_spec *spec, char *buf, size_t len) {
    snprintf(buf, len, "%s@%s", spec->user,
             spec->extension ? spec->extension : spec->session ? spec->session : "-");
    return buf;
}

static void print_login(const char *phase, const login_spec *spec, const login_result *r) {
    char name[96];
    printf("  %-8s %-30s %-19s ", phase, who(spec, name, sizeof name), spec->profiles);
    if (r->rc == LICENSE_OK)
        printf("OK       seat %" PRIu64 "\n", r->seat);
    else if (r->rc == LICENSE_ERR_LIMIT_REACHED)
        printf("REFUSED  %s %" PRIu32 "/%" PRIu32 ": %s\n", r->denial.license_type,
               r->denial.used, r->denial.limit, r->detail);
    else
        printf("ERROR    %s: %s\n", license_strerror(r->rc), r->detail);
}

static void logout(const char *phase, const login_spec *spec, login_result *r) {
    char name[96];
    int32_t rc = license_release(r->seat);
    if (rc == LICENSE_OK) {
        r->held = 0;
        printf("  %-8s %-30s %-19s released seat %" PRIu64 "\n", phase,
               who(spec, name, sizeof name), spec->profiles, r->seat);
    } else {
        char detail[256];
        last_error(rc, detail, sizeof detail);
        printf("  %-8s %-30s %-19s release of seat %" PRIu64 " failed: %s\n", phase,
               who(spec, name, sizeof name), spec->profiles, r->seat, detail);
        check_failed = 1;
    }
}

static int usage_of(const char *type, uint32_t *used, uint32_t *limit) {
    return license_usage(type, used, limit) == LICENSE_OK;
}

static void print_usage(const char *when) {
    printf("  usage %s:", when);
    for (uint32_t i = 0; i < license_type_total(); i++) {
        uint32_t used, limit;
        char name[LICENSE_MAX_NAME_LEN + 1];
        if (usage_of(license_type_at(i, name), &used, &limit)) {
            printf(" %s %" PRIu32 "/%" PRIu32, name, used, limit);
            check(used <= limit, "a license type is over its limit");
        }
    }
    printf("\n");
}

/* ---- the storm ---- */

/* One wave: logins [first, last) of storm[], spread over the worker threads. */
static size_t wave_first, wave_last;

static void *storm_worker(void *arg) {
    int worker = (int)(intptr_t)arg;
    pthread_barrier_wait(&storm_start); /* every registrar thread starts at once */
    for (size_t i = wave_first + (size_t)worker; i < wave_last; i += WORKERS)
        do_login(&storm[i], &storm_result[i]);
    return NULL;
}

/* Runs one wave on WORKERS threads, then prints its results in arrival order. */
static void run_wave(const char *title, size_t first, size_t last) {
    printf("\n== %s: %zu logins on %d worker threads at once\n", title, last - first, WORKERS);
    wave_first = first;
    wave_last = last;
    pthread_t threads[WORKERS];
    if (pthread_barrier_init(&storm_start, NULL, WORKERS) != 0) {
        perror("pthread_barrier_init");
        exit(1);
    }
    for (int w = 0; w < WORKERS; w++) {
        if (pthread_create(&threads[w], NULL, storm_worker, (void *)(intptr_t)w) != 0) {
            perror("pthread_create");
            exit(1);
        }
    }
    for (int w = 0; w < WORKERS; w++)
        pthread_join(threads[w], NULL);
    pthread_barrier_destroy(&storm_start);

    for (size_t i = first; i < last; i++) {
        print_login("login", &storm[i], &storm_result[i]);
        tally(&storm_result[i]);
    }
}

static int is_plain_operator(size_t i) {
    return strcmp(storm[i].profiles, "operator") == 0;
}

/* The i-th storm login of `profiles` with outcome `rc` (or -1 if none). */
static long find_storm(const char *profiles, int32_t rc, const char *denied_type, int skip) {
    for (size_t i = 0; i < STORM_LOGINS; i++) {
        const login_result *r = &storm_result[i];
        if (strcmp(storm[i].profiles, profiles) != 0 || r->rc != rc)
            continue;
        if (rc == LICENSE_OK && !r->held)
            continue;
        if (denied_type && strcmp(r->denial.license_type, denied_type) != 0)
            continue;
        if (skip-- == 0)
            return (long)i;
    }
    return -1;
}

static login_result *extra_login(const char *phase, login_spec spec) {
    if (extra_count == sizeof extra_result / sizeof extra_result[0]) {
        fprintf(stderr, "pbx_login: too many extra logins\n");
        exit(1);
    }
    extra_spec[extra_count] = spec;
    login_result *r = &extra_result[extra_count];
    do_login(&extra_spec[extra_count], r);
    print_login(phase, &extra_spec[extra_count], r);
    tally(r);
    extra_count++;
    return r;
}

/* ---- report ---- */

static int print_report(void) {
    size_t needed = 0;
    int32_t rc = license_report(LICENSE_REPORT_TEXT, NULL, 0, &needed); /* size query */
    if (rc != LICENSE_OK)
        return rc;
    for (int attempt = 0; attempt < 3; attempt++) {
        size_t len = needed + 256; /* the report may grow between the two calls */
        char *buf = malloc(len);
        if (!buf) {
            perror("malloc");
            exit(1);
        }
        rc = license_report(LICENSE_REPORT_TEXT, buf, len, &needed);
        if (rc == LICENSE_OK)
            fputs(buf, stdout);
        free(buf);
        if (rc != LICENSE_ERR_BUFFER_TOO_SMALL)
            return rc;
    }
    return rc;
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s SEATS.toml\n", argv[0]);
        return 2;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    printf("pbx_login: seatgate %s (built against header %s)\n", license_version(),
           SEATGATE_VERSION);

    int32_t rc = license_init(argv[1]);
    if (rc != LICENSE_OK) {
        char detail[1024];
        last_error(rc, detail, sizeof detail);
        fprintf(stderr, "pbx_login: cannot load license file %s: %s\n", argv[1], detail);
        return 1;
    }
    printf("license file %s loaded\n", argv[1]);

    uint32_t lints = 0;
    if (license_lint_count(&lints) != LICENSE_OK) {
        fprintf(stderr, "pbx_login: license_lint_count failed\n");
        return 1;
    }
    for (uint32_t i = 0; i < lints; i++) {
        size_t needed = 0;
        char *line = NULL;
        if (license_lint(i, NULL, 0, &needed) == LICENSE_OK && (line = malloc(needed)) &&
            license_lint(i, line, needed, NULL) == LICENSE_OK)
            printf("warning: %s\n", line);
        free(line);
    }

    /* 1. The morning storm: WORKERS registrar threads, every login of a wave at once. */
    run_wave("08:55 early shift", 0, EARLY_SHIFT);
    print_usage("at 08:55");
    run_wave("09:00 rush", EARLY_SHIFT, STORM_LOGINS);
    print_usage("at 09:00");

    /* More operators and admins than seats asked at once: every seat must be taken,
     * by exactly one agent each. */
    unsigned operators_in = 0, admins_in = 0;
    for (size_t i = 0; i < STORM_LOGINS; i++) {
        operators_in += is_plain_operator(i) && storm_result[i].rc == LICENSE_OK;
        admins_in += strcmp(storm[i].profiles, "admin") == 0 && storm_result[i].rc == LICENSE_OK;
    }
    uint32_t cc_used = 0, cc_limit = 0, crm_used = 0, crm_limit = 0;
    if (usage_of("callcenter", &cc_used, &cc_limit))
        check(cc_used == cc_limit && operators_in == cc_limit,
              "the rush did not end with exactly one operator per callcenter seat");
    if (usage_of("crm", &crm_used, &crm_limit))
        check(crm_used == crm_limit && admins_in == crm_limit,
              "the rush did not end with exactly one admin per crm seat");

    /* 2. An operator who got a seat signs in on a softphone too: no second seat. */
    printf("\n== second device\n");
    long twin = find_storm("operator", LICENSE_OK, NULL, 0);
    login_result *softphone = NULL;
    if (twin >= 0) {
        uint32_t before = 0, after = 0, limit = 0;
        usage_of("callcenter", &before, &limit);
        static char device[64];
        snprintf(device, sizeof device, "%s-softphone", storm[twin].extension);
        softphone = extra_login("login", (login_spec){storm[twin].user, "operator", device,
                                                      "a84b4c76e66710@pbx.acme.local"});
        usage_of("callcenter", &after, &limit);
        printf("  callcenter %" PRIu32 "/%" PRIu32 " before, %" PRIu32 "/%" PRIu32
               " after: %s\n",
               before, limit, after, limit,
               after == before ? "the second device took no seat" : "A SECOND SEAT WAS TAKEN");
        check(softphone->rc == LICENSE_OK, "second device refused");
        check(after == before, "second device took a second callcenter seat");
    }

    /* 3. The end of the early shift: some agents log out. */
    printf("\n== logouts\n");
    int logged_out = 0;
    for (size_t i = 0; i < STORM_LOGINS && logged_out < 3; i++) {
        if ((long)i != twin && is_plain_operator(i) && storm_result[i].held) {
            logout("logout", &storm[i], &storm_result[i]);
            logged_out++;
        }
    }
    long admin = find_storm("admin", LICENSE_OK, NULL, 0);
    if (admin >= 0)
        logout("logout", &storm[admin], &storm_result[admin]);
    long sess = find_storm("integration", LICENSE_OK, NULL, 0);
    if (sess >= 0)
        logout("logout", &storm[sess], &storm_result[sess]);
    if (softphone && softphone->held) {
        uint32_t before = 0, after = 0, limit = 0;
        usage_of("callcenter", &before, &limit);
        logout("logout", &extra_spec[extra_count - 1], softphone);
        usage_of("callcenter", &after, &limit);
        printf("  %s still on the desk phone: callcenter %" PRIu32 "/%" PRIu32
               " before, %" PRIu32 "/%" PRIu32 " after (the seat stays)\n",
               storm[twin].user, before, limit, after, limit);
        check(after == before, "releasing one of two devices freed the user's seat");
        /* A duplicate BYE: the same handle again frees nothing. */
        int32_t again = license_release(softphone->seat);
        char detail[256];
        last_error(again, detail, sizeof detail);
        printf("  duplicate release of seat %" PRIu64 " (a repeated BYE): %s: %s\n",
               softphone->seat, license_strerror(again), detail);
        check(again == LICENSE_ERR_UNKNOWN_SEAT, "double release was accepted");
    }
    print_usage("after the logouts");

    /* 4. Agents who were refused at 9:00 try again. */
    printf("\n== retries\n");
    for (int k = 0; k < 2; k++) {
        long i = find_storm("operator", LICENSE_ERR_LIMIT_REACHED, "callcenter", k);
        if (i >= 0) {
            login_result *r = extra_login("retry", storm[i]);
            check(r->rc == LICENSE_OK, "an operator retry was refused after 3 logouts");
        }
    }
    long i_admin = find_storm("admin", LICENSE_ERR_LIMIT_REACHED, "crm", 0);
    if (i_admin >= 0)
        check(extra_login("retry", storm[i_admin])->rc == LICENSE_OK,
              "an admin retry was refused after a logout");
    long i_sess = find_storm("integration", LICENSE_ERR_LIMIT_REACHED, NULL, 0);
    if (i_sess >= 0)
        check(extra_login("retry", storm[i_sess])->rc == LICENSE_OK,
              "a 1C session retry was refused after a session ended");
    print_usage("after the retries");

    /* 5. The admin's view. */
    printf("\n== license report\n");
    rc = print_report();
    if (rc != LICENSE_OK) {
        char detail[256];
        last_error(rc, detail, sizeof detail);
        fprintf(stderr, "pbx_login: license_report failed: %s\n", detail);
        check_failed = 1;
    }

    /* 6. Closing time: everyone logs out, then the PBX stops. */
    unsigned released = 0;
    for (size_t i = 0; i < STORM_LOGINS; i++) {
        if (storm_result[i].held) {
            check(license_release(storm_result[i].seat) == LICENSE_OK, "release failed");
            storm_result[i].held = 0;
            released++;
        }
    }
    for (size_t i = 0; i < extra_count; i++) {
        if (extra_result[i].held) {
            check(license_release(extra_result[i].seat) == LICENSE_OK, "release failed");
            extra_result[i].held = 0;
            released++;
        }
    }
    printf("\n== closing: %u seat handles released\n", released);
    for (uint32_t i = 0; i < license_type_total(); i++) {
        uint32_t used, limit;
        char name[LICENSE_MAX_NAME_LEN + 1];
        if (usage_of(license_type_at(i, name), &used, &limit))
            check(used == 0, "a seat is still counted after every handle was released");
    }
    print_usage("at closing");
    license_shutdown();

    qsort(reasons, reason_count, sizeof reasons[0], by_reason);
    printf("\nsummary: %u logins: %u accepted, %u refused", accepted + refused, accepted,
           refused);
    for (size_t i = 0; i < reason_count; i++)
        printf("%s%s: %u", i == 0 ? " (" : ", ", reasons[i].reason, reasons[i].count);
    printf("%s\n", reason_count ? ")" : "");
    if (check_failed) {
        fprintf(stderr, "pbx_login: a check failed (see CHECK FAILED above)\n");
        return 1;
    }
    return 0;
}
