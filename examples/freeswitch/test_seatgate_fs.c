/*
 * mod_seatgate's logic without FreeSWITCH (seatgate_fs.c), against the real library:
 * the application's argument parsing, the refusal's channel variables, and the
 * `seatgate` API command end to end.
 */
#include "../../c-tests/common.h"
#include "seatgate_fs.h"

#include <inttypes.h>

/* ---- output capture for sg_api ---- */

typedef struct {
    char text[65536];
    size_t len;
} capture;

static void capture_emit(void *ctx, const char *text) {
    capture *c = ctx;
    size_t n = strlen(text);
    if (c->len + n >= sizeof c->text)
        n = sizeof c->text - 1 - c->len;
    memcpy(c->text + c->len, text, n);
    c->len += n;
    c->text[c->len] = '\0';
}

/* Runs one API command; returns its output (valid until the next call). */
static const char *api(const char *cmd, int32_t *rc_out) {
    static capture c;
    c.len = 0;
    c.text[0] = '\0';
    int32_t rc = sg_api(cmd, NULL, capture_emit, &c);
    if (rc_out != NULL)
        *rc_out = rc;
    return c.text;
}

/* ---- channel variables for sg_refusal_vars ---- */

typedef struct {
    char names[16][64];
    char values[16][512];
    int count;
} vars;

static void vars_set(void *ctx, const char *name, const char *value) {
    vars *v = ctx;
    if (v->count < 16) {
        snprintf(v->names[v->count], sizeof v->names[0], "%s", name);
        snprintf(v->values[v->count], sizeof v->values[0], "%s", value);
        v->count++;
    }
}

static const char *var(const vars *v, const char *name) {
    for (int i = 0; i < v->count; i++)
        if (strcmp(v->names[i], name) == 0)
            return v->values[i];
    return NULL;
}

static int str_is(const char *got, const char *want) {
    return got != NULL && strcmp(got, want) == 0;
}

static void test_split_and_app_args(void) {
    char buf[256], err[256];
    char *argv[3];
    snprintf(buf, sizeof buf, "  a \t b  c ");
    CHECK(sg_split(buf, argv, 3) == 3 && str_is(argv[0], "a") && str_is(argv[1], "b") && str_is(argv[2], "c"),
          "split on spaces and tabs");
    snprintf(buf, sizeof buf, "a b c d");
    CHECK(sg_split(buf, argv, 3) == -1, "more words than max is -1");
    snprintf(buf, sizeof buf, "   ");
    CHECK(sg_split(buf, argv, 3) == 0, "blank data has no words");

    sg_app_args a;
    snprintf(buf, sizeof buf, "1001 agent");
    CHECK(sg_parse_app_args(buf, &a, err, sizeof err) == 0, "user and profiles: %s", err);
    CHECK(str_is(a.user, "1001") && str_is(a.profiles, "agent") && !a.on_refusal.hangup &&
              str_is(a.on_refusal.extension, SG_DEFAULT_OVER_LIMIT_EXTEN) && a.on_refusal.dialplan == NULL &&
              a.on_refusal.context == NULL,
          "without an action, a refusal transfers to %s", SG_DEFAULT_OVER_LIMIT_EXTEN);

    snprintf(buf, sizeof buf, "1001 agent,chat_team over_limit XML agents");
    CHECK(sg_parse_app_args(buf, &a, err, sizeof err) == 0, "transfer with dialplan and context: %s", err);
    CHECK(str_is(a.profiles, "agent,chat_team") && str_is(a.on_refusal.extension, "over_limit") &&
              str_is(a.on_refusal.dialplan, "XML") && str_is(a.on_refusal.context, "agents"),
          "transfer target, dialplan and context");

    snprintf(buf, sizeof buf, "1001 agent !CALL_REJECTED");
    CHECK(sg_parse_app_args(buf, &a, err, sizeof err) == 0 && a.on_refusal.hangup &&
              str_is(a.on_refusal.cause, "CALL_REJECTED"),
          "!CAUSE hangs up with that cause");

    snprintf(buf, sizeof buf, "1001 agent ! ");
    CHECK(sg_parse_app_args(buf, &a, err, sizeof err) == -1 && strstr(err, "hangup cause") != NULL,
          "a bare '!' is refused: %s", err);
    snprintf(buf, sizeof buf, "1001 agent !USER_BUSY XML default");
    CHECK(sg_parse_app_args(buf, &a, err, sizeof err) == -1 && strstr(err, "takes no dialplan") != NULL,
          "a hangup with a dialplan is refused: %s", err);
    snprintf(buf, sizeof buf, "1001");
    CHECK(sg_parse_app_args(buf, &a, err, sizeof err) == -1 && strstr(err, "usage: seatgate_acquire") != NULL,
          "a user alone is refused with the usage: %s", err);
    CHECK(sg_parse_app_args(NULL, &a, err, sizeof err) == -1, "no data is refused");
    snprintf(buf, sizeof buf, "a b c d e f");
    CHECK(sg_parse_app_args(buf, &a, err, sizeof err) == -1 && strstr(err, "too many") != NULL,
          "six words are refused: %s", err);
}

