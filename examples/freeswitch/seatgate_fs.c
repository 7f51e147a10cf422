/*
 * mod_seatgate's logic that does not need FreeSWITCH (see seatgate_fs.h).
 */
#include "seatgate_fs.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int is_blank(char c) {
    return c == ' ' || c == '\t';
}

int sg_split(char *data, char **argv, int max) {
    int argc = 0;
    char *p = data;
    while (p != NULL && *p != '\0') {
        while (is_blank(*p))
            *p++ = '\0';
        if (*p == '\0')
            break;
        if (argc == max)
            return -1;
        argv[argc++] = p;
        while (*p != '\0' && !is_blank(*p))
            p++;
    }
    return argc;
}

int sg_parse_app_args(char *data, sg_app_args *out, char *err, size_t errlen) {
    char *argv[5] = {0};
    int argc = data == NULL ? 0 : sg_split(data, argv, 5);
    memset(out, 0, sizeof *out);
    if (argc < 0) {
        snprintf(err, errlen, "too many arguments; usage: seatgate_acquire %s", SG_APP_SYNTAX);
        return -1;
    }
    if (argc < 2) {
        snprintf(err, errlen, "needs a user and profiles; usage: seatgate_acquire %s", SG_APP_SYNTAX);
        return -1;
    }
    out->user = argv[0];
    out->profiles = argv[1];
    const char *action = argc > 2 ? argv[2] : SG_DEFAULT_OVER_LIMIT_EXTEN;
    if (action[0] == '!') {
        if (action[1] == '\0') {
            snprintf(err, errlen, "'!' needs a hangup cause after it, e.g. !CALL_REJECTED");
            return -1;
        }
        if (argc > 3) {
            snprintf(err, errlen, "a hangup (%s) takes no dialplan or context", action);
            return -1;
        }
        out->on_refusal.hangup = 1;
        out->on_refusal.cause = action + 1;
    } else {
        out->on_refusal.extension = action;
        out->on_refusal.dialplan = argc > 3 ? argv[3] : NULL;
        out->on_refusal.context = argc > 4 ? argv[4] : NULL;
    }
    return 0;
}

int sg_parse_seat(const char *text, license_seat *out) {
    if (text == NULL || *text < '0' || *text > '9')
        return -1;
    for (const char *p = text; *p != '\0'; p++)
        if (*p < '0' || *p > '9')
            return -1;
    errno = 0;
    char *end = NULL;
    unsigned long long value = strtoull(text, &end, 10);
    if (errno != 0 || *end != '\0' || value == 0)
        return -1;
    *out = (license_seat)value;
    return 0;
}

static const char *const STATUS_NAMES[] = {
    "OK", "LIMIT_REACHED", "UNKNOWN_PROFILE", "INVALID_ARGUMENT", "NOT_INITIALIZED",
    "ALREADY_INITIALIZED", "UNKNOWN_SEAT", "CONFIG", "BUFFER_TOO_SMALL", "INTERNAL",
    "UNKNOWN_LICENSE_TYPE", "REQUIREMENT_MISSING", "UNKNOWN_USER", "BACKEND", "TABLE_FULL",
    "EXPIRED", "UNKNOWN_TENANT", "EMERGENCY_UNAVAILABLE", "STATE", "LICENSE_FILE",
};

/* A new status code in the header must get its name here (test_seatgate_fs checks
 * the last one). */
_Static_assert(sizeof STATUS_NAMES / sizeof STATUS_NAMES[0] == -LICENSE_ERR_LICENSE_FILE + 1,
               "STATUS_NAMES must name every license_status");

const char *sg_status_name(int32_t rc) {
    if (rc > 0 || rc < LICENSE_ERR_LICENSE_FILE)
        return "UNKNOWN";
    return STATUS_NAMES[-rc];
}

static const char *const REASON_NAMES[] = {
    "full", "no_seats", "over_limit", "requirement_missing", "reserved", "capped", "expired",
};
_Static_assert(sizeof REASON_NAMES / sizeof REASON_NAMES[0] == LICENSE_DENIAL_EXPIRED + 1,
               "REASON_NAMES must name every license_denial_reason");

const char *sg_reason_name(uint32_t reason) {
    return reason < sizeof REASON_NAMES / sizeof REASON_NAMES[0] ? REASON_NAMES[reason] : "unknown";
}

