/*
 * Shared helpers for the seatgate C tests. Header-only: every helper is
 * `static inline` so that a test that does not use one gets no warning.
 *
 *   CHECK(cond, fmt, ...)     count a pass, or print file:line and the message
 *   CHECK_RC(expr, want)      CHECK that a status code is `want`, naming both codes
 *   tc_write_config(text)     write TOML to a fresh mkstemp file under /tmp; the
 *                             file is removed at exit; returns its path
 *   tc_write_configf(fmt, ...) the same, from a printf format
 *   tc_acquire_ex(u, p, &s, &d) license_try_acquire_ex with a sized request and denial
 *   tc_last_error()           this thread's license_last_error, in a thread-local buffer
 *   tc_usage(type)            seats used of a type (UINT32_MAX if license_usage fails)
 *   tc_quick()                true when SEATGATE_TEST_QUICK is set (valgrind runs)
 *   tc_summary()              print "<program>: N passed, M failed", return exit code
 */
#ifndef SEATGATE_C_TESTS_COMMON_H
#define SEATGATE_C_TESTS_COMMON_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* mkstemp, strdup, program_invocation_short_name, nanosleep */
#endif

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "seatgate.h"

/* ---- pass/fail accounting (atomic: the stress test checks from many threads) ---- */

static atomic_long tc_passed;
static atomic_long tc_failed;

/* Print at most this many failure lines, so a broken loop cannot flood the log. */
#define TC_MAX_FAILURE_LINES 200

