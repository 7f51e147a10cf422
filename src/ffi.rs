//! The C ABI. Every `extern "C"` function and every `unsafe` pointer access of the
//! crate lives in this file; the engine behind it is safe Rust.
//!
//! Conventions (after rustls-ffi and hyper's C API):
//! - every exported body runs inside [`ffi_boundary!`], so no panic crosses into C;
//! - every pointer is checked; NULL where a value is required is
//!   `LICENSE_ERR_INVALID_ARGUMENT`;
//! - out-parameters come last and are written only on success (except `needed`, which
//!   exists to say how much room a too-small buffer lacked);
//! - output strings go into caller buffers `(buf, len, needed)`, always NUL-terminated
//!   when `len > 0`, written with `copy_nonoverlapping`;
//! - the detail of each failure is kept per thread for `license_last_error`.
#![allow(non_camel_case_types)]

use std::cell::RefCell;
use std::ffi::{CStr, OsStr, c_char};
use std::os::unix::ffi::OsStrExt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwapOption;

use crate::engine::{Engine, Request};
use crate::error::{Denial, Error};
use crate::report::Page;
use crate::types;

/// Status codes returned by every `int32_t` function. 0 is success; errors are
/// negative. The numbers are part of the ABI: they never change and are never reused.
#[repr(i32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum license_status {
    /// Success.
    LICENSE_OK = 0,
    /// A license type in the request is full; nothing was taken. The type and its
    /// used/limit are in the `license_denial` of `license_try_acquire_ex` and in
    /// `license_last_error`.
    LICENSE_ERR_LIMIT_REACHED = -1,
    /// A name in the profile list is neither a profile nor a license type.
    LICENSE_ERR_UNKNOWN_PROFILE = -2,
    /// A NULL, empty, over-long, non-UTF-8 or otherwise malformed argument.
    LICENSE_ERR_INVALID_ARGUMENT = -3,
    /// `license_init` has not succeeded, or `license_shutdown` has run.
    LICENSE_ERR_NOT_INITIALIZED = -4,
    /// `license_init` was called while the library is already initialized.
    LICENSE_ERR_ALREADY_INITIALIZED = -5,
    /// The seat handle is not held: already released, never issued, or issued before
    /// a shutdown. Nothing was freed.
    LICENSE_ERR_UNKNOWN_SEAT = -6,
    /// The configuration file is unreadable or invalid; `license_last_error` gives
    /// `file:line:column: problem`.
    LICENSE_ERR_CONFIG = -7,
    /// The caller's buffer is too small; `*needed` holds the size required. When
    /// `len > 0` the buffer holds a NUL-terminated prefix of the output.
    LICENSE_ERR_BUFFER_TOO_SMALL = -8,
    /// A bug inside seatgate (a caught panic). The host keeps running; the call had
    /// no effect that the caller must undo.
    LICENSE_ERR_INTERNAL = -9,
    /// The name is not a license type of the running configuration (the queries
    /// that take one type, such as `license_usage`).
    LICENSE_ERR_UNKNOWN_LICENSE_TYPE = -10,
}

/// Formats for `license_report`.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum license_report_format {
    /// The admin's text view: per-type `used/limit`, warnings, online-licenses table.
    LICENSE_REPORT_TEXT = 0,
    /// JSON: `licensee`, `licenses`, `holders`, `warnings`, `paging`, ...
    LICENSE_REPORT_JSON = 1,
}

impl TryFrom<u32> for license_report_format {
    type Error = ();
    fn try_from(value: u32) -> Result<Self, ()> {
        match value {
            0 => Ok(license_report_format::LICENSE_REPORT_TEXT),
            1 => Ok(license_report_format::LICENSE_REPORT_JSON),
            _ => Err(()),
        }
    }
}

/// Longest user name, extension label or session label, in bytes (without the NUL).
pub const LICENSE_MAX_LABEL_LEN: usize = 255;
/// Longest comma-separated profile list, in bytes (without the NUL).
pub const LICENSE_MAX_PROFILES_LEN: usize = 1023;
/// Longest license-type or profile name, in bytes (without the NUL).
pub const LICENSE_MAX_NAME_LEN: usize = 63;
/// Longest config path, in bytes (without the NUL).
pub const LICENSE_MAX_PATH_LEN: usize = 4095;

// cbindgen needs literals; the engine's limits are the source of truth.
const _: () = assert!(LICENSE_MAX_LABEL_LEN == types::MAX_LABEL_LEN);
const _: () = assert!(LICENSE_MAX_PROFILES_LEN == types::MAX_PROFILES_LEN);
const _: () = assert!(LICENSE_MAX_NAME_LEN == types::MAX_NAME_LEN);
const _: () = assert!(LICENSE_MAX_NAME_LEN < 64, "license_denial.license_type holds the name and its NUL");

