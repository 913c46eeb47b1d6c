//! Group commit of webhook bodies (see [`frontdesk_store::group_commit`]): each batch of up to
//! [`MAX_BATCH`] bodies is stored with one [`Store::store_webhooks`] call, and every waiter
//! is answered only after the commit.

use crate::metrics::Metrics;
use bytes::Bytes;
use frontdesk_domain::ChannelId;
use frontdesk_store::group_commit::{GroupCommit, parallel_commits};
use frontdesk_store::{Store, StoreError, Stored, TenantCtx};
use std::sync::Arc;
use tokio::sync::{Notify, oneshot};

/// Most bodies one transaction carries.
pub const MAX_BATCH: usize = 512;
/// Bodies waiting for a commit before new ones are refused (503, the provider retries).
const QUEUE_CAPACITY: usize = 8192;

/// Why a body was not stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum IngestError {
    /// The queue is full: commits are not keeping up.
    #[error("the webhook inbox is busy")]
    Busy,
    /// The database refused or failed the commit.
    #[error("the webhook inbox could not be written")]
    Database,
}

struct Job {
    ctx: TenantCtx,
    channel: ChannelId,
    body: Bytes,
    reply: oneshot::Sender<Result<Stored, IngestError>>,
}

/// The queue in front of the inbox, and the signal the inbox worker waits on.
pub(crate) struct Ingest {
    queue: GroupCommit<Job>,
    store: Store,
    metrics: Arc<Metrics>,
    wakeup: Arc<Notify>,
}

impl Ingest {
    pub(crate) fn new(store: Store, metrics: Arc<Metrics>) -> Self {
        Self {
            queue: GroupCommit::new(QUEUE_CAPACITY),
            store,
            metrics,
            wakeup: Arc::new(Notify::new()),
        }
    }

    /// Notified after each commit that stored new rows.
    pub(crate) fn wakeup(&self) -> Arc<Notify> {
        self.wakeup.clone()
    }

    /// Stores one body; resolves once it is durably committed (or known to be a duplicate).
    pub(crate) async fn submit(
        &self,
        ctx: TenantCtx,
        channel: ChannelId,
        body: Bytes,
    ) -> Result<Stored, IngestError> {
        self.start_committer();
        let (reply, answer) = oneshot::channel();
        self.queue
            .sender()
            .try_send(Job {
                ctx,
                channel,
                body,
                reply,
            })
            .map_err(|_| IngestError::Busy)?;
        // A dropped reply means the committer is gone (runtime shutting down): not stored.
        answer.await.unwrap_or(Err(IngestError::Database))
    }

    fn start_committer(&self) {
        let parallel = parallel_commits(self.store.backend());
        self.queue.start(parallel, MAX_BATCH, || {
            let (store, metrics, wakeup) = (
                self.store.clone(),
                self.metrics.clone(),
                self.wakeup.clone(),
            );
            move |batch| {
                let (store, metrics, wakeup) = (store.clone(), metrics.clone(), wakeup.clone());
                async move { commit(&store, batch, &metrics, &wakeup).await }
            }
        });
    }
}

/// One transaction for the batch; if a statement in it fails (one bad row, not a dead
/// database), each body is retried alone so the others are not refused with it.
async fn commit(store: &Store, mut batch: Vec<Job>, metrics: &Metrics, wakeup: &Notify) {
    // Grouped by organisation: the transaction switches tenant scope once per group.
    batch.sort_by_key(|j| j.ctx.org_id());
    match store_batch(store, &batch).await {
        Ok(results) => answer(batch, results, metrics, wakeup),
        Err(e) if batch.len() > 1 && is_statement_error(&e) => {
            tracing::warn!(error = %crate::error::error_chain(&e), bodies = batch.len(), "webhook group commit failed; storing its bodies one by one");
            for job in batch {
                match store_batch(store, std::slice::from_ref(&job)).await {
                    Ok(results) => answer(vec![job], results, metrics, wakeup),
                    Err(e) => {
                        tracing::error!(error = %crate::error::error_chain(&e), channel = %job.channel, "webhook body not stored");
                        let _ = job.reply.send(Err(IngestError::Database));
                    }
                }
            }
        }
        Err(e) => {
            tracing::error!(error = %crate::error::error_chain(&e), bodies = batch.len(), "webhook group commit failed");
            for job in batch {
                let _ = job.reply.send(Err(IngestError::Database));
            }
        }
    }
}

async fn store_batch(store: &Store, batch: &[Job]) -> Result<Vec<Stored>, StoreError> {
    let items: Vec<(&TenantCtx, ChannelId, &[u8])> = batch
        .iter()
        .map(|j| (&j.ctx, j.channel, &j.body[..]))
        .collect();
    store.store_webhooks(&items).await
}

fn answer(batch: Vec<Job>, results: Vec<Stored>, metrics: &Metrics, wakeup: &Notify) {
    let new = results
        .iter()
        .filter(|r| matches!(r, Stored::New(_)))
        .count() as u64;
    metrics.record_webhook_commit(new, results.len() as u64 - new);
    if new > 0 {
        wakeup.notify_waiters();
        // Also leave a permit, so a worker that was busy (not yet waiting) sees it.
        wakeup.notify_one();
    }
    for (job, result) in batch.into_iter().zip(results) {
        let _ = job.reply.send(Ok(result));
    }
}

/// A failed statement (a constraint, a row the database refused), as opposed to a
/// connection or pool failure that would fail every body alike.
fn is_statement_error(e: &StoreError) -> bool {
    matches!(e, StoreError::Query(sqlx_error) if sqlx_error.as_database_error().is_some())
}
