//! Two nodes: this process and a child process it starts. The child runs a
//! `pong` actor under a local name; the parent calls it across the wire and
//! also sends it a handle to one of its own actors, which the child casts
//! back to.
//!
//! `cargo run -p drove-examples --example ping_pong`

use std::time::{Duration, Instant};

use drove_runtime::{Actor, ActorError, Context, Handle, Message, Node, NodeConfig, Reply};
use serde::{Deserialize, Serialize};

const PARENT: &str = "127.0.0.1:47380";
const CHILD: &str = "127.0.0.1:47381";

#[derive(Serialize, Deserialize)]
enum PongMsg {
    /// Answer with the text reversed.
    Ping(String, Reply<String>),
    /// Cast a greeting to this handle.
    Greet(Handle<InboxMsg>),
}

impl Message for PongMsg {
    const TAG: &'static str = "examples.pong.v1";
}

#[derive(Serialize, Deserialize)]
struct InboxMsg(String);

impl Message for InboxMsg {
    const TAG: &'static str = "examples.inbox.v1";
}

struct Pong;

impl Actor for Pong {
    type Msg = PongMsg;
    type State = ();
    type Args = ();

    async fn init(&self, _: &Context<Self>, _: ()) -> Result<(), ActorError> {
        Ok(())
    }

    async fn handle(
        &self,
        ctx: &Context<Self>,
        msg: PongMsg,
        _: &mut (),
    ) -> Result<(), ActorError> {
        match msg {
            PongMsg::Ping(text, reply) => ctx.reply(reply, text.chars().rev().collect())?,
            PongMsg::Greet(to) => {
                ctx.cast(&to, InboxMsg(format!("hello from {}", ctx.node().id())))?
            }
        }
        Ok(())
    }
}

/// Prints what it receives and tells `main` through a channel.
struct Printer(tokio::sync::mpsc::UnboundedSender<String>);

impl Actor for Printer {
    type Msg = InboxMsg;
    type State = ();
    type Args = ();

    async fn init(&self, _: &Context<Self>, _: ()) -> Result<(), ActorError> {
        Ok(())
    }

    async fn handle(&self, _: &Context<Self>, msg: InboxMsg, _: &mut ()) -> Result<(), ActorError> {
        let _ = self.0.send(msg.0);
        Ok(())
    }
}

fn config(name: &str, listen: &str, seeds: Vec<String>) -> anyhow::Result<NodeConfig> {
    let mut c = NodeConfig::new(name);
    c.listen = listen.parse()?;
    c.seeds = seeds;
    c.cookie = "ping-pong".to_string();
    Ok(c)
}

async fn child() -> anyhow::Result<()> {
    let node = config("pong", CHILD, vec![PARENT.to_string()])?
        .start()
        .await?;
    node.spawn_named("pong", Pong, ()).await?;
    // Serve until the parent kills us.
    std::future::pending::<()>().await;
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    if std::env::args().any(|a| a == "--child") {
        return child().await;
    }
    let node = config("ping", PARENT, vec![CHILD.to_string()])?
        .start()
        .await?;
    let mut child = std::process::Command::new(std::env::current_exe()?)
        .arg("--child")
        .spawn()?;
    let result = talk(&node).await;
    node.leave().await;
    let _ = child.kill();
    let _ = child.wait();
    result
}

async fn talk(node: &Node) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(20);
    let pong_node = loop {
        if let Some(m) = node
            .members()
            .into_iter()
            .find(|m| m.info.id.name == "pong")
        {
            if drove_runtime::echo::ping(node, &m.info.id, Duration::from_millis(500))
                .await
                .is_ok()
            {
                break m.info.id;
            }
        }
        anyhow::ensure!(Instant::now() < deadline, "the child node never came up");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let pong: Handle<PongMsg> = Handle::named(pong_node, "pong");
    let t = Instant::now();
    let answer = node
        .call(
            &pong,
            |r| PongMsg::Ping("drove".to_string(), r),
            Duration::from_secs(2),
        )
        .await?;
    println!("{pong} answered {answer:?} in {:?}", t.elapsed());

    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let printer = node.spawn(Printer(tx), ()).await?;
    node.cast(&pong, PongMsg::Greet(printer))?;
    let greeting = tokio::time::timeout(Duration::from_secs(2), rx.recv()).await?;
    println!("printer got {greeting:?}");
    Ok(())
}
