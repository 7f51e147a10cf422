//! Vendor-signed license files: the limits a customer paid for, in a form that editing
//! the TOML configuration cannot raise.
//!
//! The vendor writes a small TOML file (`[license]`, `[license.limits]`, optionally a free
//! `[info]`), signs it with `seatgate sign` and ships it. This module parses such a file,
//! checks its Ed25519 signature against the vendor public keys it trusts, and returns the
//! signed terms as a [`SignedLicense`]. Nothing here touches the engine: the contract for
//! the integration is that a type's effective limit is
//! `min(configured limit, signed limit)` ([`SignedLicense::effective_limit`]), see
//! `docs/licenses.md`.
//!
//! # What is signed
//!
//! Not the raw text: the signature covers a *canonical byte string* built from the parsed
//! `[license]` values, so comments, whitespace, key order, quoting style and the whole
//! `[info]` table are free to change, while any change of a signed value breaks the
//! signature. The bytes are UTF-8, one `key=value` line per field, each ending in `\n`:
//!
//! ```text
//! seatgate-license-v1
//! format=1
//! licensee=Acme Call Center
//! license_id=ACME-2026-0042
//! issued=2026-11-23
//! valid_until=2027-12-31        (or valid_until=none)
//! support_until=2027-10-31      (or support_until=none)
//! emergency_seats=10            (0 when absent)
//! emergency_days=30             (30 when absent)
//! max_tenants=100               (or max_tenants=none)
//! limit.callcenter=20           (one line per type, sorted by name, byte order)
//! limit.users=50
//! ```
//!
//! Values cannot contain a line break (control characters are refused), and type names
//! use only `A-Z a-z 0-9 _ - .`, so every byte string has exactly one reading. Keys under
//! `[license]` that this version does not know are refused rather than ignored: they
//! would look signed without being signed.
//!
//! # Keys
//!
//! A public key's text form is `seatgate-ed25519-public:` followed by the standard base64
//! (with padding) of its 32 bytes; a secret key's is `seatgate-ed25519-secret:` followed
//! by the base64 of its 32-byte seed. A key id is the first 16 lowercase hex characters of
//! the SHA-256 of the 32 public-key bytes. Keys are trusted because they were compiled in
//! ([`compiled_in_keys`], from `SEATGATE_VENDOR_KEYS` at build time) or because the host
//! passed them in.

use std::collections::BTreeMap;
use std::fmt;
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};
use serde::Deserialize;
use sha2::{Digest as _, Sha256};
use toml::Spanned;
use zeroize::Zeroizing;

use crate::config::Date;
use crate::types::{MAX_LICENSE_TYPES, MAX_NAME_LEN};

mod key_text;

// Defines `COMPILED_IN_VENDOR_KEYS: &[[u8; 32]]`, validated by build.rs.
include!(concat!(env!("OUT_DIR"), "/vendor_keys.rs"));

/// The only `format` this version reads.
pub const FORMAT: u32 = 1;
/// First line of the canonical bytes: keeps a license signature from ever being valid
/// for anything else signed with the same key, and names the canonical form's version.
pub const CANONICAL_PREFIX: &str = "seatgate-license-v1\n";
/// A license file is a few hundred bytes; anything past this is surely not one.
pub const MAX_LICENSE_FILE_BYTES: u64 = 1 << 20;
/// Longest `licensee`, in bytes.
pub const MAX_LICENSEE_LEN: usize = 200;
/// Longest `license_id`, in bytes.
pub const MAX_LICENSE_ID_LEN: usize = 64;
/// Longest emergency window, in days.
pub const MAX_EMERGENCY_DAYS: u32 = 366;
/// `emergency_days` when the file does not say.
pub const DEFAULT_EMERGENCY_DAYS: u32 = 30;

// ---------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------

/// Why a license file or a key was refused. Every message is a full sentence that names
/// the file (or the key) it is about, fit to show an administrator as it is.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SignedError {
    /// The file could not be read at all (missing, no permission...).
    Unreadable { file: String, reason: String },
    /// Not a license file, a TOML syntax error, or a field with a bad value; `line` is
    /// 1-based when known.
    Malformed { file: String, line: Option<usize>, message: String },
    /// The file has no `[signature]` table.
    Unsigned { file: String },
    /// The signature does not match the signed values: the file was changed after signing.
    BadSignature { file: String, license_id: String, key_id: String },
    /// Signed by a key that is not among the trusted ones.
    UntrustedKey { file: String, key_id: String, trusted: Vec<String> },
    /// No trusted vendor key at all, so no license can be verified.
    NoTrustedKey { file: String },
    /// The signature is good but `valid_until` is before today.
    Expired { file: String, license_id: String, valid_until: Date, today: Date },
    /// A key's text form or key file is not usable; `what` says which key.
    BadKey { what: String, message: String },
    /// A key file could not be written (including: it already exists).
    Unwritable { file: String, reason: String },
    /// The operating system's random generator failed.
    NoRandomness { reason: String },
}

