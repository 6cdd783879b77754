//! `berth agent`: the per-node daemon. It registers the node, watches what the
//! node must run (`assignments/<node>/`), and reconciles the Docker engine to it.
//!
//! - [`plan`]: the pure planner (no Docker, no etcd).
//! - [`health`]: ready and health check tracking per container.

pub mod health;
pub mod plan;
