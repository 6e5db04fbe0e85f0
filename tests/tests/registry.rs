//! The global registry across real node processes.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use drove_tests::{register_names, registry_at, send_json, wait_for, NodeProc, TestCluster};

const LONG: Duration = Duration::from_secs(60);

fn names(prefix: &str, range: std::ops::Range<usize>) -> Vec<String> {
    range.map(|i| format!("{prefix}{i:06}")).collect()
}

/// Waits until every node's table equals the first node's, and returns it.
async fn converged(nodes: &[&NodeProc]) -> BTreeMap<String, (String, String)> {
    wait_for(LONG, "registry tables to agree", || async {
        let first = registry_at(&nodes[0].http_addr()).await?;
        for n in &nodes[1..] {
            if registry_at(&n.http_addr()).await? != first {
                return None;
            }
        }
        Some(first)
    })
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn registered_on_one_node_found_on_all() {
    let c = TestCluster::started(3).await;
    let answer = register_names(
        &c.nodes[0].http_addr(),
        &["svc.alpha".into(), "svc.beta".into()],
    )
    .await;
    assert_eq!(answer.registered.len(), 2);
    for node in &c.nodes {
        wait_for(LONG, "the names on every node", || async {
            let t = registry_at(&node.http_addr()).await?;
            (t.get("svc.alpha").map(|v| v.0.as_str()) == Some("n1") && t.contains_key("svc.beta"))
                .then_some(())
        })
        .await;
    }
    // Taken: the answer names the owner.
    let answer = register_names(&c.nodes[2].http_addr(), &["svc.alpha".into()]).await;
    assert!(answer.registered.is_empty());
    assert!(
        answer.refused[0].error.contains("n1#"),
        "{:?}",
        answer.refused
    );
    // The CLI prints the table.
    let out = std::process::Command::new(drove_tests::drove_bin())
        .args([
            "registry",
            "--http",
            &c.nodes[1].http_addr(),
            "--prefix",
            "svc.",
        ])
        .output()
        .expect("drove registry");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("svc.alpha") && text.contains("svc.beta"),
        "{text}"
    );
    // Unregister from a node that does not hold it is refused; from the
    // holder it works everywhere.
    let (_, body) = send_json(
        "DELETE",
        &c.nodes[1].http_addr(),
        "/api/registry",
        &serde_json::json!({"names": ["svc.beta"]}),
    )
    .await
    .expect("DELETE");
    assert!(body.contains("\"unregistered\":0"), "{body}");
    send_json(
        "DELETE",
        &c.nodes[0].http_addr(),
        "/api/registry",
        &serde_json::json!({"names": ["svc.beta"]}),
    )
    .await
    .expect("DELETE");
    let nodes: Vec<&NodeProc> = c.nodes.iter().collect();
    let table = converged(&nodes).await;
    assert!(table.contains_key("svc.alpha") && !table.contains_key("svc.beta"));
    // Bad input gets a clear 4xx.
    let (status, body) = send_json(
        "POST",
        &c.nodes[0].http_addr(),
        "/api/registry",
        &serde_json::json!({"nope": 1}),
    )
    .await
    .expect("POST");
    assert_eq!(status, 400, "{body}");
}

#[tokio::test(flavor = "multi_thread")]
async fn killed_node_loses_its_names_everywhere() {
    let mut c = TestCluster::started(3).await;
    register_names(&c.nodes[0].http_addr(), &names("keep.", 0..50)).await;
    register_names(&c.nodes[2].http_addr(), &names("gone.", 0..50)).await;
    let all: Vec<&NodeProc> = c.nodes.iter().collect();
    let table = converged(&all).await;
    assert_eq!(table.len(), 100);
    c.nodes[2].kill9();
    let survivors: Vec<&NodeProc> = c.nodes[..2].iter().collect();
    let table = wait_for(LONG, "n3's names to go", || async {
        let t = converged(&survivors).await;
        (t.len() == 50).then_some(t)
    })
    .await;
    assert!(table.keys().all(|k| k.starts_with("keep.")));
}