/// An extended login request for `license_try_acquire_ex`.
///
/// Set `size` to `sizeof(license_request)`: fields added in later versions go at the
/// end, and a caller compiled against an older header is served as if they were NULL.
/// Optional strings may be NULL.
#[repr(C)]
pub struct license_request {
    /// `sizeof(license_request)` as the caller compiled it.
    pub size: usize,
    /// Login name. Required; 1 to `LICENSE_MAX_LABEL_LEN` bytes of UTF-8.
    pub user: *const c_char,
    /// Comma-separated profile or license-type names, e.g. `"operator,chat_team"`.
    pub profiles: *const c_char,
    /// Optional extension or device label, shown in the report.
    pub extension: *const c_char,
    /// Optional session label (SIP Call-ID, CRM session id...), shown in the report.
    pub session: *const c_char,
}

/// Which license type refused a request, for programs. Filled by
/// `license_try_acquire_ex` when it returns `LICENSE_ERR_LIMIT_REACHED`.
#[repr(C)]
pub struct license_denial {
    /// NUL-terminated name of the full license type.
    pub license_type: [c_char; 64],
    /// Seats of that type in use when the request was refused.
    pub used: u32,
    /// The type's limit.
    pub limit: u32,
}

/// Seat handle returned by the acquire functions. Never 0; never reused while the
/// library is loaded.
pub type license_seat = u64;

// ---- global state: one engine, swapped in and out atomically ----

static ENGINE: ArcSwapOption<Engine> = ArcSwapOption::const_empty();
/// Serialises init and shutdown with each other (acquires never take it).
static LIFECYCLE: Mutex<()> = Mutex::new(());

thread_local! {
    static LAST_ERROR: RefCell<String> = const { RefCell::new(String::new()) };
}

#[cfg(test)]
thread_local! {
    static FORCE_PANIC: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

fn set_last_error(message: String) {
    // `try_with`: during thread teardown the slot may be gone; losing the text is fine.
    let _ = LAST_ERROR.try_with(|slot| {
        if let Ok(mut slot) = slot.try_borrow_mut() {
            *slot = message;
        }
    });
}

/// Records the failure for `license_last_error` and returns its code.
fn fail(code: license_status, message: impl Into<String>) -> i32 {
    set_last_error(message.into());
    code as i32
}

fn error_code(error: &Error) -> license_status {
    match error {
        Error::LimitReached(_) => license_status::LICENSE_ERR_LIMIT_REACHED,
        Error::UnknownProfile(_) => license_status::LICENSE_ERR_UNKNOWN_PROFILE,
        Error::InvalidArgument(_) => license_status::LICENSE_ERR_INVALID_ARGUMENT,
        Error::UnknownSeat(_) => license_status::LICENSE_ERR_UNKNOWN_SEAT,
        Error::Config(_) => license_status::LICENSE_ERR_CONFIG,
    }
}

fn fail_with(error: &Error) -> i32 {
    fail(error_code(error), error.to_string())
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    let detail = payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into());
    format!("internal error in seatgate (please report it): {detail}")
}

/// Runs a function body so that a panic becomes `$fallback` instead of unwinding into
/// C. The signature stays outside the macro, where cbindgen can read it.
macro_rules! ffi_boundary {
    ($fallback:expr, $body:block) => {{
        match catch_unwind(AssertUnwindSafe(|| {
            #[cfg(test)]
            if FORCE_PANIC.with(|f| f.get()) {
                panic!("forced panic for testing");
            }
            $body
        })) {
            Ok(value) => value,
            Err(payload) => {
                set_last_error(panic_message(&*payload));
                $fallback
            }
        }
    }};
}

/// Runs `f` on the running engine, or fails with NOT_INITIALIZED. The guard is a
/// borrowed slot (no reference-count write on the hot path); a concurrent shutdown
/// waits for nothing and the engine is dropped when the last such call returns.
#[inline]
fn with_engine(f: impl FnOnce(&Engine) -> i32) -> i32 {
    let guard = ENGINE.load();
    match guard.as_deref() {
        Some(engine) => f(engine),
        None => fail(
            license_status::LICENSE_ERR_NOT_INITIALIZED,
            "seatgate is not initialized: call license_init first",
        ),
    }
}

macro_rules! try_c {
    ($e:expr) => {
        match $e {
            Ok(v) => v,
            Err(code) => return code,
        }
    };
}

/// Reads a required C string of at most `max` bytes, without reading past `max + 1`.
///
/// # Safety
/// `ptr` is NULL or points to memory readable up to its NUL or `max + 1` bytes.
unsafe fn c_bytes<'a>(ptr: *const c_char, what: &str, max: usize) -> Result<&'a [u8], i32> {
    if ptr.is_null() {
        return Err(fail(license_status::LICENSE_ERR_INVALID_ARGUMENT, format!("{what} is NULL")));
    }
    // SAFETY: strnlen reads at most max + 1 bytes, within the caller's promise.
    let len = unsafe { libc::strnlen(ptr, max + 1) };
    if len > max {
        return Err(fail(
            license_status::LICENSE_ERR_INVALID_ARGUMENT,
            format!("{what} is longer than the maximum of {max} bytes"),
        ));
    }
    if len == 0 {
        return Err(fail(license_status::LICENSE_ERR_INVALID_ARGUMENT, format!("{what} is empty")));
    }
    // SAFETY: the `len` bytes before the NUL were just measured.
    Ok(unsafe { std::slice::from_raw_parts(ptr.cast::<u8>(), len) })
}

