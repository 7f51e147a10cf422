//! Config errors name the file, the line and the problem; lints warn without failing.

use seatgate::{Config, ConfigError};

fn err(text: &str) -> ConfigError {
    Config::from_toml_str(text, "seats.toml").expect_err("config should be rejected")
}

fn assert_err(text: &str, line: usize, needle: &str) {
    let e = err(text);
    assert_eq!(e.file, "seats.toml");
    assert_eq!(e.line, line, "wrong line for {needle:?}: {e}");
    assert!(e.message.contains(needle), "message {:?} lacks {needle:?}", e.message);
    assert!(e.to_string().starts_with(&format!("seats.toml:{line}:")), "{e}");
}

#[test]
fn the_contract_example_loads() {
    let text = r#"
[licensee]
name = "ACME Call Center"
support_until = "2027-10-31"

[licenses.user]
limit = 99
[licenses.callcenter]
limit = 8
description = "Call-center operator"
[licenses.crm]
limit = 5
[licenses.chat]
limit = 0
[licenses.extension]
limit = 20
[licenses.integration_1c]
limit = 2
count = "session"

[profiles.operator]
consumes = ["user", "callcenter", "extension"]
[profiles.admin]
consumes = ["user", "crm"]
[profiles.chat_team]
consumes = ["chat"]
"#;
    let c = Config::from_toml_str(text, "seats.toml").unwrap();
    let names: Vec<&str> = c.licenses.iter().map(|l| &*l.name).collect();
    assert_eq!(
        names,
        ["user", "callcenter", "crm", "chat", "extension", "integration_1c"],
        "file order kept"
    );
    assert_eq!(c.licenses[5].count, seatgate::CountMode::Session);
    assert_eq!(c.licenses[0].count, seatgate::CountMode::User);
    assert_eq!(c.licensee.name.as_deref(), Some("ACME Call Center"));
    assert_eq!(c.licensee.support_until.unwrap().to_string(), "2027-10-31");
    let op = c.resolve_name("operator").unwrap();
    assert_eq!(
        c.type_names(op).iter().map(|n| &**n).collect::<Vec<_>>(),
        ["user", "callcenter", "extension"]
    );
    // The product's common case is flagged at load, on the line that causes it.
    let chat = c.lints.iter().find(|l| l.code == "zero-limit-consumed").expect("zero-limit lint");
    assert!(chat.message.contains("'chat_team'") && chat.message.contains("'chat'"), "{}", chat.message);
    assert_eq!(chat.line, 26);
    assert_eq!(chat.to_string(), format!("seats.toml:26: warning[zero-limit-consumed]: {}", chat.message));
}

#[test]
fn unknown_keys_are_errors_with_lines() {
    assert_err("[licenses.user]\nlimit = 1\nlimt = 2\n", 3, "unknown field `limt`");
    assert_err("[licenses.user]\nlimit = 1\n[licensee]\nnmae = \"x\"\n", 4, "unknown field `nmae`");
    assert_err("[licences.user]\nlimit = 1\n", 1, "unknown field `licences`");
    assert_err(
        "[licenses.user]\nlimit = 1\n[profiles.p]\nconsumes = [\"user\"]\nconsume = []\n",
        5,
        "unknown field",
    );
}

#[test]
fn unknown_license_in_consumes_is_an_error() {
    assert_err(
        "[licenses.user]\nlimit = 1\n\n[profiles.operator]\nconsumes = [\"user\", \"callcentre\"]\n",
        5,
        "unknown license type 'callcentre'",
    );
}

#[test]
fn bad_limits_are_errors() {
    assert_err("[licenses.user]\nlimit = -1\n", 2, "negative");
    assert_err("[licenses.user]\nlimit = 2.5\n", 2, "whole number");
    assert_err("[licenses.user]\nlimit = \"10\"\n", 2, "whole number");
    assert_err("[licenses.user]\nlimit = 5000000000\n", 2, "too large");
    assert_err("[licenses.user]\ndescription = \"no limit\"\n", 1, "missing field `limit`");
}

