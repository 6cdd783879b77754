//! Shared test harness: throwaway etcd, test images, agent processes, a Docker proxy, CLI runner.
#![allow(dead_code)]
pub mod agents;
pub mod cli;
pub mod docker_proxy;
pub mod etcd;
pub mod etcd3;
pub mod images;
