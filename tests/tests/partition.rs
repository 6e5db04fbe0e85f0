//! A real network partition between node processes in network namespaces.
//! Needs root (skips with a message otherwise); as root, a failure to set
//! up the namespaces fails the test.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use drove_tests::netns::{is_root, NetNs};
use drove_tests::{cluster_at, register_names, registry_at, wait_for, NodeProc};

const LONG: Duration = Duration::from_secs(40);

/// name -> (incarnation, status) as one node sees it.
async fn view(http: &str) -> Option<BTreeMap<String, (String, String)>> {
    let c = cluster_at(http).await?;
    Some(
        c.members
            .into_iter()
            .map(|m| (m.name, (m.incarnation, m.status)))
            .collect(),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn partition_then_heal() {
    if !is_root() {
        eprintln!("SKIPPED partition_then_heal: needs root for network namespaces");
        return;
    }
    let net = NetNs::create(3).unwrap_or_else(|e| panic!("namespace setup failed as root: {e}"));
    let cookie = "partition-test";
    let seed = format!("{}:4370", net.data_ip(0));
    let mut nodes: Vec<NodeProc> = (0..3)
        .map(|i| {
            let listen: SocketAddr = format!("{}:4370", net.data_ip(i)).parse().expect("addr");
            let http: SocketAddr = format!("{}:8370", net.mgmt_ip(i)).parse().expect("addr");
            let seeds = if i == 0 { vec![] } else { vec![seed.clone()] };
            let mut n = NodeProc::at(&format!("n{}", i + 1), listen, http, seeds, cookie);
            n.wrapper = net.exec_prefix(i);
            n
        })
        .collect();
    for n in &mut nodes {
        n.start();
    }
    let https: Vec<String> = nodes.iter().map(|n| n.http_addr()).collect();
    let all_up =
        |v: &BTreeMap<String, (String, String)>| v.len() == 3 && v.values().all(|(_, s)| s == "up");
    for http in &https {
        wait_for(LONG, "the cluster to form across namespaces", || async {
            view(http).await.filter(|v| all_up(v)).map(|_| ())
        })
        .await;
    }
    let before = view(&https[0]).await.expect("n1 answers");

    // Cut n3 off: each side declares the other down.
    net.set_connected(2, false).expect("cut n3");
    for (http, other) in [
        (&https[0], "n3"),
        (&https[1], "n3"),
        (&https[2], "n1"),
        (&https[2], "n2"),
    ] {
        wait_for(LONG, &format!("{other} down as seen at {http}"), || async {
            let v = view(http).await?;
            (v.get(other)?.1 == "down").then_some(())
        })
        .await;
    }

    // The same name taken on both sides, and one only on the minority.
    let majority = register_names(&https[0], &["contested".to_string()]).await;
    assert_eq!(majority.registered, vec!["contested".to_string()]);
    let minority = register_names(
        &https[2],
        &["contested".to_string(), "minority.only".to_string()],
    )
    .await;
    assert_eq!(minority.registered.len(), 2, "{minority:?}");

    // Heal: one cluster again. The minority rejoined as a new incarnation;
    // the majority kept theirs.
    net.set_connected(2, true).expect("heal");
    let mut healed = Vec::new();
    for http in &https {
        let v = wait_for(LONG, "one cluster after healing", || async {
            let v = view(http).await?;
            (all_up(&v) && v["n3"].0 != before["n3"].0).then_some(v)
        })
        .await;
        healed.push(v);
    }
    for v in &healed {
        assert_eq!(v, &healed[0], "views disagree after healing");
    }
    assert_eq!(healed[0]["n1"].0, before["n1"].0);
    assert_eq!(healed[0]["n2"].0, before["n2"].0);

    // One owner of the contested name everywhere: the majority's, since the
    // minority rejoined as a new incarnation and dropped what it held.
    for http in &https {
        wait_for(LONG, "the registry to agree after healing", || async {
            let t = registry_at(http).await?;
            let holder = t.get("contested")?;
            (holder.0 == "n1" && holder.1 == before["n1"].0 && !t.contains_key("minority.only"))
                .then_some(())
        })
        .await;
    }
    // And the losing actor on n3 was told.
    let (_, metrics) = drove_admin::client::get(&https[2], "/metrics", Duration::from_secs(5))
        .await
        .expect("metrics");
    let lost: u64 = metrics
        .lines()
        .filter(|l| l.starts_with("drove_registry_names_lost_total"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum();
    assert!(lost >= 2, "n3 lost {lost} names:\n{metrics}");
    drop(nodes);
    drop(net);
}