/// A required UTF-8 C string.
///
/// # Safety
/// As for [`c_bytes`].
unsafe fn c_str<'a>(ptr: *const c_char, what: &str, max: usize) -> Result<&'a str, i32> {
    let bytes = unsafe { c_bytes(ptr, what, max)? };
    std::str::from_utf8(bytes)
        .map_err(|_| fail(license_status::LICENSE_ERR_INVALID_ARGUMENT, format!("{what} is not valid UTF-8")))
}

/// An optional UTF-8 C string: NULL is `None`.
///
/// # Safety
/// As for [`c_bytes`].
unsafe fn c_str_opt<'a>(ptr: *const c_char, what: &str, max: usize) -> Result<Option<&'a str>, i32> {
    if ptr.is_null() { Ok(None) } else { unsafe { c_str(ptr, what, max).map(Some) } }
}

/// Copies `text` into a caller buffer: the `(buf, len, needed)` convention.
///
/// # Safety
/// `buf` is NULL or writable for `len` bytes; `needed` is NULL or writable.
unsafe fn write_out(text: &str, buf: *mut c_char, len: usize, needed: *mut usize) -> i32 {
    let bytes = text.as_bytes();
    if !needed.is_null() {
        // SAFETY: checked non-NULL; the caller promises it is writable.
        unsafe { *needed = bytes.len() + 1 };
    }
    if buf.is_null() {
        return if len == 0 {
            license_status::LICENSE_OK as i32 // a size query
        } else {
            fail(license_status::LICENSE_ERR_INVALID_ARGUMENT, "buf is NULL but len is not 0")
        };
    }
    if len == 0 {
        return fail(
            license_status::LICENSE_ERR_BUFFER_TOO_SMALL,
            format!("buffer of 0 bytes is too small: {} needed", bytes.len() + 1),
        );
    }
    // Leave room for the NUL; never cut a UTF-8 character in half.
    let mut n = bytes.len().min(len - 1);
    while !text.is_char_boundary(n) {
        n -= 1;
    }
    // SAFETY: n + 1 <= len bytes are written into the caller's buffer; the regions
    // cannot overlap because `text` is ours.
    unsafe {
        std::ptr::copy_nonoverlapping(bytes.as_ptr(), buf.cast::<u8>(), n);
        *buf.add(n) = 0;
    }
    if n < bytes.len() {
        fail(
            license_status::LICENSE_ERR_BUFFER_TOO_SMALL,
            format!("buffer of {len} bytes is too small: {} needed", bytes.len() + 1),
        )
    } else {
        license_status::LICENSE_OK as i32
    }
}

/// Writes a count taken from the running engine to a required out-parameter.
///
/// # Safety
/// `count_out` is NULL or writable.
unsafe fn write_count(count_out: *mut u32, count: impl FnOnce(&Engine) -> usize) -> i32 {
    if count_out.is_null() {
        return fail(license_status::LICENSE_ERR_INVALID_ARGUMENT, "count_out is NULL");
    }
    with_engine(|engine| {
        let n = u32::try_from(count(engine)).unwrap_or(u32::MAX);
        // SAFETY: checked non-NULL; the caller promises it is writable.
        unsafe { count_out.write(n) };
        license_status::LICENSE_OK as i32
    })
}

/// Writes `value` through `out` if it is not NULL.
///
/// # Safety
/// `out` is NULL or writable.
unsafe fn write_opt<T>(out: *mut T, value: T) {
    if !out.is_null() {
        // SAFETY: checked non-NULL; the caller promises it is writable.
        unsafe { out.write(value) };
    }
}

fn denial_to_c(denial: &Denial) -> license_denial {
    let mut out = license_denial { license_type: [0; 64], used: denial.used, limit: denial.limit };
    // Names are at most LICENSE_MAX_NAME_LEN (63) bytes, checked at config load.
    for (dst, &src) in out.license_type.iter_mut().zip(denial.license.as_bytes().iter().take(63)) {
        *dst = src as c_char;
    }
    out
}

// ---- lifecycle ----

/// Loads the TOML configuration at `config_path` and starts the seat table.
///
/// Returns:
/// - `LICENSE_OK` on success (lints are warnings: see `license_lint_count`);
/// - `LICENSE_ERR_INVALID_ARGUMENT` if `config_path` is NULL, empty or longer than
///   `LICENSE_MAX_PATH_LEN`;
/// - `LICENSE_ERR_CONFIG` if the file is invalid (`license_last_error` gives
///   `file:line:column: problem`) or unreadable (`file: cannot read config file: ...`);
///   the library stays uninitialized;
/// - `LICENSE_ERR_ALREADY_INITIALIZED` if already initialized (call
///   `license_shutdown` first);
/// - `LICENSE_ERR_INTERNAL` on an internal error.
///
/// Thread safety: safe from any thread; concurrent inits are serialised and only one
/// succeeds.
///
/// Fork: the memory backend keeps its table in this process's heap. A child forked
/// after `license_init` gets a private copy of it, so each process would enforce the
/// limits on its own. Call `license_init` in exactly one process of a forking host
/// and route all acquires through it.
///
/// # Safety
/// Each pointer is NULL or valid: strings NUL-terminated, outputs writable for their size.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn license_init(config_path: *const c_char) -> i32 {
    ffi_boundary!(license_status::LICENSE_ERR_INTERNAL as i32, {
        let path = try_c!(unsafe { c_bytes(config_path, "config_path", LICENSE_MAX_PATH_LEN) });
        let path = Path::new(OsStr::from_bytes(path));
        let _lifecycle = LIFECYCLE.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(running) = ENGINE.load_full() {
            return fail(
                license_status::LICENSE_ERR_ALREADY_INITIALIZED,
                format!(
                    "seatgate is already initialized with '{}': call license_shutdown first",
                    running.config().source
                ),
            );
        }
        match Engine::from_file(path) {
            Ok(engine) => {
                ENGINE.store(Some(Arc::new(engine)));
                license_status::LICENSE_OK as i32
            }
            Err(e) => fail_with(&e),
        }
    })
}

