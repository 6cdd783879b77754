//! `berth agent`: the per-node daemon. It registers the node, watches what the
//! node must run (`assignments/<node>/`), and reconciles the Docker engine to it.
//!
//! - [`plan`]: the pure planner (no Docker, no etcd).
//! - [`health`]: ready and health check tracking per container.
//! - [`executor`]: container names, labels, admission, and Docker operations.
//! - [`metrics`]: the Prometheus metrics of `/metrics`.
//! - [`state`]: the in-memory picture of containers, conditions and events.

pub mod executor;
pub mod health;
pub mod metrics;
pub mod plan;
pub mod state;