impl fmt::Display for SignedError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SignedError::Unreadable { file, reason } => {
                write!(f, "cannot read license file {file}: {reason}")
            }
            SignedError::Malformed { file, line: Some(line), message } => {
                write!(f, "license file {file}, line {line}: {message}")
            }
            SignedError::Malformed { file, line: None, message } => {
                write!(f, "license file {file}: {message}")
            }
            SignedError::Unsigned { file } => write!(
                f,
                "license file {file} is not signed: it has no [signature] table \
                 (the vendor signs it with `seatgate sign --key VENDOR.key {file}`)"
            ),
            SignedError::BadSignature { file, license_id, key_id } => write!(
                f,
                "license file {file}: the signature does not match license {license_id} (key id {key_id}): \
                 the file was changed after it was signed, and even one changed byte under [license] \
                 breaks the signature; ask the vendor for a new file instead of editing it"
            ),
            SignedError::UntrustedKey { file, key_id, trusted } => write!(
                f,
                "license file {file} is signed by vendor key {key_id}, which is not trusted here \
                 (trusted key ids: {})",
                trusted.join(", ")
            ),
            SignedError::NoTrustedKey { file } => write!(
                f,
                "cannot verify license file {file}: no vendor key is trusted; compile one in with \
                 SEATGATE_VENDOR_KEYS={}<base64> at build time, or have the host pass it with \
                 license_trust_key() before license_init()",
                key_text::PUBLIC_PREFIX
            ),
            SignedError::Expired { file, license_id, valid_until, today } => write!(
                f,
                "license {license_id} (file {file}) expired on {valid_until}: it was valid up to and \
                 including that day, and today is {today} (UTC)"
            ),
            SignedError::BadKey { what, message } => write!(f, "{what}: {message}"),
            SignedError::Unwritable { file, reason } => write!(f, "cannot write {file}: {reason}"),
            SignedError::NoRandomness { reason } => {
                write!(f, "cannot generate a key: the system random generator failed ({reason})")
            }
        }
    }
}

impl std::error::Error for SignedError {}

// ---------------------------------------------------------------------------------------
// Keys
// ---------------------------------------------------------------------------------------

/// A vendor public key that license signatures are checked against.
#[derive(Clone, PartialEq, Eq)]
pub struct VendorKey {
    key: VerifyingKey,
}

impl VendorKey {
    /// Prefix of the text form: `seatgate-ed25519-public:<base64 of 32 bytes>`.
    pub const TEXT_PREFIX: &'static str = key_text::PUBLIC_PREFIX;

    /// Parses the text form (as `seatgate keygen` writes it in `PREFIX.pub`); surrounding
    /// whitespace and a final newline are accepted. Weak (small-order) keys are refused.
    pub fn parse(text: &str) -> Result<VendorKey, SignedError> {
        let bytes = key_text::decode_public_key(text)
            .map_err(|message| SignedError::BadKey { what: "vendor public key".into(), message })?;
        VendorKey::from_bytes(&bytes)
    }

    /// A key from its 32 raw bytes.
    pub fn from_bytes(bytes: &[u8; 32]) -> Result<VendorKey, SignedError> {
        let bad = |message: &str| SignedError::BadKey {
            what: "vendor public key".into(),
            message: message.to_string(),
        };
        let key = VerifyingKey::from_bytes(bytes)
            .map_err(|_| bad("the 32 bytes are not a valid Ed25519 public key"))?;
        if key.is_weak() {
            return Err(bad("the key is a weak (small-order) Ed25519 point and cannot be trusted"));
        }
        Ok(VendorKey { key })
    }

    /// Reads a `.pub` file.
    pub fn load(path: &Path) -> Result<VendorKey, SignedError> {
        let what = || format!("public key file {}", path.display());
        let text = std::fs::read_to_string(path)
            .map_err(|e| SignedError::BadKey { what: what(), message: format!("cannot read it: {e}") })?;
        let bytes = key_text::decode_public_key(&text)
            .map_err(|message| SignedError::BadKey { what: what(), message })?;
        VendorKey::from_bytes(&bytes)
    }

    /// First 16 lowercase hex characters of the SHA-256 of the 32 key bytes.
    pub fn key_id(&self) -> String {
        key_id_of(self.key.as_bytes())
    }

    /// The text form, `seatgate-ed25519-public:<base64>`, without a newline.
    pub fn to_text(&self) -> String {
        format!("{}{}", key_text::PUBLIC_PREFIX, STANDARD.encode(self.key.as_bytes()))
    }

    /// The 32 raw key bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        self.key.as_bytes()
    }
}

impl fmt::Debug for VendorKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "VendorKey({})", self.key_id())
    }
}

impl fmt::Display for VendorKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_text())
    }
}

fn key_id_of(public_key: &[u8; 32]) -> String {
    use std::fmt::Write as _;
    Sha256::digest(public_key).iter().take(8).fold(String::with_capacity(16), |mut id, b| {
        write!(id, "{b:02x}").expect("writing to a String cannot fail");
        id
    })
}

/// The vendor keys compiled in from `SEATGATE_VENDOR_KEYS` at build time (empty when it
/// was unset). build.rs already refused any key that does not parse.
pub fn compiled_in_keys() -> Vec<VendorKey> {
    COMPILED_IN_VENDOR_KEYS.iter().filter_map(|bytes| VendorKey::from_bytes(bytes).ok()).collect()
}

/// Keys the host passed at run time (`license_trust_key`), for this process.
static HOST_KEYS: std::sync::Mutex<Vec<VendorKey>> = std::sync::Mutex::new(Vec::new());

