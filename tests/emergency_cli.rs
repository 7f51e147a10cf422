//! The CLI equivalent of `license_emergency_activate`: `seatgate emergency activate`
//! opens the window in the state file, and a host already running on the same config
//! follows it without a restart.

use std::process::Command;

use seatgate::{Engine, Request};

fn cli(args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_seatgate")).args(args).output().expect("run seatgate");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.code().unwrap_or(-1), text)
}

#[test]
fn the_cli_opens_the_window_once_and_a_running_host_follows() {
    let dir = std::env::temp_dir().join(format!("seatgate-emergency-cli-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("seats.toml");
    std::fs::write(
        &config,
        "state_dir = \".\"\n[licenses.users]\nlimit = 1\n[emergency]\nseats = 3\nduration = \"2h\"\n",
    )
    .unwrap();
    let config = config.to_str().unwrap();
    let host = Engine::from_file(config).unwrap();
    host.try_acquire(&Request::new("a", "users")).unwrap();
    assert!(host.try_acquire(&Request::new("b", "users")).is_err());

    let (code, out) = cli(&["emergency", "status", config]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("never used") && out.contains("can be activated"), "{out}");
    let (code, out) = cli(&["emergency", "activate", config]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("emergency window: open") && out.contains("3 extra seats of users"), "{out}");
    let (code, out) = cli(&["emergency", "activate", config]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("already open"), "{out}");

    // The host notices the state file's change on its next policy run.
    host.reap();
    assert_eq!(host.usage_of("users").unwrap().limit, 4);
    host.try_acquire(&Request::new("b", "users")).unwrap();

    let (code, out) = cli(&["emergency", "activate"]);
    assert_eq!(code, 2, "{out}");
    let (code, out) = cli(&["emergency", "activate", "/nonexistent/seats.toml"]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("/nonexistent/seats.toml"), "{out}");
    let _ = std::fs::remove_dir_all(&dir);
}
