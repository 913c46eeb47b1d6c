//! A real headless Chromium driven over WebDriver. Each `Browser` runs its own chromedriver
//! and its own fresh profile, so two browsers in one test share no cookies or storage.

use fantoccini::elements::Element;
use fantoccini::error::CmdError;
use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::{Value, json};
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const INSTALL_HINT: &str = "the browser tests need Debian's `chromium` and `chromium-driver` \
    packages: run ./scripts/test (it installs them) or `apt-get install chromium chromium-driver`";

/// How long `click`, `fill` and `text` wait for their element to appear.
pub const DEFAULT_WAIT: Duration = Duration::from_secs(5);

/// One headless Chromium behind its own chromedriver; killed with its whole process group
/// when dropped, so a failing test leaves no browser behind.
pub struct Browser {
    client: Client,
    session_id: Option<String>,
    session_closed: bool,
    // Dropped in this order: chromedriver and Chromium are killed before their profile is
    // removed.
    driver: Driver,
    _profile: tempfile::TempDir,
}

/// A running chromedriver in its own process group; dropping it kills the group, so even a
/// `Browser::start` abandoned half-way leaves no process behind.
struct Driver {
    child: Child,
    port: u16,
    output: Arc<Mutex<Vec<String>>>,
}

impl Drop for Driver {
    fn drop(&mut self) {
        kill_group(&mut self.child);
    }
}

impl Browser {
    /// Starts chromedriver on a free port and opens a session in a fresh profile. Panics,
    /// saying how to install them, when Chromium or chromedriver is missing.
    pub async fn start() -> Self {
        for program in [CHROMIUM, CHROMEDRIVER] {
            assert!(
                Path::new(program).exists(),
                "{program} not found: {INSTALL_HINT}"
            );
        }
        let profile = tempfile::Builder::new()
            .prefix("frontdesk-chromium-")
            .tempdir()
            .expect("temp dir for the Chromium profile");
        let driver = start_chromedriver().await;
        let caps = chrome_capabilities(profile.path());
        let mut builder = ClientBuilder::new(HttpConnector::new());
        builder.capabilities(caps);
        let connected = builder
            .connect(&format!("http://127.0.0.1:{}", driver.port))
            .await;
        let client = match connected {
            Ok(client) => client,
            Err(e) => {
                let output = driver.output.lock().unwrap().join("\n");
                drop(driver);
                panic!(
                    "chromedriver could not open a Chromium session: {e}\nchromedriver output:\n{output}"
                );
            }
        };
        let session_id = client.session_id().await.ok().flatten();
        Self {
            client,
            session_id,
            session_closed: false,
            driver,
            _profile: profile,
        }
    }

    /// The WebDriver client, for what the helpers below do not cover.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Navigates and waits for the page to load.
    pub async fn goto(&self, url: &str) {
        if let Err(e) = self.client.goto(url).await {
            panic!("browser could not open {url}: {e}");
        }
    }

    pub async fn current_url(&self) -> url::Url {
        self.client.current_url().await.expect("current URL")
    }

    /// The element matching `css` now; panics with the page when there is none.
    pub async fn find(&self, css: &str) -> Element {
        match self.client.find(Locator::Css(css)).await {
            Ok(element) => element,
            Err(e) if e.is_no_such_element() => {
                panic!("no element matches `{css}`\n{}", self.describe_page().await)
            }
            Err(e) => panic!(
                "finding `{css}` failed: {e}\n{}",
                self.describe_page().await
            ),
        }
    }