/// Stops the library and forgets every seat. Afterwards every call except
/// `license_init`, `license_strerror`, `license_last_error` and `license_version`
/// returns `LICENSE_ERR_NOT_INITIALIZED`; seat handles issued before stay unknown
/// forever, even after a new `license_init`.
///
/// Calling it when not initialized does nothing.
///
/// Thread safety: safe from any thread, even while other threads acquire or release:
/// calls already running finish against the old table, later ones get
/// `LICENSE_ERR_NOT_INITIALIZED`. Never crashes.
#[unsafe(no_mangle)]
pub extern "C" fn license_shutdown() {
    ffi_boundary!((), {
        let _lifecycle = LIFECYCLE.lock().unwrap_or_else(|e| e.into_inner());
        ENGINE.store(None);
    })
}

// ---- acquire / release ----

/// Takes one seat of every license type that the named profiles imply, **all or
/// nothing**, and writes a new seat handle to `*seat_out`.
///
/// - `user`: login name, 1 to `LICENSE_MAX_LABEL_LEN` bytes of UTF-8, not blank, no
///   control characters. Names are compared byte for byte (`Alice` is not `alice`).
/// - `profiles`: one or more profile or license-type names separated by commas
///   (`"operator,chat_team"`); a bare license-type name is a profile of one type.
///   Spaces around a name are ignored. At most `LICENSE_MAX_PROFILES_LEN` bytes.
///
/// For `count = "user"` types a user who already holds the type takes no extra seat
/// (a second device gets a new handle for free); the seat is freed with the user's
/// last handle. For `count = "session"` types every handle takes a seat.
///
/// Returns:
/// - `LICENSE_OK`: `*seat_out` holds the handle (never 0);
/// - `LICENSE_ERR_LIMIT_REACHED`: a type is full, nothing was taken;
///   `license_last_error` says `license type 'chat' is full (0/0)`
///   (`license_try_acquire_ex` also gives it as a struct). When several types are
///   full, a type with limit 0 is named first (it can never be had), otherwise the
///   first full type in config-file order;
/// - `LICENSE_ERR_UNKNOWN_PROFILE`: a name is neither a profile nor a license type;
/// - `LICENSE_ERR_INVALID_ARGUMENT`: a NULL pointer, an empty, over-long or non-UTF-8
///   string, a control character, or an empty name in the list (`"a,,b"`);
/// - `LICENSE_ERR_NOT_INITIALIZED`;
/// - `LICENSE_ERR_INTERNAL`.
///
/// `*seat_out` is written only on success.
///
/// A type is reported full only when its seats are really held: a seat that a
/// concurrent bundle holds for an instant and then gives back (because another of its
/// types was full) never causes a refusal, and no type ever has more holders than its
/// limit, not even for an instant. While such a bundle is in flight, a request for
/// its last free seats waits for it (it spins, then yields: nanoseconds, unless that
/// thread is descheduled).
///
/// Thread safety: safe from any thread, concurrently with every other call. It takes
/// no lock that is held across a call into C and never blocks for long.
///
/// # Safety
/// Each pointer is NULL or valid: strings NUL-terminated, outputs writable for their size.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn license_try_acquire(
    user: *const c_char,
    profiles: *const c_char,
    seat_out: *mut license_seat,
) -> i32 {
    ffi_boundary!(license_status::LICENSE_ERR_INTERNAL as i32, {
        let user = try_c!(unsafe { c_str(user, "user", LICENSE_MAX_LABEL_LEN) });
        let profiles = try_c!(unsafe { c_str(profiles, "profiles", LICENSE_MAX_PROFILES_LEN) });
        acquire(&Request::new(user, profiles), seat_out, std::ptr::null_mut())
    })
}