/// 10,200 registrations and 3,400 unregistrations spread over 3 nodes, at
/// the same time: every node ends with the same table, the expected one.
#[tokio::test(flavor = "multi_thread")]
async fn churn_converges_to_the_same_table() {
    let c = TestCluster::started(3).await;
    let mut tasks = Vec::new();
    for (i, node) in c.nodes.iter().enumerate() {
        let http = node.http_addr();
        let prefix = format!("churn.n{}.", i + 1);
        tasks.push(tokio::spawn(async move {
            let all = names(&prefix, 0..3400);
            for batch in all.chunks(200) {
                let answer = register_names(&http, batch).await;
                assert_eq!(answer.registered.len(), batch.len(), "{:?}", answer.refused);
            }
            let gone: Vec<String> = all.iter().step_by(3).cloned().collect();
            for batch in gone.chunks(200) {
                send_json(
                    "DELETE",
                    &http,
                    "/api/registry",
                    &serde_json::json!({ "names": batch }),
                )
                .await
                .expect("DELETE");
            }
            let gone: BTreeSet<String> = gone.into_iter().collect();
            all.into_iter()
                .filter(|n| !gone.contains(n))
                .collect::<Vec<_>>()
        }));
    }
    let mut expected = BTreeSet::new();
    for t in tasks {
        expected.extend(t.await.expect("churn task"));
    }
    let nodes: Vec<&NodeProc> = c.nodes.iter().collect();
    let table = wait_for(LONG, "the expected table", || async {
        let t = converged(&nodes).await;
        (t.keys().cloned().collect::<BTreeSet<_>>() == expected).then_some(t)
    })
    .await;
    for (name, (node, _)) in &table {
        assert!(
            name.starts_with(&format!("churn.{node}.")),
            "{name} held by {node}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn joining_node_converges_with_100k_names() {
    let mut c = TestCluster::new(3);
    c.nodes[0].start();
    c.nodes[1].start();
    c.wait_converged(LONG).await;
    for (i, node) in c.nodes[..2].iter().enumerate() {
        let all = names(&format!("big.n{}.", i + 1), 0..50_000);
        for batch in all.chunks(5000) {
            register_names(&node.http_addr(), batch).await;
        }
    }
    let first_two: Vec<&NodeProc> = c.nodes[..2].iter().collect();
    let table = converged(&first_two).await;
    assert_eq!(table.len(), 100_000);
    c.nodes[2].start();
    c.wait_converged(LONG).await;
    let all: Vec<&NodeProc> = c.nodes.iter().collect();
    let joined = converged(&all).await;
    assert_eq!(joined, table);
}

/// Nodes joining, leaving and restarting never cost a live node its names.
#[tokio::test(flavor = "multi_thread")]
async fn membership_churn_keeps_live_names() {
    let mut c = TestCluster::started(3).await;
    register_names(&c.nodes[0].http_addr(), &names("stay.n1.", 0..200)).await;
    register_names(&c.nodes[1].http_addr(), &names("stay.n2.", 0..200)).await;
    let all: Vec<&NodeProc> = c.nodes.iter().collect();
    assert_eq!(converged(&all).await.len(), 400);

    // n3 restarts as a new incarnation, then leaves; n4 joins.
    c.nodes[2].kill9();
    c.nodes[2].start();
    c.wait_converged(LONG).await;
    assert!(c.nodes[2].terminate(Duration::from_secs(10)));
    let mut n4 = NodeProc::new("n4", vec![c.nodes[0].listen.to_string()], &c.cookie);
    n4.start();
    c.nodes.push(n4);
    c.wait_converged(LONG).await;

    let live: Vec<&NodeProc> = [0, 1, 3].iter().map(|&i| &c.nodes[i]).collect();
    let table = converged(&live).await;
    assert_eq!(table.len(), 400, "names were lost to churn");
    assert!(table.keys().all(|k| k.starts_with("stay.")));
}
