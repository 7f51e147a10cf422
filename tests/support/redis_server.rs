//! A throwaway `redis-server` on 127.0.0.1 for the redis backend's tests.
//!
//! Each server runs under a small shell watchdog that kills it once the test process
//! is gone, so a server shared by a whole test binary (the harness has no global
//! teardown) never outlives it; [`RedisServer`]'s `Drop` stops it earlier. A missing
//! `redis-server` fails the test with the command that installs it: never a skip.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use seatgate::backend::redis::RedisBackend;
use seatgate::config::{OnBackendError, RedisConfig};

/// Kills redis (started in the background) when the test process `$1` exits; prints
/// redis's pid first so a test can kill it on purpose.
const WATCHDOG: &str = r#"
test_pid=$1; shift
redis-server "$@" >/dev/null 2>&1 &
r=$!
echo "$r"
while kill -0 "$test_pid" 2>/dev/null && kill -0 "$r" 2>/dev/null; do sleep 0.2; done
kill -9 "$r" 2>/dev/null
wait "$r" 2>/dev/null
"#;

pub struct RedisServer {
    pub port: u16,
    password: Option<String>,
    watchdog: Option<Child>,
    pid: Option<u32>,
}

fn require_redis_server() {
    match Command::new("redis-server").arg("--version").stdout(Stdio::null()).stderr(Stdio::null()).status() {
        Ok(status) if status.success() => {}
        Ok(status) => {
            panic!("redis-server --version failed ({status}): run `bash scripts/setup.sh` to install it")
        }
        Err(e) => panic!(
            "redis-server is not installed ({e}); the redis backend's tests need it: run `bash scripts/setup.sh`"
        ),
    }
}

fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener.local_addr().expect("local addr").port()
}

impl RedisServer {
    /// A new server on a free port.
    pub fn start() -> RedisServer {
        Self::start_with(None)
    }

    /// A new server that requires `password`.
    pub fn start_with_password(password: &str) -> RedisServer {
        Self::start_with(Some(password.to_string()))
    }

    fn start_with(password: Option<String>) -> RedisServer {
        require_redis_server();
        let mut last = String::new();
        for _ in 0..5 {
            let mut server =
                RedisServer { port: free_port(), password: password.clone(), watchdog: None, pid: None };
            match server.launch() {
                Ok(()) => return server,
                Err(e) => last = e,
            }
        }
        panic!("could not start redis-server on 127.0.0.1: {last}");
    }

