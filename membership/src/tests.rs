use std::collections::BTreeSet;

use proptest::prelude::*;

use crate::*;

fn info(name: &str, inc: u64) -> MemberInfo {
    MemberInfo {
        id: NodeId::new(name, Incarnation(inc)),
        addr: format!("{name}:4370"),
        http: format!("{name}:8370"),
    }
}

fn live(name: &str, inc: u64) -> GossipNode {
    GossipNode {
        info: info(name, inc),
        announced: Announced::Up,
        live: true,
        declared_down: vec![],
    }
}

fn view(name: &str) -> MembershipView {
    MembershipView::new(info(name, 1), ViewConfig::default())
}

fn status(v: &MembershipView, name: &str, inc: u64) -> Option<MemberStatus> {
    v.status_of(&NodeId::new(name, Incarnation(inc)))
}

#[test]
fn live_node_comes_up_and_is_connected() {
    let mut v = view("n1");
    let out = v.observe(&[live("n1", 1), live("n2", 7)], 0);
    assert!(out.contains(&Output::Event(MembershipEvent::NodeUp(info("n2", 7)))));
    assert!(out.contains(&Output::Connect(info("n2", 7))));
    assert_eq!(status(&v, "n2", 7), Some(MemberStatus::Up));
    // Observing the same state again changes nothing.
    assert!(v.observe(&[live("n1", 1), live("n2", 7)], 1).is_empty());
}

#[test]
fn connection_loss_declares_down_and_publishes() {
    let mut v = view("n1");
    v.observe(&[live("n2", 7)], 0);
    let out = v.connection_lost(&info("n2", 7).id, 42);
    assert!(out.contains(&Output::PublishDown(info("n2", 7).id, 42)));
    assert!(out.contains(&Output::Event(MembershipEvent::NodeDown(info("n2", 7).id))));
    // Down is final: live gossip for the same incarnation does not revive it.
    assert!(v.observe(&[live("n2", 7)], 50).is_empty());
    assert_eq!(status(&v, "n2", 7), Some(MemberStatus::Down));
}

#[test]
fn gossip_silence_declares_down() {
    let mut v = view("n1");
    v.observe(&[live("n2", 7)], 0);
    let mut silent = live("n2", 7);
    silent.live = false;
    let out = v.observe(&[silent], 10);
    assert!(out.contains(&Output::PublishDown(info("n2", 7).id, 10)));
}

#[test]
fn leaving_then_connection_closed_is_left_not_down() {
    let mut v = view("n1");
    v.observe(&[live("n2", 7)], 0);
    let out = v.leave_announced(&info("n2", 7).id);
    assert_eq!(
        out,
        vec![Output::Event(MembershipEvent::NodeLeaving(
            info("n2", 7).id
        ))]
    );
    let out = v.connection_lost(&info("n2", 7).id, 5);
    assert!(out.contains(&Output::Event(MembershipEvent::NodeLeft(info("n2", 7).id))));
    assert!(!out.iter().any(|o| matches!(o, Output::PublishDown(..))));
    assert_eq!(status(&v, "n2", 7), Some(MemberStatus::Left));
}

#[test]
fn new_incarnation_replaces_old() {
    let mut v = view("n1");
    v.observe(&[live("n2", 7)], 0);
    let out = v.observe(&[live("n2", 8)], 1);
    assert!(out.contains(&Output::Event(MembershipEvent::NodeDown(info("n2", 7).id))));
    assert!(out.contains(&Output::Event(MembershipEvent::NodeUp(info("n2", 8)))));
    assert_eq!(
        v.alive_member("n2").map(|m| m.info.id.incarnation),
        Some(Incarnation(8))
    );
}

#[test]
fn trusted_third_party_declaration_is_adopted() {
    let mut v = view("n1");
    v.observe(&[live("n2", 2), live("n3", 3)], 0);
    let mut n2 = live("n2", 2);
    n2.declared_down = vec![(info("n3", 3).id, 5)];
    let out = v.observe(&[n2, live("n3", 3)], 6);
    assert!(out.contains(&Output::Event(MembershipEvent::NodeDown(info("n3", 3).id))));
    // Seconded, with n2's time.
    assert!(out.contains(&Output::PublishDown(info("n3", 3).id, 5)));
}

