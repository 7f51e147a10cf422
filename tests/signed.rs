//! Vendor-signed license files: signing, verification, tampering, trust, expiry, and the
//! `seatgate` CLI end to end.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use seatgate::config::Date;
use seatgate::signed::{self, SignedError, SignedLicense, VendorKey, VendorSigningKey};

const UNSIGNED: &str = r#"# Issued by ExampleVendor. Comments, and anything under [info], are free: not signed.
[license]
format = 1
licensee = "Acme Call Center"
license_id = "ACME-2026-0042"
issued = "2026-11-23"
valid_until = "2027-12-31"      # the whole license ends after this day (UTC)
support_until = 2027-10-31
emergency_seats = 10
max_tenants = 100
[license.limits]
users = 50
callcenter = 20

[info]
description = "Acme, 50 users and 20 call-center operators"
sales = "jane@example.com"
"#;

fn date(text: &str) -> Date {
    Date::parse(text).unwrap()
}

fn vendor() -> VendorSigningKey {
    VendorSigningKey::from_seed(&[42; 32])
}

fn signed_text() -> String {
    signed::sign_text(UNSIGNED, "acme.toml", &vendor()).unwrap()
}

fn verify(text: &str, trusted: &[VendorKey]) -> Result<SignedLicense, SignedError> {
    SignedLicense::verify_text(text, "acme.license", trusted, date("2026-12-01"))
}

#[test]
fn sign_then_verify_gives_back_every_field() {
    let key = vendor();
    let license = verify(&signed_text(), &[key.public_key()]).unwrap();
    assert_eq!(license.licensee, "Acme Call Center");
    assert_eq!(license.license_id, "ACME-2026-0042");
    assert_eq!(license.issued, date("2026-11-23"));
    assert_eq!(license.valid_until, Some(date("2027-12-31")));
    assert_eq!(license.support_until, Some(date("2027-10-31")));
    assert_eq!(license.emergency_seats, 10);
    assert_eq!(license.emergency_days, 30, "the default when the file does not say");
    assert_eq!(license.max_tenants, Some(100));
    assert_eq!(license.limits.len(), 2);
    assert_eq!(license.limits["users"], 50);
    assert_eq!(license.limits["callcenter"], 20);
    assert_eq!(license.key_id, key.key_id());
    assert_eq!(license.description.as_deref(), Some("Acme, 50 users and 20 call-center operators"));
    // The contract for the engine: the configuration can lower an entitlement, never raise it.
    assert_eq!(license.effective_limit("users", 99), 50);
    assert_eq!(license.effective_limit("users", 10), 10);
    assert_eq!(license.effective_limit("chat", 99), 0, "a type the license does not list gets 0");
    assert_eq!(license.days_left(date("2027-12-30")), Some(1));
}

#[test]
fn signing_keeps_comments_and_info_and_appends_one_signature() {
    let text = signed_text();
    assert!(text.starts_with(UNSIGNED.trim_end()), "the author's text is kept as written");
    assert_eq!(text.matches("[signature]").count(), 1);
    assert!(text.contains("algorithm = \"ed25519\""));
    assert!(text.contains(&format!("key_id = \"{}\"", vendor().key_id())));
}

#[test]
fn one_changed_signed_value_breaks_the_signature() {
    let key = vendor().public_key();
    let text = signed_text();
    for (from, to) in [
        ("callcenter = 20", "callcenter = 29"),
        ("users = 50", "users = 500"),
        ("\"2027-12-31\"", "\"2029-12-31\""),
        ("emergency_seats = 10", "emergency_seats = 11"),
        ("Acme Call Center", "Acme Call Centre"),
        ("max_tenants = 100\n", ""),
        ("callcenter = 20\n", "callcenter = 20\nchat = 5\n"),
    ] {
        let tampered = text.replacen(from, to, 1);
        assert_ne!(tampered, text, "{from} was in the file");
        let err = verify(&tampered, std::slice::from_ref(&key)).unwrap_err();
        assert!(matches!(err, SignedError::BadSignature { .. }), "{from} -> {to}: {err}");
        let message = err.to_string();
        assert!(
            message.contains("acme.license") && message.contains("changed after it was signed"),
            "{message}"
        );
    }
}

