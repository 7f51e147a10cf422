/* The pinned loop: login+logout pairs through the C ABI on one thread, for telling
 * two builds of the library apart (BENCHMARKS.md's "pinned loop" figures).
 *
 *   pinned CONFIG [PAIRS [ROUNDS [MODE]]]
 *
 * Each round times PAIRS pairs (license_try_acquire + license_release, 16 users
 * "u00" to "u15" in turn, one profile, every return code checked) in each mode:
 *   quiet     no event callback;
 *   listener  a callback that hears every event (and does nothing);
 *   alerts    the same callback, masked to LICENSE_EVENTS_ALERTS;
 *   thresh    masked to alerts and threshold events;
 *   tenant    no event callback, each pair in tenant "acme"'s pool
 *             (license_try_acquire_ex with license_request.tenant).
 * MODE picks one (default: all five, interleaved round by round). Prints the min and
 * median ns a pair per mode over ROUNDS rounds. Run it pinned to one core
 * (`make bench-pinned` uses taskset); `bench/count.sh` runs it under callgrind for
 * instructions a pair, which, unlike time, repeat from run to run. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "seatgate.h"

#define MODES 5
#define MAX_ROUNDS 64

static const char *const mode_names[MODES] = {"quiet", "listener", "alerts", "thresh", "tenant"};

static void heard(void *userdata, const struct license_event *event) {
    (void)userdata;
    (void)event;
}

/* This thread's last failure, as text. */
static const char *why(void) {
    static char buf[512];
    if (license_last_error(buf, sizeof buf, NULL) != LICENSE_OK) snprintf(buf, sizeof buf, "(detail too long)");
    return buf;
}

static double seconds(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static int by_value(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void set_mode(int mode) {
    uint32_t mask = mode == 2   ? LICENSE_EVENTS_ALERTS
                    : mode == 3 ? (LICENSE_EVENTS_ALERTS | LICENSE_EVENTS_THRESHOLD_UP | LICENSE_EVENTS_THRESHOLD_DOWN)
                                : LICENSE_EVENTS_ALL;
    if (license_set_event_mask(mask) != LICENSE_OK ||
        license_set_event_callback(mode == 0 || mode == 4 ? NULL : heard, NULL) != LICENSE_OK) {
        fprintf(stderr, "pinned: setting mode %s failed: %s\n", mode_names[mode], why());
        exit(1);
    }
}

int main(int argc, char **argv) {
    if (argc < 2 || argc > 5) {
        fprintf(stderr, "usage: %s CONFIG [PAIRS [ROUNDS [quiet|listener|alerts|thresh|tenant]]]\n", argv[0]);
        return 2;
    }
    long pairs = argc > 2 ? atol(argv[2]) : 2000000;
    int rounds = argc > 3 ? atoi(argv[3]) : 7;
    int only = -1;
    if (argc > 4) {
        for (int m = 0; m < MODES; m++)
            if (strcmp(argv[4], mode_names[m]) == 0) only = m;
        if (only < 0) {
            fprintf(stderr, "pinned: unknown mode '%s'\n", argv[4]);
            return 2;
        }
    }
    if (pairs < 1 || rounds < 1 || rounds > MAX_ROUNDS) {
        fprintf(stderr, "pinned: PAIRS must be at least 1 and ROUNDS 1 to %d\n", MAX_ROUNDS);
        return 2;
    }
    if (license_init(argv[1]) != LICENSE_OK) {
        fprintf(stderr, "pinned: license_init(%s) failed: %s\n", argv[1], why());
        return 1;
    }
    char users[16][8];
    for (int i = 0; i < 16; i++) snprintf(users[i], sizeof users[i], "u%02d", i);
    double ns[MODES][MAX_ROUNDS];
    for (int r = 0; r < rounds; r++)
        for (int m = 0; m < MODES; m++) {
            if (only >= 0 && m != only) continue;
            set_mode(m);
            double start = seconds();
            for (long i = 0; i < pairs; i++) {
                license_seat seat;
                int acquired;
                if (m == 4) {
                    license_request in_tenant = {
                        .size = sizeof in_tenant, .user = users[i & 15], .profiles = "callcenter", .tenant = "acme"};
                    acquired = license_try_acquire_ex(&in_tenant, &seat, NULL);
                } else {
                    acquired = license_try_acquire(users[i & 15], "callcenter", &seat);
                }
                if (acquired != LICENSE_OK || license_release(seat) != LICENSE_OK) {
                    fprintf(stderr, "pinned: pair %ld failed: %s\n", i, why());
                    return 1;
                }
            }
            ns[m][r] = (seconds() - start) / (double)pairs * 1e9;
        }
    for (int m = 0; m < MODES; m++) {
        if (only >= 0 && m != only) continue;
        qsort(ns[m], (size_t)rounds, sizeof ns[m][0], by_value);
        printf("%-9s min %6.1f ns  median %6.1f ns a pair\n", mode_names[m], ns[m][0], ns[m][rounds / 2]);
    }
    uint32_t left = 0, in_tenant = 0, limit = 0;
    if (license_usage("callcenter", &left, &limit) != LICENSE_OK ||
        license_usage_in("acme", "callcenter", &in_tenant, &limit) != LICENSE_OK) {
        fprintf(stderr, "pinned: license_usage failed: %s\n", why());
        return 1;
    }
    if (left != 0 || in_tenant != 0) {
        fprintf(stderr, "pinned: %u seats (%u in acme) still held after the loop\n", (unsigned)(left + in_tenant),
                (unsigned)in_tenant);
        return 1;
    }
    license_shutdown();
    return 0;
}