/// A storm of freezes: n3 declared n2 down; n1, a fresh incarnation, took
/// n3's word; n2 then woke and declared n3 down within the concurrent
/// window, while it sees n1 up. n1's seconded declaration makes n2 rejoin.
/// Unsaid, n2 would count n1 on its own side (2 against 1) and stay, n3
/// would count n1 on its own side too and stay, and n2 would be shut out
/// for good.
#[test]
fn a_woken_node_learns_from_a_peer_that_took_a_declarations_word() {
    let id = |n: &str, inc: u64| info(n, inc).id;
    let mut n1 = MembershipView::new(info("n1", 2), ViewConfig::default());
    n1.observe(&[live("n1", 2), live("n2", 1), live("n3", 1)], 0);
    let mut n3 = live("n3", 1);
    n3.declared_down = vec![(id("n2", 1), 1_000)];
    let out = n1.observe(&[live("n1", 2), live("n2", 1), n3.clone()], 1_100);
    let seconded: Vec<(NodeId, u64)> = out
        .iter()
        .filter_map(|o| match o {
            Output::PublishDown(target, at) => Some((target.clone(), *at)),
            _ => None,
        })
        .collect();
    let mut n2 = view("n2");
    n2.observe(&[live("n1", 2), live("n3", 1)], 0);
    n2.connection_lost(&id("n3", 1), 2_500);
    let mut n1_gossip = live("n1", 2);
    n1_gossip.declared_down = seconded;
    assert!(n2
        .observe(&[n1_gossip, n3, live("n2", 1)], 2_600)
        .contains(&Output::Rejoin));
}

/// The same storm, where n1 is a fresh incarnation that never saw n2 up
/// (n2 froze first): n1 takes n3's word about an incarnation it never held,
/// and seconds it once n2 shows in gossip, so n2 rejoins when it wakes.
/// Unsaid, n2 would count n1 on its own side and neither end would rejoin.
#[test]
fn a_declaration_taken_before_its_target_showed_is_seconded_when_it_does() {
    let id = |n: &str, inc: u64| info(n, inc).id;
    let mut n1 = MembershipView::new(info("n1", 2), ViewConfig::default());
    let mut n3 = live("n3", 1);
    n3.declared_down = vec![(id("n2", 1), 1_000)];
    let out = n1.observe(&[live("n1", 2), n3.clone()], 1_100);
    assert!(!out.iter().any(|o| matches!(o, Output::PublishDown(..))));
    assert_eq!(n1.status_of(&id("n2", 1)), Some(MemberStatus::Down));
    // n2 wakes: in gossip again, never admitted, seconded once.
    let out = n1.observe(&[live("n1", 2), live("n2", 1), n3.clone()], 2_000);
    assert!(!out.contains(&Output::Event(MembershipEvent::NodeUp(info("n2", 1)))));
    assert_eq!(out, vec![Output::PublishDown(id("n2", 1), 1_000)]);
    assert!(n1
        .observe(&[live("n1", 2), live("n2", 1), n3.clone()], 2_100)
        .is_empty());
    // n2 had declared n3 within the window, and sees n1 up: n1's word
    // makes it rejoin.
    let mut n2 = view("n2");
    n2.observe(&[live("n1", 2), live("n3", 1)], 0);
    n2.connection_lost(&id("n3", 1), 1_500);
    let mut n1_gossip = live("n1", 2);
    n1_gossip.declared_down = vec![(id("n2", 1), 1_000)];
    assert!(n2
        .observe(&[n1_gossip, n3, live("n2", 1)], 2_600)
        .contains(&Output::Rejoin));
}

#[test]
fn declared_down_by_a_live_peer_rejoins() {
    let mut v = view("n1");
    v.observe(&[live("n2", 2)], 0);
    let mut n2 = live("n2", 2);
    n2.declared_down = vec![(info("n1", 1).id, 5)];
    assert!(v.observe(&[n2], 6).contains(&Output::Rejoin));
}

/// n1 was frozen (SIGSTOP): n2 declared it down at 1_600; n1 woke at 9_000
/// and declared n2 down on its stale detector. n1 rejoins, n2 stays.
#[test]
fn woken_node_rejoins_and_survivor_stays() {
    let mut n1 = view("n1");
    let mut n2 = view("n2");
    n1.observe(&[live("n2", 1)], 0);
    n2.observe(&[live("n1", 1)], 0);
    n2.connection_lost(&info("n1", 1).id, 1_600);
    n1.connection_lost(&info("n2", 1).id, 9_000);
    let mut g1 = live("n1", 1);
    g1.declared_down = vec![(info("n2", 1).id, 9_000)];
    let mut g2 = live("n2", 1);
    g2.declared_down = vec![(info("n1", 1).id, 1_600)];
    let gossip = [g1, g2];
    assert!(n1.observe(&gossip, 9_100).contains(&Output::Rejoin));
    assert!(!n2.observe(&gossip, 9_100).contains(&Output::Rejoin));
}

/// A partition {n1, n2} | {n3} healed: only the minority rejoins.
#[test]
fn healed_partition_minority_rejoins() {
    let mut views: Vec<MembershipView> = ["n1", "n2", "n3"].iter().map(|n| view(n)).collect();
    let all = [live("n1", 1), live("n2", 1), live("n3", 1)];
    for v in &mut views {
        v.observe(&all, 0);
    }
    let id = |n: &str| info(n, 1).id;
    views[0].connection_lost(&id("n3"), 1_000);
    views[1].connection_lost(&id("n3"), 1_100);
    views[2].connection_lost(&id("n1"), 1_050);
    views[2].connection_lost(&id("n2"), 1_200);
    let mut g = all.clone();
    g[0].declared_down = vec![(id("n3"), 1_000)];
    g[1].declared_down = vec![(id("n3"), 1_100)];
    g[2].declared_down = vec![(id("n1"), 1_050), (id("n2"), 1_200)];
    let rejoined: Vec<bool> = views
        .iter_mut()
        .map(|v| v.observe(&g, 5_000).contains(&Output::Rejoin))
        .collect();
    assert_eq!(rejoined, vec![false, false, true]);
}

