//! The outbox dispatcher: claims due rows, shapes each number's traffic to its throughput
//! with a token bucket, calls the provider, and records the answer: the provider's id, a
//! retry with exponential backoff and jitter for transient errors, or a failure with the
//! provider's code and reason.

use crate::Worker;
use frontdesk_domain::{Bsuid, ChannelId, E164, MediaId, MessageId};
use frontdesk_store::group_commit::{GroupCommit, parallel_commits};
use frontdesk_store::{FinishedSend, OutboxAction, OutboxJob, Store, StoreError};
use frontdesk_whatsapp::client::{ProviderClient, ProviderError};
use frontdesk_whatsapp::{ErrorClass, Outbound, Recipient, media_type_allowed};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{Semaphore, oneshot};

/// How the dispatcher behaves.
#[derive(Debug, Clone)]
pub struct DispatchSettings {
    /// Provider calls in flight at once (all numbers together).
    pub max_in_flight: usize,
    /// Attempts before a transient error becomes a failure.
    pub max_attempts: i32,
    /// Largest media file fetched from a provider.
    pub media_max_bytes: u64,
    /// How long a claimed row is held before another dispatcher may take it.
    pub lease: time::Duration,
}

impl Default for DispatchSettings {
    fn default() -> Self {
        Self {
            max_in_flight: 128,
            max_attempts: 10,
            media_max_bytes: 64 * 1024 * 1024,
            lease: time::Duration::seconds(120),
        }
    }
}

/// A number's send slots: one every `1/rate` seconds (a GCRA token bucket without burst).
struct Bucket {
    interval: Duration,
    next_free: Instant,
}

impl Bucket {
    /// The instant this send may start, reserving its slot.
    fn reserve(&mut self, now: Instant) -> Instant {
        let start = self.next_free.max(now);
        self.next_free = start + self.interval;
        start
    }

    /// The provider said "too fast": nothing more before `until`.
    fn hold_until(&mut self, until: Instant) {
        self.next_free = self.next_free.max(until);
    }
}

struct CachedClient {
    client: ProviderClient,
    fetched: Instant,
}

pub(crate) struct Dispatch {
    settings: DispatchSettings,
    http: reqwest::Client,
    permits: Arc<Semaphore>,
    buckets: Mutex<HashMap<ChannelId, Bucket>>,
    clients: Mutex<HashMap<ChannelId, CachedClient>>,
    /// Sends the provider took, recorded together (group commit).
    finishes: GroupCommit<FinishJob>,
}

/// A send to record, with the sender waiting for the commit.
struct FinishJob {
    send: FinishedSend,
    reply: oneshot::Sender<Result<(), StoreError>>,
}

/// Most sends one record transaction carries.
const MAX_FINISH_BATCH: usize = 256;
/// Sends waiting to be recorded before senders wait for room.
const FINISH_QUEUE: usize = 4096;

/// Longest wait for a slot before a claimed row is given back instead.
const MAX_SLOT_WAIT: Duration = Duration::from_secs(5);
/// How long channel settings and secrets are reused before being read again.
const CLIENT_TTL: Duration = Duration::from_secs(30);
/// How long the provider's id for an uploaded file is reused: the provider keeps uploads
/// for 30 days; a margin keeps a queued send from naming an expired one.
const PROVIDER_UPLOAD_REUSE: time::Duration = time::Duration::days(25);

impl Dispatch {
    pub(crate) fn new(settings: DispatchSettings) -> Self {
        Self {
            permits: Arc::new(Semaphore::new(settings.max_in_flight.max(1))),
            settings,
            http: frontdesk_whatsapp::client::http_client(),
            buckets: Mutex::new(HashMap::new()),
            clients: Mutex::new(HashMap::new()),
            finishes: GroupCommit::new(FINISH_QUEUE),
        }
    }
}

/// What became of one job.
enum Outcome {
    Done,
    Retry(time::Duration, String),
    Fail(Option<i64>, String),
    /// No slot soon: give the row back for later, without spending an attempt.
    Later(time::Duration),
}

/// `NotFound` as `None`; other errors stay errors.
fn found<T>(r: Result<T, StoreError>) -> Result<Option<T>, StoreError> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(StoreError::NotFound) => Ok(None),
        Err(e) => Err(e),
    }
}

