//! The epoch ticker: advances the engine's epoch every tick while a guest
//! call is in flight, and sleeps while none is. A call's deadline counts
//! ticks, so it runs out on the call's own time either way; sleeping between
//! calls keeps a process that lives for weeks (the supervisor, one provider
//! call every few seconds) from waking 100 times a second for nothing.

use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::Duration;

/// How often the epoch advances; deadlines are rounded up to whole ticks.
const EPOCH_TICK: Duration = Duration::from_millis(10);

/// A deadline `timeout` from now, in whole ticks (at least one).
pub fn deadline_ticks(timeout: Duration) -> u64 {
    (timeout.as_nanos().div_ceil(EPOCH_TICK.as_nanos()) as u64).max(1)
}

/// How often an idle ticker checks that its engine still exists.
const IDLE_CHECK: Duration = Duration::from_secs(1);

#[derive(Default)]
pub struct EpochTicker {
    calls: Mutex<usize>,
    call_started: Condvar,
}

/// Held for as long as guest code may run; the ticker ticks while any is.
pub struct TickingWhile<'a>(&'a EpochTicker);

impl EpochTicker {
    /// Starts the thread; `tick` advances the epoch, false once the engine
    /// is gone (the thread ends then).
    pub fn spawn(tick: impl Fn() -> bool + Send + 'static) -> Arc<EpochTicker> {
        let ticker = Arc::new(EpochTicker::default());
        let shared = Arc::clone(&ticker);
        std::thread::Builder::new()
            .name("epoch-ticker".into())
            .spawn(move || {
                loop {
                    if shared.wait_for_a_call() {
                        // The first tick a whole tick after the call began:
                        // a deadline of n ticks never ends before n ticks.
                        std::thread::sleep(EPOCH_TICK);
                    }
                    if !tick() {
                        return;
                    }
                }
            })
            .expect("spawning the epoch ticker thread");
        ticker
    }

    /// Marks a call in flight until the guard is dropped.
    pub fn call(&self) -> TickingWhile<'_> {
        *self.count() += 1;
        self.call_started.notify_one();
        TickingWhile(self)
    }

    /// Waits until a call is in flight (true), or up to `IDLE_CHECK` (false).
    fn wait_for_a_call(&self) -> bool {
        let calls = self.count();
        let (calls, _) = self
            .call_started
            .wait_timeout_while(calls, IDLE_CHECK, |calls| *calls == 0)
            .unwrap_or_else(PoisonError::into_inner);
        *calls > 0
    }

    fn count(&self) -> std::sync::MutexGuard<'_, usize> {
        self.calls.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Drop for TickingWhile<'_> {
    fn drop(&mut self) {
        *self.0.count() -= 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::mpsc;

    #[test]
    fn ticks_while_a_call_runs_and_sleeps_between_calls() {
        let (ticked, ticks) = mpsc::channel();
        let running = Arc::new(AtomicBool::new(true));
        let alive = Arc::clone(&running);
        let ticker = EpochTicker::spawn(move || {
            let _ = ticked.send(());
            alive.load(Ordering::SeqCst)
        });
        // Idle: the only ticks are the checks that the engine exists, one
        // a second; none comes within half of that.
        assert!(ticks.recv_timeout(IDLE_CHECK / 2).is_err());

        let call = ticker.call();
        for _ in 0..3 {
            ticks
                .recv_timeout(Duration::from_secs(5))
                .expect("no tick while a call ran");
        }
        drop(call);
        // At most the tick already under way, then quiet again.
        let _ = ticks.recv_timeout(EPOCH_TICK * 5);
        assert!(ticks.recv_timeout(IDLE_CHECK / 2).is_err());

        running.store(false, Ordering::SeqCst);
        let _call = ticker.call();
        // The engine gone, the thread ends: the channel closes.
        while ticks.recv_timeout(Duration::from_secs(5)).is_ok() {}
        assert!(matches!(
            ticks.recv_timeout(Duration::from_millis(1)),
            Err(mpsc::RecvTimeoutError::Disconnected)
        ));
    }
}
