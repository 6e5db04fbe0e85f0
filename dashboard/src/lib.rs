//! drove's live dashboard, as Erlang's observer or Phoenix's LiveDashboard:
//! one page on every node's admin listener that shows the cluster, the
//! registry, supervised children, pub/sub and the cache, runner pools,
//! job queues and durable events, updated over server-sent events, with
//! actions (start and terminate children, change a pool's bounds, retry,
//! cancel, pause and resume jobs) that post JSON to the admin API.
//!
//! The page, its script and its style are compiled in ([`assets`]): no
//! CDN, no build step. Data comes from one stream per browser
//! ([`stream`]); the page names its panel and page in the stream's query,
//! and long lists (a million names or keys) are paged on the server
//! ([`views`]). The summary every panel shows is built once per second
//! however many browsers watch ([`hub`]); it asks each member's agent
//! ([`agent`]) for what only that member knows. Charts come from
//! [`series`], sampled every two seconds, drawn as plain SVG.
//!
//! # Layout
//!
//! - [`assets`]: `/` and the page's files (`assets/` beside this crate).
//! - [`stream`]: the stream and one-frame routes.
//! - [`hub`]: [`Hub`], the node's dashboard state.
//! - [`views`]: the JSON of each panel, and [`View`], the checked query.
//! - [`agent`]: the per-node agent and its [`NodeCard`].
//! - [`series`]: rates over the last five minutes.

pub mod agent;
pub mod assets;
pub mod hub;
pub mod series;
pub mod stream;
pub mod views;

pub use agent::NodeCard;
pub use hub::Hub;
pub use views::View;