    fn launch(&mut self) -> Result<(), String> {
        let port = self.port.to_string();
        let mut args: Vec<String> = vec![
            "--port".into(),
            port,
            "--bind".into(),
            "127.0.0.1".into(),
            "--save".into(),
            String::new(),
            "--appendonly".into(),
            "no".into(),
            "--dir".into(),
            std::env::temp_dir().display().to_string(),
        ];
        if let Some(p) = &self.password {
            args.push("--requirepass".into());
            args.push(p.clone());
        }
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(WATCHDOG)
            .arg("redis-watchdog")
            .arg(std::process::id().to_string())
            .args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot run sh: {e}"))?;
        let mut line = String::new();
        if let Some(out) = child.stdout.take() {
            let _ = BufReader::new(out).read_line(&mut line);
        }
        self.pid = line.trim().parse().ok();
        self.watchdog = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            // Ours, not another test's that took the same free port first (this one
            // then fails to bind and exits).
            if self.pid.is_some() && self.process_id() == self.pid {
                return Ok(());
            }
            if let Some(Ok(Some(status))) = self.watchdog.as_mut().map(|c| c.try_wait()) {
                return Err(format!("redis-server on port {} exited at start ({status})", self.port));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.stop();
        Err(format!("redis-server on port {} did not answer PING within 10 s", self.port))
    }

    /// Whether the server answers PING (an answer that asks for a password counts).
    pub fn ping(&self) -> bool {
        let Ok(mut stream) = TcpStream::connect(("127.0.0.1", self.port)) else { return false };
        let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
        if stream.write_all(b"PING\r\n").is_err() {
            return false;
        }
        let mut buf = [0u8; 64];
        match stream.read(&mut buf) {
            Ok(n) if n > 0 => buf[..n].starts_with(b"+PONG") || buf[..n].starts_with(b"-NOAUTH"),
            _ => false,
        }
    }

    /// The pid the server on this port says it has (`INFO server`), if it answers.
    fn process_id(&self) -> Option<u32> {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).ok()?;
        stream.set_read_timeout(Some(Duration::from_millis(500))).ok()?;
        let auth = self.password.as_ref().map(|p| format!("AUTH {p}\r\n")).unwrap_or_default();
        stream.write_all(format!("{auth}INFO server\r\n").as_bytes()).ok()?;
        let mut seen = String::new();
        let mut buf = [0u8; 4096];
        loop {
            let line = seen.split("process_id:").nth(1).and_then(|rest| rest.split_once('\n'));
            if let Some((pid, _)) = line {
                return pid.trim().parse().ok();
            }
            let n = stream.read(&mut buf).ok().filter(|&n| n > 0)?;
            seen.push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Kills the server at once (SIGKILL): a crash, nothing saved.
    pub fn stop(&mut self) {
        if let Some(pid) = self.pid.take() {
            let _ = Command::new("kill").arg("-9").arg(pid.to_string()).status();
        }
        if let Some(mut child) = self.watchdog.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        // Wait until the port is closed, so a restart finds it free.
        let deadline = Instant::now() + Duration::from_secs(5);
        while self.ping() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Starts a new, empty server on the same port (after [`RedisServer::stop`]).
    pub fn restart(&mut self) {
        let mut last = String::new();
        for _ in 0..50 {
            match self.launch() {
                Ok(()) => return,
                Err(e) => last = e,
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("could not restart redis-server on port {}: {last}", self.port);
    }

    /// Runs one command over a raw connection and returns the reply's text.
    pub fn command(&self, args: &[&str]) -> String {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).expect("connect to the test redis");
        stream.set_read_timeout(Some(Duration::from_secs(5))).expect("read timeout");
        let mut req = format!("*{}\r\n", args.len());
        for a in args {
            req.push_str(&format!("${}\r\n{a}\r\n", a.len()));
        }
        stream.write_all(req.as_bytes()).expect("send");
        let mut reader = BufReader::new(stream);
        let mut first = String::new();
        reader.read_line(&mut first).expect("reply");
        if let Some(len) = first.strip_prefix('$') {
            let len: i64 = len.trim().parse().unwrap_or(-1);
            if len < 0 {
                return String::new();
            }
            let mut body = vec![0u8; len as usize + 2];
            reader.read_exact(&mut body).expect("bulk reply");
            body.truncate(len as usize);
            return String::from_utf8_lossy(&body).into_owned();
        }
        first.trim().trim_start_matches([':', '+']).to_string()
    }

    /// One field of `INFO stats`, e.g. `total_commands_processed`.
    pub fn info_stat(&self, field: &str) -> u64 {
        let info = self.command(&["INFO", "stats"]);
        info.lines()
            .find_map(|l| l.strip_prefix(&format!("{field}:")))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {field} in INFO stats"))
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Settings for a backend on `url` with key prefix `prefix`.
pub fn settings(url: &str, prefix: &str, node: &str) -> RedisConfig {
    RedisConfig {
        url: url.to_string(),
        password: None,
        username: None,
        database: None,
        prefix: prefix.to_string(),
        node: Some(node.to_string()),
        connect_timeout: Duration::from_secs(2),
        // Generous: the suite's stress tests load two cores fully.
        timeout: Duration::from_secs(5),
        on_backend_error: OnBackendError::Deny,
        local_share: 0,
        retry_interval: Duration::from_secs(1),
    }
}

/// A key prefix no other backend of this process uses.
pub fn unique_prefix(what: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!("{what}-{}-{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed))
}

/// One server for the whole test binary, started on first use.
pub fn shared_server() -> &'static RedisServer {
    static SERVER: OnceLock<RedisServer> = OnceLock::new();
    SERVER.get_or_init(RedisServer::start)
}

/// A fresh, empty backend: a new key prefix on the shared server.
pub fn fresh_backend() -> RedisBackend {
    let server = shared_server();
    RedisBackend::open(&settings(&server.url(), &unique_prefix("conformance"), "conformance-node"))
        .unwrap_or_else(|e| panic!("redis backend on {}: {e}", server.url()))
}

/// A TCP relay in front of a server that counts round trips: each time the client
/// speaks again after the server answered is one more. Runs until the process exits.
pub struct CountingProxy {
    pub port: u16,
    turns: std::sync::Arc<AtomicU64>,
}

impl CountingProxy {
    pub fn start(target_port: u16) -> CountingProxy {
        use std::sync::Arc;
        use std::sync::atomic::AtomicBool;
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the proxy");
        let port = listener.local_addr().expect("proxy addr").port();
        let turns = Arc::new(AtomicU64::new(0));
        let counter = turns.clone();
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { continue };
                let Ok(server) = TcpStream::connect(("127.0.0.1", target_port)) else { continue };
                let _ = client.set_nodelay(true);
                let _ = server.set_nodelay(true);
                // Whether the last bytes went server -> client: the next request is a new turn.
                let answered = Arc::new(AtomicBool::new(true));
                let pump =
                    |mut from: TcpStream, mut to: TcpStream, upstream: bool, answered: Arc<AtomicBool>| {
                        let counter = counter.clone();
                        std::thread::spawn(move || {
                            let mut buf = [0u8; 16384];
                            loop {
                                let n = match from.read(&mut buf) {
                                    Ok(0) | Err(_) => break,
                                    Ok(n) => n,
                                };
                                if upstream {
                                    if answered.swap(false, Ordering::SeqCst) {
                                        counter.fetch_add(1, Ordering::SeqCst);
                                    }
                                } else {
                                    answered.store(true, Ordering::SeqCst);
                                }
                                if to.write_all(&buf[..n]).is_err() {
                                    break;
                                }
                            }
                            let _ = to.shutdown(std::net::Shutdown::Both);
                        });
                    };
                let (Ok(client2), Ok(server2)) = (client.try_clone(), server.try_clone()) else { continue };
                pump(client, server, true, answered.clone());
                pump(server2, client2, false, answered);
            }
        });
        CountingProxy { port, turns }
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Round trips so far, over every connection.
    pub fn round_trips(&self) -> u64 {
        self.turns.load(Ordering::SeqCst)
    }
}
