//! The cache API on one node: put, get, put_new, update, delete, TTL, and
//! what it refuses; housekeeping by deadline, with counts kept without a
//! scan.

use std::time::Duration;

use drove_cache::{Cache, CacheError, MAX_VALUE_LEN};
use drove_runtime::testing::one_node;

#[tokio::test(flavor = "multi_thread")]
async fn the_api_on_one_node() {
    let config = one_node("solo");
    let node = config.start().await.expect("node");
    let cache = Cache::start(&node).await.expect("cache");

    cache.put("a", &1u32, None).expect("put");
    assert_eq!(cache.get::<u32>("a").expect("get"), Some(1));
    assert!(!cache.put_new("a", &2u32, None).expect("put_new"));
    assert!(cache.put_new("b", &2u32, None).expect("put_new"));

    // update reads and writes in one step.
    for _ in 0..5 {
        cache
            .update("counter", None, |n: Option<u64>| n.unwrap_or(0) + 1)
            .expect("update");
    }
    assert_eq!(cache.get::<u64>("counter").expect("get"), Some(5));
    // A value of another type is an error, and nothing is written.
    assert!(matches!(
        cache.update("a", None, |s: Option<String>| s.unwrap_or_default()),
        Err(CacheError::Value(_))
    ));
    assert_eq!(cache.get::<u32>("a").expect("get"), Some(1));
    assert!(cache.get::<String>("a").is_err());

    // TTL: gone after its deadline, on reads and from the replica.
    cache
        .put("short", &"x", Some(Duration::from_millis(200)))
        .expect("put");
    let deadline = cache
        .entry("short")
        .expect("entry")
        .expires_at_ms
        .expect("deadline");
    assert!(deadline > cache.now_ms());
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(cache.get::<String>("short").expect("get"), None);
    assert!(cache
        .put_new("short", &"y", None)
        .expect("put_new after expiry"));

    // Withdrawing this node's own write: alone, the key is gone.
    cache.put("r", &7u32, None).expect("put");
    assert!(cache.retract("r").expect("retract"));
    assert!(!cache.retract("r").expect("retract again"));
    assert_eq!(cache.get::<u32>("r").expect("get"), None);
    assert!(matches!(cache.retract(""), Err(CacheError::InvalidKey)));

    assert!(cache.delete("a").expect("delete"));
    assert!(!cache.delete("a").expect("delete again"));
    assert_eq!(cache.get::<u32>("a").expect("get"), None);
    assert_eq!(cache.keys(), vec!["b", "counter", "short"]);

    assert!(matches!(
        cache.put("", &1, None),
        Err(CacheError::InvalidKey)
    ));
    let big = "x".repeat(MAX_VALUE_LEN + 1);
    assert!(matches!(
        cache.put("big", &big, None),
        Err(CacheError::TooLarge(_))
    ));
    assert_eq!(cache.get::<String>("big").expect("get"), None);
    node.leave().await;
}

fn metric(cache: &Cache, name: &str) -> u64 {
    cache
        .metrics_text()
        .lines()
        .filter(|l| l.starts_with(name) && l[name.len()..].starts_with('{'))
        .find_map(|l| l.rsplit(' ').next()?.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in the metrics"))
}

/// Expired entries leave by their deadlines (a rewrite without a TTL
/// keeps its key), deleted ones are tidied, and the counts in the
/// metrics follow, kept as slots change.
#[tokio::test(flavor = "multi_thread")]
async fn housekeeping_goes_by_deadline_and_counts_follow() {
    let config = one_node("keeper");
    let node = config.start().await.expect("node");
    let cache = Cache::start(&node).await.expect("cache");
    for i in 0..300u32 {
        let ttl = (i % 3 == 0).then(|| Duration::from_millis(300 + u64::from(i)));
        cache.put(&format!("k{i}"), &i, ttl).expect("put");
    }
    // Rewritten without a TTL before its deadline: it stays.
    cache.put("k0", &0u32, None).expect("put");
    assert_eq!(metric(&cache, "drove_cache_entries"), 300);
    assert_eq!(metric(&cache, "drove_cache_slots"), 300);
    assert!(cache.delete("k1").expect("delete"));
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while metric(&cache, "drove_cache_entries") != 200 {
        assert!(
            std::time::Instant::now() < deadline,
            "expired and deleted keys stay: {}",
            cache.metrics_text()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(cache.len(), 200);
    assert_eq!(metric(&cache, "drove_cache_slots"), 200);
    assert_eq!(metric(&cache, "drove_cache_expired_total"), 99);
    assert_eq!(metric(&cache, "drove_cache_tidy_pending"), 0);
    assert_eq!(cache.get::<u32>("k0").expect("get"), Some(0));
    assert_eq!(cache.get::<u32>("k3").expect("get"), None);
    node.leave().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn live_bytes_count_only_what_stays() {
    let node = one_node("weigh").start().await.expect("node");
    let cache = Cache::start(&node).await.expect("cache");
    assert_eq!(cache.live_bytes(), 0);
    cache.put("k1", &"x".repeat(1000), None).expect("put");
    cache.put("k2", &"y".repeat(500), None).expect("put");
    let both = cache.live_bytes();
    assert!(both > 1500, "{both}");
    assert_eq!(both, cache.bytes(), "one copy of each key");
    assert!(cache.delete("k1").expect("delete"));
    let left = cache.live_bytes();
    assert!(left > 500 && left < 1000, "{left}");
    assert!(cache.bytes() >= left);
}
