"""seatgate for Python: a ctypes wrapper over libseatgate.so.

The C API (include/seatgate.h) mapped one to one, with Python's manners:

    import seatgate
    seatgate.init("/etc/seatgate/seats.toml")
    try:
        seat = seatgate.try_acquire("alice", "operator", extension="2001")
    except seatgate.LicenseDenied as refusal:
        print("login refused:", refusal)            # license type 'callcenter' is full (8/8)
        print(refusal.license_type, refusal.used, refusal.limit, refusal.reason_name)
    else:
        seat.touch()                                # the keep-alive renews the lease
        seat.release()                              # the logout
    print(seatgate.report())                        # or report("json") for a dict
    seatgate.shutdown()

Events (a type full, a threshold crossed, a seat taken back) come to a Python
callable, on the thread whose call caused them (the reaper's for expired leases):

    seatgate.set_event_mask("alerts, threshold")    # what a CRM acts on; logins stay fast
    seatgate.on_event(lambda e: log.warning("%s %s %s/%s: %s", e.kind, e.license_type,
                                            e.used, e.limit, e.detail))

Every failure raises `SeatgateError` (or its subclass `LicenseDenied` for a refusal)
carrying the status code, its name (`license_strerror`) and the library's sentence
(`license_last_error`). Nothing here keeps state of its own: handles are plain integers
inside `Seat`, so a process that forks or a host that stores handles elsewhere (a
Kamailio htable) can rebuild a `Seat` from the integer with `Seat(handle)`.

Which library is loaded: `$SEATGATE_LIB` if set, else `target/release/libseatgate.so`
of the repository this file sits in, else `libseatgate.so` from the system's library
path (after `make install`).
"""

import ctypes
import ctypes.util
import json
import os
import sys
import threading
import traceback

__all__ = [
    "SeatgateError", "LicenseDenied", "Seat",
    "init", "shutdown", "reload", "try_acquire", "release", "touch", "touch_user", "release_user",
    "reap", "usage", "license_types", "report", "last_error", "strerror", "version",
    "library_path",
    "OK", "ERR_LIMIT_REACHED", "ERR_UNKNOWN_SEAT", "ERR_REQUIREMENT_MISSING",
    "ERR_EXPIRED", "ERR_UNKNOWN_USER", "ERR_NOT_INITIALIZED",
    "REPORT_TEXT", "REPORT_JSON", "REPORT_PROMETHEUS", "RELEASE_NORMAL", "RELEASE_ADMIN", "DENIAL_REASONS",
    "Event", "on_event", "set_event_mask", "event_mask", "EVENT_KINDS", "RELEASE_REASONS", "EVENTS",
]

# enum license_status (the numbers are ABI: never changed, never reused)
OK = 0
ERR_LIMIT_REACHED = -1
ERR_UNKNOWN_PROFILE = -2
ERR_INVALID_ARGUMENT = -3
ERR_NOT_INITIALIZED = -4
ERR_ALREADY_INITIALIZED = -5
ERR_UNKNOWN_SEAT = -6
ERR_CONFIG = -7
ERR_BUFFER_TOO_SMALL = -8
ERR_INTERNAL = -9
ERR_UNKNOWN_LICENSE_TYPE = -10
ERR_REQUIREMENT_MISSING = -11
ERR_UNKNOWN_USER = -12
ERR_BACKEND = -13
ERR_TABLE_FULL = -14
ERR_EXPIRED = -15
ERR_UNKNOWN_TENANT = -16

# enum license_report_format
REPORT_TEXT = 0
REPORT_JSON = 1
REPORT_PROMETHEUS = 2

# enum license_release_reason: what a caller may pass to release_as / release_user
RELEASE_NORMAL = 0
RELEASE_ADMIN = 2

# enum license_denial_reason, by number
DENIAL_REASONS = {
    0: "full",
    1: "no_seats",
    2: "over_limit",
    3: "requirement_missing",
    4: "reserved",
    5: "capped",
    6: "expired",
}

# enum license_release_reason, by number (an event's reason for RELEASED)
RELEASE_REASONS = {
    0: "normal",
    1: "expired",
    2: "admin",
    3: "dependency",
    4: "shutdown",
    5: "owner_gone",
    6: "reconciled",
    7: "emergency_expired",
    8: "license_expired",
}

# enum license_event_kind, by number
EVENT_KINDS = {
    1: "acquired",
    2: "released",
    3: "denied",
    4: "threshold_up",
    5: "threshold_down",
    6: "reloaded",
    7: "warning",
    8: "expired",
    9: "emergency_started",
    10: "emergency_ended",
    11: "limit_changed",
}

