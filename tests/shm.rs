//! The `shm` backend's own promises, beyond the conformance suite: engines that map
//! one file share one count, the file is private and checked, a full table refuses
//! clearly, a reload in one process reaches the others, and a tenant's handles mean
//! the same tenant in every process. (Processes for real, with
//! fork and kill -9, are in c-tests/test_multiprocess.c.)

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use seatgate::{Engine, Error, Page, Request};

/// A table path of its own, removed when the test ends.
struct TablePath(PathBuf);

impl TablePath {
    fn new(name: &str) -> TablePath {
        let dir =
            if Path::new("/dev/shm").is_dir() { PathBuf::from("/dev/shm") } else { std::env::temp_dir() };
        let path = dir.join(format!("seatgate-test-{name}-{}", std::process::id()));
        let _ = std::fs::remove_file(&path);
        TablePath(path)
    }
}

impl Drop for TablePath {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
        // The tenant registry, where a test's engines had tenants.
        let _ = std::fs::remove_file(format!("{}@@tenants", self.0.display()));
    }
}

/// Writes a config using the table at `table` into a temp dir; returns its path.
fn config_file(dir: &tempdir::Dir, table: &Path, capacity: u32, body: &str) -> PathBuf {
    let path = dir.path().join("seats.toml");
    std::fs::write(
        &path,
        format!("[backend]\nkind = \"shm\"\npath = \"{}\"\ncapacity = {capacity}\n{body}", table.display()),
    )
    .unwrap();
    path
}

