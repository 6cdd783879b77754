//! Cluster services carried out by the agents and the coordinator on top of
//! components: scheduled jobs, rotating backups (issue 10). Pure parts here
//! have no etcd and no Docker.

pub mod actions;
pub mod backup;