/// Trusts `key` for signed licenses loaded from now on in this process (the C API's
/// `license_trust_key`). Keys can be added, never removed: a config cannot replace
/// the vendor's key, only the host program can add one.
pub fn trust_key(key: VendorKey) {
    let mut keys = HOST_KEYS.lock().unwrap_or_else(|e| e.into_inner());
    if !keys.contains(&key) {
        keys.push(key);
    }
}

/// Every key a signed license may be signed with: compiled in, then passed by the host.
pub fn trusted_keys() -> Vec<VendorKey> {
    let mut keys = compiled_in_keys();
    for k in HOST_KEYS.lock().unwrap_or_else(|e| e.into_inner()).iter() {
        if !keys.contains(k) {
            keys.push(k.clone());
        }
    }
    keys
}

/// A vendor's secret signing key. Only the `seatgate` CLI needs one; it never ships.
/// The key bytes are wiped from memory when it is dropped.
pub struct VendorSigningKey {
    key: SigningKey,
}

/// Where [`VendorSigningKey::write_key_pair`] put the two halves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyPairFiles {
    /// `PREFIX.key`, the secret key, mode 0600.
    pub secret: PathBuf,
    /// `PREFIX.pub`, the public key in its text form.
    pub public: PathBuf,
}

impl VendorSigningKey {
    /// Prefix of the text form: `seatgate-ed25519-secret:<base64 of the 32-byte seed>`.
    pub const TEXT_PREFIX: &'static str = key_text::SECRET_PREFIX;

    /// A new key from the operating system's random generator.
    pub fn generate() -> Result<VendorSigningKey, SignedError> {
        let mut seed = Zeroizing::new([0u8; 32]);
        getrandom::fill(seed.as_mut_slice())
            .map_err(|e| SignedError::NoRandomness { reason: e.to_string() })?;
        Ok(VendorSigningKey::from_seed(&seed))
    }

    /// The key for a given 32-byte seed (tests use fixed seeds).
    pub fn from_seed(seed: &[u8; 32]) -> VendorSigningKey {
        VendorSigningKey { key: SigningKey::from_bytes(seed) }
    }

    /// Parses the text form (surrounding whitespace allowed).
    pub fn parse(text: &str) -> Result<VendorSigningKey, SignedError> {
        let bad = |message: String| SignedError::BadKey { what: "vendor secret key".into(), message };
        let text = text.trim();
        if text.starts_with(key_text::PUBLIC_PREFIX) {
            return Err(bad(
                "this is a public key (.pub); signing needs the secret key (.key) of the same pair".into(),
            ));
        }
        // The text is not echoed back: it may be a secret in a slightly wrong form.
        let b64 = text.strip_prefix(key_text::SECRET_PREFIX).ok_or_else(|| {
            bad(format!("it is not a seatgate secret key: one starts with '{}'", key_text::SECRET_PREFIX))
        })?;
        let bytes = Zeroizing::new(
            STANDARD.decode(b64).map_err(|_| bad("the part after the prefix is not valid base64".into()))?,
        );
        let seed: &[u8; 32] = bytes.as_slice().try_into().map_err(|_| {
            bad(format!("the key is {} bytes long; an Ed25519 secret seed is 32 bytes", bytes.len()))
        })?;
        Ok(VendorSigningKey::from_seed(seed))
    }

    /// Reads a `.key` file.
    pub fn load(path: &Path) -> Result<VendorSigningKey, SignedError> {
        let what = || format!("secret key file {}", path.display());
        let text = std::fs::read_to_string(path)
            .map_err(|e| SignedError::BadKey { what: what(), message: format!("cannot read it: {e}") })?;
        let text = Zeroizing::new(text);
        VendorSigningKey::parse(&text).map_err(|e| match e {
            SignedError::BadKey { message, .. } => SignedError::BadKey { what: what(), message },
            other => other,
        })
    }

    /// The text form, `seatgate-ed25519-secret:<base64>`, wiped from memory on drop.
    pub fn to_text(&self) -> Zeroizing<String> {
        let seed = Zeroizing::new(self.key.to_bytes());
        Zeroizing::new(format!("{}{}", key_text::SECRET_PREFIX, STANDARD.encode(seed.as_slice())))
    }

    /// The public half, to be trusted by builds and hosts.
    pub fn public_key(&self) -> VendorKey {
        VendorKey { key: self.key.verifying_key() }
    }

    /// The key id of the public half.
    pub fn key_id(&self) -> String {
        self.public_key().key_id()
    }

    /// Writes `PREFIX.key` (this secret key, created with mode 0600) and `PREFIX.pub` (the
    /// public key), each followed by a newline. Refuses to overwrite either file: losing
    /// a vendor key by accident means re-issuing every license signed with it.
    pub fn write_key_pair(&self, prefix: &Path) -> Result<KeyPairFiles, SignedError> {
        let with_suffix = |suffix: &str| {
            let mut name = prefix.as_os_str().to_owned();
            name.push(suffix);
            PathBuf::from(name)
        };
        let files = KeyPairFiles { secret: with_suffix(".key"), public: with_suffix(".pub") };
        for path in [&files.secret, &files.public] {
            if path.symlink_metadata().is_ok() {
                return Err(SignedError::Unwritable {
                    file: path.display().to_string(),
                    reason: "it already exists; refusing to overwrite a key (choose another --out)".into(),
                });
            }
        }
        let mut secret_text = self.to_text();
        secret_text.push('\n');
        write_new_file(&files.secret, secret_text.as_bytes(), 0o600)?;
        if let Err(e) = write_new_file(&files.public, format!("{}\n", self.public_key()).as_bytes(), 0o644) {
            // Leave no half pair behind (it would block the next try).
            let _ = std::fs::remove_file(&files.secret);
            return Err(e);
        }
        Ok(files)
    }
}