# The LICENSE_EVENTS_* mask bits, by the header's name less the prefix.
EVENTS = {
    "ACQUIRED": 2,
    "RELEASED": 4,
    "DENIED": 8,
    "THRESHOLD_UP": 16,
    "THRESHOLD_DOWN": 32,
    "RELOADED": 64,
    "WARNING": 128,
    "EXPIRED": 256,
    "EMERGENCY_STARTED": 512,
    "EMERGENCY_ENDED": 1024,
    "LIMIT_CHANGED": 2048,
    "RELEASED_FORCED": 4096,
    "ALL": 8190,
    "ALERTS": 8136,
}

_LABEL_MAX = 255  # LICENSE_MAX_LABEL_LEN


class license_request(ctypes.Structure):
    """struct license_request (size-versioned: set `size` to sizeof)."""
    _fields_ = [
        ("size", ctypes.c_size_t),
        ("user", ctypes.c_char_p),
        ("profiles", ctypes.c_char_p),
        ("extension", ctypes.c_char_p),
        ("session", ctypes.c_char_p),
        ("tenant", ctypes.c_char_p),
    ]


class license_denial(ctypes.Structure):
    """struct license_denial: which type refused, its used/limit and why."""
    _fields_ = [
        ("size", ctypes.c_size_t),
        ("license_type", ctypes.c_char * 64),
        ("used", ctypes.c_uint32),
        ("limit", ctypes.c_uint32),
        ("reason", ctypes.c_uint32),
        ("requires", ctypes.c_char * 64),
        ("profile", ctypes.c_char * 128),
    ]


class license_type_stats(ctypes.Structure):
    """struct license_type_stats (not used by the functions below; mapped for callers)."""
    _fields_ = [
        ("size", ctypes.c_size_t),
        ("used", ctypes.c_uint32),
        ("limit", ctypes.c_uint32),
        ("peak", ctypes.c_uint32),
        ("peak_since_reset", ctypes.c_uint32),
        ("acquired", ctypes.c_uint64),
        ("denied", ctypes.c_uint64),
    ]


class license_event(ctypes.Structure):
    """struct license_event, as the callback receives it (valid during the call only)."""
    _fields_ = [
        ("size", ctypes.c_size_t),
        ("kind", ctypes.c_uint32),
        ("reason", ctypes.c_uint32),
        ("license_type", ctypes.c_char_p),
        ("user", ctypes.c_char_p),
        ("seat", ctypes.c_uint64),
        ("used", ctypes.c_uint32),
        ("limit", ctypes.c_uint32),
        ("threshold_percent", ctypes.c_uint32),
        ("time_unix_ms", ctypes.c_int64),
        ("detail", ctypes.c_char_p),
        ("requires", ctypes.c_char_p),
        ("tenant", ctypes.c_char_p),
    ]


# The structs as the test compares them with the C compiler's sizeof/offsetof.
STRUCTS = {
    "license_request": license_request,
    "license_denial": license_denial,
    "license_type_stats": license_type_stats,
    "license_event": license_event,
}

# license_event_callback
_EVENT_CALLBACK = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.POINTER(license_event))

_seat_t = ctypes.c_uint64
_size_p = ctypes.POINTER(ctypes.c_size_t)
_u32_p = ctypes.POINTER(ctypes.c_uint32)

# name: (restype, argtypes)
_SIGNATURES = {
    "license_init": (ctypes.c_int32, [ctypes.c_char_p]),
    "license_shutdown": (None, []),
    "license_reload": (ctypes.c_int32, [ctypes.c_char_p]),
    "license_try_acquire": (ctypes.c_int32, [ctypes.c_char_p, ctypes.c_char_p, ctypes.POINTER(_seat_t)]),
    "license_try_acquire_ex": (ctypes.c_int32, [ctypes.POINTER(license_request), ctypes.POINTER(_seat_t),
                                                ctypes.POINTER(license_denial)]),
    "license_release": (ctypes.c_int32, [_seat_t]),
    "license_release_as": (ctypes.c_int32, [_seat_t, ctypes.c_uint32]),
    "license_release_user": (ctypes.c_int32, [ctypes.c_char_p, ctypes.c_uint32, _u32_p]),
    "license_touch": (ctypes.c_int32, [_seat_t]),
    "license_touch_user": (ctypes.c_int32, [ctypes.c_char_p, _u32_p]),
    "license_reap": (ctypes.c_int32, [_u32_p]),
    "license_usage": (ctypes.c_int32, [ctypes.c_char_p, _u32_p, _u32_p]),
    "license_type_count": (ctypes.c_int32, [_u32_p]),
    "license_type_name": (ctypes.c_int32, [ctypes.c_uint32, ctypes.c_char_p, ctypes.c_size_t, _size_p]),
    "license_report": (ctypes.c_int32, [ctypes.c_uint32, ctypes.c_char_p, ctypes.c_size_t, _size_p]),
    "license_report_page": (ctypes.c_int32, [ctypes.c_uint32, ctypes.c_size_t, ctypes.c_size_t,
                                             ctypes.c_char_p, ctypes.c_size_t, _size_p]),
    "license_last_error": (ctypes.c_int32, [ctypes.c_char_p, ctypes.c_size_t, _size_p]),
    "license_set_event_callback": (ctypes.c_int32, [_EVENT_CALLBACK, ctypes.c_void_p]),
    "license_set_event_mask": (ctypes.c_int32, [ctypes.c_uint32]),
    "license_event_mask_parse": (ctypes.c_int32, [ctypes.c_char_p, _u32_p]),
    "license_strerror": (ctypes.c_char_p, [ctypes.c_int32]),
    "license_version": (ctypes.c_char_p, []),
}


