//! The SQLite write gate: one writer at a time in this process, in order, with webhook
//! acknowledgements first.
//!
//! SQLite has one writer. A writer that finds the lock taken polls for it with sleeps of up
//! to 100 ms, so writers of this process queue here instead, and the next starts the moment
//! the previous commits. Writes that a caller is waiting on to answer a provider (the group
//! commit of webhook bodies) are *urgent*: while they keep coming, background writes (the
//! worker turning rows into messages) hold back (users' writes keep their place in line), for at most [`MAX_DEFERRAL`] each, so a
//! burst of webhooks is acknowledged at the rate the disk commits and processed right after —
//! and processing never stops for longer than that under a flood.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::{Mutex, OwnedMutexGuard};

/// Longest a background write waits for urgent writes to pause.
pub(crate) const MAX_DEFERRAL: Duration = Duration::from_millis(200);
/// How long after the last urgent write a background write still yields: the next urgent
/// batch usually gathers within this time.
const URGENT_GRACE: Duration = Duration::from_millis(3);

#[derive(Debug)]
pub(crate) struct WriteGate {
    lock: Arc<Mutex<()>>,
    /// Urgent writers waiting or writing.
    urgent: AtomicUsize,
    /// When the last urgent write ended, in microseconds since `epoch`.
    last_urgent_us: AtomicU64,
    epoch: Instant,
}

/// One writer's turn; the next writer goes when it is dropped.
#[derive(Debug)]
pub(crate) struct Turn {
    _guard: OwnedMutexGuard<()>,
    urgent: Option<Arc<WriteGate>>,
}

impl Drop for Turn {
    fn drop(&mut self) {
        if let Some(g) = &self.urgent {
            g.last_urgent_us.store(g.micros(), Ordering::Release);
            g.urgent.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

impl WriteGate {
    pub(crate) fn new() -> Arc<Self> {
        Arc::new(Self {
            lock: Arc::new(Mutex::new(())),
            urgent: AtomicUsize::new(0),
            last_urgent_us: AtomicU64::new(0),
            epoch: Instant::now(),
        })
    }

    fn micros(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_micros()).unwrap_or(u64::MAX)
    }

    /// Whether urgent writes are under way (waiting, writing, or just ended).
    fn busy(&self) -> bool {
        if self.urgent.load(Ordering::Acquire) > 0 {
            return true;
        }
        let last = self.last_urgent_us.load(Ordering::Acquire);
        last != 0 && self.micros().saturating_sub(last) < URGENT_GRACE.as_micros() as u64
    }

    /// A turn for a write someone is waiting on: ahead of every background write that has
    /// not yet queued.
    pub(crate) async fn urgent(self: &Arc<Self>) -> Turn {
        self.urgent.fetch_add(1, Ordering::AcqRel);
        let guard = self.lock.clone().lock_owned().await;
        Turn {
            _guard: guard,
            urgent: Some(self.clone()),
        }
    }

    /// A turn in arrival order (a user's request).
    pub(crate) async fn normal(self: &Arc<Self>) -> Turn {
        Turn {
            _guard: self.lock.clone().lock_owned().await,
            urgent: None,
        }
    }

    /// A turn for a background write: after urgent writes pause, or after
    /// [`MAX_DEFERRAL`].
    pub(crate) async fn background(self: &Arc<Self>) -> Turn {
        let deadline = Instant::now() + MAX_DEFERRAL;
        while self.busy() && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        Turn {
            _guard: self.lock.clone().lock_owned().await,
            urgent: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn urgent_writes_go_first_and_background_writes_still_get_their_turn() {
        let gate = WriteGate::new();
        // An urgent writer holds the gate; a background writer and then a second urgent
        // writer arrive. The urgent one goes next although it came later.
        let first = gate.urgent().await;
        let order = Arc::new(std::sync::Mutex::new(Vec::new()));
        let (g, o) = (gate.clone(), order.clone());
        let background = tokio::spawn(async move {
            let _t = g.background().await;
            o.lock().unwrap().push("background");
        });
        tokio::time::sleep(Duration::from_millis(5)).await;
        let (g, o) = (gate.clone(), order.clone());
        let urgent = tokio::spawn(async move {
            let _t = g.urgent().await;
            o.lock().unwrap().push("urgent");
        });
        tokio::time::sleep(Duration::from_millis(5)).await;
        drop(first);
        urgent.await.unwrap();
        background.await.unwrap();
        assert_eq!(*order.lock().unwrap(), ["urgent", "background"]);

        // Under an unbroken stream of urgent writes, a background write waits at most
        // MAX_DEFERRAL before it queues.
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (g, s) = (gate.clone(), stop.clone());
        let flood = tokio::spawn(async move {
            while !s.load(Ordering::Relaxed) {
                let _t = g.urgent().await;
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        });
        tokio::time::sleep(Duration::from_millis(5)).await;
        let started = Instant::now();
        let turn = gate.background().await;
        let waited = started.elapsed();
        drop(turn);
        stop.store(true, Ordering::Relaxed);
        flood.await.unwrap();
        assert!(
            waited >= MAX_DEFERRAL,
            "it deferred to the flood: {waited:?}"
        );
        assert!(
            waited < MAX_DEFERRAL * 10,
            "but it got its turn: {waited:?}"
        );
    }
}
