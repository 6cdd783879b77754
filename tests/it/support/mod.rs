//! Shared test harness: throwaway etcd, test images, CLI runner.
#![allow(dead_code)]
pub mod cli;
pub mod etcd;
pub mod etcd3;
pub mod images;
