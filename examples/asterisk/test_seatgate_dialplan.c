/*
 * test_seatgate_dialplan: the Asterisk-free half of res_seatgate, against the real
 * libseatgate (run by `make test-asterisk`, plain and under ASan).
 *
 *  - seat id text form: round trip for edge and pseudo-random values; only
 *    [a-z0-9_], fixed length; seat 0 and handle 0 have no text form;
 *  - the parser refuses every malformed id (case, spaces, length, prefix, digits,
 *    handle 0, a decimal number), naming it, and leaves the output alone;
 *  - SEATGATE_ACQUIRE options: k, e(), s(), t(), and each malformed form;
 *  - `a&b` profile lists become `a,b`;
 *  - status, denial, event and release-reason words;
 *  - acquire before init is UNAVAILABLE with the library's sentence;
 *  - acquire: OK with a seat id that parses back to the handle and shows in the
 *    report with its extension and session label; REFUSED with the refused type
 *    and FULL / NO_SEATS / REQUIREMENT_MISSING; UNKNOWN_PROFILE; UNKNOWN_TENANT;
 *    INVALID for a missing user or profiles and for a control character; a tenant's
 *    seat id carries the tenant;
 *  - release: OK frees the seat; a second release is UNKNOWN_SEAT; a malformed id is
 *    INVALID and frees nothing; an admin release.
 */
#include "../../c-tests/common.h"

#include <inttypes.h>

#include "seatgate_dialplan.h"

static const char CONFIG[] =
    "[licenses.user]\n"
    "limit = 5\n"
    "[licenses.callcenter]\n"
    "limit = 1\n"
    "[licenses.chat]\n"
    "limit = 0\n"
    "[licenses.recording]\n"
    "limit = 5\n"
    "requires = [\"callcenter\"]\n"
    "[profiles.operator]\n"
    "consumes = [\"user\", \"callcenter\"]\n"
    "[profiles.chat_team]\n"
    "consumes = [\"chat\"]\n"
    "[profiles.recorder]\n"
    "consumes = [\"recording\"]\n"
    "[tenants.globex]\n"
    "licenses = { user = 1 }\n";

static void check_format_round_trip(license_seat seat) {
    char text[SG_SEAT_TEXT_SIZE];
    char why[256] = "";
    license_seat back = 0;

    CHECK(sg_seat_format(seat, text), "format 0x%016" PRIx64, seat);
    CHECK(strlen(text) == SG_SEAT_TEXT_LEN, "'%s' has length %zu", text, strlen(text));
    CHECK(strncmp(text, SG_SEAT_PREFIX, strlen(SG_SEAT_PREFIX)) == 0, "'%s' prefix", text);
    CHECK(strspn(text, "abcdefghijklmnopqrstuvwxyz0123456789_") == SG_SEAT_TEXT_LEN,
          "'%s' has a byte outside [a-z0-9_]", text);
    CHECK(sg_seat_parse(text, &back, why, sizeof why), "parse '%s': %s", text, why);
    CHECK(back == seat, "'%s' parsed to 0x%016" PRIx64 ", not 0x%016" PRIx64, text, back, seat);
}

static void test_seat_text(void) {
    char text[SG_SEAT_TEXT_SIZE];
    uint64_t x = UINT64_C(0x9e3779b97f4a7c15);

    check_format_round_trip(1);
    check_format_round_trip(0x2a);
    check_format_round_trip((UINT64_C(1) << 48) - 1);
    check_format_round_trip(UINT64_MAX);
    check_format_round_trip((UINT64_C(0xffff) << 48) | 1);
    for (int i = 0; i < 1000; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17; /* xorshift64 */
        if ((x & ((UINT64_C(1) << 48) - 1)) != 0)
            check_format_round_trip(x);
    }

    sg_seat_format((UINT64_C(1) << 48) | 0x2a, text);
    CHECK(strcmp(text, "sg1_0001_00000000002a") == 0, "tenant 1, handle 42 is '%s'", text);
    sg_seat_format(0x2a, text);
    CHECK(strcmp(text, "sg1_0000_00000000002a") == 0, "handle 42 is '%s'", text);

    strcpy(text, "junk");
    CHECK(!sg_seat_format(0, text) && text[0] == '\0', "seat 0 formatted as '%s'", text);
    strcpy(text, "junk");
    CHECK(!sg_seat_format(UINT64_C(7) << 48, text) && text[0] == '\0',
          "handle 0 of tenant 7 formatted as '%s'", text);
}

