//! A real headless Chromium for the browser tests, driven over WebDriver
//! (chromedriver), and where their screenshots go (`target/e2e/`).
//!
//! Needs Debian's `chromium` and `chromium-driver` (the test command
//! installs them as root). Without them [`Browser::open`] says so and
//! returns `None`, except under `CI=true`, where a missing browser fails.

use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder};
use serde_json::json;

/// chromedriver in a process group of its own, with the browsers it
/// starts: all of it is killed on drop, also when a test panics before it
/// could close its session.
struct Driver(Child);

impl Drop for Driver {
    fn drop(&mut self) {
        if let Ok(pid) = i32::try_from(self.0.id()) {
            let _ = nix::sys::signal::killpg(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        let _ = self.0.wait();
    }
}

/// One browser session.
pub struct Browser {
    /// The WebDriver session.
    pub client: Client,
    profile: PathBuf,
    _driver: Driver,
}

fn find_program(names: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .flat_map(|dir| names.iter().map(move |n| dir.join(n)))
        .find(|p| p.is_file())
}

impl Browser {
    /// Starts chromedriver and a headless Chromium of `width` x `height`;
    /// `None` (test skipped) if they are not installed and `CI` is not
    /// `true`. `test` names the test in the skip message.
    pub async fn open(test: &str, width: u32, height: u32) -> Option<Browser> {
        let (Some(chromium), Some(chromedriver)) = (
            find_program(&["chromium", "chromium-browser", "google-chrome"]),
            find_program(&["chromedriver"]),
        ) else {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "CI=true but chromium / chromedriver are missing (apt-get install chromium chromium-driver)"
            );
            eprintln!("SKIPPED {test}: no chromium / chromedriver");
            return None;
        };
        let port = crate::free_port("127.0.0.1");
        let driver = match Command::new(&chromedriver)
            .arg(format!("--port={port}"))
            .process_group(0)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
        {
            Ok(child) => Driver(child),
            Err(e) => panic!("starting chromedriver: {e}"),
        };
        let profile = std::env::temp_dir().join(format!(
            "drove-chromium-{}-{}",
            std::process::id(),
            crate::random_hex()
        ));
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": chromium,
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--disable-background-networking", "--disable-component-update",
                    "--disable-default-apps", "--disable-sync", "--disable-extensions",
                    "--no-first-run", "--no-default-browser-check", "--metrics-recording-only",
                    "--disable-domain-reliability", "--disable-client-side-phishing-detection",
                    format!("--window-size={width},{height}"),
                    format!("--user-data-dir={}", profile.display()),
                ]
            }),
        );
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let connected = match ClientBuilder::rustls() {
                Ok(mut builder) => {
                    builder
                        .capabilities(caps.clone())
                        .connect(&format!("http://127.0.0.1:{port}"))
                        .await
                }
                Err(e) => panic!("WebDriver client: {e}"),
            };
            match connected {
                Ok(client) => {
                    return Some(Browser {
                        client,
                        profile,
                        _driver: driver,
                    })
                }
                Err(e) => {
                    assert!(Instant::now() < deadline, "no WebDriver session: {e}");
                    tokio::time::sleep(Duration::from_millis(250)).await;
                }
            }
        }
    }

    /// Ends the session and removes the browser's profile.
    pub async fn close(self) {
        let _ = self.client.close().await;
        let _ = std::fs::remove_dir_all(&self.profile);
    }

    /// Saves a screenshot of the page as `target/e2e/<name>`.
    pub async fn screenshot(&self, name: &str) {
        match self.client.screenshot().await {
            Ok(png) => save_screenshot(name, &png),
            Err(e) => eprintln!("no screenshot {name}: {e}"),
        }
    }
}

/// Writes `png` to `target/e2e/<name>`.
pub fn save_screenshot(name: &str, png: &[u8]) {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/e2e");
    let _ = std::fs::create_dir_all(&dir);
    let _ = std::fs::write(dir.join(name), png);
}