#[test]
fn comments_info_whitespace_and_key_order_are_free() {
    let key = vendor().public_key();
    let text = signed_text()
        .replace("# Issued by ExampleVendor.", "# Reissued, see ticket 7.")
        .replace("jane@example.com", "joe@example.com")
        .replace("format = 1", "format    =    1   # still one")
        .replace("users = 50\ncallcenter = 20", "callcenter = 20\nusers = 50")
        .replace("[info]\n", "[info]\nnew_note = \"added after signing\"\n");
    let license = verify(&text, &[key]).unwrap();
    assert_eq!(license.limits["callcenter"], 20);
}

#[test]
fn a_key_that_is_not_trusted_is_named_with_the_trusted_ids() {
    let other = VendorSigningKey::generate().unwrap();
    let err = verify(&signed_text(), &[other.public_key()]).unwrap_err();
    match &err {
        SignedError::UntrustedKey { key_id, trusted, .. } => {
            assert_eq!(key_id, &vendor().key_id());
            assert_eq!(trusted, &vec![other.key_id()]);
        }
        e => panic!("expected UntrustedKey, got {e:?}"),
    }
    let message = err.to_string();
    assert!(message.contains(&vendor().key_id()) && message.contains(&other.key_id()), "{message}");

    // A file re-signed with another key is fine once that key is trusted too.
    let resigned = signed::sign_text(&signed_text(), "acme.license", &other).unwrap();
    assert_eq!(
        verify(&resigned, &[vendor().public_key(), other.public_key()]).unwrap().key_id,
        other.key_id()
    );
}

#[test]
fn no_trusted_key_says_how_to_provide_one() {
    let err = verify(&signed_text(), &[]).unwrap_err();
    assert!(matches!(err, SignedError::NoTrustedKey { .. }), "{err:?}");
    let message = err.to_string();
    assert!(message.contains("SEATGATE_VENDOR_KEYS") && message.contains("license_trust_key"), "{message}");
}

#[test]
fn expired_names_the_last_day_and_the_last_day_is_still_valid() {
    let key = vendor().public_key();
    let text = signed_text();
    let on_last_day =
        SignedLicense::verify_text(&text, "acme.license", std::slice::from_ref(&key), date("2027-12-31"));
    assert!(on_last_day.is_ok(), "{on_last_day:?}");
    let err =
        SignedLicense::verify_text(&text, "acme.license", std::slice::from_ref(&key), date("2028-01-01"))
            .unwrap_err();
    assert!(
        matches!(&err, SignedError::Expired { valid_until, .. } if *valid_until == date("2027-12-31")),
        "{err:?}"
    );
    let message = err.to_string();
    assert!(
        message.contains("license ACME-2026-0042") && message.contains("expired on 2027-12-31"),
        "{message}"
    );
    // The terms of an expired license can still be read, for a report.
    assert!(SignedLicense::verify_signature(&text, "acme.license", &[key]).is_ok());
}

#[test]
fn a_perpetual_license_never_expires() {
    let text = UNSIGNED
        .replace("valid_until = \"2027-12-31\"      # the whole license ends after this day (UTC)\n", "");
    let signed = signed::sign_text(&text, "perpetual.toml", &vendor()).unwrap();
    let license =
        SignedLicense::verify_text(&signed, "p", &[vendor().public_key()], date("2099-01-01")).unwrap();
    assert_eq!(license.valid_until, None);
}

#[test]
fn unknown_keys_and_tables_are_refused() {
    let key = vendor();
    // Unsigned-looking extras inside [license] would look signed: refused when signing...
    let extra = UNSIGNED.replace("format = 1\n", "format = 1\nunlimited = true\n");
    let err = signed::sign_text(&extra, "extra.toml", &key).unwrap_err();
    assert!(matches!(err, SignedError::Malformed { .. }), "{err:?}");
    assert!(err.to_string().contains("unknown key 'unlimited' under [license]"), "{err}");
    // ...and when verifying a signed file someone added one to.
    let tampered = signed_text().replace("format = 1\n", "format = 1\nunlimited = true\n");
    let err = verify(&tampered, &[key.public_key()]).unwrap_err();
    assert!(err.to_string().contains("unknown key 'unlimited'"), "{err}");

    let table = format!("{}\n[bonus]\nusers = 1000\n", signed_text());
    let err = verify(&table, &[key.public_key()]).unwrap_err();
    assert!(err.to_string().contains("unknown top-level key or table 'bonus'"), "{err}");
}

