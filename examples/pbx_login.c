/*
 * pbx_login: a simulated call-center login storm against seatgate.
 *
 *   SEATGATE_CLI=target/release/seatgate build/pbx_login examples/seats.toml   (or: make demo)
 *
 * What a PBX or call-center server does with seatgate:
 *   1. license_set_event_mask(), license_set_event_callback() and license_init() at
 *      startup, refusing to start on a bad license file, and printing the config's
 *      lints as warnings;
 *   2. at every agent login (SIP REGISTER, softphone sign-in, CRM session...),
 *      license_try_acquire_ex() from whichever worker thread handles it; on a
 *      refusal, tell the agent which license type is full (or which one is missing,
 *      reserved, capped or expired);
 *   3. license_release() at logout, license_touch() from the keep-alive;
 *   4. license_reload() when the admin edits the license file, license_release_user()
 *      and license_release_as() for the admin's "log out" buttons, license_stats()
 *      for billing, license_report() for the admin's "online licenses" page;
 *   5. license_emergency_activate() for the admin's "emergency license" button,
 *      license_set_limit() and license_report_tenant() for a hosting provider's
 *      customers, license_trust_key() for vendor-signed license files;
 *   6. license_shutdown() on the way out.
 *
 * The run folder: pbx_login never runs the config in place. It makes a fresh
 * temporary folder, writes a copy of the config there with two dates moved relative
 * to today (support ends in 10 days, the e-mail license in 5), and runs that copy.
 * Its `state_dir = "state"` (relative to the config's folder) so lands there too: the
 * emergency window, which opens once per permanent limit and remembers it in the
 * state file, opens afresh on every run. The folder is removed at exit.
 *
 * The sections, in order:
 *   08:50 license dates             the startup WARNINGs (e-mail and support end soon)
 *                                   and EXPIRED (fax); a fax login is refused
 *   08:55 early shift, 09:00 rush   the morning storm, each wave on WORKERS threads;
 *                                   the support team takes its 2 reserved callcenter
 *                                   seats, 14 operators race for the other 8
 *   second device                   a softphone next to the desk phone takes no seat
 *   logouts                         agents leave; their phones' extension seats linger
 *   retries                         agents refused at 09:00 get the freed seats
 *   lease                           a 1C connector that stops its keep-alive loses its
 *                                   integration_1c seat after the 2 s lease (the demo
 *                                   waits for it), and a waiting session gets the seat
 *   dependent license               recording requires callcenter: refused without it,
 *                                   and released (reason dependency) with the agent's
 *                                   last callcenter seat
 *   reload                          callcenter 10 -> 12 from a copy of the config: nobody
 *                                   logged out, two waiting agents get in; then a broken
 *                                   file changes nothing
 *   admin                           "log out everywhere" for one agent, a kicked session
 *   13:00 shift change              reservations and caps: sales is refused at its cap,
 *                                   an operator is refused the seat reserved for support,
 *                                   a support agent gets it
 *   tenants                         two hosted customers with their own pools: a full
 *                                   tenant takes nothing from the others, a limit raised
 *                                   at run time, one tenant's report
 *   emergency seats                 user is full; the emergency window opens 5 more
 *                                   seats at once, and cannot be opened twice
 *   billing                         license_stats per type: used, peak, acquired, denied
 *   license report                  the admin's text view, with every new column
 *   closing                         everyone logs out (phones linger), shutdown
 *   signed license                  the seatgate CLI makes a vendor key and signs a
 *                                   license; a config naming it is capped by it, and a
 *                                   tampered copy does not load
 *
 * Events (threshold, reload, warnings, expiry, emergency, run-time limits, refusals
 * other than "full", releases other than a logout) arrive on whichever thread caused
 * them, the reaper thread included. The callback only copies them into a buffer; they
 * are printed after the section that caused them, as "event" lines, sorted where the
 * section ran on several threads.
 *
 * Each wave of the morning storm runs on several worker threads at once; every
 * result is kept and the lines are printed afterwards in arrival order, so the
 * output reads the same from run to run (which agents win the last seats, the seat
 * handle numbers, times, dates, key ids and the run folder's name differ).
 *
 * Every expectation is checked; a surprise prints "CHECK FAILED" and the demo exits 1.
 */
#define _POSIX_C_SOURCE 200809L

#include <dirent.h>
#include <inttypes.h>
#include <pthread.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "seatgate.h"

#define WORKERS 4

/* examples/seats.toml: the type whose released seats linger (linger = "30s"). */
#define LINGER_TYPE "extension"
/* examples/seats.toml: integration_1c's lease, and the reaper's interval. */
#define LEASE_S 2.0
#define REAPER_S 0.25
/* examples/seats.toml: callcenter's limit, and the reload's raised one. */
#define CC_LIMIT 10
#define CC_RAISED 12
/* examples/seats.toml: support's reserved callcenter seats, and the sales cap. */
#define SUPPORT_RESERVED 2
#define SALES_CAP 2
/* examples/seats.toml: [emergency] seats (of type user). */
#define EMERGENCY_SEATS 5
/* examples/seats.toml: the type that has ended, and when. */
#define EXPIRED_TYPE "fax"
#define EXPIRED_DATE "2024-12-31"
/* The run folder's copy: days from today until the e-mail license and support end. */
#define EMAIL_DAYS_LEFT 5
#define SUPPORT_DAYS_LEFT 10

/* One login as the PBX sees it. */
typedef struct {
    const char *user;
    const char *profiles;
    const char *extension; /* phone line or device; may be NULL */
    const char *session;   /* SIP Call-ID, CRM session id...; may be NULL */
} login_spec;

/* What came back for one login. */
typedef struct {
    const char *tenant; /* the tenant whose pool served it; NULL: the default one */
    int32_t rc;
    license_seat seat;
    license_denial denial; /* valid when rc is LIMIT_REACHED or REQUIREMENT_MISSING */
    char detail[256];      /* license_last_error() of the worker, on failure */
    int held;              /* 1 while the demo still owns `seat` */
} login_result;

/*
 * The morning, in arrival order, in two waves that each hit the PBX at once.
 * 08:55, the early shift: 2 chat-team operators while chat has 0 seats, the front
 * desk, 3 concurrent 1C sessions for 2 integration_1c seats, and the 2 support agents,
 * who take the 2 callcenter seats reserved for their team.
 * 09:00, the rush: 14 operators for the other 8 callcenter seats, 5 admins for 3 crm
 * seats, and one more chat-team operator. Her refused bundle never costs an operator
 * the last callcenter seat: seatgate refuses only when a type's seats are really held.
 */
