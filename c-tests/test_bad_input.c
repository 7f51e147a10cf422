/*
 * test_bad_input: every bad input of the seatgate C API.
 *
 *  - calls before init: LICENSE_ERR_NOT_INITIALIZED (with valid arguments);
 *    license_last_error, license_strerror, license_version and license_shutdown work;
 *  - license_init: NULL, empty and over-long paths (INVALID_ARGUMENT; a path exactly at
 *    LICENSE_MAX_PATH_LEN is accepted as an argument), a missing file, a directory, a
 *    non-UTF-8 file (CONFIG); a second init (ALREADY_INITIALIZED, first config kept);
 *  - every pointer argument NULL; empty, non-UTF-8, over-long (cap + 1) and at-cap
 *    strings; control characters; "a,,b"-style lists; unknown profiles;
 *  - license_request: size too small, old-size requests served as if the newer
 *    fields were NULL, bad extension/session labels;
 *  - seat_out is written only on success; denial_out only on LIMIT_REACHED;
 *    license_usage outputs only on success;
 *  - the buffer convention for report, report_page, lint and last_error: size query,
 *    buf NULL with len > 0, len 0, NUL-terminated prefixes, *needed, no byte written
 *    past len; last_error never changes the stored detail;
 *  - license_last_error is per thread;
 *  - release after shutdown, shutdown twice, init again;
 *  - license_type_count / license_type_name: NULL output, index out of range, the
 *    buffer convention (a 63-byte name fits LICENSE_MAX_NAME_LEN + 1);
 *  - after every failure, no seat leaked: every license_usage count is unchanged.
 */
#include "common.h"

#include <stddef.h>

/* ---- config ---- */

/* A 63-byte license type name (LICENSE_MAX_NAME_LEN) and the same plus one byte. */
static char long_type[LICENSE_MAX_NAME_LEN + 1];
static char too_long_type[LICENSE_MAX_NAME_LEN + 2];

static const char *TYPES[] = {"a", "b", "s", long_type};
#define N_TYPES 4

static char config_text[2048];

static void make_config(void) {
    memset(long_type, 'q', LICENSE_MAX_NAME_LEN);
    memcpy(long_type, "long_type_", 10);
    long_type[LICENSE_MAX_NAME_LEN] = '\0';
    memcpy(too_long_type, long_type, LICENSE_MAX_NAME_LEN);
    too_long_type[LICENSE_MAX_NAME_LEN] = 'q';
    too_long_type[LICENSE_MAX_NAME_LEN + 1] = '\0';
    snprintf(config_text, sizeof config_text,
             "[licensee]\n"
             "name = \"Bad Input Test\"\n"
             "\n"
             "[licenses.a]\n"
             "limit = 5\n"
             "\n"
             "[licenses.b]\n"
             "limit = 5\n"
             "\n"
             "[licenses.s]\n"
             "limit = 3\n"
             "count = \"session\"\n"
             "\n"
             "[licenses.%s]\n"
             "limit = 1\n"
             "\n"
             "[profiles.ab]\n"
             "consumes = [\"a\", \"b\"]\n"
             "\n"
             "[profiles.with_long]\n"
             "consumes = [\"b\", \"%s\"]\n",
             long_type, long_type);
}

/* ---- leak accounting: the counts every failure must leave alone ---- */

static uint32_t baseline[N_TYPES];
static int initialized_baseline; /* 0: expect NOT_INITIALIZED from license_usage */

static void take_baseline(void) {
    for (int i = 0; i < N_TYPES; i++)
        baseline[i] = tc_usage(TYPES[i]);
    initialized_baseline = 1;
}

static void check_no_leak(int line) {
    for (int i = 0; i < N_TYPES; i++) {
        uint32_t used = 0, limit = 0;
        int32_t rc = license_usage(TYPES[i], &used, &limit);
        if (!initialized_baseline) {
            CHECK(rc == LICENSE_ERR_NOT_INITIALIZED, "line %d: license_usage(%s) returned %s while uninitialized",
                  line, TYPES[i], tc_code_name(rc));
            continue;
        }
        CHECK(rc == LICENSE_OK && used == baseline[i],
              "line %d: after a failure, type '%s' used %u (rc %s), baseline %u", line, TYPES[i], used,
              tc_code_name(rc), baseline[i]);
    }
}

/* The detail of the last failure checked by FAILS / ACQUIRE_FAILS / ACQUIRE_EX_FAILS,
 * saved before check_no_leak (whose license_usage calls fail while uninitialized). */
static char last_detail[2048];

static void save_detail(void) {
    tc_last_error_into(last_detail, sizeof last_detail);
}

/* A call that must fail with `code` and leave every count alone. */
#define FAILS(expr, code)                                                      \
    do {                                                                       \
        CHECK_RC(expr, code);                                                  \
        save_detail();                                                         \
        check_no_leak(__LINE__);                                               \
    } while (0)

#define SEAT_SENTINEL ((license_seat)0xC0FFEEC0FFEEull)

/* license_try_acquire that must fail with `code`, leave *seat_out alone and leak nothing. */
static void acquire_fails(int line, const char *user, const char *profiles, int32_t code) {
    license_seat h = SEAT_SENTINEL;
    int32_t rc = license_try_acquire(user, profiles, &h);
    CHECK(rc == code, "line %d: acquire returned %d (%s), expected %s; last error \"%s\"", line, (int)rc,
          tc_code_name(rc), tc_code_name(code), tc_last_error());
    CHECK(h == SEAT_SENTINEL, "line %d: seat_out written on failure (%llu)", line, (unsigned long long)h);
    save_detail();
    if (rc == LICENSE_OK)
        license_release(h);
    check_no_leak(line);
}
#define ACQUIRE_FAILS(user, profiles, code) acquire_fails(__LINE__, user, profiles, code)

/* license_try_acquire_ex that must fail with `code`; seat_out and denial_out untouched
 * (denial_out only on LIMIT_REACHED). */
static void acquire_ex_fails(int line, const license_request *req, int32_t code) {
    license_seat h = SEAT_SENTINEL;
    license_denial denial, before;
    memset(&denial, 0xA5, sizeof denial);
    denial.size = sizeof denial;
    before = denial;
    int32_t rc = license_try_acquire_ex(req, &h, &denial);
    CHECK(rc == code, "line %d: acquire_ex returned %d (%s), expected %s; last error \"%s\"", line, (int)rc,
          tc_code_name(rc), tc_code_name(code), tc_last_error());
    CHECK(h == SEAT_SENTINEL, "line %d: seat_out written on failure", line);
    if (code != LICENSE_ERR_LIMIT_REACHED)
        CHECK(memcmp(&denial, &before, sizeof denial) == 0, "line %d: denial_out written on %s", line,
              tc_code_name(code));
    save_detail();
    if (rc == LICENSE_OK)
        license_release(h);
    check_no_leak(line);
}
#define ACQUIRE_EX_FAILS(req, code) acquire_ex_fails(__LINE__, req, code)

