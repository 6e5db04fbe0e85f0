//! A harness for multi-process drove tests.
//!
//! It builds (or finds) the `drove` binary, starts real node processes on
//! free loopback addresses, waits for them to converge, injects faults
//! (kill -9, SIGSTOP / SIGCONT, SIGTERM, restart), and kills every process it
//! started when the test ends, also when it panics.
//!
//! # Layout
//!
//! - this file: [`drove_bin`], [`TestCluster`], [`NodeProc`], [`wait_for`].
//! - [`browser`]: a headless Chromium over WebDriver, and screenshots.
//! - [`netns`]: network namespaces for partition tests (root only).
//! - [`redis`]: a private `redis-server` per test.
//! - [`stores`]: nodes on a shared job store, temp files, admin JSON calls.
//! - `tests/`: the test cases, one binary per file.

pub mod browser;
pub mod forge;
pub mod netns;
pub mod redis;
pub mod sse;
pub mod stores;

use std::fs::File;
use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use drove_admin::ClusterJson;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

/// The `drove` binary, built (once per test process) by cargo in the same
/// profile as the running test, or `DROVE_BIN` if set.
pub fn drove_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| workspace_bin("DROVE_BIN", "drove-cli", "drove"))
        .clone()
}

/// The `download-manager` binary, as [`drove_bin`] (`DM_BIN` overrides).
pub fn download_manager_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| workspace_bin("DM_BIN", "download-manager", "download-manager"))
        .clone()
}

fn workspace_bin(env: &str, package: &str, bin: &str) -> PathBuf {
    if let Some(p) = std::env::var_os(env) {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().unwrap_or_default();
    // target/<profile>/deps/<test> or target/<profile>/<bench binary>
    let profile_dir = exe
        .ancestors()
        .find(|p| {
            p.file_name()
                .is_some_and(|n| n == "debug" || n == "release")
        })
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("target/debug"));
    let release = profile_dir.file_name().is_some_and(|n| n == "release");
    let target_dir = profile_dir
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
    let mut cmd = Command::new(cargo);
    cmd.args(["build", "--quiet", "-p", package, "--bin", bin])
        .arg("--target-dir")
        .arg(&target_dir)
        .current_dir(env!("CARGO_MANIFEST_DIR"));
    if release {
        cmd.arg("--release");
    }
    let status = cmd.status();
    assert!(
        status.as_ref().is_ok_and(|s| s.success()),
        "building the {bin} binary failed: {status:?}"
    );
    let path = profile_dir.join(bin);
    assert!(
        path.exists(),
        "built {bin} binary not found at {}",
        path.display()
    );
    path
}

/// A fresh loopback IP per call (127.x.y.z), so concurrent tests never
/// share addresses.
pub fn fresh_loopback_ip() -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let salt = std::process::id() % 200;
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    format!("127.{}.{}.{}", 1 + salt, (n / 250) % 250, 1 + n % 250)
}

/// A port free for both TCP and UDP on `ip` (see
/// `drove_runtime::testing::free_port_on`).
pub fn free_port(ip: &str) -> u16 {
    ip.parse()
        .ok()
        .and_then(drove_runtime::testing::free_port_on)
        .unwrap_or_else(|| panic!("no free port on {ip}"))
}

/// Tests of one test binary that measure timing-sensitive faults (a frozen
/// node must be declared down, and nobody else) take this exclusively; the
/// other multi-process tests of that binary share it. On a small machine,
/// a dozen node processes of parallel tests can starve a node long enough
/// for its peers to suspect it, which is a real false positive of failure
/// detection but not what such a test is about.
static FAULT_TIMING: tokio::sync::RwLock<()> = tokio::sync::RwLock::const_new(());

/// Runs alone among this binary's multi-process tests while held.
pub async fn timing_sensitive() -> tokio::sync::RwLockWriteGuard<'static, ()> {
    FAULT_TIMING.write().await
}

/// Runs beside other multi-process tests, but not beside a
/// [`timing_sensitive`] one, while held.
pub async fn shared_machine() -> tokio::sync::RwLockReadGuard<'static, ()> {
    FAULT_TIMING.read().await
}