def library_path():
    """The path of the libseatgate.so this module loads (see the module doc)."""
    env = os.environ.get("SEATGATE_LIB")
    if env:
        return env
    here = os.path.dirname(os.path.abspath(__file__))
    in_repo = os.path.join(here, "..", "..", "target", "release", "libseatgate.so")
    if os.path.exists(in_repo):
        return os.path.normpath(in_repo)
    return ctypes.util.find_library("seatgate") or "libseatgate.so"


_lib = None


def _c():
    """The loaded library, with every signature declared (loaded on first use)."""
    global _lib
    if _lib is None:
        lib = ctypes.CDLL(library_path())
        for name, (restype, argtypes) in _SIGNATURES.items():
            fn = getattr(lib, name)
            fn.restype = restype
            fn.argtypes = argtypes
        _lib = lib
    return _lib


def _bytes(value, what):
    """A str argument as UTF-8 bytes for C (None stays None)."""
    if value is None:
        return None
    if isinstance(value, bytes):
        return value
    if not isinstance(value, str):
        raise TypeError(f"{what} must be a str, not {type(value).__name__}")
    return value.encode("utf-8")


def _text(call):
    """Runs call(buf, len, &needed) with the header's buffer convention; returns str."""
    needed = ctypes.c_size_t(0)
    rc = call(None, 0, ctypes.byref(needed))
    if rc != OK:
        _raise(rc)
    size = max(needed.value, 1)
    for _ in range(8):  # the output can grow between the size query and the call
        size += size // 4 + 256
        buf = ctypes.create_string_buffer(size)
        rc = call(buf, size, ctypes.byref(needed))
        if rc == OK:
            return buf.value.decode("utf-8")
        if rc != ERR_BUFFER_TOO_SMALL:
            _raise(rc)
        size = needed.value
    _raise(ERR_BUFFER_TOO_SMALL)


class SeatgateError(Exception):
    """A failed call: `code` (a license_status), `name` (license_strerror) and
    `detail` (license_last_error: the library's sentence, e.g. the config's
    file:line:column)."""

    def __init__(self, code, detail=None):
        self.code = code
        self.name = strerror(code)
        if detail is None:
            try:
                detail = last_error()
            except Exception:  # never mask the first failure with a second one
                detail = ""
        self.detail = detail
        super().__init__(self.detail or self.name)


class LicenseDenied(SeatgateError):
    """A refused login (LIMIT_REACHED, REQUIREMENT_MISSING or EXPIRED), with the
    `license_denial` as attributes: `license_type`, `used`, `limit`, `reason` (the
    number), `reason_name` ("full", "no_seats", "reserved", ...), `requires` and
    `profile`. str() is the library's sentence: license type 'chat' is full (0/0)."""

    def __init__(self, code, denial):
        super().__init__(code)
        self.license_type = denial.license_type.decode("utf-8")
        self.used = denial.used
        self.limit = denial.limit
        self.reason = denial.reason
        self.reason_name = DENIAL_REASONS.get(denial.reason, f"reason {denial.reason}")
        self.requires = denial.requires.decode("utf-8")
        self.profile = denial.profile.decode("utf-8")


def _raise(code):
    raise SeatgateError(code)


def _check(rc):
    if rc != OK:
        _raise(rc)