/// Like `license_try_acquire`, with extension and session labels, and with the
/// refusal as a struct.
///
/// - `req`: required; `req->size` must be at least the size of the fields up to
///   `profiles`. Fields past `req->size` (a caller built with an older header) count
///   as NULL and are never read; a larger `size` (a newer header) is accepted and
///   the fields this version does not know are ignored. `req->extension` and
///   `req->session` may be NULL; when set they follow the rules for `user`.
/// - `seat_out`: required; written only on success.
/// - `denial_out`: may be NULL. On `LICENSE_ERR_LIMIT_REACHED` it receives the full
///   license type and its used/limit; otherwise it is left untouched.
///
/// Returns the same codes as `license_try_acquire`. Thread safety: the same.
///
/// # Safety
/// Each pointer is NULL or valid: strings NUL-terminated, outputs writable for their size.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn license_try_acquire_ex(
    req: *const license_request,
    seat_out: *mut license_seat,
    denial_out: *mut license_denial,
) -> i32 {
    ffi_boundary!(license_status::LICENSE_ERR_INTERNAL as i32, {
        if req.is_null() {
            return fail(license_status::LICENSE_ERR_INVALID_ARGUMENT, "req is NULL");
        }
        // SAFETY: checked non-NULL. Read `size` alone first: an older caller's struct
        // may be shorter than ours.
        let size = unsafe { std::ptr::addr_of!((*req).size).read() };
        let need = std::mem::offset_of!(license_request, profiles) + std::mem::size_of::<*const c_char>();
        if size < need {
            return fail(
                license_status::LICENSE_ERR_INVALID_ARGUMENT,
                format!("req->size is {size}; set it to sizeof(license_request)"),
            );
        }
        let field = |offset: usize| -> *const c_char {
            if size >= offset + std::mem::size_of::<*const c_char>() {
                // SAFETY: the caller's struct is `size` bytes long and covers this field.
                unsafe { req.cast::<u8>().add(offset).cast::<*const c_char>().read() }
            } else {
                std::ptr::null()
            }
        };
        let user = try_c!(unsafe {
            c_str(field(std::mem::offset_of!(license_request, user)), "req->user", LICENSE_MAX_LABEL_LEN)
        });
        let profiles = try_c!(unsafe {
            c_str(
                field(std::mem::offset_of!(license_request, profiles)),
                "req->profiles",
                LICENSE_MAX_PROFILES_LEN,
            )
        });
        let extension = try_c!(unsafe {
            c_str_opt(
                field(std::mem::offset_of!(license_request, extension)),
                "req->extension",
                LICENSE_MAX_LABEL_LEN,
            )
        });
        let session = try_c!(unsafe {
            c_str_opt(
                field(std::mem::offset_of!(license_request, session)),
                "req->session",
                LICENSE_MAX_LABEL_LEN,
            )
        });
        let request = Request { user, profiles, extension, session };
        acquire(&request, seat_out, denial_out)
    })
}

fn acquire(request: &Request<'_>, seat_out: *mut license_seat, denial_out: *mut license_denial) -> i32 {
    if seat_out.is_null() {
        return fail(license_status::LICENSE_ERR_INVALID_ARGUMENT, "seat_out is NULL");
    }
    with_engine(|engine| match engine.try_acquire(request) {
        Ok(seat) => {
            // SAFETY: checked non-NULL above; the caller promises it is writable.
            unsafe { seat_out.write(seat) };
            license_status::LICENSE_OK as i32
        }
        Err(e) => {
            if let Error::LimitReached(denial) = &e {
                // SAFETY: NULL is allowed and skipped; otherwise writable by contract.
                unsafe { write_opt(denial_out, denial_to_c(denial)) };
            }
            fail_with(&e)
        }
    })
}

/// Gives back a seat handle from an acquire. The user's `count = "user"` seats are
/// freed when their last handle is released; `count = "session"` seats at once.
///
/// Returns:
/// - `LICENSE_OK`;
/// - `LICENSE_ERR_UNKNOWN_SEAT`: 0, never issued, already released, or issued before a
///   shutdown. Nothing is freed, so a double release can never free someone else's
///   seat;
/// - `LICENSE_ERR_NOT_INITIALIZED` (checked first, for every handle, 0 included);
/// - `LICENSE_ERR_INTERNAL`.
///
/// Thread safety: safe from any thread; when two threads release the same handle,
/// exactly one gets `LICENSE_OK`.
#[unsafe(no_mangle)]
pub extern "C" fn license_release(seat: license_seat) -> i32 {
    ffi_boundary!(license_status::LICENSE_ERR_INTERNAL as i32, {
        with_engine(|engine| match engine.release(seat) {
            Ok(()) => license_status::LICENSE_OK as i32,
            Err(e) => fail_with(&e),
        })
    })
}

// ---- queries ----

