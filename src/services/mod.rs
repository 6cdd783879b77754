//! Cluster services carried out by the agents and the coordinator on top of
//! components: scheduled jobs, rotating backups, config templates, links (issue 10). Pure parts here
//! have no etcd and no Docker.

pub mod backup;
pub mod config;
pub mod link;
pub mod node;