/* Acquire that must succeed; released again at once; nothing left behind. */
static void acquire_succeeds(int line, const char *user, const char *profiles) {
    license_seat h = SEAT_SENTINEL;
    int32_t rc = license_try_acquire(user, profiles, &h);
    CHECK(rc == LICENSE_OK, "line %d: acquire(%.40s..., %.40s...) returned %s; last error \"%s\"", line, user,
          profiles, tc_code_name(rc), tc_last_error());
    if (rc == LICENSE_OK) {
        CHECK(h != 0 && h != SEAT_SENTINEL, "line %d: seat_out not written on success", line);
        CHECK_RC(license_release(h), LICENSE_OK);
    }
    check_no_leak(line);
}
#define ACQUIRE_SUCCEEDS(user, profiles) acquire_succeeds(__LINE__, user, profiles)

static void acquire_ex_succeeds(int line, const license_request *req) {
    license_seat h = SEAT_SENTINEL;
    license_denial denial, before;
    memset(&denial, 0x5A, sizeof denial);
    denial.size = sizeof denial;
    before = denial;
    int32_t rc = license_try_acquire_ex(req, &h, &denial);
    CHECK(rc == LICENSE_OK, "line %d: acquire_ex returned %s; last error \"%s\"", line, tc_code_name(rc),
          tc_last_error());
    CHECK(memcmp(&denial, &before, sizeof denial) == 0, "line %d: denial_out written on success", line);
    if (rc == LICENSE_OK) {
        CHECK(h != 0 && h != SEAT_SENTINEL, "line %d: seat_out not written on success", line);
        CHECK_RC(license_release(h), LICENSE_OK);
    }
    check_no_leak(line);
}
#define ACQUIRE_EX_SUCCEEDS(req) acquire_ex_succeeds(__LINE__, req)

/* A string of `n` copies of `unit` (a whole UTF-8 character or byte), in `out`. */
static void repeat(char *out, const char *unit, size_t n) {
    size_t u = strlen(unit);
    for (size_t i = 0; i < n; i++)
        memcpy(out + i * u, unit, u);
    out[n * u] = '\0';
}

/* ---- 1. before init ---- */

static void test_before_init(void) {
    check_no_leak(__LINE__);
    license_shutdown(); /* harmless when not initialized */
    ACQUIRE_FAILS("alice", "a", LICENSE_ERR_NOT_INITIALIZED);
    license_request req = {sizeof(license_request), "alice", "a", "ext-1", "sess-1", NULL};
    ACQUIRE_EX_FAILS(&req, LICENSE_ERR_NOT_INITIALIZED);
    FAILS(license_release(1), LICENSE_ERR_NOT_INITIALIZED);
    FAILS(license_release(UINT64_MAX), LICENSE_ERR_NOT_INITIALIZED);
    uint32_t used = 11, limit = 12;
    FAILS(license_usage("a", &used, &limit), LICENSE_ERR_NOT_INITIALIZED);
    CHECK(used == 11 && limit == 12, "license_usage wrote outputs while uninitialized");
    size_t needed = 99;
    char buf[64] = "untouched";
    FAILS(license_report(LICENSE_REPORT_TEXT, NULL, 0, &needed), LICENSE_ERR_NOT_INITIALIZED);
    FAILS(license_report(LICENSE_REPORT_JSON, buf, sizeof buf, &needed), LICENSE_ERR_NOT_INITIALIZED);
    FAILS(license_report_page(LICENSE_REPORT_TEXT, 0, 10, buf, sizeof buf, &needed), LICENSE_ERR_NOT_INITIALIZED);
    uint32_t count = 77;
    FAILS(license_lint_count(&count), LICENSE_ERR_NOT_INITIALIZED);
    CHECK(count == 77, "license_lint_count wrote its output while uninitialized");
    FAILS(license_lint(0, buf, sizeof buf, &needed), LICENSE_ERR_NOT_INITIALIZED);
    count = 77;
    FAILS(license_type_count(&count), LICENSE_ERR_NOT_INITIALIZED);
    CHECK(count == 77, "license_type_count wrote its output while uninitialized");
    FAILS(license_type_name(0, buf, sizeof buf, &needed), LICENSE_ERR_NOT_INITIALIZED);
    FAILS(license_type_name(0, NULL, 0, &needed), LICENSE_ERR_NOT_INITIALIZED);
    CHECK(strstr(last_detail, "not initialized") != NULL, "last error \"%s\"", last_detail);

    /* these work uninitialized */
    needed = 0;
    CHECK_RC(license_last_error(NULL, 0, &needed), LICENSE_OK);
    CHECK(needed == strlen(tc_last_error()) + 1, "last_error size query: needed %zu", needed);
    CHECK(license_version() != NULL && strcmp(license_version(), SEATGATE_VERSION) == 0,
          "license_version while uninitialized");
    CHECK(license_strerror(LICENSE_ERR_NOT_INITIALIZED) != NULL, "license_strerror while uninitialized");
    license_shutdown();
    license_shutdown();
    check_no_leak(__LINE__);
}

/* ---- 2. license_init arguments ---- */