impl fmt::Debug for VendorSigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "VendorSigningKey({}, secret not shown)", self.key_id())
    }
}

/// Creates `path` (never replacing an existing file) with `mode` from the start, so the
/// secret is never readable by others, not even for an instant.
fn write_new_file(path: &Path, bytes: &[u8], mode: u32) -> Result<(), SignedError> {
    use std::io::Write as _;
    let unwritable = |e: std::io::Error| SignedError::Unwritable {
        file: path.display().to_string(),
        reason: if e.kind() == std::io::ErrorKind::AlreadyExists {
            "it already exists; refusing to overwrite a key (choose another --out)".into()
        } else {
            e.to_string()
        },
    };
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(mode);
    }
    #[cfg(not(unix))]
    let _ = mode;
    let mut file = options.open(path).map_err(unwritable)?;
    file.write_all(bytes).and_then(|()| file.sync_all()).map_err(unwritable)
}

// ---------------------------------------------------------------------------------------
// Dates
// ---------------------------------------------------------------------------------------

/// The UTC calendar day of `time` (1970-01-01 for anything before it). The engine passes
/// its own clock's `now()`; [`today_utc`] uses the system clock.
pub fn date_of(time: SystemTime) -> Date {
    let days = time.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs() / 86_400);
    date_from_days_since_epoch(i64::try_from(days).unwrap_or(i64::MAX / 2))
}

/// Today's date in UTC from the system clock.
pub fn today_utc() -> Date {
    date_of(SystemTime::now())
}

/// The inverse of [`Date::days_since_epoch`] (Howard Hinnant's `civil_from_days`).
pub fn date_from_days_since_epoch(days: i64) -> Date {
    Date::from_days(days)
}

// ---------------------------------------------------------------------------------------
// The license
// ---------------------------------------------------------------------------------------

/// The signed terms of a verified license file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedLicense {
    /// Who the license was issued to.
    pub licensee: String,
    /// The vendor's identifier for this license, e.g. `ACME-2026-0042`.
    pub license_id: String,
    /// The day it was issued.
    pub issued: Date,
    /// Last day the license is valid (UTC); `None` for a perpetual license.
    pub valid_until: Option<Date>,
    /// Last day of the support subscription; `None` when none is included.
    pub support_until: Option<Date>,
    /// Extra seats that an emergency window may open (0: no emergency allowance).
    pub emergency_seats: u32,
    /// How long an emergency window lasts, in days.
    pub emergency_days: u32,
    /// Most tenants the installation may serve; `None` for no cap.
    pub max_tenants: Option<u32>,
    /// Entitled limit per license type name. A type not listed here is entitled to 0.
    pub limits: BTreeMap<String, u32>,
    /// Id of the vendor key whose signature was verified.
    pub key_id: String,
    /// `[info] description`, when present: free text, not signed.
    pub description: Option<String>,
}

impl SignedLicense {
    /// Verifies a license file's text: syntax and field values, the signature against
    /// `trusted`, then that `valid_until` is not before `today`. `source` names the file
    /// in error messages.
    pub fn verify_text(
        text: &str,
        source: &str,
        trusted: &[VendorKey],
        today: Date,
    ) -> Result<SignedLicense, SignedError> {
        let license = SignedLicense::verify_signature(text, source, trusted)?;
        license.check_date(source, today)?;
        Ok(license)
    }

    /// Reads and verifies a license file, as [`SignedLicense::verify_text`] does.
    pub fn load(path: &Path, trusted: &[VendorKey], today: Date) -> Result<SignedLicense, SignedError> {
        let source = path.display().to_string();
        let text = read_license_file(path, &source)?;
        SignedLicense::verify_text(&text, &source, trusted, today)
    }

    /// Everything [`SignedLicense::verify_text`] checks except the date: for showing what
    /// an expired license said, and for checking a file before it is installed.
    pub fn verify_signature(
        text: &str,
        source: &str,
        trusted: &[VendorKey],
    ) -> Result<SignedLicense, SignedError> {
        let doc = Document::parse(text, source)?;
        let Some(sig) = doc.signature else {
            return Err(SignedError::Unsigned { file: source.to_string() });
        };
        if trusted.is_empty() {
            return Err(SignedError::NoTrustedKey { file: source.to_string() });
        }
        let candidates: Vec<&VendorKey> = trusted.iter().filter(|k| k.key_id() == sig.key_id).collect();
        if candidates.is_empty() {
            let mut ids: Vec<String> = trusted.iter().map(VendorKey::key_id).collect();
            ids.dedup();
            return Err(SignedError::UntrustedKey {
                file: source.to_string(),
                key_id: sig.key_id,
                trusted: ids,
            });
        }
        let message = doc.license.canonical_bytes();
        let signature = Signature::from_bytes(&sig.value);
        if !candidates.iter().any(|k| k.key.verify_strict(&message, &signature).is_ok()) {
            return Err(SignedError::BadSignature {
                file: source.to_string(),
                license_id: doc.license.license_id,
                key_id: sig.key_id,
            });
        }
        Ok(SignedLicense { key_id: sig.key_id, ..doc.license })
    }