mod tempdir {
    /// A private temporary folder, removed on drop.
    pub struct Dir(std::path::PathBuf);
    impl Dir {
        pub fn new(name: &str) -> Dir {
            let p = std::env::temp_dir().join(format!("seatgate-shm-{name}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&p);
            std::fs::create_dir_all(&p).unwrap();
            Dir(p)
        }
        pub fn path(&self) -> &std::path::Path {
            &self.0
        }
    }
    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

const POOL: &str = "[licenses.callcenter]\nlimit = 3\n[licenses.chat]\nlimit = 2\ncount = \"session\"\n[profiles.agent]\nconsumes = [\"callcenter\", \"chat\"]\n";

#[test]
fn two_engines_on_one_file_share_one_limit_and_one_report() {
    let table = TablePath::new("share");
    let dir = tempdir::Dir::new("share");
    let cfg = config_file(&dir, &table.0, 100, POOL);
    let a = Engine::from_file(&cfg).unwrap();
    let b = Engine::from_file(&cfg).unwrap();
    assert_eq!(a.backend_kind(), "shm");
    a.try_acquire(&Request::new("alice", "callcenter")).unwrap();
    b.try_acquire(&Request::new("bob", "callcenter")).unwrap();
    a.try_acquire(&Request::new("carol", "callcenter")).unwrap();
    // Full for both: the limit is the installation's, not each engine's.
    for e in [&a, &b] {
        match e.try_acquire(&Request::new("dave", "callcenter")) {
            Err(Error::LimitReached(d)) => {
                assert_eq!((d.license.as_ref(), d.used, d.limit), ("callcenter", 3, 3))
            }
            other => panic!("expected a refusal, got {other:?}"),
        }
        assert_eq!(e.usage_of("callcenter").unwrap().used, 3);
    }
    // The same user is one user in both: a second login takes no second seat.
    let again = b.try_acquire(&Request::new("alice", "callcenter")).unwrap();
    assert_eq!(a.usage_of("callcenter").unwrap().used, 3);
    // A handle taken by one engine is released through the other.
    b.release(again).unwrap();
    let report = b.report(Page::ALL);
    assert_eq!(report.holders.len(), 3);
    assert!(report.backend_detail.contains(&table.0.display().to_string()), "{}", report.backend_detail);
    assert!(report.backend_detail.contains("3/100 handles"), "{}", report.backend_detail);
    let pid = format!("pid {}", std::process::id());
    assert!(report.holders.iter().all(|h| h.nodes == vec![pid.clone()]), "{:?}", report.holders);
    assert!(report.to_text().contains(&pid));
}

#[test]
fn the_table_file_is_private_and_checked() {
    let table = TablePath::new("private");
    let dir = tempdir::Dir::new("private");
    let engine = Engine::from_file(config_file(&dir, &table.0, 10, POOL)).unwrap();
    let mode = std::fs::metadata(&table.0).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "table file mode {mode:o}");

    // Another capacity on the same file: refused, naming both.
    match Engine::from_file(config_file(&dir, &table.0, 20, POOL)) {
        Err(Error::Backend(msg)) => {
            assert!(msg.contains(&table.0.display().to_string()) && msg.contains("capacity = 20"), "{msg}");
        }
        other => panic!("expected a backend error, got {other:?}"),
    }
    drop(engine);

    // Something that is not a table: refused, not overwritten.
    let junk = TablePath::new("junk");
    std::fs::write(&junk.0, vec![b'x'; 8192]).unwrap();
    match Engine::from_file(config_file(&dir, &junk.0, 10, POOL)) {
        Err(Error::Backend(msg)) => assert!(msg.contains("not a seatgate table"), "{msg}"),
        other => panic!("expected a backend error, got {other:?}"),
    }
    assert_eq!(std::fs::read(&junk.0).unwrap(), vec![b'x'; 8192], "a foreign file is left alone");

    // A folder that does not exist: a clear error too.
    match Engine::from_file(config_file(&dir, Path::new("/nonexistent-dir/table"), 10, POOL)) {
        Err(Error::Backend(msg)) => assert!(msg.contains("cannot open or create"), "{msg}"),
        other => panic!("expected a backend error, got {other:?}"),
    }
}

#[test]
fn a_full_table_refuses_clearly_and_takes_nothing() {
    let table = TablePath::new("full");
    let dir = tempdir::Dir::new("full");
    let e = Engine::from_file(config_file(
        &dir,
        &table.0,
        3,
        "[licenses.chat]\nlimit = 10\ncount = \"session\"\n",
    ))
    .unwrap();
    let seats: Vec<_> =
        (0..3).map(|i| e.try_acquire(&Request::new(&format!("u{i}"), "chat")).unwrap()).collect();
    match e.try_acquire(&Request::new("u9", "chat")) {
        Err(Error::TableFull { capacity, path }) => {
            assert_eq!(capacity, 3);
            assert_eq!(path, table.0.display().to_string());
        }
        other => panic!("expected TableFull, got {other:?}"),
    }
    assert_eq!(e.usage_of("chat").unwrap().used, 3, "the refused login took nothing");
    e.release(seats[0]).unwrap();
    e.try_acquire(&Request::new("u9", "chat")).unwrap();
}

#[test]
fn a_reload_in_one_process_reaches_the_others_on_their_next_call() {
    let table = TablePath::new("reload");
    let dir = tempdir::Dir::new("reload");
    let cfg = config_file(&dir, &table.0, 100, POOL);
    let a = Engine::from_file(&cfg).unwrap();
    let b = Engine::from_file(&cfg).unwrap();
    for u in ["u1", "u2", "u3"] {
        a.try_acquire(&Request::new(u, "callcenter")).unwrap();
    }
    assert!(b.try_acquire(&Request::new("u4", "callcenter")).is_err());
    std::fs::write(&cfg, std::fs::read_to_string(&cfg).unwrap().replace("limit = 3", "limit = 4")).unwrap();
    a.reload(None).unwrap();
    // b never called reload: it follows a on its next acquire.
    b.try_acquire(&Request::new("u4", "callcenter")).unwrap();
    assert_eq!(b.usage_of("callcenter").unwrap().limit, 4);
    assert_eq!(b.usage_of("callcenter").unwrap().used, 4);
}

#[test]
fn a_process_that_cannot_follow_a_reload_keeps_its_config_and_says_why() {
    let table = TablePath::new("follow");
    let (dir_a, dir_b) = (tempdir::Dir::new("follow-a"), tempdir::Dir::new("follow-b"));
    let cfg_a = config_file(&dir_a, &table.0, 100, POOL);
    let cfg_b = config_file(&dir_b, &table.0, 100, POOL);
    let a = Engine::from_file(&cfg_a).unwrap();
    let b = Engine::from_file(&cfg_b).unwrap();
    std::fs::write(&cfg_b, "this is not toml [").unwrap();
    a.reload(None).unwrap();
    b.try_acquire(&Request::new("u1", "callcenter")).unwrap();
    assert_eq!(b.usage_of("callcenter").unwrap().limit, 3, "b keeps the config it has");
    let report = b.report(Page::ALL);
    assert!(
        report.warnings.iter().any(|w| w.contains("could not reload") && w.contains("seats.toml")),
        "{:?}",
        report.warnings
    );
}

#[test]
fn types_are_matched_by_name_whatever_order_each_config_lists_them() {
    let table = TablePath::new("names");
    let dir_a = tempdir::Dir::new("names-a");
    let dir_b = tempdir::Dir::new("names-b");
    let a = Engine::from_file(config_file(
        &dir_a,
        &table.0,
        50,
        "[licenses.crm]\nlimit = 1\n[licenses.callcenter]\nlimit = 2\n",
    ))
    .unwrap();
    let b = Engine::from_file(config_file(
        &dir_b,
        &table.0,
        50,
        "[licenses.callcenter]\nlimit = 2\n[licenses.crm]\nlimit = 1\n",
    ))
    .unwrap();
    a.try_acquire(&Request::new("alice", "crm")).unwrap();
    assert_eq!(b.usage_of("crm").unwrap().used, 1);
    assert_eq!(b.usage_of("callcenter").unwrap().used, 0);
    assert!(matches!(b.try_acquire(&Request::new("bob", "crm")), Err(Error::LimitReached(_))));
    b.try_acquire(&Request::new("bob", "callcenter")).unwrap();
    assert_eq!(a.usage_of("callcenter").unwrap().used, 1);
}

/// Bytes of a file's pages that hold data (tmpfs allocates a page on first touch).
fn resident_bytes(path: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).unwrap().blocks() * 512
}

#[test]
fn a_tenants_pool_is_its_own_checked_file_next_to_the_main_one_shared_by_every_opener() {
    use seatgate::backend::Backend;
    use seatgate::backend::shm::ShmBackend;
    use seatgate::config::ShmConfig;

    let table = TablePath::new("tenants");
    let tenant_a = TablePath(PathBuf::from(format!("{}@A", table.0.display())));
    let tenant_b = TablePath(PathBuf::from(format!("{}@B", table.0.display())));
    let shm = ShmConfig { path: table.0.clone(), capacity: 10_000, reclaim_dead_owners: true };
    let config = || seatgate::Config::from_toml_str(POOL, "pool.toml").unwrap();

    // Two backends on the same path, as two processes would have (the shared table
    // works the same across a fork: see c-tests/test_multiprocess.c).
    let first = ShmBackend::open(&shm).unwrap();
    let second = ShmBackend::open(&shm).unwrap();
    assert_eq!(first.tenant_path("A"), tenant_a.0);
    let a1 = Engine::with_backend(config(), first.open_tenant("A").unwrap()).unwrap();
    let a2 = Engine::with_backend(config(), second.open_tenant("A").unwrap()).unwrap();
    let b = Engine::with_backend(config(), second.open_tenant("B").unwrap()).unwrap();
    let main = Engine::with_backend(config(), Box::new(first)).unwrap();

    // The files: next to the main one, private, and only a few pages of them in use.
    for path in [&tenant_a.0, &tenant_b.0] {
        let mode = std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{} mode {mode:o}", path.display());
    }
    let fresh = resident_bytes(&tenant_b.0);
    println!("an idle tenant's table (capacity 10000) holds {fresh} bytes of memory");
    assert!(fresh <= 64 * 1024, "an idle tenant's table holds {fresh} bytes");

    // A's seats, taken through one backend, seen through the other's open of A.
    let alice = a1.try_acquire(&Request::new("alice", "agent")).unwrap();
    a1.try_acquire(&Request::new("bob", "callcenter")).unwrap();
    let holders =
        |e: &Engine| -> Vec<String> { e.report(Page::ALL).holders.into_iter().map(|h| h.user).collect() };
    assert_eq!(holders(&a2), vec!["alice", "bob"]);
    assert_eq!(a2.usage_of("callcenter").unwrap().used, 2);
    assert!(a2.report(Page::ALL).backend_detail.contains(&tenant_a.0.display().to_string()));
    // ... and in neither the main pool nor B.
    assert!(holders(&main).is_empty() && holders(&b).is_empty());
    b.try_acquire(&Request::new("alice", "agent")).unwrap();
    assert_eq!(a1.usage_of("chat").unwrap().used, 1);
    a2.release(alice).unwrap();
    assert_eq!(a1.usage_of("chat").unwrap().used, 0);
    assert_eq!(b.usage_of("chat").unwrap().used, 1);

    // A tenant's file is checked as the main one is: another capacity is refused.
    let other = ShmBackend::open(&ShmConfig { capacity: 20, ..shm.clone() });
    assert!(other.is_err(), "the main file has capacity 10000");
    let small = TablePath::new("tenants-small");
    let small_a = TablePath(PathBuf::from(format!("{}@A", small.0.display())));
    std::fs::copy(&tenant_a.0, &small_a.0).unwrap();
    let small_main =
        ShmBackend::open(&ShmConfig { path: small.0.clone(), capacity: 20, reclaim_dead_owners: true })
            .unwrap();
    match small_main.open_tenant("A") {
        Err(Error::Backend(msg)) => {
            assert!(msg.contains(&small_a.0.display().to_string()) && msg.contains("capacity = 20"), "{msg}")
        }
        Err(other) => panic!("expected a backend error, got {other}"),
        Ok(_) => panic!("a tenant file of another capacity was accepted"),
    }
}

/// One engine per process: each numbers its tenants in its own memory, so these
/// engines stand for processes that met the installation's tenants in other orders.
#[test]
fn a_tenants_handle_names_the_same_tenant_in_every_process_whatever_order_they_met_tenants_in() {
    let table = TablePath::new("registry");
    let tenant_files: Vec<TablePath> = ["globex", "initech", "acme", "aardvark"]
        .iter()
        .map(|t| TablePath(PathBuf::from(format!("{}@{t}", table.0.display()))))
        .collect();
    let dir = tempdir::Dir::new("registry");
    let tenants = "[tenants.globex]\nlicenses = { callcenter = 2 }\n[tenants.initech]\n";
    let cfg = config_file(&dir, &table.0, 100, &format!("{POOL}{tenants}"));
    let a = Engine::from_file(&cfg).unwrap();

    // A tenant given its limit at run time in one process: the others never heard of
    // it, yet a handle from it is released anywhere.
    a.set_limit(Some("acme"), "callcenter", Some(2)).unwrap();
    let b = Engine::from_file(&cfg).unwrap();
    let acme = a.try_acquire(&Request::new("alice", "callcenter").tenant("acme")).unwrap();
    assert_eq!(a.usage_in(Some("acme"), "callcenter").unwrap().used, 1);
    b.release(acme).unwrap();
    assert_eq!(a.usage_in(Some("acme"), "callcenter").unwrap().used, 0, "b released acme's seat");
    // b released the handle, but it serves no acme logins: acme's limit was given to
    // a only, and b would count acme's seats against limits it was never given.
    assert!(matches!(
        b.try_acquire(&Request::new("carol", "callcenter").tenant("acme")),
        Err(Error::UnknownTenant(_))
    ));
    assert!(!b.tenant_names().iter().any(|t| &**t == "acme"));
    // Given acme's limit, b serves it like any other tenant.
    b.set_limit(Some("acme"), "callcenter", Some(2)).unwrap();
    let carol = b.try_acquire(&Request::new("carol", "callcenter").tenant("acme")).unwrap();
    assert_eq!(a.usage_in(Some("acme"), "callcenter").unwrap().used, 1);
    b.release(carol).unwrap();

    // A reload adds a tenant that sorts before the others. A process started after it
    // meets them in name order (aardvark first), the older ones met it last: a handle
    // still names one tenant for all of them.
    let cfg = config_file(&dir, &table.0, 100, &format!("{POOL}{tenants}[tenants.aardvark]\n"));
    a.reload(Some(&cfg)).unwrap();
    let c = Engine::from_file(&cfg).unwrap();
    let globex = a.try_acquire(&Request::new("bob", "callcenter").tenant("globex")).unwrap();
    let aardvark = c.try_acquire(&Request::new("bob", "callcenter").tenant("aardvark")).unwrap();
    assert_eq!(c.usage_in(Some("globex"), "callcenter").unwrap().used, 1);
    assert_eq!(c.usage_in(Some("aardvark"), "callcenter").unwrap().used, 1);
    c.release(globex).unwrap();
    assert_eq!(a.usage_in(Some("globex"), "callcenter").unwrap().used, 0, "c released globex's seat");
    assert_eq!(c.usage_in(Some("aardvark"), "callcenter").unwrap().used, 1, "and not aardvark's");
    b.release(aardvark).unwrap();
    assert_eq!(a.usage_in(Some("aardvark"), "callcenter").unwrap().used, 0, "b released aardvark's seat");

    // The numbers live in one file beside the table, in the order tenants first came.
    let registry = std::fs::read_to_string(format!("{}@@tenants", table.0.display())).unwrap();
    assert_eq!(registry, "globex\ninitech\nacme\naardvark\n");
    assert_eq!(acme >> 48, 3, "acme is tenant 3");
    assert_eq!(aardvark >> 48, 4, "aardvark is tenant 4 for c too");
    // A number nobody registered is an unknown handle, as before.
    assert!(matches!(b.release((9 << 48) | 1), Err(Error::UnknownSeat(_))));
    drop(tenant_files);
}
