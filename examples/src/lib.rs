//! Small runnable programs that show drove's API. Run them with
//! `cargo run -p drove-examples --example NAME`.
//!
//! # Layout
//!
//! - `examples/counter.rs`: a local actor: spawn, cast, call.
//! - `examples/ping_pong.rs`: two nodes (this process and a child process
//!   it starts), a call across them, and a handle sent inside a message.
//! - `examples/watch_members.rs`: join a cluster and print membership
//!   events as they happen.