static void test_init_arguments(const char *good_path) {
    FAILS(license_init(NULL), LICENSE_ERR_INVALID_ARGUMENT);
    FAILS(license_init(""), LICENSE_ERR_INVALID_ARGUMENT);

    /* a path of LICENSE_MAX_PATH_LEN + 1 bytes is INVALID; at the cap it is a path */
    static char path[LICENSE_MAX_PATH_LEN + 2];
    memset(path, 'x', sizeof path);
    path[0] = '/';
    for (size_t i = 200; i < LICENSE_MAX_PATH_LEN; i += 200)
        path[i] = '/';
    path[LICENSE_MAX_PATH_LEN + 1] = '\0';
    FAILS(license_init(path), LICENSE_ERR_INVALID_ARGUMENT);
    path[LICENSE_MAX_PATH_LEN] = '\0';
    FAILS(license_init(path), LICENSE_ERR_CONFIG);

    /* a missing file, a directory: CONFIG, and the message names the file */
    const char *missing = "/tmp/seatgate-test-no-such-dir/seats.toml";
    FAILS(license_init(missing), LICENSE_ERR_CONFIG);
    CHECK(strstr(last_detail, missing) != NULL, "last error \"%s\" does not name the file", last_detail);
    FAILS(license_init("/tmp"), LICENSE_ERR_CONFIG);
    CHECK(strstr(last_detail, "/tmp") != NULL, "last error \"%s\" does not name the directory",
          last_detail);
    FAILS(license_init("."), LICENSE_ERR_CONFIG);

    /* a path is bytes: a non-UTF-8 name is a (missing) file, not a malformed argument */
    FAILS(license_init("/tmp/seatgate-test-\xff\xfe-missing.toml"), LICENSE_ERR_CONFIG);

    /* a file that is not UTF-8, and one that is not TOML */
    FAILS(license_init(tc_write_config("[licenses.a]\nlimit = 1\ndescription = \"\xff\xfe\"\n")), LICENSE_ERR_CONFIG);
    FAILS(license_init(tc_write_config("\xff\xfe")), LICENSE_ERR_CONFIG);
    FAILS(license_init(tc_write_config("this is not toml\n")), LICENSE_ERR_CONFIG);

    /* now a good init, then a second init: ALREADY_INITIALIZED, first config kept */
    CHECK_RC(license_init(good_path), LICENSE_OK);
    const char *other = tc_write_config("[licenses.a]\nlimit = 99\n");
    CHECK_RC(license_init(other), LICENSE_ERR_ALREADY_INITIALIZED);
    CHECK_RC(license_init(good_path), LICENSE_ERR_ALREADY_INITIALIZED);
    uint32_t used = 0, limit = 0;
    CHECK_RC(license_usage("a", &used, &limit), LICENSE_OK);
    CHECK(limit == 5, "after a refused second init the limit of 'a' is %u, expected the first config's 5",
          limit);
    CHECK_RC(license_usage("s", &used, &limit), LICENSE_OK);
}

/* ---- 3. acquire arguments ---- */

static void test_acquire_arguments(void) {
    license_seat h = SEAT_SENTINEL;
    /* NULL pointers */
    ACQUIRE_FAILS(NULL, "a", LICENSE_ERR_INVALID_ARGUMENT);
    ACQUIRE_FAILS("alice", NULL, LICENSE_ERR_INVALID_ARGUMENT);
    ACQUIRE_FAILS(NULL, NULL, LICENSE_ERR_INVALID_ARGUMENT);
    FAILS(license_try_acquire("alice", "a", NULL), LICENSE_ERR_INVALID_ARGUMENT);
    FAILS(license_try_acquire(NULL, NULL, NULL), LICENSE_ERR_INVALID_ARGUMENT);
    /* a refusal must not be written through a NULL seat_out either */
    FAILS(license_try_acquire("alice", "nope", NULL), LICENSE_ERR_INVALID_ARGUMENT);

    /* empty strings */
    ACQUIRE_FAILS("", "a", LICENSE_ERR_INVALID_ARGUMENT);
    ACQUIRE_FAILS("alice", "", LICENSE_ERR_INVALID_ARGUMENT);

    /* non-UTF-8 */
    ACQUIRE_FAILS("\xff\xfe", "a", LICENSE_ERR_INVALID_ARGUMENT);
    ACQUIRE_FAILS("alice", "\xff\xfe", LICENSE_ERR_INVALID_ARGUMENT);
    ACQUIRE_FAILS("ali\xc3", "a", LICENSE_ERR_INVALID_ARGUMENT);        /* truncated sequence */
    ACQUIRE_FAILS("ali\xc0\xaf" "ce", "a", LICENSE_ERR_INVALID_ARGUMENT);  /* overlong encoding */
    ACQUIRE_FAILS("\xed\xa0\x80", "a", LICENSE_ERR_INVALID_ARGUMENT);   /* UTF-16 surrogate */
    ACQUIRE_FAILS("alice", "a,\xff", LICENSE_ERR_INVALID_ARGUMENT);

    /* control characters in the user name */
    ACQUIRE_FAILS("bob\n", "a", LICENSE_ERR_INVALID_ARGUMENT);
    ACQUIRE_FAILS("\x01" "bob", "a", LICENSE_ERR_INVALID_ARGUMENT);
    ACQUIRE_FAILS("bo\x7f" "b", "a", LICENSE_ERR_INVALID_ARGUMENT);
    ACQUIRE_FAILS("bo\tb", "a", LICENSE_ERR_INVALID_ARGUMENT);
    ACQUIRE_FAILS("bob\xc2\x85", "a", LICENSE_ERR_INVALID_ARGUMENT); /* U+0085, a C1 control */

    /* empty names in the profile list */
    ACQUIRE_FAILS("alice", "a,,b", LICENSE_ERR_INVALID_ARGUMENT);
    ACQUIRE_FAILS("alice", "a,", LICENSE_ERR_INVALID_ARGUMENT);
    ACQUIRE_FAILS("alice", ",a", LICENSE_ERR_INVALID_ARGUMENT);
    ACQUIRE_FAILS("alice", ",", LICENSE_ERR_INVALID_ARGUMENT);
    ACQUIRE_FAILS("alice", "ab,,s", LICENSE_ERR_INVALID_ARGUMENT);
    CHECK(strstr(last_detail, "empty") != NULL, "last error \"%s\" does not say empty", last_detail);

    /* control characters in the profile list: documented as INVALID_ARGUMENT.
     * Known bug: the list is split and each name trimmed of whitespace, so "a\n" and
     * "\ta" are accepted as "a" (a seat is taken), and "a\x01" is UNKNOWN_PROFILE. */
    {
        const char *lists[] = {"a\n", "\ta", "a\x01", "a\x1b[31m"};
        const char *shown[] = {"\"a\\n\"", "\"\\ta\"", "\"a\\x01\"", "\"a\\x1b[31m\""};
        char got[512] = "";
        int all_invalid = 1;
        for (size_t i = 0; i < sizeof lists / sizeof lists[0]; i++) {
            license_seat h2 = SEAT_SENTINEL;
            int32_t rc = license_try_acquire("ctl-user", lists[i], &h2);
            if (rc == LICENSE_OK) {
                CHECK(h2 != SEAT_SENTINEL && h2 != 0, "seat_out not written on success");
                CHECK_RC(license_release(h2), LICENSE_OK);
            } else {
                CHECK(h2 == SEAT_SENTINEL, "seat_out written on failure");
            }
            check_no_leak(__LINE__);
            if (rc != LICENSE_ERR_INVALID_ARGUMENT)
                all_invalid = 0;
            size_t used = strlen(got);
            snprintf(got + used, sizeof got - used, "%s%s -> %s", i ? ", " : "", shown[i], tc_code_name(rc));
        }
        CHECK(all_invalid, "profile lists with a control character should be LICENSE_ERR_INVALID_ARGUMENT: %s",
                  got);
    }

    /* unknown profiles: nothing taken, even when known names come first */
    ACQUIRE_FAILS("alice", "nope", LICENSE_ERR_UNKNOWN_PROFILE);
    CHECK(strstr(last_detail, "nope") != NULL, "last error \"%s\" does not name 'nope'", last_detail);
    ACQUIRE_FAILS("alice", "ab,nope", LICENSE_ERR_UNKNOWN_PROFILE);
    ACQUIRE_FAILS("alice", "a,b,s,nope", LICENSE_ERR_UNKNOWN_PROFILE);
    ACQUIRE_FAILS("alice", "nope,ab", LICENSE_ERR_UNKNOWN_PROFILE);
    ACQUIRE_FAILS("keeper", "ab,nope", LICENSE_ERR_UNKNOWN_PROFILE); /* a user who holds seats */
    ACQUIRE_FAILS("alice", "licensee", LICENSE_ERR_UNKNOWN_PROFILE);
    /* a name over LICENSE_MAX_NAME_LEN in the list can be no profile: either code, nothing taken */
    {
        license_seat h2 = SEAT_SENTINEL;
        int32_t rc = license_try_acquire("alice", too_long_type, &h2);
        CHECK(rc == LICENSE_ERR_UNKNOWN_PROFILE || rc == LICENSE_ERR_INVALID_ARGUMENT,
              "a 64-byte name in the list returned %s", tc_code_name(rc));
        CHECK(h2 == SEAT_SENTINEL, "seat_out written on failure");
        check_no_leak(__LINE__);
    }

    /* user name: exactly LICENSE_MAX_LABEL_LEN bytes is accepted, one more is not */
    static char user[LICENSE_MAX_LABEL_LEN * 2 + 8];
    repeat(user, "u", LICENSE_MAX_LABEL_LEN);
    ACQUIRE_SUCCEEDS(user, "ab");
    repeat(user, "u", LICENSE_MAX_LABEL_LEN + 1);
    ACQUIRE_FAILS(user, "ab", LICENSE_ERR_INVALID_ARGUMENT);
    repeat(user, "u", LICENSE_MAX_LABEL_LEN * 2);
    ACQUIRE_FAILS(user, "ab", LICENSE_ERR_INVALID_ARGUMENT);
    /* the cap is in bytes: 85 three-byte characters fit (255), 86 do not (258) */
    repeat(user, "\xe2\x82\xac", 85);
    ACQUIRE_SUCCEEDS(user, "ab");
    repeat(user, "\xe2\x82\xac", 86);
    ACQUIRE_FAILS(user, "ab", LICENSE_ERR_INVALID_ARGUMENT);
    ACQUIRE_SUCCEEDS("x", "ab"); /* one byte is enough */
    ACQUIRE_SUCCEEDS("J\xc3\xbcrgen \xe6\x9d\x8e", "ab"); /* non-ASCII UTF-8 is fine */

    /* profile list: exactly LICENSE_MAX_PROFILES_LEN bytes is accepted, one more is not */
    static char list[LICENSE_MAX_PROFILES_LEN + 8];
    repeat(list, "a,", LICENSE_MAX_PROFILES_LEN / 2); /* 1022 bytes ending in ',' */
    strcat(list, "b");                                 /* 1023 */
    CHECK(strlen(list) == LICENSE_MAX_PROFILES_LEN, "test list is %zu bytes", strlen(list));
    ACQUIRE_SUCCEEDS("listy", list);
    strcat(list, "b"); /* 1024: "...,bb" */
    ACQUIRE_FAILS("listy", list, LICENSE_ERR_INVALID_ARGUMENT);
    repeat(list, "a,", LICENSE_MAX_PROFILES_LEN / 2 + 1); /* 1024 bytes ending in ',' */
    list[strlen(list) - 1] = 'b';
    ACQUIRE_FAILS("listy", list, LICENSE_ERR_INVALID_ARGUMENT);
    (void)h;
}

