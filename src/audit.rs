//! The audit log (`[audit] path = "..."`): one JSON object per line for every acquire
//! (`OUT`), release (`IN`, with why), denial (`DENY`, with reason) and reload
//! (`RELOAD`), in the spirit of RLM's report log.
//!
//! - Logins never wait for the disk: lines go through a bounded queue to one writer
//!   thread. When the queue is full the line is dropped and counted, never blocked on.
//! - Each line is written whole: a batch of whole lines goes out in one `write` on a
//!   file opened with `O_APPEND`, and a write that fails part-way is cut back to the
//!   last whole line, so a reader never sees a torn line.
//! - A disk error is counted and kept for the report; the writer reopens the file on
//!   its next batch. A reload reopens the file too, so logrotate's rename-and-reload
//!   works.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use serde::Serialize;

/// Lines that may wait for the writer before new ones are dropped.
const QUEUE_LINES: usize = 65_536;
/// Most bytes the writer gathers into one write.
const BATCH_BYTES: usize = 256 * 1024;

enum Message {
    Line(String),
    Reopen(PathBuf),
    /// Answered once every line queued before it has been written (or has failed).
    Flush(SyncSender<()>),
}

/// What the report shows about the audit log.
#[derive(Debug, Clone, Default, Serialize)]
pub struct AuditStatus {
    pub path: String,
    /// Lines written since start.
    pub written: u64,
    /// Lines lost because the queue was full or the writer had stopped.
    pub dropped: u64,
    /// Lines lost to write errors (disk full, I/O error, unopenable file).
    pub failed: u64,
    /// Write or open errors since start.
    pub errors: u64,
    pub last_error: Option<String>,
}

#[derive(Default)]
struct Shared {
    written: AtomicU64,
    dropped: AtomicU64,
    failed: AtomicU64,
    errors: AtomicU64,
    last_error: Mutex<Option<String>>,
    path: Mutex<PathBuf>,
}

impl Shared {
    fn error(&self, what: String, lines: u64) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        self.failed.fetch_add(lines, Ordering::Relaxed);
        *self.last_error.lock().unwrap_or_else(|e| e.into_inner()) = Some(what);
    }
}

/// A running audit log: a queue and its writer thread.
pub struct AuditLog {
    tx: Option<SyncSender<Message>>,
    shared: Arc<Shared>,
    writer: Option<JoinHandle<()>>,
    /// The process whose writer thread this is: a child forked after `license_init`
    /// inherits the value but not the thread.
    pid: i32,
}

impl std::fmt::Debug for AuditLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditLog").field("status", &self.status()).finish()
    }
}

impl AuditLog {
    /// Starts the writer for `path`. Failing to open the file is not fatal: it is
    /// reported, and retried with every batch.
    pub fn start(path: &Path) -> AuditLog {
        let shared = Arc::new(Shared { path: Mutex::new(path.to_path_buf()), ..Shared::default() });
        let (tx, rx) = sync_channel(QUEUE_LINES);
        let writer_shared = shared.clone();
        let writer = std::thread::Builder::new()
            .name("seatgate-audit".into())
            .spawn(move || write_loop(&rx, &writer_shared))
            .map_err(|e| shared.error(format!("cannot start the audit writer thread: {e}"), 0))
            .ok();
        AuditLog { tx: writer.is_some().then_some(tx), shared, writer, pid: crate::backend::shm::own_pid() }
    }

    /// Whether its writer thread runs in this process (false in a forked child).
    pub fn belongs_here(&self) -> bool {
        self.pid == crate::backend::shm::own_pid()
    }