class Seat:
    """A seat handle (a nonzero integer). `int(seat)` gives the handle to store it;
    `Seat(handle)` makes it usable again, in this process or another one of an `shm`
    installation. As a context manager it releases itself on leaving the block."""

    __slots__ = ("handle",)

    def __init__(self, handle):
        self.handle = int(handle)

    def release(self, admin=False):
        release(self.handle, admin=admin)

    def touch(self):
        touch(self.handle)

    def __int__(self):
        return self.handle

    def __eq__(self, other):
        return isinstance(other, Seat) and other.handle == self.handle

    def __hash__(self):
        return hash(self.handle)

    def __repr__(self):
        return f"Seat({self.handle:#x})"

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.release()
        return False


def init(config_path):
    """license_init: loads the TOML config and starts the table."""
    _check(_c().license_init(_bytes(os.fspath(config_path), "config_path")))


def shutdown():
    """license_shutdown: releases this process's seats and forgets the table. The
    event callback stays registered (as in C), and hears the SHUTDOWN releases."""
    _c().license_shutdown()
    with _callback_lock:
        # Replaced callbacks may have been running until now: they can go.
        del _retired[:]


def reload(config_path=None):
    """license_reload: swaps in the config again (None: the same file), keeping seats."""
    path = None if config_path is None else os.fspath(config_path)
    _check(_c().license_reload(_bytes(path, "config_path")))


def try_acquire(user, profiles, extension=None, session=None, tenant=None):
    """license_try_acquire_ex: takes every seat the profiles imply, all or nothing.
    Returns a Seat; raises LicenseDenied with the refusal, SeatgateError otherwise."""
    request = license_request(
        size=ctypes.sizeof(license_request),
        user=_bytes(user, "user"),
        profiles=_bytes(profiles, "profiles"),
        extension=_bytes(extension, "extension"),
        session=_bytes(session, "session"),
        tenant=_bytes(tenant, "tenant"),
    )
    denial = license_denial(size=ctypes.sizeof(license_denial), reason=0xFFFFFFFF)
    seat = _seat_t(0)
    rc = _c().license_try_acquire_ex(ctypes.byref(request), ctypes.byref(seat), ctypes.byref(denial))
    if rc == OK:
        return Seat(seat.value)
    if denial.reason != 0xFFFFFFFF:  # the library filled the denial
        raise LicenseDenied(rc, denial)
    _raise(rc)


def release(seat, admin=False):
    """license_release (or license_release_as(ADMIN)): gives a handle back."""
    handle = int(seat)
    lib = _c()
    _check(lib.license_release_as(handle, RELEASE_ADMIN) if admin else lib.license_release(handle))


def touch(seat):
    """license_touch: renews the lease of one handle (the host's keep-alive)."""
    _check(_c().license_touch(int(seat)))


def touch_user(user):
    """license_touch_user: renews every handle of `user`; returns how many."""
    renewed = ctypes.c_uint32(0)
    _check(_c().license_touch_user(_bytes(user, "user"), ctypes.byref(renewed)))
    return renewed.value


def release_user(user, admin=False):
    """license_release_user: "log out everywhere"; returns how many handles went."""
    released = ctypes.c_uint32(0)
    why = RELEASE_ADMIN if admin else RELEASE_NORMAL
    _check(_c().license_release_user(_bytes(user, "user"), why, ctypes.byref(released)))
    return released.value


def reap():
    """license_reap: reclaims expired leases now; returns how many seats."""
    reclaimed = ctypes.c_uint32(0)
    _check(_c().license_reap(ctypes.byref(reclaimed)))
    return reclaimed.value


def usage(license_type):
    """license_usage: (used, limit) of one license type right now."""
    used, limit = ctypes.c_uint32(0), ctypes.c_uint32(0)
    _check(_c().license_usage(_bytes(license_type, "license_type"), ctypes.byref(used), ctypes.byref(limit)))
    return used.value, limit.value


def license_types():
    """license_type_count / license_type_name: the configured types, in file order."""
    count = ctypes.c_uint32(0)
    _check(_c().license_type_count(ctypes.byref(count)))
    lib = _c()
    return [_text(lambda buf, n, needed, i=i: lib.license_type_name(i, buf, n, needed))
            for i in range(count.value)]


def report(fmt="text", first_row=0, max_rows=0):
    """license_report / license_report_page. fmt "text" gives the admin's text view
    (a str); "json" gives the JSON report parsed into a dict; "prometheus" the
    Prometheus text exposition (a str, for a /metrics endpoint). first_row/max_rows
    select one page of holders (max_rows 0: all; text and json only)."""
    codes = {"text": REPORT_TEXT, "json": REPORT_JSON, "prometheus": REPORT_PROMETHEUS}
    if fmt not in codes:
        raise ValueError(f"report format must be 'text', 'json' or 'prometheus', not {fmt!r}")
    code = codes[fmt]
    lib = _c()
    if first_row == 0 and max_rows == 0:
        text = _text(lambda buf, n, needed: lib.license_report(code, buf, n, needed))
    else:
        text = _text(lambda buf, n, needed: lib.license_report_page(code, first_row, max_rows, buf, n, needed))
    return json.loads(text) if code == REPORT_JSON else text


