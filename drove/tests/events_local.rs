//! Durable events in one process on a SQLite file: typed handlers with
//! `only` and `except` filters each get their own delivery, a failing one
//! is retried alone, delays and times hold, direct mode bypasses the
//! store, and bad input is refused or dead-lettered with its reason.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use drove::events::{
    Envelope, Event, EventCtx, EventId, EventList, EventsError, Filter, Handler, When,
};
use drove::jobs::{JobError, JobState, StoreUrl};
use drove::prelude::*;
use drove::runtime::testing::{free_port, wait_until};
use serde::{Deserialize, Serialize};

/// How long a test waits for what it expects.
const WAIT: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Shipped {
    order: u32,
}

impl Event for Shipped {
    const TYPE: &'static str = "test.shipped";
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Other {
    note: String,
}

impl Event for Other {
    const TYPE: &'static str = "test.other";
}

/// What a handler saw: (handler, event, attempt, payload order).
type Seen = Arc<Mutex<Vec<(&'static str, EventId, u32, u32)>>>;

/// Takes `test.shipped` only; fails the first attempt of odd orders.
struct Mailer(Seen);

impl Handler for Mailer {
    const NAME: &'static str = "test.mailer";

    fn filter(&self) -> Filter {
        Filter::only([Shipped::TYPE])
    }

    async fn handle(&self, ctx: EventCtx, event: Envelope) -> Result<(), JobError> {
        let shipped: Shipped = event.decode()?;
        self.0.lock().unwrap_or_else(|p| p.into_inner()).push((
            Self::NAME,
            ctx.event,
            ctx.attempt,
            shipped.order,
        ));
        if shipped.order % 2 == 1 && ctx.attempt == 1 {
            return Err(JobError::retry("mail server busy"));
        }
        Ok(())
    }
}

/// Takes everything but `test.other`.
struct Audit(Seen);

impl Handler for Audit {
    const NAME: &'static str = "test.audit";

    fn filter(&self) -> Filter {
        Filter::except([Other::TYPE])
    }

    async fn handle(&self, ctx: EventCtx, event: Envelope) -> Result<(), JobError> {
        let order = event.payload["order"].as_u64().unwrap_or(0) as u32;
        self.0.lock().unwrap_or_else(|p| p.into_inner()).push((
            Self::NAME,
            ctx.event,
            ctx.attempt,
            order,
        ));
        Ok(())
    }
}

fn seen_for(seen: &Seen, event: EventId) -> Vec<(&'static str, u32)> {
    let mut v: Vec<(&'static str, u32)> = seen
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .iter()
        .filter(|s| s.1 == event)
        .map(|s| (s.0, s.2))
        .collect();
    v.sort();
    v
}

#[tokio::test(flavor = "multi_thread")]
async fn handlers_each_get_their_delivery_on_time_and_bad_input_loses_nothing() {
    let file = std::env::temp_dir().join(format!(
        "drove-events-local-{:x}.sqlite3",
        rand::random::<u64>()
    ));
    let mut config = Config::new("solo");
    config.listen = (std::net::Ipv4Addr::LOCALHOST, free_port()).into();
    config.cookie = Some(format!("{:032x}", rand::random::<u128>()));
    config.jobs.store = StoreUrl::Sqlite(file.clone());
    config.jobs.backoff.min_ms = 50;
    config.jobs.backoff.max_ms = 100;
    config.events.max_payload_bytes = 1024;
    let seen: Seen = Arc::default();
    let drove = Drove::builder(config)
        .without_builtins()
        .handler(Mailer(seen.clone()))
        .handler(Audit(seen.clone()))
        .start()
        .await
        .unwrap();
    let events = drove.events().unwrap().clone();

    // Two handlers take the type: each gets it; the failing one alone is
    // retried.
    let id = events.signal(&Shipped { order: 1 }).await.unwrap();
    wait_until("both handlers, the mailer twice", WAIT, || {
        seen_for(&seen, id).len() == 3
    })
    .await;
    assert_eq!(
        seen_for(&seen, id),
        vec![("test.audit", 1), ("test.mailer", 1), ("test.mailer", 2)]
    );
    let info = events.get(id).await.unwrap().unwrap();
    assert_eq!(info.state, "dispatched");
    assert_eq!(info.kind, "test.shipped");
    assert_eq!(info.handlers.len(), 2);
    let mailer = info
        .handlers
        .iter()
        .find(|h| h.handler == "test.mailer")
        .unwrap();
    assert_eq!(mailer.attempts, 2);
    assert_eq!(mailer.errors.len(), 1);
    assert_eq!(mailer.errors[0].error, "mail server busy");

    // `except` leaves test.other to nobody here: it waits, visibly.
    let other = events
        .signal(&Other {
            note: "nobody".into(),
        })
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let info = events.get(other).await.unwrap().unwrap();
        if info.state == "waiting-for-handler" {
            assert!(info.handlers.is_empty());
            break;
        }
        assert!(Instant::now() < deadline, "still {}", info.state);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // A delay and a time: not before, and soon after.
    let started = Instant::now();
    let later = events
        .signal_after(Duration::from_millis(400), &Shipped { order: 2 })
        .await
        .unwrap();
    let at = events
        .signal_at(
            SystemTime::now() + Duration::from_millis(600),
            &Shipped { order: 4 },
        )
        .await
        .unwrap();
    assert_eq!(events.get(later).await.unwrap().unwrap().state, "scheduled");
    wait_until("the delayed event", WAIT, || {
        seen_for(&seen, later).len() == 2
    })
    .await;
    assert!(started.elapsed() >= Duration::from_millis(400));
    wait_until("the timed event", WAIT, || seen_for(&seen, at).len() == 2).await;
    assert!(started.elapsed() >= Duration::from_millis(600));

    // Direct: handled here at once, not stored.
    let direct = events.signal_direct(&Shipped { order: 6 }).await.unwrap();
    wait_until("the direct event", WAIT, || {
        seen_for(&seen, direct).len() == 2
    })
    .await;
    assert!(events.get(direct).await.unwrap().is_none());
    assert!(matches!(
        events
            .signal_value(Other::TYPE, serde_json::json!({}), When::Direct)
            .await,
        Err(EventsError::NoHandler(_))
    ));

    // Over the limit: refused at signal time. A bad type name: refused.
    let big = "x".repeat(2000);
    assert!(matches!(
        events
            .signal_value(
                "test.shipped",
                serde_json::json!({ "order": 8, "pad": big }),
                When::Now
            )
            .await,
        Err(EventsError::TooLarge { limit: 1024, .. })
    ));
    assert!(matches!(
        events
            .signal_value("bad type", serde_json::json!({}), When::Now)
            .await,
        Err(EventsError::Type(_))
    ));

    // A time more than ten years ahead is refused with the reason, not
    // stored (once stored, one made the record unreadable on Redis).
    let too_far = events
        .signal_value(
            "test.shipped",
            serde_json::json!({ "order": 10 }),
            When::AtMs(u64::MAX),
        )
        .await;
    assert!(
        matches!(
            &too_far,
            Err(EventsError::Jobs(drove::jobs::JobsError::Spec(
                drove::jobs::spec::SpecError::TooFar { .. }
            )))
        ),
        "{too_far:?}"
    );
    // A year ahead is fine, and waits.
    let in_a_year = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
        + 365 * 24 * 3_600 * 1_000;
    let far = events
        .signal_value(
            "test.shipped",
            serde_json::json!({ "order": 10 }),
            When::AtMs(in_a_year),
        )
        .await
        .unwrap();
    assert_eq!(events.get(far).await.unwrap().unwrap().state, "scheduled");

    // A payload that does not decode: the typed handler dead-letters it
    // with the reason; the other handler is not held up.
    let bad = events
        .signal_value(
            "test.shipped",
            serde_json::json!({ "order": "not a number" }),
            When::Now,
        )
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let info = loop {
        let info = events.get(bad).await.unwrap().unwrap();
        if info.handlers.len() == 2 && info.handlers.iter().all(|h| h.state.is_final()) {
            break info;
        }
        assert!(Instant::now() < deadline, "{info:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let mailer = info
        .handlers
        .iter()
        .find(|h| h.handler == "test.mailer")
        .unwrap();
    assert_eq!(mailer.state, JobState::Dead);
    assert!(
        mailer.errors[0].error.contains("does not decode"),
        "{:?}",
        mailer.errors
    );
    let audit = info
        .handlers
        .iter()
        .find(|h| h.handler == "test.audit")
        .unwrap();
    assert_eq!(audit.state, JobState::Completed);

    // The lists a dashboard reads: the bad event is dead (with its
    // handlers), and dispatched; the far one is pending.
    let ids =
        |list: Vec<drove::events::EventInfo>| list.into_iter().map(|e| e.id).collect::<Vec<_>>();
    let dead = events.list(EventList::Dead, 10).await.unwrap();
    assert_eq!(dead.iter().map(|e| e.id).collect::<Vec<_>>(), vec![bad]);
    assert_eq!(dead[0].handlers.len(), 2);
    assert!(ids(events.list(EventList::Dispatched, 50).await.unwrap()).contains(&bad));
    let pending = ids(events.list(EventList::Pending, 50).await.unwrap());
    assert!(
        pending.contains(&far) && !pending.contains(&bad),
        "{pending:?}"
    );

    drove.shutdown(Shutdown::Leave).await;
    for suffix in ["", "-wal", "-shm"] {
        let mut name = file.clone().into_os_string();
        name.push(suffix);
        let _ = std::fs::remove_file(name);
    }
}