/// Writes the usage of one license type: seats in use and its limit.
///
/// Returns `LICENSE_OK`; `LICENSE_ERR_INVALID_ARGUMENT` for a NULL or malformed
/// argument; `LICENSE_ERR_UNKNOWN_LICENSE_TYPE` if `license_type` is not a license type;
/// `LICENSE_ERR_NOT_INITIALIZED`; `LICENSE_ERR_INTERNAL`. Outputs are written only on
/// success. Thread safety: safe from any thread; lock-free.
///
/// # Safety
/// Each pointer is NULL or valid: strings NUL-terminated, outputs writable for their size.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn license_usage(
    license_type: *const c_char,
    used_out: *mut u32,
    limit_out: *mut u32,
) -> i32 {
    ffi_boundary!(license_status::LICENSE_ERR_INTERNAL as i32, {
        let name = try_c!(unsafe { c_str(license_type, "license_type", LICENSE_MAX_NAME_LEN) });
        if used_out.is_null() || limit_out.is_null() {
            return fail(
                license_status::LICENSE_ERR_INVALID_ARGUMENT,
                "used_out and limit_out must not be NULL",
            );
        }
        with_engine(|engine| match engine.usage_of(name) {
            Some(usage) => {
                // SAFETY: both checked non-NULL above.
                unsafe {
                    used_out.write(usage.used);
                    limit_out.write(usage.limit);
                }
                license_status::LICENSE_OK as i32
            }
            None => fail(
                license_status::LICENSE_ERR_UNKNOWN_LICENSE_TYPE,
                format!("unknown license type '{name}'"),
            ),
        })
    })
}

/// Writes the number of license types in the running configuration to `*count_out`.
/// Types are numbered 0 to count - 1 in config-file order (see `license_type_name`).
///
/// Returns `LICENSE_OK`, `LICENSE_ERR_INVALID_ARGUMENT` (NULL `count_out`),
/// `LICENSE_ERR_NOT_INITIALIZED` or `LICENSE_ERR_INTERNAL`. Thread safety: safe from
/// any thread.
///
/// # Safety
/// Each pointer is NULL or valid: strings NUL-terminated, outputs writable for their size.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn license_type_count(count_out: *mut u32) -> i32 {
    ffi_boundary!(license_status::LICENSE_ERR_INTERNAL as i32, {
        unsafe { write_count(count_out, |engine| engine.config().licenses.len()) }
    })
}

/// Writes the name of license type number `index` (0-based, config-file order), with
/// the buffer convention of `license_report`. Names are at most `LICENSE_MAX_NAME_LEN`
/// bytes, so a buffer of `LICENSE_MAX_NAME_LEN + 1` always suffices. Pass the name to
/// `license_usage` for its counts.
///
/// Returns `LICENSE_OK`, `LICENSE_ERR_BUFFER_TOO_SMALL`, `LICENSE_ERR_INVALID_ARGUMENT`
/// (index out of range, or `buf == NULL` with `len > 0`), `LICENSE_ERR_NOT_INITIALIZED`
/// or `LICENSE_ERR_INTERNAL`. Thread safety: safe from any thread.
///
/// # Safety
/// Each pointer is NULL or valid: strings NUL-terminated, outputs writable for their size.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn license_type_name(
    index: u32,
    buf: *mut c_char,
    len: usize,
    needed: *mut usize,
) -> i32 {
    ffi_boundary!(license_status::LICENSE_ERR_INTERNAL as i32, {
        with_engine(|engine| match engine.config().licenses.get(index as usize) {
            Some(license) => unsafe { write_out(&license.name, buf, len, needed) },
            None => fail(
                license_status::LICENSE_ERR_INVALID_ARGUMENT,
                format!(
                    "license type index {index} is out of range ({} types)",
                    engine.config().licenses.len()
                ),
            ),
        })
    })
}

/// Writes the whole report (every holder) in `format` (`LICENSE_REPORT_TEXT` or
/// `LICENSE_REPORT_JSON`) into `buf`.
///
/// Buffer convention: `*needed` (if `needed` is not NULL) receives the size required,
/// NUL included. `buf == NULL, len == 0` is a size query and returns `LICENSE_OK`.
/// Output is always NUL-terminated when `len > 0`. The report can grow between a size
/// query and the next call: leave some room, or retry on
/// `LICENSE_ERR_BUFFER_TOO_SMALL`.
///
/// Returns `LICENSE_OK`; `LICENSE_ERR_BUFFER_TOO_SMALL` (a NUL-terminated prefix is in
/// `buf`); `LICENSE_ERR_INVALID_ARGUMENT` for an unknown format or `buf == NULL` with
/// `len > 0`; `LICENSE_ERR_NOT_INITIALIZED`; `LICENSE_ERR_INTERNAL`.
///
/// Thread safety: safe from any thread. It works from a snapshot and never blocks
/// acquirers for more than the copy of one shard of the table.
///
/// # Safety
/// Each pointer is NULL or valid: strings NUL-terminated, outputs writable for their size.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn license_report(
    format: u32,
    buf: *mut c_char,
    len: usize,
    needed: *mut usize,
) -> i32 {
    ffi_boundary!(license_status::LICENSE_ERR_INTERNAL as i32, {
        unsafe { report_page(format, Page::ALL, buf, len, needed) }
    })
}

/// Like `license_report`, showing only holders `first_row .. first_row + max_rows - 1`
/// (0-based, in login-time order); `max_rows == 0` means all from `first_row` on. A
/// holder (one row) is one user with all of that user's seat handles. The counts and
/// warnings cover everything; the footer "showing A to B of N" counts holders, and a
/// page past the end shows "showing 0 to 0 of N".
///
/// Returns and thread safety: as `license_report`.
///
/// # Safety
/// Each pointer is NULL or valid: strings NUL-terminated, outputs writable for their size.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn license_report_page(
    format: u32,
    first_row: usize,
    max_rows: usize,
    buf: *mut c_char,
    len: usize,
    needed: *mut usize,
) -> i32 {
    ffi_boundary!(license_status::LICENSE_ERR_INTERNAL as i32, {
        let page = Page { offset: first_row, max_rows: (max_rows > 0).then_some(max_rows) };
        unsafe { report_page(format, page, buf, len, needed) }
    })
}