/* ---- 4. license_try_acquire_ex ---- */

static void test_acquire_ex_arguments(void) {
    license_seat h = SEAT_SENTINEL;
    license_request good = {sizeof(license_request), "eve", "ab", "ext-7", "sess-7", NULL};
    license_denial denial = { .size = sizeof(license_denial) };

    FAILS(license_try_acquire_ex(NULL, &h, &denial), LICENSE_ERR_INVALID_ARGUMENT);
    FAILS(license_try_acquire_ex(NULL, &h, NULL), LICENSE_ERR_INVALID_ARGUMENT);
    FAILS(license_try_acquire_ex(&good, NULL, &denial), LICENSE_ERR_INVALID_ARGUMENT);
    FAILS(license_try_acquire_ex(&good, NULL, NULL), LICENSE_ERR_INVALID_ARGUMENT);
    CHECK(h == SEAT_SENTINEL, "seat_out written on failure");
    ACQUIRE_EX_SUCCEEDS(&good);

    license_request r;
    /* size too small */
    r = good;
    r.size = 0;
    ACQUIRE_EX_FAILS(&r, LICENSE_ERR_INVALID_ARGUMENT);
    r.size = offsetof(license_request, profiles); /* lacks the required profiles field */
    ACQUIRE_EX_FAILS(&r, LICENSE_ERR_INVALID_ARGUMENT);
    r.size = offsetof(license_request, profiles) + sizeof(const char *) - 1;
    ACQUIRE_EX_FAILS(&r, LICENSE_ERR_INVALID_ARGUMENT);
    r.size = 1;
    ACQUIRE_EX_FAILS(&r, LICENSE_ERR_INVALID_ARGUMENT);

    /* an older caller's request: fields past `size` are served as NULL, never read */
    r = good;
    r.extension = "\xff\xfe";    /* would be INVALID if read */
    r.session = "";              /* would be INVALID if read */
    r.size = offsetof(license_request, extension);
    ACQUIRE_EX_SUCCEEDS(&r);
    r.size = offsetof(license_request, session);
    ACQUIRE_EX_FAILS(&r, LICENSE_ERR_INVALID_ARGUMENT); /* now extension is read */
    r.extension = "ext-old";
    ACQUIRE_EX_SUCCEEDS(&r); /* session still unread */

    /* required fields */
    r = good;
    r.user = NULL;
    ACQUIRE_EX_FAILS(&r, LICENSE_ERR_INVALID_ARGUMENT);
    r = good;
    r.profiles = NULL;
    ACQUIRE_EX_FAILS(&r, LICENSE_ERR_INVALID_ARGUMENT);
    r = good;
    r.user = "";
    ACQUIRE_EX_FAILS(&r, LICENSE_ERR_INVALID_ARGUMENT);
    r = good;
    r.profiles = "";
    ACQUIRE_EX_FAILS(&r, LICENSE_ERR_INVALID_ARGUMENT);
    r = good;
    r.user = "\xff\xfe";
    ACQUIRE_EX_FAILS(&r, LICENSE_ERR_INVALID_ARGUMENT);
    /* Names that are not plain printable ASCII are checked in full here too: a
     * control character, all blanks; a plain one and a non-ASCII one pass. */
    {
        const char *bad[] = {"bob\n", "\x01" "bob", "bo\tb", "bob\xc2\x85", "   "};
        for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
            r = good;
            r.user = bad[i];
            ACQUIRE_EX_FAILS(&r, LICENSE_ERR_INVALID_ARGUMENT);
            CHECK(strstr(last_detail, "user") != NULL, "last error \"%s\" does not name the user", last_detail);
        }
        const char *fine[] = {"bob", "Jos\xc3\xa9 Garc\xc3\xad" "a", "a b"};
        for (size_t i = 0; i < sizeof fine / sizeof fine[0]; i++) {
            license_seat seat = SEAT_SENTINEL;
            r = good;
            r.user = fine[i];
            CHECK_RC(license_try_acquire_ex(&r, &seat, NULL), LICENSE_OK);
            CHECK_RC(license_release(seat), LICENSE_OK);
        }
    }
    r = good;
    r.profiles = "a,,b";
    ACQUIRE_EX_FAILS(&r, LICENSE_ERR_INVALID_ARGUMENT);
    r = good;
    r.profiles = "nope";
    ACQUIRE_EX_FAILS(&r, LICENSE_ERR_UNKNOWN_PROFILE);

    /* optional labels: NULL is fine; empty, non-UTF-8, control, over-long are not */
    r = good;
    r.extension = NULL;
    r.session = NULL;
    ACQUIRE_EX_SUCCEEDS(&r);
    const char *bad_labels[] = {"", "\xff\xfe", "ext\n1", "\x07"};
    for (size_t i = 0; i < sizeof bad_labels / sizeof bad_labels[0]; i++) {
        r = good;
        r.extension = bad_labels[i];
        ACQUIRE_EX_FAILS(&r, LICENSE_ERR_INVALID_ARGUMENT);
        r = good;
        r.session = bad_labels[i];
        ACQUIRE_EX_FAILS(&r, LICENSE_ERR_INVALID_ARGUMENT);
    }
    static char label[LICENSE_MAX_LABEL_LEN + 2];
    repeat(label, "e", LICENSE_MAX_LABEL_LEN);
    r = good;
    r.extension = label;
    r.session = label;
    r.user = label;
    ACQUIRE_EX_SUCCEEDS(&r); /* all three exactly at the cap */
    repeat(label, "e", LICENSE_MAX_LABEL_LEN + 1);
    r = good;
    r.extension = label;
    ACQUIRE_EX_FAILS(&r, LICENSE_ERR_INVALID_ARGUMENT);
    r = good;
    r.session = label;
    ACQUIRE_EX_FAILS(&r, LICENSE_ERR_INVALID_ARGUMENT);
    r = good;
    r.user = label;
    ACQUIRE_EX_FAILS(&r, LICENSE_ERR_INVALID_ARGUMENT);

    /* LIMIT_REACHED with a NULL denial_out is fine; with one, the 63-byte name fits */
    license_seat holder = 0;
    CHECK_RC(license_try_acquire("long-holder", long_type, &holder), LICENSE_OK);
    take_baseline(); /* long_type is now full (1/1) */
    r = good;
    r.user = "long-wanter";
    r.profiles = "with_long";
    h = SEAT_SENTINEL;
    FAILS(license_try_acquire_ex(&r, &h, NULL), LICENSE_ERR_LIMIT_REACHED);
    CHECK(h == SEAT_SENTINEL, "seat_out written on refusal");
    memset(&denial, 0x7f, sizeof denial);
    denial.size = sizeof denial;
    FAILS(license_try_acquire_ex(&r, &h, &denial), LICENSE_ERR_LIMIT_REACHED);
    CHECK(denial.license_type[LICENSE_MAX_NAME_LEN] == '\0' && strcmp(denial.license_type, long_type) == 0,
          "denial names \"%.64s\", expected the 63-byte type", denial.license_type);
    CHECK(denial.used == 1 && denial.limit == 1, "denial %u/%u, expected 1/1", denial.used, denial.limit);
    CHECK(h == SEAT_SENTINEL, "seat_out written on refusal");
    CHECK_RC(license_release(holder), LICENSE_OK);
    take_baseline();
}