    /// Queues one line (without its newline). Never blocks.
    pub fn log(&self, line: String) {
        let sent = match &self.tx {
            Some(tx) => match tx.try_send(Message::Line(line)) {
                Ok(()) => true,
                Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => false,
            },
            None => false,
        };
        if !sent {
            self.shared.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Closes the file and opens `path` (after lines already queued are written).
    pub fn reopen(&self, path: &Path) {
        if let Some(tx) = &self.tx {
            // A full queue must not block a reload: the path is picked up by the next
            // batch's reopen-on-error at worst, so retry once the writer has room.
            let _ = tx.try_send(Message::Reopen(path.to_path_buf())).or_else(|e| match e {
                TrySendError::Full(m) => tx.send(m).map_err(|_| ()),
                TrySendError::Disconnected(_) => Err(()),
            });
        }
    }

    /// Waits until every line queued so far has been written or has failed.
    pub fn flush(&self) {
        if !self.belongs_here() {
            return;
        }
        if let Some(tx) = &self.tx {
            let (done_tx, done_rx) = sync_channel(1);
            if tx.send(Message::Flush(done_tx)).is_ok() {
                let _ = done_rx.recv();
            }
        }
    }

    pub fn status(&self) -> AuditStatus {
        let s = &self.shared;
        AuditStatus {
            path: s.path.lock().unwrap_or_else(|e| e.into_inner()).display().to_string(),
            written: s.written.load(Ordering::Relaxed),
            dropped: s.dropped.load(Ordering::Relaxed),
            failed: s.failed.load(Ordering::Relaxed),
            errors: s.errors.load(Ordering::Relaxed),
            last_error: s.last_error.lock().unwrap_or_else(|e| e.into_inner()).clone(),
        }
    }
}

impl Drop for AuditLog {
    fn drop(&mut self) {
        if !self.belongs_here() {
            // Forked child: the writer thread and whoever held the queue's locks at the
            // fork are in the parent. Touch neither; the parent's log is the parent's.
            std::mem::forget(self.tx.take());
            std::mem::forget(self.writer.take());
            return;
        }
        // Closing the queue lets the writer finish what is queued and stop.
        self.tx = None;
        if let Some(writer) = self.writer.take() {
            let _ = writer.join();
        }
    }
}

fn open(path: &Path) -> std::io::Result<File> {
    OpenOptions::new().create(true).append(true).mode(0o640).open(path)
}

fn write_loop(rx: &Receiver<Message>, shared: &Shared) {
    let mut path = shared.path.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let mut file = match open(&path) {
        Ok(f) => Some(f),
        Err(e) => {
            shared.error(format!("cannot open audit log {}: {e}", path.display()), 0);
            None
        }
    };
    let mut batch = String::new();
    let mut lines = 0u64;
    while let Ok(first) = rx.recv() {
        let mut next = Some(first);
        while let Some(message) = next.take() {
            match message {
                Message::Line(line) => {
                    batch.push_str(&line);
                    batch.push('\n');
                    lines += 1;
                }
                Message::Reopen(new_path) => {
                    write_batch(&mut file, &path, &mut batch, &mut lines, shared);
                    path = new_path;
                    *shared.path.lock().unwrap_or_else(|e| e.into_inner()) = path.clone();
                    file = None; // opened by the next batch
                }
                Message::Flush(done) => {
                    write_batch(&mut file, &path, &mut batch, &mut lines, shared);
                    let _ = done.send(());
                }
            }
            if batch.len() < BATCH_BYTES {
                next = rx.try_recv().ok();
            }
        }
        write_batch(&mut file, &path, &mut batch, &mut lines, shared);
    }
}

/// Writes whole lines in one go; on failure cuts the file back to where it was.
fn write_batch(file: &mut Option<File>, path: &Path, batch: &mut String, lines: &mut u64, shared: &Shared) {
    if batch.is_empty() {
        return;
    }
    if file.is_none() {
        match open(path) {
            Ok(f) => *file = Some(f),
            Err(e) => {
                shared.error(format!("cannot open audit log {}: {e}", path.display()), *lines);
                batch.clear();
                *lines = 0;
                return;
            }
        }
    }
    if let Some(f) = file.as_mut() {
        let before = f.metadata().map(|m| m.len()).ok();
        match f.write_all(batch.as_bytes()) {
            Ok(()) => {
                shared.written.fetch_add(*lines, Ordering::Relaxed);
            }
            Err(e) => {
                // Never leave half a line behind: cut back to the last whole one.
                if let Some(len) = before {
                    let _ = f.set_len(len);
                }
                shared.error(format!("cannot write audit log {}: {e}", path.display()), *lines);
                *file = None;
            }
        }
    }
    batch.clear();
    *lines = 0;
}