#[test]
fn a_config_file_or_garbage_is_not_a_license_file() {
    let key = vendor().public_key();
    let err = verify("[licenses.users]\nlimit = 5\n", std::slice::from_ref(&key)).unwrap_err();
    assert!(
        err.to_string().contains("no [license] table") && err.to_string().contains("configuration"),
        "{err}"
    );
    let err = verify("this is = = not toml", &[key]).unwrap_err();
    assert!(matches!(err, SignedError::Malformed { line: Some(1), .. }), "{err:?}");
}

#[test]
fn an_unsigned_file_is_refused() {
    let err = verify(UNSIGNED, &[vendor().public_key()]).unwrap_err();
    assert!(matches!(err, SignedError::Unsigned { .. }), "{err:?}");
    assert!(err.to_string().contains("[signature]"), "{err}");
}

#[test]
fn a_malformed_signature_encoding_is_a_clear_error() {
    let key = vendor().public_key();
    let text = signed_text();
    let value_line = text.lines().find(|l| l.starts_with("value = ")).unwrap().to_string();
    for bad in ["value = \"not base64 at all!\"", "value = \"AAAA\""] {
        let err = verify(&text.replace(&value_line, bad), std::slice::from_ref(&key)).unwrap_err();
        assert!(matches!(err, SignedError::Malformed { line: Some(_), .. }), "{err:?}");
        assert!(err.to_string().contains("base64 of 64 bytes"), "{err}");
    }
    let err = verify(&text.replace("\"ed25519\"", "\"rsa\""), std::slice::from_ref(&key)).unwrap_err();
    assert!(err.to_string().contains("algorithm 'rsa' is not supported"), "{err}");
    let err = verify(&text.replace(&vendor().key_id(), "XYZ"), &[key]).unwrap_err();
    assert!(err.to_string().contains("not a key id"), "{err}");
}

#[test]
fn bad_field_values_name_the_field_and_line() {
    let key = vendor();
    let cases = [
        ("format = 1", "format = 2", "format 2 is not supported"),
        ("issued = \"2026-11-23\"", "issued = \"2026-02-30\"", "issued '2026-02-30' is not a date"),
        ("valid_until = \"2027-12-31\"", "valid_until = \"2025-01-01\"", "before issued"),
        ("users = 50", "users = -1", "the limit of license type 'users' is -1"),
        ("emergency_seats = 10", "emergency_seats = 10\nemergency_days = 0", "emergency_days is 0"),
        ("licensee = \"Acme Call Center\"", "licensee = \"Acme\\nEvil\"", "line break"),
        ("users = 50\ncallcenter = 20\n", "", "lists no license type"),
        ("users = 50", "\"bad name\" = 50", "license type name 'bad name' is invalid"),
    ];
    for (from, to, expected) in cases {
        let text = UNSIGNED.replacen(from, to, 1);
        assert_ne!(text, UNSIGNED, "{from}");
        let err = signed::sign_text(&text, "acme.toml", &key).unwrap_err();
        assert!(matches!(err, SignedError::Malformed { .. }), "{to}: {err:?}");
        let message = err.to_string();
        assert!(
            message.contains(expected) && message.starts_with("license file acme.toml"),
            "{to}: {message}"
        );
    }
}

#[test]
fn public_key_text_form_round_trips_and_refuses_secrets() {
    let key = vendor();
    let public = key.public_key();
    assert!(public.to_text().starts_with("seatgate-ed25519-public:"));
    assert_eq!(VendorKey::parse(&format!("\n  {}  \n", public.to_text())).unwrap(), public);
    let err = VendorKey::parse(&key.to_text()).unwrap_err();
    assert!(err.to_string().contains("secret"), "{err}");
    assert!(!err.to_string().contains(key.to_text().as_str()), "a secret is never echoed");
    assert!(VendorKey::parse("seatgate-ed25519-public:AAAA").is_err());
    assert!(VendorKey::parse("").is_err());
    // The SHA-256 prefix, so the same key always has the same id.
    assert_eq!(public.key_id().len(), 16);
    assert_eq!(public.key_id(), VendorKey::parse(&public.to_text()).unwrap().key_id());
}