/* ---- 5. release and usage ---- */

static void test_release_and_usage(void) {
    FAILS(license_release(0), LICENSE_ERR_UNKNOWN_SEAT);
    FAILS(license_release(UINT64_MAX), LICENSE_ERR_UNKNOWN_SEAT);
    FAILS(license_release(UINT64_MAX - 1), LICENSE_ERR_UNKNOWN_SEAT);
    license_seat h = 0;
    CHECK_RC(license_try_acquire("probe", "s", &h), LICENSE_OK);
    CHECK_RC(license_release(h), LICENSE_OK);
    FAILS(license_release(h), LICENSE_ERR_UNKNOWN_SEAT);      /* already released */
    FAILS(license_release(h + 1000), LICENSE_ERR_UNKNOWN_SEAT); /* never issued */

    /* The event mask: bits that name no event, and text that names none. */
    uint32_t mask = 77;
    FAILS(license_set_event_mask(1u), LICENSE_ERR_INVALID_ARGUMENT);
    FAILS(license_set_event_mask(UINT32_MAX), LICENSE_ERR_INVALID_ARGUMENT);
    FAILS(license_event_mask_parse(NULL, &mask), LICENSE_ERR_INVALID_ARGUMENT);
    FAILS(license_event_mask_parse("alerts", NULL), LICENSE_ERR_INVALID_ARGUMENT);
    FAILS(license_event_mask_parse("", &mask), LICENSE_ERR_INVALID_ARGUMENT);
    FAILS(license_event_mask_parse("alerts,", &mask), LICENSE_ERR_INVALID_ARGUMENT);
    FAILS(license_event_mask_parse("ALL", &mask), LICENSE_ERR_INVALID_ARGUMENT);
    FAILS(license_event_mask_parse("\xff\xfe", &mask), LICENSE_ERR_INVALID_ARGUMENT);
    CHECK(mask == 77, "a refused license_event_mask_parse wrote %u", mask);

    uint32_t used = 11, limit = 12;
    FAILS(license_usage(NULL, &used, &limit), LICENSE_ERR_INVALID_ARGUMENT);
    FAILS(license_usage("a", NULL, &limit), LICENSE_ERR_INVALID_ARGUMENT);
    FAILS(license_usage("a", &used, NULL), LICENSE_ERR_INVALID_ARGUMENT);
    FAILS(license_usage("a", NULL, NULL), LICENSE_ERR_INVALID_ARGUMENT);
    FAILS(license_usage(NULL, NULL, NULL), LICENSE_ERR_INVALID_ARGUMENT);
    FAILS(license_usage("", &used, &limit), LICENSE_ERR_INVALID_ARGUMENT);
    FAILS(license_usage("\xff\xfe", &used, &limit), LICENSE_ERR_INVALID_ARGUMENT);
    FAILS(license_usage(too_long_type, &used, &limit), LICENSE_ERR_INVALID_ARGUMENT);
    /* not a license type (a profile is not one either): LICENSE_ERR_UNKNOWN_LICENSE_TYPE.
     * Known bug: license_usage still returns LICENSE_ERR_UNKNOWN_PROFILE (-2) here, as
     * before the header introduced the new code. */
    {
        const char *not_types[] = {"nope", "ab", "A", "with_long"};
        char got[256] = "";
        int all_right = 1;
        for (size_t i = 0; i < sizeof not_types / sizeof not_types[0]; i++) {
            int32_t rc = license_usage(not_types[i], &used, &limit);
            save_detail();
            CHECK(rc == LICENSE_ERR_UNKNOWN_LICENSE_TYPE || rc == LICENSE_ERR_UNKNOWN_PROFILE,
                  "license_usage(\"%s\") returned %s", not_types[i], tc_code_name(rc));
            CHECK(strstr(last_detail, not_types[i]) != NULL, "last error \"%s\" does not name \"%s\"", last_detail,
                  not_types[i]);
            check_no_leak(__LINE__);
            if (rc != LICENSE_ERR_UNKNOWN_LICENSE_TYPE)
                all_right = 0;
            size_t n = strlen(got);
            snprintf(got + n, sizeof got - n, "%s\"%s\" -> %s", i ? ", " : "", not_types[i], tc_code_name(rc));
        }
        CHECK(all_right, "license_usage of a name that is not a license type should be "
                             "LICENSE_ERR_UNKNOWN_LICENSE_TYPE (the header): %s", got);
    }
    CHECK(used == 11 && limit == 12, "license_usage wrote outputs on failure (%u/%u)", used, limit);
    /* the usage a NULL used_out would have written must not half-happen */
    limit = 12;
    FAILS(license_usage("a", NULL, &limit), LICENSE_ERR_INVALID_ARGUMENT);
    CHECK(limit == 12, "license_usage wrote limit_out when used_out was NULL");
    used = 11;
    FAILS(license_usage("a", &used, NULL), LICENSE_ERR_INVALID_ARGUMENT);
    CHECK(used == 11, "license_usage wrote used_out when limit_out was NULL");
    CHECK_RC(license_usage(long_type, &used, &limit), LICENSE_OK); /* exactly at the cap */
    CHECK(limit == 1, "limit of the 63-byte type is %u", limit);
}