static void test_seat_and_names(void) {
    license_seat s = 0;
    CHECK(sg_parse_seat("42", &s) == 0 && s == 42, "42 is a seat");
    CHECK(sg_parse_seat("18446744073709551615", &s) == 0 && s == UINT64_MAX, "the largest handle parses");
    CHECK(sg_parse_seat("18446744073709551616", &s) == -1, "an overflow is refused");
    CHECK(sg_parse_seat("0", &s) == -1, "0 is never a seat");
    CHECK(sg_parse_seat("-1", &s) == -1 && sg_parse_seat("12x", &s) == -1 && sg_parse_seat("", &s) == -1 &&
              sg_parse_seat(" 1", &s) == -1 && sg_parse_seat(NULL, &s) == -1,
          "signs, junk, blanks and NULL are refused");

    CHECK(str_is(sg_status_name(LICENSE_OK), "OK") && str_is(sg_status_name(LICENSE_ERR_LIMIT_REACHED), "LIMIT_REACHED") &&
              str_is(sg_status_name(LICENSE_ERR_LICENSE_FILE), "LICENSE_FILE") &&
              str_is(sg_status_name(LICENSE_ERR_LICENSE_FILE - 1), "UNKNOWN") && str_is(sg_status_name(1), "UNKNOWN"),
          "status names");
    CHECK(str_is(sg_reason_name(LICENSE_DENIAL_FULL), "full") && str_is(sg_reason_name(LICENSE_DENIAL_NO_SEATS), "no_seats") &&
              str_is(sg_reason_name(LICENSE_DENIAL_EXPIRED), "expired") && str_is(sg_reason_name(99), "unknown"),
          "reason names");
    CHECK(str_is(sg_release_reason_name(LICENSE_RELEASE_NORMAL), "normal") &&
              str_is(sg_release_reason_name(LICENSE_RELEASE_EXPIRED), "expired") &&
              str_is(sg_release_reason_name(LICENSE_RELEASE_LICENSE_EXPIRED), "license_expired") &&
              str_is(sg_release_reason_name(99), "unknown"),
          "release reason names");
}

