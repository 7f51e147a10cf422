//! The `seatgate` command's admin side: `check` (exit codes 0 / 1 / 2 / 3 with the lints
//! and errors it prints) and `report` (reads a live shm or redis table without changing
//! it; 1 when there is no table to read, 3 for an invalid config, 4 for a memory table).
//! The Prometheus output is parsed with the Prometheus project's own parser in
//! tests/prometheus_parse.py (`make test-cli`).

#[path = "support/redis_server.rs"]
mod redis_server;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use seatgate::{Engine, Page, Request};

const CLI: &str = env!("CARGO_BIN_EXE_seatgate");

fn seatgate(args: &[&str]) -> Output {
    Command::new(CLI).args(args).env_remove("SEATGATE_CONFIG").output().expect("run the seatgate command")
}

fn code(out: &Output) -> i32 {
    out.status.code().expect("seatgate exited by a signal")
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A private folder, removed on drop; shm tables go under /dev/shm when it exists.
struct Dir(PathBuf);

impl Dir {
    fn new(name: &str) -> Dir {
        let path = std::env::temp_dir().join(format!("seatgate-cli-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).unwrap();
        Dir(path)
    }

    fn write(&self, file: &str, text: &str) -> String {
        let path = self.0.join(file);
        std::fs::write(&path, text).unwrap();
        path.display().to_string()
    }

    /// A table path that does not exist yet (removed again on drop).
    fn table(&self, name: &str) -> PathBuf {
        let base = if Path::new("/dev/shm").is_dir() { PathBuf::from("/dev/shm") } else { self.0.clone() };
        let path = base.join(format!("{}-{name}", self.table_prefix()));
        let _ = std::fs::remove_file(&path);
        path
    }

    /// Tables of this folder (and their tenants' `@NAME` files) start with this.
    fn table_prefix(&self) -> String {
        self.0.file_name().unwrap().to_string_lossy().into_owned()
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
        if let Ok(entries) = std::fs::read_dir("/dev/shm") {
            let mine = format!("{}-", self.table_prefix());
            for e in entries.flatten() {
                if e.file_name().to_string_lossy().starts_with(&mine) {
                    let _ = std::fs::remove_file(e.path());
                }
            }
        }
    }
}

const CLEAN: &str = "\
[licenses.user]
limit = 10
[licenses.callcenter]
limit = 3
description = \"Call-center operator\"
[profiles.operator]
consumes = [\"user\", \"callcenter\"]
[profiles.staff]
consumes = [\"user\"]
";

#[test]
fn check_says_zero_for_a_clean_config() {
    let dir = Dir::new("check-clean");
    let path = dir.write("seats.toml", CLEAN);
    let out = seatgate(&["check", &path]);
    assert_eq!(code(&out), 0, "stdout: {}\nstderr: {}", stdout(&out), stderr(&out));
    let text = stdout(&out);
    assert!(text.contains(&format!("{path}: valid: 2 license types, 2 profiles")), "{text}");
    assert!(text.contains("no warnings"), "{text}");
}

#[test]
fn check_says_one_for_lints_and_prints_each_with_its_line() {
    let dir = Dir::new("check-lints");
    let path = dir.write(
        "seats.toml",
        &format!("{CLEAN}[licenses.chat]\nlimit = 0\n[profiles.chat_team]\nconsumes = [\"chat\"]\n"),
    );
    let out = seatgate(&["check", &path]);
    assert_eq!(code(&out), 1, "stdout: {}\nstderr: {}", stdout(&out), stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains(&format!("{path}:13: warning[zero-limit-consumed]: profile 'chat_team'")),
        "{text}"
    );
    assert!(text.contains("1 warning"), "{text}");
}

#[test]
fn check_counts_date_warnings_too() {
    let dir = Dir::new("check-dates");
    // Support ended long ago: loads, but the admin should hear of it.
    let path = dir.write("seats.toml", &format!("[licensee]\nsupport_until = \"2001-01-01\"\n{CLEAN}"));
    let out = seatgate(&["check", &path]);
    assert_eq!(code(&out), 1, "stdout: {}\nstderr: {}", stdout(&out), stderr(&out));
    assert!(stdout(&out).contains(&format!("{path}: warning: ")), "{}", stdout(&out));
    assert!(stdout(&out).contains("2001-01-01"), "{}", stdout(&out));
}

#[test]
fn check_says_three_for_an_invalid_config_with_file_line_and_column() {
    let dir = Dir::new("check-invalid");
    let path = dir.write("seats.toml", "[licenses.user]\nlimt = 10\n");
    let out = seatgate(&["check", &path]);
    assert_eq!(code(&out), 3, "stdout: {}\nstderr: {}", stdout(&out), stderr(&out));
    assert!(stderr(&out).contains(&format!("{path}:2:1: unknown field `limt`")), "{}", stderr(&out));
    assert!(stdout(&out).is_empty(), "{}", stdout(&out));

    let missing = dir.0.join("nope.toml").display().to_string();
    let out = seatgate(&["check", &missing]);
    assert_eq!(code(&out), 3, "{}", stderr(&out));
    assert!(stderr(&out).contains(&missing), "{}", stderr(&out));

    // What license_init refuses beyond the file: a state_dir that is not there.
    let path = dir.write(
        "emergency.toml",
        &format!("state_dir = \"{}\"\n{CLEAN}[emergency]\nseats = 2\n", dir.0.join("no-such-dir").display()),
    );
    let out = seatgate(&["check", &path]);
    assert_eq!(code(&out), 3, "stdout: {}\nstderr: {}", stdout(&out), stderr(&out));
    assert!(stderr(&out).contains("does not exist"), "{}", stderr(&out));
}

#[test]
fn check_and_report_say_two_for_usage_errors() {
    for args in [
        &["check"][..],
        &["check", "a.toml", "b.toml"],
        &["check", "--bogus", "a.toml"],
        &["report", "--format", "xml", "a.toml"],
        &["report", "a.toml", "b.toml"],
    ] {
        let out = seatgate(args);
        assert_eq!(code(&out), 2, "{args:?}: {}", stderr(&out));
        assert!(stderr(&out).contains("usage: seatgate"), "{args:?}: {}", stderr(&out));
    }
}

#[test]
fn help_lists_every_command_and_each_has_its_own_page() {
    let out = seatgate(&["help"]);
    assert_eq!(code(&out), 0);
    let text = stdout(&out);
    for command in ["keygen", "sign", "verify", "emergency activate", "check CONFIG", "report [--format"] {
        assert!(text.contains(&format!("seatgate {command}")), "help lacks {command}: {text}");
    }
    for command in ["keygen", "sign", "verify", "emergency", "check", "report"] {
        let out = seatgate(&["help", command]);
        assert_eq!(code(&out), 0, "{command}");
        assert!(
            stdout(&out).starts_with(&format!("usage: seatgate {command}")),
            "{command}: {}",
            stdout(&out)
        );
    }
    let page = stdout(&seatgate(&["help", "report"]));
    for exit in ["0  the report", "1  the table", "3  CONFIG is invalid", "4  CONFIG uses the memory"] {
        assert!(page.contains(exit), "report help lacks '{exit}'");
    }
}

#[test]
fn report_of_a_memory_table_says_four_and_why() {
    let dir = Dir::new("report-memory");
    let path = dir.write("seats.toml", CLEAN);
    let out = seatgate(&["report", &path]);
    assert_eq!(code(&out), 4, "stdout: {}\nstderr: {}", stdout(&out), stderr(&out));
    assert!(stderr(&out).contains("memory backend"), "{}", stderr(&out));
    assert!(stderr(&out).contains("cannot be read from outside"), "{}", stderr(&out));
    assert!(stdout(&out).is_empty());

    // The default CONFIG comes from SEATGATE_CONFIG.
    let out = Command::new(CLI).args(["report"]).env("SEATGATE_CONFIG", &path).output().unwrap();
    assert_eq!(code(&out), 4, "{}", stderr(&out));
}

#[test]
fn report_of_an_invalid_config_says_three() {
    let dir = Dir::new("report-invalid");
    let path = dir.write("seats.toml", "[licenses.user]\nlimit = -1\n");
    let out = seatgate(&["report", &path]);
    assert_eq!(code(&out), 3, "{}", stderr(&out));
    assert!(stderr(&out).contains("negative"), "{}", stderr(&out));
}

fn shm_config(dir: &Dir, table: &Path, extra: &str) -> String {
    dir.write(
        "seats.toml",
        &format!(
            "[backend]\nkind = \"shm\"\npath = \"{}\"\ncapacity = 64\n[reaper]\nenabled = false\n{CLEAN}{extra}",
            table.display()
        ),
    )
}

#[test]
fn report_without_a_table_says_one_and_creates_none() {
    let dir = Dir::new("report-absent");
    let table = dir.table("absent");
    let path = shm_config(&dir, &table, "");
    let out = seatgate(&["report", &path]);
    assert_eq!(code(&out), 1, "stdout: {}\nstderr: {}", stdout(&out), stderr(&out));
    assert!(
        stderr(&out).contains("does not exist: no host of this installation has started"),
        "{}",
        stderr(&out)
    );
    assert!(!table.exists(), "report created {}", table.display());
}

/// A host holds seats in a shared table; `seatgate report` shows them in each format
/// and changes nothing: counts, billing counters, holders, and an expired lease that
/// it must not reclaim.
#[test]
fn report_reads_a_live_shm_table_and_leaves_it_as_it_was() {
    let dir = Dir::new("report-shm");
    let table = dir.table("live");
    let path = shm_config(
        &dir,
        &table,
        "[licenses.short]\nlimit = 5\nlease = \"1s\"\n[profiles.brief]\nconsumes = [\"short\"]\n",
    );
    let host = Engine::from_file(&path).expect("host engine over the shm table");
    let alice = host.try_acquire(&Request::new("alice", "operator").extension("2001")).unwrap();
    let _bob = host.try_acquire(&Request::new("bob", "operator")).unwrap();
    let _carol = host.try_acquire(&Request::new("carol", "brief")).unwrap();
    // The lease of carol's seat runs out; the host runs no reaper, so it stays held.
    std::thread::sleep(Duration::from_millis(1300));
    let before = host.report(Page::ALL);

    let text = seatgate(&["report", &path]);
    assert_eq!(code(&text), 0, "stderr: {}", stderr(&text));
    let t = stdout(&text);
    assert!(t.contains("backend: shm"), "{t}");
    assert!(t.contains("callcenter") && t.contains("2/3"), "{t}");
    assert!(t.contains("alice") && t.contains("2001") && t.contains("bob") && t.contains("carol"), "{t}");
    assert!(t.contains("Read from outside the hosts"), "{t}");

    let json = seatgate(&["report", "--format", "json", &path]);
    assert_eq!(code(&json), 0, "stderr: {}", stderr(&json));
    let v: serde_json::Value = serde_json::from_slice(&json.stdout).expect("report JSON");
    let license =
        |name: &str| v["licenses"].as_array().unwrap().iter().find(|l| l["name"] == name).cloned().unwrap();
    assert_eq!(license("callcenter")["used"], 2);
    assert_eq!(license("callcenter")["limit"], 3);
    assert_eq!(license("callcenter")["acquired"], 2);
    assert_eq!(license("user")["used"], 2);
    assert_eq!(license("short")["used"], 1);
    assert_eq!(v["paging"]["total"], 3);
    assert_eq!(v["handles_total"], 3);
    assert_eq!(v["read_from_outside"], true);
    let carol = v["holders"].as_array().unwrap().iter().find(|h| h["user"] == "carol").unwrap();
    assert_eq!(carol["lease_left_seconds"], 0.0, "carol's lease ran out: {carol}");
    let pid = format!("pid {}", std::process::id());
    assert!(v["holders"].as_array().unwrap().iter().all(|h| h["nodes"][0] == pid.as_str()), "{v}");

    let prom = seatgate(&["report", "--format=prometheus", &path]);
    assert_eq!(code(&prom), 0, "stderr: {}", stderr(&prom));
    let p = stdout(&prom);
    assert!(p.contains("# TYPE seatgate_license_seats_used gauge\n"), "{p}");
    assert!(p.contains("seatgate_license_seats_used{tenant=\"\",type=\"callcenter\"} 2\n"), "{p}");
    assert!(p.contains("seatgate_license_acquired_total{tenant=\"\",type=\"callcenter\"} 2\n"), "{p}");
    assert!(p.contains("seatgate_holders{tenant=\"\"} 3\n"), "{p}");

    // Nothing moved: the same counts and counters, every holder still there (carol's
    // expired seat included), and the host's handles still work.
    let after = host.report(Page::ALL);
    for (b, a) in before.licenses.iter().zip(&after.licenses) {
        assert_eq!(
            (b.used, b.peak, b.acquired, b.denied),
            (a.used, a.peak, a.acquired, a.denied),
            "{} changed",
            b.name
        );
    }
    assert_eq!(after.paging.total, 3);
    assert_eq!(after.handles_total, 3);
    host.release(alice).expect("alice's handle is still valid after the reports");
    assert_eq!(host.usage_of("callcenter").unwrap().used, 1);
}

#[test]
fn report_of_one_tenant_and_of_a_tenant_without_a_pool() {
    let dir = Dir::new("report-tenant");
    let table = dir.table("tenant");
    let path = shm_config(&dir, &table, "[tenants.acme.licenses]\ncallcenter = 1\n[tenants.globex]\n");
    let host = Engine::from_file(&path).unwrap();
    host.try_acquire(&Request::new("alice", "operator").tenant("acme")).unwrap();
    host.try_acquire(&Request::new("bob", "operator")).unwrap();

    let out = seatgate(&["report", "--format", "json", "--tenant", "acme", &path]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["tenant"], "acme");
    assert_eq!(v["holders"][0]["user"], "alice");
    assert_eq!(v["paging"]["total"], 1);

    // globex never logged anyone in: no pool file, and the report makes none.
    let out = seatgate(&["report", "--tenant", "globex", &path]);
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    assert!(stderr(&out).contains("no seat pool yet"), "{}", stderr(&out));
    let mut globex = table.clone().into_os_string();
    globex.push("@globex");
    assert!(!Path::new(&globex).exists(), "report created {globex:?}");

    // Prometheus: the default pool and acme, not globex.
    let out = seatgate(&["report", "--format", "prometheus", &path]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let p = stdout(&out);
    assert!(p.contains("seatgate_license_seats_used{tenant=\"\",type=\"callcenter\"} 1\n"), "{p}");
    assert!(p.contains("seatgate_license_seats_used{tenant=\"acme\",type=\"callcenter\"} 1\n"), "{p}");
    assert!(p.contains("seatgate_license_seats_limit{tenant=\"acme\",type=\"callcenter\"} 1\n"), "{p}");
    assert!(!p.contains("globex"), "{p}");
    assert!(p.contains("seatgate_tenants 2\n"), "{p}");
    assert_eq!(p.matches("# TYPE seatgate_license_seats_used ").count(), 1, "{p}");
}

#[test]
fn report_reads_a_live_redis_installation() {
    let server = redis_server::RedisServer::start();
    let dir = Dir::new("report-redis");
    let path = dir.write(
        "seats.toml",
        &format!(
            "[backend]\nkind = \"redis\"\nurl = \"redis://127.0.0.1:{}\"\nprefix = \"cli-{}\"\nnode = \"pbx-a\"\n\
             on_backend_error = \"allow_local\"\nlocal_share = 50\n[reaper]\nenabled = false\n{CLEAN}",
            server.port,
            std::process::id()
        ),
    );
    let host = Engine::from_file(&path).unwrap();
    let seat = host.try_acquire(&Request::new("alice", "operator")).unwrap();
    assert!(host.try_acquire(&Request::new("bob", "callcenter")).is_ok());

    let out = seatgate(&["report", "--format", "json", &path]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["backend"], "redis");
    let callcenter = v["licenses"].as_array().unwrap().iter().find(|l| l["name"] == "callcenter").unwrap();
    assert_eq!(callcenter["used"], 2);
    assert_eq!(v["paging"]["total"], 2);
    assert!(v["holders"][0]["nodes"][0].as_str().unwrap().starts_with("pbx-a pid "), "{v}");
    assert_eq!(host.usage_of("callcenter").unwrap().used, 2);
    host.release(seat).unwrap();

    // Redis gone: a report of a local share would be no report; exit 1 even though
    // the hosts would serve locally (allow_local).
    drop(server);
    let out = seatgate(&["report", &path]);
    assert_eq!(code(&out), 1, "stdout: {}\nstderr: {}", stdout(&out), stderr(&out));
    assert!(stderr(&out).contains("cannot read the seat table"), "{}", stderr(&out));
}