def last_error():
    """license_last_error: this thread's last failure, in one sentence ("" if none)."""
    lib = _c()
    return _text(lambda buf, n, needed: lib.license_last_error(buf, n, needed))


def strerror(code):
    """license_strerror: the static name of a status code."""
    return _c().license_strerror(code).decode("utf-8")


def version():
    """license_version: the library's version, e.g. "0.1.0"."""
    return _c().license_version().decode("utf-8")


def _text_or_none(value):
    return None if value is None else value.decode("utf-8", "replace")


class Event:
    """One event, copied out of the library's struct (keep it as long as you like).

    `kind`: "acquired", "released", "denied", "threshold_up", "threshold_down",
    "reloaded", "warning", "expired", "emergency_started", "emergency_ended" or
    "limit_changed" (`kind_code`: the number). `reason`: for "released" the release
    reason ("normal", "admin", "expired", "dependency", "shutdown", ...), for "denied"
    the refusal ("full", "no_seats", "reserved", ...), else None (`reason_code`: the
    number). `license_type`, `user`, `requires`, `tenant`: str or None. `seat`, `used`,
    `limit`, `threshold_percent`, `time_unix_ms`: ints. `detail`: one sentence."""

    __slots__ = ("kind", "kind_code", "reason", "reason_code", "license_type", "user", "seat", "used",
                 "limit", "threshold_percent", "time_unix_ms", "detail", "requires", "tenant")

    def __init__(self, e):
        self.kind_code = e.kind
        self.kind = EVENT_KINDS.get(e.kind, f"kind {e.kind}")
        self.reason_code = e.reason
        names = {"released": RELEASE_REASONS, "denied": DENIAL_REASONS}.get(self.kind)
        self.reason = None if names is None else names.get(e.reason, f"reason {e.reason}")
        self.license_type = _text_or_none(e.license_type)
        self.user = _text_or_none(e.user)
        self.seat = e.seat
        self.used = e.used
        self.limit = e.limit
        self.threshold_percent = e.threshold_percent
        self.time_unix_ms = e.time_unix_ms
        self.detail = _text_or_none(e.detail) or ""
        self.requires = _text_or_none(e.requires)
        self.tenant = _text_or_none(e.tenant)

    def __repr__(self):
        return f"Event({self.kind}, {self.license_type!r}, {self.used}/{self.limit}: {self.detail!r})"


# The registered trampoline (ctypes frees a callback's C entry point with the object),
# and the ones replaced since the last shutdown: the header says a call already
# running on another thread may still finish with the old one.
_callback_lock = threading.Lock()
_current = None
_retired = []


def on_event(callback):
    """license_set_event_callback: `callback(event)` is called with an `Event` for
    every event the mask keeps (set_event_mask: by default every event), on the
    thread whose call caused it, before that call returns; the reaper's thread for
    expired leases. It must be quick and may run on several threads at once. An
    exception it raises is printed to stderr and goes no further. None removes it.
    Like the C callback it stays across shutdown() and init(), and can be set first."""
    global _current
    if callback is None:
        trampoline = None
    elif not callable(callback):
        raise TypeError(f"callback must be callable or None, not {type(callback).__name__}")
    else:
        def deliver(_user_data, event):
            try:
                callback(Event(event.contents))
            except Exception:  # never into C: the login that caused it goes on
                traceback.print_exc(file=sys.stderr)
        trampoline = _EVENT_CALLBACK(deliver)
    with _callback_lock:
        _check(_c().license_set_event_callback(trampoline or _EVENT_CALLBACK(), None))
        if _current is not None:
            _retired.append(_current)
        _current = trampoline


def event_mask(text):
    """license_event_mask_parse: the mask a host's config names, e.g. "alerts",
    "all", "alerts, threshold" or "denied,threshold_up"."""
    mask = ctypes.c_uint32(0)
    _check(_c().license_event_mask_parse(_bytes(text, "mask"), ctypes.byref(mask)))
    return mask.value


def set_event_mask(mask):
    """license_set_event_mask: which events the callback hears, as text ("alerts",
    "alerts, threshold": see event_mask) or as an OR of EVENTS values. A mask with
    no login or logout in it ("alerts") keeps logins as fast as with no callback."""
    if isinstance(mask, str):
        mask = event_mask(mask)
    _check(_c().license_set_event_mask(int(mask)))