static inline void tc_fail_at(const char *file, int line, const char *cond, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static inline void tc_fail_at(const char *file, int line, const char *cond, const char *fmt, ...) {
    long n = atomic_fetch_add(&tc_failed, 1) + 1;
    if (n > TC_MAX_FAILURE_LINES) {
        if (n == TC_MAX_FAILURE_LINES + 1)
            fprintf(stderr, "(further failure lines suppressed)\n");
        return;
    }
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    fprintf(stderr, "%s:%d: FAILED: %s: %s\n", file, line, cond, msg);
    fflush(stderr);
}

/* CHECK(cond, fmt, ...): the format and its arguments describe the failure. */
#define CHECK(cond, ...)                                                       \
    do {                                                                       \
        if (cond)                                                              \
            atomic_fetch_add(&tc_passed, 1);                                   \
        else                                                                   \
            tc_fail_at(__FILE__, __LINE__, #cond, __VA_ARGS__);                \
    } while (0)

/* Starts a thread or ends the test: a stress test without its threads proves nothing. */
static inline void tc_spawn(pthread_t *thread, void *(*fn)(void *), void *arg) {
    int rc = pthread_create(thread, NULL, fn, arg);
    CHECK(rc == 0, "pthread_create: %s", strerror(rc));
    if (rc != 0)
        exit(2);
}

static inline const char *tc_code_name(int32_t code) {
    switch (code) {
    case LICENSE_OK: return "LICENSE_OK";
    case LICENSE_ERR_LIMIT_REACHED: return "LICENSE_ERR_LIMIT_REACHED";
    case LICENSE_ERR_UNKNOWN_PROFILE: return "LICENSE_ERR_UNKNOWN_PROFILE";
    case LICENSE_ERR_INVALID_ARGUMENT: return "LICENSE_ERR_INVALID_ARGUMENT";
    case LICENSE_ERR_NOT_INITIALIZED: return "LICENSE_ERR_NOT_INITIALIZED";
    case LICENSE_ERR_ALREADY_INITIALIZED: return "LICENSE_ERR_ALREADY_INITIALIZED";
    case LICENSE_ERR_UNKNOWN_SEAT: return "LICENSE_ERR_UNKNOWN_SEAT";
    case LICENSE_ERR_CONFIG: return "LICENSE_ERR_CONFIG";
    case LICENSE_ERR_BUFFER_TOO_SMALL: return "LICENSE_ERR_BUFFER_TOO_SMALL";
    case LICENSE_ERR_INTERNAL: return "LICENSE_ERR_INTERNAL";
    case LICENSE_ERR_UNKNOWN_LICENSE_TYPE: return "LICENSE_ERR_UNKNOWN_LICENSE_TYPE";
    case LICENSE_ERR_REQUIREMENT_MISSING: return "LICENSE_ERR_REQUIREMENT_MISSING";
    case LICENSE_ERR_UNKNOWN_USER: return "LICENSE_ERR_UNKNOWN_USER";
    case LICENSE_ERR_BACKEND: return "LICENSE_ERR_BACKEND";
    case LICENSE_ERR_TABLE_FULL: return "LICENSE_ERR_TABLE_FULL";
    case LICENSE_ERR_EXPIRED: return "LICENSE_ERR_EXPIRED";
    case LICENSE_ERR_UNKNOWN_TENANT: return "LICENSE_ERR_UNKNOWN_TENANT";
    case LICENSE_ERR_EMERGENCY_UNAVAILABLE: return "LICENSE_ERR_EMERGENCY_UNAVAILABLE";
    case LICENSE_ERR_STATE: return "LICENSE_ERR_STATE";
    case LICENSE_ERR_LICENSE_FILE: return "LICENSE_ERR_LICENSE_FILE";
    default: return "(not a license_status)";
    }
}

static inline const char *tc_last_error(void);

/* CHECK_RC(expr, want): evaluates expr once; on a mismatch prints both code names and
 * this thread's license_last_error. */
#define CHECK_RC(expr, want)                                                   \
    do {                                                                       \
        int32_t tc_rc_ = (expr);                                               \
        int32_t tc_want_ = (want);                                             \
        CHECK(tc_rc_ == tc_want_, "%s returned %d (%s), expected %d (%s); last error: \"%s\"", \
              #expr, (int)tc_rc_, tc_code_name(tc_rc_), (int)tc_want_,         \
              tc_code_name(tc_want_), tc_last_error());                        \
    } while (0)

/* ---- environment ---- */

static inline int tc_quick(void) {
    const char *q = getenv("SEATGATE_TEST_QUICK");
    return q != NULL && q[0] != '\0' && strcmp(q, "0") != 0;
}

static inline double tc_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---- temporary config files ---- */

#define TC_MAX_TEMP_FILES 64
static char *tc_temp_files[TC_MAX_TEMP_FILES];
static int tc_temp_count;
static int tc_cleanup_registered;

static inline void tc_remove_temp_files(void) {
    for (int i = 0; i < tc_temp_count; i++) {
        unlink(tc_temp_files[i]);
        free(tc_temp_files[i]);
        tc_temp_files[i] = NULL;
    }
    tc_temp_count = 0;
}

/* Writes `text` to a fresh file /tmp/seatgate-test-XXXXXX (mkstemp) and returns its
 * path; the file is removed at exit. Aborts the program if the file cannot be made:
 * no test can run without it. Not thread-safe (call it from the main thread). */
static inline const char *tc_write_config(const char *text) {
    if (!tc_cleanup_registered) {
        atexit(tc_remove_temp_files);
        tc_cleanup_registered = 1;
    }
    if (tc_temp_count >= TC_MAX_TEMP_FILES) {
        fprintf(stderr, "tc_write_config: more than %d temp files\n", TC_MAX_TEMP_FILES);
        exit(2);
    }
    char tmpl[] = "/tmp/seatgate-test-XXXXXX";
    int fd = mkstemp(tmpl);
    if (fd < 0) {
        fprintf(stderr, "tc_write_config: mkstemp: %s\n", strerror(errno));
        exit(2);
    }
    size_t len = strlen(text), off = 0;
    while (off < len) {
        ssize_t n = write(fd, text + off, len - off);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            fprintf(stderr, "tc_write_config: write: %s\n", strerror(errno));
            close(fd);
            unlink(tmpl);
            exit(2);
        }
        off += (size_t)n;
    }
    close(fd);
    char *path = strdup(tmpl);
    if (path == NULL) {
        unlink(tmpl);
        fprintf(stderr, "tc_write_config: out of memory\n");
        exit(2);
    }
    tc_temp_files[tc_temp_count++] = path;
    return path;
}

/* tc_write_configf(fmt, ...): tc_write_config from a printf format. */
static inline const char *tc_write_configf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static inline const char *tc_write_configf(const char *fmt, ...) {
    char text[4096];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof text) {
        fprintf(stderr, "tc_write_configf: config too long\n");
        exit(2);
    }
    return tc_write_config(text);
}

/* tc_acquire_in(tenant, user, profiles, &seat, &denial): license_try_acquire_ex with a
 * zeroed, sized request and denial, in a tenant's pool (NULL: the default tenant). */
static inline int32_t tc_acquire_in(const char *tenant, const char *user, const char *profiles,
                                    license_seat *seat, license_denial *denial) {
    license_request req;
    memset(&req, 0, sizeof req);
    req.size = sizeof req;
    req.user = user;
    req.profiles = profiles;
    req.tenant = tenant;
    memset(denial, 0, sizeof *denial);
    denial->size = sizeof *denial;
    return license_try_acquire_ex(&req, seat, denial);
}

