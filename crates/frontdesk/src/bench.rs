//! `frontdesk bench ingest`: how fast the webhook endpoint acknowledges durably stored
//! events, measured over real HTTP against the real server.
//!
//! The server is started in this process exactly as `serve` starts it (same store
//! options, migrations, middleware and routes), on 127.0.0.1:0. An organisation and a
//! Cloud API channel are created through the store; N unique Meta text-message webhooks
//! are generated and signed with the channel's app secret before the clock starts, then
//! posted by C concurrent keep-alive clients. A post counts as acknowledged when it is
//! answered 200, which the server does only after the body is committed.

use crate::config::Config;
use anyhow::{Context, bail, ensure};
use bytes::Bytes;
use frontdesk_domain::Actor;
use frontdesk_store::{InboxCounts, NewChannel, Provider, TenantCtx};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use secrecy::{ExposeSecret, SecretString};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// What `bench ingest` was asked to do.
#[derive(Debug, Clone)]
pub struct IngestOptions {
    pub messages: usize,
    pub concurrency: usize,
    /// `None`: a SQLite file in a temporary directory.
    pub database_url: Option<String>,
    /// How long to wait for an inbox worker to process the rows.
    pub process_timeout: Duration,
}

const PHONE_NUMBER_ID: &str = "106540352242922";
const WABA_ID: &str = "102290129340398";
const DISPLAY_NUMBER: &str = "15550783881";

/// A Meta webhook carrying one inbound text message, in the shape Meta posts (see
/// `shared/reference/whatsapp-cloud-api.md` §2–3): ids and timestamps as strings.
pub fn meta_text_webhook(
    phone_number_id: &str,
    wamid: &str,
    from: &str,
    name: &str,
    text: &str,
    timestamp: i64,
) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "object": "whatsapp_business_account",
        "entry": [{
            "id": WABA_ID,
            "changes": [{
                "field": "messages",
                "value": {
                    "messaging_product": "whatsapp",
                    "metadata": { "display_phone_number": DISPLAY_NUMBER, "phone_number_id": phone_number_id },
                    "contacts": [{ "profile": { "name": name }, "wa_id": from }],
                    "messages": [{
                        "from": from,
                        "id": wamid,
                        "timestamp": timestamp.to_string(),
                        "type": "text",
                        "text": { "body": text }
                    }]
                }
            }]
        }]
    }))
    .expect("a JSON value serialises")
}

/// The peak resident set size of this process in KiB (`VmHWM`), where Linux reports it.
fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// The real server, started in this process exactly as `serve` starts it (same store
/// options, migrations, middleware and routes) on 127.0.0.1:0, over a throw-away database
/// with fresh keys. Its worker is built, not started.
struct BenchServer {
    store: frontdesk_store::Store,
    state: frontdesk_server::AppState,
    addr: std::net::SocketAddr,
    worker: Arc<frontdesk_worker::Worker>,
    stop: tokio::sync::oneshot::Sender<()>,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
    _dir: tempfile::TempDir,
}