static const char *const RELEASE_NAMES[] = {
    "normal", "expired", "admin", "dependency", "shutdown", "owner_gone", "reconciled",
    "emergency_expired", "license_expired",
};
_Static_assert(sizeof RELEASE_NAMES / sizeof RELEASE_NAMES[0] == LICENSE_RELEASE_LICENSE_EXPIRED + 1,
               "RELEASE_NAMES must name every license_release_reason");

const char *sg_release_reason_name(uint32_t reason) {
    return reason < sizeof RELEASE_NAMES / sizeof RELEASE_NAMES[0] ? RELEASE_NAMES[reason] : "unknown";
}

static int has_denial(int32_t rc, const license_denial *denial) {
    return denial != NULL && (rc == LICENSE_ERR_LIMIT_REACHED || rc == LICENSE_ERR_REQUIREMENT_MISSING);
}

void sg_refusal_vars(int32_t rc, const license_denial *denial, const char *detail,
                     sg_set_var_fn set, void *ctx) {
    char number[16];
    set(ctx, "seatgate_result", sg_status_name(rc));
    if (has_denial(rc, denial)) {
        set(ctx, "seatgate_refused_type", denial->license_type);
        set(ctx, "seatgate_refused_reason", sg_reason_name(denial->reason));
        snprintf(number, sizeof number, "%u", (unsigned)denial->used);
        set(ctx, "seatgate_refused_used", number);
        snprintf(number, sizeof number, "%u", (unsigned)denial->limit);
        set(ctx, "seatgate_refused_limit", number);
        set(ctx, "seatgate_refused_requires", denial->requires);
        set(ctx, "seatgate_refused_profile", denial->profile);
    }
    set(ctx, "seatgate_refused_detail", detail != NULL ? detail : "");
}

/* ---- the API command ---- */