/// Polls `check` every 100 ms until it returns `Some`, or panics with
/// `what` after `timeout`.
pub async fn wait_for<T, F, Fut>(timeout: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The sum of the `/metrics` samples named `name` whose labels contain
/// every one of `labels` (e.g. `peer="n2"`); `None` if unreachable.
pub async fn metric(http: &str, name: &str, labels: &[&str]) -> Option<u64> {
    let (status, body) = drove_admin::client::get(http, "/metrics", Duration::from_secs(10))
        .await
        .ok()?;
    if status != 200 {
        return None;
    }
    Some(
        body.lines()
            .filter(|l| {
                l.split(['{', ' ']).next() == Some(name) && labels.iter().all(|lb| l.contains(lb))
            })
            .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
            .sum(),
    )
}

/// GET `/api/cluster` on an admin address.
pub async fn cluster_at(http: &str) -> Option<ClusterJson> {
    let (status, body) = drove_admin::client::get(http, "/api/cluster", Duration::from_secs(2))
        .await
        .ok()?;
    if status != 200 {
        return None;
    }
    serde_json::from_str(&body).ok()
}

/// A JSON request (`POST`, `DELETE`...) with a body; returns status and body.
pub async fn send_json(
    method: &str,
    http: &str,
    path: &str,
    body: &serde_json::Value,
) -> Result<(u16, String), String> {
    drove_admin::client::send(
        http,
        method,
        path,
        &body.to_string(),
        Duration::from_secs(60),
    )
    .await
    .map_err(|e| e.to_string())
}

/// The registry table of a node: name -> (node, incarnation).
pub async fn registry_at(
    http: &str,
) -> Option<std::collections::BTreeMap<String, (String, String)>> {
    let (status, body) = drove_admin::client::get(http, "/api/registry", Duration::from_secs(30))
        .await
        .ok()?;
    if status != 200 {
        return None;
    }
    let rows: Vec<drove_admin::registry::EntryJson> = serde_json::from_str(&body).ok()?;
    Some(
        rows.into_iter()
            .map(|r| (r.name, (r.node, r.incarnation)))
            .collect(),
    )
}

/// Registers `names` on the node at `http` (one echo actor holds them).
pub async fn register_names(http: &str, names: &[String]) -> drove_admin::registry::RegisterAnswer {
    let (status, body) = send_json(
        "POST",
        http,
        "/api/registry",
        &serde_json::json!({ "names": names }),
    )
    .await
    .unwrap_or_else(|e| panic!("POST /api/registry on {http}: {e}"));
    assert!(
        status == 201 || status == 409,
        "POST /api/registry answered {status}: {body}"
    );
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("bad answer {body}: {e}"))
}

/// `GET /api/children` (cluster-wide, or `local` for the node's ledger).
pub async fn children_at(http: &str, local: bool) -> Option<Vec<drove_supervisor::ChildInfo>> {
    let path = if local {
        "/api/children?scope=local"
    } else {
        "/api/children"
    };
    let (status, body) = drove_admin::client::get(http, path, Duration::from_secs(30))
        .await
        .ok()?;
    if status != 200 {
        return None;
    }
    serde_json::from_str(&body).ok()
}

/// `POST /api/children`; panics unless the child started.
pub async fn spawn_child(http: &str, body: serde_json::Value) {
    let (status, answer) = send_json("POST", http, "/api/children", &body)
        .await
        .unwrap_or_else(|e| panic!("POST /api/children on {http}: {e}"));
    assert_eq!(
        status, 201,
        "POST /api/children {body} answered {status}: {answer}"
    );
}