static void test_refusal_vars(void) {
    license_denial d = {.size = sizeof d, .used = 2, .limit = 2, .reason = LICENSE_DENIAL_FULL};
    snprintf(d.license_type, sizeof d.license_type, "callcenter");
    vars v = {0};
    sg_refusal_vars(LICENSE_ERR_LIMIT_REACHED, &d, "license type 'callcenter' is full (2/2)", vars_set, &v);
    CHECK(str_is(var(&v, "seatgate_result"), "LIMIT_REACHED") && str_is(var(&v, "seatgate_refused_type"), "callcenter") &&
              str_is(var(&v, "seatgate_refused_reason"), "full") && str_is(var(&v, "seatgate_refused_used"), "2") &&
              str_is(var(&v, "seatgate_refused_limit"), "2") && str_is(var(&v, "seatgate_refused_requires"), "") &&
              str_is(var(&v, "seatgate_refused_detail"), "license type 'callcenter' is full (2/2)"),
          "a full type's variables");

    vars w = {0};
    sg_refusal_vars(LICENSE_ERR_UNKNOWN_PROFILE, &d, "unknown profile 'x'", vars_set, &w);
    CHECK(str_is(var(&w, "seatgate_result"), "UNKNOWN_PROFILE") && var(&w, "seatgate_refused_type") == NULL &&
              str_is(var(&w, "seatgate_refused_detail"), "unknown profile 'x'"),
          "an error without a denial sets the result and the detail only");
}