/* ---- 6. the buffer convention ---- */

#define CANARY 0x5C

/* A heap buffer of exactly `len` bytes (ASan sees any byte written past it), with a
 * CANARY-filled copy to compare afterwards. Returns malloc'd memory (len >= 1). */
static char *canary_buf(size_t len) {
    char *b = malloc(len ? len : 1);
    if (b)
        memset(b, CANARY, len ? len : 1);
    return b;
}

static int all_canary(const char *b, size_t from, size_t to) {
    for (size_t i = from; i < to; i++)
        if ((unsigned char)b[i] != CANARY)
            return 0;
    return 1;
}

typedef int32_t (*writer_fn)(void *ctx, char *buf, size_t len, size_t *needed);

/* Checks the whole convention for one writer whose full output is `full` (stable). */
static void check_buffer_convention(const char *what, writer_fn fn, void *ctx, const char *full,
                                    int content_stable) {
    size_t full_len = strlen(full);
    size_t needed = 0;

    /* size query */
    CHECK(fn(ctx, NULL, 0, &needed) == LICENSE_OK, "%s: size query failed", what);
    CHECK(needed == full_len + 1, "%s: size query needed %zu, expected %zu", what, needed, full_len + 1);
    CHECK(fn(ctx, NULL, 0, NULL) == LICENSE_OK, "%s: size query with needed NULL failed", what);

    /* buf NULL with len > 0 */
    needed = 0;
    int32_t rc = fn(ctx, NULL, 1, &needed);
    CHECK(rc == LICENSE_ERR_INVALID_ARGUMENT, "%s: buf NULL len 1 returned %s", what, tc_code_name(rc));
    rc = fn(ctx, NULL, 4096, NULL);
    CHECK(rc == LICENSE_ERR_INVALID_ARGUMENT, "%s: buf NULL len 4096 returned %s", what, tc_code_name(rc));

    /* len 0 with a real buffer: too small, nothing written */
    char *b = canary_buf(8);
    needed = 0;
    rc = fn(ctx, b, 0, &needed);
    CHECK(rc == LICENSE_ERR_BUFFER_TOO_SMALL, "%s: len 0 returned %s", what, tc_code_name(rc));
    CHECK(all_canary(b, 0, 8), "%s: len 0 wrote into the buffer", what);
    CHECK(needed == full_len + 1, "%s: len 0 needed %zu, expected %zu", what, needed, full_len + 1);
    free(b);

    /* too small at several sizes: a NUL-terminated prefix, nothing past len */
    size_t sizes[] = {1, 2, 10, full_len / 2, full_len, full_len + 1, full_len + 2};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        size_t len = sizes[i];
        if (len == 0)
            continue;
        b = canary_buf(len);
        if (b == NULL)
            continue;
        needed = 0;
        rc = fn(ctx, b, len, &needed);
        CHECK(needed == full_len + 1, "%s: len %zu needed %zu, expected %zu", what, len, needed, full_len + 1);
        void *nul = memchr(b, '\0', len);
        CHECK(nul != NULL, "%s: len %zu: output not NUL-terminated within len", what, len);
        if (len <= full_len) {
            CHECK(rc == LICENSE_ERR_BUFFER_TOO_SMALL, "%s: len %zu returned %s", what, len, tc_code_name(rc));
            if (nul != NULL) {
                size_t got = (size_t)((char *)nul - b);
                CHECK(got <= len - 1, "%s: len %zu: prefix of %zu bytes", what, len, got);
                /* all of what fits, unless a multi-byte character had to be cut short */
                CHECK(got + 3 >= len - 1, "%s: len %zu: prefix of only %zu bytes", what, len, got);
                if (content_stable)
                    CHECK(strncmp(b, full, got) == 0, "%s: len %zu: \"%s\" is not a prefix of the output", what,
                          len, b);
            }
        } else {
            CHECK(rc == LICENSE_OK, "%s: len %zu returned %s", what, len, tc_code_name(rc));
            if (content_stable)
                CHECK(strcmp(b, full) == 0, "%s: len %zu: output differs", what, len);
            else
                CHECK(strlen(b) == full_len, "%s: len %zu: output of %zu bytes", what, len, strlen(b));
        }
        /* with needed NULL too */
        memset(b, CANARY, len);
        rc = fn(ctx, b, len, NULL);
        CHECK(rc == (len <= full_len ? LICENSE_ERR_BUFFER_TOO_SMALL : LICENSE_OK),
              "%s: len %zu, needed NULL returned %s", what, len, tc_code_name(rc));
        CHECK(memchr(b, '\0', len) != NULL, "%s: len %zu, needed NULL: not NUL-terminated", what, len);
        free(b);
    }
    check_no_leak(__LINE__);
}

