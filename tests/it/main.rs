//! berth's integration tests: one binary (fast to link), one module per area.
//! Each test starts its own etcd (own port, own data dir) and uses its own
//! node names and labels, so tests can run in parallel on one Docker engine.
mod agent;
mod agent_binary;
mod agent_engine;
mod agent_pin;
mod agent_safety;
mod api;
mod api_actions;
mod cli;
mod cli_lock;
mod cli_nodes;
mod cli_rollout;
mod cluster;
mod coordinator;
mod docker;
mod events;
mod links_configs;
mod rollout;
mod runtime;
mod security;
mod services;
mod support;
mod traffic;
mod up;