    /// Whether the license has ended by `today` (the day after `valid_until` or later).
    pub fn is_expired(&self, today: Date) -> bool {
        self.valid_until.is_some_and(|until| today > until)
    }

    /// Days from `today` to `valid_until` (0 on the last valid day, negative once expired);
    /// `None` for a perpetual license.
    pub fn days_left(&self, today: Date) -> Option<i64> {
        self.valid_until.map(|until| until.days_since_epoch() - today.days_since_epoch())
    }

    /// Days from `today` to `support_until`, as [`SignedLicense::days_left`].
    pub fn support_days_left(&self, today: Date) -> Option<i64> {
        self.support_until.map(|until| until.days_since_epoch() - today.days_since_epoch())
    }

    /// The signed limit of a license type: 0 for a type the license does not list.
    pub fn limit(&self, type_name: &str) -> u32 {
        self.limits.get(type_name).copied().unwrap_or(0)
    }

    /// The limit the engine enforces for a type whose configured limit is `configured`:
    /// the smaller of the two, so the configuration can lower an entitlement but never
    /// raise it.
    pub fn effective_limit(&self, type_name: &str, configured: u32) -> u32 {
        configured.min(self.limit(type_name))
    }

    /// The bytes the signature covers (see the module documentation).
    pub fn canonical_bytes(&self) -> Vec<u8> {
        use std::fmt::Write as _;
        fn or_none(value: Option<impl fmt::Display>) -> String {
            value.map_or_else(|| "none".to_string(), |v| v.to_string())
        }
        let mut s = String::from(CANONICAL_PREFIX);
        let mut line = |key: &str, value: &dyn fmt::Display| {
            writeln!(s, "{key}={value}").expect("writing to a String cannot fail");
        };
        line("format", &FORMAT);
        line("licensee", &self.licensee);
        line("license_id", &self.license_id);
        line("issued", &self.issued);
        line("valid_until", &or_none(self.valid_until));
        line("support_until", &or_none(self.support_until));
        line("emergency_seats", &self.emergency_seats);
        line("emergency_days", &self.emergency_days);
        line("max_tenants", &or_none(self.max_tenants));
        // BTreeMap<String, _> iterates in byte order of the names.
        for (name, limit) in &self.limits {
            line(&format!("limit.{name}"), limit);
        }
        s.into_bytes()
    }

    fn check_date(&self, source: &str, today: Date) -> Result<(), SignedError> {
        match self.valid_until {
            Some(valid_until) if today > valid_until => Err(SignedError::Expired {
                file: source.to_string(),
                license_id: self.license_id.clone(),
                valid_until,
                today,
            }),
            _ => Ok(()),
        }
    }
}

fn read_license_file(path: &Path, source: &str) -> Result<String, SignedError> {
    let unreadable =
        |e: std::io::Error| SignedError::Unreadable { file: source.to_string(), reason: e.to_string() };
    let file = std::fs::File::open(path).map_err(unreadable)?;
    let mut bytes = Vec::new();
    file.take(MAX_LICENSE_FILE_BYTES + 1).read_to_end(&mut bytes).map_err(unreadable)?;
    if bytes.len() as u64 > MAX_LICENSE_FILE_BYTES {
        return Err(malformed(
            source,
            None,
            format!("the file is larger than {MAX_LICENSE_FILE_BYTES} bytes, so it is not a license file"),
        ));
    }
    String::from_utf8(bytes)
        .map_err(|_| malformed(source, None, "the file is not UTF-8 text, so it is not a license file"))
}

// ---------------------------------------------------------------------------------------
// Signing
// ---------------------------------------------------------------------------------------

/// Signs a license file: parses and checks its `[license]` table exactly as verification
/// will, and returns the same text with a `[signature]` table appended (an existing
/// `[signature]` table is replaced). Comments and `[info]` stay as the author wrote them.
/// `source` names the input in error messages.
pub fn sign_text(unsigned: &str, source: &str, key: &VendorSigningKey) -> Result<String, SignedError> {
    let body = strip_signature_table(unsigned);
    let doc = Document::parse(&body, source)?;
    if doc.signature.is_some() {
        return Err(malformed(
            source,
            None,
            "the old signature could not be removed (it is not written as a [signature] table); \
             delete it and sign again",
        ));
    }
    let signature = key.key.sign(&doc.license.canonical_bytes());
    let key_id = key.key_id();

    let mut out = body.trim_end().to_string();
    out.push_str("\n\n[signature]\n");
    out.push_str("# Written by `seatgate sign`. Changing any value under [license] breaks it;\n");
    out.push_str("# comments and [info] may be edited freely.\n");
    out.push_str("algorithm = \"ed25519\"\n");
    out.push_str(&format!("key_id = \"{key_id}\"\n"));
    out.push_str(&format!("value = \"{}\"\n", STANDARD.encode(signature.to_bytes())));

    // The signed file must read back as exactly what was signed: this also catches a
    // `[signature]` line inside a multi-line string that the textual removal misread.
    let reread = Document::parse(&out, source)?;
    let verified = SignedLicense::verify_signature(&out, source, &[key.public_key()])?;
    let expected = SignedLicense { key_id, ..doc.license };
    if verified != expected || reread.info != doc.info {
        return Err(malformed(
            source,
            None,
            "the old [signature] table could not be replaced cleanly; delete it and sign again",
        ));
    }
    Ok(out)
}