struct report_ctx {
    uint32_t format;
    size_t first, max_rows;
    int paged;
};

static int32_t report_writer(void *ctx, char *buf, size_t len, size_t *needed) {
    struct report_ctx *c = ctx;
    if (c->paged)
        return license_report_page(c->format, c->first, c->max_rows, buf, len, needed);
    return license_report(c->format, buf, len, needed);
}

static int32_t lint_writer(void *ctx, char *buf, size_t len, size_t *needed) {
    return license_lint(*(uint32_t *)ctx, buf, len, needed);
}

static int32_t type_name_writer(void *ctx, char *buf, size_t len, size_t *needed) {
    return license_type_name(*(uint32_t *)ctx, buf, len, needed);
}

static int32_t last_error_writer(void *ctx, char *buf, size_t len, size_t *needed) {
    (void)ctx;
    return license_last_error(buf, len, needed);
}

static void test_buffers(void) {
    /* reports: the text has a timestamp, so compare lengths (and the fixed start) */
    struct report_ctx rc_text = {LICENSE_REPORT_TEXT, 0, 0, 0};
    struct report_ctx rc_json = {LICENSE_REPORT_JSON, 0, 0, 0};
    struct report_ctx rc_page = {LICENSE_REPORT_TEXT, 0, 1, 1};
    struct report_ctx rc_page_json = {LICENSE_REPORT_JSON, 1, 1, 1};
    struct report_ctx rc_prometheus = {LICENSE_REPORT_PROMETHEUS, 0, 0, 0};
    struct report_ctx *ctxs[] = {&rc_text, &rc_json, &rc_page, &rc_page_json, &rc_prometheus};
    const char *names[] = {"license_report(TEXT)", "license_report(JSON)", "license_report_page(TEXT)",
                           "license_report_page(JSON)", "license_report(PROMETHEUS)"};
    for (size_t i = 0; i < sizeof ctxs / sizeof ctxs[0]; i++) {
        int32_t rc;
        char *full = ctxs[i]->paged ? tc_report_page(ctxs[i]->format, ctxs[i]->first, ctxs[i]->max_rows, &rc)
                                    : tc_report(ctxs[i]->format, &rc);
        CHECK(full != NULL, "%s: %s", names[i], tc_code_name(rc));
        if (full == NULL)
            continue;
        check_buffer_convention(names[i], report_writer, ctxs[i], full, 0);
        char start[16];
        size_t nd = 0;
        rc = report_writer(ctxs[i], start, sizeof start, &nd);
        CHECK(rc == LICENSE_ERR_BUFFER_TOO_SMALL && strncmp(start, full, sizeof start - 1) == 0 &&
                  start[sizeof start - 1] == '\0',
              "%s: 16-byte prefix \"%s\"", names[i], start);
        free(full);
    }

    /* unknown formats */
    size_t needed = 0;
    char small[32];
    const uint32_t bad_formats[] = {3, 4, 99, UINT32_MAX};
    for (size_t i = 0; i < sizeof bad_formats / sizeof bad_formats[0]; i++) {
        FAILS(license_report(bad_formats[i], NULL, 0, &needed), LICENSE_ERR_INVALID_ARGUMENT);
        FAILS(license_report(bad_formats[i], small, sizeof small, &needed), LICENSE_ERR_INVALID_ARGUMENT);
        FAILS(license_report_page(bad_formats[i], 0, 1, small, sizeof small, NULL), LICENSE_ERR_INVALID_ARGUMENT);
    }
    CHECK(strstr(last_detail, "format") != NULL, "last error \"%s\"", last_detail);

    /* lints: this config has exactly one (unused-license 's', consumed by no profile) */
    uint32_t count = 0;
    CHECK_RC(license_lint_count(&count), LICENSE_OK);
    CHECK(count >= 1, "expected a lint for type 's', which no profile consumes; got %u lints", count);
    FAILS(license_lint_count(NULL), LICENSE_ERR_INVALID_ARGUMENT);
    FAILS(license_lint(count, small, sizeof small, &needed), LICENSE_ERR_INVALID_ARGUMENT);
    FAILS(license_lint(count, NULL, 0, &needed), LICENSE_ERR_INVALID_ARGUMENT);
    FAILS(license_lint(UINT32_MAX, small, sizeof small, NULL), LICENSE_ERR_INVALID_ARGUMENT);
    if (count >= 1) {
        uint32_t index = 0;
        char lint[1024];
        CHECK_RC(license_lint(index, lint, sizeof lint, NULL), LICENSE_OK);
        check_buffer_convention("license_lint(0)", lint_writer, &index, lint, 1);
    }

    /* license types by index: NULL count, out-of-range index, the buffer convention */
    uint32_t types = 0;
    FAILS(license_type_count(NULL), LICENSE_ERR_INVALID_ARGUMENT);
    CHECK_RC(license_type_count(&types), LICENSE_OK);
    CHECK(types == N_TYPES, "license_type_count says %u, the config has %d", types, N_TYPES);
    FAILS(license_type_name(types, small, sizeof small, &needed), LICENSE_ERR_INVALID_ARGUMENT);
    FAILS(license_type_name(types, NULL, 0, &needed), LICENSE_ERR_INVALID_ARGUMENT);
    FAILS(license_type_name(UINT32_MAX, small, sizeof small, NULL), LICENSE_ERR_INVALID_ARGUMENT);
    for (uint32_t i = 0; i < types && i < N_TYPES; i++) {
        char name[LICENSE_MAX_NAME_LEN + 1]; /* documented to always suffice */
        CHECK_RC(license_type_name(i, name, sizeof name, NULL), LICENSE_OK);
        CHECK(strcmp(name, TYPES[i]) == 0, "type %u is \"%s\", expected \"%s\"", i, name, TYPES[i]);
        char what[48];
        snprintf(what, sizeof what, "license_type_name(%u)", i);
        check_buffer_convention(what, type_name_writer, &i, TYPES[i], 1);
    }

    /* last_error: a known detail, then the convention; reading it never changes it */
    ACQUIRE_FAILS("carl", "no_such_profile_xyz", LICENSE_ERR_UNKNOWN_PROFILE);
    char detail[512];
    tc_last_error_into(detail, sizeof detail);
    CHECK(strstr(detail, "no_such_profile_xyz") != NULL, "last error \"%s\"", detail);
    check_buffer_convention("license_last_error", last_error_writer, NULL, detail, 1);
    CHECK(strcmp(tc_last_error(), detail) == 0,
          "license_last_error's own failures replaced the detail: now \"%s\"", tc_last_error());
    /* success does not clear it */
    ACQUIRE_SUCCEEDS("carl", "ab");
    CHECK(strcmp(tc_last_error(), detail) == 0, "a success changed the last error to \"%s\"", tc_last_error());
}