static void test_seat_parse_refuses(void) {
    static const char *const bad[] = {
        "",
        "sg1_0000_00000000002A",   /* uppercase */
        " sg1_0000_00000000002a",  /* leading space */
        "sg1_0000_00000000002a ",  /* trailing space */
        "sg1_0000_0000000002a",    /* one digit short */
        "sg1_0000_000000000002a",  /* one digit long */
        "sg2_0000_00000000002a",   /* another version */
        "sg1-0000-00000000002a",   /* other separators */
        "sg1_00000_0000000002a",   /* separator moved */
        "sg1_0000_00000000002g",   /* not hex */
        "sg1_0000_0000000000-1",   /* a sign */
        "sg1_0000_000000000000",   /* handle 0 */
        "sg1_0005_000000000000",   /* handle 0 of a tenant */
        "42",                      /* the number itself */
        "0x000000000000002a",
        "SEAT",
        "sg1_0000_00000000\n02a",
    };
    char why[256];
    license_seat seat;

    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        seat = 12345;
        why[0] = '\0';
        CHECK(!sg_seat_parse(bad[i], &seat, why, sizeof why), "'%s' was accepted", bad[i]);
        CHECK(seat == 12345, "'%s' wrote the output", bad[i]);
        CHECK(why[0] != '\0', "'%s' refused without a reason", bad[i]);
        if (bad[i][0] != '\0' && strchr(bad[i], '\n') == NULL)
            CHECK(strstr(why, bad[i]) != NULL, "reason '%s' does not quote '%s'", why, bad[i]);
    }
    seat = 12345;
    CHECK(!sg_seat_parse(NULL, &seat, why, sizeof why) && seat == 12345, "NULL accepted");
    CHECK(strstr(why, "no seat id") != NULL, "NULL: reason '%s'", why);
    CHECK(!sg_seat_parse("sg1_0000_00000000\n02a", &seat, why, sizeof why) &&
              strchr(why, '\n') == NULL,
          "a control byte reaches the reason: '%s'", why);
}

