//! Group commit: concurrent requests share one durable transaction (the webhook
//! acknowledgements, the inbox's read marks, the dispatcher's finished sends).
//!
//! Each request pushes its job (with a reply channel) onto a bounded queue and waits. A
//! committer task takes whatever is queued, up to a batch size, and hands the batch to a
//! commit function that answers every waiter after the commit. With `parallel` = 1 (SQLite:
//! one writer) one batch commits at a time and the next one gathers while it syncs; on
//! PostgreSQL a few batches may commit side by side.

use std::future::Future;
use std::sync::{Arc, Mutex};
use tokio::sync::{Semaphore, mpsc};

/// How many batches may commit side by side on a backend: one on SQLite (one writer; the
/// next batch gathers while it syncs), a few on PostgreSQL.
pub fn parallel_commits(backend: crate::Backend) -> usize {
    match backend {
        crate::Backend::Sqlite => 1,
        crate::Backend::Postgres => 4,
    }
}

/// The queue in front of a committer that starts on first use (so building an `AppState`
/// needs no runtime).
pub struct GroupCommit<J> {
    tx: mpsc::Sender<J>,
    rx: Mutex<Option<mpsc::Receiver<J>>>,
}

impl<J: Send + 'static> GroupCommit<J> {
    pub fn new(capacity: usize) -> Self {
        let (tx, rx) = mpsc::channel(capacity);
        Self {
            tx,
            rx: Mutex::new(Some(rx)),
        }
    }

    /// The queue; call [`GroupCommit::start`] before the first job is awaited.
    pub fn sender(&self) -> &mpsc::Sender<J> {
        &self.tx
    }

    /// Starts the committer unless it runs already: up to `parallel` batches of at most
    /// `max_batch` jobs commit at once, each through `commit`.
    pub fn start<F, Fut>(&self, parallel: usize, max_batch: usize, commit: impl FnOnce() -> F)
    where
        F: Fn(Vec<J>) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let Some(rx) = self.rx.lock().unwrap_or_else(|p| p.into_inner()).take() else {
            return;
        };
        tokio::spawn(run(rx, parallel, max_batch, commit()));
    }
}

/// Takes batches off the queue until every sender is gone (the server was dropped).
async fn run<J, F, Fut>(mut rx: mpsc::Receiver<J>, parallel: usize, max_batch: usize, commit: F)
where
    J: Send + 'static,
    F: Fn(Vec<J>) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let slots = Arc::new(Semaphore::new(parallel));
    loop {
        // Wait for a free slot first: while every slot is committing, requests pile up
        // in the queue and the next batch takes them all at once.
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        let Some(first) = rx.recv().await else {
            return;
        };
        let mut batch = Vec::with_capacity(max_batch.min(rx.len() + 1));
        batch.push(first);
        while batch.len() < max_batch {
            match rx.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let committing = commit(batch);
        tokio::spawn(async move {
            committing.await;
            drop(slot);
        });
    }
}
