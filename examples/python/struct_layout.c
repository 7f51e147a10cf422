/* Prints sizeof and every field's offsetof of the structs the Python wrapper maps,
 * as the C compiler lays them out from include/seatgate.h. test_seatgate.py compares
 * this with ctypes, so a header change that the wrapper misses fails the test. */
#include <stddef.h>
#include <stdio.h>
#include "seatgate.h"

#define SIZE(s) printf("%s size %zu\n", #s, sizeof(struct s))
#define FIELD(s, f) printf("%s.%s %zu %zu\n", #s, #f, offsetof(struct s, f), sizeof(((struct s *)0)->f))

int main(void) {
    SIZE(license_request);
    FIELD(license_request, size);
    FIELD(license_request, user);
    FIELD(license_request, profiles);
    FIELD(license_request, extension);
    FIELD(license_request, session);
    FIELD(license_request, tenant);

    SIZE(license_denial);
    FIELD(license_denial, size);
    FIELD(license_denial, license_type);
    FIELD(license_denial, used);
    FIELD(license_denial, limit);
    FIELD(license_denial, reason);
    FIELD(license_denial, requires);
    FIELD(license_denial, profile);

    SIZE(license_type_stats);
    FIELD(license_type_stats, size);
    FIELD(license_type_stats, used);
    FIELD(license_type_stats, limit);
    FIELD(license_type_stats, peak);
    FIELD(license_type_stats, peak_since_reset);
    FIELD(license_type_stats, acquired);
    FIELD(license_type_stats, denied);

    SIZE(license_event);
    FIELD(license_event, size);
    FIELD(license_event, kind);
    FIELD(license_event, reason);
    FIELD(license_event, license_type);
    FIELD(license_event, user);
    FIELD(license_event, seat);
    FIELD(license_event, used);
    FIELD(license_event, limit);
    FIELD(license_event, threshold_percent);
    FIELD(license_event, time_unix_ms);
    FIELD(license_event, detail);
    FIELD(license_event, requires);
    FIELD(license_event, tenant);

    printf("license_seat size %zu\n", sizeof(license_seat));
    printf("SEATGATE_VERSION %s\n", SEATGATE_VERSION);
    return 0;
}