static void test_api(void) {
    int32_t rc;
    const char *out = api("report", &rc);
    CHECK(rc == LICENSE_ERR_NOT_INITIALIZED && strncmp(out, "-ERR NOT_INITIALIZED: ", 22) == 0,
          "before init: %s", out);

    const char *path = tc_write_config("[licenses.user]\nlimit = 3\n"
                                       "[licenses.callcenter]\nlimit = 1\n"
                                       "[licenses.chat]\nlimit = 0\n"
                                       "[licenses.recording]\nlimit = 1\nrequires = [\"callcenter\"]\n"
                                       "[profiles.agent]\nconsumes = [\"user\", \"callcenter\"]\n"
                                       "[profiles.chat_team]\nconsumes = [\"chat\"]\n");
    CHECK_RC(license_init(path), LICENSE_OK);

    out = api("acquire 1001 agent 1001 call-1", &rc);
    license_seat seat = 0;
    CHECK(rc == LICENSE_OK && sscanf(out, "+OK %" SCNu64, &seat) == 1 && seat != 0, "acquire: %s", out);
    CHECK(tc_usage("callcenter") == 1, "the seat is held");

    out = api("acquire 1002 agent", &rc);
    CHECK(rc == LICENSE_ERR_LIMIT_REACHED &&
              strcmp(out, "-ERR LIMIT_REACHED type=callcenter reason=full used=1 limit=1: "
                          "license type 'callcenter' is full (1/1)\n") == 0,
          "a full type: %s", out);
    out = api("acquire 1003 user,chat_team", &rc);
    CHECK(rc == LICENSE_ERR_LIMIT_REACHED &&
              strncmp(out, "-ERR LIMIT_REACHED type=chat reason=no_seats used=0 limit=0: ", 61) == 0,
          "no chat seats: %s", out);
    out = api("acquire 1004 recording", &rc);
    CHECK(rc == LICENSE_ERR_REQUIREMENT_MISSING &&
              strncmp(out, "-ERR REQUIREMENT_MISSING type=recording reason=requirement_missing used=0 limit=1 requires=callcenter: ", 101) == 0,
          "a missing requirement: %s", out);
    CHECK(tc_usage("user") == 1, "refused acquires took nothing");
    out = api("acquire 1005 agnet", &rc);
    CHECK(rc == LICENSE_ERR_UNKNOWN_PROFILE && strncmp(out, "-ERR UNKNOWN_PROFILE: ", 22) == 0 &&
              strstr(out, "'agnet'") != NULL,
          "an unknown profile: %s", out);

    out = api("usage callcenter", &rc);
    CHECK(rc == LICENSE_OK && strcmp(out, "+OK callcenter 1/1\n") == 0, "usage: %s", out);
    out = api("usage nosuch", &rc);
    CHECK(rc == LICENSE_ERR_UNKNOWN_LICENSE_TYPE, "usage of an unknown type: %s", out);

    out = api("report", &rc);
    CHECK(rc == LICENSE_OK && strstr(out, "Online licenses") != NULL && strstr(out, "1001") != NULL &&
              strstr(out, "call-1") == NULL,
          "the text report lists the holder");
    out = api("report json", &rc);
    CHECK(rc == LICENSE_OK && out[0] == '{' && strstr(out, "\"user\": \"1001\"") != NULL, "the JSON report: %.200s", out);
    out = api("report xml", &rc);
    CHECK(rc == LICENSE_ERR_INVALID_ARGUMENT && strstr(out, "text or json") != NULL, "a bad format: %s", out);

    char cmd[128];
    snprintf(cmd, sizeof cmd, "touch %llu", (unsigned long long)seat);
    out = api(cmd, &rc);
    CHECK(rc == LICENSE_OK && strncmp(out, "+OK touched ", 12) == 0, "touch: %s", out);

    out = api("reload", &rc);
    CHECK(rc == LICENSE_OK && strncmp(out, "+OK reloaded", 12) == 0, "reload: %s", out);
    CHECK(tc_usage("callcenter") == 1, "a reload keeps the seat");
    const char *other = tc_write_config("[licenses.user]\nlimit = 3\n"
                                        "[licenses.callcenter]\nlimit = 2\n"
                                        "[profiles.agent]\nconsumes = [\"user\", \"callcenter\"]\n");
    snprintf(cmd, sizeof cmd, "reload %s", other);
    out = api(cmd, &rc);
    CHECK(rc == LICENSE_OK && strstr(out, other) != NULL, "reload with a path: %s", out);
    out = api("usage callcenter", &rc);
    CHECK(strcmp(out, "+OK callcenter 1/2\n") == 0, "the new limit is in force: %s", out);
    const char *broken = tc_write_config("[licenses.user]\nlimt = 3\n");
    snprintf(cmd, sizeof cmd, "reload %s", broken);
    out = api(cmd, &rc);
    CHECK(rc == LICENSE_ERR_CONFIG && strstr(out, "unknown field `limt`") != NULL, "a broken reload: %s", out);
    out = api("usage callcenter", &rc);
    CHECK(strcmp(out, "+OK callcenter 1/2\n") == 0, "a broken reload keeps the running config: %s", out);

    snprintf(cmd, sizeof cmd, "release %llu", (unsigned long long)seat);
    out = api(cmd, &rc);
    CHECK(rc == LICENSE_OK && strncmp(out, "+OK released ", 13) == 0, "release: %s", out);
    CHECK(tc_usage("callcenter") == 0, "the seat is free");
    out = api(cmd, &rc);
    CHECK(rc == LICENSE_ERR_UNKNOWN_SEAT && strncmp(out, "-ERR UNKNOWN_SEAT: ", 19) == 0, "a double release: %s", out);

    static const char *const bad[] = {
        "", "   ", "frobnicate", "acquire 1001", "release", "release abc", "release 0", "release 1 2",
        "report text extra", "usage", "acquire a b c d e f g",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        out = api(bad[i], &rc);
        CHECK(rc == LICENSE_ERR_INVALID_ARGUMENT && strncmp(out, "-ERR INVALID_ARGUMENT: ", 23) == 0,
              "'%s' is refused: %s", bad[i], out);
    }
    out = api(NULL, &rc);
    CHECK(rc == LICENSE_ERR_INVALID_ARGUMENT, "a NULL command is refused");
    char huge[8192];
    memset(huge, 'x', sizeof huge - 1);
    huge[sizeof huge - 1] = '\0';
    out = api(huge, &rc);
    CHECK(rc == LICENSE_ERR_INVALID_ARGUMENT && strstr(out, "too long") != NULL, "an over-long command is refused");

    license_shutdown();
}

int main(void) {
    test_split_and_app_args();
    test_seat_and_names();
    test_refusal_vars();
    test_api();
    return tc_summary("test_seatgate_fs");
}
