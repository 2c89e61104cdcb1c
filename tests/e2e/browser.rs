//! A real headless Chromium, driven through ChromeDriver's W3C WebDriver API on loopback:
//! pages are opened, read through their DOM, hovered and photographed the way a person's
//! browser would show them. `.ci/run` installs Debian's `chromium` and `chromium-driver`;
//! `DINMO_CHROMIUM` and `DINMO_CHROMEDRIVER` name others.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// The key under which WebDriver names an element.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// A ChromeDriver process and one headless Chromium session, both ended on drop.
pub struct Browser {
    driver: Child,
    base: String,
    session: String,
    runtime: tokio::runtime::Runtime,
    client: reqwest::Client,
    _profile: tempfile::TempDir,
}

fn tool(variable: &str, default: &str) -> String {
    let path = std::env::var(variable).unwrap_or_else(|_| default.to_string());
    assert!(
        Path::new(&path).exists(),
        "{path} is missing: run .ci/run (it installs Debian's chromium and chromium-driver), \
         `apt-get install chromium chromium-driver`, or set {variable}"
    );
    path
}

impl Browser {
    /// Starts ChromeDriver on a free loopback port and opens a headless Chromium session
    /// `width` × `height` pixels.
    pub fn start(width: u32, height: u32) -> Browser {
        let chromium = tool("DINMO_CHROMIUM", "/usr/bin/chromium");
        let chromedriver = tool("DINMO_CHROMEDRIVER", "/usr/bin/chromedriver");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free port");
        let driver = Command::new(chromedriver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .expect("an HTTP client");
        let base = format!("http://127.0.0.1:{port}");
        let profile = tempfile::tempdir().expect("a profile folder");
        let mut browser = Browser {
            driver,
            base,
            session: String::new(),
            runtime,
            client,
            _profile: profile,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let ready = browser.runtime.block_on(async {
                let response = browser
                    .client
                    .get(format!("{}/status", browser.base))
                    .send()
                    .await
                    .ok()?;
                let status: Value = response.json().await.ok()?;
                status["value"]["ready"].as_bool()
            });
            if ready == Some(true) {
                break;
            }
            assert!(Instant::now() < deadline, "chromedriver did not start within 20 s");
            std::thread::sleep(Duration::from_millis(100));
        }
        let profile = browser._profile.path().to_string_lossy().into_owned();
        let created = browser.call(
            reqwest::Method::POST,
            "/session",
            Some(json!({"capabilities": {"alwaysMatch": {
                "browserName": "chrome",
                "goog:chromeOptions": {
                    "binary": chromium,
                    "args": [
                        "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                        "--no-first-run", "--hide-scrollbars", format!("--window-size={width},{height}"),
                        format!("--user-data-dir={profile}"),
                    ],
                },
            }}})),
        );
        browser.session = created["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {created}"))
            .to_string();
        browser
    }

    /// One WebDriver command; its `value`.
    fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let url = format!("{}{path}", self.base);
        let answer: Value = self.runtime.block_on(async {
            let mut request = self.client.request(method, &url);
            if let Some(body) = body {
                request = request.json(&body);
            }
            let response = request.send().await.unwrap_or_else(|e| panic!("{url}: {e}"));
            response.json().await.unwrap_or_else(|e| panic!("{url}: {e}"))
        });
        if answer["value"]["error"].is_string() {
            panic!("{url}: {}", answer["value"]);
        }
        answer["value"].clone()
    }

    fn session_call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        self.call(method, &format!("/session/{}{path}", self.session), body)
    }

    /// Opens the local file `path` and waits for it to load.
    pub fn open(&self, path: &Path) {
        let url = format!("file://{}", path.display());
        self.session_call(reqwest::Method::POST, "/url", Some(json!({ "url": url })));
    }

    /// Runs `script` (a function body) in the page; what it returns.
    pub fn eval(&self, script: &str) -> Value {
        self.session_call(
            reqwest::Method::POST,
            "/execute/sync",
            Some(json!({"script": script, "args": []})),
        )
    }

    /// Moves the pointer to the middle of the first element `selector` finds.
    pub fn hover(&self, selector: &str) {
        let found = self.session_call(
            reqwest::Method::POST,
            "/element",
            Some(json!({"using": "css selector", "value": selector})),
        );
        let element = found[ELEMENT]
            .as_str()
            .unwrap_or_else(|| panic!("no {selector}: {found}"));
        self.session_call(
            reqwest::Method::POST,
            "/actions",
            Some(json!({"actions": [{
                "type": "pointer", "id": "mouse", "parameters": {"pointerType": "mouse"},
                "actions": [{"type": "pointerMove", "duration": 0, "origin": {ELEMENT: element}, "x": 0, "y": 0}],
            }]})),
        );
    }

    /// A PNG of the viewport, written to `to`; its width and height.
    pub fn screenshot(&self, to: &Path) -> (u32, u32) {
        use base64::Engine as _;
        let encoded = self.session_call(reqwest::Method::GET, "/screenshot", None);
        let png = base64::engine::general_purpose::STANDARD
            .decode(encoded.as_str().unwrap_or_default())
            .expect("a base64 PNG");
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n", "a PNG");
        std::fs::write(to, &png).expect("the screenshot is written");
        let be = |at: usize| u32::from_be_bytes([png[at], png[at + 1], png[at + 2], png[at + 3]]);
        (be(16), be(20))
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if !self.session.is_empty() {
            let url = format!("{}/session/{}", self.base, self.session);
            let _ = self.runtime.block_on(async { self.client.delete(&url).send().await });
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}
