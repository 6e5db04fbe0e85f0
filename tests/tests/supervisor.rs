//! The distributed supervisor across real node processes.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use drove_supervisor::{ChildInfo, ChildStatus};
use drove_tests::{children_at, send_json, spawn_child, wait_for, NodeProc, TestCluster};
use nix::sys::signal::Signal;
use serde_json::json;

const LONG: Duration = Duration::from_secs(60);

/// Every child id in the ledgers of `nodes`, with how many ledgers hold it.
async fn ledger_counts(nodes: &[&NodeProc]) -> Option<BTreeMap<String, usize>> {
    let mut counts = BTreeMap::new();
    for n in nodes {
        for c in children_at(&n.http_addr(), true).await? {
            *counts.entry(c.id).or_insert(0) += 1;
        }
    }
    Some(counts)
}

fn checkpoint(c: &ChildInfo) -> u64 {
    c.checkpoint.as_ref().and_then(|v| v.as_u64()).unwrap_or(0)
}

/// Starts `long` endless tickers, `finite` ones that finish after 3 ticks,
/// and `singletons` permanent named tickers; waits until the finite ones
/// finished and every endless one checkpointed.
async fn populate(http: &str, long: usize, finite: usize, singletons: usize) -> Vec<ChildInfo> {
    for i in 0..long {
        spawn_child(http, json!({"type": "ticker", "id": format!("long{i:03}"), "restart": "transient", "args": {"interval_ms": 100}})).await;
    }
    for i in 0..finite {
        spawn_child(http, json!({"type": "ticker", "id": format!("short{i:03}"), "restart": "transient", "args": {"interval_ms": 50, "ticks": 3}})).await;
    }
    for i in 0..singletons {
        spawn_child(http, json!({"type": "ticker", "name": format!("single{i}"), "restart": "permanent", "args": {"interval_ms": 100}})).await;
    }
    wait_for(LONG, "children to settle", || async {
        let all = children_at(http, false).await?;
        let finished = all
            .iter()
            .filter(|c| c.status == ChildStatus::Stopped)
            .count();
        let ticking = all
            .iter()
            .filter(|c| c.status == ChildStatus::Running && checkpoint(c) > 0)
            .count();
        (all.len() == long + finite + singletons
            && finished == finite
            && ticking == long + singletons)
            .then_some(all)
    })
    .await
}

/// The node (index) that runs the most children.
fn busiest(all: &[ChildInfo], nodes: &[NodeProc]) -> usize {
    (0..nodes.len())
        .max_by_key(|&i| {
            all.iter()
                .filter(|c| c.node == nodes[i].name && c.status == ChildStatus::Running)
                .count()
        })
        .unwrap_or(0)
}

/// Waits until the survivors' ledgers hold every unfinished child, and no
/// finished one; each exactly once from that moment on.
async fn wait_exactly_once(survivors: &[&NodeProc], unfinished: &BTreeSet<String>) {
    wait_once(survivors, unfinished, false).await
}

