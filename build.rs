//! Generates include/seatgate.h from src/ffi.rs with cbindgen, and
//! `$OUT_DIR/vendor_keys.rs` (the vendor public keys compiled in from
//! `SEATGATE_VENDOR_KEYS`, see docs/licenses.md).
//!
//! Parsing only src/ffi.rs (not `with_crate`, which runs `cargo metadata`) keeps the
//! build offline-safe. With `SEATGATE_FROZEN_HEADER=1` (as `make test` and CI set it)
//! the committed header is left untouched and the drift test compares it with the
//! freshly generated copy in OUT_DIR.

use std::env;
use std::fmt::Write as _;
use std::path::PathBuf;

#[path = "src/signed/key_text.rs"]
mod key_text;

fn main() {
    write_vendor_keys();
    set_soname();

    println!("cargo:rerun-if-changed=src/ffi.rs");
    println!("cargo:rerun-if-changed=cbindgen.toml");
    println!("cargo:rerun-if-env-changed=SEATGATE_FROZEN_HEADER");

    let root = PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    let version = env::var("CARGO_PKG_VERSION").expect("CARGO_PKG_VERSION");
    let part = |name: &str| env::var(name).expect("version part");
    let version_macros = format!(
        "#define SEATGATE_VERSION \"{version}\"\n#define SEATGATE_VERSION_MAJOR {}\n#define SEATGATE_VERSION_MINOR {}\n#define SEATGATE_VERSION_PATCH {}",
        part("CARGO_PKG_VERSION_MAJOR"),
        part("CARGO_PKG_VERSION_MINOR"),
        part("CARGO_PKG_VERSION_PATCH"),
    );

    let config = cbindgen::Config::from_file(root.join("cbindgen.toml")).expect("cbindgen.toml");
    let bindings = cbindgen::Builder::new()
        .with_config(config)
        .with_src(root.join("src/ffi.rs"))
        .with_after_include(version_macros)
        .generate()
        .expect("cbindgen could not generate the header");

    let out = PathBuf::from(env::var("OUT_DIR").expect("OUT_DIR")).join("seatgate.h");
    bindings.write_to_file(&out);
    if env::var("SEATGATE_FROZEN_HEADER").map_or(true, |v| v.is_empty() || v == "0") {
        bindings.write_to_file(root.join("include/seatgate.h"));
    }
}

/// Gives `libseatgate.so` a SONAME by cargo-c's rule (`sover` in cargo-c's src/build.rs):
/// 0.0.z keeps all three numbers, 0.y.z keeps `0.y`, x.y.z (x >= 1) keeps `x`. Under
/// semver a 0.y release may break the ABI, so 0.1.0 is `libseatgate.so.0.1` and 0.2.0
/// will be a new SONAME that old binaries never load by mistake. `make lib` adds the
/// `libseatgate.so.0.1` link beside the build-tree library, and `make install` names
/// the file `libseatgate.so.0.1.0` with both links, as cargo-c installs it.
///
/// The exports need no version script of ours: for a cdylib rustc hands the linker its
/// own, `{ global: <each #[no_mangle] extern fn>; local: *; };`, so every other symbol
/// is already local. A second script adds nothing: GNU ld refuses it ("anonymous version
/// tag cannot be combined with other version tags") and rust-lld (rustc's default
/// linker here) merges it under rustc's. tests/install.sh checks that `nm -D` lists
/// exactly the functions the header declares, all `license_*`.
fn set_soname() {
    let target_os = env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    if !matches!(target_os.as_str(), "linux" | "freebsd" | "netbsd" | "openbsd" | "dragonfly" | "illumos") {
        return;
    }
    let part = |name: &str| env::var(name).expect("version part");
    let (major, minor, patch) =
        (part("CARGO_PKG_VERSION_MAJOR"), part("CARGO_PKG_VERSION_MINOR"), part("CARGO_PKG_VERSION_PATCH"));
    let sover = match (major.as_str(), minor.as_str()) {
        ("0", "0") => format!("0.0.{patch}"),
        ("0", _) => format!("0.{minor}"),
        _ => major,
    };
    println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libseatgate.so.{sover}");
}

/// Writes `$OUT_DIR/vendor_keys.rs` from `SEATGATE_VENDOR_KEYS`: public keys in their text
/// form (`seatgate-ed25519-public:<base64>`), separated by commas or whitespace. Unset or
/// empty means no compiled-in key. A key that does not parse fails the build: a typo here
/// would otherwise ship a library that trusts no license at all.
fn write_vendor_keys() {
    println!("cargo:rerun-if-env-changed=SEATGATE_VENDOR_KEYS");
    println!("cargo:rerun-if-changed=src/signed/key_text.rs");

    let spec = match env::var("SEATGATE_VENDOR_KEYS") {
        Ok(spec) => spec,
        Err(env::VarError::NotPresent) => String::new(),
        Err(env::VarError::NotUnicode(_)) => {
            eprintln!("error: SEATGATE_VENDOR_KEYS is not valid UTF-8; it must hold seatgate public keys");
            std::process::exit(1);
        }
    };
    let mut keys: Vec<[u8; 32]> = Vec::new();
    let texts = spec.split(|c: char| c == ',' || c.is_whitespace()).filter(|t| !t.is_empty());
    for (index, text) in texts.enumerate() {
        match key_text::decode_public_key(text) {
            Ok(bytes) if keys.contains(&bytes) => {}
            Ok(bytes) => keys.push(bytes),
            Err(why) => {
                eprintln!(
                    "error: SEATGATE_VENDOR_KEYS: key number {} is refused: {why}.\n\
                     Expected public keys as `seatgate keygen` writes them in PREFIX.pub \
                     ({}<base64>), separated by commas or spaces.",
                    index + 1,
                    key_text::PUBLIC_PREFIX
                );
                std::process::exit(1);
            }
        }
    }

    let mut code = String::from(
        "// Generated by build.rs from SEATGATE_VENDOR_KEYS at build time. Do not edit.\n\
         const COMPILED_IN_VENDOR_KEYS: &[[u8; 32]] = &[\n",
    );
    for key in &keys {
        code.push_str("    [");
        for (i, byte) in key.iter().enumerate() {
            let sep = if i == 0 { "" } else { ", " };
            write!(code, "{sep}0x{byte:02x}").expect("writing to a String");
        }
        code.push_str("],\n");
    }
    code.push_str("];\n");
    let out = PathBuf::from(env::var("OUT_DIR").expect("OUT_DIR")).join("vendor_keys.rs");
    std::fs::write(&out, code).expect("cannot write vendor_keys.rs into OUT_DIR");
}
