//! The committed include/seatgate.h must be exactly what cbindgen generates from
//! src/ffi.rs. build.rs writes a fresh copy into OUT_DIR on every build; under
//! `SEATGATE_FROZEN_HEADER=1` (make test, CI) it leaves the committed one alone, so
//! any difference here is a header someone forgot to regenerate (`make header`).

#[test]
fn committed_header_matches_generated() {
    let generated = include_str!(concat!(env!("OUT_DIR"), "/seatgate.h"));
    let committed_path = concat!(env!("CARGO_MANIFEST_DIR"), "/include/seatgate.h");
    let committed = std::fs::read_to_string(committed_path).expect("include/seatgate.h is missing");
    if committed != generated {
        let first_diff = committed
            .lines()
            .zip(generated.lines())
            .position(|(a, b)| a != b)
            .unwrap_or_else(|| committed.lines().count().min(generated.lines().count()));
        panic!(
            "include/seatgate.h is out of date (first difference at line {}): run `make header` and commit it\n committed: {:?}\n generated: {:?}",
            first_diff + 1,
            committed.lines().nth(first_diff),
            generated.lines().nth(first_diff)
        );
    }
}

#[test]
fn header_version_matches_cargo() {
    let header = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/include/seatgate.h")).unwrap();
    let expected = format!("#define SEATGATE_VERSION \"{}\"", env!("CARGO_PKG_VERSION"));
    assert!(header.contains(&expected), "header lacks {expected}");
    let version = unsafe { std::ffi::CStr::from_ptr(seatgate::ffi::license_version()) };
    assert_eq!(version.to_str().unwrap(), env!("CARGO_PKG_VERSION"));
}

/// Every exported function is documented in the header with its return codes and its
/// thread safety, because a C programmer reads only the header.
#[test]
fn every_function_documents_codes_and_thread_safety() {
    let header = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/include/seatgate.h")).unwrap();
    let mut doc = String::new();
    let mut checked = 0;
    for line in header.lines() {
        let t = line.trim_start();
        if t.starts_with("/**") || t.starts_with('*') {
            doc.push_str(t);
            doc.push('\n');
            continue;
        }
        if let Some(pos) = t.find("license_").filter(|_| t.contains('(') && !t.starts_with('#')) {
            let name: String = t[pos..].chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
            assert!(
                doc.contains("hread safety") || doc.contains("hread-safe"),
                "{name}: no thread-safety note"
            );
            let returns_status = t.starts_with("int32_t");
            if returns_status {
                assert!(
                    doc.contains("LICENSE_OK") || doc.contains("Returns"),
                    "{name}: return codes not documented"
                );
            }
            checked += 1;
        }
        doc.clear();
    }
    assert!(checked >= 12, "only {checked} functions found in the header");
}