/// `settling`: duplicates may exist at first (a woken node's stale copies
/// until it learns it was declared down and rejoins), so wait until each
/// child runs exactly once, then check that it stays so.
async fn wait_once(nodes: &[&NodeProc], unfinished: &BTreeSet<String>, settling: bool) {
    let counts = wait_for(
        LONG,
        "every unfinished child on exactly one node",
        || async {
            let counts = ledger_counts(nodes).await?;
            let ids: BTreeSet<String> = counts.keys().cloned().collect();
            let once = !settling || counts.values().all(|&n| n == 1);
            (ids == *unfinished && once).then_some(counts)
        },
    )
    .await;
    // Stable: no duplicate appears afterwards either.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let Some(again) = ledger_counts(nodes).await else {
        panic!("ledgers unreadable")
    };
    for (id, n) in counts.iter().chain(again.iter()) {
        assert_eq!(*n, 1, "{id} runs on {n} nodes");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn kill9_fails_over_exactly_once_from_checkpoints() {
    let _machine = drove_tests::shared_machine().await;
    let mut c = TestCluster::started(3).await;
    let http = c.nodes[0].http_addr();
    populate(&http, 80, 17, 3).await;
    // Let the cluster run a moment, as it would before a real failure.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let Some(before) = children_at(&http, false).await else {
        panic!("children unreadable")
    };
    let victim = busiest(&before, &c.nodes);
    let victim_name = c.nodes[victim].name.clone();
    let moved: Vec<&ChildInfo> = before.iter().filter(|ch| ch.node == victim_name).collect();
    assert!(!moved.is_empty());
    c.nodes[victim].kill9();

    let survivors: Vec<&NodeProc> = (0..3)
        .filter(|&i| i != victim)
        .map(|i| &c.nodes[i])
        .collect();
    let unfinished: BTreeSet<String> = before
        .iter()
        .filter(|ch| ch.status == ChildStatus::Running)
        .map(|ch| ch.id.clone())
        .collect();
    wait_exactly_once(&survivors, &unfinished).await;

    // Counters never went backwards: each moved child resumed from its
    // checkpoint, and finished children stayed finished.
    let after = children_at(&survivors[0].http_addr(), false)
        .await
        .expect("children");
    let after: BTreeMap<&str, &ChildInfo> = after.iter().map(|ch| (ch.id.as_str(), ch)).collect();
    for old in &moved {
        if old.status != ChildStatus::Running {
            continue;
        }
        let new = after.get(old.id.as_str()).expect("moved child listed");
        assert_ne!(new.node, victim_name);
        assert!(
            checkpoint(new) >= checkpoint(old),
            "{} went from {} to {}",
            old.id,
            checkpoint(old),
            checkpoint(new)
        );
        assert!(new.restarts > old.restarts);
    }
    for ch in before.iter().filter(|ch| ch.status == ChildStatus::Stopped) {
        assert!(
            after
                .get(ch.id.as_str())
                .is_none_or(|n| n.status == ChildStatus::Stopped),
            "{} restarted",
            ch.id
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn silent_node_children_move_and_stale_copies_stop() {
    let _machine = drove_tests::timing_sensitive().await;
    let c = TestCluster::started(3).await;
    let http = c.nodes[0].http_addr();
    populate(&http, 30, 0, 1).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let Some(before) = children_at(&http, false).await else {
        panic!("children unreadable")
    };
    let victim = busiest(&before, &c.nodes);
    let unfinished: BTreeSet<String> = before.iter().map(|ch| ch.id.clone()).collect();
    c.nodes[victim].signal(Signal::SIGSTOP);
    let survivors: Vec<&NodeProc> = (0..3)
        .filter(|&i| i != victim)
        .map(|i| &c.nodes[i])
        .collect();
    wait_exactly_once(&survivors, &unfinished).await;

    // Past the concurrent window, then wake it: it rejoins as a new
    // incarnation and stops its stale copies.
    tokio::time::sleep(Duration::from_secs(3)).await;
    c.nodes[victim].signal(Signal::SIGCONT);
    let all: Vec<&NodeProc> = c.nodes.iter().collect();
    wait_for(LONG, "the woken node to rejoin", || async {
        let view = c.nodes[victim].cluster().await?;
        (view.members.iter().filter(|m| m.status == "up").count() == 3).then_some(())
    })
    .await;
    wait_once(&all, &unfinished, true).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn restart_policies_and_intensity() {
    let _machine = drove_tests::shared_machine().await;
    let c = TestCluster::started(1).await;
    let http = c.nodes[0].http_addr();
    // Crashes on every first tick: restarted 3 times within 10 s, then given up.
    spawn_child(&http, json!({"type": "ticker", "id": "crasher", "restart": "permanent", "args": {"interval_ms": 50, "crash_after": 1}, "max_restarts": 3, "within_ms": 10000})).await;
    // Temporary: never restarted. Transient: restarted after a crash.
    spawn_child(&http, json!({"type": "ticker", "id": "temp", "restart": "temporary", "args": {"interval_ms": 50, "crash_after": 2}})).await;
    spawn_child(&http, json!({"type": "ticker", "id": "trans", "restart": "transient", "args": {"interval_ms": 50, "crash_after": 2}, "max_restarts": 100, "within_ms": 1000})).await;
    let all = wait_for(LONG, "the crash loop to be given up", || async {
        let all = children_at(&http, false).await?;
        let crasher = all.iter().find(|ch| ch.id == "crasher")?;
        let trans = all.iter().find(|ch| ch.id == "trans")?;
        (crasher.status == ChildStatus::GivenUp && trans.restarts >= 2).then_some(all)
    })
    .await;
    let by_id: BTreeMap<&str, &ChildInfo> = all.iter().map(|ch| (ch.id.as_str(), ch)).collect();
    assert_eq!(by_id["crasher"].restarts, 3);
    assert_eq!(by_id["temp"].status, ChildStatus::Stopped);
    assert_eq!(by_id["temp"].restarts, 0);
    // The transient child resumes from its checkpoint: the count grows
    // across crashes (2 ticks per run).
    assert!(checkpoint(by_id["trans"]) >= 2 * u64::from(by_id["trans"].restarts));
    // Bad input: unknown type, bad restart policy.
    let (status, _) = drove_tests::send_json(
        "POST",
        &http,
        "/api/children",
        &json!({"type": "nope", "restart": "transient"}),
    )
    .await
    .expect("POST");
    assert_eq!(status, 422);
    let (status, _) = drove_tests::send_json(
        "POST",
        &http,
        "/api/children",
        &json!({"type": "ticker", "restart": "sometimes"}),
    )
    .await
    .expect("POST");
    assert!((400..500).contains(&status));
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_hands_children_over_with_state() {
    let _machine = drove_tests::shared_machine().await;
    let mut c = TestCluster::started(3).await;
    let http = c.nodes[0].http_addr();
    populate(&http, 24, 0, 1).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let Some(before) = children_at(&http, false).await else {
        panic!("children unreadable")
    };
    let leaver = busiest(&before, &c.nodes);
    let leaver_name = c.nodes[leaver].name.clone();
    assert!(
        c.nodes[leaver].terminate(Duration::from_secs(20)),
        "the node did not exit on SIGTERM"
    );
    let survivors: Vec<&NodeProc> = (0..3)
        .filter(|&i| i != leaver)
        .map(|i| &c.nodes[i])
        .collect();
    let all: BTreeSet<String> = before.iter().map(|ch| ch.id.clone()).collect();
    wait_exactly_once(&survivors, &all).await;
    let after = children_at(&survivors[0].http_addr(), false)
        .await
        .expect("children");
    let after: BTreeMap<&str, &ChildInfo> = after.iter().map(|ch| (ch.id.as_str(), ch)).collect();
    for old in before.iter().filter(|ch| ch.node == leaver_name) {
        let new = after[old.id.as_str()];
        assert!(checkpoint(new) >= checkpoint(old), "{} went back", old.id);
        assert_eq!(new.restarts, old.restarts, "a handoff is not a restart");
    }
}

/// Two nodes run 30 endless children and a singleton; a third joins.
/// Returns the children before the join, and the cluster.
async fn third_node_joins(redistribution: &str) -> (Vec<ChildInfo>, TestCluster) {
    let mut c = TestCluster::new(3);
    for n in &mut c.nodes {
        n.extra = vec!["--redistribution".into(), redistribution.into()];
    }
    c.nodes[0].start();
    c.nodes[1].start();
    c.wait_converged(LONG).await;
    // Let both nodes' type declarations reach each other first: children
    // placed while n1 knows only itself would (rightly, with active
    // redistribution) move to n2 later, which is not what is measured.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let http = c.nodes[0].http_addr();
    populate(&http, 30, 0, 1).await;
    let Some(before) = children_at(&http, false).await else {
        panic!("children unreadable")
    };
    c.nodes[2].start();
    c.wait_converged(LONG).await;
    (before, c)
}

#[tokio::test(flavor = "multi_thread")]
async fn active_redistribution_moves_children_to_a_new_node_with_state() {
    let _machine = drove_tests::shared_machine().await;
    let (before, c) = third_node_joins("active").await;
    let newcomer = c.nodes[2].http_addr();
    wait_for(LONG, "children handed to the new node", || async {
        children_at(&newcomer, true)
            .await
            .filter(|l| !l.is_empty())
            .map(|_| ())
    })
    .await;
    // Moves are in flight now, and ledgers read one after another can
    // catch a child on its old node and then on its new one: let the
    // redistribution finish (the newcomer's ledger stops growing), then
    // check that every child runs exactly once and stays so.
    let deadline = std::time::Instant::now() + LONG;
    let mut last = None;
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let n = children_at(&newcomer, true).await.map(|l| l.len());
        if n.is_some() && n == last {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the redistribution never settled"
        );
        last = n;
    }
    let all: Vec<&NodeProc> = c.nodes.iter().collect();
    let ids: BTreeSet<String> = before.iter().map(|ch| ch.id.clone()).collect();
    wait_once(&all, &ids, true).await;
    let after = children_at(&newcomer, false).await.expect("children");
    let after: BTreeMap<&str, &ChildInfo> = after.iter().map(|ch| (ch.id.as_str(), ch)).collect();
    let mut moved = 0;
    for old in &before {
        let new = after[old.id.as_str()];
        assert!(checkpoint(new) >= checkpoint(old), "{} went back", old.id);
        assert_eq!(new.restarts, old.restarts, "a move is not a restart");
        if new.node != old.node {
            assert_eq!(
                new.node, c.nodes[2].name,
                "{} moved between old nodes",
                old.id
            );
            moved += 1;
        }
    }
    assert!(moved > 0 && moved < before.len(), "{moved} children moved");
}

#[tokio::test(flavor = "multi_thread")]
async fn passive_redistribution_leaves_running_children_in_place() {
    let _machine = drove_tests::shared_machine().await;
    let (before, c) = third_node_joins("passive").await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        children_at(&c.nodes[2].http_addr(), true).await,
        Some(Vec::new())
    );
    // New children are placed over all three nodes.
    for i in 0..30 {
        spawn_child(&c.nodes[0].http_addr(), json!({"type": "ticker", "id": format!("late{i:02}"), "restart": "transient", "args": {"interval_ms": 100}})).await;
    }
    let late = children_at(&c.nodes[2].http_addr(), true)
        .await
        .expect("ledger");
    assert!(!late.is_empty() && late.iter().all(|ch| ch.id.starts_with("late")));
    let all: Vec<&NodeProc> = c.nodes.iter().collect();
    let mut ids: BTreeSet<String> = before.iter().map(|ch| ch.id.clone()).collect();
    ids.extend((0..30).map(|i| format!("late{i:02}")));
    wait_exactly_once(&all, &ids).await;
}

/// A storm of freezes: nodes are stopped in turn for pauses on both sides
/// of the failure detector's threshold (so some are declared down and some
/// are not), continued, and stopped again, 8 times. No child is lost, and
/// once the cluster settles each one runs on exactly one node.
#[tokio::test(flavor = "multi_thread")]
async fn a_storm_of_freezes_loses_no_child_and_leaves_one_copy() {
    let _machine = drove_tests::timing_sensitive().await;
    let c = TestCluster::started(3).await;
    let http = c.nodes[0].http_addr();
    populate(&http, 30, 0, 2).await;
    let Some(before) = children_at(&http, false).await else {
        panic!("children unreadable")
    };
    let unfinished: BTreeSet<String> = before.iter().map(|ch| ch.id.clone()).collect();
    let pauses = [400u64, 1800, 900, 3000, 600, 2400, 1200, 2000];
    for (round, pause) in pauses.into_iter().enumerate() {
        let victim = &c.nodes[round % 3];
        victim.signal(Signal::SIGSTOP);
        tokio::time::sleep(Duration::from_millis(pause)).await;
        victim.signal(Signal::SIGCONT);
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let all: Vec<&NodeProc> = c.nodes.iter().collect();
    for node in &all {
        wait_for(LONG, "every node to see the other two up", || async {
            let view = node.cluster().await?;
            (view.members.iter().filter(|m| m.status == "up").count() == 3).then_some(())
        })
        .await;
    }
    // On a timeout, say what is missing or doubled, and each node's table.
    let deadline = std::time::Instant::now() + LONG;
    loop {
        let counts = ledger_counts(&all).await.unwrap_or_default();
        let ids: BTreeSet<String> = counts.keys().cloned().collect();
        if ids == unfinished && counts.values().all(|&n| n == 1) {
            break;
        }
        if std::time::Instant::now() > deadline {
            let missing: Vec<&String> = unfinished.difference(&ids).collect();
            let doubled: Vec<(&String, &usize)> = counts.iter().filter(|(_, n)| **n > 1).collect();
            let mut per_node = Vec::new();
            for n in &all {
                let here = children_at(&n.http_addr(), false).await.unwrap_or_default();
                per_node.push((
                    n.name.clone(),
                    here.iter()
                        .map(|c| format!("{}:{:?}@{}", c.id, c.status, c.node))
                        .collect::<Vec<_>>(),
                ));
            }
            panic!("missing {missing:?}; doubled {doubled:?}; tables {per_node:?}");
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    wait_once(&all, &unfinished, true).await;
}

/// Children terminated on purpose right after they failed over stay
/// stopped: the survivors' watch, which starts a failed-over child that no
/// node runs, sees that a live node stopped them since and leaves them.
#[tokio::test(flavor = "multi_thread")]
async fn children_terminated_right_after_failover_stay_stopped() {
    let _machine = drove_tests::shared_machine().await;
    let mut c = TestCluster::started(3).await;
    let http = c.nodes[0].http_addr();
    populate(&http, 12, 0, 0).await;
    let Some(before) = children_at(&http, false).await else {
        panic!("children unreadable")
    };
    let victim = busiest(&before, &c.nodes);
    let victim_name = c.nodes[victim].name.clone();
    let moved: BTreeSet<String> = before
        .iter()
        .filter(|ch| ch.node == victim_name)
        .map(|ch| ch.id.clone())
        .collect();
    assert!(!moved.is_empty());
    let all: BTreeSet<String> = before.iter().map(|ch| ch.id.clone()).collect();
    c.nodes[victim].kill9();
    let survivors: Vec<&NodeProc> = c.nodes.iter().filter(|n| n.name != victim_name).collect();
    wait_exactly_once(&survivors, &all).await;
    // At once: well within the watch's first look, 2.5 s after the death.
    let http = survivors[0].http_addr();
    for id in &moved {
        let path = format!("/api/children/{id}");
        match send_json("DELETE", &http, &path, &json!({})).await {
            Ok((204, _)) => {}
            other => panic!("DELETE {path}: {other:?}"),
        }
    }
    tokio::time::sleep(Duration::from_secs(6)).await;
    let kept: BTreeSet<String> = all.difference(&moved).cloned().collect();
    wait_exactly_once(&survivors, &kept).await;
    match send_json("DELETE", &http, "/api/children/nobody", &json!({})).await {
        Ok((404, _)) => {}
        other => panic!("DELETE of an unknown child: {other:?}"),
    }
}