/// # Safety
/// As for [`write_out`].
unsafe fn report_page(format: u32, page: Page, buf: *mut c_char, len: usize, needed: *mut usize) -> i32 {
    let Ok(format) = license_report_format::try_from(format) else {
        return fail(
            license_status::LICENSE_ERR_INVALID_ARGUMENT,
            format!("unknown report format {format}: use LICENSE_REPORT_TEXT or LICENSE_REPORT_JSON"),
        );
    };
    // Render outside the engine guard: only the snapshot needs the engine.
    let mut text = None;
    let code = with_engine(|engine| {
        let report = engine.report(page);
        text = Some(match format {
            license_report_format::LICENSE_REPORT_TEXT => report.to_text(),
            license_report_format::LICENSE_REPORT_JSON => report.to_json(),
        });
        license_status::LICENSE_OK as i32
    });
    match text {
        Some(text) => unsafe { write_out(&text, buf, len, needed) },
        None => code,
    }
}

/// Writes the number of configuration lints (warnings found at load) to `*count_out`.
///
/// Returns `LICENSE_OK`, `LICENSE_ERR_INVALID_ARGUMENT` (NULL `count_out`),
/// `LICENSE_ERR_NOT_INITIALIZED` or `LICENSE_ERR_INTERNAL`. Thread safety: safe from
/// any thread.
///
/// # Safety
/// Each pointer is NULL or valid: strings NUL-terminated, outputs writable for their size.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn license_lint_count(count_out: *mut u32) -> i32 {
    ffi_boundary!(license_status::LICENSE_ERR_INTERNAL as i32, {
        unsafe { write_count(count_out, |engine| engine.lints().len()) }
    })
}

/// Writes lint number `index` (0-based) as one line,
/// `file:line: warning[code]: sentence`, with the buffer convention of
/// `license_report`.
///
/// Returns `LICENSE_OK`, `LICENSE_ERR_BUFFER_TOO_SMALL`, `LICENSE_ERR_INVALID_ARGUMENT`
/// (index out of range, or `buf == NULL` with `len > 0`), `LICENSE_ERR_NOT_INITIALIZED`
/// or `LICENSE_ERR_INTERNAL`. Thread safety: safe from any thread.
///
/// # Safety
/// Each pointer is NULL or valid: strings NUL-terminated, outputs writable for their size.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn license_lint(index: u32, buf: *mut c_char, len: usize, needed: *mut usize) -> i32 {
    ffi_boundary!(license_status::LICENSE_ERR_INTERNAL as i32, {
        with_engine(|engine| match engine.lints().get(index as usize) {
            Some(lint) => unsafe { write_out(&lint.to_string(), buf, len, needed) },
            None => fail(
                license_status::LICENSE_ERR_INVALID_ARGUMENT,
                format!("lint index {index} is out of range ({} lints)", engine.lints().len()),
            ),
        })
    })
}

// ---- errors and version ----

/// A static, NUL-terminated English name for a status code, e.g.
/// `"license type is full"`. Unknown codes give `"unknown status code"`. Never NULL;
/// the string must not be freed.
///
/// Thread safety: safe from any thread, initialized or not.
#[unsafe(no_mangle)]
pub extern "C" fn license_strerror(code: i32) -> *const c_char {
    ffi_boundary!(c"internal error".as_ptr(), {
        let text: &'static CStr = match code {
            0 => c"success",
            -1 => c"license type is full",
            -2 => c"unknown profile or license type",
            -3 => c"invalid argument",
            -4 => c"seatgate is not initialized",
            -5 => c"seatgate is already initialized",
            -6 => c"unknown seat handle",
            -7 => c"invalid configuration",
            -8 => c"buffer too small",
            -9 => c"internal error",
            -10 => c"unknown license type",
            _ => c"unknown status code",
        };
        text.as_ptr()
    })
}

/// Writes the detail of the calling thread's most recent failure (for example
/// `license type 'chat' is full (0/0)` or `seats.toml:12:1: unknown field ...`), with
/// the buffer convention of `license_report`. An empty string if this thread has had
/// no failure. Success does not clear it.
///
/// Returns `LICENSE_OK`, `LICENSE_ERR_BUFFER_TOO_SMALL`, `LICENSE_ERR_INVALID_ARGUMENT`
/// (`buf == NULL` with `len > 0`) or `LICENSE_ERR_INTERNAL`. Calling it never changes
/// the stored detail. Works initialized or not.
///
/// Thread safety: per thread; each thread sees only its own failures.
///
/// # Safety
/// Each pointer is NULL or valid: strings NUL-terminated, outputs writable for their size.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn license_last_error(buf: *mut c_char, len: usize, needed: *mut usize) -> i32 {
    ffi_boundary!(license_status::LICENSE_ERR_INTERNAL as i32, {
        let message = LAST_ERROR.try_with(|slot| slot.borrow().clone()).unwrap_or_default();
        // A too-small buffer must not replace the detail the caller is trying to read.
        let code = unsafe { write_out(&message, buf, len, needed) };
        set_last_error(message);
        code
    })
}

