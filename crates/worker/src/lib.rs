//! Frontdesk's background work, run inside `serve` (or as its own process on the
//! scale-out path): webhook rows become data, the outbox is sent at each number's rate,
//! media is fetched into the blob store, snoozed conversations wake, and queue tokens
//! still live when their local day is over end.
//!
//! Tests call [`Worker::drain`] to run everything that is due now, so they never sleep
//! for timing.

pub mod blob;
mod campaigns;
pub mod consent;
mod dispatch;
mod imports;
mod ingest;
pub mod queue;

pub use blob::BlobStore;
pub use dispatch::DispatchSettings;

use frontdesk_store::{Store, StoreError};
use std::sync::Arc;
use std::time::Duration;
use time::OffsetDateTime;
use tokio::sync::Notify;

/// Wake-ups between the request side and the workers: new webhook rows, new sends.
#[derive(Debug, Default)]
pub struct Signals {
    pub inbox: Arc<Notify>,
    pub outbox: Arc<Notify>,
}

/// The provider client for a channel, from its settings and opened secrets.
pub fn provider_client(
    http: reqwest::Client,
    creds: &frontdesk_store::ChannelCredentials,
) -> frontdesk_whatsapp::client::ProviderClient {
    use frontdesk_whatsapp::client::{ClientConfig, ProviderClient, ProviderKind};
    let v = &creds.view;
    ProviderClient::new(
        http,
        ClientConfig {
            kind: match v.provider {
                frontdesk_store::Provider::Cloud => ProviderKind::Cloud,
                frontdesk_store::Provider::Whapi => ProviderKind::Whapi,
            },
            base_url: v.api_base_url.clone(),
            api_version: v.api_version.clone(),
            phone_number_id: v.phone_number_id.clone(),
            waba_id: v.waba_id.clone(),
            access_token: creds.access_token.clone(),
        },
    )
}

/// The messages per second a Cloud API throughput level allows, when the level names one.
pub fn throughput_of_level(level: &str) -> Option<i32> {
    match level {
        "STANDARD" => Some(80),
        "HIGH" => Some(1000),
        _ => None,
    }
}

/// How often the worker reopens snoozed conversations whose time has come.
const SNOOZE_TICK: Duration = Duration::from_secs(15);

/// How often the worker ends queue tokens left live from a past local day: within a
/// minute of midnight in each organisation's time zone.
const QUEUE_DAY_END_TICK: Duration = Duration::from_secs(60);

/// How often the worker executes erasure requests whose delay is over.
const ERASURE_TICK: Duration = Duration::from_secs(60);

/// How often the worker sweeps the whole blob store for files no organisation references.
const BLOB_SWEEP_TICK: Duration = Duration::from_secs(3600);

/// Blobs written or touched this recently are never collected (an upload's bytes land
/// before its media row commits).
pub const BLOB_GRACE: Duration = Duration::from_secs(600);

/// How often the worker looks for campaign steps that are due.
const CAMPAIGN_TICK: Duration = Duration::from_millis(100);

/// How often the worker checkpoints SQLite's write-ahead log (see `Store::checkpoint`).
const CHECKPOINT_TICK: Duration = Duration::from_secs(1);

/// The clock the worker reads (tests move it).
pub type Now = Arc<dyn Fn() -> OffsetDateTime + Send + Sync>;

/// The background worker. Cheap to share (`Arc`).
pub struct Worker {
    store: Store,
    blobs: BlobStore,
    now: Now,
    signals: Arc<Signals>,
    dispatch: dispatch::Dispatch,
}

impl Worker {
    pub fn new(
        store: Store,
        blobs: BlobStore,
        signals: Arc<Signals>,
        now: Now,
        settings: DispatchSettings,
    ) -> Arc<Self> {
        Arc::new(Self {
            store,
            blobs,
            now,
            signals,
            dispatch: dispatch::Dispatch::new(settings),
        })
    }

    fn now(&self) -> OffsetDateTime {
        (self.now)()
    }

    /// Refreshes the planner's statistics after a bulk write; a failure only costs speed
    /// (autovacuum catches up), so it is logged and the work goes on.
    async fn refresh_statistics(&self, tables: &[frontdesk_store::BulkTable]) {
        if let Err(e) = self.store.refresh_statistics(tables).await {
            tracing::warn!(error = %e, ?tables, "planner statistics were not refreshed");
        }
    }

    pub fn signals(&self) -> &Arc<Signals> {
        &self.signals
    }

    pub fn blobs(&self) -> &BlobStore {
        &self.blobs
    }

    /// Runs everything due now until nothing is left: webhook rows, sends, receipts,
    /// media downloads and contact imports (including work that one step creates for the
    /// next).
    pub async fn drain(self: &Arc<Self>) -> Result<(), StoreError> {
        self.store.wake_snoozed(self.now()).await?;
        self.store.expire_past_queue_tokens(self.now()).await?;
        // No grace here: a test drains after its uploads have committed.
        self.execute_erasures(Duration::ZERO).await?;
        loop {
            let a = self.process_inbox(usize::MAX).await?;
            let b = self.dispatch_due(true).await?;
            let c = self.process_imports(usize::MAX).await?;
            // Steps due now only: a campaign paced to later seconds waits for the clock.
            let d = self.process_campaigns(1000).await?;
            if a == 0 && b == 0 && c == 0 && d == 0 {
                return Ok(());
            }
        }
    }

