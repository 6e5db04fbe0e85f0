//! Durable events through the `drove` facade: an event type, two handlers
//! of it (each gets its own delivery), one event now and one later, and
//! the event read back with its deliveries. The store is SQLite
//! (`drove-jobs.sqlite3` here) unless `DROVE_JOBS` names another.
//!
//! `cargo run -p drove-examples --example events`

use std::time::Duration;

use drove::events::{Envelope, Event, EventCtx, Filter, Handler};
use drove::jobs::JobError;
use drove::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize)]
struct OrderShipped {
    order: u32,
}

impl Event for OrderShipped {
    const TYPE: &'static str = "shop.order_shipped";
}

struct Mailer;

impl Handler for Mailer {
    const NAME: &'static str = "shop.mailer";

    fn filter(&self) -> Filter {
        Filter::only([OrderShipped::TYPE])
    }

    async fn handle(&self, ctx: EventCtx, event: Envelope) -> Result<(), JobError> {
        let shipped: OrderShipped = event.decode()?;
        // Delivery is at least once: key side effects by event and handler.
        println!(
            "mail for order {} (key {})",
            shipped.order,
            ctx.idempotency_key()
        );
        Ok(())
    }
}

struct Audit;

impl Handler for Audit {
    const NAME: &'static str = "shop.audit";

    fn filter(&self) -> Filter {
        Filter::except(Vec::<String>::new())
    }

    async fn handle(&self, ctx: EventCtx, event: Envelope) -> Result<(), JobError> {
        println!("audit: {} {} on {}", event.kind, ctx.event, ctx.node);
        Ok(())
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut config = Config::from_env()?;
    if config.name.is_empty() {
        config.name = "events-example".into();
    }
    let drove = Drove::builder(config)
        .handler(Mailer)
        .handler(Audit)
        .start()
        .await?;
    let events = drove
        .events()
        .ok_or_else(|| anyhow::anyhow!("a pool's runner has no events"))?;
    events.signal(&OrderShipped { order: 1 }).await?;
    let later = events
        .signal_after(Duration::from_millis(300), &OrderShipped { order: 2 })
        .await?;
    loop {
        let info = events.get(later).await?;
        let done = info.as_ref().is_some_and(|i| {
            i.handlers.len() == 2 && i.handlers.iter().all(|h| h.state.is_final())
        });
        if done {
            println!("event {later} handled by both handlers");
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    drove.shutdown(Shutdown::Leave).await;
    Ok(())
}
