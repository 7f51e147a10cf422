//! The background reaper: a thread that reclaims expired leases and ended linger
//! windows, so that the report and the events stay right when no acquire comes by.
//!
//! It holds only a weak reference to its engine: dropping the engine stops it. It can
//! be turned off (`[reaper] enabled = false`) for hosts that must not run threads of
//! ours (they call `license_reap` from their own timer instead).

use std::sync::{Arc, Condvar, Mutex, Weak};
use std::thread::{JoinHandle, ThreadId};
use std::time::Duration;

use crate::engine::Engine;

/// How long a disabled reaper sleeps before looking at the config again.
const IDLE_CHECK: Duration = Duration::from_secs(1);

#[derive(Default)]
struct Control {
    stop: Mutex<bool>,
    wake: Condvar,
}

pub(crate) struct Reaper {
    control: Arc<Control>,
    thread: Option<JoinHandle<()>>,
    thread_id: Option<ThreadId>,
    /// The process the thread runs in: a child forked after `license_init` inherits
    /// this value, not the thread.
    pid: i32,
}

impl Reaper {
    pub(crate) fn start(engine: Weak<Engine>) -> std::io::Result<Reaper> {
        let control = Arc::new(Control::default());
        let thread_control = control.clone();
        let thread = std::thread::Builder::new()
            .name("seatgate-reaper".into())
            .spawn(move || run(&engine, &thread_control))?;
        let thread_id = Some(thread.thread().id());
        Ok(Reaper { control, thread: Some(thread), thread_id, pid: crate::backend::shm::own_pid() })
    }

    /// Whether the thread runs in this process (false in a forked child).
    pub(crate) fn runs_here(&self) -> bool {
        self.pid == crate::backend::shm::own_pid()
    }
}

fn run(engine: &Weak<Engine>, control: &Control) {
    loop {
        let wait = {
            let Some(engine) = engine.upgrade() else { return };
            let reaper = engine.config().reaper;
            if reaper.enabled {
                engine.reap();
                reaper.interval
            } else {
                IDLE_CHECK
            }
            // The engine is dropped here, before sleeping, so it can go away meanwhile.
        };
        let stop = control.stop.lock().unwrap_or_else(|e| e.into_inner());
        let (stop, _) =
            control.wake.wait_timeout_while(stop, wait, |stop| !*stop).unwrap_or_else(|e| e.into_inner());
        if *stop {
            return;
        }
    }
}

impl Drop for Reaper {
    fn drop(&mut self) {
        if !self.runs_here() {
            // Forked child: no thread to stop or wait for, and the control lock may be
            // in whatever state the parent's thread left it at the fork.
            std::mem::forget(self.thread.take());
            std::mem::forget(self.control.clone());
            return;
        }
        *self.control.stop.lock().unwrap_or_else(|e| e.into_inner()) = true;
        self.control.wake.notify_all();
        // The engine can be dropped on the reaper thread itself (a listener called
        // license_shutdown): it must not wait for itself.
        if self.thread_id != Some(std::thread::current().id())
            && let Some(thread) = self.thread.take()
        {
            let _ = thread.join();
        }
    }
}