/// CPU time process `pid` has used (user and system), in clock ticks
/// (10 ms on Linux); 0 if it cannot be read.
pub fn cpu_ticks(pid: i32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    // utime and stime are fields 14 and 15; `rest` starts at field 3.
    let field = |i: usize| {
        fields
            .get(i - 3)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    field(14) + field(15)
}

/// Resident memory of process `pid`, in bytes; 0 if it cannot be read.
pub fn resident_bytes(pid: i32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/statm"))
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map(|pages| pages * 4096)
        .unwrap_or(0)
}

/// One node process.
#[derive(Debug)]
pub struct NodeProc {
    /// Node name.
    pub name: String,
    /// Its `--listen`.
    pub listen: SocketAddr,
    /// Its `--http`.
    pub http: SocketAddr,
    /// Its `--app` (download-manager nodes), if any.
    pub app: Option<SocketAddr>,
    /// Its `--seeds`.
    pub seeds: Vec<String>,
    /// Its `--cookie`.
    pub cookie: String,
    /// Extra arguments.
    pub extra: Vec<String>,
    /// Prefix of the command (e.g. `ip netns exec NS`), if any.
    pub wrapper: Vec<String>,
    /// The program; `None` for the `drove` binary.
    pub bin: Option<PathBuf>,
    /// Its subcommand before the node flags (`node` for `drove`).
    pub command: Vec<String>,
    child: Option<Child>,
    log: PathBuf,
}

impl NodeProc {
    /// A node not yet started, on a fresh loopback address.
    pub fn new(name: &str, seeds: Vec<String>, cookie: &str) -> Self {
        let ip = fresh_loopback_ip();
        let listen = SocketAddr::new(ip.parse().unwrap_or([127, 0, 0, 1].into()), free_port(&ip));
        // A released port can come back from the next probe: keep the two apart.
        let mut http_port = free_port(&ip);
        while http_port == listen.port() {
            http_port = free_port(&ip);
        }
        let http = SocketAddr::new(listen.ip(), http_port);
        Self::at(name, listen, http, seeds, cookie)
    }

    /// A node not yet started, at the given addresses.
    pub fn at(
        name: &str,
        listen: SocketAddr,
        http: SocketAddr,
        seeds: Vec<String>,
        cookie: &str,
    ) -> Self {
        let dir = std::env::temp_dir().join("drove-test-logs");
        let _ = std::fs::create_dir_all(&dir);
        let log = dir.join(format!(
            "{}-{}-{name}.log",
            std::process::id(),
            listen.port()
        ));
        Self {
            name: name.to_string(),
            listen,
            http,
            app: None,
            seeds,
            cookie: cookie.to_string(),
            extra: Vec::new(),
            wrapper: Vec::new(),
            bin: None,
            command: vec!["node".to_string()],
            child: None,
            log,
        }
    }

    /// Starts (or restarts) the process.
    pub fn start(&mut self) {
        assert!(self.child.is_none(), "{} is already running", self.name);
        let bin = self.bin.clone().unwrap_or_else(drove_bin);
        let mut cmd = match self.wrapper.split_first() {
            Some((first, rest)) => {
                let mut c = Command::new(first);
                c.args(rest).arg(&bin);
                c
            }
            None => Command::new(&bin),
        };
        cmd.args(&self.command)
            .args(["--name", &self.name])
            .args(["--listen", &self.listen.to_string()])
            .args(["--http", &self.http.to_string()])
            .args(["--cookie", &self.cookie])
            .args(&self.extra)
            .env(
                "RUST_LOG",
                std::env::var("DROVE_TEST_LOG")
                    .unwrap_or_else(|_| "info,ractor_cluster=error,chitchat=warn".into()),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::null());
        if !self.seeds.is_empty() {
            cmd.args(["--seeds", &self.seeds.join(",")]);
        }
        // Each node gets a job store of its own unless the test gives one,
        // so no test's nodes share the default file in this directory.
        if !self.extra.iter().any(|a| a == "--jobs") {
            let file = self.jobs_file();
            if let Some(dir) = file.parent() {
                let _ = std::fs::create_dir_all(dir);
            }
            cmd.env("DROVE_JOBS", format!("sqlite:{}", file.display()));
        }
        if let Ok(f) = File::options().create(true).append(true).open(&self.log) {
            cmd.stderr(f);
        }
        match cmd.spawn() {
            Ok(child) => self.child = Some(child),
            Err(e) => panic!("starting {}: {e}", self.name),
        }
    }

    /// The job store file this node gets when the test gives it none
    /// (removed, with its WAL files, when the node is dropped).
    fn jobs_file(&self) -> PathBuf {
        std::env::temp_dir().join("drove-test-jobs").join(format!(
            "{}-{}.sqlite3",
            std::process::id(),
            self.listen.port()
        ))
    }

    /// The process id, while running.
    pub fn pid(&self) -> Option<Pid> {
        self.child
            .as_ref()
            .and_then(|c| i32::try_from(c.id()).ok())
            .map(Pid::from_raw)
    }

    /// Sends a signal to the process.
    pub fn signal(&self, sig: Signal) {
        if let Some(pid) = self.pid() {
            let _ = kill(pid, sig);
        }
    }

    /// Whether every thread of the process is stopped (SIGSTOP takes effect
    /// thread by thread, after `kill` returns).
    pub fn is_stopped(&self) -> bool {
        let Some(pid) = self.pid() else { return false };
        let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
            return false;
        };
        let mut any = false;
        for task in tasks.flatten() {
            let stat = std::fs::read_to_string(task.path().join("stat")).unwrap_or_default();
            // The state follows the command name in parentheses.
            let state = stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().next());
            if state != Some("T") && state != Some("t") {
                return false;
            }
            any = true;
        }
        any
    }

    /// SIGSTOP, and wait until every thread has stopped.
    pub async fn freeze(&self) {
        self.signal(Signal::SIGSTOP);
        wait_for(Duration::from_secs(10), "the process to stop", || async {
            self.is_stopped().then_some(())
        })
        .await;
    }

    /// kill -9, and reap.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM, and wait up to `timeout` for the exit; kill -9 after that.
    /// Returns whether it exited by itself.
    pub fn terminate(&mut self, timeout: Duration) -> bool {
        self.signal(Signal::SIGTERM);
        let deadline = Instant::now() + timeout;
        while let Some(child) = self.child.as_mut() {
            if let Ok(Some(_)) = child.try_wait() {
                self.child = None;
                return true;
            }
            if Instant::now() > deadline {
                self.kill9();
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        true
    }

    /// Whether the process is running.
    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// The admin address as `host:port`.
    pub fn http_addr(&self) -> String {
        self.http.to_string()
    }

    /// The app's public address as `host:port` (the admin address for a
    /// node without an app).
    pub fn app_addr(&self) -> String {
        self.app.unwrap_or(self.http).to_string()
    }

    /// This node's `/api/cluster`, if it answers.
    pub async fn cluster(&self) -> Option<ClusterJson> {
        cluster_at(&self.http_addr()).await
    }

    /// The status this node gives `name` (latest incarnation), if listed.
    pub async fn status_of(&self, name: &str) -> Option<String> {
        let c = self.cluster().await?;
        c.members
            .into_iter()
            .find(|m| m.name == name)
            .map(|m| m.status)
    }

    /// Its log file.
    pub fn log_path(&self) -> &Path {
        &self.log
    }
}

impl Drop for NodeProc {
    fn drop(&mut self) {
        if let Some(pid) = self.pid() {
            let _ = kill(pid, Signal::SIGCONT);
        }
        self.kill9();
        for suffix in ["", "-wal", "-shm"] {
            let mut name = self.jobs_file().into_os_string();
            name.push(suffix);
            let _ = std::fs::remove_file(name);
        }
        if std::thread::panicking() {
            if let Ok(text) = std::fs::read_to_string(&self.log) {
                let tail: Vec<&str> = text.lines().rev().take(40).collect();
                eprintln!(
                    "---- last log lines of {} ({}) ----",
                    self.name,
                    self.log.display()
                );
                for line in tail.iter().rev() {
                    eprintln!("{line}");
                }
            }
        } else if std::env::var_os("DROVE_KEEP_LOGS").is_none() {
            let _ = std::fs::remove_file(&self.log);
        }
    }
}

/// N node processes seeded from the first one.
#[derive(Debug)]
pub struct TestCluster {
    /// The nodes, `n1` first.
    pub nodes: Vec<NodeProc>,
    /// The cluster's cookie.
    pub cookie: String,
}

impl TestCluster {
    /// Nodes `n1..=n`, all seeded with `n1`, not started.
    pub fn new(n: usize) -> Self {
        let cookie = format!("test-{}", rand::random::<u64>());
        let mut nodes: Vec<NodeProc> = Vec::new();
        for i in 1..=n {
            let seeds = nodes
                .first()
                .map(|s| vec![s.listen.to_string()])
                .unwrap_or_default();
            nodes.push(NodeProc::new(&format!("n{i}"), seeds, &cookie));
        }
        Self { nodes, cookie }
    }

    /// Starts every node.
    pub fn start_all(&mut self) {
        for n in &mut self.nodes {
            n.start();
        }
    }

    /// Starts `n` nodes and waits until every one sees all of them up.
    pub async fn started(n: usize) -> Self {
        let mut c = Self::new(n);
        c.start_all();
        c.wait_converged(Duration::from_secs(30)).await;
        c
    }

    /// Waits until every running node sees exactly the running nodes up.
    pub async fn wait_converged(&mut self, timeout: Duration) {
        let running: Vec<usize> = (0..self.nodes.len())
            .filter(|&i| self.nodes[i].is_running())
            .collect();
        let names: Vec<String> = running
            .iter()
            .map(|&i| self.nodes[i].name.clone())
            .collect();
        let https: Vec<String> = running.iter().map(|&i| self.nodes[i].http_addr()).collect();
        wait_for(timeout, "the cluster to converge", || {
            let names = names.clone();
            let https = https.clone();
            async move {
                for http in &https {
                    let c = cluster_at(http).await?;
                    let mut up: Vec<String> = c
                        .members
                        .iter()
                        .filter(|m| m.status == "up")
                        .map(|m| m.name.clone())
                        .collect();
                    up.sort();
                    let mut want = names.clone();
                    want.sort();
                    if up != want {
                        return None;
                    }
                }
                Some(())
            }
        })
        .await;
    }
}

/// `n` download-manager nodes named `<prefix>1..`, on one fresh loopback
/// address with ports of their own (so a browser's session cookie, kept
/// per host, reaches every node), seeded by the first, not started; each
/// gets `extra` flags.
pub fn download_manager_nodes(
    n: usize,
    prefix: &str,
    cookie: &str,
    extra: &[&str],
) -> Vec<NodeProc> {
    let ip = fresh_loopback_ip();
    let mut taken = std::collections::BTreeSet::new();
    let mut port = || loop {
        let p = free_port(&ip);
        if taken.insert(p) {
            return p;
        }
    };
    let mut nodes: Vec<NodeProc> = Vec::new();
    for i in 0..n {
        let addr = |p: u16| SocketAddr::new(ip.parse().unwrap_or([127, 0, 0, 1].into()), p);
        let (listen, http, app) = (addr(port()), addr(port()), addr(port()));
        let seeds = nodes
            .first()
            .map(|f| vec![f.listen.to_string()])
            .unwrap_or_default();
        let mut node = NodeProc::at(&format!("{prefix}{}", i + 1), listen, http, seeds, cookie);
        node.bin = Some(download_manager_bin());
        node.command = Vec::new();
        node.app = Some(app);
        node.extra = ["--app".to_string(), app.to_string()]
            .into_iter()
            .chain(extra.iter().map(|s| s.to_string()))
            .collect();
        nodes.push(node);
    }
    nodes
}

/// Starts `nodes` and waits until every one sees all of them up.
pub async fn start_all_and_wait(nodes: &mut [NodeProc], timeout: Duration) {
    for n in nodes.iter_mut() {
        n.start();
    }
    let want = nodes.len();
    for n in nodes.iter() {
        wait_for(timeout, "the cluster to form", || async {
            let c = n.cluster().await?;
            (c.members.iter().filter(|m| m.status == "up").count() == want).then_some(())
        })
        .await;
    }
}

/// A file of mode 0600 holding 128 random bits as hex (a cookie or a
/// session secret), in the temporary directory.
pub fn secret_file() -> PathBuf {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let path = std::env::temp_dir().join(format!("drove-test-secret-{}", random_hex()));
    let mut f = match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
    {
        Ok(f) => f,
        Err(e) => panic!("making {}: {e}", path.display()),
    };
    if let Err(e) = writeln!(f, "{}", random_hex()) {
        panic!("writing {}: {e}", path.display());
    }
    path
}

/// 128 random bits as hex: a cookie strong enough for any address.
pub fn random_hex() -> String {
    format!("{:032x}", rand::random::<u128>())
}
