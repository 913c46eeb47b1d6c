//! Test helpers: a real server on a random port, in-process or as the real binary.
#![allow(dead_code)]

pub mod browser;
pub mod simulator;
pub mod smtp;
pub mod users;

use frontdesk_server::{AppState, Clock, RouteInfo, ServerSettings, build_app, serve};
use frontdesk_store::testing::TestDb;
use secrecy::SecretString;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// An in-process server bound to 127.0.0.1:0, over a fresh database.
pub struct TestApp {
    pub addr: SocketAddr,
    pub client: reqwest::Client,
    pub db: TestDb,
    pub routes: Vec<RouteInfo>,
    /// The server's state (inbox wake-up, webhook target cache).
    pub state: AppState,
    /// Seconds the server's clock runs ahead of the real one (see [`TestApp::advance`]).
    pub clock_offset: Arc<std::sync::atomic::AtomicI64>,
    /// The background worker, running as in `serve`; [`TestApp::drain`] runs what is due now.
    pub worker: Arc<frontdesk_worker::Worker>,
    stop_worker: tokio::sync::watch::Sender<bool>,
    _media: tempfile::TempDir,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    handle: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(30))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

impl TestApp {
    pub async fn spawn(db: TestDb) -> Self {
        Self::spawn_with(db, ServerSettings::default(), None, Duration::from_secs(10)).await
    }

    pub async fn spawn_with(
        db: TestDb,
        settings: ServerSettings,
        metrics_token: Option<&str>,
        grace: Duration,
    ) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut settings = settings;
        settings.auth.base_url = url::Url::parse(&format!("http://{addr}/")).unwrap();
        let media = tempfile::tempdir().unwrap();
        settings.media_dir = media.path().join("media");
        let clock_offset = Arc::new(std::sync::atomic::AtomicI64::new(0));
        let state = AppState::with_clock(
            db.store.clone(),
            settings,
            metrics_token.map(|t| SecretString::from(t.to_owned())),
            Clock::offset(clock_offset.clone()),
        );
        let worker = frontdesk::start_worker(&state);
        db.store.relay_events();
        let (stop_worker, stopped) = tokio::sync::watch::channel(false);
        worker.spawn(stopped);
        let app = build_app(state.clone());
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let handle = tokio::spawn(serve(
            listener,
            app.router,
            async move {
                let _ = rx.await;
            },
            grace,
        ));
        Self {
            addr,
            client: client(),
            db,
            routes: app.routes,
            state,
            clock_offset,
            worker,
            stop_worker,
            _media: media,
            shutdown: Some(tx),
            handle: Some(handle),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// Moves the server's clock forward (expiry, idle timeouts, lockouts).
    pub fn advance(&self, secs: i64) {
        self.clock_offset
            .fetch_add(secs, std::sync::atomic::Ordering::SeqCst);
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client.get(self.url(path)).send().await.unwrap()
    }

    /// Runs the worker until nothing is due: webhook rows, sends, receipts, media.
    pub async fn drain(&self) {
        self.worker.drain().await.unwrap();
    }

    /// Signals shutdown without waiting for the server to stop.
    pub fn signal_shutdown(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }

    /// Waits for the server task to end.
    pub async fn stopped(&mut self) -> std::io::Result<()> {
        self.handle.take().expect("server running").await.unwrap()
    }
}

/// The real `frontdesk` binary, started with `serve` in a directory of its own.
pub struct Process {
    pub child: Child,
    pub addr: SocketAddr,
    pub stdout: Arc<Mutex<Vec<String>>>,
    pub stderr: Arc<Mutex<Vec<String>>>,
}

/// A command for the binary with no FRONTDESK_* variables inherited from the test run.
pub fn frontdesk_command(cwd: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_frontdesk"));
    cmd.current_dir(cwd);
    for (k, _) in std::env::vars() {
        if k.starts_with("FRONTDESK_") {
            cmd.env_remove(k);
        }
    }
    cmd
}

fn collect(reader: impl std::io::Read + Send + 'static, sink: Arc<Mutex<Vec<String>>>) {
    std::thread::spawn(move || {
        for line in BufReader::new(reader).lines().map_while(Result::ok) {
            sink.lock().unwrap().push(line);
        }
    });
}

impl Process {
    /// Starts `frontdesk serve` on port 0 and waits for the line announcing the address.
    pub fn serve(cwd: &Path, envs: &[(&str, &str)]) -> Self {
        let mut cmd = frontdesk_command(cwd);
        cmd.arg("serve")
            .env("FRONTDESK_BIND", "127.0.0.1:0")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in envs {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("start frontdesk");
        let stdout = Arc::new(Mutex::new(Vec::new()));
        let stderr = Arc::new(Mutex::new(Vec::new()));
        collect(child.stdout.take().unwrap(), stdout.clone());
        collect(child.stderr.take().unwrap(), stderr.clone());
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        let addr = loop {
            let found = stdout.lock().unwrap().iter().find_map(|l| {
                let v: serde_json::Value = serde_json::from_str(l).ok()?;
                v.get("address")?.as_str()?.parse::<SocketAddr>().ok()
            });
            if let Some(a) = found {
                break a;
            }
            if let Ok(Some(status)) = child.try_wait() {
                panic!(
                    "frontdesk exited early ({status}); stderr: {:?}; stdout: {:?}",
                    stderr.lock().unwrap(),
                    stdout.lock().unwrap()
                );
            }
            assert!(
                std::time::Instant::now() < deadline,
                "frontdesk did not start"
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        Self {
            child,
            addr,
            stdout,
            stderr,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// Sends SIGTERM and waits (bounded) for the exit status.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let ok = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill -TERM failed");
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                // Let the reader threads drain the pipes.
                std::thread::sleep(Duration::from_millis(50));
                return s;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "frontdesk ignored SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Every stdout line parsed as JSON (all of them must be JSON).
    pub fn json_logs(&self) -> Vec<serde_json::Value> {
        self.stdout
            .lock()
            .unwrap()
            .iter()
            .map(|l| {
                serde_json::from_str(l).unwrap_or_else(|e| panic!("log line not JSON ({e}): {l}"))
            })
            .collect()
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits until some session of the test database is blocked on a lock. Asked as the
/// superuser: other roles cannot see each other's wait state.
pub async fn wait_for_lock_waiter(db: &TestDb) {
    use sqlx::Connection;
    let url = db.superuser_url.as_ref().expect("PostgreSQL test database");
    let mut conn = sqlx::PgConnection::connect(url.expose()).await.unwrap();
    for _ in 0..500 {
        let waiting: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'",
        )
        .fetch_one(&mut conn)
        .await
        .unwrap();
        if waiting > 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the request never reached the database lock");
}
