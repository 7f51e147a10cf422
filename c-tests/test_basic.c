/*
 * test_basic: the main flow of the seatgate C API, one behaviour at a time.
 *
 *  - version and status names;
 *  - config errors: each returns LICENSE_ERR_CONFIG with "file:line:column:" at the
 *    right line, and leaves the library uninitialized;
 *  - acquire by profile bundle and by bare license type;
 *  - count = "user": the same user again gets a new, distinct handle and takes no
 *    extra seat; the seat is freed only with the user's last handle;
 *  - count = "session": every handle takes a seat;
 *  - a user holding `operator` asking for `operator,chat_team` takes only the chat seat;
 *  - refusal of a full type names it (license_denial and license_last_error);
 *  - all or nothing: a bundle refused by its last type takes nothing from the others;
 *  - double release is LICENSE_ERR_UNKNOWN_SEAT and frees nobody's seat;
 *  - handles are never 0 and never reused, even across shutdown + init; an old handle
 *    is LICENSE_ERR_NOT_INITIALIZED after shutdown and LICENSE_ERR_UNKNOWN_SEAT after
 *    a new init;
 *  - license_report (TEXT and JSON, size query then real call) and license_report_page;
 *  - lints (license_lint_count / license_lint);
 *  - license_type_count / license_type_name list the types in config order.
 */
#include "common.h"

#include <ctype.h>
#include <stddef.h>

/* ---- configs ---- */

/* Config A: chat has seats, video has none (lint), integration_1c counts sessions. */
static const char CONFIG_A[] =
    "# seatgate C test: config A\n"
    "[licensee]\n"
    "name = \"Basic Test Center\"\n"
    "\n"
    "[licenses.user]\n"
    "limit = 20\n"
    "description = \"Named user\"\n"
    "\n"
    "[licenses.callcenter]\n"
    "limit = 8\n"
    "\n"
    "[licenses.crm]\n"
    "limit = 3\n"
    "\n"
    "[licenses.chat]\n"
    "limit = 2\n"
    "\n"
    "[licenses.extension]\n"
    "limit = 20\n"
    "\n"
    "[licenses.integration_1c]\n"
    "limit = 2\n"
    "count = \"session\"\n"
    "\n"
    "[licenses.video]\n"
    "limit = 0\n"
    "description = \"Video\"\n"
    "\n"
    "[profiles.operator]\n"
    "consumes = [\"user\", \"callcenter\", \"extension\"]\n"
    "\n"
    "[profiles.admin]\n"
    "consumes = [\"user\", \"crm\"]\n"
    "\n"
    "[profiles.chat_team]\n"
    "consumes = [\"chat\"]\n"
    "\n"
    "[profiles.receptionist]\n"
    "consumes = [\"user\", \"extension\"]\n"
    "\n"
    "[profiles.integration]\n"
    "consumes = [\"integration_1c\"]\n"
    "\n"
    "[profiles.video_team]\n"
    "consumes = [\"video\"]\n";

static const char *const TYPES_A[] = {"user", "callcenter", "crm", "chat",
                                      "extension", "integration_1c", "video"};
#define N_TYPES_A (sizeof TYPES_A / sizeof TYPES_A[0])

/* Config B: the sample config of examples/seats.toml (chat has no seats). */
static const char CONFIG_B[] =
    "[licensee]\n"
    "name = \"ACME Call Center\"\n"
    "support_until = \"2027-10-31\"\n"
    "\n"
    "[licenses.user]                 # the general login seat\n"
    "limit = 20\n"
    "description = \"Named user\"\n"
    "\n"
    "[licenses.callcenter]\n"
    "limit = 8\n"
    "description = \"Call-center operator\"\n"
    "\n"
    "[licenses.crm]\n"
    "limit = 3\n"
    "description = \"CRM admin / back office\"\n"
    "\n"
    "[licenses.chat]\n"
    "limit = 0                       # no chat seats bought\n"
    "description = \"Chat\"\n"
    "\n"
    "[licenses.extension]\n"
    "limit = 20\n"
    "description = \"Extension (phone line)\"\n"
    "\n"
    "[licenses.integration_1c]\n"
    "limit = 2\n"
    "count = \"session\"\n"
    "description = \"External integration (1C)\"\n"
    "\n"
    "[profiles.operator]\n"
    "consumes = [\"user\", \"callcenter\", \"extension\"]\n"
    "description = \"Call-center agent\"\n"
    "\n"
    "[profiles.admin]\n"
    "consumes = [\"user\", \"crm\"]\n"
    "description = \"Back-office admin\"\n"
    "\n"
    "[profiles.chat_team]\n"
    "consumes = [\"chat\"]\n"
    "\n"
    "[profiles.receptionist]\n"
    "consumes = [\"user\", \"extension\"]\n"
    "\n"
    "[profiles.integration]\n"
    "consumes = [\"integration_1c\"]\n";

static const char *const TYPES_B[] = {"user", "callcenter", "crm", "chat",
                                      "extension", "integration_1c"};
#define N_TYPES_B (sizeof TYPES_B / sizeof TYPES_B[0])

/* ---- handle bookkeeping: every handle ever issued in this process ---- */

#define MAX_HANDLES 256
static license_seat all_handles[MAX_HANDLES];
static size_t n_handles;

/* Records a freshly issued handle and checks it is non-zero and never seen before. */
static void note_handle(license_seat h, const char *what) {
    CHECK(h != 0, "%s: handle is 0", what);
    int seen = 0;
    for (size_t i = 0; i < n_handles; i++)
        if (all_handles[i] == h)
            seen = 1;
    CHECK(!seen, "%s: handle %llu was issued before", what, (unsigned long long)h);
    if (n_handles < MAX_HANDLES)
        all_handles[n_handles++] = h;
}