fn backoff(attempts: i32, err: &ProviderError) -> time::Duration {
    let base = err
        .retry_after
        .unwrap_or_default()
        .max(err.class.min_delay())
        .max(Duration::from_secs(1));
    let exp = base.saturating_mul(1u32 << attempts.clamp(1, 10).saturating_sub(1) as u32);
    let capped = exp.min(Duration::from_secs(15 * 60));
    let mut r = [0u8; 4];
    let _ = getrandom::fill(&mut r);
    let jitter = capped.mul_f64(f64::from(u32::from_le_bytes(r)) / f64::from(u32::MAX) / 2.0);
    time::Duration::try_from(capped + jitter).unwrap_or(time::Duration::minutes(15))
}

impl Worker {
    /// Claims due outbox rows and runs them. With `wait`, returns after every claimed row
    /// finished (tests, `drain`); otherwise rows run in the background within the
    /// in-flight limit. Returns how many rows were claimed.
    pub(crate) async fn dispatch_due(self: &Arc<Self>, wait: bool) -> Result<usize, StoreError> {
        let mut total = 0;
        loop {
            let room = self.dispatch.permits.available_permits().min(200);
            if room == 0 {
                tokio::time::sleep(Duration::from_millis(5)).await;
                continue;
            }
            let jobs = self
                .store
                .claim_outbox(self.now(), self.dispatch.settings.lease, room as i64)
                .await?;
            if jobs.is_empty() {
                return Ok(total);
            }
            total += jobs.len();
            let mut set = tokio::task::JoinSet::new();
            for job in jobs {
                let permit = self
                    .dispatch
                    .permits
                    .clone()
                    .acquire_owned()
                    .await
                    .expect("the semaphore is never closed");
                let me = self.clone();
                set.spawn(async move {
                    me.run_job(job).await;
                    drop(permit);
                });
            }
            if wait {
                while set.join_next().await.is_some() {}
            } else {
                set.detach_all();
                return Ok(total);
            }
        }
    }

    async fn run_job(&self, job: OutboxJob) {
        let outcome = match self.attempt(&job).await {
            Ok(o) => o,
            Err(e) => {
                // The database failed around the call: the lease runs out and the row is
                // claimed again (a send already accepted may then go twice; the lease
                // makes that at most once per attempt).
                tracing::error!(job = %job.id, error = %e, "outbox job could not be recorded");
                return;
            }
        };
        if let Err(e) = self.record(&job, outcome).await {
            tracing::error!(job = %job.id, error = %e, "outbox result could not be recorded");
        }
    }

    async fn record(&self, job: &OutboxJob, outcome: Outcome) -> Result<(), StoreError> {
        match outcome {
            Outcome::Done => Ok(()),
            Outcome::Later(wait) => self.store.release_outbox(job, self.now() + wait).await,
            Outcome::Retry(wait, error) => {
                let mut tx = self.store.begin(&job.ctx).await?;
                tx.retry_job(job, self.now() + wait, &error).await?;
                tx.commit().await
            }
            Outcome::Fail(code, title) => {
                let mut tx = self.store.begin(&job.ctx).await?;
                tx.fail_job(job, code, &title).await?;
                tx.commit().await
            }
        }
    }

    async fn client(&self, job: &OutboxJob) -> Result<ProviderClient, StoreError> {
        if let Some(c) = self
            .dispatch
            .clients
            .lock()
            .expect("lock")
            .get(&job.channel)
            && c.fetched.elapsed() < CLIENT_TTL
        {
            return Ok(c.client.clone());
        }
        let mut tx = self.store.begin_read(&job.ctx).await?;
        let creds = tx.channel_credentials(job.channel).await?;
        tx.commit().await?;
        let v = &creds.view;
        let client = crate::provider_client(self.dispatch.http.clone(), &creds);
        let interval = Duration::from_secs_f64(1.0 / f64::from(v.throughput_mps.max(1)));
        self.dispatch
            .buckets
            .lock()
            .expect("lock")
            .entry(job.channel)
            .and_modify(|b| b.interval = interval)
            .or_insert(Bucket {
                interval,
                next_free: Instant::now(),
            });
        self.dispatch.clients.lock().expect("lock").insert(
            job.channel,
            CachedClient {
                client: client.clone(),
                fetched: Instant::now(),
            },
        );
        Ok(client)
    }

    fn forget_client(&self, channel: ChannelId) {
        self.dispatch.clients.lock().expect("lock").remove(&channel);
    }