/* tc_acquire_ex(user, profiles, &seat, &denial): tc_acquire_in in the default tenant. */
static inline int32_t tc_acquire_ex(const char *user, const char *profiles, license_seat *seat,
                                    license_denial *denial) {
    return tc_acquire_in(NULL, user, profiles, seat, denial);
}

/* ---- library helpers ---- */

/* Copies this thread's license_last_error into `buf` (always NUL-terminated) and
 * returns the status of the call. */
static inline int32_t tc_last_error_into(char *buf, size_t len) {
    if (len == 0)
        return LICENSE_ERR_INVALID_ARGUMENT;
    buf[0] = '\0';
    size_t needed = 0;
    int32_t rc = license_last_error(buf, len, &needed);
    buf[len - 1] = '\0';
    return rc;
}

/* This thread's license_last_error in a thread-local buffer (valid until the next
 * call on this thread). */
static inline const char *tc_last_error(void) {
    static _Thread_local char buf[2048];
    if (tc_last_error_into(buf, sizeof buf) != LICENSE_OK && buf[0] == '\0')
        snprintf(buf, sizeof buf, "(license_last_error failed)");
    return buf;
}

/* Seats used of a type, or UINT32_MAX when license_usage fails. */
static inline uint32_t tc_usage(const char *type) {
    uint32_t used = 0, limit = 0;
    if (license_usage(type, &used, &limit) != LICENSE_OK)
        return UINT32_MAX;
    return used;
}

/* The whole report in a malloc'd buffer (caller frees), or NULL with *rc set. */
/* The report can grow between the size query and the call (other threads log in):
 * leave room, and on LICENSE_ERR_BUFFER_TOO_SMALL retry with more. */
static inline char *tc_report_page(uint32_t format, size_t first, size_t max_rows, int32_t *rc) {
    size_t extra = 1024;
    for (int attempt = 0; attempt < 16; attempt++, extra *= 2) {
        size_t needed = 0;
        int32_t r = license_report_page(format, first, max_rows, NULL, 0, &needed);
        if (r != LICENSE_OK) {
            if (rc) *rc = r;
            return NULL;
        }
        size_t len = needed + needed / 2 + extra;
        char *buf = malloc(len);
        if (buf == NULL) {
            if (rc) *rc = LICENSE_ERR_INTERNAL;
            return NULL;
        }
        r = license_report_page(format, first, max_rows, buf, len, &needed);
        if (r == LICENSE_OK) {
            if (rc) *rc = r;
            return buf;
        }
        free(buf);
        if (r != LICENSE_ERR_BUFFER_TOO_SMALL) {
            if (rc) *rc = r;
            return NULL;
        }
    }
    if (rc) *rc = LICENSE_ERR_BUFFER_TOO_SMALL;
    return NULL;
}

static inline char *tc_report(uint32_t format, int32_t *rc) {
    return tc_report_page(format, 0, 0, rc);
}

/* ---- text helpers ---- */

/* 1-based line number of the first occurrence of `needle` in `text`, 0 if absent. */
static inline int tc_line_of(const char *text, const char *needle) {
    const char *hit = strstr(text, needle);
    if (hit == NULL)
        return 0;
    int line = 1;
    for (const char *p = text; p < hit; p++)
        if (*p == '\n')
            line++;
    return line;
}

/* Copies into `out` the first line of `text` that starts with `prefix` (without its
 * newline); returns 1 if found, else 0 with `out` empty. */
static inline int tc_find_line(const char *text, const char *prefix, char *out, size_t outlen) {
    size_t plen = strlen(prefix);
    const char *p = text;
    out[0] = '\0';
    while (p != NULL && *p != '\0') {
        const char *eol = strchr(p, '\n');
        size_t n = eol ? (size_t)(eol - p) : strlen(p);
        if (n >= plen && strncmp(p, prefix, plen) == 0) {
            if (n >= outlen)
                n = outlen - 1;
            memcpy(out, p, n);
            out[n] = '\0';
            return 1;
        }
        p = eol ? eol + 1 : NULL;
    }
    return 0;
}

static inline int tc_starts_with(const char *s, const char *prefix) {
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

/* Prints exactly one line, "<program>: N passed, M failed", and returns the exit code:
 * 0 only when nothing failed and at least one check passed. */
static inline int tc_summary(const char *program) {
    long passed = atomic_load(&tc_passed);
    long failed = atomic_load(&tc_failed);
    fflush(stderr);
    printf("%s: %ld passed, %ld failed\n", program, passed, failed);
    fflush(stdout);
    return (failed == 0 && passed > 0) ? 0 : 1;
}

#endif /* SEATGATE_C_TESTS_COMMON_H */