/* Acquires and records; returns the handle (0 on failure, which is a CHECK failure). */
static license_seat acquire_ok(const char *user, const char *profiles) {
    license_seat h = 0;
    int32_t rc = license_try_acquire(user, profiles, &h);
    CHECK(rc == LICENSE_OK, "acquire(%s, %s) returned %d (%s): %s", user, profiles, (int)rc,
          tc_code_name(rc), tc_last_error());
    if (rc != LICENSE_OK)
        return 0;
    char what[160];
    snprintf(what, sizeof what, "acquire(%s, %s)", user, profiles);
    note_handle(h, what);
    return h;
}

/* ---- usage snapshots ---- */

struct snapshot {
    uint32_t used[8];
};

static struct snapshot snap(const char *const *types, size_t n) {
    struct snapshot s;
    memset(&s, 0, sizeof s);
    for (size_t i = 0; i < n && i < 8; i++)
        s.used[i] = tc_usage(types[i]);
    return s;
}

/* Checks that every type's count is as in `before`, except the deltas given as
 * "type" -> delta pairs in `changes` (NULL-terminated list of names, parallel deltas). */
static void check_usage_delta(int line, const char *what, const char *const *types, size_t n,
                              struct snapshot before, const char *const *changed,
                              const int *delta) {
    for (size_t i = 0; i < n; i++) {
        int64_t want = before.used[i];
        for (size_t k = 0; changed != NULL && changed[k] != NULL; k++)
            if (strcmp(changed[k], types[i]) == 0)
                want += delta[k];
        uint32_t now = tc_usage(types[i]);
        CHECK((int64_t)now == want, "line %d: %s: type '%s' used %u, expected %lld", line, what,
              types[i], now, (long long)want);
    }
}

#define UNCHANGED(what, types, n, before) check_usage_delta(__LINE__, what, types, n, before, NULL, NULL)

static void check_used(const char *type, uint32_t want, const char *what) {
    uint32_t used = 0, limit = 0;
    int32_t rc = license_usage(type, &used, &limit);
    CHECK(rc == LICENSE_OK, "%s: license_usage(%s) returned %s", what, type, tc_code_name(rc));
    CHECK(used == want, "%s: type '%s' used %u, expected %u", what, type, used, want);
}

/* ---- version and status names ---- */

static void test_version_and_strerror(void) {
    const char *v = license_version();
    CHECK(v != NULL, "license_version() is NULL");
    if (v != NULL)
        CHECK(strcmp(v, SEATGATE_VERSION) == 0, "license_version() is \"%s\", header says \"%s\"", v,
              SEATGATE_VERSION);
    char macro_version[32];
    snprintf(macro_version, sizeof macro_version, "%d.%d.%d", SEATGATE_VERSION_MAJOR,
             SEATGATE_VERSION_MINOR, SEATGATE_VERSION_PATCH);
    CHECK(strcmp(macro_version, SEATGATE_VERSION) == 0, "version parts %s vs SEATGATE_VERSION %s",
          macro_version, SEATGATE_VERSION);

    const int32_t codes[] = {LICENSE_OK,
                             LICENSE_ERR_LIMIT_REACHED,
                             LICENSE_ERR_UNKNOWN_PROFILE,
                             LICENSE_ERR_INVALID_ARGUMENT,
                             LICENSE_ERR_NOT_INITIALIZED,
                             LICENSE_ERR_ALREADY_INITIALIZED,
                             LICENSE_ERR_UNKNOWN_SEAT,
                             LICENSE_ERR_CONFIG,
                             LICENSE_ERR_BUFFER_TOO_SMALL,
                             LICENSE_ERR_INTERNAL,
                             LICENSE_ERR_UNKNOWN_LICENSE_TYPE,
                             LICENSE_ERR_REQUIREMENT_MISSING,
                             LICENSE_ERR_UNKNOWN_USER,
                             LICENSE_ERR_BACKEND,
                             LICENSE_ERR_TABLE_FULL,
                             LICENSE_ERR_EXPIRED,
                             LICENSE_ERR_UNKNOWN_TENANT,
                             LICENSE_ERR_EMERGENCY_UNAVAILABLE,
                             LICENSE_ERR_STATE,
                             LICENSE_ERR_LICENSE_FILE};
    const size_t n = sizeof codes / sizeof codes[0];
    const char *names[sizeof codes / sizeof codes[0]];
    for (size_t i = 0; i < n; i++) {
        names[i] = license_strerror(codes[i]);
        CHECK(names[i] != NULL, "license_strerror(%d) is NULL", (int)codes[i]);
        if (names[i] == NULL)
            continue;
        CHECK(names[i][0] != '\0', "license_strerror(%d) is empty", (int)codes[i]);
        CHECK(strcmp(names[i], "unknown status code") != 0,
              "license_strerror(%d) (%s) says \"unknown status code\"", (int)codes[i],
              tc_code_name(codes[i]));
        CHECK(license_strerror(codes[i]) == names[i] || strcmp(license_strerror(codes[i]), names[i]) == 0,
              "license_strerror(%d) is not stable", (int)codes[i]);
        for (size_t j = 0; j < i; j++)
            if (names[j] != NULL)
                CHECK(strcmp(names[i], names[j]) != 0, "codes %d and %d share the name \"%s\"",
                      (int)codes[i], (int)codes[j], names[i]);
    }
    CHECK(strcmp(license_strerror(LICENSE_ERR_LIMIT_REACHED), "license type is full") == 0,
          "license_strerror(LIMIT_REACHED) is \"%s\"", license_strerror(LICENSE_ERR_LIMIT_REACHED));
    const int32_t unknown[] = {1, 2, -20, 42, -1000, INT32_MIN, INT32_MAX};
    for (size_t i = 0; i < sizeof unknown / sizeof unknown[0]; i++) {
        const char *s = license_strerror(unknown[i]);
        CHECK(s != NULL && strcmp(s, "unknown status code") == 0,
              "license_strerror(%d) is \"%s\", expected \"unknown status code\"", (int)unknown[i],
              s ? s : "(null)");
    }
}

/* ---- config errors ---- */

struct bad_config {
    const char *name;
    const char *text;
    const char *marker;  /* text on the offending line */
    const char *mention; /* the message must mention this */
};