    /// Waits for the number's next send slot, or says to come back later.
    async fn slot(&self, channel: ChannelId) -> Option<Duration> {
        let start = {
            let mut buckets = self.dispatch.buckets.lock().expect("lock");
            let bucket = buckets.get_mut(&channel)?;
            let now = Instant::now();
            let start = bucket.reserve(now);
            if start.duration_since(now) > MAX_SLOT_WAIT {
                // Give the slot back: this row will be claimed again when it is near.
                bucket.next_free -= bucket.interval;
                return Some(start.duration_since(now));
            }
            start
        };
        tokio::time::sleep_until(start.into()).await;
        None
    }

    fn throttled(&self, channel: ChannelId, err: &ProviderError) {
        let pause = err.retry_after.unwrap_or(Duration::from_secs(1));
        if let Some(b) = self
            .dispatch
            .buckets
            .lock()
            .expect("lock")
            .get_mut(&channel)
        {
            b.hold_until(Instant::now() + pause);
        }
    }

    /// Turns a provider error into a retry or a failure.
    fn judge(&self, job: &OutboxJob, err: ProviderError) -> Outcome {
        match err.class {
            ErrorClass::Throttled => self.throttled(job.channel, &err),
            ErrorClass::Unauthorized => self.forget_client(job.channel),
            _ => {}
        }
        let title = match &err.details {
            Some(d) if !d.is_empty() => format!("{} ({d})", err.title),
            _ => err.title.clone(),
        };
        if err.class.retryable() && job.attempts < self.dispatch.settings.max_attempts {
            Outcome::Retry(backoff(job.attempts, &err), title)
        } else {
            Outcome::Fail(err.code, title)
        }
    }

    async fn attempt(&self, job: &OutboxJob) -> Result<Outcome, StoreError> {
        let client = match self.client(job).await {
            Ok(c) => c,
            // The channel was disconnected: its rows went with it, nothing to do.
            Err(StoreError::NotFound) => return Ok(Outcome::Done),
            Err(e) => return Err(e),
        };
        match job.action {
            OutboxAction::Send => self.send(job, &client).await,
            OutboxAction::MarkRead => {
                let Some(id) = self
                    .outbound_row(job)
                    .await?
                    .and_then(|r| r.provider_message_id)
                else {
                    return self.finish(job).await;
                };
                match client.mark_read(&id).await {
                    Ok(()) => self.finish(job).await,
                    Err(e) => Ok(self.judge(job, e)),
                }
            }
            OutboxAction::FetchMedia => self.fetch_media(job, &client).await,
        }
    }

    /// The message a send or read-receipt job names, with its recipient; `None` when it is
    /// gone (deleted with its channel or contact).
    async fn outbound_row(
        &self,
        job: &OutboxJob,
    ) -> Result<Option<frontdesk_store::OutboundRow>, StoreError> {
        let mut tx = self.store.begin_read(&job.ctx).await?;
        let row = found(tx.outbound_row(MessageId::from_uuid(job.target)).await)?;
        tx.commit().await?;
        Ok(row)
    }

    async fn finish(&self, job: &OutboxJob) -> Result<Outcome, StoreError> {
        let mut tx = self.store.begin(&job.ctx).await?;
        tx.finish_job(job.id).await?;
        tx.commit().await?;
        Ok(Outcome::Done)
    }

