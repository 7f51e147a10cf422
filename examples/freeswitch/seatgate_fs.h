/*
 * The part of mod_seatgate that does not need FreeSWITCH: argument parsing, the
 * `seatgate` API command, and the channel variables of a refusal. mod_seatgate.c is
 * the FreeSWITCH glue around it; test_seatgate_fs.c tests it against libseatgate
 * without FreeSWITCH.
 */
#ifndef SEATGATE_FS_H
#define SEATGATE_FS_H

#include <stddef.h>
#include <stdint.h>

#include "seatgate.h"

/* The extension a refused call goes to when the dialplan names none (as the `limit`
 * app's "limit_exceeded"). */
#define SG_DEFAULT_OVER_LIMIT_EXTEN "seatgate_over_limit"

#define SG_API_SYNTAX                                                                 \
    "report [text|json] | acquire <user> <profiles> [<extension> [<session> [<tenant>]]] | " \
    "release <seat> | touch <seat> | usage <type> | reload [<config path>]"

#define SG_APP_SYNTAX "<user> <profiles> [<over-limit extension>|!<hangup cause> [<dialplan> [<context>]]]"

/* What the dialplan asked for on a refusal: a transfer, or a hangup with a cause. */
typedef struct sg_over_limit_action {
    int hangup;              /* 1: hang up with `cause`; 0: transfer to `extension` */
    const char *cause;       /* a FreeSWITCH cause name, e.g. "CALL_REJECTED" (hangup only) */
    const char *extension;   /* transfer target (transfer only) */
    const char *dialplan;    /* NULL: the channel's own */
    const char *context;     /* NULL: the channel's own */
} sg_over_limit_action;

/* The `seatgate_acquire` application's data, split. Strings point into the buffer
 * given to sg_parse_app_args. */
typedef struct sg_app_args {
    const char *user;
    const char *profiles;
    sg_over_limit_action on_refusal;
} sg_app_args;

/* Splits `data` (modified in place) on spaces and tabs into words. Returns their
 * number, or -1 when there are more than `max`. */
int sg_split(char *data, char **argv, int max);

/* Parses `<user> <profiles> [<exten>|!<cause> [<dialplan> [<context>]]]`. Returns 0,
 * or -1 with a sentence in `err` (too few or too many words, an empty cause). */
int sg_parse_app_args(char *data, sg_app_args *out, char *err, size_t errlen);

/* Parses a seat handle: decimal digits only, not 0, no overflow. Returns 0 or -1. */
int sg_parse_seat(const char *text, license_seat *out);

/* "OK", "LIMIT_REACHED", ... ("UNKNOWN" for a code this version does not know). */
const char *sg_status_name(int32_t rc);

/* "full", "no_seats", ... for a license_denial_reason ("unknown" otherwise). */
const char *sg_reason_name(uint32_t reason);

/* "normal", "expired", "admin", ... for a license_release_reason ("unknown" otherwise). */
const char *sg_release_reason_name(uint32_t reason);

/* Called once per channel variable to set. */
typedef void (*sg_set_var_fn)(void *ctx, const char *name, const char *value);

/*
 * The channel variables of a failed acquire: seatgate_result (the status name), and
 * for a refusal with a denial (LIMIT_REACHED, REQUIREMENT_MISSING)
 * seatgate_refused_type, _reason, _used, _limit, _requires, _profile; always
 * seatgate_refused_detail (the library's sentence, `detail`). `denial` may be NULL.
 */
void sg_refusal_vars(int32_t rc, const license_denial *denial, const char *detail,
                     sg_set_var_fn set, void *ctx);

/* Receives the API command's output, in pieces. */
typedef void (*sg_emit_fn)(void *ctx, const char *text);

/*
 * Runs one `seatgate` API command (SG_API_SYNTAX) against the library and writes
 * its answer: "+OK ..." or "-ERR <STATUS>: <sentence>" lines, or the report. A
 * refused acquire answers
 *   -ERR LIMIT_REACHED type=chat reason=no_seats used=0 limit=0: license type 'chat' ...
 * `reload_path` is the config path that `reload` without an argument uses (NULL: the
 * file of license_init). Returns the library's status of the command (LICENSE_OK,
 * or LICENSE_ERR_INVALID_ARGUMENT for a command it cannot parse).
 */
int32_t sg_api(const char *cmd, const char *reload_path, sg_emit_fn emit, void *ctx);

#endif /* SEATGATE_FS_H */
