//! Network namespaces for partition tests: a switch namespace with a bridge,
//! one namespace per host joined to it by a veth pair (data plane,
//! 198.18.1.0/24), and a management veth pair from the test's own namespace
//! to each host (198.18.(2+k).0/24 for the k-th network of a process, /30
//! per host) so the test can reach every
//! node's HTTP even while the data plane is cut. Everything is removed on
//! drop. Addresses stay in 198.18.0.0/15, the benchmarking range.
//!
//! [`NetNs::isolated`] leaves the management links out, for multicast
//! (mDNS): a host's only interfaces are then `lo` and its veth to the
//! bridge, and the test reaches the hosts from inside the switch namespace
//! (the bridge has 198.18.1.254) with [`NetNs::in_switch`].

use std::process::Command;

/// Whether this process runs as root (partition tests need it).
pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// Whether the namespace test `test` must be skipped: true, with a line
/// saying so, when this process is not root. As root it runs, and a setup
/// that fails then fails the test.
pub fn skip_without_root(test: &str) -> bool {
    if is_root() {
        return false;
    }
    eprintln!("SKIPPED {test}: needs root for network namespaces");
    true
}

fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("running ip {}: {e}", args.join(" ")))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ip {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// The pid of the test process that made a `drv<pid>x<n>...` name.
fn creator_pid(name: &str) -> Option<u32> {
    let (pid, _) = name.strip_prefix("drv")?.split_once('x')?;
    pid.parse().ok()
}

fn output_of(args: &[&str]) -> String {
    Command::new("ip")
        .args(args)
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default()
}

/// Removes the namespaces and management links of test processes that
/// died before their drop ran (killed by a timeout, say): their addresses
/// would clash with a new network's.
fn remove_orphans() {
    let orphan = |name: &str| {
        creator_pid(name).is_some_and(|pid| !std::path::Path::new(&format!("/proc/{pid}")).exists())
    };
    for line in output_of(&["netns", "list"]).lines() {
        if let Some(name) = line.split_whitespace().next().filter(|n| orphan(n)) {
            let _ = ip(&["netns", "del", name]);
        }
    }
    if let Ok(dirs) = std::fs::read_dir(ETC_NETNS) {
        for dir in dirs.flatten() {
            if orphan(&dir.file_name().to_string_lossy()) {
                let _ = std::fs::remove_dir_all(dir.path());
            }
        }
    }
    // `ip -o link` lines read "<index>: <name>@<peer>: ...".
    for line in output_of(&["-o", "link", "show"]).lines() {
        let name = line
            .split(':')
            .nth(1)
            .map(|n| n.trim().split('@').next().unwrap_or_default())
            .unwrap_or_default();
        if orphan(name) {
            let _ = ip(&["link", "del", name]);
        }
    }
}

/// Where `ip netns exec` finds files to mount over `/etc` in a namespace
/// (a host's `resolv.conf`).
const ETC_NETNS: &str = "/etc/netns";

/// A small network of namespaces.
#[derive(Debug)]
pub struct NetNs {
    prefix: String,
    hosts: usize,
    management: bool,
}

impl NetNs {
    /// Creates `hosts` namespaces behind one bridge. Host `i` (0-based) has
    /// data address 198.18.1.(i+1) and a management address (`mgmt_ip`),
    /// reachable from here through its own /30.
    pub fn create(hosts: usize) -> Result<NetNs, String> {
        Self::build(hosts, true)
    }

    /// Creates `hosts` namespaces behind one bridge, without management
    /// links: reach them with [`NetNs::in_switch`].
    pub fn isolated(hosts: usize) -> Result<NetNs, String> {
        Self::build(hosts, false)
    }

    fn build(hosts: usize, management: bool) -> Result<NetNs, String> {
        assert!(hosts <= 60, "at most 60 hosts");
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % 10;
        remove_orphans();
        // Interface names derived from it stay within 15 bytes.
        let prefix = format!("drv{}x{n}", std::process::id());
        let net = NetNs {
            prefix,
            hosts,
            management,
        };
        net.setup()?;
        Ok(net)
    }

    fn sw(&self) -> String {
        format!("{}sw", self.prefix)
    }

    /// The namespace of host `i`.
    pub fn host(&self, i: usize) -> String {
        format!("{}h{i}", self.prefix)
    }

    /// Host `i`'s data-plane address.
    pub fn data_ip(&self, i: usize) -> String {
        format!("198.18.1.{}", i + 1)
    }

    /// Host `i`'s management address (reachable from the test).
    pub fn mgmt_ip(&self, i: usize) -> String {
        format!("198.18.{}.{}", 2 + self.slot(), 4 * i + 2)
    }

    /// Which of the concurrent networks this is (0-9): each has its own
    /// management subnet, since those addresses live in the test's own
    /// namespace.
    fn slot(&self) -> u8 {
        self.prefix
            .bytes()
            .last()
            .map(|b| b.saturating_sub(b'0'))
            .unwrap_or(0)
    }

    fn remove(&self) {
        for i in 0..self.hosts {
            let _ = ip(&["link", "del", &format!("{}m{i}", self.prefix)]);
            let _ = ip(&["netns", "del", &self.host(i)]);
            let _ = std::fs::remove_dir_all(format!("{ETC_NETNS}/{}", self.host(i)));
        }
        let _ = ip(&["netns", "del", &self.sw()]);
    }

    fn setup(&self) -> Result<(), String> {
        // Leftovers of a run that was killed before its drop ran.
        self.remove();
        let sw = self.sw();
        ip(&["netns", "add", &sw])?;
        ip(&["-n", &sw, "link", "add", "br0", "type", "bridge"])?;
        ip(&["-n", &sw, "link", "set", "br0", "up"])?;
        if !self.management {
            ip(&["-n", &sw, "addr", "add", "198.18.1.254/24", "dev", "br0"])?;
        }
        for i in 0..self.hosts {
            let h = self.host(i);
            ip(&["netns", "add", &h])?;
            ip(&["-n", &h, "link", "set", "lo", "up"])?;
            // Data plane: host eth0 <-> switch port p<i>.
            let port = format!("p{i}");
            ip(&[
                "-n", &h, "link", "add", "eth0", "type", "veth", "peer", "name", &port, "netns",
                &sw,
            ])?;
            ip(&["-n", &sw, "link", "set", &port, "master", "br0"])?;
            ip(&["-n", &sw, "link", "set", &port, "up"])?;
            ip(&[
                "-n",
                &h,
                "addr",
                "add",
                &format!("{}/24", self.data_ip(i)),
                "dev",
                "eth0",
            ])?;
            ip(&["-n", &h, "link", "set", "eth0", "up"])?;
            if !self.management {
                continue;
            }
            // Management: host mgmt0 <-> our m<prefix><i>.
            let ours = format!("{}m{i}", self.prefix);
            ip(&[
                "-n", &h, "link", "add", "mgmt0", "type", "veth", "peer", "name", &ours, "netns",
                "1",
            ])?;
            ip(&[
                "addr",
                "add",
                &format!("198.18.{}.{}/30", 2 + self.slot(), 4 * i + 1),
                "dev",
                &ours,
            ])?;
            ip(&["link", "set", &ours, "up"])?;
            ip(&[
                "-n",
                &h,
                "addr",
                "add",
                &format!("{}/30", self.mgmt_ip(i)),
                "dev",
                "mgmt0",
            ])?;
            ip(&["-n", &h, "link", "set", "mgmt0", "up"])?;
        }
        Ok(())
    }

    /// Cuts (or restores) host `i`'s data-plane link at the switch.
    pub fn set_connected(&self, i: usize, connected: bool) -> Result<(), String> {
        let state = if connected { "up" } else { "down" };
        ip(&["-n", &self.sw(), "link", "set", &format!("p{i}"), state])
    }

    /// Makes `nameserver` host `i`'s DNS server (its `/etc/resolv.conf`
    /// under `ip netns exec`).
    pub fn set_nameserver(&self, i: usize, nameserver: &str) -> Result<(), String> {
        let dir = format!("{ETC_NETNS}/{}", self.host(i));
        std::fs::create_dir_all(&dir).map_err(|e| format!("creating {dir}: {e}"))?;
        std::fs::write(
            format!("{dir}/resolv.conf"),
            format!("nameserver {nameserver}\noptions timeout:1 attempts:2\n"),
        )
        .map_err(|e| format!("writing {dir}/resolv.conf: {e}"))
    }

    /// Runs `f` on a thread of its own inside the switch namespace (whose
    /// bridge reaches every host's data address) and returns its result.
    pub fn in_switch<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, String> {
        let path = format!("/run/netns/{}", self.sw());
        std::thread::spawn(move || {
            let ns = std::fs::File::open(&path).map_err(|e| format!("opening {path}: {e}"))?;
            nix::sched::setns(ns, nix::sched::CloneFlags::CLONE_NEWNET)
                .map_err(|e| format!("entering {path}: {e}"))?;
            Ok(f())
        })
        .join()
        .map_err(|_| "the switch-namespace thread panicked".to_string())?
    }

    /// `ip netns exec <host i>`, to prefix a command with.
    pub fn exec_prefix(&self, i: usize) -> Vec<String> {
        vec!["ip".into(), "netns".into(), "exec".into(), self.host(i)]
    }
}

impl Drop for NetNs {
    fn drop(&mut self) {
        self.remove();
    }
}
