//! The supervisor never silently loses a child, on the three paths where
//! it once could: a quorum lost during the fencing wait, a handoff the
//! target refuses, and a failover start that fails.

use std::collections::BTreeSet;
use std::time::Duration;

use drove_supervisor::{ChildInfo, ChildStatus};
use drove_tests::forge::now_ms;
use drove_tests::{children_at, spawn_child, wait_for, NodeProc, TestCluster};
use nix::sys::signal::Signal;
use serde_json::json;

const LONG: Duration = Duration::from_secs(90);

/// Child `id` as the node at `http` sees it cluster-wide.
async fn child(http: &str, id: &str) -> Option<ChildInfo> {
    children_at(http, false)
        .await?
        .into_iter()
        .find(|c| c.id == id)
}

fn checkpoint(c: &ChildInfo) -> u64 {
    c.checkpoint.as_ref().and_then(|v| v.as_u64()).unwrap_or(0)
}

/// A ticker that refuses to resume from its checkpoint until `until_ms`.
async fn spawn_resumer(http: &str, id: &str, until_ms: u64) {
    spawn_child(
        http,
        json!({"type": "ticker", "id": id, "restart": "permanent",
               "args": {"interval_ms": 100, "refuse_resume_until_ms": until_ms}}),
    )
    .await;
}

/// Waits until child `id` has checkpointed; returns it.
async fn ticking(http: &str, id: &str) -> ChildInfo {
    wait_for(LONG, &format!("{id} to tick"), || async {
        let c = child(http, id).await?;
        (c.status == ChildStatus::Running && checkpoint(&c) > 0).then_some(c)
    })
    .await
}

/// Waits until child `id` runs, exactly once, on one of `nodes`.
async fn runs_once(nodes: &[&NodeProc], id: &str) -> ChildInfo {
    wait_for(LONG, &format!("{id} to run exactly once"), || async {
        let mut copies = Vec::new();
        for n in nodes {
            for c in children_at(&n.http_addr(), true).await? {
                if c.id == id && c.status == ChildStatus::Running {
                    copies.push(c);
                }
            }
        }
        (copies.len() == 1).then(|| copies.remove(0))
    })
    .await
}

fn index_of(c: &TestCluster, name: &str) -> usize {
    c.nodes
        .iter()
        .position(|n| n.name == name)
        .unwrap_or_else(|| panic!("no node {name}"))
}

/// The node running a dead node's children fails to start them: it shows
/// them `restarting` and tries again with backoff. The one that can resume
/// after a while runs again; the one that never can is `given_up`.
#[tokio::test(flavor = "multi_thread")]
async fn a_failed_failover_start_is_retried_then_given_up() {
    let _machine = drove_tests::shared_machine().await;
    let mut c = TestCluster::started(3).await;
    let http = c.nodes[0].http_addr();
    let resume_at = now_ms() + 10_000;
    spawn_resumer(&http, "resumer", resume_at).await;
    let victim = ticking(&http, "resumer").await.node;
    // One that never resumes, on the same node.
    let mut stubborn = None;
    for i in 0..40 {
        let id = format!("stubborn{i}");
        spawn_resumer(&http, &id, u64::MAX).await;
        if ticking(&http, &id).await.node == victim {
            stubborn = Some(id);
            break;
        }
    }
    let stubborn = stubborn.expect("no stubborn child landed on the victim");
    let v = index_of(&c, &victim);
    c.nodes[v].kill9();
    let survivor = c.nodes[(v + 1) % 3].http_addr();
    wait_for(LONG, "the resumer shown as restarting", || async {
        let r = child(&survivor, "resumer").await?;
        (r.status == ChildStatus::Restarting && r.node != victim).then_some(())
    })
    .await;
    let survivors: Vec<&NodeProc> = c.nodes.iter().filter(|n| n.name != victim).collect();
    let resumed = runs_once(&survivors, "resumer").await;
    assert!(now_ms() >= resume_at, "it resumed before it could");
    assert!(resumed.restarts >= 1);
    wait_for(LONG, "the stubborn child given up", || async {
        let s = child(&survivor, &stubborn).await?;
        (s.status == ChildStatus::GivenUp).then_some(())
    })
    .await;
}

/// The target of a SIGTERM handoff refuses the child. The leaver kept its
/// record, so the child fails over from it once the leaver is gone, with
/// its checkpoint.
#[tokio::test(flavor = "multi_thread")]
async fn a_refused_handoff_fails_over_from_the_kept_record() {
    let _machine = drove_tests::shared_machine().await;
    let mut c = TestCluster::started(3).await;
    let http = c.nodes[0].http_addr();
    let resume_at = now_ms() + 8_000;
    spawn_resumer(&http, "handed", resume_at).await;
    let before = ticking(&http, "handed").await;
    let v = index_of(&c, &before.node);
    assert!(
        c.nodes[v].terminate(Duration::from_secs(30)),
        "the node did not exit on SIGTERM"
    );
    let survivors: Vec<&NodeProc> = c.nodes.iter().filter(|n| n.name != before.node).collect();
    let after = runs_once(&survivors, "handed").await;
    assert!(now_ms() >= resume_at);
    assert!(
        checkpoint(&after) >= checkpoint(&before),
        "{} went back",
        after.id
    );
}

/// With a quorum of 3: a node dies, and during the survivors' fencing wait
/// one of them freezes, so the other loses its quorum. The dead node's
/// children (and the lone node's own, which it stopped) run again, each
/// once, when the frozen node wakes and the quorum is back.
#[tokio::test(flavor = "multi_thread")]
async fn children_fail_over_once_a_lost_quorum_returns() {
    let _machine = drove_tests::timing_sensitive().await;
    let mut c = TestCluster::new(3);
    for n in &mut c.nodes {
        n.extra = vec![
            "--quorum".into(),
            "3".into(),
            "--fencing-ms".into(),
            "8000".into(),
        ];
    }
    c.start_all();
    c.wait_converged(LONG).await;
    let http = c.nodes[0].http_addr();
    for i in 0..9 {
        spawn_child(&http, json!({"type": "ticker", "id": format!("q{i}"), "restart": "permanent", "args": {"interval_ms": 100}})).await;
    }
    let ids: BTreeSet<String> = (0..9).map(|i| format!("q{i}")).collect();
    let mut victim = None;
    for id in &ids {
        victim = Some(ticking(&http, id).await.node);
    }
    let victim = victim.expect("a child");
    let v = index_of(&c, &victim);
    let (a, b) = ((v + 1) % 3, (v + 2) % 3);
    c.nodes[v].kill9();
    c.nodes[b].freeze().await;
    let lone = c.nodes[a].http_addr();
    wait_for(LONG, "the lone node to see the frozen one down", || async {
        let view = drove_tests::cluster_at(&lone).await?;
        let up = view.members.iter().filter(|m| m.status == "up").count();
        (up == 1).then_some(())
    })
    .await;
    c.nodes[b].signal(Signal::SIGCONT);
    c.nodes.remove(v);
    c.wait_converged(LONG).await;
    let live: Vec<&NodeProc> = c.nodes.iter().collect();
    for id in &ids {
        runs_once(&live, id).await;
    }
}
