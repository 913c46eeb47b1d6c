//! Campaigns in the background: the worker claims campaigns whose step is due (a scheduled
//! start, an audience snapshot batch, or the next second's sends) and runs one step per
//! transaction; the step itself says when the campaign is due again.

use crate::Worker;
use frontdesk_store::StoreError;

/// How long a claimed campaign is held before another worker may take it.
const LEASE: time::Duration = time::Duration::seconds(60);

impl Worker {
    /// Runs due campaign steps until none is due now (or `max` steps ran). Returns how many
    /// steps ran.
    pub async fn process_campaigns(&self, max: usize) -> Result<usize, StoreError> {
        let mut done = 0;
        while done < max {
            let claimed = self
                .store
                .claim_campaigns(self.now(), LEASE, (max - done).min(20) as i64)
                .await?;
            if claimed.is_empty() {
                break;
            }
            for (ctx, id) in claimed {
                let mut tx = self.store.begin_background(&ctx).await?;
                match tx.campaign_step(id, self.now()).await {
                    Ok(report) => {
                        tx.commit().await?;
                        if report.queued > 0 {
                            self.signals.outbox.notify_one();
                        }
                        if let Some(tables) = report.refresh {
                            self.refresh_statistics(tables).await;
                        }
                    }
                    Err(e) => {
                        // Left leased: tried again when the lease runs out.
                        tracing::error!(campaign = %id, error = %e, "campaign step failed");
                    }
                }
                done += 1;
                tokio::task::yield_now().await;
            }
        }
        Ok(done)
    }
}
