/*
 * The part of include/seatgate.h that PHP's FFI reads (FFI::cdef / FFI::load).
 *
 * PHP's FFI parser takes C declarations only: no preprocessor (#if, #include, the
 * header's macros), no fixed-type enums. So this file restates the declarations in
 * plain C, with the types spelled as in include/seatgate.h; the macros
 * (LICENSE_MAX_*, SEATGATE_VERSION) are constants of the Seatgate class instead.
 *
 * Keep it in sync: `make test-php` compares every function, struct field, enum value
 * and constant here with include/seatgate.h (see tests/abi_check.php), and fails on
 * any drift. The layout of each struct is compared as PHP parsed it against the C
 * compiler's layout of the real header.
 *
 * Format, so that abi_check.php can read it: one declaration per line; struct fields
 * as `TYPE NAME;` or `TYPE NAME[N];`.
 *
 * Left out on purpose: license_set_event_callback, its types (license_event,
 * license_event_callback), license_set_event_mask and license_event_mask_parse.
 * Events arrive on seatgate's own threads (the reaper), and PHP cannot run a
 * callback on a thread it did not start.
 */

typedef uint64_t license_seat;

enum license_status {
  LICENSE_OK = 0,
  LICENSE_ERR_LIMIT_REACHED = -1,
  LICENSE_ERR_UNKNOWN_PROFILE = -2,
  LICENSE_ERR_INVALID_ARGUMENT = -3,
  LICENSE_ERR_NOT_INITIALIZED = -4,
  LICENSE_ERR_ALREADY_INITIALIZED = -5,
  LICENSE_ERR_UNKNOWN_SEAT = -6,
  LICENSE_ERR_CONFIG = -7,
  LICENSE_ERR_BUFFER_TOO_SMALL = -8,
  LICENSE_ERR_INTERNAL = -9,
  LICENSE_ERR_UNKNOWN_LICENSE_TYPE = -10,
  LICENSE_ERR_REQUIREMENT_MISSING = -11,
  LICENSE_ERR_UNKNOWN_USER = -12,
  LICENSE_ERR_BACKEND = -13,
  LICENSE_ERR_TABLE_FULL = -14,
  LICENSE_ERR_EXPIRED = -15,
  LICENSE_ERR_UNKNOWN_TENANT = -16,
  LICENSE_ERR_EMERGENCY_UNAVAILABLE = -17,
  LICENSE_ERR_STATE = -18,
  LICENSE_ERR_LICENSE_FILE = -19,
};

enum license_report_format {
  LICENSE_REPORT_TEXT = 0,
  LICENSE_REPORT_JSON = 1,
  LICENSE_REPORT_PROMETHEUS = 2,
};

enum license_denial_reason {
  LICENSE_DENIAL_FULL = 0,
  LICENSE_DENIAL_NO_SEATS = 1,
  LICENSE_DENIAL_OVER_LIMIT = 2,
  LICENSE_DENIAL_REQUIREMENT_MISSING = 3,
  LICENSE_DENIAL_RESERVED = 4,
  LICENSE_DENIAL_CAPPED = 5,
  LICENSE_DENIAL_EXPIRED = 6,
};

enum license_release_reason {
  LICENSE_RELEASE_NORMAL = 0,
  LICENSE_RELEASE_EXPIRED = 1,
  LICENSE_RELEASE_ADMIN = 2,
  LICENSE_RELEASE_DEPENDENCY = 3,
  LICENSE_RELEASE_SHUTDOWN = 4,
  LICENSE_RELEASE_OWNER_GONE = 5,
  LICENSE_RELEASE_RECONCILED = 6,
  LICENSE_RELEASE_EMERGENCY_EXPIRED = 7,
  LICENSE_RELEASE_LICENSE_EXPIRED = 8,
};

enum license_event_kind {
  LICENSE_EVENT_ACQUIRED = 1,
  LICENSE_EVENT_RELEASED = 2,
  LICENSE_EVENT_DENIED = 3,
  LICENSE_EVENT_THRESHOLD_UP = 4,
  LICENSE_EVENT_THRESHOLD_DOWN = 5,
  LICENSE_EVENT_RELOADED = 6,
  LICENSE_EVENT_WARNING = 7,
  LICENSE_EVENT_EXPIRED = 8,
  LICENSE_EVENT_EMERGENCY_STARTED = 9,
  LICENSE_EVENT_EMERGENCY_ENDED = 10,
  LICENSE_EVENT_LIMIT_CHANGED = 11,
};

typedef struct license_request {
  size_t size;
  const char *user;
  const char *profiles;
  const char *extension;
  const char *session;
  const char *tenant;
} license_request;

typedef struct license_denial {
  size_t size;
  char license_type[64];
  uint32_t used;
  uint32_t limit;
  uint32_t reason;
  char requires[64];
  char profile[128];
} license_denial;

typedef struct license_type_stats {
  size_t size;
  uint32_t used;
  uint32_t limit;
  uint32_t peak;
  uint32_t peak_since_reset;
  uint64_t acquired;
  uint64_t denied;
} license_type_stats;

int32_t license_init(const char *config_path);
void license_shutdown(void);
int32_t license_reload(const char *config_path);
int32_t license_try_acquire(const char *user, const char *profiles, license_seat *seat_out);
int32_t license_try_acquire_ex(const struct license_request *req, license_seat *seat_out, struct license_denial *denial_out);
int32_t license_release(license_seat seat);
int32_t license_release_as(license_seat seat, uint32_t why);
int32_t license_release_user(const char *user, uint32_t why, uint32_t *released_out);
int32_t license_touch(license_seat seat);
int32_t license_touch_user(const char *user, uint32_t *renewed_out);
int32_t license_reap(uint32_t *reclaimed_out);
int32_t license_stats(const char *license_type, struct license_type_stats *out);
int32_t license_stats_reset(void);
int32_t license_trust_key(const char *public_key);
int32_t license_set_limit(const char *tenant, const char *license_type, int64_t limit);
int32_t license_usage_in(const char *tenant, const char *license_type, uint32_t *used_out, uint32_t *limit_out);
int32_t license_emergency_activate(int64_t *ends_unix_out);
int32_t license_report_tenant(const char *tenant, uint32_t format, size_t first_row, size_t max_rows, char *buf, size_t len, size_t *needed);
int32_t license_usage(const char *license_type, uint32_t *used_out, uint32_t *limit_out);
int32_t license_type_count(uint32_t *count_out);
int32_t license_type_name(uint32_t index, char *buf, size_t len, size_t *needed);
int32_t license_report(uint32_t format, char *buf, size_t len, size_t *needed);
int32_t license_report_page(uint32_t format, size_t first_row, size_t max_rows, char *buf, size_t len, size_t *needed);
int32_t license_lint_count(uint32_t *count_out);
int32_t license_lint(uint32_t index, char *buf, size_t len, size_t *needed);
const char *license_strerror(int32_t code);
int32_t license_last_error(char *buf, size_t len, size_t *needed);
const char *license_version(void);