    /// Polls until an element matches `css`; on timeout panics naming the selector, the
    /// current URL and the start of the page source.
    pub async fn wait_for(&self, css: &str, timeout: Duration) -> Element {
        let deadline = Instant::now() + timeout;
        loop {
            match self.client.find(Locator::Css(css)).await {
                Ok(element) => return element,
                Err(e) if e.is_no_such_element() => {}
                Err(e) => panic!(
                    "finding `{css}` failed: {e}\n{}",
                    self.describe_page().await
                ),
            }
            if Instant::now() >= deadline {
                panic!(
                    "timed out after {timeout:?} waiting for an element matching `{css}`\n{}",
                    self.describe_page().await
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub async fn click(&self, css: &str) {
        let element = self.wait_for(css, DEFAULT_WAIT).await;
        self.check(css, "click", element.click().await).await;
    }

    /// Replaces the value of the input matching `css` with `text`, typed as keys.
    pub async fn fill(&self, css: &str, text: &str) {
        let element = self.wait_for(css, DEFAULT_WAIT).await;
        self.check(css, "clear", element.clear().await).await;
        self.check(css, "type into", element.send_keys(text).await)
            .await;
    }

    /// The rendered text of the element matching `css`.
    pub async fn text(&self, css: &str) -> String {
        let deadline = Instant::now() + DEFAULT_WAIT;
        loop {
            let element = self.wait_for(css, DEFAULT_WAIT).await;
            match element.text().await {
                // A page that reloads itself replaced the element between the find and the
                // read: find it again.
                Err(e) if e.is_stale_element_reference() && Instant::now() < deadline => {}
                text => return self.check(css, "read the text of", text).await,
            }
        }
    }

    /// The current value of the input matching `css` (what a person sees in the field).
    pub async fn value(&self, css: &str) -> String {
        let element = self.wait_for(css, DEFAULT_WAIT).await;
        let value = element.prop("value").await;
        self.check(css, "read the value of", value)
            .await
            .unwrap_or_default()
    }

    /// Replaces the value of the one input inside the `<label>` whose text starts with
    /// `label`, as a person finds a field; panics when no field or several fields match.
    pub async fn fill_labelled(&self, label: &str, text: &str) {
        assert!(!label.contains('"'), "label text with a quote: {label}");
        let xpath = format!("//label[starts-with(normalize-space(.), \"{label}\")]//input");
        let deadline = Instant::now() + DEFAULT_WAIT;
        let field = loop {
            let found = match self.client.find_all(Locator::XPath(&xpath)).await {
                Ok(found) => found,
                Err(e) => panic!(
                    "finding the field labelled {label:?} failed: {e}\n{}",
                    self.describe_page().await
                ),
            };
            match found.len() {
                1 => break found.into_iter().next().unwrap(),
                0 if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                n => panic!(
                    "{n} fields are labelled {label:?} (wanted one)\n{}",
                    self.describe_page().await
                ),
            }
        };
        self.check(label, "clear", field.clear().await).await;
        self.check(label, "type into", field.send_keys(text).await)
            .await;
    }

    /// How many elements match `css` now.
    pub async fn count(&self, css: &str) -> usize {
        match self.client.find_all(Locator::Css(css)).await {
            Ok(found) => found.len(),
            Err(e) => panic!(
                "finding `{css}` failed: {e}\n{}",
                self.describe_page().await
            ),
        }
    }

    /// Polls until the page's path is `path` (the query is ignored) and returns the URL;
    /// after a click that submits a form, this is how a test knows where it landed.
    pub async fn wait_for_path(&self, path: &str) -> url::Url {
        let deadline = Instant::now() + DEFAULT_WAIT;
        loop {
            let url = self.current_url().await;
            if url.path() == path {
                return url;
            }
            if Instant::now() >= deadline {
                panic!(
                    "timed out after {DEFAULT_WAIT:?} waiting to reach {path}\n{}",
                    self.describe_page().await
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits for a dialog (`window.confirm`, `alert`), accepts it and returns its text.
    pub async fn accept_dialog(&self) -> String {
        let deadline = Instant::now() + DEFAULT_WAIT;
        loop {
            match self.client.get_alert_text().await {
                Ok(text) => {
                    if let Err(e) = self.client.accept_alert().await {
                        panic!("could not accept the dialog {text:?}: {e}");
                    }
                    return text;
                }
                Err(e) if Instant::now() >= deadline => {
                    panic!(
                        "no dialog opened within {DEFAULT_WAIT:?} ({e})\n{}",
                        self.describe_page().await
                    )
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    }

    /// The value of a cookie of the current page's site, `HttpOnly` ones included.
    pub async fn cookie(&self, name: &str) -> Option<String> {
        match self.client.get_named_cookie(name).await {
            Ok(c) => Some(c.value().to_owned()),
            Err(e) if e.is_no_such_cookie() => None,
            Err(e) => panic!("reading cookie {name} failed: {e}"),
        }
    }

    /// Every Content-Security-Policy violation the current document has had since it
    /// started loading: Chromium buffers them for a `ReportingObserver`, so violations
    /// that happened before this call are reported too.
    pub async fn csp_violations(&self) -> Vec<Value> {
        let script = r#"
            const done = arguments[arguments.length - 1];
            const seen = [];
            const keep = (reports) => {
                for (const r of reports) seen.push(r.body ? r.body.toJSON() : { url: r.url });
            };
            const observer = new ReportingObserver(keep, {
                types: ["csp-violation"],
                buffered: true,
            });
            observer.observe();
            // Buffered reports arrive in a task after `observe`.
            setTimeout(() => {
                keep(observer.takeRecords());
                observer.disconnect();
                done(seen);
            }, 100);
        "#;
        match self.client.execute_async(script, vec![]).await {
            Ok(Value::Array(reports)) => reports,
            Ok(other) => panic!("the violation probe returned {other}"),
            Err(e) => panic!(
                "the violation probe failed: {e}\n{}",
                self.describe_page().await
            ),
        }
    }

    /// Runs `script` in the page (`arguments[i]` are `args`) and returns what it returns.
    pub async fn execute(&self, script: &str, args: Vec<Value>) -> Value {
        match self.client.execute(script, args).await {
            Ok(v) => v,
            Err(e) => panic!(
                "script failed: {e}\nscript: {script}\n{}",
                self.describe_page().await
            ),
        }
    }

    /// Saves a PNG of the viewport, creating the directory if needed.
    pub async fn screenshot(&self, path: impl AsRef<Path>) {
        let path = path.as_ref();
        let png = self.client.screenshot().await.expect("screenshot");
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).expect("screenshot directory");
        }
        std::fs::write(path, png).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    }

    /// Ends the session (Chromium quits) and stops chromedriver.
    pub async fn close(mut self) {
        let closed = self.client.clone().close().await;
        self.session_closed = true;
        if let Err(e) = closed {
            panic!("closing the browser session failed: {e}");
        }
        // Dropping the driver stops chromedriver.
    }

    async fn check<T>(&self, css: &str, action: &str, result: Result<T, CmdError>) -> T {
        match result {
            Ok(v) => v,
            Err(e) => panic!(
                "could not {action} `{css}`: {e}\n{}",
                self.describe_page().await
            ),
        }
    }

    /// The current URL and the start of the page source, for failure messages.
    async fn describe_page(&self) -> String {
        let url = match self.client.current_url().await {
            Ok(u) => u.to_string(),
            Err(e) => format!("(unknown: {e})"),
        };
        let source = match self.client.source().await {
            Ok(s) => excerpt(&s, 2000),
            Err(e) => format!("(unavailable: {e})"),
        };
        format!("current URL: {url}\npage source (start):\n{source}")
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // On a panic the async `close` never ran: end the session over plain HTTP so
        // chromedriver quits Chromium properly, then kill whatever is left.
        if !self.session_closed
            && let Some(id) = &self.session_id
        {
            delete_session_blocking(self.driver.port, id);
        }
        if std::thread::panicking() {
            // What chromedriver said past its start banner may explain the failure.
            let output = self.driver.output.lock().unwrap();
            let after_banner: Vec<&str> = output
                .iter()
                .skip_while(|l| !l.contains("started successfully"))
                .skip(1)
                .map(String::as_str)
                .collect();
            if !after_banner.is_empty() {
                eprintln!("chromedriver output:\n{}", after_banner.join("\n"));
            }
        }
    }
}

fn chrome_capabilities(profile: &Path) -> fantoccini::wd::Capabilities {
    let args = [
        "--headless=new".to_owned(),
        "--no-sandbox".to_owned(),
        "--disable-gpu".to_owned(),
        "--disable-dev-shm-usage".to_owned(),
        // The network here is closed: anything Chromium fetches on its own only times out.
        "--disable-quic".to_owned(),
        "--no-first-run".to_owned(),
        "--disable-background-networking".to_owned(),
        "--disable-component-update".to_owned(),
        "--disable-sync".to_owned(),
        "--window-size=1280,900".to_owned(),
        // Every host name but localhost fails at once instead of waiting on this machine's
        // resolver: pages are only ever served on loopback, and nothing leaves it.
        "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost, EXCLUDE 127.0.0.1".to_owned(),
        format!("--user-data-dir={}", profile.display()),
    ];
    let caps = json!({
        "browserName": "chrome",
        "goog:chromeOptions": {
            "binary": CHROMIUM,
            "args": args,
            // Start on about:blank: the default new-tab page loads the search engine's
            // start page, and chromedriver waits for that navigation before the first `goto`
            // (up to 5 s on a closed network).
            "prefs": { "session": { "restore_on_startup": 4, "startup_urls": ["about:blank"] } },
        },
        // Bounded, so a hung page fails the test instead of stalling it for minutes.
        "timeouts": { "pageLoad": 30_000, "script": 10_000 },
    });
    match caps {
        Value::Object(map) => map,
        _ => unreachable!(),
    }
}

/// Starts chromedriver on a port that was free a moment ago; if another process takes it
/// first, chromedriver exits and we try another.
async fn start_chromedriver() -> Driver {
    let mut failures = Vec::new();
    for _ in 0..5 {
        let port = free_port();
        let mut cmd = Command::new(CHROMEDRIVER);
        cmd.arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        // Its own process group, so Drop can kill chromedriver and every Chromium process.
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        let mut child = match cmd.spawn() {
            Ok(child) => child,
            Err(e) => panic!("could not start {CHROMEDRIVER}: {e}; {INSTALL_HINT}"),
        };
        let output = Arc::new(Mutex::new(Vec::new()));
        super::collect(child.stdout.take().unwrap(), output.clone());
        super::collect(child.stderr.take().unwrap(), output.clone());
        let mut driver = Driver {
            child,
            port,
            output,
        };
        match wait_until_ready(&mut driver).await {
            Ok(()) => return driver,
            Err(why) => {
                let lines = driver.output.lock().unwrap().join("\n");
                failures.push(format!("port {port}: {why}\n{lines}"));
            }
        }
    }
    panic!(
        "chromedriver did not start:\n{}\n({INSTALL_HINT})",
        failures.join("\n")
    );
}

fn free_port() -> u16 {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind 127.0.0.1:0");
    listener.local_addr().unwrap().port()
}

/// Ready means our child announced it is listening and `GET /status` says ready; the
/// announcement rules out a different process that happens to hold the port.
async fn wait_until_ready(driver: &mut Driver) -> Result<(), String> {
    let client = super::client();
    let status_url = format!("http://127.0.0.1:{}/status", driver.port);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(Some(status)) = driver.child.try_wait() {
            return Err(format!("chromedriver exited ({status})"));
        }
        let announced = driver
            .output
            .lock()
            .unwrap()
            .iter()
            .any(|l| l.contains("started successfully"));
        if announced
            && let Ok(response) = client.get(&status_url).send().await
            && let Ok(body) = response.json::<Value>().await
            && body["value"]["ready"] == true
        {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err("no ready answer on /status within 20 s".to_owned());
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// `DELETE /session/{id}` without the async runtime, which may be gone or busy in Drop.
fn delete_session_blocking(port: u16, session_id: &str) {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_secs(1)) else {
        return;
    };
    let _ = stream.set_write_timeout(Some(Duration::from_secs(2)));
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let request = format!(
        "DELETE /session/{session_id} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\
         Content-Length: 0\r\nConnection: close\r\n\r\n"
    );
    if stream.write_all(request.as_bytes()).is_err() {
        return;
    }
    // chromedriver answers once Chromium has quit, and keeps the connection open despite
    // `Connection: close`: read exactly one response instead of up to the end.
    let mut response = Vec::new();
    let mut chunk = [0u8; 1024];
    while !is_complete_response(&response) {
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(n) => response.extend_from_slice(&chunk[..n]),
        }
    }
}

fn is_complete_response(bytes: &[u8]) -> bool {
    let Some(end) = bytes.windows(4).position(|w| w == b"\r\n\r\n") else {
        return false;
    };
    let head = String::from_utf8_lossy(&bytes[..end]).to_ascii_lowercase();
    let length = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse::<usize>().ok())
        .unwrap_or(0);
    bytes.len() >= end + 4 + length
}

/// SIGKILL to chromedriver's process group (Chromium included), then reap chromedriver.
fn kill_group(child: &mut Child) {
    let _ = Command::new("kill")
        .args(["-KILL", "--", &format!("-{}", child.id())])
        .stderr(Stdio::null())
        .status();
    let _ = child.kill();
    let _ = child.wait();
}

fn excerpt(s: &str, max_chars: usize) -> String {
    match s.char_indices().nth(max_chars) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_owned(),
    }
}