/* ---- 7. license_last_error is per thread ---- */

struct thread_result {
    char initial[256];
    size_t initial_needed;
    int32_t initial_rc;
    int32_t fail_rc;
    char after[256];
};

static void *other_thread(void *arg) {
    struct thread_result *r = arg;
    r->initial_needed = 12345;
    r->initial[0] = 'X';
    r->initial_rc = license_last_error(r->initial, sizeof r->initial, &r->initial_needed);
    license_seat h = SEAT_SENTINEL;
    r->fail_rc = license_try_acquire("thread-user", "other_thread_profile", &h);
    tc_last_error_into(r->after, sizeof r->after);
    return NULL;
}

static void test_last_error_per_thread(void) {
    ACQUIRE_FAILS("main-user", "main_thread_profile", LICENSE_ERR_UNKNOWN_PROFILE);
    char mine[512];
    tc_last_error_into(mine, sizeof mine);
    CHECK(strstr(mine, "main_thread_profile") != NULL, "main's last error \"%s\"", mine);

    struct thread_result r;
    memset(&r, 0, sizeof r);
    pthread_t t;
    CHECK(pthread_create(&t, NULL, other_thread, &r) == 0, "pthread_create failed");
    pthread_join(t, NULL);
    CHECK(r.initial_rc == LICENSE_OK && r.initial[0] == '\0' && r.initial_needed == 1,
          "a new thread's last error is \"%s\" (rc %s, needed %zu), expected empty", r.initial,
          tc_code_name(r.initial_rc), r.initial_needed);
    CHECK(r.fail_rc == LICENSE_ERR_UNKNOWN_PROFILE, "thread's acquire returned %s", tc_code_name(r.fail_rc));
    CHECK(strstr(r.after, "other_thread_profile") != NULL, "thread's last error \"%s\"", r.after);
    CHECK(strcmp(tc_last_error(), mine) == 0, "the other thread's failure changed main's last error to \"%s\"",
          tc_last_error());
    check_no_leak(__LINE__);
}

/* ---- 8. shutdown ---- */

static void test_shutdown(const char *good_path) {
    license_seat h = 0;
    CHECK_RC(license_try_acquire("late", "ab", &h), LICENSE_OK);
    license_shutdown();
    initialized_baseline = 0;
    FAILS(license_release(h), LICENSE_ERR_NOT_INITIALIZED);
    ACQUIRE_FAILS("late", "ab", LICENSE_ERR_NOT_INITIALIZED);
    license_shutdown(); /* twice: harmless */
    license_shutdown();
    FAILS(license_release(h), LICENSE_ERR_NOT_INITIALIZED);
    uint32_t count = 5;
    FAILS(license_lint_count(&count), LICENSE_ERR_NOT_INITIALIZED);
    FAILS(license_type_count(&count), LICENSE_ERR_NOT_INITIALIZED);
    CHECK(count == 5, "outputs written after shutdown");

    CHECK_RC(license_init(good_path), LICENSE_OK);
    take_baseline();
    for (int i = 0; i < N_TYPES; i++)
        CHECK(baseline[i] == 0, "after re-init type '%s' used %u", TYPES[i], baseline[i]);
    FAILS(license_release(h), LICENSE_ERR_UNKNOWN_SEAT); /* from before the shutdown */
    ACQUIRE_SUCCEEDS("late", "ab");
    license_shutdown();
    initialized_baseline = 0;
    check_no_leak(__LINE__);
}

int main(void) {
    double t0 = tc_now();
    make_config();
    const char *good_path = tc_write_config(config_text);

    test_before_init();
    test_init_arguments(good_path);

    /* a user who holds seats for the whole test, so that a wrongly freed seat shows */
    license_seat keep1 = 0, keep2 = 0;
    CHECK_RC(license_try_acquire("keeper", "ab", &keep1), LICENSE_OK);
    CHECK_RC(license_try_acquire("keeper", "s", &keep2), LICENSE_OK);
    take_baseline();
    CHECK(baseline[0] == 1 && baseline[1] == 1 && baseline[2] == 1, "keeper's seats: a %u b %u s %u",
          baseline[0], baseline[1], baseline[2]);

    test_acquire_arguments();
    test_acquire_ex_arguments();
    test_release_and_usage();
    test_buffers();
    test_last_error_per_thread();

    CHECK_RC(license_release(keep1), LICENSE_OK);
    CHECK_RC(license_release(keep2), LICENSE_OK);
    for (int i = 0; i < N_TYPES; i++)
        CHECK(tc_usage(TYPES[i]) == 0, "at the end type '%s' used %u", TYPES[i], tc_usage(TYPES[i]));
    test_shutdown(good_path);

    fprintf(stderr, "test_bad_input: %.2f s\n", tc_now() - t0);
    return tc_summary("test_bad_input");
}
