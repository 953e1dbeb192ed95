//! Which probe is still running, shown on a terminal once probing has taken
//! longer than a moment (the pearld probe may wait 5 s): silence for the
//! usual few milliseconds, a spinner naming what is being waited for after.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;
use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// How long probing runs before the spinner appears.
const QUIET_FOR: Duration = Duration::from_millis(300);
const TICK: Duration = Duration::from_millis(100);

pub struct ProbeProgress {
    pending: Arc<Mutex<Vec<String>>>,
    done: Option<Sender<()>>,
    shown: Option<JoinHandle<()>>,
}

impl ProbeProgress {
    /// Starts tracking `probes` (labels such as "pearld at http://…"); shows
    /// nothing unless stderr is a terminal.
    pub fn start(probes: Vec<String>) -> ProbeProgress {
        let pending = Arc::new(Mutex::new(probes));
        if !std::io::stderr().is_terminal() {
            return ProbeProgress {
                pending,
                done: None,
                shown: None,
            };
        }
        let (done, finished) = mpsc::channel::<()>();
        let labels = Arc::clone(&pending);
        let shown = std::thread::spawn(move || {
            // Finished (or dropped) within the quiet time: nothing shown.
            if finished.recv_timeout(QUIET_FOR) != Err(RecvTimeoutError::Timeout) {
                return;
            }
            let spinner = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
            spinner.set_style(
                ProgressStyle::with_template("{spinner} {msg}").expect("valid progress template"),
            );
            loop {
                let waiting = labels.lock().map(|l| l.join(", ")).unwrap_or_default();
                spinner.set_message(format!("waiting for {waiting}"));
                spinner.tick();
                if finished.recv_timeout(TICK) != Err(RecvTimeoutError::Timeout) {
                    break;
                }
            }
            spinner.finish_and_clear();
        });
        ProbeProgress {
            pending,
            done: Some(done),
            shown: Some(shown),
        }
    }

    /// `probe` has answered.
    pub fn finished(&self, probe: &str) {
        if let Ok(mut pending) = self.pending.lock() {
            pending.retain(|label| label != probe);
        }
    }

    /// Everything answered: clears the spinner before the report is printed.
    pub fn stop(mut self) {
        drop(self.done.take());
        if let Some(shown) = self.shown.take() {
            let _ = shown.join();
        }
    }
}