impl BenchServer {
    /// `database_url`: `None` for a SQLite file in a temporary directory. The pool gets at
    /// least `min_connections`.
    async fn start(database_url: Option<String>, min_connections: u32) -> anyhow::Result<Self> {
        let dir = tempfile::tempdir().context("creating a temporary directory")?;
        let mut config = Config {
            bind: std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
            data_dir: dir.path().join("data"),
            database_url,
            master_key: Some(frontdesk_store::MasterKeyring::generate().to_text()),
            ..Config::default()
        };
        // At least `min_connections` on PostgreSQL, whose connections do the work in other
        // processes; SQLite keeps its default (see `SQLITE_CONNECTIONS`). The variable
        // FRONTDESK_DATABASE_MAX_CONNECTIONS overrides both.
        config.database_max_connections =
            Some(match std::env::var("FRONTDESK_DATABASE_MAX_CONNECTIONS") {
                Ok(n) => n
                    .parse()
                    .context("FRONTDESK_DATABASE_MAX_CONNECTIONS must be a number")?,
                Err(_) => match config.database().backend() {
                    frontdesk_store::Backend::Sqlite => config.database_connections(),
                    frontdesk_store::Backend::Postgres => {
                        config.database_connections().max(min_connections)
                    }
                },
            });
        let prepared = crate::prepare_server(&config).await?;
        let (stop, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(frontdesk_server::serve(
            prepared.listener,
            prepared.app.router,
            async move {
                let _ = stop_rx.await;
            },
            Duration::from_secs(5),
        ));
        Ok(Self {
            store: prepared.store,
            state: prepared.state,
            addr: prepared.addr,
            worker: prepared.worker,
            stop,
            server,
            _dir: dir,
        })
    }

    /// Stops serving and closes the database.
    async fn stop(self) {
        let _ = self.stop.send(());
        let _ = self.server.await;
        self.store.close().await;
    }
}

/// Runs the benchmark and prints its figures; fails when a message was lost.
pub async fn run_ingest(opts: IngestOptions) -> anyhow::Result<()> {
    ensure!(opts.messages > 0, "--messages must be at least 1");
    ensure!(
        (1..=4096).contains(&opts.concurrency),
        "--concurrency must be 1–4096"
    );
    // Room for the committer and the request handlers at once.
    let bench = BenchServer::start(opts.database_url.clone(), 16).await?;
    let store = bench.store.clone();
    let addr = bench.addr;

    // The worker runs as in `serve`: "processed" below is its figure.
    let (_stop_worker, stopped) = tokio::sync::watch::channel(false);
    bench.worker.spawn(stopped);
    let (ctx, key, secret) = bench_channel(&store).await?;
    let url = format!("http://{addr}/webhooks/{}", key.expose_secret());
    println!(
        "backend: {}; {} messages, {} concurrent clients, server on {addr}",
        store.backend(),
        opts.messages,
        opts.concurrency
    );

    // Bodies are made and signed before the clock starts: the client's work is not the
    // server's throughput.
    let run = time::OffsetDateTime::now_utc().unix_timestamp_nanos();
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let requests: Arc<Vec<(Bytes, String)>> = Arc::new(
        (0..opts.messages)
            .map(|i| {
                let from = format!("4477009{:05}", i % 100_000);
                let body = meta_text_webhook(
                    PHONE_NUMBER_ID,
                    &format!("wamid.BENCH{run:x}{i:08}"),
                    &from,
                    &format!("Customer {}", i % 100_000),
                    &format!("Hello, message {i} of run {run:x}: is the clinic open on Saturday?"),
                    now,
                );
                let sig = frontdesk_whatsapp::sign_meta(secret.expose_secret().as_bytes(), &body);
                (Bytes::from(body), sig)
            })
            .collect(),
    );

    let client: Client<HttpConnector, Full<Bytes>> = Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(opts.concurrency)
        .build_http();
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(opts.concurrency);
    for _ in 0..opts.concurrency {
        let (client, url, next, requests) =
            (client.clone(), url.clone(), next.clone(), requests.clone());
        tasks.push(tokio::spawn(async move {
            post_all(&client, &url, &next, &requests).await
        }));
    }
    let mut latencies = Vec::with_capacity(opts.messages);
    let (mut refused, mut retried) = (0usize, 0usize);
    for t in tasks {
        let r = t.await.context("a client task failed")??;
        latencies.extend(r.latencies);
        refused += r.refused;
        retried += r.retried;
    }
    let elapsed = started.elapsed();
    latencies.sort_unstable();
    let acked = latencies.len();

    let counts = store
        .inbox_counts(&ctx)
        .await
        .context("counting inbox rows")?;
    println!(
        "acknowledged: {acked} in {:.2} s = {:.0} messages/s ({retried} retried after 503, {refused} refused)",
        elapsed.as_secs_f64(),
        acked as f64 / elapsed.as_secs_f64()
    );
    println!(
        "ack latency: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        ms(percentile(&latencies, 0.50)),
        ms(percentile(&latencies, 0.99)),
        ms(latencies.last().copied().unwrap_or_default())
    );
    println!(
        "webhook_inbox rows: {} (pending {}, processed {}, failed {})",
        counts.total(),
        counts.pending,
        counts.processed,
        counts.failed
    );
    report_processing(
        &store,
        &ctx,
        opts.messages as u64,
        started,
        opts.process_timeout,
    )
    .await?;
    match peak_rss_kib() {
        Some(kib) => println!(
            "peak RSS: {:.1} MiB (server and clients in one process)",
            kib as f64 / 1024.0
        ),
        None => println!("peak RSS: unknown (no /proc/self/status)"),
    }

    bench.stop().await;
    if counts.total() != opts.messages as u64 || acked != opts.messages {
        bail!(
            "MESSAGES LOST: {} posted, {acked} acknowledged, {} rows in the inbox",
            opts.messages,
            counts.total()
        );
    }
    println!("no message lost");
    Ok(())
}

struct ClientReport {
    latencies: Vec<Duration>,
    refused: usize,
    retried: usize,
}

/// Posts requests (taking the next index each time) until none are left. A 503 is retried
/// after a pause, as Meta would; any other refusal is counted and not retried.
async fn post_all(
    client: &Client<HttpConnector, Full<Bytes>>,
    url: &str,
    next: &AtomicUsize,
    requests: &[(Bytes, String)],
) -> anyhow::Result<ClientReport> {
    let mut report = ClientReport {
        latencies: Vec::new(),
        refused: 0,
        retried: 0,
    };
    loop {
        let i = next.fetch_add(1, Ordering::Relaxed);
        let Some((body, sig)) = requests.get(i) else {
            return Ok(report);
        };
        let mut attempts = 0;
        loop {
            attempts += 1;
            let req = http::Request::post(url)
                .header(http::header::CONTENT_TYPE, "application/json")
                .header("x-hub-signature-256", sig)
                .body(Full::new(body.clone()))?;
            let sent = Instant::now();
            let resp = client.request(req).await.context("posting a webhook")?;
            let status = resp.status();
            // Read the answer to the end so the connection is reused.
            resp.into_body()
                .collect()
                .await
                .context("reading the answer")?;
            let took = sent.elapsed();
            if status == http::StatusCode::OK {
                report.latencies.push(took);
                break;
            }
            if status == http::StatusCode::SERVICE_UNAVAILABLE && attempts < 20 {
                report.retried += 1;
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
            report.refused += 1;
            eprintln!("webhook {i} answered {status}");
            break;
        }
    }
}

/// Creates the benchmark's organisation and Cloud API channel; returns its tenant, its
/// webhook key and its app secret.
async fn bench_channel(
    store: &frontdesk_store::Store,
) -> anyhow::Result<(TenantCtx, SecretString, SecretString)> {
    let run = time::OffsetDateTime::now_utc().unix_timestamp_nanos();
    let (_, ctx) = store
        .create_organisation(
            "Ingest benchmark",
            &format!("bench-{run:x}"),
            Actor::System("bench".into()),
        )
        .await
        .context("creating the benchmark organisation")?;
    let secret = SecretString::from(format!("bench-app-secret-{run:x}"));
    let mut tx = store.begin(&ctx).await?;
    let (_, key) = tx
        .create_channel(NewChannel {
            name: "Benchmark".into(),
            provider: Provider::Cloud,
            phone_number_id: PHONE_NUMBER_ID.into(),
            waba_id: WABA_ID.into(),
            display_number: format!("+{DISPLAY_NUMBER}"),
            api_base_url: "https://graph.facebook.com".into(),
            api_version: "v23.0".into(),
            simulated: true,
            access_token: SecretString::from(format!("bench-access-token-{run:x}")),
            app_secret: Some(secret.clone()),
            verify_token: None,
            throughput_mps: 80,
        })
        .await
        .context("creating the benchmark channel")?;
    tx.commit().await?;
    Ok((ctx, key, secret))
}

/// Waits for an inbox worker (when there is one) to process the rows, and prints the rate.
async fn report_processing(
    store: &frontdesk_store::Store,
    ctx: &TenantCtx,
    expected: u64,
    started: Instant,
    timeout: Duration,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    let mut last: InboxCounts = store.inbox_counts(ctx).await?;
    let mut last_change = Instant::now();
    loop {
        let done = last.processed + last.failed;
        if done >= expected {
            let took = started.elapsed();
            println!(
                "processed: {} ({} failed) in {:.2} s from the first post = {:.0} messages/s",
                last.processed,
                last.failed,
                took.as_secs_f64(),
                done as f64 / took.as_secs_f64()
            );
            return Ok(());
        }
        // No worker, or one that stopped: say so rather than wait out the timeout.
        let stalled = last_change.elapsed() > Duration::from_secs(3);
        if Instant::now() >= deadline || stalled {
            if done == 0 {
                println!("processed: none (no inbox worker processed rows; rows stay pending)");
            } else {
                println!(
                    "processed: only {done} of {expected} within {:.0} s",
                    started.elapsed().as_secs_f64()
                );
            }
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        let now = store.inbox_counts(ctx).await?;
        if now != last {
            last_change = Instant::now();
        }
        last = now;
    }
}

/// A simulated number that sends at `rate` messages per second. The simulator enforces the
/// rate too, as Meta does, with 10 % headroom for arrival jitter: a send it refuses with
/// 130429 shows as a second attempt.
async fn paced_number(
    state: &frontdesk_server::AppState,
    ctx: &TenantCtx,
    rate: i32,
) -> anyhow::Result<frontdesk_store::ChannelView> {
    let view = frontdesk_server::simulator::connect_simulated_number(
        state,
        ctx,
        "Benchmark",
        Some((rate + (rate / 10).max(1)).min(1000)),
    )
    .await
    .map_err(|e| anyhow::anyhow!("connecting a simulated number: {e}"))?;
    let mut tx = state.store().begin(ctx).await?;
    tx.update_channel(
        view.id,
        frontdesk_store::ChannelUpdate {
            throughput_mps: Some(rate),
            ..Default::default()
        },
    )
    .await?;
    tx.commit().await?;
    Ok(view)
}

/// What a dispatch run sent: when the outbox was empty (from the run's start), the times the
/// provider's answers were recorded, and the sends it refused as too fast (then retried).
struct Sends {
    drained: Duration,
    times: Vec<time::OffsetDateTime>,
    refusals: i32,
}

/// Waits (within `budget` of `started`) until the outbox is empty, then reads the number's
/// sends.
async fn drain_outbox(
    store: &frontdesk_store::Store,
    ctx: &TenantCtx,
    channel: frontdesk_domain::ChannelId,
    started: Instant,
    budget: Duration,
) -> anyhow::Result<Sends> {
    // Twice a second: the count reads the whole outbox (and, on PostgreSQL, the rows the
    // dispatcher deleted since the last vacuum), and at 20 looks a second it took CPU the
    // measured work needed once tens of thousands of sends were queued.
    while store.outbox_len().await? > 0 {
        ensure!(
            started.elapsed() < budget,
            "the outbox did not drain in {budget:?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let drained = started.elapsed();
    let sent = store.send_times(ctx, channel).await?;
    let refusals: i32 = sent.iter().map(|(_, attempts)| attempts - 1).sum();
    let times = sent.into_iter().map(|(t, _)| t).collect();
    Ok(Sends {
        drained,
        times,
        refusals,
    })
}

/// The seconds from the first send to the last, and the rate they were sent at: n sends
/// spaced 1/rate apart span (n-1)/rate seconds. `times` is not empty.
fn span_and_rate(times: &[time::OffsetDateTime]) -> (f64, f64) {
    let span = (*times.last().expect("non-empty") - times[0]).as_seconds_f64();
    (span, (times.len() - 1) as f64 / span.max(1e-9))
}

/// What `bench dispatch` was asked to do.
#[derive(Debug, Clone)]
pub struct DispatchOptions {
    pub messages: usize,
    /// The number's throughput: the rate the dispatcher must hold.
    pub rate: i32,
    pub database_url: Option<String>,
}

/// `frontdesk bench dispatch`: M template sends queued for one simulated number whose
/// throughput is set to R messages per second; the dispatcher sends them to the built-in
/// simulator over HTTP. Prints the achieved rate, its deviation from R, and the busiest
/// second (which must not exceed R).
pub async fn run_dispatch(opts: DispatchOptions) -> anyhow::Result<()> {
    ensure!(opts.messages > 1, "--messages must be at least 2");
    ensure!((1..=1000).contains(&opts.rate), "--rate must be 1–1000");
    let bench = BenchServer::start(opts.database_url.clone(), 0).await?;
    let store = bench.store.clone();
    let state = bench.state.clone();

    let run = time::OffsetDateTime::now_utc().unix_timestamp_nanos();
    let (_, ctx) = store
        .create_organisation(
            "Dispatch benchmark",
            &format!("dispatch-{run:x}"),
            Actor::System("bench".into()),
        )
        .await?;
    let view = paced_number(&state, &ctx, opts.rate).await?;
    let mut tx = store.begin(&ctx).await?;
    let creds = tx.channel_credentials(view.id).await?;
    tx.commit().await?;

    // An approved template: it may go to anyone, window or not.
    let http = reqwest::Client::builder().no_proxy().build()?;
    let r = http
        .post(format!(
            "{}/{}/{}/message_templates",
            view.api_base_url, view.api_version, view.waba_id
        ))
        .bearer_auth(creds.access_token.expose_secret())
        .json(&serde_json::json!({
            "name": "bench_notice", "language": "en", "category": "UTILITY",
            "components": [{ "type": "BODY", "text": "Your appointment is confirmed." }]
        }))
        .send()
        .await?;
    ensure!(
        r.status().is_success(),
        "template submission: {}",
        r.status()
    );

    // Queue everything before the dispatcher starts.
    let template =
        serde_json::json!({ "type": "template", "name": "bench_notice", "language": "en" });
    let mut tx = store.begin(&ctx).await?;
    for i in 0..opts.messages {
        let contact = tx
            .upsert_contact(&frontdesk_store::CustomerIdentity {
                phone: Some(frontdesk_domain::E164::parse(&format!("+1415{:07}", i))?),
                ..Default::default()
            })
            .await?;
        tx.queue_message(
            &frontdesk_store::NewOutbound {
                channel: view.id,
                contact,
                kind: "template".into(),
                content: template.to_string(),
                preview: "[template bench_notice]".into(),
                reply_to: None,
                needs_window: false,
                author: None,
            },
            time::OffsetDateTime::now_utc(),
        )
        .await?;
    }
    tx.commit().await?;
    println!(
        "backend: {}; {} sends queued for one simulated number at {} messages/s",
        store.backend(),
        opts.messages,
        opts.rate
    );

    let started = Instant::now();
    let (stop_worker, stopped) = tokio::sync::watch::channel(false);
    let worker = bench.worker.spawn(stopped);
    let budget = Duration::from_secs_f64(opts.messages as f64 / f64::from(opts.rate) * 3.0 + 30.0);
    let Sends {
        drained,
        times,
        refusals,
    } = drain_outbox(&store, &ctx, view.id, started, budget).await?;
    let _ = stop_worker.send(true);
    let _ = worker.await;
    bench.stop().await;

    ensure!(
        times.len() == opts.messages,
        "only {} of {} sends were taken by the provider",
        times.len(),
        opts.messages
    );
    let (span, achieved) = span_and_rate(&times);
    let busiest = busiest_second(&times, time::Duration::SECOND);
    println!(
        "sent: {} in {:.2} s (queue drained after {:.2} s)",
        times.len(),
        span,
        drained.as_secs_f64()
    );
    println!(
        "achieved rate: {:.1} messages/s, deviation {:+.2}% from the configured {}",
        achieved,
        (achieved - f64::from(opts.rate)) / f64::from(opts.rate) * 100.0,
        opts.rate
    );
    // Slots are reserved 1/rate apart when a send starts; the times above are when the
    // provider's answer was recorded, so answer-time jitter can put a few more in one second.
    // The provider's own count is the refusals line.
    println!(
        "busiest second (by answer time): {busiest} sends (configured {})",
        opts.rate
    );
    println!("sends the provider refused as too fast (130429, then retried): {refusals}");
    Ok(())
}

/// What `bench inbox` was asked to do.
#[derive(Debug, Clone)]
pub struct InboxOptions {
    pub organisations: usize,
    pub conversations: usize,
    pub messages: usize,
    /// Requests per second, open loop.
    pub rate: u32,
    pub seconds: u64,
    /// Seconds of the same load before the measured ones, not counted.
    pub warmup: u64,
    pub database_url: Option<String>,
}

/// One agent who loads the inbox: their token and the conversations they may open.
struct Agent {
    token: String,
    conversations: Arc<Vec<String>>,
}

/// A JSON call for the benchmark's setup; fails unless it succeeds.
async fn setup_call(
    client: &reqwest::Client,
    method: reqwest::Method,
    url: String,
    token: Option<&str>,
    body: serde_json::Value,
) -> anyhow::Result<serde_json::Value> {
    let mut req = client.request(method.clone(), &url);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    if !body.is_null() {
        req = req.json(&body);
    }
    let r = req
        .send()
        .await
        .with_context(|| format!("{method} {url}"))?;
    let status = r.status();
    let text = r.text().await?;
    ensure!(status.is_success(), "{method} {url}: {status} {text}");
    Ok(if text.is_empty() {
        serde_json::Value::Null
    } else {
        serde_json::from_str(&text)?
    })
}

fn str_of(v: &serde_json::Value, key: &str) -> anyhow::Result<String> {
    v[key]
        .as_str()
        .map(str::to_owned)
        .with_context(|| format!("no {key} in {v}"))
}

/// Fills a database with organisations, agents, conversations and messages (bulk inserts,
/// not the API), then loads the conversation list and view at a fixed rate with the agents'
/// own tokens; prints the achieved rate and latency percentiles.
pub async fn run_inbox(opts: InboxOptions) -> anyhow::Result<()> {
    ensure!(
        (1..=100).contains(&opts.organisations),
        "--organisations must be 1–100"
    );
    ensure!(
        opts.conversations >= opts.organisations,
        "--conversations must be at least one per organisation"
    );
    ensure!((1..=20_000).contains(&opts.rate), "--rate must be 1–20000");
    ensure!(
        (1..=3600).contains(&opts.seconds),
        "--seconds must be 1–3600"
    );
    let bench = BenchServer::start(opts.database_url.clone(), 16).await?;
    let store = bench.store.clone();
    let base = format!("http://{}", bench.addr);
    let client = reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(1024)
        .timeout(Duration::from_secs(30))
        .build()?;
    let per_org = opts.conversations / opts.organisations;
    let msgs_per = (opts.messages / opts.conversations.max(1)).max(1);
    println!(
        "backend: {}; filling {} organisations × {per_org} conversations × {msgs_per} messages",
        store.backend(),
        opts.organisations
    );
    let run = time::OffsetDateTime::now_utc().unix_timestamp_nanos();
    let password = format!("bench inbox password {run:x}");
    let filling = Instant::now();
    let mut agents = Vec::new();
    let mut total_msgs = 0usize;
    for o in 0..opts.organisations {
        use reqwest::Method as M;
        let admin_email = format!("admin{o}-{run:x}@bench.example");
        let tokens = setup_call(&client, M::POST, format!("{base}/api/v1/auth/signup"), None, serde_json::json!({
            "organisation_name": format!("Bench clinic {o}"), "name": format!("Admin {o}"), "email": admin_email, "password": password })).await?;
        let admin = str_of(&tokens, "access_token")?;
        let team = str_of(
            &setup_call(
                &client,
                M::POST,
                format!("{base}/api/v1/teams"),
                Some(&admin),
                serde_json::json!({ "name": "Front desk" }),
            )
            .await?,
            "id",
        )?;
        let roles = setup_call(
            &client,
            M::GET,
            format!("{base}/api/v1/roles"),
            Some(&admin),
            serde_json::Value::Null,
        )
        .await?;
        let agent_role = roles
            .as_array()
            .and_then(|rs| rs.iter().find(|r| r["name"] == "agent"))
            .context("no agent role")?["id"]
            .clone();
        let mut org_agents = Vec::new();
        for a in 0..2 {
            let email = format!("agent{o}-{a}-{run:x}@bench.example");
            let inv = setup_call(
                &client,
                M::POST,
                format!("{base}/api/v1/invitations"),
                Some(&admin),
                serde_json::json!({ "email": email, "role_id": agent_role }),
            )
            .await?;
            let url = url::Url::parse(&str_of(&inv, "invite_url")?)?;
            let token = url
                .query_pairs()
                .find(|(k, _)| k == "token")
                .context("no invitation token")?
                .1
                .into_owned();
            let t = setup_call(&client, M::POST, format!("{base}/api/v1/invitations/accept"), None, serde_json::json!({ "token": token, "name": format!("Agent {o}.{a}"), "password": password })).await?;
            let access = str_of(&t, "access_token")?;
            let me = setup_call(
                &client,
                M::GET,
                format!("{base}/api/v1/me"),
                Some(&access),
                serde_json::Value::Null,
            )
            .await?;
            let id = me["user"]["id"].as_str().context("no user id")?.to_owned();
            setup_call(
                &client,
                M::PUT,
                format!("{base}/api/v1/teams/{team}/members/{id}"),
                Some(&admin),
                serde_json::Value::Null,
            )
            .await?;
            org_agents.push((access, frontdesk_domain::UserId::parse(&id)?));
        }
        // The number, served by the team (so agents see its conversations by the rule,
        // not by inbox.read_all). Its webhook key gives the store's context for the bulk
        // load, as a provider's post would.
        let ch = setup_call(&client, M::POST, format!("{base}/api/v1/channels"), Some(&admin), serde_json::json!({
            "provider": "cloud", "name": "Benchmark", "phone_number_id": format!("{PHONE_NUMBER_ID}{o:02}"),
            "access_token": format!("bench-access-token-{run:x}"), "app_secret": format!("bench-app-secret-{run:x}"),
            "verify_token": format!("bench-verify-token-{run:x}"), "api_base_url": "http://127.0.0.1:9" })).await?;
        let channel = str_of(&ch["channel"], "id")?;
        let callback = str_of(&ch["webhook"], "callback_url")?;
        let key = callback.rsplit('/').next().unwrap_or_default();
        let ctx = store
            .webhook_target(key)
            .await?
            .context("the new channel's webhook target")?
            .ctx;
        setup_call(
            &client,
            M::PUT,
            format!("{base}/api/v1/channels/{channel}/inbox"),
            Some(&admin),
            serde_json::json!({ "team_ids": [team], "auto_assign": "off" }),
        )
        .await?;
        let mut tx = store.begin(&ctx).await?;
        let ids = tx
            .fill_inbox_for_bench(&frontdesk_store::InboxFill {
                channel: frontdesk_domain::ChannelId::parse(&channel)?,
                number_prefix: o as u32,
                conversations: per_org,
                messages_per_conversation: msgs_per,
                agents: org_agents.iter().map(|(_, id)| *id).collect(),
                team: frontdesk_domain::TeamId::parse(&team).ok(),
                newest: time::OffsetDateTime::now_utc(),
            })
            .await
            .context("filling the inbox")?;
        tx.commit().await?;
        total_msgs += ids.len() * msgs_per;
        let ids: Arc<Vec<String>> = Arc::new(ids.iter().map(|c| c.to_string()).collect());
        for (token, _) in org_agents {
            agents.push(Agent {
                token,
                conversations: ids.clone(),
            });
        }
    }
    store
        .analyze()
        .await
        .context("refreshing planner statistics")?;
    println!(
        "filled {} conversations and {total_msgs} messages in {:.1} s",
        per_org * opts.organisations,
        filling.elapsed().as_secs_f64()
    );

    // Open loop: request i is due at start + i/rate whatever happened before, and its
    // latency counts from that moment, so queueing in the server is measured.
    ensure!(opts.warmup <= 600, "--warmup must be 0–600");
    let warmup = opts.rate as u64 * opts.warmup;
    let total = warmup + opts.rate as u64 * opts.seconds;
    let interval = Duration::from_secs_f64(1.0 / f64::from(opts.rate));
    let agents = Arc::new(agents);
    let started = tokio::time::Instant::now() + Duration::from_millis(100);
    let measured_from = started + interval.mul_f64(warmup as f64);
    let mut tasks = Vec::with_capacity(total as usize);
    let mut rng_state = run as u64 | 1;
    for i in 0..total {
        // xorshift: a cheap, reproducible spread over agents and conversations.
        rng_state ^= rng_state << 13;
        rng_state ^= rng_state >> 7;
        rng_state ^= rng_state << 17;
        let agent = &agents[(rng_state % agents.len() as u64) as usize];
        let path = if i % 2 == 0 {
            "/api/v1/conversations?view=all".to_owned()
        } else {
            let c = &agent.conversations
                [((rng_state >> 20) % agent.conversations.len() as u64) as usize];
            format!("/api/v1/conversations/{c}")
        };
        let due = started + interval.mul_f64(i as f64);
        let (client, url, token, list) = (
            client.clone(),
            format!("{base}{path}"),
            agent.token.clone(),
            i % 2 == 0,
        );
        tasks.push(tokio::spawn(async move {
            tokio::time::sleep_until(due).await;
            let ok = match client.get(&url).bearer_auth(&token).send().await {
                Ok(r) => r.status().is_success() && r.bytes().await.is_ok(),
                Err(_) => false,
            };
            (
                list,
                ok,
                due.elapsed(),
                due.checked_duration_since(measured_from),
            )
        }));
    }
    let (mut lists, mut views, mut failed) = (Vec::new(), Vec::new(), 0usize);
    // Per second of the run (by due time): requests over 20 ms and the slowest, to tell
    // a steady tail from stalls.
    let mut seconds = vec![(0usize, Duration::ZERO); opts.seconds as usize + 1];
    for t in tasks {
        let (list, ok, latency, offset) = t.await.context("a request task failed")?;
        let Some(offset) = offset else {
            // The warm-up: not measured, but it must be answered too.
            failed += usize::from(!ok);
            continue;
        };
        let sec = &mut seconds[(offset.as_secs() as usize).min(opts.seconds as usize)];
        sec.0 += usize::from(latency > Duration::from_millis(20));
        sec.1 = sec.1.max(latency);
        if !ok {
            failed += 1;
        } else if list {
            lists.push(latency);
        } else {
            views.push(latency);
        }
    }
    let elapsed = measured_from.elapsed();
    let mut all: Vec<Duration> = lists.iter().chain(views.iter()).copied().collect();
    for v in [&mut lists, &mut views, &mut all] {
        v.sort_unstable();
    }
    println!(
        "offered {} req/s for {} s after {} s of warm-up: {} answered in {:.2} s = {:.0} req/s ({failed} failed)",
        opts.rate,
        opts.seconds,
        opts.warmup,
        all.len(),
        elapsed.as_secs_f64(),
        all.len() as f64 / elapsed.as_secs_f64()
    );
    for (name, l) in [("all", &all), ("list", &lists), ("view", &views)] {
        println!(
            "{name:>4} latency: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
            ms(percentile(l, 0.50)),
            ms(percentile(l, 0.99)),
            ms(l.last().copied().unwrap_or_default())
        );
    }
    let slow: Vec<String> = seconds
        .iter()
        .enumerate()
        .filter(|(_, (n, _))| *n > 0)
        .map(|(i, (n, max))| format!("{i}s:{n}/{:.0}ms", ms(*max)))
        .collect();
    println!(
        "seconds with requests over 20 ms (second:count/slowest): {}",
        if slow.is_empty() {
            "none".to_owned()
        } else {
            slow.join(" ")
        }
    );
    bench.stop().await;
    ensure!(failed == 0, "{failed} requests failed");
    Ok(())
}

/// What `bench import` was asked to do.
#[derive(Debug, Clone)]
pub struct ImportOptions {
    pub rows: usize,
    pub database_url: Option<String>,
}

/// `frontdesk bench import`: a CSV file of N rows (name, phone, a custom field, a tag and
/// consent; one row in 50 repeats an earlier number, one in 100 has no valid number), uploaded,
/// dry-run and imported by the worker as in `serve`. Prints each phase's time and the report.
pub async fn run_import(opts: ImportOptions) -> anyhow::Result<()> {
    use frontdesk_store::imports::ImportMapping;
    ensure!(
        (1..=frontdesk_domain::audience::MAX_IMPORT_ROWS).contains(&opts.rows),
        "--rows must be 1–{}",
        frontdesk_domain::audience::MAX_IMPORT_ROWS
    );
    let bench = BenchServer::start(opts.database_url.clone(), 0).await?;
    let store = bench.store.clone();
    let run = time::OffsetDateTime::now_utc().unix_timestamp_nanos();
    let (_, ctx) = store
        .create_organisation(
            "Import benchmark",
            &format!("import-{run:x}"),
            Actor::System("bench".into()),
        )
        .await?;
    let mut tx = store.begin(&ctx).await?;
    tx.create_field(
        "city",
        "City",
        frontdesk_domain::audience::FieldKind::Text,
        &[],
    )
    .await?;
    tx.create_tag("vip").await?;
    tx.commit().await?;
    let mut csv = String::from("Name,Mobile,City,Tags,Opt in\n");
    for i in 0..opts.rows {
        let phone = if i % 100 == 99 {
            "12345".to_owned()
        } else if i % 50 == 49 && i > 0 {
            format!("+1415{:07}", i - 1)
        } else {
            format!("+1415{i:07}")
        };
        let tag = if i % 3 == 0 { "vip" } else { "" };
        let consent = if i % 2 == 0 { "yes" } else { "" };
        csv.push_str(&format!(
            "\"Customer {i}, Jr\",{phone},Pune,{tag},{consent}\n"
        ));
    }
    println!(
        "backend: {}; a CSV file of {} rows, {:.1} MB",
        store.backend(),
        opts.rows,
        csv.len() as f64 / 1e6
    );
    let mapping = ImportMapping {
        columns: [
            ("Name", "name"),
            ("Mobile", "phone"),
            ("City", "field:city"),
            ("Tags", "tags"),
            ("Opt in", "consent"),
        ]
        .into_iter()
        .map(|(a, b)| (a.to_owned(), b.to_owned()))
        .collect(),
        consent_evidence: Some("Sign-up sheet".into()),
    };

    let started = Instant::now();
    let mut tx = store.begin(&ctx).await?;
    let up = tx.upload_import("bench.csv", &csv).await?;
    tx.commit().await?;
    println!(
        "upload: parsed and stored in {:.2} s",
        started.elapsed().as_secs_f64()
    );

    let started = Instant::now();
    let mut tx = store.begin(&ctx).await?;
    let dry = tx.dry_run_import(up.id, &mapping).await?;
    tx.commit().await?;
    println!(
        "dry run: {:.2} s; would create {}, update {}, reject {} ({} duplicates)",
        started.elapsed().as_secs_f64(),
        dry.created,
        dry.updated,
        dry.rejected_count,
        dry.duplicate_count
    );

    let started = Instant::now();
    let (stop_worker, stopped) = tokio::sync::watch::channel(false);
    let worker = bench.worker.spawn(stopped);
    let mut tx = store.begin(&ctx).await?;
    tx.start_import(up.id, &mapping).await?;
    tx.commit().await?;
    let budget = Duration::from_secs_f64(opts.rows as f64 / 100.0 + 120.0);
    let v = loop {
        let mut tx = store.begin_read(&ctx).await?;
        let v = tx.contact_import(up.id).await?;
        tx.commit().await?;
        if !matches!(v.status.as_str(), "queued" | "running") {
            break v;
        }
        ensure!(
            started.elapsed() < budget,
            "the import did not finish in {budget:?} ({} of {} rows)",
            v.processed_rows,
            v.total_rows
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let took = started.elapsed();
    let _ = stop_worker.send(true);
    let _ = worker.await;
    bench.stop().await;
    ensure!(v.status == "done", "the import ended {}", v.status);
    ensure!(
        (v.created, v.rejected_count) == (dry.created, dry.rejected_count),
        "the import did not do what its dry run said"
    );
    println!(
        "import: {} rows in {:.1} s ({:.0} rows/s); created {}, rejected {} ({} duplicates)",
        v.processed_rows,
        took.as_secs_f64(),
        v.processed_rows as f64 / took.as_secs_f64(),
        v.created,
        v.rejected_count,
        v.duplicate_count
    );
    Ok(())
}

/// A stand-in for Meta's send endpoint (`POST /{version}/{phone-number-id}/messages`,
/// answered as Graph answers it) that keeps nothing but when each send arrived. With it the
/// campaign benchmark measures our side alone: in production the provider's work is done on
/// Meta's machines, while the built-in simulator records every message and posts status
/// webhooks back on the same cores as the dispatcher.
struct StandIn {
    addr: std::net::SocketAddr,
    arrivals: Arc<std::sync::Mutex<Vec<Instant>>>,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl StandIn {
    async fn start() -> anyhow::Result<Self> {
        use axum::extract::State;
        type Arrivals = Arc<std::sync::Mutex<Vec<Instant>>>;
        async fn send(
            State(arrivals): State<Arrivals>,
            axum::Json(body): axum::Json<serde_json::Value>,
        ) -> axum::Json<serde_json::Value> {
            let n = {
                let mut a = arrivals.lock().expect("not poisoned");
                a.push(Instant::now());
                a.len()
            };
            let to = body["to"].as_str().unwrap_or_default().to_owned();
            axum::Json(serde_json::json!({
                "messaging_product": "whatsapp",
                "contacts": [{ "input": to, "wa_id": to }],
                "messages": [{ "id": format!("wamid.STANDIN{n:012}") }]
            }))
        }
        let arrivals: Arrivals = Arc::default();
        let app = axum::Router::new()
            .route("/{version}/{phone}/messages", axum::routing::post(send))
            .with_state(arrivals.clone());
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = stopped.await;
                })
                .await
        });
        Ok(Self {
            addr,
            arrivals,
            stop,
            task,
        })
    }

    /// Stops it; returns the arrival times.
    async fn stop(self) -> Vec<Instant> {
        let _ = self.stop.send(());
        let _ = self.task.await;
        std::mem::take(&mut *self.arrivals.lock().expect("not poisoned"))
    }
}

/// The most sends within any one second of `times` (sorted).
fn busiest_second<T: Copy + std::ops::Sub<Output = D>, D: PartialOrd>(
    times: &[T],
    second: D,
) -> usize {
    (0..times.len())
        .map(|i| {
            times[i..]
                .iter()
                .take_while(|u| **u - times[i] < second)
                .count()
        })
        .max()
        .unwrap_or(0)
}

/// What `bench campaign` was asked to do.
#[derive(Debug, Clone)]
pub struct CampaignOptions {
    pub contacts: usize,
    /// The number's throughput: the rate the campaign and the dispatcher must hold.
    pub rate: i32,
    /// The number's messaging-limit tier.
    pub tier: String,
    /// Send to [`StandIn`] instead of the built-in simulator.
    pub standin: bool,
    pub database_url: Option<String>,
}

/// `frontdesk bench campaign`: N contacts, a segment of all of them, an approved template
/// with a name variable and a tracked button, on one simulated number at R messages per
/// second with the given tier (unlimited by default). Measures the audience snapshot (the worker's steps until
/// every contact is a recipient), the enqueue steps (each moves a second's worth of
/// recipients into the outbox; their total time shows the headroom against R), and, with
/// the worker running as in `serve`, the rate the sends reached the simulator.
pub async fn run_campaign(opts: CampaignOptions) -> anyhow::Result<()> {
    use frontdesk_store::campaigns::NewCampaign;
    ensure!(opts.contacts > 1, "--contacts must be at least 2");
    ensure!((1..=1000).contains(&opts.rate), "--rate must be 1–1000");
    let limit = frontdesk_domain::campaign::daily_limit(Some(&opts.tier));
    ensure!(
        opts.tier == "TIER_UNLIMITED" || limit.is_some_and(|l| l >= opts.contacts as i64),
        "--tier must be TIER_UNLIMITED or a tier of at least --contacts (got {})",
        opts.tier
    );
    let bench = BenchServer::start(opts.database_url.clone(), 0).await?;
    let store = bench.store.clone();
    let state = bench.state.clone();
    let run = time::OffsetDateTime::now_utc().unix_timestamp_nanos();
    let (_, ctx) = store
        .create_organisation(
            "Campaign benchmark",
            &format!("campaign-{run:x}"),
            Actor::System("bench".into()),
        )
        .await?;
    let view = paced_number(&state, &ctx, opts.rate).await?;
    let standin = if opts.standin {
        let standin = StandIn::start().await?;
        let mut tx = store.begin(&ctx).await?;
        tx.update_channel(
            view.id,
            frontdesk_store::ChannelUpdate {
                api_base_url: Some(format!("http://{}", standin.addr)),
                ..Default::default()
            },
        )
        .await?;
        tx.commit().await?;
        Some(standin)
    } else {
        None
    };

    // Contacts, a segment of everyone, the approved template (as its webhook would leave it).
    let loading = Instant::now();
    let mut tx = store.begin(&ctx).await?;
    tx.set_channel_health(view.id, None, Some(&opts.tier), None)
        .await?;
    let spec = frontdesk_domain::template::TemplateSpec::parse(&serde_json::from_value(
        serde_json::json!({
            "name": "bench_offer", "language": "en", "category": "MARKETING",
            "body": { "text": "Hi {{1}}, the spring offer is on.", "examples": ["Ana"] },
            "buttons": [{ "type": "url", "text": "See it", "url": "https://shop.example/spring", "track": true }]
        }),
    )?)
    .map_err(|e| anyhow::anyhow!("bench template: {e}"))?;
    tx.create_template(view.id, &spec).await?;
    tx.set_template_status(&frontdesk_store::TemplateStatus {
        waba_id: &view.waba_id,
        name: "bench_offer",
        language: "en",
        provider_template_id: Some("1"),
        status: "APPROVED",
        reason: None,
        category: None,
    })
    .await?;
    let segment = tx
        .save_segment(
            None,
            "Everyone",
            &frontdesk_domain::audience::Rule::And(vec![]),
        )
        .await?;
    tx.commit().await?;
    for chunk in (0..opts.contacts).collect::<Vec<_>>().chunks(5_000) {
        let mut tx = store.begin(&ctx).await?;
        for i in chunk {
            tx.upsert_contact(&frontdesk_store::CustomerIdentity {
                phone: Some(frontdesk_domain::E164::parse(&format!("+1415{:07}", i))?),
                ..Default::default()
            })
            .await?;
        }
        tx.commit().await?;
    }
    store.analyze().await?;
    println!(
        "backend: {}; {} contacts loaded in {:.1} s; number at {} messages/s, {}; provider: {}",
        store.backend(),
        opts.contacts,
        loading.elapsed().as_secs_f64(),
        opts.rate,
        opts.tier,
        if opts.standin {
            "a stand-in that keeps nothing"
        } else {
            "the built-in simulator"
        }
    );

    let mut tx = store.begin(&ctx).await?;
    let campaign = tx
        .create_campaign(&NewCampaign {
            name: "Spring".into(),
            channel: view.id,
            audience: frontdesk_store::campaigns::Audience::Segment(segment.id),
            template_name: "bench_offer".into(),
            template_language: "en".into(),
            mapping: serde_json::from_value(
                serde_json::json!({ "body": [{ "source": "first_name", "fallback": "there" }] }),
            )?,
            consent: frontdesk_store::segments::ConsentRequirement::NotOptedOut,
            planned_at: None,
        })
        .await?;
    let now = time::OffsetDateTime::now_utc();
    tx.launch_campaign(campaign.id, None, now).await?;
    tx.commit().await?;

    // The audience snapshot: steps until the first enqueue step.
    let started = Instant::now();
    let mut snapshotted = 0;
    loop {
        let mut tx = store.begin_background(&ctx).await?;
        let step = tx
            .campaign_step(campaign.id, time::OffsetDateTime::now_utc())
            .await?;
        let built = tx.campaign(campaign.id).await?.audience_built;
        tx.commit().await?;
        // As the worker does after the snapshot's last step.
        if let Some(tables) = step.refresh {
            store.refresh_statistics(tables).await?;
        }
        snapshotted += step.snapshotted;
        if built {
            break;
        }
    }
    let snapshot = started.elapsed();
    ensure!(
        snapshotted == opts.contacts,
        "snapshotted {snapshotted} of {} contacts",
        opts.contacts
    );
    println!(
        "audience snapshot: {snapshotted} recipients in {:.2} s ({:.0} recipients/s)",
        snapshot.as_secs_f64(),
        snapshotted as f64 / snapshot.as_secs_f64()
    );

    // Dispatch with the worker as `serve` runs it; the campaign's own steps keep enqueueing.
    let started = Instant::now();
    let (stop_worker, stopped) = tokio::sync::watch::channel(false);
    let worker = bench.worker.spawn(stopped);
    let budget = Duration::from_secs_f64(opts.contacts as f64 / f64::from(opts.rate) * 3.0 + 60.0);
    let enqueued_after = loop {
        let mut tx = store.begin_read(&ctx).await?;
        let c = tx.campaign(campaign.id).await?;
        tx.commit().await?;
        if c.status == frontdesk_domain::campaign::CampaignStatus::Completed {
            break started.elapsed();
        }
        ensure!(
            started.elapsed() < budget,
            "the campaign did not finish enqueueing in {budget:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let Sends {
        drained,
        times,
        refusals,
    } = drain_outbox(&store, &ctx, view.id, started, budget).await?;
    let _ = stop_worker.send(true);
    let _ = worker.await;
    bench.stop().await;
    let arrivals = match standin {
        Some(s) => Some(s.stop().await),
        None => None,
    };
    ensure!(
        times.len() == opts.contacts,
        "only {} of {} sends were taken by the provider",
        times.len(),
        opts.contacts
    );
    let (span, achieved) = span_and_rate(&times);
    println!(
        "enqueue: all {} recipients in the outbox after {:.1} s (paced at {} per second, the first batch at once: {:.1} s at the least)",
        opts.contacts,
        enqueued_after.as_secs_f64(),
        opts.rate,
        // A step moves a second's worth, at most 1,000 (`ENQUEUE_BATCH`).
        (opts.contacts as f64 / f64::from(opts.rate.min(1000))).ceil() - 1.0
    );
    println!(
        "dispatch: {} sent in {:.1} s (outbox drained after {:.1} s); achieved {:.1} messages/s, deviation {:+.2}% from the configured {}",
        times.len(),
        span,
        drained.as_secs_f64(),
        achieved,
        (achieved - f64::from(opts.rate)) / f64::from(opts.rate) * 100.0,
        opts.rate
    );
    match arrivals {
        Some(a) => println!(
            "the stand-in received {} sends; busiest second {} (configured {})",
            a.len(),
            busiest_second(&a, Duration::from_secs(1)),
            opts.rate
        ),
        None => {
            println!("sends the provider refused as too fast (130429, then retried): {refusals}")
        }
    }
    Ok(())
}