static void emitf(sg_emit_fn emit, void *ctx, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void emitf(sg_emit_fn emit, void *ctx, const char *fmt, ...) {
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    emit(ctx, line);
}

/* "-ERR STATUS: sentence" for a failed call. */
static int32_t emit_error(int32_t rc, sg_emit_fn emit, void *ctx) {
    char why[512];
    why[0] = '\0';
    license_last_error(why, sizeof why, NULL);
    emitf(emit, ctx, "-ERR %s: %s\n", sg_status_name(rc), why[0] != '\0' ? why : license_strerror(rc));
    return rc;
}

static int32_t usage_error(const char *what, sg_emit_fn emit, void *ctx) {
    emitf(emit, ctx, "-ERR INVALID_ARGUMENT: %s; usage: seatgate %s\n", what, SG_API_SYNTAX);
    return LICENSE_ERR_INVALID_ARGUMENT;
}

static int32_t api_report(int argc, char **argv, sg_emit_fn emit, void *ctx) {
    uint32_t format = LICENSE_REPORT_TEXT;
    if (argc > 2)
        return usage_error("report takes at most a format", emit, ctx);
    if (argc == 2) {
        if (strcmp(argv[1], "json") == 0)
            format = LICENSE_REPORT_JSON;
        else if (strcmp(argv[1], "text") != 0)
            return usage_error("the report format is text or json", emit, ctx);
    }
    size_t needed = 0;
    int32_t rc = license_report(format, NULL, 0, &needed);
    /* The report can grow between the size query and the copy: retry a few times. */
    for (int attempt = 0; rc == LICENSE_OK && attempt < 4; attempt++) {
        size_t len = needed + 4096;
        char *buf = malloc(len);
        if (buf == NULL) {
            emitf(emit, ctx, "-ERR INTERNAL: out of memory for a %zu-byte report\n", len);
            return LICENSE_ERR_INTERNAL;
        }
        rc = license_report(format, buf, len, &needed);
        if (rc == LICENSE_OK) {
            emit(ctx, buf);
            if (format == LICENSE_REPORT_JSON)
                emit(ctx, "\n");
        }
        free(buf);
        if (rc != LICENSE_ERR_BUFFER_TOO_SMALL)
            break;
        rc = LICENSE_OK;
    }
    return rc == LICENSE_OK ? rc : emit_error(rc, emit, ctx);
}

static int32_t api_acquire(int argc, char **argv, sg_emit_fn emit, void *ctx) {
    if (argc < 3)
        return usage_error("acquire needs a user and profiles", emit, ctx);
    license_request req = {
        .size = sizeof req,
        .user = argv[1],
        .profiles = argv[2],
        .extension = argc > 3 ? argv[3] : NULL,
        .session = argc > 4 ? argv[4] : NULL,
        .tenant = argc > 5 ? argv[5] : NULL,
    };
    license_denial denial = {.size = sizeof denial};
    license_seat seat = 0;
    int32_t rc = license_try_acquire_ex(&req, &seat, &denial);
    if (rc == LICENSE_OK) {
        emitf(emit, ctx, "+OK %llu\n", (unsigned long long)seat);
        return rc;
    }
    if (has_denial(rc, &denial)) {
        char why[512];
        why[0] = '\0';
        license_last_error(why, sizeof why, NULL);
        emitf(emit, ctx, "-ERR %s type=%s reason=%s used=%u limit=%u%s%s%s%s: %s\n", sg_status_name(rc),
              denial.license_type, sg_reason_name(denial.reason), (unsigned)denial.used,
              (unsigned)denial.limit, denial.requires[0] ? " requires=" : "", denial.requires,
              denial.profile[0] ? " profile=" : "", denial.profile, why);
        return rc;
    }
    return emit_error(rc, emit, ctx);
}

static int32_t api_seat_call(int argc, char **argv, int32_t (*call)(license_seat), const char *done,
                             sg_emit_fn emit, void *ctx) {
    license_seat seat;
    if (argc != 2)
        return usage_error("give one seat handle", emit, ctx);
    if (sg_parse_seat(argv[1], &seat) != 0) {
        emitf(emit, ctx, "-ERR INVALID_ARGUMENT: '%s' is not a seat handle (a number from acquire)\n", argv[1]);
        return LICENSE_ERR_INVALID_ARGUMENT;
    }
    int32_t rc = call(seat);
    if (rc != LICENSE_OK)
        return emit_error(rc, emit, ctx);
    emitf(emit, ctx, "+OK %s %llu\n", done, (unsigned long long)seat);
    return rc;
}

static int32_t api_usage(int argc, char **argv, sg_emit_fn emit, void *ctx) {
    if (argc != 2)
        return usage_error("usage needs one license type", emit, ctx);
    uint32_t used = 0, limit = 0;
    int32_t rc = license_usage(argv[1], &used, &limit);
    if (rc != LICENSE_OK)
        return emit_error(rc, emit, ctx);
    emitf(emit, ctx, "+OK %s %u/%u\n", argv[1], (unsigned)used, (unsigned)limit);
    return rc;
}

static int32_t api_reload(int argc, char **argv, const char *reload_path, sg_emit_fn emit, void *ctx) {
    if (argc > 2)
        return usage_error("reload takes at most a config path", emit, ctx);
    const char *path = argc == 2 ? argv[1] : reload_path;
    int32_t rc = license_reload(path);
    if (rc != LICENSE_OK)
        return emit_error(rc, emit, ctx);
    emitf(emit, ctx, "+OK reloaded %s\n", path != NULL ? path : "(the config file of license_init)");
    return rc;
}

int32_t sg_api(const char *cmd, const char *reload_path, sg_emit_fn emit, void *ctx) {
    char copy[LICENSE_MAX_PATH_LEN + LICENSE_MAX_PROFILES_LEN + 3 * LICENSE_MAX_LABEL_LEN + 64];
    char *argv[6] = {0};
    if (cmd == NULL || strlen(cmd) >= sizeof copy)
        return usage_error(cmd == NULL ? "no command" : "the command is too long", emit, ctx);
    memcpy(copy, cmd, strlen(cmd) + 1);
    int argc = sg_split(copy, argv, 6);
    if (argc < 0)
        return usage_error("too many arguments", emit, ctx);
    if (argc == 0)
        return usage_error("no command", emit, ctx);
    if (strcmp(argv[0], "report") == 0)
        return api_report(argc, argv, emit, ctx);
    if (strcmp(argv[0], "acquire") == 0)
        return api_acquire(argc, argv, emit, ctx);
    if (strcmp(argv[0], "release") == 0)
        return api_seat_call(argc, argv, license_release, "released", emit, ctx);
    if (strcmp(argv[0], "touch") == 0)
        return api_seat_call(argc, argv, license_touch, "touched", emit, ctx);
    if (strcmp(argv[0], "usage") == 0)
        return api_usage(argc, argv, emit, ctx);
    if (strcmp(argv[0], "reload") == 0)
        return api_reload(argc, argv, reload_path, emit, ctx);
    char what[128];
    snprintf(what, sizeof what, "unknown command '%.64s'", argv[0]);
    return usage_error(what, emit, ctx);
}
