//! Discovery in network namespaces: nodes with no seeds find each other by
//! libp2p mDNS on a lab bridge, and through a DNS server (dnsmasq) the test
//! runs in a namespace of its own, by A records and by SRV records. A node with another cookie is found by
//! both and joins neither (the static kind's refusal is
//! `membership::wrong_cookie_is_kept_out`). Needs root (skips with a
//! message otherwise); as root, a failed setup fails the test.
//!
//! mDNS multicasts on every interface a process sees, so these hosts have
//! no management links: their only interfaces are `lo` and the veth to the
//! bridge, and the test reads their HTTP from inside the switch namespace.

// The helpers below are test code outside `#[test]` functions, where
// clippy.toml's allowance does not reach.
#![allow(clippy::expect_used)]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use drove_tests::netns::{skip_without_root, NetNs};
use drove_tests::{cluster_at, metric, wait_for, NodeProc};

const LONG: Duration = Duration::from_secs(40);

/// name -> status as the node at `http` sees it, read from the switch.
async fn view(net: &NetNs, http: &str) -> Option<BTreeMap<String, String>> {
    let http = http.to_string();
    let answer = net.in_switch(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .ok()?;
        rt.block_on(cluster_at(&http))
    });
    let cluster = answer.ok().flatten()?;
    Some(
        cluster
            .members
            .into_iter()
            .map(|m| (m.name, m.status))
            .collect(),
    )
}

/// The gossip datagrams the node at `http` refused as unauthenticated.
async fn refused(net: &NetNs, http: &str) -> u64 {
    let http = http.to_string();
    let answer = net.in_switch(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .ok()?;
        rt.block_on(metric(&http, "drove_gossip_unauthenticated_total", &[]))
    });
    answer.ok().flatten().unwrap_or(0)
}

/// A node in host `i` that finds others with `discovery` (no seeds).
fn node_in(net: &NetNs, i: usize, name: &str, cookie: &str, discovery: &str) -> NodeProc {
    let listen: SocketAddr = format!("{}:4370", net.data_ip(i)).parse().expect("addr");
    let http: SocketAddr = format!("{}:8370", net.data_ip(i)).parse().expect("addr");
    let mut n = NodeProc::at(name, listen, http, vec![], cookie);
    n.wrapper = net.exec_prefix(i);
    n.extra = vec![
        "--discovery".into(),
        discovery.into(),
        "--discovery-ms".into(),
        "500".into(),
    ];
    n
}

/// Waits until every node in `nodes` sees exactly `names`, all up.
async fn wait_members(net: &NetNs, nodes: &[&NodeProc], names: &[&str]) {
    for n in nodes {
        let http = n.http_addr();
        wait_for(LONG, &format!("{} to see {names:?} up", n.name), || async {
            let v = view(net, &http).await?;
            let ok = v.len() == names.len()
                && names
                    .iter()
                    .all(|name| v.get(*name).is_some_and(|s| s == "up"));
            ok.then_some(())
        })
        .await;
    }
}

/// Asserts that no node in `nodes` lists `outsider`, and that the outsider
/// sees itself alone.
async fn kept_out(net: &NetNs, nodes: &[&NodeProc], outsider: &NodeProc) {
    for n in nodes {
        let v = view(net, &n.http_addr()).await.expect("member answers");
        assert!(
            !v.contains_key(&outsider.name),
            "{} lists it: {v:?}",
            n.name
        );
    }
    let own = view(net, &outsider.http_addr())
        .await
        .expect("outsider answers");
    assert_eq!(own.len(), 1, "the outsider merged: {own:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn mdns_finds_four_nodes_and_not_another_cluster() {
    if skip_without_root("mdns_finds_four_nodes_and_not_another_cluster") {
        return;
    }
    let _machine = drove_tests::shared_machine().await;
    let net = NetNs::isolated(5).unwrap_or_else(|e| panic!("namespace setup failed as root: {e}"));
    let cookie = format!("mdns-{}", drove_tests::random_hex());
    let mut nodes: Vec<NodeProc> = (0..4)
        .map(|i| node_in(&net, i, &format!("n{}", i + 1), &cookie, "mdns"))
        .collect();
    let mut outsider = node_in(&net, 4, "outsider", "another-cluster-cookie", "mdns");
    for n in &mut nodes {
        n.start();
    }
    outsider.start();
    let refs: Vec<&NodeProc> = nodes.iter().collect();
    wait_members(&net, &refs, &["n1", "n2", "n3", "n4"]).await;

    // The outsider found them too (their sockets refused its sealed
    // gossip), and never joined.
    for n in &nodes {
        let http = n.http_addr();
        wait_for(
            LONG,
            "the outsider's gossip to reach and be refused",
            || async { (refused(&net, &http).await > 0).then_some(()) },
        )
        .await;
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    kept_out(&net, &refs, &outsider).await;
    wait_members(&net, &refs, &["n1", "n2", "n3", "n4"]).await;
}

/// `hosts` namespaces whose last host serves DNS to all the others.
fn dns_lab(hosts: usize) -> NetNs {
    let net =
        NetNs::isolated(hosts).unwrap_or_else(|e| panic!("namespace setup failed as root: {e}"));
    let server = net.data_ip(hosts - 1);
    for i in 0..hosts - 1 {
        net.set_nameserver(i, &server)
            .unwrap_or_else(|e| panic!("resolver setup failed as root: {e}"));
    }
    net
}

fn hosts_text(name: &str, ips: &[String]) -> String {
    ips.iter().map(|ip| format!("{ip} {name}\n")).collect()
}

/// dnsmasq serving the A records in a hosts file, re-read on SIGHUP.
struct Dnsmasq {
    child: Child,
    hosts: PathBuf,
}

impl Dnsmasq {
    /// Starts serving `records` of `name` from host `i`. The records are
    /// written before the server starts: a SIGHUP before it has set its
    /// handler would end it.
    fn start(net: &NetNs, i: usize, name: &str, records: &[String]) -> Dnsmasq {
        Self::start_with(net, i, name, records, &[])
    }

    /// As [`Dnsmasq::start`], with more dnsmasq options (SRV records).
    fn start_with(
        net: &NetNs,
        i: usize,
        name: &str,
        records: &[String],
        options: &[String],
    ) -> Dnsmasq {
        // One file per server: the tests of this binary run side by side.
        let hosts = std::env::temp_dir().join(format!("drove-dns-{}.hosts", net.host(i)));
        std::fs::write(&hosts, hosts_text(name, records)).expect("hosts file");
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &net.host(i), "dnsmasq"])
            .arg("--keep-in-foreground")
            .args(["--no-resolv", "--no-hosts", "--bind-interfaces"])
            .arg(format!("--listen-address={}", net.data_ip(i)))
            .args(["--port=53", "--local-ttl=0", "--pid-file", "--user=root"])
            .arg(format!("--addn-hosts={}", hosts.display()))
            .args(options)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("starting dnsmasq (apt-get install dnsmasq-base): {e}"));
        Dnsmasq { child, hosts }
    }

    /// Serves exactly these records of `name`.
    fn serve(&self, name: &str, ips: &[String]) {
        std::fs::write(&self.hosts, hosts_text(name, ips)).expect("hosts file");
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGHUP).expect("SIGHUP dnsmasq");
    }
}

