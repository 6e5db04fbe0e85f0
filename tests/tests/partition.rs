//! A real network partition between node processes in network namespaces.
//! Needs root (skips with a message otherwise); as root, a failure to set
//! up the namespaces fails the test.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use drove_tests::netns::{skip_without_root, NetNs};
use drove_tests::{
    children_at, cluster_at, register_names, registry_at, spawn_child, wait_for, NodeProc,
};

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
    if skip_without_root("partition_then_heal") {
        return;
    }
    let net = NetNs::create(3).unwrap_or_else(|e| panic!("namespace setup failed as root: {e}"));
    let cookie = &format!("partition-{}", drove_tests::random_hex());
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

/// With the quorum strategy, the minority side of a partition stops its
/// children, the majority starts them after the fencing margin, and the
/// singleton is never seen running on both sides.
#[tokio::test(flavor = "multi_thread")]
async fn quorum_singleton_never_runs_on_both_sides() {
    if skip_without_root("quorum_singleton_never_runs_on_both_sides") {
        return;
    }
    let net = NetNs::create(3).unwrap_or_else(|e| panic!("namespace setup failed as root: {e}"));
    // Off loopback a node refuses a short or well-known cookie.
    let cookie = drove_tests::random_hex();
    let mut nodes: Vec<NodeProc> = (0..3)
        .map(|i| {
            let listen: SocketAddr = format!("{}:4370", net.data_ip(i)).parse().expect("addr");
            let http: SocketAddr = format!("{}:8370", net.mgmt_ip(i)).parse().expect("addr");
            // Every node seeds the others, so whichever side is cut off
            // finds its way back.
            let seeds = (0..3)
                .filter(|&j| j != i)
                .map(|j| format!("{}:4370", net.data_ip(j)))
                .collect();
            let mut n = NodeProc::at(&format!("n{}", i + 1), listen, http, seeds, &cookie);
            n.wrapper = net.exec_prefix(i);
            n.extra = vec![
                "--quorum".into(),
                "3".into(),
                "--fencing-ms".into(),
                "2000".into(),
            ];
            n
        })
        .collect();
    for n in &mut nodes {
        n.start();
    }
    let https: Vec<String> = nodes.iter().map(|n| n.http_addr()).collect();
    for http in &https {
        wait_for(LONG, "the cluster to form", || async {
            let v = view(http).await?;
            (v.len() == 3 && v.values().all(|(_, s)| s == "up")).then_some(())
        })
        .await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    spawn_child(&https[0], serde_json::json!({"type": "ticker", "name": "fenced", "restart": "permanent", "args": {"interval_ms": 100}})).await;
    for i in 0..6 {
        spawn_child(&https[0], serde_json::json!({"type": "ticker", "id": format!("w{i}"), "restart": "transient", "args": {"interval_ms": 100}})).await;
    }
    let single = "singleton:fenced";
    let holder = wait_for(LONG, "the singleton to run", || async {
        for (i, http) in https.iter().enumerate() {
            if children_at(http, true)
                .await?
                .iter()
                .any(|c| c.id == single)
            {
                return Some(i);
            }
        }
        None
    })
    .await;

    // Sample every ledger until told to stop; count samples where the
    // singleton runs on two nodes at once.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sampler = {
        let https = https.clone();
        let stop = stop.clone();
        tokio::spawn(async move {
            let mut overlaps = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let mut running = Vec::new();
                for (i, http) in https.iter().enumerate() {
                    if let Some(local) = children_at(http, true).await {
                        if local.iter().any(|c| c.id == single) {
                            running.push(i);
                        }
                    }
                }
                if running.len() > 1 {
                    eprintln!("overlap: the singleton runs on nodes {running:?}");
                    overlaps += 1;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            overlaps
        })
    };

    // Cut the singleton's node off: it is the minority.
    net.set_connected(holder, false).expect("cut");
    wait_for(LONG, "the minority to stop its children", || async {
        children_at(&https[holder], true)
            .await
            .filter(|l| l.is_empty())
            .map(|_| ())
    })
    .await;
    let majority: Vec<usize> = (0..3).filter(|&i| i != holder).collect();
    wait_for(LONG, "the majority to run the singleton", || async {
        for &i in &majority {
            if children_at(&https[i], true)
                .await?
                .iter()
                .any(|c| c.id == single)
            {
                return Some(());
            }
        }
        None
    })
    .await;
    // The minority refuses new children.
    let (status, _) = drove_tests::send_json(
        "POST",
        &https[holder],
        "/api/children",
        &serde_json::json!({"type": "ticker", "restart": "transient"}),
    )
    .await
    .expect("POST");
    assert_eq!(status, 503);

    net.set_connected(holder, true).expect("heal");
    for http in &https {
        wait_for(LONG, "one cluster after healing", || async {
            let v = view(http).await?;
            (v.len() == 3 && v.values().all(|(_, s)| s == "up")).then_some(())
        })
        .await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let overlaps = sampler.await.expect("sampler");
    assert_eq!(
        overlaps, 0,
        "the singleton ran on two nodes at once in {overlaps} samples"
    );
    let mut total = 0;
    for http in &https {
        total += children_at(http, true)
            .await
            .expect("ledger")
            .iter()
            .filter(|c| c.id == single)
            .count();
    }
    assert_eq!(total, 1);
    drop(nodes);
    drop(net);
}
