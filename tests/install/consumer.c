/*
 * consumer: a C program built against an *installed* seatgate, the way a PBX module
 * would be: `#include <seatgate.h>` and `pkg-config --cflags --libs seatgate` (or
 * `--static`), nothing from the source tree. tests/install.sh builds it both ways.
 *
 *   consumer EXPECTED_VERSION CONFIG_PATH
 *
 * EXPECTED_VERSION is Cargo.toml's `version`, parsed by install.sh. The program checks
 * that the header's SEATGATE_VERSION macros and license_version() both match it, then
 * makes real calls: init with CONFIG_PATH (a config with 1 `operator` seat), acquire,
 * a refused second acquire that names the full type, usage, the report, release,
 * shutdown. Prints "consumer: N passed, M failed" and exits 1 on any failure.
 */
#include <seatgate.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int passed, failed;

#define CHECK(cond, ...)                                                       \
    do {                                                                       \
        if (cond) {                                                            \
            passed++;                                                          \
        } else {                                                               \
            failed++;                                                          \
            fprintf(stderr, "%s:%d: FAILED: %s: ", __FILE__, __LINE__, #cond); \
            fprintf(stderr, __VA_ARGS__);                                      \
            fputc('\n', stderr);                                               \
        }                                                                      \
    } while (0)

/* "MAJOR.MINOR.PATCH" from the three numeric macros, to compare with SEATGATE_VERSION. */
#define SG_STR2(x) #x
#define SG_STR(x) SG_STR2(x)
#define SG_FROM_PARTS \
    SG_STR(SEATGATE_VERSION_MAJOR) "." SG_STR(SEATGATE_VERSION_MINOR) "." SG_STR(SEATGATE_VERSION_PATCH)

static const char *last_error(void) {
    static char buf[512];
    if (license_last_error(buf, sizeof buf, NULL) != LICENSE_OK)
        snprintf(buf, sizeof buf, "(license_last_error failed)");
    return buf;
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: %s EXPECTED_VERSION CONFIG_PATH\n", argv[0]);
        return 2;
    }
    const char *expected = argv[1];
    const char *config = argv[2];

    /* The version, three ways: the header's string, its numeric parts, the library. */
    CHECK(strcmp(SEATGATE_VERSION, expected) == 0, "SEATGATE_VERSION is \"%s\", Cargo.toml says \"%s\"",
          SEATGATE_VERSION, expected);
    CHECK(strcmp(SG_FROM_PARTS, expected) == 0, "SEATGATE_VERSION_MAJOR.MINOR.PATCH is %s, Cargo.toml says %s",
          SG_FROM_PARTS, expected);
    const char *lib_version = license_version();
    CHECK(lib_version != NULL && strcmp(lib_version, expected) == 0,
          "license_version() is \"%s\", Cargo.toml says \"%s\"", lib_version ? lib_version : "(null)", expected);

    int32_t rc = license_init(config);
    CHECK(rc == LICENSE_OK, "license_init(%s) = %d (%s): %s", config, rc, license_strerror(rc), last_error());
    if (rc != LICENSE_OK) {
        fprintf(stderr, "consumer: %d passed, %d failed\n", passed, failed);
        return 1;
    }

    license_seat alice = 0;
    rc = license_try_acquire("alice", "operator", &alice);
    CHECK(rc == LICENSE_OK && alice != 0, "acquire alice = %d (%s), seat %llu", rc, license_strerror(rc),
          (unsigned long long)alice);

    uint32_t used = 99, limit = 99;
    rc = license_usage("callcenter", &used, &limit);
    CHECK(rc == LICENSE_OK && used == 1 && limit == 1, "usage callcenter = %d, %u/%u (want 1/1)", rc, used,
          limit);

    /* The only callcenter seat is taken: bob is refused, the refusal names the type. */
    license_seat bob = 0;
    rc = license_try_acquire("bob", "operator", &bob);
    CHECK(rc == LICENSE_ERR_LIMIT_REACHED, "acquire bob = %d (%s), want LICENSE_ERR_LIMIT_REACHED", rc,
          license_strerror(rc));
    CHECK(strstr(last_error(), "'callcenter'") != NULL, "refusal does not name the type: \"%s\"", last_error());
    CHECK(bob == 0, "a refused acquire wrote seat %llu", (unsigned long long)bob);

    /* The report: size query, then the text, which lists alice and 1/1. */
    size_t needed = 0;
    rc = license_report(LICENSE_REPORT_TEXT, NULL, 0, &needed);
    CHECK(rc == LICENSE_OK && needed > 1, "report size query = %d, needed %zu", rc, needed);
    char *report = malloc(needed + 256);
    if (report != NULL) {
        rc = license_report(LICENSE_REPORT_TEXT, report, needed + 256, &needed);
        CHECK(rc == LICENSE_OK, "report = %d (%s)", rc, license_strerror(rc));
        CHECK(strstr(report, "alice") != NULL, "report does not list alice:\n%s", report);
        CHECK(strstr(report, "1/1") != NULL, "report does not show callcenter at 1/1:\n%s", report);
        free(report);
    }

    rc = license_release(alice);
    CHECK(rc == LICENSE_OK, "release alice = %d (%s)", rc, license_strerror(rc));
    rc = license_usage("callcenter", &used, &limit);
    CHECK(rc == LICENSE_OK && used == 0, "usage after release = %d, %u/%u (want 0/1)", rc, used, limit);
    rc = license_release(alice);
    CHECK(rc == LICENSE_ERR_UNKNOWN_SEAT, "second release = %d, want LICENSE_ERR_UNKNOWN_SEAT", rc);

    /* The freed seat goes to bob now. */
    rc = license_try_acquire("bob", "operator", &bob);
    CHECK(rc == LICENSE_OK && bob != 0 && bob != alice, "acquire bob after release = %d, seat %llu", rc,
          (unsigned long long)bob);

    license_shutdown();
    rc = license_usage("callcenter", &used, &limit);
    CHECK(rc == LICENSE_ERR_NOT_INITIALIZED, "usage after shutdown = %d, want LICENSE_ERR_NOT_INITIALIZED", rc);

    printf("consumer: %d passed, %d failed\n", passed, failed);
    return failed == 0 ? 0 : 1;
}
