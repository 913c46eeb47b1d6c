//! The conversation view's read marks, group-committed (see [`frontdesk_store::group_commit`]):
//! opening a conversation writes how far the user has read it, and on SQLite one durable
//! write per view was most of a busy inbox's cost. Each batch is one
//! [`Store::mark_read_batch`] call; the view answers after its mark is committed, so a list
//! loaded right after it never shows the conversation unread.

use frontdesk_domain::ConversationId;
use frontdesk_store::group_commit::{GroupCommit, parallel_commits};
use frontdesk_store::inbox::ReadMark;
use frontdesk_store::{Store, TenantCtx};
use tokio::sync::oneshot;

/// Most marks one transaction carries.
const MAX_BATCH: usize = 256;
/// Marks waiting for a commit before a view waits for room.
const QUEUE_CAPACITY: usize = 4096;

/// The mark could not be stored (the cause is logged once per batch).
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("the read mark could not be stored")]
pub struct MarkFailed;

struct Job {
    mark: ReadMark,
    reply: oneshot::Sender<Result<bool, MarkFailed>>,
}

pub(crate) struct ReadMarks {
    queue: GroupCommit<Job>,
    store: Store,
}

impl ReadMarks {
    pub(crate) fn new(store: Store) -> Self {
        Self {
            queue: GroupCommit::new(QUEUE_CAPACITY),
            store,
        }
    }

    /// Marks the conversation read for the caller; resolves once committed, with whether
    /// anything was unread.
    pub(crate) async fn mark(
        &self,
        ctx: &TenantCtx,
        conversation: ConversationId,
    ) -> Result<bool, MarkFailed> {
        let parallel = parallel_commits(self.store.backend());
        self.queue.start(parallel, MAX_BATCH, || {
            let store = self.store.clone();
            move |batch| commit(store.clone(), batch)
        });
        let (reply, answer) = oneshot::channel();
        let job = Job {
            mark: ReadMark {
                ctx: ctx.clone(),
                conversation,
            },
            reply,
        };
        self.queue
            .sender()
            .send(job)
            .await
            .map_err(|_| MarkFailed)?;
        // A dropped reply means the committer is gone (runtime shutting down).
        answer.await.unwrap_or(Err(MarkFailed))
    }
}

async fn commit(store: Store, batch: Vec<Job>) {
    let marks: Vec<ReadMark> = batch.iter().map(|j| j.mark.clone()).collect();
    match store.mark_read_batch(&marks).await {
        Ok(changed) => {
            for (job, c) in batch.into_iter().zip(changed) {
                let _ = job.reply.send(Ok(c));
            }
        }
        Err(e) => {
            tracing::error!(error = %crate::error::error_chain(&e), marks = batch.len(), "read marks not stored");
            for job in batch {
                let _ = job.reply.send(Err(MarkFailed));
            }
        }
    }
}