static const login_spec storm[] = {
    {"wendy.clarke", "operator,chat_team", "1101", NULL},
    {"1c-connector", "integration", NULL, "1c-sess-7f3a"},
    {"tatiana.novak", "receptionist", "100", NULL},
    {"xavier.dupont", "operator,chat_team", "1102", NULL},
    {"1c-connector", "integration", NULL, "1c-sess-7f3b"},
    {"victor.lobby", "receptionist", "101", NULL},
    {"1c-connector", "integration", NULL, "1c-sess-7f3c"},
    {"ulla.schmidt", "support", "1201", NULL},
    {"pedro.silva", "support", "1202", NULL},
#define EARLY_SHIFT 9
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

/* Seats acquired outside the storm (second device, retries...), released at the end. */
#define MAX_EXTRA 64
static login_result extra_result[MAX_EXTRA];
static login_spec extra_spec[MAX_EXTRA];
static size_t extra_count;

/* ---- tallies for the summary line ---- */

static unsigned accepted, refused;
typedef struct {
    char reason[256]; /* "callcenter full", "recording requires callcenter", "callcenter capped
                         for sales", or a status name; " in TENANT" for a tenant's pool */
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
    char reason[256];
    if (r->rc == LICENSE_ERR_LIMIT_REACHED && r->denial.reason == LICENSE_DENIAL_RESERVED)
        snprintf(reason, sizeof reason, "%s reserved for %s", r->denial.license_type, r->denial.profile);
    else if (r->rc == LICENSE_ERR_LIMIT_REACHED && r->denial.reason == LICENSE_DENIAL_CAPPED)
        snprintf(reason, sizeof reason, "%s capped for %s", r->denial.license_type, r->denial.profile);
    else if (r->rc == LICENSE_ERR_LIMIT_REACHED)
        snprintf(reason, sizeof reason, "%s full", r->denial.license_type);
    else if (r->rc == LICENSE_ERR_REQUIREMENT_MISSING)
        snprintf(reason, sizeof reason, "%s requires %s", r->denial.license_type, r->denial.requires);
    else
        snprintf(reason, sizeof reason, "%s", license_strerror(r->rc));
    if (r->tenant) {
        size_t used = strlen(reason);
        snprintf(reason + used, sizeof reason - used, " in %s", r->tenant);
    }
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

/* ---- time ---- */

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void sleep_s(double seconds) {
    struct timespec ts;
    ts.tv_sec = (time_t)seconds;
    ts.tv_nsec = (long)((seconds - (double)ts.tv_sec) * 1e9);
    while (nanosleep(&ts, &ts) != 0) {
    }
}

/* ---- events: copied by the callback on any thread, printed by main ---- */

typedef struct {
    uint32_t kind, reason;
    char license_type[LICENSE_MAX_NAME_LEN + 1];
    char user[LICENSE_MAX_LABEL_LEN + 1];
    license_seat seat;
    uint32_t used, limit, threshold_percent;
    char detail[512];
    char tenant[LICENSE_MAX_NAME_LEN + 1]; /* empty: the default tenant */
    double arrived; /* now_s() when the callback ran */
} demo_event;

#define MAX_EVENTS 64
static pthread_mutex_t event_lock = PTHREAD_MUTEX_INITIALIZER;
static demo_event events[MAX_EVENTS];
static size_t event_count;   /* events kept so far */
static size_t event_printed; /* events[0 .. event_printed) are printed */
static unsigned events_lost; /* past MAX_EVENTS */
static size_t flushed_first, flushed_last; /* the range the last flush printed */

/* What an admin wants to see: not every login and logout, only what is unusual. */
static int interesting(const license_event *e) {
    switch (e->kind) {
    case LICENSE_EVENT_THRESHOLD_UP:
    case LICENSE_EVENT_THRESHOLD_DOWN:
    case LICENSE_EVENT_RELOADED:
    case LICENSE_EVENT_WARNING:
    case LICENSE_EVENT_EXPIRED:
    case LICENSE_EVENT_EMERGENCY_STARTED:
    case LICENSE_EVENT_EMERGENCY_ENDED:
    case LICENSE_EVENT_LIMIT_CHANGED:
        return 1;
    case LICENSE_EVENT_DENIED:
        return e->reason != LICENSE_DENIAL_FULL;
    case LICENSE_EVENT_RELEASED:
        return e->reason != LICENSE_RELEASE_NORMAL;
    default:
        return 0;
    }
}

/* The listener: short, and safe on several threads at once. */
static void on_event(void *user_data, const license_event *e) {
    (void)user_data;
    /* Fields past e->size were not written by the library (an older one). */
    if (e->size < offsetof(license_event, detail) + sizeof e->detail || !interesting(e))
        return;
    double arrived = now_s();
    pthread_mutex_lock(&event_lock);
    if (event_count < MAX_EVENTS) {
        demo_event *d = &events[event_count++];
        d->kind = e->kind;
        d->reason = e->reason;
        snprintf(d->license_type, sizeof d->license_type, "%s", e->license_type ? e->license_type : "");
        snprintf(d->user, sizeof d->user, "%s", e->user ? e->user : "");
        d->seat = e->seat;
        d->used = e->used;
        d->limit = e->limit;
        d->threshold_percent = e->threshold_percent;
        snprintf(d->detail, sizeof d->detail, "%s", e->detail ? e->detail : "");
        /* `tenant` came with the policy features: only a library that wrote it has it. */
        int has_tenant = e->size >= offsetof(license_event, tenant) + sizeof e->tenant && e->tenant;
        snprintf(d->tenant, sizeof d->tenant, "%s", has_tenant ? e->tenant : "");
        d->arrived = arrived;
    } else {
        events_lost++;
    }
    pthread_mutex_unlock(&event_lock);
}

static const char *release_reason_name(uint32_t why) {
    switch (why) {
    case LICENSE_RELEASE_NORMAL: return "normal";
    case LICENSE_RELEASE_EXPIRED: return "expired";
    case LICENSE_RELEASE_ADMIN: return "admin";
    case LICENSE_RELEASE_DEPENDENCY: return "dependency";
    case LICENSE_RELEASE_SHUTDOWN: return "shutdown";
    case LICENSE_RELEASE_OWNER_GONE: return "owner gone";
    case LICENSE_RELEASE_RECONCILED: return "reconciled";
    case LICENSE_RELEASE_EMERGENCY_EXPIRED: return "emergency window ended";
    case LICENSE_RELEASE_LICENSE_EXPIRED: return "license expired";
    default: return "?";
    }
}

static const char *denial_reason_name(uint32_t why) {
    switch (why) {
    case LICENSE_DENIAL_FULL: return "full";
    case LICENSE_DENIAL_NO_SEATS: return "no seats licensed";
    case LICENSE_DENIAL_OVER_LIMIT: return "over limit";
    case LICENSE_DENIAL_REQUIREMENT_MISSING: return "requirement missing";
    case LICENSE_DENIAL_RESERVED: return "reserved for another profile";
    case LICENSE_DENIAL_CAPPED: return "profile capped";
    case LICENSE_DENIAL_EXPIRED: return "license expired";
    default: return "?";
    }
}

static void print_event(const demo_event *e) {
    char pool[LICENSE_MAX_NAME_LEN + 16] = "";
    if (e->tenant[0])
        snprintf(pool, sizeof pool, " [tenant %s]", e->tenant);
    switch (e->kind) {
    case LICENSE_EVENT_THRESHOLD_UP:
    case LICENSE_EVENT_THRESHOLD_DOWN:
        printf("  event    threshold: %s %s %" PRIu32 "%% (%" PRIu32 "/%" PRIu32 ")%s\n",
               e->license_type, e->kind == LICENSE_EVENT_THRESHOLD_UP ? "reached" : "fell under",
               e->threshold_percent, e->used, e->limit, pool);
        break;
    case LICENSE_EVENT_DENIED:
        printf("  event    denied:    %s refused %s: %s (%" PRIu32 "/%" PRIu32 ")%s\n",
               e->license_type, e->user, denial_reason_name(e->reason), e->used, e->limit, pool);
        break;
    case LICENSE_EVENT_RELEASED:
        printf("  event    released:  %s of %s, seat %" PRIu64 ": %s (now %" PRIu32 "/%" PRIu32 ")%s\n",
               e->license_type, e->user, e->seat, release_reason_name(e->reason), e->used, e->limit, pool);
        break;
    case LICENSE_EVENT_RELOADED:
        printf("  event    reloaded:  %s\n", e->detail);
        break;
    case LICENSE_EVENT_WARNING:
        printf("  event    warning:   %s\n", e->detail);
        break;
    case LICENSE_EVENT_EXPIRED:
        printf("  event    expired:   %s\n", e->detail);
        break;
    case LICENSE_EVENT_EMERGENCY_STARTED:
    case LICENSE_EVENT_EMERGENCY_ENDED:
        printf("  event    emergency: %s\n", e->detail);
        break;
    case LICENSE_EVENT_LIMIT_CHANGED:
        printf("  event    limit:     %s (now %" PRIu32 ")\n", e->detail, e->limit);
        break;
    default:
        printf("  event    %" PRIu32 ": %s\n", e->kind, e->detail);
    }
}

/* A stable order for events that several threads raised at once. */
static int by_event(const void *a, const void *b) {
    const demo_event *x = a, *y = b;
    if (x->kind != y->kind)
        return x->kind < y->kind ? -1 : 1;
    int c = strcmp(x->license_type, y->license_type);
    if (c == 0)
        c = strcmp(x->user, y->user);
    if (c == 0 && x->reason != y->reason)
        c = x->reason < y->reason ? -1 : 1;
    if (c == 0) /* warnings carry no type: their sentences tell them apart */
        c = strcmp(x->detail, y->detail);
    return c;
}

/* Prints the events that arrived since the last flush (sorted when the section ran
 * on several threads), and checks that there are `expected` of them. */
static void flush_events(int sorted, size_t expected, const char *what) {
    pthread_mutex_lock(&event_lock);
    size_t first = event_printed, last = event_count;
    if (sorted)
        qsort(&events[first], last - first, sizeof events[0], by_event);
    for (size_t i = first; i < last; i++)
        print_event(&events[i]);
    event_printed = last;
    flushed_first = first;
    flushed_last = last;
    unsigned lost = events_lost;
    pthread_mutex_unlock(&event_lock);
    if (last - first != expected) {
        printf("  CHECK FAILED: %zu events %s, expected %zu\n", last - first, what, expected);
        check_failed = 1;
    }
    check(lost == 0, "the demo's event buffer overflowed");
}

/* How many of the events the last flush printed match (reason/type/seat: any if
 * UINT32_MAX / NULL / 0). Called by main only, after the flush. */
static unsigned flushed(uint32_t kind, uint32_t reason, const char *type, license_seat seat) {
    unsigned n = 0;
    pthread_mutex_lock(&event_lock);
    for (size_t i = flushed_first; i < flushed_last; i++) {
        const demo_event *e = &events[i];
        n += e->kind == kind && (reason == UINT32_MAX || e->reason == reason) &&
             (!type || strcmp(e->license_type, type) == 0) && (seat == 0 || e->seat == seat);
    }
    pthread_mutex_unlock(&event_lock);
    return n;
}

/* Whether an event of `kind`/`reason` for `seat` has arrived (flushed or not), and when. */
static int event_arrived(uint32_t kind, uint32_t reason, license_seat seat, double *when) {
    int found = 0;
    pthread_mutex_lock(&event_lock);
    for (size_t i = 0; i < event_count && !found; i++) {
        if (events[i].kind == kind && events[i].reason == reason && events[i].seat == seat) {
            found = 1;
            *when = events[i].arrived;
        }
    }
    pthread_mutex_unlock(&event_lock);
    return found;
}

/* How many of the events the last flush printed are of `kind` and say `words`. */
static unsigned flushed_saying(uint32_t kind, const char *words) {
    unsigned n = 0;
    pthread_mutex_lock(&event_lock);
    for (size_t i = flushed_first; i < flushed_last; i++)
        n += events[i].kind == kind && strstr(events[i].detail, words) != NULL;
    pthread_mutex_unlock(&event_lock);
    return n;
}

/* Waits (up to `timeout` seconds) until `n` events not printed yet have arrived: for
 * events that another thread (the reaper) may deliver a moment after the call. */
static void wait_for_events(size_t n, double timeout) {
    double deadline = now_s() + timeout;
    for (;;) {
        pthread_mutex_lock(&event_lock);
        size_t pending = event_count - event_printed;
        pthread_mutex_unlock(&event_lock);
        if (pending >= n || now_s() > deadline)
            return;
        sleep_s(0.01);
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

/* One login, in the pool of `tenant` (NULL: the default tenant). */
static void do_login(const login_spec *spec, const char *tenant, login_result *out) {
    license_request req = {
        .size = sizeof req,
        .user = spec->user,
        .profiles = spec->profiles,
        .extension = spec->extension,
        .session = spec->session,
        .tenant = tenant,
    };
    memset(out, 0, sizeof *out);
    out->tenant = tenant;
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
    char name[96], where[128];
    who(spec, name, sizeof name);
    if (r->tenant) /* a tenant's login: its pool, in front of the name */
        snprintf(where, sizeof where, "%s: %s", r->tenant, name);
    else
        snprintf(where, sizeof where, "%s", name);
    printf("  %-8s %-30s %-19s ", phase, where, spec->profiles);
    if (r->rc == LICENSE_OK)
        printf("OK       seat %" PRIu64 "\n", r->seat);
    else if (r->rc == LICENSE_ERR_LIMIT_REACHED && r->denial.reason == LICENSE_DENIAL_CAPPED)
        printf("REFUSED  %s capped for %s %" PRIu32 "/%" PRIu32 ": %s\n", r->denial.license_type,
               r->denial.profile, r->denial.used, r->denial.limit, r->detail);
    else if (r->rc == LICENSE_ERR_LIMIT_REACHED && r->denial.reason == LICENSE_DENIAL_RESERVED)
        printf("REFUSED  %s %" PRIu32 "/%" PRIu32 ", the rest reserved for %s: %s\n",
               r->denial.license_type, r->denial.used, r->denial.limit, r->denial.profile, r->detail);
    else if (r->rc == LICENSE_ERR_EXPIRED)
        printf("REFUSED  %s: %s\n", license_strerror(r->rc), r->detail);
    else if (r->rc == LICENSE_ERR_LIMIT_REACHED)
        printf("REFUSED  %s %" PRIu32 "/%" PRIu32 ": %s\n", r->denial.license_type,
               r->denial.used, r->denial.limit, r->detail);
    else if (r->rc == LICENSE_ERR_REQUIREMENT_MISSING)
        printf("REFUSED  %s needs %s: %s\n", r->denial.license_type, r->denial.requires, r->detail);
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

static uint32_t used_of(const char *type) {
    uint32_t used = 0, limit = 0;
    return usage_of(type, &used, &limit) ? used : UINT32_MAX;
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

/* Every type's used/limit, to compare before and after a reload. */
typedef struct {
    uint32_t n;
    char name[24][LICENSE_MAX_NAME_LEN + 1];
    uint32_t used[24], limit[24];
} usage_snapshot;

static void snapshot(usage_snapshot *s) {
    memset(s, 0, sizeof *s);
    for (uint32_t i = 0; i < license_type_total() && s->n < 24; i++, s->n++) {
        license_type_at(i, s->name[s->n]);
        usage_of(s->name[s->n], &s->used[s->n], &s->limit[s->n]);
    }
}

/* ---- the storm ---- */

/* One wave: logins [first, last) of storm[], spread over the worker threads. */
static size_t wave_first, wave_last;
static double early_shift_from, early_shift_to; /* when the early shift's logins ran */

static void *storm_worker(void *arg) {
    int worker = (int)(intptr_t)arg;
    pthread_barrier_wait(&storm_start); /* every registrar thread starts at once */
    for (size_t i = wave_first + (size_t)worker; i < wave_last; i += WORKERS)
        do_login(&storm[i], NULL, &storm_result[i]);
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

/* A login outside the storm, in the pool of `tenant` (NULL: the default tenant). */
static login_result *extra_login_in(const char *phase, const char *tenant, login_spec spec) {
    if (extra_count == MAX_EXTRA) {
        fprintf(stderr, "pbx_login: too many extra logins\n");
        exit(1);
    }
    extra_spec[extra_count] = spec;
    login_result *r = &extra_result[extra_count];
    do_login(&extra_spec[extra_count], tenant, r);
    print_login(phase, &extra_spec[extra_count], r);
    tally(r);
    extra_count++;
    return r;
}

static login_result *extra_login(const char *phase, login_spec spec) {
    return extra_login_in(phase, NULL, spec);
}

static const login_spec *spec_of(const login_result *r) {
    if (r >= storm_result && r < storm_result + STORM_LOGINS)
        return &storm[r - storm_result];
    return &extra_spec[r - extra_result];
}

/* Every handle the demo holds, one call each (a reload must keep them all). */
static unsigned for_each_held(int32_t (*fn)(license_seat), unsigned *failed) {
    unsigned ok = 0;
    *failed = 0;
    for (size_t i = 0; i < STORM_LOGINS + extra_count; i++) {
        login_result *r = i < STORM_LOGINS ? &storm_result[i] : &extra_result[i - STORM_LOGINS];
        if (!r->held)
            continue;
        if (fn(r->seat) == LICENSE_OK)
            ok++;
        else
            (*failed)++;
    }
    return ok;
}

/* The demo's own bookkeeping after seatgate released every handle of `user`. */
static unsigned forget_user(const char *user) {
    unsigned n = 0;
    for (size_t i = 0; i < STORM_LOGINS + extra_count; i++) {
        login_result *r = i < STORM_LOGINS ? &storm_result[i] : &extra_result[i - STORM_LOGINS];
        if (r->held && strcmp(spec_of(r)->user, user) == 0) {
            r->held = 0;
            n++;
        }
    }
    return n;
}

/* Logins of the default tenant that got in with a profile list containing `profile`,
 * and its refusals by `type`. */
static unsigned count_results(const char *profile, const char *refused_by) {
    unsigned n = 0;
    for (size_t i = 0; i < STORM_LOGINS + extra_count; i++) {
        const login_result *r = i < STORM_LOGINS ? &storm_result[i] : &extra_result[i - STORM_LOGINS];
        const login_spec *s = spec_of(r);
        if (r->tenant) /* another pool: its counters are the tenant's */
            continue;
        if (profile && r->rc == LICENSE_OK && strstr(s->profiles, profile))
            n++;
        /* An expired type's refusal is a denial too (LICENSE_DENIAL_EXPIRED). */
        if (refused_by &&
            (r->rc == LICENSE_ERR_LIMIT_REACHED || r->rc == LICENSE_ERR_REQUIREMENT_MISSING ||
             r->rc == LICENSE_ERR_EXPIRED) &&
            strcmp(r->denial.license_type, refused_by) == 0)
            n++;
    }
    return n;
}

/* ---- the run folder: a dated copy of the config, its state_dir, the reload's copies ---- */

static char run_dir[256];        /* a fresh temporary folder, removed at exit */
static char run_config[320];     /* run_dir/seats.toml: what license_init loads */
static char running_config[320]; /* the config file running now (a reload changes it) */
static char today[16];           /* YYYY-MM-DD, UTC */

/* `path` and everything under it, without following links. */
static void remove_tree(const char *path) {
    struct stat st;
    if (lstat(path, &st) != 0)
        return;
    if (S_ISDIR(st.st_mode)) {
        DIR *dir = opendir(path);
        if (dir) {
            struct dirent *entry;
            while ((entry = readdir(dir)) != NULL) {
                if (strcmp(entry->d_name, ".") == 0 || strcmp(entry->d_name, "..") == 0)
                    continue;
                char child[512];
                snprintf(child, sizeof child, "%s/%s", path, entry->d_name);
                remove_tree(child);
            }
            closedir(dir);
        }
        rmdir(path);
    } else {
        unlink(path);
    }
}

static void remove_run_dir(void) {
    if (run_dir[0])
        remove_tree(run_dir);
    run_dir[0] = '\0';
}

static char *read_file(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    size_t cap = 4096, len = 0;
    char *text = malloc(cap);
    size_t n;
    while (text && (n = fread(text + len, 1, cap - len - 1, f)) > 0) {
        len += n;
        if (cap - len - 1 == 0) {
            char *bigger = realloc(text, cap * 2);
            if (!bigger) {
                free(text);
                text = NULL;
                break;
            }
            text = bigger;
            cap *= 2;
        }
    }
    fclose(f);
    if (text)
        text[len] = '\0';
    return text;
}

static int write_file(const char *path, const char *text) {
    FILE *out = fopen(path, "w");
    if (!out)
        return 0;
    int ok = fputs(text, out) >= 0;
    return fclose(out) == 0 && ok;
}

/* One line to replace in a copy of a config: the `key = ...` line of `section`
 * ("[licenses.callcenter]"; "" for the top level, before any table). */
typedef struct {
    const char *section;
    const char *key;
    const char *replacement; /* the whole new line */
    unsigned line;           /* out: the replaced line's number */
} config_edit;

/*
 * Writes `config` to `path` with each edit's line replaced. Returns 1 if every edit
 * found its line and the file was written.
 */
static int write_config_copy(const char *config, const char *path, config_edit *edits, size_t n_edits) {
    FILE *out = fopen(path, "w");
    if (!out) {
        perror(path);
        return 0;
    }
    const char *section = "";
    size_t section_len = 0, replaced = 0;
    unsigned line = 0;
    for (size_t e = 0; e < n_edits; e++)
        edits[e].line = 0;
    for (const char *p = config; *p;) {
        const char *end = strchr(p, '\n');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        const char *t = p;
        while (t < p + len && (*t == ' ' || *t == '\t'))
            t++;
        line++;
        if (*t == '[') {
            const char *close = memchr(t, ']', (size_t)(p + len - t));
            section = t;
            section_len = close ? (size_t)(close - t) + 1 : 0;
        }
        const config_edit *edit = NULL;
        for (size_t e = 0; e < n_edits && !edit; e++) {
            size_t klen = strlen(edits[e].key);
            int in_section = strlen(edits[e].section) == section_len &&
                             strncmp(section, edits[e].section, section_len) == 0;
            if (in_section && edits[e].line == 0 && strncmp(t, edits[e].key, klen) == 0 &&
                (t[klen] == ' ' || t[klen] == '=')) {
                edits[e].line = line;
                edit = &edits[e];
            }
        }
        if (edit) {
            fprintf(out, "%s\n", edit->replacement);
            replaced++;
        } else {
            fprintf(out, "%.*s\n", (int)len, p);
        }
        p = end ? end + 1 : p + len;
    }
    return fclose(out) == 0 && replaced == n_edits;
}

/* The UTC day `days` from now, as YYYY-MM-DD. */
static void day_from_today(int days, char out[16]) {
    time_t t = time(NULL) + (time_t)days * 86400;
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, 16, "%Y-%m-%d", &tm);
}

static void format_utc(int64_t unix_s, char out[32]) {
    time_t t = (time_t)unix_s;
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* The dates pbx_login writes into the run folder's copy. */
static char email_until[16], support_until[16];

/*
 * Makes the run folder: a fresh temporary folder with the config's copy (the e-mail
 * license and the support subscription ending a few days from today, so the early
 * warnings show whatever the date) and an empty `state` folder for its state_dir.
 */
static int prepare_run_folder(const char *config_path) {
    const char *tmp = getenv("TMPDIR");
    snprintf(run_dir, sizeof run_dir, "%s/pbx_login-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(run_dir)) {
        perror("pbx_login: mkdtemp");
        run_dir[0] = '\0';
        return 0;
    }
    char state[300];
    snprintf(state, sizeof state, "%s/state", run_dir);
    if (mkdir(state, 0700) != 0) {
        perror("pbx_login: mkdir state");
        return 0;
    }
    char *config = read_file(config_path);
    if (!config) {
        fprintf(stderr, "pbx_login: cannot read %s\n", config_path);
        return 0;
    }
    day_from_today(0, today);
    day_from_today(EMAIL_DAYS_LEFT, email_until);
    day_from_today(SUPPORT_DAYS_LEFT, support_until);
    char email_line[96], support_line[96];
    snprintf(email_line, sizeof email_line, "valid_until = \"%s\"      # pbx_login: %d days from today",
             email_until, EMAIL_DAYS_LEFT);
    snprintf(support_line, sizeof support_line, "support_until = \"%s\"    # pbx_login: %d days from today",
             support_until, SUPPORT_DAYS_LEFT);
    config_edit dates[] = {
        {"[licensee]", "support_until", support_line, 0},
        {"[licenses.email]", "valid_until", email_line, 0},
    };
    snprintf(run_config, sizeof run_config, "%s/seats.toml", run_dir);
    int ok = write_config_copy(config, run_config, dates, 2);
    free(config);
    if (!ok) {
        fprintf(stderr, "pbx_login: %s has no [licensee] support_until or [licenses.email] valid_until to move\n",
                config_path);
        return 0;
    }
    snprintf(running_config, sizeof running_config, "%s", run_config);
    printf("run folder %s: a copy of %s as seats.toml, with support_until = %s (line %u) and\n"
           "  email's valid_until = %s (line %u), and its state_dir \"state\" (today is %s, UTC)\n",
           run_dir, config_path, support_until, dates[0].line, email_until, dates[1].line, today);
    return 1;
}

/* ---- the seatgate command (SEATGATE_CLI), for the signed license ---- */

extern char **environ;

/*
 * Runs `argv` (argv[0] a path) with stdout and stderr into `out`; returns its exit
 * status, or -1 if it could not run.
 */
static int run_command(char *const argv[], char *out, size_t len) {
    int pipe_fd[2];
    out[0] = '\0';
    if (pipe(pipe_fd) != 0)
        return -1;
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addclose(&actions, pipe_fd[0]);
    posix_spawn_file_actions_adddup2(&actions, pipe_fd[1], 1);
    posix_spawn_file_actions_adddup2(&actions, pipe_fd[1], 2);
    posix_spawn_file_actions_addclose(&actions, pipe_fd[1]);
    pid_t pid;
    int rc = posix_spawn(&pid, argv[0], &actions, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&actions);
    close(pipe_fd[1]);
    size_t used = 0;
    ssize_t n;
    char chunk[512];
    while ((n = read(pipe_fd[0], chunk, sizeof chunk)) > 0) {
        size_t keep = (size_t)n < len - 1 - used ? (size_t)n : len - 1 - used;
        memcpy(out + used, chunk, keep);
        used += keep;
    }
    out[used] = '\0';
    close(pipe_fd[0]);
    if (rc != 0)
        return -1;
    int status;
    if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status))
        return -1;
    return WEXITSTATUS(status);
}

/* Prints a command's output, each line indented under its command line. */
static void print_indented(const char *text) {
    for (const char *p = text; *p;) {
        const char *end = strchr(p, '\n');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        printf("    | %.*s\n", (int)len, p);
        p = end ? end + 1 : p + len;
    }
}

/* ---- report ---- */

/* The text report of the default tenant (`tenant` NULL) or of one tenant, as a
 * malloc'd string; NULL on failure, with the status in *rc_out. */
static char *report_text(const char *tenant, int32_t *rc_out) {
    size_t needed = 0;
    int32_t rc = tenant ? license_report_tenant(tenant, LICENSE_REPORT_TEXT, 0, 0, NULL, 0, &needed)
                        : license_report(LICENSE_REPORT_TEXT, NULL, 0, &needed); /* size query */
    for (int attempt = 0; attempt < 3 && rc == LICENSE_OK; attempt++) {
        size_t len = needed + 256; /* the report may grow between the two calls */
        char *buf = malloc(len);
        if (!buf) {
            perror("malloc");
            exit(1);
        }
        rc = tenant ? license_report_tenant(tenant, LICENSE_REPORT_TEXT, 0, 0, buf, len, &needed)
                    : license_report(LICENSE_REPORT_TEXT, buf, len, &needed);
        if (rc == LICENSE_OK) {
            *rc_out = rc;
            return buf;
        }
        free(buf);
        if (rc == LICENSE_ERR_BUFFER_TOO_SMALL)
            rc = LICENSE_OK; /* try again with the new size */
    }
    *rc_out = rc;
    return NULL;
}

static int print_report(const char *tenant) {
    int32_t rc;
    char *text = report_text(tenant, &rc);
    if (text)
        fputs(text, stdout);
    free(text);
    return rc;
}

/* Prints the lines of the default tenant's report that start with `start` (after
 * the indentation), indented under the section; returns how many. */
static unsigned print_report_lines(const char *start) {
    int32_t rc;
    char *text = report_text(NULL, &rc);
    unsigned n = 0;
    for (const char *p = text; p && *p;) {
        const char *end = strchr(p, '\n');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        const char *t = p;
        while (*t == ' ')
            t++;
        if (strncmp(t, start, strlen(start)) == 0) {
            printf("  report | %.*s\n", (int)len, p);
            n++;
        }
        p = end ? end + 1 : p + len;
    }
    free(text);
    return n;
}

/* Whether the default tenant's report says `words`. */
static int report_says(const char *words) {
    int32_t rc;
    char *text = report_text(NULL, &rc);
    int found = text && strstr(text, words) != NULL;
    free(text);
    return found;
}

/* ---- the seat lifecycle, after the morning ---- */

/*
 * Leases: integration_1c seats last 2 s unless renewed. `alive` (the retried 1C
 * session) keeps calling license_touch, the other session still held has hung: the
 * reaper reclaims it, and a session waiting for a seat gets it. Returns that
 * session's result (NULL if it did not get in).
 */
static login_result *lease_section(login_result *alive) {
    printf("\n== lease: a 1C session that stops its keep-alive loses its seat (integration_1c lease %.0fs)\n",
           LEASE_S);
    long silent = find_storm("integration", LICENSE_OK, NULL, 0);
    check(silent >= 0 && alive && alive->held, "two 1C sessions should be held here");
    login_result *waiting = NULL;
    if (silent >= 0 && alive && alive->held) {
        login_result *hung = &storm_result[silent];
        char alive_name[96], hung_name[96];
        who(spec_of(alive), alive_name, sizeof alive_name);
        who(&storm[silent], hung_name, sizeof hung_name);
        printf("  %s calls license_touch every %.0f ms; %s has hung (no keep-alive)\n", alive_name,
               REAPER_S * 1000, hung_name);
        waiting = extra_login("login", (login_spec){"1c-connector", "integration", NULL, "1c-sess-7f3d"});
        /* Only while the clock proves the hung session's lease had not run out yet. */
        if (now_s() < early_shift_from + LEASE_S)
            check(waiting->rc == LICENSE_ERR_LIMIT_REACHED,
                  "a third 1C session got in while both seats were held");
        printf("  waiting for the hung session's lease to run out (the reaper looks every %.0f ms)\n",
               REAPER_S * 1000);

        /* The keep-alive loop of the live connector, until the hung one is reclaimed. */
        double expired_at = 0, deadline = now_s() + LEASE_S + 5.0;
        unsigned touches = 0, touch_failures = 0;
        while (!event_arrived(LICENSE_EVENT_RELEASED, LICENSE_RELEASE_EXPIRED, hung->seat, &expired_at) &&
               now_s() < deadline) {
            sleep_s(REAPER_S);
            touches++;
            touch_failures += license_touch(alive->seat) != LICENSE_OK;
        }
        int reclaimed = expired_at != 0;
        check(reclaimed, "the hung 1C session was not reclaimed after its lease");
        check(touch_failures == 0 && touches > 0,
              "a keep-alive (license_touch) of the live 1C session failed");
        /* Never before the lease: it was acquired during the early shift at the soonest. */
        check(!reclaimed || expired_at >= early_shift_from + LEASE_S,
              "a lease was reclaimed before it ran out");
        check(!reclaimed || expired_at - early_shift_to < LEASE_S + REAPER_S + 2.0,
              "a lease was reclaimed more than 2 s after it ran out and the reaper's interval");
        flush_events(0, 1, "for the lease (the hung session expiring)");
        check(flushed(LICENSE_EVENT_RELEASED, LICENSE_RELEASE_EXPIRED, "integration_1c", hung->seat) == 1,
              "no RELEASED (expired) event for the hung 1C session");

        char detail[256];
        int32_t rc = license_touch(alive->seat);
        printf("  %-8s %-30s %-19s %s\n", "touch", alive_name, "integration",
               rc == LICENSE_OK ? "OK       lease renewed: still held" : license_strerror(rc));
        check(rc == LICENSE_OK, "the live 1C session lost its seat");
        rc = license_touch(hung->seat);
        last_error(rc, detail, sizeof detail);
        printf("  %-8s %-30s %-19s %s: %s\n", "touch", hung_name, "integration",
               rc == LICENSE_OK ? "OK" : license_strerror(rc), detail);
        check(rc == LICENSE_ERR_UNKNOWN_SEAT, "the expired handle still answers license_touch");
        if (rc == LICENSE_ERR_UNKNOWN_SEAT)
            hung->held = 0;
        login_result *r = extra_login("retry", extra_spec[waiting - extra_result]);
        check(r->rc == LICENSE_OK, "the waiting 1C session did not get the reclaimed seat");
        waiting = r->rc == LICENSE_OK ? r : NULL;
    }
    flush_events(0, 0, "after the waiting session got in");
    print_usage("after the lease");
    return waiting;
}

/* A recorder session ("call_recording") for the user of storm login `i`. */
static login_result *recording_login(long i, char session[], size_t len) {
    snprintf(session, len, "rec-%s", storm[i].extension);
    return extra_login("login", (login_spec){storm[i].user, "call_recording", NULL, session});
}

/* A dependent license: recording requires callcenter. Not `twin`, who is for later. */
static void dependency_section(long twin) {
    printf("\n== dependent license: recording requires callcenter\n");
    long desk = find_storm("receptionist", LICENSE_OK, NULL, 0);
    if (desk >= 0) {
        static char session[64];
        login_result *r = recording_login(desk, session, sizeof session);
        check(r->rc == LICENSE_ERR_REQUIREMENT_MISSING &&
                  r->denial.reason == LICENSE_DENIAL_REQUIREMENT_MISSING &&
                  strcmp(r->denial.license_type, "recording") == 0 &&
                  strcmp(r->denial.requires, "callcenter") == 0,
              "recording without callcenter was not refused as REQUIREMENT_MISSING naming callcenter");
    }
    flush_events(0, 1, "for the recording refusal");
    check(flushed(LICENSE_EVENT_DENIED, LICENSE_DENIAL_REQUIREMENT_MISSING, "recording", 0) == 1,
          "no DENIED (requirement missing) event for recording");

    long agent = -1;
    for (size_t i = 0; i < STORM_LOGINS && agent < 0; i++)
        if ((long)i != twin && is_plain_operator(i) && storm_result[i].held)
            agent = (long)i;
    check(agent >= 0, "no operator left for the recording demo");
    if (agent >= 0) {
        static char session[64];
        login_result *rec = recording_login(agent, session, sizeof session);
        check(rec->rc == LICENSE_OK, "an operator holding callcenter was refused recording");
        printf("  recording %" PRIu32 "/4 while %s records calls; then %s logs out of the callcenter\n",
               used_of("recording"), storm[agent].user, storm[agent].user);
        logout("logout", &storm[agent], &storm_result[agent]);
        flush_events(0, 1, "for the logout (recording released with it)");
        check(flushed(LICENSE_EVENT_RELEASED, LICENSE_RELEASE_DEPENDENCY, "recording", rec->seat) == 1,
              "no RELEASED (dependency) event for the agent's recording seat");
        if (rec->rc == LICENSE_OK) {
            char name[96], detail[256];
            int32_t rc = license_release(rec->seat);
            last_error(rc, detail, sizeof detail);
            printf("  %-8s %-30s %-19s %s: %s\n", "logout", who(spec_of(rec), name, sizeof name),
                   "call_recording", rc == LICENSE_OK ? "released" : license_strerror(rc), detail);
            check(rc == LICENSE_ERR_UNKNOWN_SEAT, "the recording handle outlived its callcenter seat");
            rec->held = 0;
        }
        check(used_of("recording") == 0, "a recording seat is still counted after the cascade");
    }
    print_usage("after the cascade");
}

/*
 * Reload: the agents still waiting since 09:00 take the last callcenter seats, the
 * admin buys two more and reloads a copy of the running config with limit CC_RAISED:
 * nobody is logged out, and two more agents get in. Then a broken copy changes nothing.
 * The copies go into the run folder, next to the running config, so that its relative
 * state_dir stays the same folder.
 */
static void reload_section(void) {
    printf("\n== reload: callcenter %d -> %d seats, nobody logged out\n", CC_LIMIT, CC_RAISED);
    int waiting_k = 2; /* refused at 09:00 and not retried yet */
    for (int n = 0; n < 3; n++, waiting_k++) {
        long i = find_storm("operator", LICENSE_ERR_LIMIT_REACHED, "callcenter", waiting_k);
        if (i < 0)
            break;
        login_result *r = extra_login("retry", storm[i]);
        if (n < 2)
            check(r->rc == LICENSE_OK, "an operator retry was refused while callcenter had free seats");
        else
            check(r->rc == LICENSE_ERR_LIMIT_REACHED && strcmp(r->denial.license_type, "callcenter") == 0 &&
                      r->denial.reason == LICENSE_DENIAL_FULL,
                  "callcenter took one operator too many before the reload");
    }
    waiting_k--; /* the one just refused waits on */

    char *config = read_file(running_config);
    check(config != NULL, "cannot read the config file for the reload demo");
    char raised[320], broken[320], raised_line[96], broken_line[32];
    snprintf(raised, sizeof raised, "%s/seats-raised.toml", run_dir);
    snprintf(broken, sizeof broken, "%s/seats-broken.toml", run_dir);
    snprintf(raised_line, sizeof raised_line, "limit = %d                      # two more seats bought",
             CC_RAISED);
    snprintf(broken_line, sizeof broken_line, "limt = %d", CC_RAISED);
    config_edit raise = {"[licenses.callcenter]", "limit", raised_line, 0};
    int raised_ok = config && write_config_copy(config, raised, &raise, 1);
    check(raised_ok, "cannot write the raised config");
    if (raised_ok) {
        usage_snapshot before, after;
        snapshot(&before);
        unsigned gone = 0, held_before = for_each_held(license_touch, &gone);
        printf("  wrote %s: a copy with [licenses.callcenter] limit = %d (line %u)\n", raised, CC_RAISED,
               raise.line);
        int32_t rc = license_reload(raised);
        char detail[512] = "OK";
        if (rc != LICENSE_OK)
            last_error(rc, detail, sizeof detail);
        printf("  license_reload(%s): %s\n", raised, detail);
        check(rc == LICENSE_OK, "the reload failed");
        if (rc == LICENSE_OK)
            snprintf(running_config, sizeof running_config, "%s", raised);
        flush_events(0, 1, "for the reload");
        check(flushed(LICENSE_EVENT_RELOADED, 0, NULL, 0) == 1, "no RELOADED event");
        char change[64];
        snprintf(change, sizeof change, "'callcenter' limit %d -> %d", CC_LIMIT, CC_RAISED);
        check(flushed_saying(LICENSE_EVENT_RELOADED, change) == 1,
              "the RELOADED event does not say which limit changed");

        snapshot(&after);
        int same = before.n == after.n;
        for (uint32_t t = 0; same && t < before.n; t++) {
            int is_cc = strcmp(before.name[t], "callcenter") == 0;
            same = strcmp(before.name[t], after.name[t]) == 0 && before.used[t] == after.used[t] &&
                   after.limit[t] == (is_cc ? CC_RAISED : before.limit[t]);
        }
        unsigned held_after = for_each_held(license_touch, &gone);
        printf("  every seat held before the reload is still held: %u of %u handles answer license_touch,"
               " usage unchanged (callcenter %" PRIu32 "/%d)\n",
               held_after, held_before, used_of("callcenter"), CC_RAISED);
        check(same, "the reload changed a count or a limit other than callcenter's");
        check(held_after == held_before && gone == 0, "a seat handle held before the reload is gone");

        for (int n = 0; n < 2; n++, waiting_k++) {
            long i = find_storm("operator", LICENSE_ERR_LIMIT_REACHED, "callcenter", waiting_k);
            check(i >= 0, "no refused operator left to log in after the reload");
            if (i >= 0)
                check(extra_login("login", storm[i])->rc == LICENSE_OK,
                      "a refused operator could not log in after the limit was raised");
        }
        flush_events(0, 0, "for the logins after the reload");
        print_usage("after the reload");

        /* A broken file: nothing changes. */
        config_edit typo = {"[licenses.callcenter]", "limit", broken_line, 0};
        int broken_ok = write_config_copy(config, broken, &typo, 1);
        check(broken_ok, "cannot write the broken config");
        if (broken_ok) {
            snapshot(&before);
            printf("  wrote %s: a copy with a typo on line %u: `%s`\n", broken, typo.line, broken_line);
            rc = license_reload(broken);
            last_error(rc, detail, sizeof detail);
            printf("  license_reload(%s): %s: %s\n", broken, license_strerror(rc), detail);
            char where[400];
            snprintf(where, sizeof where, "%s:%u:", broken, typo.line);
            check(rc == LICENSE_ERR_CONFIG, "a broken config file was accepted");
            check(strncmp(detail, where, strlen(where)) == 0,
                  "the config error does not start with file:line:");
            snapshot(&after);
            same = memcmp(&before, &after, sizeof before) == 0;
            printf("  %s: callcenter %" PRIu32 "/%d\n", same ? "nothing changed" : "SOMETHING CHANGED",
                   used_of("callcenter"), CC_RAISED);
            check(same, "a failed reload changed a count or a limit");
            flush_events(0, 0, "for the broken reload");
        }
        /* The raised copy is the running config file now; the run folder goes at exit. */
    }
    free(config);
}

/*
 * Admin actions: `twin` (the agent with two devices earlier) opens a recorder too
 * and leaves without logging out of anything: "log out everywhere". Then the admin
 * kicks the 1C session `waiting` by hand.
 */
static void admin_section(long twin, login_result *waiting) {
    printf("\n== admin: log out everywhere, kick one session\n");
    if (twin >= 0 && storm_result[twin].held) {
        const char *user = storm[twin].user;
        static char session[64];
        check(recording_login(twin, session, sizeof session)->rc == LICENSE_OK,
              "an operator holding callcenter was refused recording");
        uint32_t cc_before = used_of("callcenter"), ext_before = used_of(LINGER_TYPE), n = 0;
        int32_t rc = license_release_user(user, LICENSE_RELEASE_ADMIN, &n);
        char detail[256];
        last_error(rc, detail, sizeof detail);
        if (rc == LICENSE_OK)
            snprintf(detail, sizeof detail, "%" PRIu32 " seat handles released", n);
        printf("  %-8s %-30s %-19s log out everywhere (license_release_user, ADMIN): %s\n", "admin", user,
               "-", detail);
        check(rc == LICENSE_OK && n == 2, "log out everywhere did not release the agent's 2 handles");
        check(forget_user(user) == 2, "the demo's own count of the agent's handles is off");
        flush_events(0, 4, "for log out everywhere (user, callcenter, extension, recording)");
        check(flushed(LICENSE_EVENT_RELEASED, LICENSE_RELEASE_ADMIN, NULL, 0) == 4,
              "the agent's seats were not all released with reason admin");
        uint32_t cc_after = used_of("callcenter"), ext_after = used_of(LINGER_TYPE);
        printf("  callcenter %" PRIu32 " -> %" PRIu32 ", %s %" PRIu32 " -> %" PRIu32
               ": nothing lingers after an admin release\n",
               cc_before, cc_after, LINGER_TYPE, ext_before, ext_after);
        check(cc_after == cc_before - 1 && ext_after == ext_before - 1,
              "an admin release left a seat counted");
        rc = license_release_user(user, LICENSE_RELEASE_ADMIN, &n);
        last_error(rc, detail, sizeof detail);
        printf("  %-8s %-30s %-19s log out everywhere again: %s: %s\n", "admin", user, "-",
               license_strerror(rc), detail);
        check(rc == LICENSE_ERR_UNKNOWN_USER,
              "log out everywhere of a user with no seat was not UNKNOWN_USER");
    }
    if (waiting && waiting->held) {
        char name[96];
        int32_t rc = license_release_as(waiting->seat, LICENSE_RELEASE_ADMIN);
        printf("  %-8s %-30s %-19s kicked (license_release_as, ADMIN): seat %" PRIu64 " %s\n", "admin",
               who(spec_of(waiting), name, sizeof name), "integration", waiting->seat,
               rc == LICENSE_OK ? "released" : license_strerror(rc));
        check(rc == LICENSE_OK, "the admin could not kick a 1C session");
        if (rc == LICENSE_OK)
            waiting->held = 0;
        flush_events(0, 1, "for the kicked session");
        check(flushed(LICENSE_EVENT_RELEASED, LICENSE_RELEASE_ADMIN, "integration_1c", waiting->seat) == 1,
              "no RELEASED (admin) event for the kicked session");
    }
    print_usage("after the admin actions");
}

/* The seatgate command (SEATGATE_CLI): the signed-license and emergency sections run it. */
static char *cli_path;

/*
 * License dates at startup: the policy looks at the dates at init (on the reaper
 * thread) and says once what ends soon (WARNING, warn_before ahead) and what has ended
 * (EXPIRED). E-mail still works for its last days; the ended fax license refuses its
 * login with LICENSE_ERR_EXPIRED.
 */
static void dates_section(void) {
    printf("\n== 08:50 license dates: what the PBX hears at startup (today %s)\n", today);
    /* They come from the reaper thread, a moment after license_init: wait for them. */
    wait_for_events(3, 5.0);
    flush_events(1, 3, "at startup (e-mail and support ending soon, fax ended)");
    char words[96];
    snprintf(words, sizeof words, "'email' ends on %s, in", email_until);
    check(flushed_saying(LICENSE_EVENT_WARNING, words) == 1, "no WARNING that the e-mail license ends soon");
    snprintf(words, sizeof words, "support ends on %s, in", support_until);
    check(flushed_saying(LICENSE_EVENT_WARNING, words) == 1, "no WARNING that support ends soon");
    check(flushed(LICENSE_EVENT_EXPIRED, UINT32_MAX, EXPIRED_TYPE, 0) == 1, "no EXPIRED event for fax");

    login_result *mail = extra_login("login", (login_spec){"mia.wong", "email_team", NULL, "imap-7c1e"});
    check(mail->rc == LICENSE_OK, "the e-mail license refused a login before its last day");
    login_result *fax = extra_login("login", (login_spec){"fax-gateway", "fax_gateway", NULL, "fax-01"});
    check(fax->rc == LICENSE_ERR_EXPIRED && strstr(fax->detail, "'" EXPIRED_TYPE "' expired") &&
              strstr(fax->detail, EXPIRED_DATE),
          "the ended fax license did not refuse with LICENSE_ERR_EXPIRED naming the type and its date");
    check(fax->denial.reason == LICENSE_DENIAL_EXPIRED && strcmp(fax->denial.license_type, EXPIRED_TYPE) == 0,
          "the fax refusal's license_denial does not say LICENSE_DENIAL_EXPIRED for the fax type");
    flush_events(0, 1, "for the e-mail and fax logins (the fax refusal is heard)");
    check(flushed(LICENSE_EVENT_DENIED, LICENSE_DENIAL_EXPIRED, EXPIRED_TYPE, 0) == 1,
          "no DENIED (expired) event for the fax login");
    check(print_report_lines("Support until") == 1 && print_report_lines("email ") == 1 &&
              print_report_lines("fax ") == 1,
          "the report does not show the support date and the types' dates");
}

/*
 * 13:00, shift change: reservations and caps. Support keeps SUPPORT_RESERVED callcenter
 * seats for its members, who take the shared seats too once those are used; the sales
 * team may hold at most SALES_CAP. Four operators and a support agent of the morning go
 * home, then the afternoon arrives: a third sales agent is refused at the cap, an
 * operator is refused the last free seat because it is support's, and a support agent
 * gets it.
 */
static void teams_section(void) {
    printf("\n== 13:00 shift change: callcenter keeps %d seats for support, sales is capped at %d\n",
           SUPPORT_RESERVED, SALES_CAP);
    int gone_home = 0;
    for (size_t i = 0; i < STORM_LOGINS + extra_count && gone_home < 4; i++) {
        login_result *r = i < STORM_LOGINS ? &storm_result[i] : &extra_result[i - STORM_LOGINS];
        if (r->held && !r->tenant && strcmp(spec_of(r)->profiles, "operator") == 0) {
            logout("logout", spec_of(r), r);
            gone_home++;
        }
    }
    long early_support = find_storm("support", LICENSE_OK, NULL, 0);
    if (early_support >= 0)
        logout("logout", &storm[early_support], &storm_result[early_support]);
    check(gone_home == 4 && early_support >= 0, "the morning shift was not there to go home");
    flush_events(0, 1, "for the shift change (callcenter falling under 75%)");
    check(flushed(LICENSE_EVENT_THRESHOLD_DOWN, UINT32_MAX, "callcenter", 0) == 1,
          "callcenter did not report falling under its alert threshold");

    static const login_spec sales[] = {
        {"sam.reed", "sales", "1301", NULL},
        {"tina.lopez", "sales", "1302", NULL},
        {"uma.patel", "sales", "1303", NULL},
    };
    for (size_t k = 0; k < sizeof sales / sizeof sales[0]; k++) {
        login_result *r = extra_login("login", sales[k]);
        if (k < SALES_CAP) {
            check(r->rc == LICENSE_OK, "a sales agent under the cap was refused");
            continue;
        }
        char words[96];
        snprintf(words, sizeof words, "profile 'sales' is capped at %d 'callcenter' seats", SALES_CAP);
        check(r->rc == LICENSE_ERR_LIMIT_REACHED && r->denial.reason == LICENSE_DENIAL_CAPPED &&
                  strcmp(r->denial.license_type, "callcenter") == 0 && strcmp(r->denial.profile, "sales") == 0 &&
                  r->denial.used == SALES_CAP && r->denial.limit == SALES_CAP && strstr(r->detail, words),
              "a sales agent over the cap was not refused as CAPPED for profile 'sales'");
    }

    /* The shared seats: 3 left after the 2 sales agents, and a 4th operator. */
    static const login_spec afternoon[] = {
        {"yusuf.demir", "operator", "1015", NULL},
        {"zoe.martin", "operator", "1016", NULL},
        {"adam.kowalski", "operator", "1017", NULL},
        {"bella.rossi", "operator", "1018", NULL},
    };
    login_result *r = NULL;
    for (size_t k = 0; k < sizeof afternoon / sizeof afternoon[0]; k++) {
        r = extra_login("login", afternoon[k]);
        if (k < 3)
            check(r->rc == LICENSE_OK, "an afternoon operator was refused a shared seat");
    }
    printf("  %-8s license_denial: reason %s, license_type \"%s\", profile \"%s\", used %" PRIu32
           ", limit %" PRIu32 "\n",
           "", r->denial.reason == LICENSE_DENIAL_RESERVED ? "LICENSE_DENIAL_RESERVED" : "(another)",
           r->denial.license_type, r->denial.profile, r->denial.used, r->denial.limit);
    check(r->rc == LICENSE_ERR_LIMIT_REACHED && r->denial.reason == LICENSE_DENIAL_RESERVED &&
              strcmp(r->denial.license_type, "callcenter") == 0 && strcmp(r->denial.profile, "support") == 0 &&
              r->denial.used == CC_RAISED - 1 && r->denial.limit == CC_RAISED &&
              strstr(r->detail, "reserved for profile 'support'"),
          "the operator was not refused the seat reserved for support (LICENSE_DENIAL_RESERVED)");
    login_result *carmen = extra_login("login", (login_spec){"carmen.diaz", "support", "1203", NULL});
    check(carmen->rc == LICENSE_OK, "a support agent was refused the seat reserved for her team");
    flush_events(0, 3, "for the afternoon (sales capped, callcenter reaching 75%, a seat reserved for support)");
    check(flushed(LICENSE_EVENT_DENIED, LICENSE_DENIAL_CAPPED, "callcenter", 0) == 1,
          "no DENIED (capped) event for the third sales agent");
    check(flushed(LICENSE_EVENT_DENIED, LICENSE_DENIAL_RESERVED, "callcenter", 0) == 1,
          "no DENIED (reserved) event for the operator");
    check(flushed(LICENSE_EVENT_THRESHOLD_UP, UINT32_MAX, "callcenter", 0) == 1,
          "callcenter did not report reaching its alert threshold again");
    char reserved[48], capped[48];
    snprintf(reserved, sizeof reserved, "reserved for support: %d/%d", SUPPORT_RESERVED, SUPPORT_RESERVED);
    snprintf(capped, sizeof capped, "sales capped: %d/%d", SALES_CAP, SALES_CAP);
    check(print_report_lines("callcenter ") == 1 && report_says(reserved) && report_says(capped),
          "the report's callcenter line does not show the reservation and the cap in use");
    print_usage("after the shift change");
}

/* How many of the events the last flush printed are of `kind` for `tenant`. */
static unsigned flushed_in_tenant(uint32_t kind, const char *tenant) {
    unsigned n = 0;
    pthread_mutex_lock(&event_lock);
    for (size_t i = flushed_first; i < flushed_last; i++)
        n += events[i].kind == kind && strcmp(events[i].tenant, tenant) == 0;
    pthread_mutex_unlock(&event_lock);
    return n;
}

/*
 * Tenants: the call center hosts two customers on the same server. Each has a seat
 * pool of its own ([tenants.NAME]: its own limits, users counted apart, its own
 * profiles if it says so, its own report); a request names its tenant in
 * license_request.tenant, and the seat handle remembers it.
 */
static void tenants_section(void) {
    printf("\n== tenants: two hosted customers, each with a seat pool of its own\n");
    uint32_t default_before = used_of("user");
    static const login_spec globex[] = {
        {"amy.chen", "receptionist", "g-201", NULL},
        {"ben.ortiz", "receptionist", "g-202", NULL},
        {"carl.weiss", "receptionist", "g-203", NULL},
    };
    login_result *g[3];
    for (size_t k = 0; k < 3; k++)
        g[k] = extra_login_in("login", "globex", globex[k]);
    check(g[0]->rc == LICENSE_OK && g[1]->rc == LICENSE_OK, "globex refused a login under its limit");
    check(g[2]->rc == LICENSE_ERR_LIMIT_REACHED && strcmp(g[2]->denial.license_type, "user") == 0 &&
              g[2]->denial.used == 2 && g[2]->denial.limit == 2,
          "globex's third user was not refused at globex's own limit (user 2/2)");
    login_result *desk = extra_login_in("login", "initech", (login_spec){"dana.fox", "helpdesk", "i-301", NULL});
    check(desk->rc == LICENSE_OK, "initech refused a login with its own profile");
    login_result *stranger =
        extra_login_in("login", "initech", (login_spec){"erik.lund", "operator", "i-302", NULL});
    check(stranger->rc == LICENSE_ERR_UNKNOWN_PROFILE,
          "initech accepted a global profile although it has profiles of its own");
    login_result *unknown = extra_login_in("login", "hooli", (login_spec){"fred.kim", "receptionist", "h-401", NULL});
    check(unknown->rc == LICENSE_ERR_UNKNOWN_TENANT, "a tenant nobody declared was accepted");

    uint32_t g_used = 0, g_limit = 0, i_used = 0, i_limit = 0;
    check(license_usage_in("globex", "user", &g_used, &g_limit) == LICENSE_OK &&
              license_usage_in("initech", "user", &i_used, &i_limit) == LICENSE_OK,
          "license_usage_in failed for a declared tenant");
    uint32_t default_after = used_of("user");
    printf("  user seats: globex %" PRIu32 "/%" PRIu32 " (full), initech %" PRIu32 "/%" PRIu32
           ", the call center's own %" PRIu32 " before and %" PRIu32
           " after: a full tenant takes nothing from the others\n",
           g_used, g_limit, i_used, i_limit, default_before, default_after);
    check(g_used == 2 && g_limit == 2 && i_used == 1 && i_limit == 4 && default_after == default_before,
          "a tenant's logins changed another pool's count");

    int32_t rc = license_set_limit("globex", "user", 3);
    char detail[256] = "OK";
    if (rc != LICENSE_OK)
        last_error(rc, detail, sizeof detail);
    printf("  license_set_limit(\"globex\", \"user\", 3): %s (the provider's database sold Globex one more user)\n",
           detail);
    check(rc == LICENSE_OK, "license_set_limit failed");
    flush_events(0, 1, "for the run-time limit");
    check(flushed(LICENSE_EVENT_LIMIT_CHANGED, UINT32_MAX, "user", 0) == 1 &&
              flushed_in_tenant(LICENSE_EVENT_LIMIT_CHANGED, "globex") == 1,
          "no LIMIT_CHANGED event for globex's user limit");
    login_result *carl = extra_login_in("retry", "globex", globex[2]);
    check(carl->rc == LICENSE_OK, "globex's waiting user did not get in after the limit was raised");
    flush_events(0, 0, "after the retry in globex");

    printf("  license_report_tenant(\"globex\", LICENSE_REPORT_TEXT, 0, 0, ...):\n");
    rc = print_report("globex");
    check(rc == LICENSE_OK, "license_report_tenant failed");
    check(report_says("Tenants: 2 in all"), "the main report does not list the tenants");
}

/*
 * Emergency seats: a campaign brings more staff than there are user seats. The admin
 * opens the emergency window: EMERGENCY_SEATS more user seats at once, for 30 days,
 * once per permanent limit (the state file in state_dir remembers it, across restarts
 * and for every process of the installation).
 */
static void emergency_section(void) {
    printf("\n== emergency seats: a campaign needs more users than licensed (%d more for 30 days)\n",
           EMERGENCY_SEATS);
    static char names[16][24], sessions[16][24];
    login_result *waiting[2] = {NULL, NULL};
    size_t n_waiting = 0;
    uint32_t used = 0, limit = 0;
    usage_of("user", &used, &limit);
    uint32_t permanent = limit;
    for (int k = 0; k < 16 && n_waiting < 2; k++) {
        snprintf(names[k], sizeof names[k], "temp.staff%02d", k + 1);
        snprintf(sessions[k], sizeof sessions[k], "crm-web-t%02d", k + 1);
        login_result *r = extra_login("login", (login_spec){names[k], "temp_staff", NULL, sessions[k]});
        if (r->rc != LICENSE_OK) {
            check(r->rc == LICENSE_ERR_LIMIT_REACHED && strcmp(r->denial.license_type, "user") == 0 &&
                      r->denial.reason == LICENSE_DENIAL_FULL,
                  "campaign staff was refused for another reason than user being full");
            waiting[n_waiting++] = r;
        }
    }
    check(n_waiting == 2, "user did not fill up");

    int64_t ends = 0;
    int32_t rc = license_emergency_activate(&ends);
    char detail[512] = "OK", until[32];
    if (rc != LICENSE_OK)
        last_error(rc, detail, sizeof detail);
    format_utc(ends, until);
    printf("  license_emergency_activate(&ends): %s: %d more user seats until %s\n", detail, EMERGENCY_SEATS,
           until);
    check(rc == LICENSE_OK && ends >= (int64_t)time(NULL) + 29 * 86400,
          "the emergency window did not open for 30 days");
    /* EMERGENCY_STARTED comes from whichever thread runs the policy: wait for it. */
    wait_for_events(1, 5.0);
    flush_events(0, 1, "for the emergency window");
    check(flushed(LICENSE_EVENT_EMERGENCY_STARTED, UINT32_MAX, NULL, 0) == 1, "no EMERGENCY_STARTED event");
    usage_of("user", &used, &limit);
    check(limit == permanent + EMERGENCY_SEATS, "the emergency seats are not usable at once");
    for (size_t k = 0; k < n_waiting; k++) {
        login_result *r = extra_login("retry", extra_spec[waiting[k] - extra_result]);
        check(r->rc == LICENSE_OK, "waiting staff did not get an emergency seat");
    }

    rc = license_emergency_activate(&ends);
    last_error(rc, detail, sizeof detail);
    printf("  license_emergency_activate again: %s: %s\n", license_strerror(rc), detail);
    check(rc == LICENSE_ERR_EMERGENCY_UNAVAILABLE && strstr(detail, "already open"),
          "a second emergency window was not refused with LICENSE_ERR_EMERGENCY_UNAVAILABLE");
    flush_events(0, 0, "after the emergency logins");

    char state_file[320];
    struct stat st;
    snprintf(state_file, sizeof state_file, "%s/state/seatgate-state.json", run_dir);
    printf("  %s: %s\n", state_file,
           stat(state_file, &st) == 0 ? "the window is recorded: it opens once per permanent limit, across restarts"
                                      : "MISSING");
    check(stat(state_file, &st) == 0, "no state file in state_dir");

    char out[2048];
    char *status[] = {cli_path, "emergency", "status", running_config, NULL};
    printf("  $ seatgate emergency status %s\n", running_config);
    rc = run_command(status, out, sizeof out);
    print_indented(out);
    check(rc == 0 && strstr(out, "open"), "`seatgate emergency status` does not show the open window");
    check(print_report_lines("Emergency:") == 1, "the report has no Emergency line");
    print_usage("during the emergency window");
}

/* Billing: the counters since init, per type, checked against what the demo saw. */
static void billing_section(const login_result *softphone) {
    printf("\n== billing: license_stats since startup\n");
    printf("  %-16s %10s %6s %9s %7s\n", "type", "used/limit", "peak", "acquired", "denied");
    for (uint32_t i = 0; i < license_type_total(); i++) {
        char name[LICENSE_MAX_NAME_LEN + 1];
        license_type_at(i, name);
        license_type_stats st;
        memset(&st, 0, sizeof st);
        st.size = sizeof st;
        int32_t rc = license_stats(name, &st);
        check(rc == LICENSE_OK, "license_stats failed");
        if (rc != LICENSE_OK)
            continue;
        char ratio[32];
        snprintf(ratio, sizeof ratio, "%" PRIu32 "/%" PRIu32, st.used, st.limit);
        printf("  %-16s %10s %6" PRIu32 " %9" PRIu64 " %7" PRIu64 "\n", name, ratio, st.peak, st.acquired,
               st.denied);
        uint32_t used = 0, limit = 0;
        usage_of(name, &used, &limit);
        check(st.used == used && st.limit == limit, "license_stats disagrees with license_usage");
        check(st.peak >= st.used && st.peak_since_reset <= st.peak, "a peak is below the current use");
        check(st.denied == count_results(NULL, name),
              "a type's denied counter differs from the refusals seen");
        if (strcmp(name, "callcenter") == 0) {
            check(st.peak == CC_RAISED, "callcenter's peak is not its raised limit");
            /* Every operator, support and sales login that got in took a seat, but the
             * second device. */
            check(st.acquired == count_results("operator", NULL) + count_results("support", NULL) +
                                     count_results("sales", NULL) -
                                     (softphone && softphone->rc == LICENSE_OK),
                  "callcenter's acquired counter differs from the agents let in");
        }
    }
}

/*
 * A vendor-signed license: the seatgate command makes a vendor key pair and signs the
 * terms in examples/acme-license.toml; the host trusts the public key
 * (license_trust_key) and loads examples/signed.toml, whose license_file names the
 * signed file. Each type's limit is the smaller of the config's and the signed one.
 * Then an admin "adds seats" by editing the license file: it no longer loads.
 */
static void signed_section(const char *examples_dir) {
    printf("\n== signed license: the vendor's file caps the limits of the config\n");
    char prefix[300], key[310], pub[310], license[310], terms[320], config_in[320], config[320];
    char tampered[320], tampered_config[320], out[4096];
    snprintf(prefix, sizeof prefix, "%s/vendor", run_dir);
    snprintf(key, sizeof key, "%s.key", prefix);
    snprintf(pub, sizeof pub, "%s.pub", prefix);
    snprintf(license, sizeof license, "%s/acme.license", run_dir);
    snprintf(terms, sizeof terms, "%s/acme-license.toml", examples_dir);
    snprintf(config_in, sizeof config_in, "%s/signed.toml", examples_dir);
    snprintf(config, sizeof config, "%s/signed.toml", run_dir);
    snprintf(tampered, sizeof tampered, "%s/tampered.license", run_dir);
    snprintf(tampered_config, sizeof tampered_config, "%s/tampered.toml", run_dir);

    /* The vendor's side. */
    char *keygen[] = {cli_path, "keygen", "--out", prefix, NULL};
    char *sign[] = {cli_path, "sign", "--key", key, terms, "-o", license, NULL};
    char *verify[] = {cli_path, "verify", "--pub", pub, license, NULL};
    printf("  $ seatgate keygen --out %s\n", prefix);
    int status = run_command(keygen, out, sizeof out);
    print_indented(out);
    check(status == 0, "seatgate keygen failed");
    printf("  $ seatgate sign --key %s %s -o %s\n", key, terms, license);
    status = status == 0 ? run_command(sign, out, sizeof out) : -1;
    print_indented(out);
    check(status == 0, "seatgate sign failed");
    printf("  $ seatgate verify --pub %s %s\n", pub, license);
    status = status == 0 ? run_command(verify, out, sizeof out) : -1;
    print_indented(out);
    check(status == 0 && strstr(out, "signature OK"), "seatgate verify did not accept the signed license");
    if (status != 0)
        return;

    /* The host's side: trust the vendor's key, then load a config naming the file. */
    char *pub_text = read_file(pub);
    char *config_text = read_file(config_in);
    check(pub_text && config_text, "cannot read the vendor's public key or examples/signed.toml");
    if (!pub_text || !config_text) {
        free(pub_text);
        free(config_text);
        return;
    }
    pub_text[strcspn(pub_text, "\r\n")] = '\0';
    int32_t rc = license_trust_key(pub_text);
    char detail[512] = "OK";
    if (rc != LICENSE_OK)
        last_error(rc, detail, sizeof detail);
    printf("  license_trust_key(\"%s\"): %s\n", pub_text, detail);
    check(rc == LICENSE_OK, "license_trust_key refused the vendor's key");
    check(write_file(config, config_text), "cannot copy examples/signed.toml into the run folder");
    rc = license_init(config);
    snprintf(detail, sizeof detail, "OK");
    if (rc != LICENSE_OK)
        last_error(rc, detail, sizeof detail);
    printf("  license_init(%s): %s (its license_file = \"acme.license\" is next to it)\n", config, detail);
    check(rc == LICENSE_OK, "the config with a signed license did not load");
    if (rc == LICENSE_OK) {
        print_usage("with the signed license");
        size_t first = extra_count;
        unsigned in = 0;
        for (size_t i = 0; i < STORM_LOGINS && in < 7; i++) {
            if (!is_plain_operator(i))
                continue;
            login_result *r = extra_login("login", storm[i]);
            if (++in < 7)
                check(r->rc == LICENSE_OK, "an operator under the signed limit was refused");
            else
                check(r->rc == LICENSE_ERR_LIMIT_REACHED && strcmp(r->denial.license_type, "callcenter") == 0 &&
                          r->denial.limit == 6,
                      "the 7th operator was not refused at the signed limit (callcenter 6)");
        }
        printf("\n");
        check(print_report(NULL) == LICENSE_OK, "license_report failed");
        printf("\n");
        check(report_says("Signed license: ACME-2026-0042") && report_says("signed license caps it at 6"),
              "the report does not show the signed license and its cap");
        for (size_t i = first; i < extra_count; i++) {
            if (extra_result[i].held) {
                check(license_release(extra_result[i].seat) == LICENSE_OK, "release failed");
                extra_result[i].held = 0;
            }
        }
        license_shutdown();
        flush_events(0, 0, "with the signed license");
    }

    /* An admin "adds seats" by editing the signed file: the signature no longer matches. */
    char *signed_text = read_file(license);
    char *limit = signed_text ? strstr(signed_text, "callcenter = 6") : NULL;
    check(limit != NULL, "the signed license does not say callcenter = 6");
    config_edit point = {"", "license_file", "license_file = \"tampered.license\"", 0};
    if (limit) {
        limit[strlen("callcenter = ")] = '8';
        check(write_file(tampered, signed_text) && write_config_copy(config_text, tampered_config, &point, 1),
              "cannot write the tampered license");
        rc = license_init(tampered_config);
        last_error(rc, detail, sizeof detail);
        printf("  %s: a copy of acme.license with callcenter = 8 under [license.limits]\n", tampered);
        printf("  license_init(%s): %s: %s\n", tampered_config, license_strerror(rc), detail);
        check(rc == LICENSE_ERR_LICENSE_FILE && strstr(detail, "signature"),
              "a tampered license file was not refused with LICENSE_ERR_LICENSE_FILE");
        if (rc == LICENSE_OK)
            license_shutdown();
    }
    free(signed_text);
    free(pub_text);
    free(config_text);
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: SEATGATE_CLI=PATH/seatgate %s SEATS.toml\n", argv[0]);
        return 2;
    }
    /* The seatgate command signs the last section's license and shows the emergency
     * window: without it the demo cannot run, so say so before anything else. */
    cli_path = getenv("SEATGATE_CLI");
    if (!cli_path || !*cli_path || access(cli_path, X_OK) != 0) {
        fprintf(stderr,
                "pbx_login: SEATGATE_CLI must name the seatgate command (%s%s): `make demo` sets\n"
                "  SEATGATE_CLI=target/release/seatgate after `make lib` builds it\n",
                cli_path && *cli_path ? "not executable: " : "unset",
                cli_path && *cli_path ? cli_path : "");
        return 2;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    printf("pbx_login: seatgate %s (built against header %s)\n", license_version(),
           SEATGATE_VERSION);
    atexit(remove_run_dir);
    if (!prepare_run_folder(argv[1]))
        return 1;
    /* examples/signed.toml and acme-license.toml live next to the config. */
    static char examples_dir[256];
    snprintf(examples_dir, sizeof examples_dir, "%s", argv[1]);
    char *slash = strrchr(examples_dir, '/');
    if (slash)
        *slash = '\0';
    else
        snprintf(examples_dir, sizeof examples_dir, ".");

    /* Only the events `interesting` can keep: no event is built for an ordinary login
     * or logout. (The threshold bits still need every seat counted on its type's
     * shared counter; a host without a wallboard would set LICENSE_EVENTS_ALERTS
     * alone, and its logins would cost exactly what they cost with nobody listening.) */
    if (license_set_event_mask(LICENSE_EVENTS_ALERTS | LICENSE_EVENTS_THRESHOLD_UP | LICENSE_EVENTS_THRESHOLD_DOWN) !=
        LICENSE_OK) {
        fprintf(stderr, "pbx_login: license_set_event_mask failed\n");
        return 1;
    }
    /* Before init, so that nothing is missed; it stays registered until removed. */
    if (license_set_event_callback(on_event, NULL) != LICENSE_OK) {
        fprintf(stderr, "pbx_login: license_set_event_callback failed\n");
        return 1;
    }
    int32_t rc = license_init(run_config);
    if (rc != LICENSE_OK) {
        char detail[1024];
        last_error(rc, detail, sizeof detail);
        fprintf(stderr, "pbx_login: cannot load license file %s: %s\n", run_config, detail);
        return 1;
    }
    printf("license file %s loaded\n", run_config);

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

    /* 0. What the policy says about the license's dates, at startup. */
    dates_section();

    /* 1. The morning storm: WORKERS registrar threads, every login of a wave at once.
     * Events come from the workers in any order: print them sorted. */
    early_shift_from = now_s();
    run_wave("08:55 early shift", 0, EARLY_SHIFT);
    early_shift_to = now_s();
    flush_events(1, 2, "in the early shift (chat refusing 2 chat-team operators)");
    check(flushed(LICENSE_EVENT_DENIED, LICENSE_DENIAL_NO_SEATS, "chat", 0) == 2,
          "the early shift's chat refusals were not reported as 'no seats licensed'");
    print_usage("at 08:55");
    run_wave("09:00 rush", EARLY_SHIFT, STORM_LOGINS);
    flush_events(1, 2, "in the rush (1 chat refusal, callcenter crossing 75%)");
    check(flushed(LICENSE_EVENT_DENIED, LICENSE_DENIAL_NO_SEATS, "chat", 0) == 1,
          "the rush's chat refusal was not reported");
    check(flushed(LICENSE_EVENT_THRESHOLD_UP, UINT32_MAX, "callcenter", 0) == 1,
          "callcenter did not report reaching its alert threshold exactly once");
    print_usage("at 09:00");

    /* More operators and admins than seats asked at once: every seat must be taken,
     * by exactly one agent each. */
    unsigned operators_in = 0, admins_in = 0;
    for (size_t i = 0; i < STORM_LOGINS; i++) {
        operators_in += is_plain_operator(i) && storm_result[i].rc == LICENSE_OK;
        admins_in += strcmp(storm[i].profiles, "admin") == 0 && storm_result[i].rc == LICENSE_OK;
    }
    uint32_t cc_used = 0, cc_limit = 0, crm_used = 0, crm_limit = 0;
    unsigned support_in = 0;
    for (size_t i = 0; i < STORM_LOGINS; i++)
        support_in += strcmp(storm[i].profiles, "support") == 0 && storm_result[i].rc == LICENSE_OK;
    check(support_in == SUPPORT_RESERVED, "the early support agents did not get their reserved seats");
    if (usage_of("callcenter", &cc_used, &cc_limit))
        check(cc_used == cc_limit && operators_in + support_in == cc_limit,
              "the rush did not end with exactly one operator per callcenter seat left to them");
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
    flush_events(0, 0, "for a second device");

    /* 3. The end of the early shift: some agents log out. Their phones' extension
     * seats linger (linger = "30s"): still counted, kept for the same agent. */
    printf("\n== logouts\n");
    uint32_t ext_before_logouts = used_of(LINGER_TYPE);
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
    uint32_t ext_after_logouts = used_of(LINGER_TYPE);
    printf("  %s %" PRIu32 " seats before the logouts, %" PRIu32
           " after: the %d agents' phones linger 30 s (a phone that re-registers gets its seat back)\n",
           LINGER_TYPE, ext_before_logouts, ext_after_logouts, logged_out);
    check(ext_after_logouts == ext_before_logouts, "a logged-out phone's extension seat did not linger");
    flush_events(0, 1, "for the logouts (callcenter falling under 75%)");
    check(flushed(LICENSE_EVENT_THRESHOLD_DOWN, UINT32_MAX, "callcenter", 0) == 1,
          "callcenter did not report falling under its alert threshold");
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
    login_result *sess_retry = NULL;
    if (i_sess >= 0) {
        sess_retry = extra_login("retry", storm[i_sess]);
        check(sess_retry->rc == LICENSE_OK, "a 1C session retry was refused after a session ended");
    }
    flush_events(0, 1, "for the retries (callcenter reaching 75% again)");
    check(flushed(LICENSE_EVENT_THRESHOLD_UP, UINT32_MAX, "callcenter", 0) == 1,
          "callcenter did not report reaching its alert threshold again");
    print_usage("after the retries");

    /* 5. to 9.: the seat lifecycle. */
    login_result *waiting = lease_section(sess_retry);
    dependency_section(twin);
    reload_section();
    admin_section(twin, waiting);

    /* 10. to 13.: reservations and caps, tenants, emergency seats, billing. */
    teams_section();
    tenants_section();
    emergency_section();
    billing_section(softphone);

    /* 14. The admin's view. */
    printf("\n== license report\n");
    rc = print_report(NULL);
    if (rc != LICENSE_OK) {
        char detail[256];
        last_error(rc, detail, sizeof detail);
        fprintf(stderr, "pbx_login: license_report failed: %s\n", detail);
        check_failed = 1;
    }

    /* 15. Closing time: everyone logs out, then the PBX stops. */
    uint32_t linger_before = used_of(LINGER_TYPE);
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
        if (!usage_of(license_type_at(i, name), &used, &limit))
            continue;
        if (strcmp(name, LINGER_TYPE) == 0) /* the phones' seats linger: nothing freed yet */
            check(used == linger_before, "a phone's seat did not linger after its last logout");
        else
            check(used == 0, "a seat is still counted after every handle was released");
    }
    flush_events(0, 1, "at closing (callcenter falling under 75%)");
    check(flushed(LICENSE_EVENT_THRESHOLD_DOWN, UINT32_MAX, "callcenter", 0) == 1,
          "callcenter did not report falling under its alert threshold at closing");
    print_usage("at closing");
    printf("  %s: %" PRIu32 " phones' seats linger 30 s for their agents; license_shutdown frees them\n",
           LINGER_TYPE, linger_before);
    license_shutdown();
    flush_events(0, 0, "at shutdown (every handle was already released)");

    /* 16. The same library with a vendor-signed license. */
    signed_section(examples_dir);
    license_set_event_callback(NULL, NULL);
    remove_run_dir();

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
