//! Built-in child types, so a cluster can be exercised without writing
//! code: `ticker` counts and checkpoints every tick; `echo` is the runtime's
//! echo actor.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use drove_runtime::echo::Echo;
use drove_runtime::{Actor, ActorError, Context, Message, Reply};

use crate::builder::SupervisorBuilder;
use crate::child::checkpoint;
use crate::spec::{Child, Started};

/// A ticker's start arguments.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct TickerArgs {
    /// Milliseconds between ticks (default 100).
    pub interval_ms: Option<u64>,
    /// Finish normally after this many ticks in total.
    pub ticks: Option<u64>,
    /// Crash after this many ticks of each run (to test restarts).
    pub crash_after: Option<u64>,
    /// Refuse to start from a checkpoint (after a restart, a failover or a
    /// handoff) until this Unix time in ms (to test failed starts).
    pub refuse_resume_until_ms: Option<u64>,
}

/// A ticker's messages.
#[derive(Debug, Serialize, Deserialize)]
pub enum TickerMsg {
    /// One tick.
    Tick,
    /// The count so far.
    Get(Reply<u64>),
}

impl Message for TickerMsg {
    const TAG: &'static str = "drove.ticker.v1";
}

/// Counts ticks and checkpoints the count on every tick; after a restart
/// or a failover it goes on from its last checkpoint.
#[derive(Clone, Debug)]
pub struct Ticker;

/// A ticker's state.
#[derive(Debug)]
pub struct TickerState {
    count: u64,
    this_run: u64,
    args: TickerArgs,
}

impl Actor for Ticker {
    type Msg = TickerMsg;
    type State = TickerState;
    type Args = (TickerArgs, u64);

    async fn init(
        &self,
        ctx: &Context<Self>,
        (args, count): (TickerArgs, u64),
    ) -> Result<TickerState, ActorError> {
        if let Some(until) = args.refuse_resume_until_ms {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
            if count > 0 && now < until {
                return Err(format!(
                    "refusing to resume for another {} ms, as asked",
                    until - now
                )
                .into());
            }
        }
        let me = ctx.myself().clone();
        let node = ctx.node().clone();
        let every = Duration::from_millis(args.interval_ms.unwrap_or(100).max(1));
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.tick().await;
            loop {
                tick.tick().await;
                if node.cast(&me, TickerMsg::Tick).is_err() {
                    return;
                }
            }
        });
        Ok(TickerState {
            count,
            this_run: 0,
            args,
        })
    }

    async fn handle(
        &self,
        ctx: &Context<Self>,
        msg: TickerMsg,
        s: &mut TickerState,
    ) -> Result<(), ActorError> {
        match msg {
            TickerMsg::Tick => {
                s.count += 1;
                s.this_run += 1;
                checkpoint(ctx, &s.count)?;
                if s.args.crash_after == Some(s.this_run) {
                    return Err(format!("crashing after {} ticks, as asked", s.this_run).into());
                }
                if s.args.ticks.is_some_and(|t| s.count >= t) {
                    ctx.stop();
                }
            }
            TickerMsg::Get(reply) => ctx.reply(reply, s.count)?,
        }
        Ok(())
    }
}

impl Child for Ticker {
    const TYPE: &'static str = "ticker";
    /// `null` (from `POST /api/children` without args) means the defaults.
    type Start = Option<TickerArgs>;
    type Checkpoint = u64;

    fn init_args(&self, start: Started<Self>) -> (TickerArgs, u64) {
        (
            start.args.unwrap_or_default(),
            start.checkpoint.unwrap_or(0),
        )
    }
}

/// Start arguments a child ignores: any JSON decodes to it, and it
/// encodes as `null`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AnyArgs;

impl Serialize for AnyArgs {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_unit()
    }
}

impl<'de> Deserialize<'de> for AnyArgs {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        serde::de::IgnoredAny::deserialize(d).map(|_| AnyArgs)
    }
}

/// The runtime's echo actor as a child type: it answers every message.
impl Child for Echo {
    const TYPE: &'static str = "echo";
    type Start = AnyArgs;
    type Checkpoint = ();

    fn init_args(&self, _: Started<Self>) {}
}

/// Declares the built-in types (`ticker`, `echo`) on a builder.
pub fn with_builtins(builder: SupervisorBuilder) -> SupervisorBuilder {
    builder.child(Ticker).child(Echo)
}
