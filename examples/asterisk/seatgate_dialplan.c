/*
 * seatgate_dialplan: the Asterisk-free half of res_seatgate (see the header).
 * Written in the C that Asterisk's own strict flags accept (declarations first in
 * each block), since it is linked into the module.
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "seatgate_dialplan.h"

#define SG_TENANT_DIGITS 4
#define SG_HANDLE_DIGITS 12
#define SG_HANDLE_MASK ((UINT64_C(1) << 48) - 1)

static const char sg_hex[] = "0123456789abcdef";

bool sg_seat_format(license_seat seat, char out[SG_SEAT_TEXT_SIZE]) {
    uint64_t tenant = seat >> 48;
    uint64_t handle = seat & SG_HANDLE_MASK;
    char *p = out;
    int i;

    if (handle == 0) {
        out[0] = '\0';
        return false;
    }
    memcpy(p, SG_SEAT_PREFIX, strlen(SG_SEAT_PREFIX));
    p += strlen(SG_SEAT_PREFIX);
    for (i = SG_TENANT_DIGITS - 1; i >= 0; i--)
        *p++ = sg_hex[(tenant >> (4 * i)) & 0xf];
    *p++ = '_';
    for (i = SG_HANDLE_DIGITS - 1; i >= 0; i--)
        *p++ = sg_hex[(handle >> (4 * i)) & 0xf];
    *p = '\0';
    return true;
}

/* The value of a lowercase hex digit, or -1. */
static int sg_hex_value(char c) {
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

/* Copies `text` for an error message: at most 40 bytes, control bytes shown as '?'. */
static void sg_quote(const char *text, char *out, size_t out_len) {
    size_t i, n = 0;

    for (i = 0; text[i] != '\0' && n + 1 < out_len; i++) {
        if (i == 40) {
            if (n + 4 < out_len) {
                memcpy(out + n, "...", 3);
                n += 3;
            }
            break;
        }
        out[n++] = ((unsigned char)text[i] < 0x20 || text[i] == 0x7f) ? '?' : text[i];
    }
    out[n] = '\0';
}

bool sg_seat_parse(const char *text, license_seat *seat, char *why, size_t why_len) {
    static const char form[] =
        "expected sg1_ + 4 + _ + 12 lowercase hex digits, as SEATGATE_ACQUIRE returns it";
    char shown[48];
    uint64_t value = 0;
    size_t prefix = strlen(SG_SEAT_PREFIX), i;

    if (text == NULL || text[0] == '\0') {
        snprintf(why, why_len, "no seat id given (%s)", form);
        return false;
    }
    sg_quote(text, shown, sizeof shown);
    if (strlen(text) != SG_SEAT_TEXT_LEN || strncmp(text, SG_SEAT_PREFIX, prefix) != 0 ||
        text[prefix + SG_TENANT_DIGITS] != '_') {
        snprintf(why, why_len, "malformed seat id '%s' (%s)", shown, form);
        return false;
    }
    for (i = prefix; i < SG_SEAT_TEXT_LEN; i++) {
        int digit;
        if (i == prefix + SG_TENANT_DIGITS)
            continue; /* the '_' between tenant and handle */
        digit = sg_hex_value(text[i]);
        if (digit < 0) {
            snprintf(why, why_len, "malformed seat id '%s' (%s)", shown, form);
            return false;
        }
        value = (value << 4) | (uint64_t)digit;
    }
    if ((value & SG_HANDLE_MASK) == 0) {
        snprintf(why, why_len, "seat id '%s' has handle 0, which no acquire returns", shown);
        return false;
    }
    *seat = value;
    return true;
}

bool sg_options_parse(char *options, struct sg_options *out, char *why, size_t why_len) {
    char *p = options;

    memset(out, 0, sizeof *out);
    if (options == NULL)
        return true;
    while (*p != '\0') {
        char letter = *p++;
        const char **slot = NULL;
        char *value, *close;

        switch (letter) {
        case 'k':
            if (out->keep) {
                snprintf(why, why_len, "option 'k' given twice");
                return false;
            }
            out->keep = true;
            continue;
        case 'e': slot = &out->extension; break;
        case 's': slot = &out->session; break;
        case 't': slot = &out->tenant; break;
        default:
            if ((unsigned char)letter < 0x20 || letter == 0x7f)
                snprintf(why, why_len, "unknown option (byte 0x%02x); options are k, e(EXT), "
                         "s(LABEL), t(TENANT)", (unsigned)(unsigned char)letter);
            else
                snprintf(why, why_len, "unknown option '%c'; options are k, e(EXT), s(LABEL), "
                         "t(TENANT)", letter);
            return false;
        }
        if (*slot != NULL) {
            snprintf(why, why_len, "option '%c' given twice", letter);
            return false;
        }
        if (*p != '(') {
            snprintf(why, why_len, "option '%c' needs a value in parentheses, e.g. %c(...)",
                     letter, letter);
            return false;
        }
        value = p + 1;
        close = strchr(value, ')');
        if (close == NULL) {
            snprintf(why, why_len, "option '%c(' has no closing parenthesis", letter);
            return false;
        }
        if (close == value) {
            snprintf(why, why_len, "option '%c()' has an empty value", letter);
            return false;
        }
        if (memchr(value, '(', (size_t)(close - value)) != NULL) {
            snprintf(why, why_len, "option '%c' has a '(' inside its value", letter);
            return false;
        }
        *close = '\0';
        *slot = value;
        p = close + 1;
    }
    return true;
}

const char *sg_status_word(int32_t code) {
    switch (code) {
    case LICENSE_OK:
        return "OK";
    case LICENSE_ERR_LIMIT_REACHED:
    case LICENSE_ERR_REQUIREMENT_MISSING:
    case LICENSE_ERR_EXPIRED:
        return "REFUSED";
    case LICENSE_ERR_UNKNOWN_PROFILE:
        return "UNKNOWN_PROFILE";
    case LICENSE_ERR_UNKNOWN_TENANT:
        return "UNKNOWN_TENANT";
    case LICENSE_ERR_UNKNOWN_SEAT:
        return "UNKNOWN_SEAT";
    case LICENSE_ERR_UNKNOWN_USER:
        return "UNKNOWN_USER";
    case LICENSE_ERR_INVALID_ARGUMENT:
        return "INVALID";
    default:
        return "UNAVAILABLE";
    }
}

const char *sg_denial_word(uint32_t reason) {
    switch (reason) {
    case LICENSE_DENIAL_FULL: return "FULL";
    case LICENSE_DENIAL_NO_SEATS: return "NO_SEATS";
    case LICENSE_DENIAL_OVER_LIMIT: return "OVER_LIMIT";
    case LICENSE_DENIAL_REQUIREMENT_MISSING: return "REQUIREMENT_MISSING";
    case LICENSE_DENIAL_RESERVED: return "RESERVED";
    case LICENSE_DENIAL_CAPPED: return "CAPPED";
    case LICENSE_DENIAL_EXPIRED: return "EXPIRED";
    default: return "UNKNOWN";
    }
}

const char *sg_event_kind_word(uint32_t kind) {
    switch (kind) {
    case LICENSE_EVENT_ACQUIRED: return "ACQUIRED";
    case LICENSE_EVENT_RELEASED: return "RELEASED";
    case LICENSE_EVENT_DENIED: return "DENIED";
    case LICENSE_EVENT_THRESHOLD_UP: return "THRESHOLD_UP";
    case LICENSE_EVENT_THRESHOLD_DOWN: return "THRESHOLD_DOWN";
    case LICENSE_EVENT_RELOADED: return "RELOADED";
    case LICENSE_EVENT_WARNING: return "WARNING";
    case LICENSE_EVENT_EXPIRED: return "EXPIRED";
    case LICENSE_EVENT_EMERGENCY_STARTED: return "EMERGENCY_STARTED";
    case LICENSE_EVENT_EMERGENCY_ENDED: return "EMERGENCY_ENDED";
    case LICENSE_EVENT_LIMIT_CHANGED: return "LIMIT_CHANGED";
    default: return "UNKNOWN";
    }
}

const char *sg_release_reason_word(uint32_t reason) {
    switch (reason) {
    case LICENSE_RELEASE_NORMAL: return "NORMAL";
    case LICENSE_RELEASE_EXPIRED: return "EXPIRED";
    case LICENSE_RELEASE_ADMIN: return "ADMIN";
    case LICENSE_RELEASE_DEPENDENCY: return "DEPENDENCY";
    case LICENSE_RELEASE_SHUTDOWN: return "SHUTDOWN";
    case LICENSE_RELEASE_OWNER_GONE: return "OWNER_GONE";
    case LICENSE_RELEASE_RECONCILED: return "RECONCILED";
    case LICENSE_RELEASE_EMERGENCY_EXPIRED: return "EMERGENCY_EXPIRED";
    case LICENSE_RELEASE_LICENSE_EXPIRED: return "LICENSE_EXPIRED";
    default: return "UNKNOWN";
    }
}

void sg_profiles_from_dialplan(char *profiles) {
    if (profiles == NULL)
        return;
    for (; *profiles != '\0'; profiles++)
        if (*profiles == '&')
            *profiles = ',';
}

static void sg_result_init(struct sg_result *out) {
    memset(out, 0, sizeof *out);
    out->denial = "";
}

/* Sets code and status, and the library's sentence for this thread's last failure. */
static void sg_result_fail(struct sg_result *out, int32_t code) {
    out->code = code;
    out->status = sg_status_word(code);
    if (license_last_error(out->reason, sizeof out->reason, NULL) != LICENSE_OK ||
        out->reason[0] == '\0')
        snprintf(out->reason, sizeof out->reason, "%s", license_strerror(code));
}

void sg_result_error(struct sg_result *out, int32_t code, const char *fmt, ...) {
    va_list ap;

    sg_result_init(out);
    out->code = code;
    out->status = sg_status_word(code);
    va_start(ap, fmt);
    vsnprintf(out->reason, sizeof out->reason, fmt, ap);
    va_end(ap);
}

/* Refuses input before the library sees it. */
static void sg_result_invalid(struct sg_result *out, const char *why) {
    sg_result_error(out, LICENSE_ERR_INVALID_ARGUMENT, "%s", why);
}

void sg_acquire(const char *user, const char *profiles, const struct sg_options *options,
                const char *default_session, struct sg_result *out) {
    license_request req;
    license_denial denial;
    license_seat seat = 0;
    int32_t rc;

    sg_result_init(out);
    if (user == NULL || user[0] == '\0') {
        sg_result_invalid(out, "SEATGATE_ACQUIRE needs a user: SEATGATE_ACQUIRE(user,profiles[,options])");
        return;
    }
    if (profiles == NULL || profiles[0] == '\0') {
        sg_result_invalid(out, "SEATGATE_ACQUIRE needs profiles: SEATGATE_ACQUIRE(user,profiles[,options])");
        return;
    }

    memset(&req, 0, sizeof req);
    req.size = sizeof req;
    req.user = user;
    req.profiles = profiles;
    req.extension = options != NULL ? options->extension : NULL;
    req.session = options != NULL && options->session != NULL ? options->session : default_session;
    req.tenant = options != NULL ? options->tenant : NULL;
    if (req.session != NULL && req.session[0] == '\0')
        req.session = NULL;

    memset(&denial, 0, sizeof denial);
    denial.size = sizeof denial;
    rc = license_try_acquire_ex(&req, &seat, &denial);
    if (rc == LICENSE_OK) {
        if (!sg_seat_format(seat, out->seat)) {
            /* The library promises never 0; if that broke, give the seat back. */
            license_release(seat);
            out->code = LICENSE_ERR_INTERNAL;
            out->status = sg_status_word(out->code);
            snprintf(out->reason, sizeof out->reason, "seatgate returned seat 0");
            return;
        }
        out->code = LICENSE_OK;
        out->status = sg_status_word(rc);
        out->seat_value = seat;
        return;
    }
    sg_result_fail(out, rc);
    if (rc == LICENSE_ERR_LIMIT_REACHED || rc == LICENSE_ERR_REQUIREMENT_MISSING) {
        snprintf(out->refused_type, sizeof out->refused_type, "%s", denial.license_type);
        out->denial = sg_denial_word(denial.reason);
    } else if (rc == LICENSE_ERR_EXPIRED) {
        /* The denial is filled only for the two codes above; the sentence names the type. */
        out->denial = sg_denial_word(LICENSE_DENIAL_EXPIRED);
    }
}

void sg_release(const char *seat_text, uint32_t why, struct sg_result *out) {
    char reason[256];
    license_seat seat;
    int32_t rc;

    bool valid;

    /* Parsed before `out` is cleared: `seat_text` may be out->seat. */
    valid = sg_seat_parse(seat_text, &seat, reason, sizeof reason);
    sg_result_init(out);
    if (!valid) {
        sg_result_invalid(out, reason);
        return;
    }
    sg_seat_format(seat, out->seat);
    out->seat_value = seat;
    rc = license_release_as(seat, why);
    if (rc != LICENSE_OK) {
        sg_result_fail(out, rc);
        return;
    }
    out->code = LICENSE_OK;
    out->status = sg_status_word(rc);
}

char *sg_report(uint32_t format, int32_t *code, char *why, size_t why_len) {
    size_t needed = 0, len;
    char *buf;
    int32_t rc;
    int attempt;

    rc = license_report(format, NULL, 0, &needed);
    for (attempt = 0; rc == LICENSE_OK && attempt < 4; attempt++) {
        /* Room for holders that log in between the size query and the copy. */
        len = needed + needed / 4 + 256;
        buf = malloc(len);
        if (buf == NULL) {
            *code = LICENSE_ERR_INTERNAL;
            snprintf(why, why_len, "out of memory for a report of %zu bytes", len);
            return NULL;
        }
        rc = license_report(format, buf, len, &needed);
        if (rc == LICENSE_OK) {
            *code = LICENSE_OK;
            return buf;
        }
        free(buf);
        if (rc == LICENSE_ERR_BUFFER_TOO_SMALL)
            rc = LICENSE_OK; /* grew again: try once more with the new size */
    }
    *code = rc == LICENSE_OK ? LICENSE_ERR_BUFFER_TOO_SMALL : rc;
    if (license_last_error(why, why_len, NULL) != LICENSE_OK || why[0] == '\0' || rc == LICENSE_OK)
        snprintf(why, why_len, "%s", license_strerror(*code));
    return NULL;
}