/// Removes a `[signature]` table (its header line up to the next table header) from the
/// text, keeping every other line as it is.
fn strip_signature_table(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut in_signature = false;
    for line in text.split_inclusive('\n') {
        if let Some(name) = table_header_name(line) {
            in_signature = name == "signature";
        }
        if !in_signature {
            out.push_str(line);
        }
    }
    out
}

/// `Some("name")` for a line `[name]` or `[[name]]` (spaces and a trailing comment allowed).
fn table_header_name(line: &str) -> Option<&str> {
    let line = line.trim();
    let inner = line.strip_prefix('[')?;
    let end = inner.find(']')?;
    let rest = inner[end..].trim_start_matches(']').trim();
    if !(rest.is_empty() || rest.starts_with('#')) {
        return None;
    }
    Some(inner[..end].trim_start_matches('[').trim())
}

// ---------------------------------------------------------------------------------------
// Parsing
// ---------------------------------------------------------------------------------------

const LICENSE_KEYS: &[&str] = &[
    "format",
    "licensee",
    "license_id",
    "issued",
    "valid_until",
    "support_until",
    "emergency_seats",
    "emergency_days",
    "max_tenants",
    "limits",
];

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    license: RawLicense,
    info: Option<toml::Table>,
    signature: Option<RawSignature>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLicense {
    format: Spanned<i64>,
    licensee: Spanned<String>,
    license_id: Spanned<String>,
    issued: Spanned<RawDate>,
    valid_until: Option<Spanned<RawDate>>,
    support_until: Option<Spanned<RawDate>>,
    emergency_seats: Option<Spanned<i64>>,
    emergency_days: Option<Spanned<i64>>,
    max_tenants: Option<Spanned<i64>>,
    limits: Spanned<BTreeMap<String, Spanned<i64>>>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum RawDate {
    Text(String),
    Toml(toml::value::Datetime),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSignature {
    algorithm: Spanned<String>,
    key_id: Spanned<String>,
    value: Spanned<String>,
}

struct CheckedSignature {
    key_id: String,
    value: [u8; 64],
}

/// A parsed and checked license file; `license.key_id` is empty until verified.
struct Document {
    license: SignedLicense,
    info: Option<toml::Table>,
    signature: Option<CheckedSignature>,
}

fn malformed(file: &str, line: Option<usize>, message: impl Into<String>) -> SignedError {
    SignedError::Malformed { file: file.to_string(), line, message: message.into() }
}

/// 1-based line of a byte offset.
fn line_at(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())].iter().filter(|&&b| b == b'\n').count() + 1
}