    /// Executes the erasure requests whose delay is over, then deletes the blobs their
    /// contacts' media used that no organisation references any more. Answers how many
    /// requests were executed.
    pub async fn execute_erasures(&self, grace: Duration) -> Result<usize, StoreError> {
        let reports = self.store.execute_due_erasures(self.now()).await?;
        let shas: Vec<String> = reports.iter().flat_map(|r| r.blobs.clone()).collect();
        if !shas.is_empty() {
            match blob::collect_garbage(&self.store, &self.blobs, Some(shas), grace).await {
                Ok(c) => tracing::info!(
                    deleted = c.deleted,
                    kept_recent = c.recent,
                    "erased contacts' blobs collected"
                ),
                // The hourly sweep retries whatever is left.
                Err(e) => tracing::error!(error = %e, "collecting erased contacts' blobs failed"),
            }
        }
        Ok(reports.len())
    }

    /// Runs the worker's loops until `shutdown` resolves.
    pub fn spawn(
        self: &Arc<Self>,
        shutdown: tokio::sync::watch::Receiver<bool>,
    ) -> tokio::task::JoinHandle<()> {
        let inbox = {
            let me = self.clone();
            let mut stop = shutdown.clone();
            tokio::spawn(async move {
                let mut last_wake = std::time::Instant::now();
                let mut last_day_end: Option<std::time::Instant> = None;
                let mut last_erasure: Option<std::time::Instant> = None;
                let mut last_sweep = std::time::Instant::now();
                loop {
                    if let Err(e) = me.process_inbox(50_000).await {
                        tracing::error!(error = %e, "webhook processing failed; retrying");
                    }
                    // A few import chunks per turn, so webhooks never wait long behind them.
                    match me.process_imports(5).await {
                        Ok(5) => me.signals.inbox.notify_one(),
                        Ok(_) => {}
                        Err(e) => tracing::error!(error = %e, "contact import failed; retrying"),
                    }
                    // Snoozed conversations wake within SNOOZE_TICK of their time.
                    if last_wake.elapsed() >= SNOOZE_TICK {
                        last_wake = std::time::Instant::now();
                        if let Err(e) = me.store.wake_snoozed(me.now()).await {
                            tracing::error!(error = %e, "waking snoozed conversations failed");
                        }
                    }
                    if last_day_end.is_none_or(|t| t.elapsed() >= QUEUE_DAY_END_TICK) {
                        last_day_end = Some(std::time::Instant::now());
                        if let Err(e) = me.store.expire_past_queue_tokens(me.now()).await {
                            tracing::error!(error = %e, "ending past days' queue tokens failed");
                        }
                    }
                    if last_erasure.is_none_or(|t| t.elapsed() >= ERASURE_TICK) {
                        last_erasure = Some(std::time::Instant::now());
                        if let Err(e) = me.execute_erasures(BLOB_GRACE).await {
                            tracing::error!(error = %e, "executing due erasure requests failed");
                        }
                    }
                    if last_sweep.elapsed() >= BLOB_SWEEP_TICK {
                        last_sweep = std::time::Instant::now();
                        match blob::collect_garbage(&me.store, &me.blobs, None, BLOB_GRACE).await {
                            Ok(c) => tracing::info!(
                                checked = c.checked,
                                deleted = c.deleted,
                                "blob store swept"
                            ),
                            Err(e) => tracing::error!(error = %e, "sweeping the blob store failed"),
                        }
                    }
                    tokio::select! {
                        () = me.signals.inbox.notified() => {}
                        () = tokio::time::sleep(Duration::from_secs(1)) => {}
                        _ = stop.changed() => return,
                    }
                }
            })
        };
        let campaigns = {
            let me = self.clone();
            let mut stop = shutdown.clone();
            tokio::spawn(async move {
                loop {
                    if let Err(e) = me.process_campaigns(100).await {
                        tracing::error!(error = %e, "campaign steps failed; retrying");
                    }
                    // Steps are paced to the number's throughput a second at a time.
                    tokio::select! {
                        () = tokio::time::sleep(CAMPAIGN_TICK) => {}
                        _ = stop.changed() => return,
                    }
                }
            })
        };
        let checkpoints = {
            let me = self.clone();
            let mut stop = shutdown.clone();
            tokio::spawn(async move {
                loop {
                    match me.store.checkpoint().await {
                        Ok(None) => return,
                        Ok(Some(_)) => {}
                        Err(e) => tracing::warn!(error = %e, "WAL checkpoint failed; retrying"),
                    }
                    tokio::select! {
                        () = tokio::time::sleep(CHECKPOINT_TICK) => {}
                        _ = stop.changed() => return,
                    }
                }
            })
        };
        let me = self.clone();
        let mut stop = shutdown;
        tokio::spawn(async move {
            loop {
                let n = match me.dispatch_due(false).await {
                    Ok(n) => n,
                    Err(e) => {
                        tracing::error!(error = %e, "outbox dispatch failed; retrying");
                        0
                    }
                };
                if n > 0 {
                    continue;
                }
                tokio::select! {
                    () = me.signals.outbox.notified() => {}
                    () = tokio::time::sleep(Duration::from_millis(500)) => {}
                    _ = stop.changed() => break,
                }
            }
            inbox.abort();
            campaigns.abort();
            checkpoints.abort();
        })
    }
}