    async fn send(&self, job: &OutboxJob, client: &ProviderClient) -> Result<Outcome, StoreError> {
        let message = MessageId::from_uuid(job.target);
        let Some(row) = self.outbound_row(job).await? else {
            return self.finish(job).await;
        };
        if row.status != frontdesk_store::MessageStatus::Queued {
            return self.finish(job).await;
        }
        let outbound: Outbound = match serde_json::from_str(&row.content) {
            Ok(o) => o,
            Err(e) => {
                return Ok(Outcome::Fail(
                    None,
                    format!("stored message is not sendable: {e}"),
                ));
            }
        };
        let to = match (
            row.phone.as_deref().map(E164::parse),
            row.bsuid.as_deref().map(Bsuid::parse),
        ) {
            (Some(Ok(p)), _) => Recipient::Phone(p),
            (_, Some(Ok(b))) => Recipient::Bsuid(b),
            _ => {
                return Ok(Outcome::Fail(
                    None,
                    "the contact has no phone number or user id".into(),
                ));
            }
        };
        if let Some(wait) = self.slot(job.channel).await {
            return Ok(Outcome::Later(
                time::Duration::try_from(wait).unwrap_or(time::Duration::SECOND),
            ));
        }
        let outbound = match outbound.pending_upload() {
            None => outbound,
            Some(file) => match self.provider_copy(job, client, file).await? {
                Ok(provider_id) => outbound.with_provider_media(provider_id),
                Err(outcome) => return Ok(outcome),
            },
        };
        let callback = message.to_string();
        match client
            .send(&to, &outbound, row.reply_to.as_deref(), Some(&callback))
            .await
        {
            Ok(provider_id) => {
                self.record_send(FinishedSend {
                    ctx: job.ctx.clone(),
                    job: job.id,
                    message,
                    provider_message_id: provider_id,
                })
                .await?;
                Ok(Outcome::Done)
            }
            Err(e) => Ok(self.judge(job, e)),
        }
    }

    /// Records a send the provider took, in one transaction with the other sends finishing
    /// at the same moment (on SQLite one durable commit per send capped a number's rate);
    /// answers once it is committed.
    async fn record_send(&self, send: FinishedSend) -> Result<(), StoreError> {
        let parallel = parallel_commits(self.store.backend());
        self.dispatch
            .finishes
            .start(parallel, MAX_FINISH_BATCH, || {
                let store = self.store.clone();
                move |batch| record_sends(store.clone(), batch)
            });
        let (reply, answer) = oneshot::channel();
        let job = FinishJob {
            send: send.clone(),
            reply,
        };
        if self.dispatch.finishes.sender().send(job).await.is_ok()
            && let Ok(recorded) = answer.await
        {
            return recorded;
        }
        // The recorder is gone (the runtime is shutting down): record this one alone.
        record_one(&self.store, &send).await
    }

    /// The provider's id for a file an agent uploaded: the one obtained earlier while it is
    /// fresh, else our copy uploaded now (the provider keeps uploads for 30 days).
    async fn provider_copy(
        &self,
        job: &OutboxJob,
        client: &ProviderClient,
        file: &str,
    ) -> Result<Result<String, Outcome>, StoreError> {
        let fail = |why: String| Ok(Err(Outcome::Fail(None, why)));
        let Ok(id) = MediaId::parse(file) else {
            return fail("the message names no uploaded file".into());
        };
        let mut tx = self.store.begin_read(&job.ctx).await?;
        let media = found(tx.media(id).await)?;
        tx.commit().await?;
        let Some(media) = media else {
            return fail("the uploaded file is gone".into());
        };
        let now = self.now();
        if let (Some(pid), Some(at)) = (&media.provider_media_id, media.provider_uploaded_at)
            && now - at < PROVIDER_UPLOAD_REUSE
        {
            return Ok(Ok(pid.clone()));
        }
        let (Some(sha), Some(mime)) = (media.blob_sha256.clone(), media.mime_type.clone()) else {
            return fail("the uploaded file has no stored copy".into());
        };
        let blobs = self.blobs.clone();
        let bytes = tokio::task::spawn_blocking(move || blobs.get(&sha))
            .await
            .map_err(|e| StoreError::Invalid(format!("blob task failed: {e}")))?;
        let bytes = match bytes {
            Ok(Some(b)) => b,
            Ok(None) => return fail("the uploaded file is missing from the blob store".into()),
            Err(e) => {
                tracing::error!(error = %e, media = %id, "blob store read failed");
                return Ok(Err(Outcome::Retry(
                    time::Duration::seconds(30),
                    "the blob store could not read the file".into(),
                )));
            }
        };
        let name = media.filename.clone().unwrap_or_else(|| id.to_string());
        match client.upload_media(bytes, &mime, &name).await {
            Ok(pid) => {
                let mut tx = self.store.begin(&job.ctx).await?;
                tx.media_uploaded(id, &pid, now).await?;
                tx.commit().await?;
                Ok(Ok(pid))
            }
            Err(e) => Ok(Err(self.judge(job, e))),
        }
    }

