//! Cluster services carried out by the agents and the coordinator on top of
//! components (issue 10): rotating backups, config templates, links. The
//! pure parts (`backup`, `config`, `link`'s resolve/env/check) have no etcd
//! and no Docker; `node` (and `link::relay`) are the agent-side effects.

pub mod backup;
pub mod config;
pub mod link;
pub mod node;