static void test_options(void) {
    struct sg_options o;
    char why[256];
    char buf[128];

    CHECK(sg_options_parse(NULL, &o, why, sizeof why), "NULL options: %s", why);
    CHECK(!o.keep && !o.extension && !o.session && !o.tenant, "NULL options set something");
    strcpy(buf, "");
    CHECK(sg_options_parse(buf, &o, why, sizeof why) && !o.keep && !o.extension, "'': %s", why);

    strcpy(buf, "k");
    CHECK(sg_options_parse(buf, &o, why, sizeof why) && o.keep && !o.extension, "'k': %s", why);

    strcpy(buf, "ke(2001)t(globex)s(agent-7 desk)");
    CHECK(sg_options_parse(buf, &o, why, sizeof why), "all options: %s", why);
    CHECK(o.keep, "k lost");
    CHECK(o.extension && strcmp(o.extension, "2001") == 0, "e() is '%s'", o.extension ? o.extension : "(null)");
    CHECK(o.tenant && strcmp(o.tenant, "globex") == 0, "t() is '%s'", o.tenant ? o.tenant : "(null)");
    CHECK(o.session && strcmp(o.session, "agent-7 desk") == 0, "s() is '%s'", o.session ? o.session : "(null)");

    static const struct {
        const char *options, *reason_has;
    } bad[] = {
        {"x", "unknown option 'x'"},
        {"kk", "'k' given twice"},
        {"e", "needs a value"},
        {"ek", "needs a value"},
        {"e(2001", "no closing parenthesis"},
        {"e()", "empty value"},
        {"e(1)e(2)", "'e' given twice"},
        {"e(a(b)", "'(' inside"},
        {"k)", "unknown option ')'"},
        {"K", "unknown option 'K'"},
        {"k\x01", "byte 0x01"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        strcpy(buf, bad[i].options);
        why[0] = '\0';
        CHECK(!sg_options_parse(buf, &o, why, sizeof why), "'%s' accepted", bad[i].options);
        CHECK(strstr(why, bad[i].reason_has) != NULL, "'%s': reason '%s' lacks '%s'",
              bad[i].options, why, bad[i].reason_has);
    }

    strcpy(buf, "operator&chat_team&user");
    sg_profiles_from_dialplan(buf);
    CHECK(strcmp(buf, "operator,chat_team,user") == 0, "& list became '%s'", buf);
    sg_profiles_from_dialplan(NULL); /* no crash */
}

static void test_words(void) {
    CHECK(strcmp(sg_status_word(LICENSE_OK), "OK") == 0, "OK");
    CHECK(strcmp(sg_status_word(LICENSE_ERR_LIMIT_REACHED), "REFUSED") == 0, "limit");
    CHECK(strcmp(sg_status_word(LICENSE_ERR_REQUIREMENT_MISSING), "REFUSED") == 0, "requirement");
    CHECK(strcmp(sg_status_word(LICENSE_ERR_EXPIRED), "REFUSED") == 0, "expired");
    CHECK(strcmp(sg_status_word(LICENSE_ERR_UNKNOWN_PROFILE), "UNKNOWN_PROFILE") == 0, "profile");
    CHECK(strcmp(sg_status_word(LICENSE_ERR_UNKNOWN_TENANT), "UNKNOWN_TENANT") == 0, "tenant");
    CHECK(strcmp(sg_status_word(LICENSE_ERR_UNKNOWN_SEAT), "UNKNOWN_SEAT") == 0, "seat");
    CHECK(strcmp(sg_status_word(LICENSE_ERR_UNKNOWN_USER), "UNKNOWN_USER") == 0, "user");
    CHECK(strcmp(sg_status_word(LICENSE_ERR_INVALID_ARGUMENT), "INVALID") == 0, "invalid");
    static const int32_t unavailable[] = {LICENSE_ERR_NOT_INITIALIZED, LICENSE_ERR_BACKEND,
                                          LICENSE_ERR_TABLE_FULL, LICENSE_ERR_INTERNAL, -1000};
    for (size_t i = 0; i < sizeof unavailable / sizeof unavailable[0]; i++)
        CHECK(strcmp(sg_status_word(unavailable[i]), "UNAVAILABLE") == 0, "code %d is %s",
              unavailable[i], sg_status_word(unavailable[i]));

    CHECK(strcmp(sg_denial_word(LICENSE_DENIAL_FULL), "FULL") == 0, "FULL");
    CHECK(strcmp(sg_denial_word(LICENSE_DENIAL_NO_SEATS), "NO_SEATS") == 0, "NO_SEATS");
    CHECK(strcmp(sg_denial_word(LICENSE_DENIAL_OVER_LIMIT), "OVER_LIMIT") == 0, "OVER_LIMIT");
    CHECK(strcmp(sg_denial_word(LICENSE_DENIAL_RESERVED), "RESERVED") == 0, "RESERVED");
    CHECK(strcmp(sg_denial_word(LICENSE_DENIAL_CAPPED), "CAPPED") == 0, "CAPPED");
    CHECK(strcmp(sg_denial_word(LICENSE_DENIAL_EXPIRED), "EXPIRED") == 0, "EXPIRED");
    CHECK(strcmp(sg_denial_word(99), "UNKNOWN") == 0, "99");
    CHECK(strcmp(sg_event_kind_word(LICENSE_EVENT_RELEASED), "RELEASED") == 0, "RELEASED");
    CHECK(strcmp(sg_event_kind_word(LICENSE_EVENT_LIMIT_CHANGED), "LIMIT_CHANGED") == 0, "LIMIT_CHANGED");
    CHECK(strcmp(sg_event_kind_word(0), "UNKNOWN") == 0, "kind 0");
    CHECK(strcmp(sg_release_reason_word(LICENSE_RELEASE_ADMIN), "ADMIN") == 0, "ADMIN");
    CHECK(strcmp(sg_release_reason_word(LICENSE_RELEASE_LICENSE_EXPIRED), "LICENSE_EXPIRED") == 0, "LICENSE_EXPIRED");
    CHECK(strcmp(sg_release_reason_word(99), "UNKNOWN") == 0, "reason 99");
}

static void test_not_initialized(void) {
    struct sg_result r;
    int32_t code = 0;
    char why[256] = "";

    sg_acquire("alice", "operator", NULL, NULL, &r);
    CHECK(strcmp(r.status, "UNAVAILABLE") == 0 && r.code == LICENSE_ERR_NOT_INITIALIZED,
          "before init: %s (%d)", r.status, r.code);
    CHECK(r.reason[0] != '\0' && r.seat[0] == '\0', "before init: reason '%s', seat '%s'", r.reason, r.seat);
    CHECK(sg_report(LICENSE_REPORT_TEXT, &code, why, sizeof why) == NULL &&
              code == LICENSE_ERR_NOT_INITIALIZED && why[0] != '\0',
          "report before init: code %d, '%s'", code, why);
}

static void expect_refused(const char *user, const char *profiles, const char *type,
                           const char *denial) {
    struct sg_result r;

    sg_acquire(user, profiles, NULL, NULL, &r);
    CHECK(strcmp(r.status, "REFUSED") == 0, "%s %s: %s (%s)", user, profiles, r.status, r.reason);
    CHECK(strcmp(r.refused_type, type) == 0, "%s %s: refused type '%s', want '%s'", user,
          profiles, r.refused_type, type);
    CHECK(strcmp(r.denial, denial) == 0, "%s %s: denial '%s', want '%s'", user, profiles,
          r.denial, denial);
    CHECK(strstr(r.reason, type) != NULL, "%s %s: reason '%s' does not name '%s'", user,
          profiles, r.reason, type);
    CHECK(r.seat[0] == '\0' && r.seat_value == 0, "%s %s: refused but seat '%s'", user,
          profiles, r.seat);
}

static void test_acquire_release(void) {
    struct sg_result alice, r, g;
    struct sg_options o;
    char opts[64];
    char why[256];
    int32_t code;
    license_seat parsed = 0;
    char *report;

    CHECK_RC(license_init(tc_write_config(CONFIG)), LICENSE_OK);

    strcpy(opts, "e(2001)");
    CHECK(sg_options_parse(opts, &o, why, sizeof why), "%s", why);
    sg_acquire("alice", "operator", &o, "PJSIP/2001-00000001", &alice);
    CHECK(strcmp(alice.status, "OK") == 0 && alice.code == LICENSE_OK, "alice: %s (%s)",
          alice.status, alice.reason);
    CHECK(sg_seat_parse(alice.seat, &parsed, why, sizeof why) && parsed == alice.seat_value,
          "alice's seat '%s' does not parse back: %s", alice.seat, why);
    CHECK(alice.reason[0] == '\0' && alice.refused_type[0] == '\0' && alice.denial[0] == '\0',
          "alice OK with leftovers: '%s' '%s' '%s'", alice.reason, alice.refused_type, alice.denial);
    CHECK(tc_usage("callcenter") == 1, "callcenter used %u", tc_usage("callcenter"));

    report = sg_report(LICENSE_REPORT_TEXT, &code, why, sizeof why);
    CHECK(report != NULL && code == LICENSE_OK, "report: %d %s", code, why);
    if (report) {
        CHECK(strstr(report, "alice") && strstr(report, "2001"), "report lacks alice/2001:\n%s", report);
        free(report);
    }
    report = sg_report(LICENSE_REPORT_JSON, &code, why, sizeof why);
    CHECK(report != NULL && strstr(report, "PJSIP/2001-00000001") != NULL,
          "JSON report lacks the session label: %s", report ? report : why);
    free(report);

    expect_refused("bob", "operator", "callcenter", "FULL");
    expect_refused("carol", "chat_team", "chat", "NO_SEATS");
    expect_refused("dave", "recorder", "recording", "REQUIREMENT_MISSING");

    sg_acquire("erin", "operatorr", NULL, NULL, &r);
    CHECK(strcmp(r.status, "UNKNOWN_PROFILE") == 0 && strstr(r.reason, "operatorr"),
          "typo profile: %s (%s)", r.status, r.reason);
    sg_acquire("", "operator", NULL, NULL, &r);
    CHECK(strcmp(r.status, "INVALID") == 0 && strstr(r.reason, "needs a user"), "no user: %s (%s)",
          r.status, r.reason);
    sg_acquire(NULL, "operator", NULL, NULL, &r);
    CHECK(strcmp(r.status, "INVALID") == 0, "NULL user: %s", r.status);
    sg_acquire("erin", "", NULL, NULL, &r);
    CHECK(strcmp(r.status, "INVALID") == 0 && strstr(r.reason, "needs profiles"),
          "no profiles: %s (%s)", r.status, r.reason);
    sg_acquire("er\tin", "user", NULL, NULL, &r);
    CHECK(strcmp(r.status, "INVALID") == 0 && r.code == LICENSE_ERR_INVALID_ARGUMENT,
          "control character: %s (%s)", r.status, r.reason);

    /* Tenants: the seat id carries the tenant, and the tenant's own limit applies. */
    strcpy(opts, "t(globex)");
    CHECK(sg_options_parse(opts, &o, why, sizeof why), "%s", why);
    sg_acquire("gina", "user", &o, NULL, &g);
    CHECK(strcmp(g.status, "OK") == 0, "globex gina: %s (%s)", g.status, g.reason);
    CHECK(strncmp(g.seat, "sg1_0000_", 9) != 0, "globex seat '%s' has tenant 0000", g.seat);
    sg_acquire("hank", "user", &o, NULL, &r);
    CHECK(strcmp(r.status, "REFUSED") == 0 && strcmp(r.refused_type, "user") == 0,
          "globex is full at 1: %s '%s'", r.status, r.refused_type);
    strcpy(opts, "t(nosuch)");
    CHECK(sg_options_parse(opts, &o, why, sizeof why), "%s", why);
    sg_acquire("gina", "user", &o, NULL, &r);
    CHECK(strcmp(r.status, "UNKNOWN_TENANT") == 0, "unknown tenant: %s (%s)", r.status, r.reason);
    sg_release(g.seat, LICENSE_RELEASE_NORMAL, &r);
    CHECK(strcmp(r.status, "OK") == 0, "globex release: %s (%s)", r.status, r.reason);

    /* Release. */
    sg_release("sg1_0000_00000000002A", LICENSE_RELEASE_NORMAL, &r);
    CHECK(strcmp(r.status, "INVALID") == 0 && strstr(r.reason, "malformed") && r.seat_value == 0,
          "malformed release: %s (%s)", r.status, r.reason);
    CHECK(tc_usage("callcenter") == 1, "a malformed release freed a seat");
    sg_release(alice.seat, LICENSE_RELEASE_NORMAL, &r);
    CHECK(strcmp(r.status, "OK") == 0 && r.seat_value == alice.seat_value && r.reason[0] == '\0',
          "alice release: %s (%s)", r.status, r.reason);
    CHECK(tc_usage("callcenter") == 0, "callcenter used %u after release", tc_usage("callcenter"));
    sg_release(alice.seat, LICENSE_RELEASE_NORMAL, &r);
    CHECK(strcmp(r.status, "UNKNOWN_SEAT") == 0 && r.reason[0] != '\0',
          "double release: %s (%s)", r.status, r.reason);

    /* The seat is free again; an admin release frees it too. */
    sg_acquire("bob", "operator", NULL, NULL, &r);
    CHECK(strcmp(r.status, "OK") == 0, "bob after alice left: %s (%s)", r.status, r.reason);
    sg_release(r.seat, LICENSE_RELEASE_ADMIN, &r);
    CHECK(strcmp(r.status, "OK") == 0 && tc_usage("callcenter") == 0, "admin release: %s (%s)",
          r.status, r.reason);

    license_shutdown();
}

int main(void) {
    test_seat_text();
    test_seat_parse_refuses();
    test_options();
    test_words();
    test_not_initialized();
    test_acquire_release();
    return tc_summary("test_seatgate_dialplan");
}