impl Drop for Dnsmasq {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.hosts);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn dns_records_bring_nodes_in_and_removing_one_stops_no_node() {
    if skip_without_root("dns_records_bring_nodes_in_and_removing_one_stops_no_node") {
        return;
    }
    let _machine = drove_tests::shared_machine().await;
    // Hosts 0-3: the first four nodes; 4: a late node; 5: an outsider;
    // 6: the DNS server.
    let net = dns_lab(7);
    const NAME: &str = "nodes.drove.test";
    let discovery = format!("dns:{NAME}");
    let ips = |hosts: &[usize]| -> Vec<String> { hosts.iter().map(|&i| net.data_ip(i)).collect() };
    let dns = Dnsmasq::start(&net, 6, NAME, &ips(&[0, 1, 2, 3]));
    let cookie = format!("dns-{}", drove_tests::random_hex());
    let mut nodes: Vec<NodeProc> = (0..4)
        .map(|i| node_in(&net, i, &format!("n{}", i + 1), &cookie, &discovery))
        .collect();
    for n in &mut nodes {
        n.start();
    }
    let four = ["n1", "n2", "n3", "n4"];
    wait_members(&net, &nodes.iter().collect::<Vec<_>>(), &four).await;

    // n4's record goes: n4 runs on and stays a member.
    dns.serve(NAME, &ips(&[0, 1, 2]));
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(nodes[3].is_running(), "n4 stopped when its record went");
    wait_members(&net, &nodes.iter().collect::<Vec<_>>(), &four).await;

    // A node that looks for no one (static, no seeds) joins once its
    // record appears: the others find it.
    let mut late = node_in(&net, 4, "n5", &cookie, "static");
    late.start();
    let late_http = late.http_addr();
    wait_for(LONG, "n5 to serve alone", || async {
        view(&net, &late_http).await.filter(|v| v.len() == 1)
    })
    .await;
    dns.serve(NAME, &ips(&[0, 1, 2, 4]));
    nodes.push(late);
    let five = ["n1", "n2", "n3", "n4", "n5"];
    wait_members(&net, &nodes.iter().collect::<Vec<_>>(), &five).await;

    // A node with another cookie, listed under the same name and polling
    // it, finds them all and joins no one.
    let mut outsider = node_in(&net, 5, "outsider", "another-cluster-cookie", &discovery);
    outsider.start();
    dns.serve(NAME, &ips(&[0, 1, 2, 4, 5]));
    let n1 = nodes[0].http_addr();
    wait_for(
        LONG,
        "the outsider's gossip to reach n1 and be refused",
        || async { (refused(&net, &n1).await > 0).then_some(()) },
    )
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let refs: Vec<&NodeProc> = nodes.iter().collect();
    kept_out(&net, &refs, &outsider).await;
    wait_members(&net, &refs, &five).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn srv_records_name_targets_and_ports() {
    if skip_without_root("srv_records_name_targets_and_ports") {
        return;
    }
    let _machine = drove_tests::shared_machine().await;
    // Host 0: a node on a port of its own, found only through SRV; host 1:
    // the node that polls; host 2: the DNS server.
    let net = dns_lab(3);
    let srv = "--srv-host=_drove._udp.drove.test,first.drove.test,4399".to_string();
    let _dns = Dnsmasq::start_with(&net, 2, "first.drove.test", &[net.data_ip(0)], &[srv]);
    let cookie = format!("srv-{}", drove_tests::random_hex());
    let mut first = node_in(&net, 0, "first", &cookie, "static");
    first.listen = format!("{}:4399", net.data_ip(0)).parse().expect("addr");
    let mut second = node_in(&net, 1, "second", &cookie, "dns:_drove._udp.drove.test");
    first.start();
    second.start();
    wait_members(&net, &[&first, &second], &["first", "second"]).await;
}