#[test]
fn duplicate_names_are_errors() {
    assert_err("[licenses.user]\nlimit = 1\n[licenses.user]\nlimit = 2\n", 3, "duplicate key");
    assert_err("[licenses.user]\nlimit = 1\nlimit = 2\n", 3, "duplicate key");
    assert_err(
        "[licenses.user]\nlimit = 1\n[profiles.p]\nconsumes = [\"user\", \"user\"]\n",
        4,
        "lists license type 'user' twice",
    );
    assert_err(
        "[licenses.chat]\nlimit = 1\n[profiles.chat]\nconsumes = [\"chat\"]\n",
        3,
        "same name as license type 'chat'",
    );
}

#[test]
fn other_errors() {
    assert_err("[licenses.user]\nlimit = 1\ncount = \"seat\"\n", 3, "unknown variant `seat`");
    assert_err("[licenses.\"two words\"]\nlimit = 1\n", 1, "invalid");
    assert_err("[licenses.user]\nlimit = 1\n[licensee]\nsupport_until = \"2027-02-30\"\n", 4, "not a date");
    assert_err("[licenses.user\nlimit = 1\n", 1, "");
    let too_many: String = (0..65).map(|i| format!("[licenses.t{i}]\nlimit = 1\n")).collect();
    assert_err(&too_many, 129, "too many license types");
}

#[test]
fn unreadable_file_is_a_config_error() {
    let e = Config::from_file("/nonexistent/seats.toml").unwrap_err();
    assert_eq!(e.line, 0);
    assert!(e.to_string().starts_with("/nonexistent/seats.toml: cannot read config file"), "{e}");
}

#[test]
fn lints_a_careful_admin_wants() {
    let c = Config::from_toml_str(
        r#"
[licenses.user]
limit = 10
[licenses.callcenter]
limit = 50
[licenses.fax]
limit = 3
[licenses.chat]
limit = 0

[profiles.operator]
consumes = ["user", "callcenter"]
[profiles.agent]
consumes = ["callcenter", "user"]
[profiles.nothing]
consumes = []
[profiles.chatters]
consumes = ["chat"]
"#,
        "seats.toml",
    )
    .unwrap();
    let codes: Vec<(&str, usize)> = c.lints.iter().map(|l| (l.code, l.line)).collect();
    assert!(codes.contains(&("unreachable-seats", 4)), "{codes:?}"); // callcenter 50 capped by user 10
    assert!(codes.contains(&("unused-license", 6)), "{codes:?}"); // fax
    assert!(codes.contains(&("duplicate-profile", 13)), "{codes:?}"); // agent == operator
    assert!(codes.contains(&("empty-profile", 15)), "{codes:?}");
    assert!(codes.contains(&("zero-limit-consumed", 18)), "{codes:?}");
    let lines: Vec<usize> = c.lints.iter().map(|l| l.line).collect();
    assert!(lines.windows(2).all(|w| w[0] <= w[1]), "lints sorted by line: {lines:?}");
    let unreachable = c.lints.iter().find(|l| l.code == "unreachable-seats").unwrap();
    assert!(unreachable.message.contains("at most 10 'callcenter' seats"), "{}", unreachable.message);
}

#[test]
fn a_clean_config_has_no_lints() {
    let c = Config::from_toml_str(
        "[licenses.user]\nlimit = 10\n[licenses.crm]\nlimit = 2\n[profiles.admin]\nconsumes = [\"user\", \"crm\"]\n[profiles.staff]\nconsumes = [\"user\"]\n",
        "seats.toml",
    )
    .unwrap();
    assert!(c.lints.is_empty(), "{:?}", c.lints);
}

const TYPES: &str = "[licenses.extension]\nlimit = 2\n";

