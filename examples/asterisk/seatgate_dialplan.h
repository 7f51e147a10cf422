/*
 * seatgate_dialplan: the part of res_seatgate that needs no Asterisk headers, so
 * that `make test-asterisk` can test it on a machine without Asterisk.
 *
 *   - the text form of a seat id (what SEATGATE_ACQUIRE returns and
 *     SEATGATE_RELEASE takes), and its strict parser;
 *   - the options argument of SEATGATE_ACQUIRE (`k`, `e(EXT)`, `s(LABEL)`,
 *     `t(TENANT)`);
 *   - acquire and release as dialplan results: a status word, the refused license
 *     type, the denial reason as a word, and one sentence for the log;
 *   - the text report, in a buffer that grows to fit.
 *
 * Nothing here keeps state or calls into Asterisk; every function is safe from any
 * thread (the library's own functions are).
 */
#ifndef SEATGATE_DIALPLAN_H
#define SEATGATE_DIALPLAN_H

#include <stdbool.h>
#include <stddef.h>

#include "seatgate.h"

/*
 * Seat id text form: "sg1_" TTTT "_" HHHHHHHHHHHH, lowercase hex, 21 characters.
 * TTTT is the tenant (the handle's high 16 bits, 0000 for the default tenant) and
 * HHHHHHHHHHHH the handle in its pool (the low 48 bits, never 0). Only
 * [a-z0-9_] appear, so the id is one token everywhere a dialplan string goes:
 * channel variables, $[...] expressions, AstDB values, CDR fields, SIP headers.
 * "1" is the format's version. The parser accepts exactly this form and nothing
 * else (no uppercase, no spaces, no other length).
 */
#define SG_SEAT_TEXT_LEN 21
#define SG_SEAT_TEXT_SIZE (SG_SEAT_TEXT_LEN + 1)
#define SG_SEAT_PREFIX "sg1_"

/* Writes the text form of `seat` (never 0) into `out`, NUL-terminated. Returns
 * false, writing an empty string, for seat 0, which no acquire ever returns. */
bool sg_seat_format(license_seat seat, char out[SG_SEAT_TEXT_SIZE]);

/* Parses the text form. Returns true and writes `*seat`; or false, leaving it
 * alone, with the reason in `why` (one sentence naming the bad input). */
bool sg_seat_parse(const char *text, license_seat *seat, char *why, size_t why_len);

/* Options of SEATGATE_ACQUIRE's third argument. Strings point into the caller's
 * copy of the options (sg_options_parse writes NULs into it); NULL when absent. */
struct sg_options {
    bool keep;               /* k: the seat outlives the channel (no release at hangup) */
    const char *extension;   /* e(EXT): the extension shown in the report */
    const char *session;     /* s(LABEL): the session label (default: the channel's name) */
    const char *tenant;      /* t(NAME): the tenant whose seat pool serves the login */
};

/* Parses an options string in place, like Dial's: single letters, those that take
 * a value followed by it in parentheses (`ke(2001)t(globex)`). NULL or "" is no
 * option. Returns false with the reason in `why` for an unknown letter, a letter
 * given twice, a missing or empty value, or unbalanced parentheses. */
bool sg_options_parse(char *options, struct sg_options *out, char *why, size_t why_len);

/* The outcome of an acquire or a release, as the dialplan sees it. */
struct sg_result {
    int32_t code;            /* the library's status, or LICENSE_ERR_INVALID_ARGUMENT for
                                input the module refused before calling it */
    const char *status;      /* SEATGATE_STATUS: a word from sg_status_word */
    char seat[SG_SEAT_TEXT_SIZE];  /* the seat id on an acquire's OK; "" otherwise */
    license_seat seat_value; /* the same, as the number */
    char refused_type[64];   /* SEATGATE_REFUSED_TYPE: the type that said no; "" otherwise */
    const char *denial;      /* SEATGATE_DENIAL: FULL, NO_SEATS, ...; "" unless REFUSED */
    char reason[512];        /* SEATGATE_REASON: one sentence; "" on OK */
};

/*
 * SEATGATE_STATUS words:
 *   OK               the seat is held (acquire) or given back (release)
 *   REFUSED          a license type said no: full, no seats, over the limit, reserved
 *                    for or capped by a profile, a requirement missing, or expired
 *                    (SEATGATE_DENIAL says which, SEATGATE_REFUSED_TYPE names the type)
 *   UNKNOWN_PROFILE  a profile name is neither a profile nor a license type
 *   UNKNOWN_TENANT   t(NAME) names no tenant of the configuration
 *   UNKNOWN_SEAT     release: the seat is not held (released already, its lease ran
 *                    out, an admin released it, or the module was reloaded from scratch)
 *   UNKNOWN_USER     the CLI's `seatgate release user`: the user holds no seat
 *   INVALID          malformed input: a missing user, a bad option, a malformed seat id
 *   UNAVAILABLE      seatgate could not answer: not initialized (its config did not
 *                    load), backend unreachable, table full, internal error. The
 *                    dialplan decides whether that lets the login in.
 */
const char *sg_status_word(int32_t code);

/* SEATGATE_DENIAL words for license_denial_reason values: FULL, NO_SEATS,
 * OVER_LIMIT, REQUIREMENT_MISSING, RESERVED, CAPPED, EXPIRED ("UNKNOWN" otherwise). */
const char *sg_denial_word(uint32_t reason);

/* Words for events (the AMI SeatgateEvent's Kind and ReleaseReason headers):
 * ACQUIRED, RELEASED, DENIED, ... and NORMAL, EXPIRED, ADMIN, ...; "UNKNOWN" for a
 * value this header does not know. */
const char *sg_event_kind_word(uint32_t kind);
const char *sg_release_reason_word(uint32_t reason);

/* Turns an Asterisk-style list `operator&chat_team` into the library's
 * `operator,chat_team`, in place (a dialplan argument cannot hold a bare comma).
 * License and profile names never contain '&'. */
void sg_profiles_from_dialplan(char *profiles);

/* Clears `*out` and makes it a failure: `code`, its status word, and the reason
 * (printf-style). For input the module refuses itself, and for its own failures. */
void sg_result_error(struct sg_result *out, int32_t code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Acquires one seat bundle for `user` with `profiles` (as license_try_acquire_ex),
 * labelled with the options' extension, session (or `default_session` when the
 * options give none) and tenant. Fills every field of `*out`. */
void sg_acquire(const char *user, const char *profiles, const struct sg_options *options,
                const char *default_session, struct sg_result *out);

/* Releases the seat whose text form is `seat_text`, recording `why`
 * (LICENSE_RELEASE_NORMAL or LICENSE_RELEASE_ADMIN). A malformed id is INVALID and
 * releases nothing. Fills every field of `*out` (seat: the id given, when valid);
 * `seat_text` may point into `*out`. */
void sg_release(const char *seat_text, uint32_t why, struct sg_result *out);

/* The whole report in `format` (LICENSE_REPORT_TEXT or _JSON), in a malloc'd
 * string the caller frees. NULL on failure, with the status in `*code` and the
 * reason in `why`. */
char *sg_report(uint32_t format, int32_t *code, char *why, size_t why_len);

#endif /* SEATGATE_DIALPLAN_H */
