//! Membership with real node processes: formation, seeds, crashes, silence,
//! restarts, cookies and graceful leave.

use std::time::Duration;

use drove_tests::{cluster_at, drove_bin, wait_for, NodeProc, TestCluster};
use nix::sys::signal::Signal;

const LONG: Duration = Duration::from_secs(30);

async fn incarnation_of(node: &NodeProc, name: &str) -> Option<String> {
    let c = node.cluster().await?;
    c.members
        .into_iter()
        .find(|m| m.name == name)
        .map(|m| m.incarnation)
}

async fn wait_status(node: &NodeProc, name: &str, status: &str) {
    wait_for(
        LONG,
        &format!("{} to see {name} {status}", node.name),
        || async { (node.status_of(name).await.as_deref() == Some(status)).then_some(()) },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn five_nodes_form_from_one_seed() {
    let c = TestCluster::started(5).await;
    let out = std::process::Command::new(drove_bin())
        .args(["status", "--http", &c.nodes[2].http_addr()])
        .output()
        .expect("running drove status");
    assert!(out.status.success());
    let table = String::from_utf8_lossy(&out.stdout);
    for i in 1..=5 {
        assert!(
            table.contains(&format!("n{i}")),
            "status table lacks n{i}:\n{table}"
        );
    }
    assert_eq!(
        table.lines().filter(|l| l.contains(" up ")).count(),
        5,
        "{table}"
    );
    let (status, metrics) =
        drove_admin::client::get(&c.nodes[0].http_addr(), "/metrics", Duration::from_secs(5))
            .await
            .expect("GET /metrics");
    assert_eq!(status, 200);
    assert!(
        metrics.contains("drove_members{node=\"n1\",status=\"up\"} 5"),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn seed_down_at_start_then_merges() {
    let mut c = TestCluster::new(3);
    c.nodes[1].start();
    c.nodes[2].start();
    // Alone meanwhile: each serves and lists only itself.
    for i in 1..3 {
        let node = &c.nodes[i];
        let view = wait_for(LONG, "a lone node to serve HTTP", || node.cluster()).await;
        assert_eq!(view.members.len(), 1, "{view:?}");
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    c.nodes[0].start();
    c.wait_converged(LONG).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn kill9_is_noticed_by_everyone() {
    let mut c = TestCluster::started(3).await;
    c.nodes[2].kill9();
    wait_status(&c.nodes[0], "n3", "down").await;
    wait_status(&c.nodes[1], "n3", "down").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn silent_node_is_declared_down_and_comes_back_as_new_incarnation() {
    let c = TestCluster::started(3).await;
    let old = incarnation_of(&c.nodes[0], "n3").await.expect("n3 listed");
    c.nodes[2].signal(Signal::SIGSTOP);
    wait_status(&c.nodes[0], "n3", "down").await;
    wait_status(&c.nodes[1], "n3", "down").await;
    // Stay frozen past the concurrent-declaration window.
    tokio::time::sleep(Duration::from_secs(3)).await;
    c.nodes[2].signal(Signal::SIGCONT);
    for i in 0..3 {
        let node = &c.nodes[i];
        let new = wait_for(LONG, "n3 to come back as a new incarnation", || async {
            let view = node.cluster().await?;
            let n3 = view.members.iter().find(|m| m.name == "n3")?;
            let all_up = view.members.iter().all(|m| m.status == "up");
            (n3.incarnation != old && all_up && view.members.len() == 3)
                .then(|| n3.incarnation.clone())
        })
        .await;
        assert_ne!(new, old);
    }
    // The survivors kept their incarnations: only the frozen node rejoined.
    let view = c.nodes[2].cluster().await.expect("n3 answers");
    assert_ne!(view.incarnation, old);
}

#[tokio::test(flavor = "multi_thread")]
async fn restart_is_a_new_incarnation() {
    let mut c = TestCluster::started(3).await;
    let old = incarnation_of(&c.nodes[0], "n2").await.expect("n2 listed");
    c.nodes[1].kill9();
    wait_status(&c.nodes[0], "n2", "down").await;
    c.nodes[1].start();
    c.wait_converged(LONG).await;
    let new = incarnation_of(&c.nodes[0], "n2").await.expect("n2 listed");
    assert_ne!(old, new);
    assert_eq!(incarnation_of(&c.nodes[2], "n2").await, Some(new));
}

#[tokio::test(flavor = "multi_thread")]
async fn wrong_cookie_is_kept_out() {
    let c = TestCluster::started(2).await;
    let mut intruder = NodeProc::new("n9", vec![c.nodes[0].listen.to_string()], "not-the-cookie");
    intruder.start();
    let view = wait_for(LONG, "the intruder to serve", || intruder.cluster()).await;
    assert_eq!(view.members.len(), 1);
    // Give gossip many rounds to (wrongly) merge.
    tokio::time::sleep(Duration::from_secs(3)).await;
    for node in &c.nodes {
        let view = node.cluster().await.expect("member answers");
        assert!(view.members.iter().all(|m| m.name != "n9"), "{view:?}");
    }
    let view = cluster_at(&intruder.http_addr())
        .await
        .expect("intruder answers");
    assert_eq!(view.members.len(), 1, "{view:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_is_seen_as_left_at_once() {
    let mut c = TestCluster::started(3).await;
    assert!(
        c.nodes[2].terminate(Duration::from_secs(10)),
        "n3 did not exit on SIGTERM"
    );
    // Left, not down: the leave was announced, not inferred from silence.
    for i in 0..2 {
        wait_status(&c.nodes[i], "n3", "left").await;
    }
}