    async fn fetch_media(
        &self,
        job: &OutboxJob,
        client: &ProviderClient,
    ) -> Result<Outcome, StoreError> {
        let id = MediaId::from_uuid(job.target);
        let mut tx = self.store.begin_read(&job.ctx).await?;
        let media = found(tx.media(id).await)?;
        tx.commit().await?;
        let Some(media) = media else {
            return self.finish(job).await;
        };
        let Some(provider_id) = media.provider_media_id.clone() else {
            return Ok(Outcome::Fail(None, "the message names no media id".into()));
        };
        let info = match client.media_info(&provider_id).await {
            Ok(i) => i,
            Err(e) => return Ok(self.judge(job, e)),
        };
        if !media_type_allowed(&info.mime_type) {
            return Ok(Outcome::Fail(
                None,
                format!("media type {} is not accepted", info.mime_type),
            ));
        }
        let mut info = info;
        if info.sha256.is_none() {
            info.sha256 = media.expected_sha256.clone();
        }
        let bytes = match client
            .download_media(&info, self.dispatch.settings.media_max_bytes)
            .await
        {
            Ok(b) => b,
            Err(e) => return Ok(self.judge(job, e)),
        };
        let blobs = self.blobs.clone();
        let stored =
            tokio::task::spawn_blocking(move || blobs.put(&bytes).map(|sha| (sha, bytes.len())))
                .await
                .map_err(|e| StoreError::Invalid(format!("blob task failed: {e}")))?;
        let (sha, len) = match stored {
            Ok(x) => x,
            Err(e) => {
                tracing::error!(error = %e, "blob store write failed");
                return Ok(Outcome::Retry(
                    time::Duration::seconds(30),
                    "the blob store could not write the file".into(),
                ));
            }
        };
        let mut tx = self.store.begin(&job.ctx).await?;
        tx.media_stored(id, &sha, len as i64, &info.mime_type)
            .await?;
        tx.finish_job(job.id).await?;
        tx.commit().await?;
        Ok(Outcome::Done)
    }
}

/// Records a batch of sends; those whose organisation's transaction failed are recorded
/// one by one, so one bad row fails only itself.
async fn record_sends(store: Store, batch: Vec<FinishJob>) {
    let sends: Vec<FinishedSend> = batch.iter().map(|j| j.send.clone()).collect();
    let failed = match store.finish_sends(&sends).await {
        Ok(()) => Vec::new(),
        Err((e, failed)) => {
            tracing::warn!(error = %e, sends = failed.len(), "recording sends together failed; recording them one by one");
            failed
        }
    };
    let mut jobs: Vec<Option<FinishJob>> = batch.into_iter().map(Some).collect();
    for i in failed {
        if let Some(job) = jobs[i].take() {
            let recorded = record_one(&store, &job.send).await;
            let _ = job.reply.send(recorded);
        }
    }
    for job in jobs.into_iter().flatten() {
        let _ = job.reply.send(Ok(()));
    }
}

async fn record_one(store: &Store, s: &FinishedSend) -> Result<(), StoreError> {
    store
        .finish_sends(std::slice::from_ref(s))
        .await
        .map_err(|(e, _)| e)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_spaces_sends_at_the_rate() {
        let t0 = Instant::now();
        let mut b = Bucket {
            interval: Duration::from_millis(100),
            next_free: t0,
        };
        let starts: Vec<_> = (0..5).map(|_| b.reserve(t0).duration_since(t0)).collect();
        assert_eq!(
            starts,
            (0..5)
                .map(|i| Duration::from_millis(100 * i))
                .collect::<Vec<_>>()
        );
        b.hold_until(t0 + Duration::from_secs(3));
        assert_eq!(b.reserve(t0).duration_since(t0), Duration::from_secs(3));
    }

    #[test]
    fn backoff_grows_with_attempts_and_honours_retry_after() {
        let err = |retry: Option<u64>| ProviderError {
            class: ErrorClass::Retry,
            code: Some(131000),
            title: "x".into(),
            details: None,
            http_status: Some(500),
            retry_after: retry.map(Duration::from_secs),
        };
        let one = backoff(1, &err(None));
        let four = backoff(4, &err(None));
        assert!(
            one >= time::Duration::seconds(2) && one <= time::Duration::seconds(3),
            "{one}"
        );
        assert!(
            four >= time::Duration::seconds(16) && four <= time::Duration::seconds(24),
            "{four}"
        );
        assert!(backoff(1, &err(Some(60))) >= time::Duration::seconds(60));
        assert!(backoff(30, &err(None)) <= time::Duration::minutes(23));
    }
}
