//! berth: a Kubernetes-style reconciling operator for Docker hosts, with etcd
//! as its only server.
//!
//! # Layout
//!
//! - [`resource`]: the resource model (`Project`, `Component`, `Node`) and the
//!   internal documents agents exchange. Plain data, no I/O.
//! - [`manifest`]: reading YAML/JSON manifests from files, directories and
//!   stdin into validated objects, with file/line/column/field-path errors.
//! - [`schema`]: JSON Schemas and CRD-style documents generated from the types.
//! - [`store`]: the etcd key layout and every read and compare-and-swap write.
//! - [`localetcd`]: starting a throwaway `etcd` child process (`berth up`, tests).
//! - [`runtime`]: the controller runtime: watcher, reflector, scheduler, controller.
//! - [`docker`]: the container runtime seen by the agent (bollard underneath).
//! - [`checks`]: ready and health probes (http, tcp, exec).
//! - [`agent`]: `berth agent`: registration, planning and executing container changes.
//! - [`proxy`]: the traffic proxy on every agent's external ports (tcp and http).
//! - [`cli`]: the `berth` command line.
//!
//! See ARCHITECTURE.md for the invariants between these parts.

pub mod agent;
pub mod api;
pub mod checks;
pub mod cli;
pub mod coordinator;
pub mod docker;
pub mod events;
pub mod localetcd;
pub mod manifest;
pub mod placement;
pub mod proxy;
pub mod resource;
pub mod runtime;
pub mod schema;
pub mod services;
pub mod store;
pub mod util;
