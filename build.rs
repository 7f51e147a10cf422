//! Generates include/seatgate.h from src/ffi.rs with cbindgen.
//!
//! Parsing only src/ffi.rs (not `with_crate`, which runs `cargo metadata`) keeps the
//! build offline-safe. With `SEATGATE_FROZEN_HEADER=1` (as `make test` and CI set it)
//! the committed header is left untouched and the drift test compares it with the
//! freshly generated copy in OUT_DIR.

use std::env;
use std::path::PathBuf;

fn main() {
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