static void test_config_errors(void) {
    const struct bad_config cases[] = {
        {"unknown key",
         "[licenses.user]\n"
         "limit = 5\n"
         "\n"
         "[licenses.crm]\n"
         "limit = 2\n"
         "colour = \"blue\"\n",
         "colour = ", "colour"},
        {"unknown license type in consumes",
         "[licenses.user]\n"
         "limit = 5\n"
         "[licenses.callcenter]\n"
         "limit = 2\n"
         "\n"
         "[profiles.operator]\n"
         "consumes = [\"user\",\n"
         "            \"callcentre\"]\n",
         "\"callcentre\"", "callcentre"},
        {"negative limit",
         "[licenses.user]\n"
         "limit = 5\n"
         "\n"
         "[licenses.crm]\n"
         "description = \"CRM\"\n"
         "limit = -4\n",
         "limit = -4", "-4"},
        {"string limit",
         "[licenses.user]\n"
         "limit = \"ten\"\n",
         "limit = \"ten\"", "limit"},
        {"fractional limit",
         "[licenses.user]\n"
         "limit = 1\n"
         "[licenses.crm]\n"
         "limit = 2.5\n",
         "limit = 2.5", "limit"},
        {"duplicate key",
         "[licenses.user]\n"
         "limit = 5\n"
         "description = \"a\"\n"
         "limit = 6\n",
         "limit = 6", "duplicate"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const struct bad_config *c = &cases[i];
        const char *path = tc_write_config(c->text);
        int line = tc_line_of(c->text, c->marker);
        CHECK(line > 0, "%s: marker not in the test's own config", c->name);
        CHECK_RC(license_init(path), LICENSE_ERR_CONFIG);
        char err[1024];
        tc_last_error_into(err, sizeof err);
        char prefix[256];
        snprintf(prefix, sizeof prefix, "%s:%d:", path, line);
        CHECK(tc_starts_with(err, prefix), "%s: last error \"%s\" does not start with \"%s\"", c->name,
              err, prefix);
        /* then a column and ": " */
        const char *p = err + strlen(prefix);
        int digits = 0;
        while (isdigit((unsigned char)*p)) {
            p++;
            digits++;
        }
        CHECK(digits > 0 && p[0] == ':' && p[1] == ' ',
              "%s: last error \"%s\" is not file:line:column: problem", c->name, err);
        CHECK(strstr(err, c->mention) != NULL, "%s: last error \"%s\" does not mention \"%s\"",
              c->name, err, c->mention);
        /* A failed init leaves the library uninitialized. */
        uint32_t used = 7, limit = 7;
        CHECK_RC(license_usage("user", &used, &limit), LICENSE_ERR_NOT_INITIALIZED);
        CHECK(used == 7 && limit == 7, "%s: license_usage wrote outputs on failure", c->name);
    }
}

/* ---- license types by index ---- */

/* license_type_count and license_type_name list exactly `types`, in config order. */
static void check_type_listing(const char *const *types, size_t n) {
    uint32_t count = 0;
    CHECK_RC(license_type_count(&count), LICENSE_OK);
    CHECK(count == n, "license_type_count says %u, the config has %zu types", count, n);
    for (uint32_t i = 0; i < count && i < n; i++) {
        size_t needed = 0;
        CHECK_RC(license_type_name(i, NULL, 0, &needed), LICENSE_OK);
        CHECK(needed == strlen(types[i]) + 1, "license_type_name(%u) size query: %zu", i, needed);
        char name[LICENSE_MAX_NAME_LEN + 1];
        memset(name, 'X', sizeof name);
        CHECK_RC(license_type_name(i, name, sizeof name, &needed), LICENSE_OK);
        CHECK(strcmp(name, types[i]) == 0, "license type %u is \"%s\", config order says \"%s\"", i, name, types[i]);
        uint32_t used = 0, limit = 0;
        CHECK_RC(license_usage(name, &used, &limit), LICENSE_OK);
    }
    char name[LICENSE_MAX_NAME_LEN + 1];
    CHECK_RC(license_type_name(count, name, sizeof name, NULL), LICENSE_ERR_INVALID_ARGUMENT);
}

/* ---- lints ---- */

/* Finds a lint containing every needle; returns 1 and copies it into out. */
static int find_lint(const char *n1, const char *n2, const char *n3, char *out, size_t outlen) {
    uint32_t count = 0;
    int32_t rc = license_lint_count(&count);
    CHECK(rc == LICENSE_OK, "license_lint_count returned %s", tc_code_name(rc));
    for (uint32_t i = 0; i < count; i++) {
        size_t needed = 0;
        rc = license_lint(i, NULL, 0, &needed);
        CHECK(rc == LICENSE_OK && needed > 1, "license_lint(%u) size query: %s, needed %zu", i,
              tc_code_name(rc), needed);
        char buf[1024];
        size_t needed2 = 0;
        rc = license_lint(i, buf, sizeof buf, &needed2);
        CHECK(rc == LICENSE_OK, "license_lint(%u) returned %s", i, tc_code_name(rc));
        if (rc != LICENSE_OK)
            continue;
        CHECK(needed2 == needed && strlen(buf) + 1 == needed,
              "license_lint(%u): needed %zu / %zu, strlen %zu", i, needed, needed2, strlen(buf));
        CHECK(strchr(buf, '\n') == NULL, "lint %u is not one line: \"%s\"", i, buf);
        if (strstr(buf, n1) && strstr(buf, n2) && strstr(buf, n3)) {
            snprintf(out, outlen, "%s", buf);
            return 1;
        }
    }
    return 0;
}

static void check_zero_limit_lint(const char *path, const char *config, const char *profile,
                                  const char *type) {
    char consumes_line[128];
    snprintf(consumes_line, sizeof consumes_line, "consumes = [\"%s\"]", type);
    int line = tc_line_of(config, consumes_line);
    CHECK(line > 0, "test config lacks %s", consumes_line);
    char q_profile[80], q_type[80], lint[1024];
    snprintf(q_profile, sizeof q_profile, "'%s'", profile);
    snprintf(q_type, sizeof q_type, "'%s'", type);
    int found = find_lint("zero-limit-consumed", q_profile, q_type, lint, sizeof lint);
    CHECK(found, "no zero-limit-consumed lint naming profile %s and type %s", q_profile, q_type);
    if (!found)
        return;
    char prefix[256];
    snprintf(prefix, sizeof prefix, "%s:%d: warning[zero-limit-consumed]: ", path, line);
    CHECK(tc_starts_with(lint, prefix), "lint \"%s\" does not start with \"%s\"", lint, prefix);
}

/* ---- reports ---- */

/* license_report for the whole table (first 0, max_rows 0), else license_report_page. */
static int32_t report_call(uint32_t format, size_t first, size_t max_rows, char *buf, size_t len, size_t *needed) {
    if (first == 0 && max_rows == 0)
        return license_report(format, buf, len, needed);
    return license_report_page(format, first, max_rows, buf, len, needed);
}

/* Size query (buf NULL, len 0), then a real call into a buffer of exactly that size. */
static char *report_exact(uint32_t format, size_t first, size_t max_rows) {
    size_t needed = 0;
    int32_t rc = report_call(format, first, max_rows, NULL, 0, &needed);
    CHECK(rc == LICENSE_OK, "report size query returned %s", tc_code_name(rc));
    CHECK(needed > 1, "report size query: needed %zu", needed);
    if (rc != LICENSE_OK || needed <= 1)
        return NULL;
    char *buf = malloc(needed);
    if (buf == NULL)
        return NULL;
    size_t needed2 = 0;
    rc = report_call(format, first, max_rows, buf, needed, &needed2);
    CHECK(rc == LICENSE_OK, "report into a buffer of the queried size (%zu) returned %s", needed,
          tc_code_name(rc));
    if (rc != LICENSE_OK) {
        free(buf);
        return NULL;
    }
    CHECK(needed2 == needed, "report: needed %zu after the query said %zu", needed2, needed);
    CHECK(strlen(buf) + 1 == needed, "report: strlen %zu, needed %zu", strlen(buf), needed);
    return buf;
}

/* The text report's "Licenses" row of each type shows used/limit and "full" exactly
 * when used == limit. */
static void check_text_rows(const char *text, const char *const *types, size_t n) {
    for (size_t i = 0; i < n; i++) {
        uint32_t used = 0, limit = 0;
        CHECK_RC(license_usage(types[i], &used, &limit), LICENSE_OK);
        char prefix[80], row[512], ratio[32];
        snprintf(prefix, sizeof prefix, "  %s ", types[i]);
        snprintf(ratio, sizeof ratio, " %u/%u ", used, limit);
        int found = tc_find_line(text, prefix, row, sizeof row);
        CHECK(found, "text report has no row for '%s'", types[i]);
        if (!found)
            continue;
        CHECK(strstr(row, ratio) != NULL, "row \"%s\" lacks \"%s\"", row, ratio);
        int says_full = strstr(row, " full ") != NULL || (strlen(row) >= 5 && strcmp(row + strlen(row) - 5, " full") == 0);
        CHECK(says_full == (used >= limit), "row \"%s\": used %u limit %u but full=%d", row, used,
              limit, says_full);
    }
}

static void check_footer(const char *text, size_t first, size_t last, size_t total) {
    char footer[96];
    snprintf(footer, sizeof footer, "showing %zu to %zu of %zu\n", first, last, total);
    const char *hit = strstr(text, footer);
    CHECK(hit != NULL, "text report lacks footer \"%.*s\"", (int)strlen(footer) - 1, footer);
    if (hit != NULL)
        CHECK(hit[strlen(footer)] == '\0', "footer \"%.*s\" is not the last line", (int)strlen(footer) - 1,
              footer);
}

/* A holder row of the "Online licenses" table: a line after that heading that contains
 * "  user  " surrounded by spaces. */
static int text_shows_holder(const char *text, const char *user) {
    const char *table = strstr(text, "Online licenses\n");
    if (table == NULL)
        return 0;
    char needle[300];
    snprintf(needle, sizeof needle, "  %s  ", user);
    return strstr(table, needle) != NULL;
}

static int json_shows_holder(const char *json, const char *user) {
    char needle[300];
    snprintf(needle, sizeof needle, "\"user\": \"%s\"", user);
    return strstr(json, needle) != NULL;
}

/* ---- phase A: acquire and release semantics ---- */

static license_seat phase_a(const char *path_a, license_seat *old_for_phase_b) {
    CHECK_RC(license_init(path_a), LICENSE_OK);
    struct snapshot zero = snap(TYPES_A, N_TYPES_A);
    for (size_t i = 0; i < N_TYPES_A; i++)
        CHECK(zero.used[i] == 0, "fresh init: type '%s' used %u", TYPES_A[i], zero.used[i]);
    uint32_t used = 9, limit = 9;
    CHECK_RC(license_usage("crm", &used, &limit), LICENSE_OK);
    CHECK(used == 0 && limit == 3, "crm usage %u/%u, config says 0/3", used, limit);

    check_type_listing(TYPES_A, N_TYPES_A);

    /* lints: config A's only mistake is video_team over a zero-limit type */
    check_zero_limit_lint(path_a, CONFIG_A, "video_team", "video");

    /* a profile bundle takes one seat of each of its types */
    struct snapshot s0 = snap(TYPES_A, N_TYPES_A);
    license_seat alice1 = acquire_ok("alice", "operator");
    {
        const char *ch[] = {"user", "callcenter", "extension", NULL};
        const int d[] = {1, 1, 1};
        check_usage_delta(__LINE__, "alice operator", TYPES_A, N_TYPES_A, s0, ch, d);
    }

    /* a bare license type is a profile of one type */
    struct snapshot s1 = snap(TYPES_A, N_TYPES_A);
    license_seat bob = acquire_ok("bob", "crm");
    {
        const char *ch[] = {"crm", NULL};
        const int d[] = {1};
        check_usage_delta(__LINE__, "bob crm", TYPES_A, N_TYPES_A, s1, ch, d);
    }

    /* count = "user": alice's second login is a new handle but no new seat */
    struct snapshot s2 = snap(TYPES_A, N_TYPES_A);
    license_seat alice2 = acquire_ok("alice", "operator");
    CHECK(alice2 != alice1, "alice's second login got the same handle %llu", (unsigned long long)alice1);
    UNCHANGED("alice second login", TYPES_A, N_TYPES_A, s2);
    CHECK_RC(license_release(alice1), LICENSE_OK);
    UNCHANGED("alice released one of two handles", TYPES_A, N_TYPES_A, s2);
    CHECK_RC(license_release(alice2), LICENSE_OK);
    {
        const char *ch[] = {"user", "callcenter", "extension", NULL};
        const int d[] = {-1, -1, -1};
        check_usage_delta(__LINE__, "alice released her last handle", TYPES_A, N_TYPES_A, s2, ch, d);
    }

    /* count = "session": every handle of the same user takes a seat */
    struct snapshot s3 = snap(TYPES_A, N_TYPES_A);
    license_seat svc1 = acquire_ok("svc-1c", "integration");
    check_used("integration_1c", s3.used[5] + 1, "first 1C session");
    license_seat svc2 = acquire_ok("svc-1c", "integration");
    check_used("integration_1c", s3.used[5] + 2, "second 1C session of the same user");
    {
        license_request req = {sizeof(license_request), "svc-1c", "integration", NULL, "1c-session-3", NULL};
        license_denial denial;
        memset(&denial, 0x5a, sizeof denial);
        denial.size = sizeof denial;
        license_seat h = 12345;
        CHECK_RC(license_try_acquire_ex(&req, &h, &denial), LICENSE_ERR_LIMIT_REACHED);
        CHECK(h == 12345, "seat_out written on refusal");
        CHECK(memchr(denial.license_type, '\0', sizeof denial.license_type) != NULL &&
                  strcmp(denial.license_type, "integration_1c") == 0,
              "denial names \"%.64s\", expected integration_1c", denial.license_type);
        CHECK(denial.used == 2 && denial.limit == 2, "denial %u/%u, expected 2/2", denial.used, denial.limit);
        CHECK(strcmp(tc_last_error(), "license type 'integration_1c' is full (2/2)") == 0,
              "last error \"%s\"", tc_last_error());
    }
    CHECK_RC(license_release(svc1), LICENSE_OK);
    check_used("integration_1c", s3.used[5] + 1, "one 1C session released");
    CHECK_RC(license_release(svc2), LICENSE_OK);
    UNCHANGED("both 1C sessions released", TYPES_A, N_TYPES_A, s3);

    /* one bundle of both kinds, twice for the same user: the user-counted types once,
     * the session-counted type per handle */
    {
        struct snapshot m0 = snap(TYPES_A, N_TYPES_A);
        license_seat m1 = acquire_ok("mixer", "receptionist,integration");
        license_seat m2 = acquire_ok("mixer", "integration,receptionist");
        CHECK(m1 != m2, "mixer's two handles are the same");
        const char *ch[] = {"user", "extension", "integration_1c", NULL};
        const int d2[] = {1, 1, 2};
        check_usage_delta(__LINE__, "mixer twice", TYPES_A, N_TYPES_A, m0, ch, d2);
        CHECK_RC(license_release(m2), LICENSE_OK);
        const int d1[] = {1, 1, 1};
        check_usage_delta(__LINE__, "mixer released one", TYPES_A, N_TYPES_A, m0, ch, d1);
        CHECK_RC(license_release(m1), LICENSE_OK);
        UNCHANGED("mixer released both", TYPES_A, N_TYPES_A, m0);
    }

    /* names that JSON must escape come back escaped */
    {
        license_seat q = acquire_ok("quote\"back\\slash", "receptionist");
        int32_t rc;
        char *json = tc_report(LICENSE_REPORT_JSON, &rc);
        CHECK(json != NULL, "JSON report: %s", tc_code_name(rc));
        if (json) {
            CHECK(strstr(json, "\"user\": \"quote\\\"back\\\\slash\"") != NULL,
                  "JSON report does not escape the user name quote\"back\\slash");
            free(json);
        }
        CHECK_RC(license_release(q), LICENSE_OK);
    }

    /* carol holds operator; operator,chat_team takes only the chat seat */
    struct snapshot s4 = snap(TYPES_A, N_TYPES_A);
    license_seat carol1 = acquire_ok("carol", "operator");
    struct snapshot s5 = snap(TYPES_A, N_TYPES_A);
    license_seat carol2 = acquire_ok("carol", "operator,chat_team");
    {
        const char *ch[] = {"chat", NULL};
        const int d[] = {1};
        check_usage_delta(__LINE__, "carol adds chat_team", TYPES_A, N_TYPES_A, s5, ch, d);
    }
    CHECK_RC(license_release(carol1), LICENSE_OK);
    /* carol's second handle still references user, callcenter, extension and chat */
    {
        const char *ch[] = {"chat", NULL};
        const int d[] = {1};
        check_usage_delta(__LINE__, "carol released her first handle", TYPES_A, N_TYPES_A, s5, ch, d);
    }
    CHECK_RC(license_release(carol2), LICENSE_OK);
    UNCHANGED("carol released both handles", TYPES_A, N_TYPES_A, s4);

    /* refusal by the last type of a bundle: nothing taken, the type named */
    struct snapshot s6 = snap(TYPES_A, N_TYPES_A);
    {
        license_seat h = 777;
        CHECK_RC(license_try_acquire("frank", "admin,video_team", &h), LICENSE_ERR_LIMIT_REACHED);
        CHECK(h == 777, "seat_out written on refusal");
        CHECK(strcmp(tc_last_error(), "license type 'video' is full (0/0): no seats are licensed") == 0, "last error \"%s\"",
              tc_last_error());
        UNCHANGED("admin,video_team refused", TYPES_A, N_TYPES_A, s6);

        license_request req = {sizeof(license_request), "frank", "video_team,admin", "ext-999", NULL, NULL};
        license_denial denial;
        memset(&denial, 0x5a, sizeof denial);
        denial.size = sizeof denial;
        CHECK_RC(license_try_acquire_ex(&req, &h, &denial), LICENSE_ERR_LIMIT_REACHED);
        CHECK(h == 777, "seat_out written on refusal");
        CHECK(memchr(denial.license_type, '\0', sizeof denial.license_type) != NULL &&
                  strcmp(denial.license_type, "video") == 0,
              "denial names \"%.64s\", expected video", denial.license_type);
        CHECK(denial.used == 0 && denial.limit == 0, "denial %u/%u, expected 0/0", denial.used, denial.limit);
        UNCHANGED("video_team,admin refused", TYPES_A, N_TYPES_A, s6);
    }

    /* fill crm (bob holds 1): dave admin, erin crm; then a bundle that also needs crm */
    license_seat dave = acquire_ok("dave", "admin");
    license_seat erin = acquire_ok("erin", "crm");
    check_used("crm", 3, "crm filled");
    struct snapshot s7 = snap(TYPES_A, N_TYPES_A);
    {
        license_seat h = 778;
        license_request req = {sizeof(license_request), "frank", "receptionist,crm", NULL, NULL, NULL};
        license_denial denial;
        memset(&denial, 0, sizeof denial);
        denial.size = sizeof denial;
        CHECK_RC(license_try_acquire_ex(&req, &h, &denial), LICENSE_ERR_LIMIT_REACHED);
        CHECK(h == 778, "seat_out written on refusal");
        CHECK(strcmp(denial.license_type, "crm") == 0 && denial.used == 3 && denial.limit == 3,
              "denial %.64s %u/%u, expected crm 3/3", denial.license_type, denial.used, denial.limit);
        CHECK(strcmp(tc_last_error(), "license type 'crm' is full (3/3)") == 0, "last error \"%s\"",
              tc_last_error());
        UNCHANGED("receptionist,crm refused", TYPES_A, N_TYPES_A, s7);
        /* the refused user holds nothing and is not in the report */
        int32_t rc;
        char *json = tc_report(LICENSE_REPORT_JSON, &rc);
        CHECK(json != NULL, "JSON report: %s", tc_code_name(rc));
        if (json) {
            CHECK(!json_shows_holder(json, "frank"), "refused user frank is listed as a holder");
            free(json);
        }
    }

    /* double release: UNKNOWN_SEAT, and nobody's seat is freed */
    CHECK_RC(license_release(erin), LICENSE_OK);
    struct snapshot s8 = snap(TYPES_A, N_TYPES_A);
    CHECK_RC(license_release(erin), LICENSE_ERR_UNKNOWN_SEAT);
    UNCHANGED("erin released twice", TYPES_A, N_TYPES_A, s8);
    {
        license_seat gina1 = acquire_ok("gina", "receptionist");
        license_seat gina2 = acquire_ok("gina", "receptionist");
        struct snapshot s9 = snap(TYPES_A, N_TYPES_A);
        CHECK_RC(license_release(gina1), LICENSE_OK);
        CHECK_RC(license_release(gina1), LICENSE_ERR_UNKNOWN_SEAT);
        CHECK_RC(license_release(gina1), LICENSE_ERR_UNKNOWN_SEAT);
        UNCHANGED("gina's first handle released three times; her second still holds", TYPES_A,
                  N_TYPES_A, s9);
        CHECK_RC(license_release(gina2), LICENSE_OK);
        UNCHANGED("gina fully released", TYPES_A, N_TYPES_A, s8);
        CHECK_RC(license_release(gina2), LICENSE_ERR_UNKNOWN_SEAT);
        UNCHANGED("gina's second handle released twice", TYPES_A, N_TYPES_A, s8);
    }
    CHECK_RC(license_release(0), LICENSE_ERR_UNKNOWN_SEAT);
    UNCHANGED("release(0)", TYPES_A, N_TYPES_A, s8);

    /* labels from license_try_acquire_ex show in the reports */
    license_seat hank = 0;
    {
        license_request req = {sizeof(license_request), "hank", "receptionist", "ext-101", "sip-call-7f3a", NULL};
        license_denial denial;
        memset(&denial, 0x33, sizeof denial);
        denial.size = sizeof denial;
        license_denial before = denial;
        CHECK_RC(license_try_acquire_ex(&req, &hank, &denial), LICENSE_OK);
        CHECK(memcmp(&before, &denial, sizeof denial) == 0, "denial_out written on success");
        note_handle(hank, "acquire_ex(hank)");
    }

    /* reports: bob (crm), dave (admin), hank (receptionist) */
    char *text = report_exact(LICENSE_REPORT_TEXT, 0, 0);
    CHECK(text != NULL, "no text report");
    if (text) {
        CHECK(tc_starts_with(text, "seatgate license report"), "text report starts \"%.40s\"", text);
        CHECK(strstr(text, "Licensee: Basic Test Center") != NULL, "text report lacks the licensee");
        CHECK(strstr(text, "Online licenses") != NULL, "text report lacks \"Online licenses\"");
        check_text_rows(text, TYPES_A, N_TYPES_A);
        check_footer(text, 1, 3, 3);
        CHECK(text_shows_holder(text, "bob") && text_shows_holder(text, "dave") &&
                  text_shows_holder(text, "hank"),
              "text report lacks a holder:\n%s", text);
        CHECK(!text_shows_holder(text, "alice") && !text_shows_holder(text, "erin"),
              "text report shows a user who released everything");
        CHECK(strstr(text, "ext-101") != NULL, "text report lacks hank's extension");
        CHECK(strstr(text, "zero-limit-consumed") != NULL, "text report lacks the lint warning");
        free(text);
    }
    {
        /* license_report_page(0, 0) is the whole report, like license_report */
        size_t whole = 0, page_all = 0;
        CHECK_RC(license_report(LICENSE_REPORT_JSON, NULL, 0, &whole), LICENSE_OK);
        CHECK_RC(license_report_page(LICENSE_REPORT_JSON, 0, 0, NULL, 0, &page_all), LICENSE_OK);
        CHECK(whole == page_all && whole > 0, "license_report needs %zu, license_report_page(0, 0) %zu", whole,
              page_all);
    }
    char *json = report_exact(LICENSE_REPORT_JSON, 0, 0);
    CHECK(json != NULL, "no JSON report");
    if (json) {
        const char *keys[] = {"\"holders\"", "\"licenses\"", "\"warnings\"", "\"since\"", "\"paging\"",
                              "\"licensee\""};
        for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
            CHECK(strstr(json, keys[i]) != NULL, "JSON report lacks %s", keys[i]);
        CHECK(json[0] == '{', "JSON report does not start with '{'");
        CHECK(json_shows_holder(json, "bob") && json_shows_holder(json, "dave") &&
                  json_shows_holder(json, "hank"),
              "JSON report lacks a holder");
        CHECK(strstr(json, "\"ext-101\"") != NULL && strstr(json, "\"sip-call-7f3a\"") != NULL,
              "JSON report lacks hank's labels");
        free(json);
    }

    *old_for_phase_b = dave;
    (void)bob;
    return hank;
}

/* ---- phase B: shutdown, a new init, the sample config ---- */

static void phase_b(const char *path_b, license_seat old_dave, license_seat old_hank) {
    license_shutdown();
    CHECK_RC(license_release(old_dave), LICENSE_ERR_NOT_INITIALIZED);
    uint32_t used = 5, limit = 5;
    CHECK_RC(license_usage("user", &used, &limit), LICENSE_ERR_NOT_INITIALIZED);
    license_shutdown(); /* twice: harmless */

    CHECK_RC(license_init(path_b), LICENSE_OK);
    struct snapshot zero = snap(TYPES_B, N_TYPES_B);
    for (size_t i = 0; i < N_TYPES_B; i++)
        CHECK(zero.used[i] == 0, "after re-init: type '%s' used %u", TYPES_B[i], zero.used[i]);
    /* handles from before the shutdown are unknown, and free nothing */
    CHECK_RC(license_release(old_dave), LICENSE_ERR_UNKNOWN_SEAT);
    CHECK_RC(license_release(old_hank), LICENSE_ERR_UNKNOWN_SEAT);

    check_zero_limit_lint(path_b, CONFIG_B, "chat_team", "chat");
    check_type_listing(TYPES_B, N_TYPES_B); /* the new config's types, not the old ones */

    /* eight operators fill callcenter; every handle is new */
    license_seat op[9] = {0};
    char name[9][16];
    for (int i = 0; i < 8; i++) {
        snprintf(name[i], sizeof name[i], "op%d", i + 1);
        op[i] = acquire_ok(name[i], "operator");
    }
    /* an old handle must still not free any of the new seats */
    struct snapshot full = snap(TYPES_B, N_TYPES_B);
    CHECK_RC(license_release(old_dave), LICENSE_ERR_UNKNOWN_SEAT);
    UNCHANGED("old handle released after re-init", TYPES_B, N_TYPES_B, full);
    CHECK(full.used[0] == 8 && full.used[1] == 8 && full.used[4] == 8,
          "eight operators: user %u callcenter %u extension %u", full.used[0], full.used[1], full.used[4]);

    {
        license_seat h = 4242;
        license_request req = {sizeof(license_request), "op9", "operator", "ext-109", NULL, NULL};
        license_denial denial;
        memset(&denial, 0, sizeof denial);
        denial.size = sizeof denial;
        CHECK_RC(license_try_acquire_ex(&req, &h, &denial), LICENSE_ERR_LIMIT_REACHED);
        CHECK(h == 4242, "seat_out written on refusal");
        CHECK(strcmp(denial.license_type, "callcenter") == 0 && denial.used == 8 && denial.limit == 8,
              "denial %.64s %u/%u, expected callcenter 8/8", denial.license_type, denial.used, denial.limit);
        CHECK(strcmp(tc_last_error(), "license type 'callcenter' is full (8/8)") == 0,
              "last error \"%s\"", tc_last_error());
        UNCHANGED("ninth operator refused", TYPES_B, N_TYPES_B, full);

        /* op1 holds operator; adding chat_team is refused by chat (0/0), nothing taken */
        memset(&denial, 0, sizeof denial);
        denial.size = sizeof denial;
        license_request req2 = {sizeof(license_request), "op1", "operator,chat_team", NULL, NULL, NULL};
        CHECK_RC(license_try_acquire_ex(&req2, &h, &denial), LICENSE_ERR_LIMIT_REACHED);
        CHECK(strcmp(denial.license_type, "chat") == 0 && denial.used == 0 && denial.limit == 0,
              "denial %.64s %u/%u, expected chat 0/0", denial.license_type, denial.used, denial.limit);
        CHECK(strcmp(tc_last_error(), "license type 'chat' is full (0/0): no seats are licensed") == 0, "last error \"%s\"",
              tc_last_error());
        CHECK_RC(license_try_acquire("newbie", "receptionist,chat_team", &h), LICENSE_ERR_LIMIT_REACHED);
        CHECK(strcmp(tc_last_error(), "license type 'chat' is full (0/0): no seats are licensed") == 0, "last error \"%s\"",
              tc_last_error());
        CHECK(h == 4242, "seat_out written on refusal");
        UNCHANGED("chat refused", TYPES_B, N_TYPES_B, full);
    }

    char *text = report_exact(LICENSE_REPORT_TEXT, 0, 0);
    CHECK(text != NULL, "no text report");
    if (text) {
        char row[512];
        int found = tc_find_line(text, "  callcenter ", row, sizeof row);
        CHECK(found && strstr(row, " 8/8 ") && strstr(row, " full "),
              "callcenter row \"%s\" lacks 8/8 and full", row);
        check_text_rows(text, TYPES_B, N_TYPES_B);
        CHECK(strstr(text, "Online licenses") != NULL, "text report lacks \"Online licenses\"");
        CHECK(strstr(text, "Licensee: ACME Call Center") != NULL, "text report lacks the licensee");
        check_footer(text, 1, 8, 8);
        for (int i = 0; i < 8; i++)
            CHECK(text_shows_holder(text, name[i]), "text report lacks %s", name[i]);
        CHECK(!text_shows_holder(text, "op9") && !text_shows_holder(text, "newbie"),
              "text report shows a refused user");
        free(text);
    }
    char *json = report_exact(LICENSE_REPORT_JSON, 0, 0);
    CHECK(json != NULL, "no JSON report");
    if (json) {
        const char *keys[] = {"\"holders\"", "\"licenses\"", "\"warnings\"", "\"since\""};
        for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
            CHECK(strstr(json, keys[i]) != NULL, "JSON report lacks %s", keys[i]);
        const char *cc = strstr(json, "\"name\": \"callcenter\"");
        CHECK(cc != NULL, "JSON report lacks the callcenter entry");
        if (cc) {
            const char *end = strchr(cc, '}');
            const char *u = strstr(cc, "\"used\": 8");
            const char *st = strstr(cc, "\"status\": \"full\"");
            CHECK(end && u && u < end && st && st < end, "JSON callcenter entry lacks used 8 / full");
        }
        CHECK(strstr(json, "\"total\": 8") != NULL, "JSON paging total is not 8");
        free(json);
    }

    /* paging: keep op1..op5 (login order), show rows 2..3 */
    for (int i = 5; i < 8; i++)
        CHECK_RC(license_release(op[i]), LICENSE_OK);
    text = report_exact(LICENSE_REPORT_TEXT, 1, 2);
    CHECK(text != NULL, "no paged text report");
    if (text) {
        check_footer(text, 2, 3, 5);
        CHECK(text_shows_holder(text, "op2") && text_shows_holder(text, "op3"),
              "page 2..3 lacks op2/op3:\n%s", text);
        CHECK(!text_shows_holder(text, "op1") && !text_shows_holder(text, "op4") &&
                  !text_shows_holder(text, "op5"),
              "page 2..3 shows a row outside it:\n%s", text);
        /* counts cover the whole table */
        char row[512];
        tc_find_line(text, "  callcenter ", row, sizeof row);
        CHECK(strstr(row, " 5/8 ") != NULL, "paged report callcenter row \"%s\" lacks 5/8", row);
        free(text);
    }
    json = report_exact(LICENSE_REPORT_JSON, 1, 2);
    CHECK(json != NULL, "no paged JSON report");
    if (json) {
        CHECK(strstr(json, "\"first\": 2") && strstr(json, "\"last\": 3") && strstr(json, "\"total\": 5"),
              "JSON paging is not 2..3 of 5");
        CHECK(json_shows_holder(json, "op2") && json_shows_holder(json, "op3") &&
                  !json_shows_holder(json, "op1") && !json_shows_holder(json, "op4") &&
                  !json_shows_holder(json, "op5"),
              "JSON page 2..3 has the wrong holders");
        free(json);
    }
    /* max_rows 0: everything from first_row on */
    text = report_exact(LICENSE_REPORT_TEXT, 3, 0);
    if (text) {
        check_footer(text, 4, 5, 5);
        CHECK(text_shows_holder(text, "op4") && text_shows_holder(text, "op5") &&
                  !text_shows_holder(text, "op3"),
              "page from row 4 has the wrong holders");
        free(text);
    }
    /* a page past the end shows no rows */
    text = report_exact(LICENSE_REPORT_TEXT, 5, 2);
    CHECK(text != NULL, "no report for a page past the end");
    if (text) {
        for (int i = 0; i < 5; i++)
            CHECK(!text_shows_holder(text, name[i]), "page past the end shows %s", name[i]);
        /* an empty page says "0 to 0"; the total still covers the whole table */
        check_footer(text, 0, 0, 5);
        free(text);
    }

    /* far past the end, and a row count that would overflow first_row + max_rows */
    text = report_exact(LICENSE_REPORT_TEXT, SIZE_MAX, SIZE_MAX);
    CHECK(text != NULL, "no report for first_row = max_rows = SIZE_MAX");
    if (text) {
        check_footer(text, 0, 0, 5);
        free(text);
    }
    text = report_exact(LICENSE_REPORT_TEXT, 4, SIZE_MAX);
    if (text) {
        check_footer(text, 5, 5, 5);
        CHECK(text_shows_holder(text, "op5") && !text_shows_holder(text, "op4"),
              "page from row 5 with SIZE_MAX rows has the wrong holders");
        free(text);
    }

    for (int i = 0; i < 5; i++)
        CHECK_RC(license_release(op[i]), LICENSE_OK);
    for (size_t i = 0; i < N_TYPES_B; i++)
        check_used(TYPES_B[i], 0, "everything released");
    text = report_exact(LICENSE_REPORT_TEXT, 0, 0);
    if (text) {
        check_footer(text, 0, 0, 0);
        free(text);
    }
    license_shutdown();
}

int main(void) {
    double t0 = tc_now();
    test_version_and_strerror();
    test_config_errors();

    const char *path_a = tc_write_config(CONFIG_A);
    const char *path_b = tc_write_config(CONFIG_B);
    license_seat dave = 0;
    license_seat hank = phase_a(path_a, &dave);
    phase_b(path_b, dave, hank);

    CHECK(n_handles >= 23, "only %zu handles were issued", n_handles);
    fprintf(stderr, "test_basic: %zu handles, %.2f s\n", n_handles, tc_now() - t0);
    return tc_summary("test_basic");
}