/// A partition {n1, n3} | {n2} where n1 adopted n3's declaration of n2
/// instead of making its own: n2 sees one declaration only, but n1 is back
/// in gossip on the other side, so n2 is still the minority and rejoins.
#[test]
fn healed_partition_minority_rejoins_when_the_majority_adopted_a_declaration() {
    let mut views: Vec<MembershipView> = ["n1", "n2", "n3"].iter().map(|n| view(n)).collect();
    let all = [live("n1", 1), live("n2", 1), live("n3", 1)];
    for v in &mut views {
        v.observe(&all, 0);
    }
    let id = |n: &str| info(n, 1).id;
    views[2].connection_lost(&id("n2"), 1_000);
    let mut g = all.clone();
    g[2].declared_down = vec![(id("n2"), 1_000)];
    // n1 adopts n3's word: no declaration of its own.
    views[0].observe(&g, 1_001);
    assert_eq!(status(&views[0], "n2", 1), Some(MemberStatus::Down));
    views[1].connection_lost(&id("n1"), 1_200);
    views[1].connection_lost(&id("n3"), 1_200);
    g[1].declared_down = vec![(id("n1"), 1_200), (id("n3"), 1_200)];
    let rejoined: Vec<bool> = views
        .iter_mut()
        .map(|v| v.observe(&g, 5_000).contains(&Output::Rejoin))
        .collect();
    assert_eq!(rejoined, vec![false, true, false]);
}

#[test]
fn after_rejoin_the_old_self_is_ignored() {
    let mut v = view("n1");
    v.rejoined(info("n1", 2));
    let mut old_self = live("n1", 1);
    old_self.declared_down = vec![(info("n2", 5).id, 1)];
    let out = v.observe(&[old_self, live("n2", 5)], 10);
    assert_eq!(status(&v, "n1", 2), Some(MemberStatus::Up));
    assert!(out.contains(&Output::Event(MembershipEvent::NodeUp(info("n2", 5)))));
}

fn names(v: &[&str]) -> BTreeSet<String> {
    v.iter().map(|s| s.to_string()).collect()
}

proptest! {
    /// Of two nodes that declared each other down, exactly one rejoins,
    /// whatever the timestamps and however each side counts itself.
    #[test]
    fn mutual_declaration_has_exactly_one_loser(
        window in 0u64..5_000,
        a_declared in 0u64..100_000,
        b_declared in 0u64..100_000,
        a_side in 1usize..5,
        b_side in 1usize..5,
    ) {
        let a: Vec<String> = (0..a_side).map(|i| format!("a{i}")).collect();
        let b: Vec<String> = (0..b_side).map(|i| format!("b{i}")).collect();
        let a_set: BTreeSet<String> = a.iter().cloned().collect();
        let b_set: BTreeSet<String> = b.iter().cloned().collect();
        let a_loses = mutual_declaration_loses(window, &[(a_declared, b_declared)], &a_set, &b_set);
        let b_loses = mutual_declaration_loses(window, &[(b_declared, a_declared)], &b_set, &a_set);
        prop_assert!(a_loses != b_loses);
    }

    /// Down is final: no sequence of inputs brings a finished incarnation
    /// back up, and the view never reports two alive incarnations of a name.
    #[test]
    fn down_is_final(steps in proptest::collection::vec((0u8..4, 0u64..3, 0u64..3, any::<bool>()), 1..60)) {
        let mut v = view("me");
        let mut finished = BTreeSet::new();
        for (t, (kind, node, inc, flag)) in steps.into_iter().enumerate() {
            let name = format!("p{node}");
            let id = NodeId::new(name.clone(), Incarnation(inc));
            let now = t as u64 * 100;
            let out = match kind {
                0 => {
                    let mut g = live(&name, inc);
                    g.live = flag;
                    v.observe(&[g], now)
                }
                1 => v.connection_lost(&id, now),
                2 => v.leave_announced(&id),
                _ => {
                    let mut g = live("other", 9);
                    g.declared_down = vec![(id.clone(), now)];
                    v.observe(&[g], now)
                }
            };
            for o in out {
                if let Output::Event(MembershipEvent::NodeDown(d) | MembershipEvent::NodeLeft(d)) = o {
                    finished.insert(d);
                }
            }
            for f in &finished {
                let s = v.status_of(f);
                prop_assert!(matches!(s, Some(MemberStatus::Down | MemberStatus::Left)), "{f} is {s:?}");
            }
        }
        let _ = names(&[]);
    }
}