#[test]
fn keys_built_without_seatgate_vendor_keys_are_none_or_valid() {
    // Whatever the build was given, every compiled-in key is a usable key.
    for key in signed::compiled_in_keys() {
        assert_eq!(VendorKey::parse(&key.to_text()).unwrap(), key);
    }
}

// ---------------------------------------------------------------------------------------
// The CLI, end to end
// ---------------------------------------------------------------------------------------

/// A private temporary folder, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let p = std::env::temp_dir().join(format!("seatgate-signed-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn cli(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_seatgate")).args(args).current_dir(dir).output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn cli_keygen_sign_verify_and_tamper() {
    let dir = TempDir::new("cli");
    std::fs::write(dir.path().join("acme.toml"), UNSIGNED).unwrap();

    let out = cli(dir.path(), &["keygen", "--out", "vendor"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let public = VendorKey::load(&dir.path().join("vendor.pub")).unwrap();
    assert!(stdout.contains(&format!("key id: {}", public.key_id())), "{stdout}");
    assert!(stdout.contains(&format!("SEATGATE_VENDOR_KEYS={}", public.to_text())), "{stdout}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(dir.path().join("vendor.key")).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "the secret key is private to its owner");
    }
    let secret_before = std::fs::read(dir.path().join("vendor.key")).unwrap();
    let again = cli(dir.path(), &["keygen", "--out", "vendor"]);
    assert_eq!(again.status.code(), Some(1));
    assert!(text(&again.stderr).contains("already exists"), "{}", text(&again.stderr));
    assert_eq!(std::fs::read(dir.path().join("vendor.key")).unwrap(), secret_before, "never overwritten");

    let out = cli(dir.path(), &["sign", "--key", "vendor.key", "acme.toml", "-o", "acme.license"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    // Without -o the signed file goes to stdout, and is the same.
    let to_stdout = cli(dir.path(), &["sign", "--key", "vendor.key", "acme.toml"]);
    assert_eq!(to_stdout.status.code(), Some(0));
    assert_eq!(text(&to_stdout.stdout), std::fs::read_to_string(dir.path().join("acme.license")).unwrap());

    let out = cli(dir.path(), &["verify", "--pub", "vendor.pub", "acme.license", "--today", "2026-12-01"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    for expected in [
        "Acme Call Center",
        "ACME-2026-0042",
        "2027-12-31 (395 days left)",
        "2027-10-31 (334 days left)",
        "up to 10 extra seats for 30 days",
        "callcenter  20",
        "users       50",
        &format!("signature OK (key id {})", public.key_id()),
    ] {
        assert!(stdout.contains(expected), "missing '{expected}' in:\n{stdout}");
    }

    let signed = std::fs::read_to_string(dir.path().join("acme.license")).unwrap();
    std::fs::write(dir.path().join("tampered.license"), signed.replace("callcenter = 20", "callcenter = 29"))
        .unwrap();
    let out =
        cli(dir.path(), &["verify", "--pub", "vendor.pub", "tampered.license", "--today", "2026-12-01"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("signature does not match"), "{}", text(&out.stderr));
    assert!(!text(&out.stdout).contains("signature OK"));

    let out = cli(dir.path(), &["verify", "--pub", "vendor.pub", "acme.license", "--today", "2028-01-01"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("expired on 2027-12-31"), "{}", text(&out.stderr));
}

#[test]
fn cli_usage_errors_exit_2() {
    let dir = TempDir::new("usage");
    for args in [
        &[][..],
        &["frobnicate"][..],
        &["keygen"][..],
        &["sign", "x.toml"][..],
        &["verify"][..],
        &["verify", "--today", "yesterday", "x.license"][..],
        &["verify", "--bogus", "x"][..],
    ] {
        let out = cli(dir.path(), args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", text(&out.stderr));
        assert!(text(&out.stderr).to_lowercase().contains("usage"), "{args:?}: {}", text(&out.stderr));
    }
    let help = cli(dir.path(), &["--help"]);
    assert_eq!(help.status.code(), Some(0));
    assert!(text(&help.stdout).contains("seatgate keygen --out PREFIX"));
    let help = cli(dir.path(), &["verify", "--help"]);
    assert_eq!(help.status.code(), Some(0));
    assert!(text(&help.stdout).contains("--today"));
}
