//! Contact imports in the background: the worker leases one queued import at a time and
//! imports one chunk of its rows per transaction (progress saved with the chunk), then lets
//! the lease go, so several imports take turns and a crash resumes at the last chunk.

use crate::Worker;
use frontdesk_store::{BulkTable, StoreError};

impl Worker {
    /// Imports chunks of queued imports until none is left (or `max` chunks were done).
    /// Returns how many chunks were done.
    pub async fn process_imports(&self, max: usize) -> Result<usize, StoreError> {
        let mut done = 0;
        while done < max {
            let Some((ctx, id)) = self
                .store
                .claim_import(self.now(), time::Duration::seconds(120))
                .await?
            else {
                break;
            };
            let mut tx = self.store.begin_background(&ctx).await?;
            match tx.import_next_chunk(id).await {
                Ok(more) => {
                    tx.commit().await?;
                    if !more {
                        self.refresh_statistics(BulkTable::CONTACT_IMPORT).await;
                    }
                }
                Err(e) => {
                    // Left leased: tried again when the lease runs out.
                    tracing::error!(import = %id, error = %e, "import chunk failed");
                    return Err(e);
                }
            }
            done += 1;
            tokio::task::yield_now().await;
        }
        Ok(done)
    }
}