impl Document {
    fn parse(text: &str, file: &str) -> Result<Document, SignedError> {
        let at = |span: std::ops::Range<usize>, message: String| {
            malformed(file, Some(line_at(text, span.start)), message)
        };

        // A first, untyped pass names unknown tables and keys in our own words.
        let table: toml::Table = toml::from_str(text).map_err(|e| {
            let line = e.span().map(|s| line_at(text, s.start));
            malformed(file, line, format!("not a license file: {}", e.message().trim_end()))
        })?;
        Document::check_keys(&table, file)?;

        let raw: RawFile = toml::from_str(text).map_err(|e| {
            let line = e.span().map(|s| line_at(text, s.start));
            malformed(file, line, e.message().trim_end().to_string())
        })?;
        let l = raw.license;

        if *l.format.get_ref() != i64::from(FORMAT) {
            return Err(at(
                l.format.span(),
                format!(
                    "format {} is not supported: this seatgate reads format {FORMAT}; a newer seatgate \
                     may read it",
                    l.format.get_ref()
                ),
            ));
        }
        let licensee =
            check_text(&l.licensee, "licensee", MAX_LICENSEE_LEN).map_err(|m| at(l.licensee.span(), m))?;
        let license_id = check_text(&l.license_id, "license_id", MAX_LICENSE_ID_LEN)
            .map_err(|m| at(l.license_id.span(), m))?;
        let date = |raw: &Spanned<RawDate>, what: &str| -> Result<Date, SignedError> {
            let text = match raw.get_ref() {
                RawDate::Text(s) => s.clone(),
                RawDate::Toml(dt) => dt.to_string(),
            };
            Date::parse(&text).ok_or_else(|| {
                at(
                    raw.span(),
                    format!("{what} '{text}' is not a date; write it as YYYY-MM-DD, e.g. \"2027-12-31\""),
                )
            })
        };
        let issued = date(&l.issued, "issued")?;
        let valid_until = l.valid_until.as_ref().map(|d| date(d, "valid_until")).transpose()?;
        let support_until = l.support_until.as_ref().map(|d| date(d, "support_until")).transpose()?;
        if let Some(until) = valid_until
            && until < issued
        {
            let span = l.valid_until.as_ref().map_or(0..0, Spanned::span);
            return Err(at(span, format!("valid_until {until} is before issued {issued}")));
        }

        let count = |raw: &Spanned<i64>, what: &str, range: std::ops::RangeInclusive<u32>| {
            let n = *raw.get_ref();
            u32::try_from(n).ok().filter(|v| range.contains(v)).ok_or_else(|| {
                at(
                    raw.span(),
                    format!(
                        "{what} is {n}; it must be a whole number from {} to {}",
                        range.start(),
                        range.end()
                    ),
                )
            })
        };
        let emergency_seats =
            l.emergency_seats.as_ref().map(|n| count(n, "emergency_seats", 0..=u32::MAX)).transpose()?;
        let emergency_days = l
            .emergency_days
            .as_ref()
            .map(|n| count(n, "emergency_days", 1..=MAX_EMERGENCY_DAYS))
            .transpose()?;
        let max_tenants =
            l.max_tenants.as_ref().map(|n| count(n, "max_tenants", 0..=u32::MAX)).transpose()?;

        let raw_limits = l.limits.get_ref();
        if raw_limits.is_empty() {
            return Err(at(
                l.limits.span(),
                "[license.limits] lists no license type; a license must entitle at least one".to_string(),
            ));
        }
        if raw_limits.len() > MAX_LICENSE_TYPES {
            return Err(at(
                l.limits.span(),
                format!(
                    "[license.limits] lists {} types; at most {MAX_LICENSE_TYPES} are supported",
                    raw_limits.len()
                ),
            ));
        }
        let mut limits = BTreeMap::new();
        for (name, value) in raw_limits {
            let name_ok = !name.is_empty()
                && name.len() <= MAX_NAME_LEN
                && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
            if !name_ok {
                return Err(at(
                    value.span(),
                    format!(
                        "license type name '{}' is invalid: use 1 to {MAX_NAME_LEN} characters from \
                         A-Z a-z 0-9 _ - .",
                        name.escape_default()
                    ),
                ));
            }
            limits.insert(
                name.clone(),
                count(value, &format!("the limit of license type '{name}'"), 0..=u32::MAX)?,
            );
        }

        let signature = raw.signature.map(|s| Document::check_signature(&s, &at)).transpose()?;
        let description = raw
            .info
            .as_ref()
            .and_then(|info| info.get("description"))
            .and_then(|d| d.as_str())
            .map(str::to_string);

        let license = SignedLicense {
            licensee,
            license_id,
            issued,
            valid_until,
            support_until,
            emergency_seats: emergency_seats.unwrap_or(0),
            emergency_days: emergency_days.unwrap_or(DEFAULT_EMERGENCY_DAYS),
            max_tenants,
            limits,
            key_id: String::new(),
            description,
        };
        Ok(Document { license, info: raw.info, signature })
    }

    /// Refuses tables and keys the format does not define: a key under `[license]` that
    /// this version ignored would look signed without being signed.
    fn check_keys(table: &toml::Table, file: &str) -> Result<(), SignedError> {
        let Some(license) = table.get("license") else {
            let hint = if table.contains_key("licenses") {
                " (it looks like a seatgate configuration file, which has [licenses.NAME] tables)"
            } else {
                ""
            };
            return Err(malformed(
                file,
                None,
                format!("not a license file: it has no [license] table{hint}"),
            ));
        };
        for key in table.keys() {
            if !matches!(key.as_str(), "license" | "info" | "signature") {
                return Err(malformed(
                    file,
                    None,
                    format!(
                        "unknown top-level key or table '{key}': a license file has only [license], \
                         [license.limits], [info] and [signature]; put free text under [info]"
                    ),
                ));
            }
        }
        for (name, want) in [("license", "a table"), ("info", "a table"), ("signature", "a table")] {
            if table.get(name).is_some_and(|v| !v.is_table()) {
                return Err(malformed(file, None, format!("'{name}' must be {want} ([{name}])")));
            }
        }
        if let Some(license) = license.as_table() {
            for key in license.keys() {
                if !LICENSE_KEYS.contains(&key.as_str()) {
                    return Err(malformed(
                        file,
                        None,
                        format!(
                            "unknown key '{key}' under [license]: every value there is signed, so this \
                             seatgate refuses keys it does not know; put free text under [info] (known \
                             keys: {})",
                            LICENSE_KEYS.join(", ")
                        ),
                    ));
                }
            }
        }
        Ok(())
    }

    fn check_signature(
        raw: &RawSignature,
        at: &impl Fn(std::ops::Range<usize>, String) -> SignedError,
    ) -> Result<CheckedSignature, SignedError> {
        if raw.algorithm.get_ref() != "ed25519" {
            return Err(at(
                raw.algorithm.span(),
                format!(
                    "signature algorithm '{}' is not supported; it must be \"ed25519\"",
                    raw.algorithm.get_ref()
                ),
            ));
        }
        let key_id = raw.key_id.get_ref();
        if key_id.len() != 16 || !key_id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return Err(at(
                raw.key_id.span(),
                format!(
                    "signature key_id '{}' is not a key id (16 lowercase hex characters)",
                    key_id.escape_default()
                ),
            ));
        }
        let bad_value = || {
            at(
                raw.value.span(),
                "the signature value is not an Ed25519 signature: it must be the base64 of 64 bytes \
                 as `seatgate sign` writes it"
                    .to_string(),
            )
        };
        let bytes = STANDARD.decode(raw.value.get_ref().trim()).map_err(|_| bad_value())?;
        let value: [u8; 64] = bytes.as_slice().try_into().map_err(|_| bad_value())?;
        Ok(CheckedSignature { key_id: key_id.clone(), value })
    }
}