#[test]
fn backend_defaults_to_memory_and_each_kind_parses() {
    use seatgate::config::{BackendConfig, OnBackendError};
    assert_eq!(Config::from_toml_str(TYPES, "seats.toml").unwrap().backend, BackendConfig::Memory);
    let shm = Config::from_toml_str(
        &format!("[backend]\nkind = \"shm\"\npath = \"table\"\ncapacity = 500\n{TYPES}"),
        "/etc/seatgate/seats.toml",
    )
    .unwrap();
    match shm.backend {
        BackendConfig::Shm(s) => {
            assert_eq!(s.path, std::path::Path::new("/etc/seatgate/table"), "relative to the config file");
            assert_eq!(s.capacity, 500);
            assert!(s.reclaim_dead_owners);
        }
        other => panic!("{other:?}"),
    }
    let redis = Config::from_toml_str(
        &format!(
            "[backend]\nkind = \"redis\"\nurl = \"redis://127.0.0.1:6380\"\nprefix = \"acme\"\nnode = \"pbx-1\"\ntimeout = \"50ms\"\non_backend_error = \"allow_local\"\nlocal_share = 50\n{TYPES}"
        ),
        "seats.toml",
    )
    .unwrap();
    match redis.backend {
        BackendConfig::Redis(r) => {
            assert_eq!(r.url, "redis://127.0.0.1:6380");
            assert_eq!(r.prefix, "acme");
            assert_eq!(r.node.as_deref(), Some("pbx-1"));
            assert_eq!(r.timeout, std::time::Duration::from_millis(50));
            assert_eq!(r.on_backend_error, OnBackendError::AllowLocal);
            assert_eq!(r.local_share, 50);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn backend_mistakes_are_refused_with_their_line() {
    assert_err(
        "[backend]\nkind = \"disk\"\n",
        2,
        "kind must be \"memory\", \"shm\" or \"redis\", not 'disk'",
    );
    assert_err("[backend]\nkind = \"shm\"\n", 2, "needs path");
    assert_err("[backend]\nkind = \"shm\"\npath = \"/dev/shm/x\"\ncapacity = 0\n", 4, "capacity must be");
    assert_err(
        "[backend]\nkind = \"shm\"\npath = \"/dev/shm/x\"\ncapacity = 99999999\n",
        4,
        "capacity must be",
    );
    assert_err(
        "[backend]\nkind = \"shm\"\npath = \"/dev/shm/x\"\nurl = \"redis://127.0.0.1\"\n",
        4,
        "option 'url' belongs to kind = \"redis\", but this backend is kind = \"shm\"",
    );
    assert_err(
        "[backend]\nkind = \"memory\"\ncapacity = 5\n",
        3,
        "option 'capacity' belongs to kind = \"shm\"",
    );
    assert_err("[backend]\nkind = \"redis\"\nurl = \"http://x\"\n", 3, "is not a Redis URL");
    assert_err(
        "[backend]\nkind = \"redis\"\non_backend_error = \"pray\"\n",
        3,
        "\"deny\" or \"allow_local\"",
    );
    assert_err("[backend]\nkind = \"redis\"\non_backend_error = \"allow_local\"\n", 2, "needs local_share");
    assert_err("[backend]\nkind = \"redis\"\nlocal_share = 50\n", 3, "only applies with on_backend_error");
    assert_err(
        "[backend]\nkind = \"redis\"\non_backend_error = \"allow_local\"\nlocal_share = 0\n",
        4,
        "use on_backend_error = \"deny\" instead",
    );
    assert_err("[backend]\nkind = \"redis\"\ntimeout = \"soon\"\n", 3, "is not a duration");
    assert_err("[backend]\nkind = \"redis\"\nprefix = \"a b\"\n", 3, "without spaces");
    assert_err("[backend]\nkind = \"shm\"\npath = \"/x\"\nflavour = 1\n", 4, "unknown field `flavour`");
    // What shm cannot keep is refused at load, never silently different.
    let lingering: String =
        (0..9).map(|i| format!("[licenses.t{i}]\nlimit = 1\nlinger = \"5s\"\n")).collect();
    assert_err(
        &format!("[backend]\nkind = \"shm\"\npath = \"/x\"\n{lingering}"),
        2,
        "at most 8 lingering seats per user, but 9 license types have a linger window",
    );
}