/// The library version, e.g. `"0.1.0"`, as a static NUL-terminated string (the same
/// as the `SEATGATE_VERSION` macro of the header it was built with). Thread safety:
/// safe from any thread.
#[unsafe(no_mangle)]
pub extern "C" fn license_version() -> *const c_char {
    concat!(env!("CARGO_PKG_VERSION"), "\0").as_ptr().cast()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::CString;

    /// Tests here share the one global engine.
    static GLOBAL: Mutex<()> = Mutex::new(());

    fn last_error() -> String {
        let mut buf = [0 as c_char; 512];
        assert_eq!(unsafe { license_last_error(buf.as_mut_ptr(), buf.len(), std::ptr::null_mut()) }, 0);
        unsafe { CStr::from_ptr(buf.as_ptr()) }.to_string_lossy().into_owned()
    }

    fn write_config(text: &str) -> (tempdir::Dir, CString) {
        let dir = tempdir::Dir::new();
        let path = dir.path.join("seats.toml");
        std::fs::write(&path, text).unwrap();
        let c = CString::new(path.to_str().unwrap()).unwrap();
        (dir, c)
    }

    mod tempdir {
        pub struct Dir {
            pub path: std::path::PathBuf,
        }
        impl Dir {
            pub fn new() -> Dir {
                use std::sync::atomic::{AtomicU32, Ordering};
                static N: AtomicU32 = AtomicU32::new(0);
                let path = std::env::temp_dir().join(format!(
                    "seatgate-ffi-{}-{}",
                    std::process::id(),
                    N.fetch_add(1, Ordering::Relaxed)
                ));
                std::fs::create_dir_all(&path).unwrap();
                Dir { path }
            }
        }
        impl Drop for Dir {
            fn drop(&mut self) {
                let _ = std::fs::remove_dir_all(&self.path);
            }
        }
    }

    #[test]
    fn forced_panic_comes_back_as_internal_error() {
        let _g = GLOBAL.lock().unwrap_or_else(|e| e.into_inner());
        let (_dir, path) = write_config("[licenses.user]\nlimit = 1\n");
        assert_eq!(unsafe { license_init(path.as_ptr()) }, 0);

        FORCE_PANIC.with(|f| f.set(true));
        let mut seat = 0;
        let code = unsafe { license_try_acquire(c"alice".as_ptr(), c"user".as_ptr(), &mut seat) };
        let release = license_release(1);
        license_shutdown(); // must not unwind either
        FORCE_PANIC.with(|f| f.set(false));

        assert_eq!(code, license_status::LICENSE_ERR_INTERNAL as i32);
        assert_eq!(release, license_status::LICENSE_ERR_INTERNAL as i32);
        assert_eq!(seat, 0, "out-parameter written on failure");
        assert!(last_error().contains("forced panic for testing"), "{}", last_error());
        // The library still works after the panic: the panic left no lock poisoned.
        license_shutdown();
        assert_eq!(unsafe { license_init(path.as_ptr()) }, 0);
        assert_eq!(unsafe { license_try_acquire(c"alice".as_ptr(), c"user".as_ptr(), &mut seat) }, 0);
        assert_eq!(license_release(seat), 0);
        license_shutdown();
    }

    #[test]
    fn buffer_convention() {
        let mut needed = 0usize;
        let text = "héllo";
        // size query
        assert_eq!(unsafe { write_out(text, std::ptr::null_mut(), 0, &mut needed) }, 0);
        assert_eq!(needed, text.len() + 1);
        // NULL buf with len > 0
        assert_eq!(unsafe { write_out(text, std::ptr::null_mut(), 4, &mut needed) }, -3);
        // too small: NUL-terminated prefix, never half a character
        let mut buf = [b'#' as c_char; 3];
        assert_eq!(unsafe { write_out(text, buf.as_mut_ptr(), buf.len(), &mut needed) }, -8);
        assert_eq!(unsafe { CStr::from_ptr(buf.as_ptr()) }.to_bytes(), b"h");
        // exact fit
        let mut buf = [0 as c_char; 7];
        assert_eq!(unsafe { write_out(text, buf.as_mut_ptr(), buf.len(), std::ptr::null_mut()) }, 0);
        assert_eq!(unsafe { CStr::from_ptr(buf.as_ptr()) }.to_str().unwrap(), text);
    }

    #[test]
    fn every_status_has_a_distinct_name() {
        let codes = -10..=0;
        let names: std::collections::HashSet<_> = codes
            .clone()
            .map(|c| unsafe { CStr::from_ptr(license_strerror(c)) }.to_bytes().to_vec())
            .collect();
        assert_eq!(names.len(), codes.count());
        assert_eq!(unsafe { CStr::from_ptr(license_strerror(-1000)) }.to_bytes(), b"unknown status code");
    }
}