/// A signed text value: one line, no control characters, no surrounding spaces.
fn check_text(raw: &Spanned<String>, what: &str, max_len: usize) -> Result<String, String> {
    let s = raw.get_ref();
    if s.is_empty() {
        return Err(format!("{what} is empty"));
    }
    if s.len() > max_len {
        return Err(format!("{what} is {} bytes long; at most {max_len} are allowed", s.len()));
    }
    if s.chars().any(char::is_control) {
        return Err(format!("{what} contains a line break or another control character"));
    }
    if s.trim() != s {
        return Err(format!("{what} starts or ends with spaces"));
    }
    Ok(s.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    const UNSIGNED: &str = r#"# a comment
[license]
format = 1
licensee = "Acme Call Center"
license_id = "ACME-2026-0042"
issued = "2026-11-23"
valid_until = 2027-12-31
emergency_seats = 10
[license.limits]
users = 50
callcenter = 20
[info]
description = "test"
"#;

    fn key() -> VendorSigningKey {
        VendorSigningKey::from_seed(&[7; 32])
    }

    #[test]
    fn canonical_bytes_are_the_documented_lines() {
        let doc = Document::parse(UNSIGNED, "t").unwrap();
        let text = String::from_utf8(doc.license.canonical_bytes()).unwrap();
        assert_eq!(
            text,
            "seatgate-license-v1\nformat=1\nlicensee=Acme Call Center\nlicense_id=ACME-2026-0042\n\
             issued=2026-11-23\nvalid_until=2027-12-31\nsupport_until=none\nemergency_seats=10\n\
             emergency_days=30\nmax_tenants=none\nlimit.callcenter=20\nlimit.users=50\n"
        );
    }

    #[test]
    fn key_order_quoting_and_comments_do_not_change_the_bytes() {
        let other = "[license.limits]\ncallcenter = 20 # sorted anyway\nusers = 50\n[license]\n\
                     valid_until = \"2027-12-31\"\nemergency_days = 30\nissued = 2026-11-23\nformat = 1\n\
                     emergency_seats = 10\nlicense_id = 'ACME-2026-0042'\nlicensee = \"Acme Call Center\"\n";
        let a = Document::parse(UNSIGNED, "a").unwrap().license.canonical_bytes();
        let b = Document::parse(other, "b").unwrap().license.canonical_bytes();
        assert_eq!(a, b);
    }

    #[test]
    fn signing_twice_replaces_the_signature_table() {
        let once = sign_text(UNSIGNED, "t", &key()).unwrap();
        let twice = sign_text(&once, "t", &key()).unwrap();
        assert_eq!(once, twice);
        assert_eq!(twice.matches("[signature]").count(), 1);
        assert!(twice.starts_with("# a comment\n[license]\n"));
    }

    #[test]
    fn dates_round_trip_through_days() {
        for days in [-800_000, -1, 0, 1, 59, 60, 365, 10_957, 11_017, 20_000, 2_932_896] {
            assert_eq!(date_from_days_since_epoch(days).days_since_epoch(), days, "day {days}");
        }
        assert_eq!(date_from_days_since_epoch(0), Date { year: 1970, month: 1, day: 1 });
        assert_eq!(date_from_days_since_epoch(11_016), Date { year: 2000, month: 2, day: 29 });
        assert_eq!(date_of(UNIX_EPOCH + std::time::Duration::from_secs(86_400 * 2 - 1)).day, 2);
    }

    #[test]
    fn key_text_forms_round_trip() {
        let k = key();
        let public = VendorKey::parse(&format!("  {}\n", k.public_key().to_text())).unwrap();
        assert_eq!(public, k.public_key());
        assert_eq!(public.key_id().len(), 16);
        let secret = VendorSigningKey::parse(&k.to_text()).unwrap();
        assert_eq!(secret.key_id(), k.key_id());
        assert!(matches!(VendorKey::parse(&k.to_text()), Err(SignedError::BadKey { .. })));
        assert!(matches!(VendorSigningKey::parse(&public.to_text()), Err(SignedError::BadKey { .. })));
        assert!(!format!("{k:?}").contains(k.to_text().as_str()));
    }

    #[test]
    fn header_names() {
        assert_eq!(table_header_name("[signature]\n"), Some("signature"));
        assert_eq!(table_header_name("  [ signature ]  # old\n"), Some("signature"));
        assert_eq!(table_header_name("[[x]]"), Some("x"));
        assert_eq!(table_header_name("value = \"[signature]\""), None);
        assert_eq!(table_header_name("[a] b"), None);
    }

    #[test]
    fn compiled_in_keys_all_parse() {
        assert_eq!(compiled_in_keys().len(), COMPILED_IN_VENDOR_KEYS.len());
    }
}
