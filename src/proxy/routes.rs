//! The route table: what the agent publishes (through a `tokio::sync::watch`)
//! and the proxy reconciles its listeners to.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use crate::resource::component::Protocol;
use crate::resource::ComponentKey;

/// Every external port this node's proxy owns. A port missing here is closed.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Routes {
    pub ports: BTreeMap<u16, Route>,
}

/// One external port of one component.
#[derive(Clone, Debug, PartialEq)]
pub struct Route {
    pub component: ComponentKey,
    pub protocol: Protocol,
    /// This node's ready containers of the component, on their published
    /// container port. Only these are counted, drained and shown per container.
    pub backends: Vec<Backend>,
    /// Used only when no local backend is ready (or left after failures):
    /// the forwarding listeners (`--address`:`--forward-port`) of peers that
    /// have a ready container of the component. What a peer receives there
    /// it serves locally and never forwards again, so forwarding cannot loop.
    pub remote: Vec<SocketAddr>,
}

/// One ready container behind a route.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Backend {
    /// Docker's container id: the key for counts and drains.
    pub container_id: String,
    pub addr: SocketAddr,
    /// The port inside the container: dialed in its network namespace,
    /// skipping docker-proxy (`dial.rs`). `None`: `addr` only.
    pub container_port: Option<u16>,
}

impl Route {
    pub fn new(component: ComponentKey, protocol: Protocol) -> Route {
        Route {
            component,
            protocol,
            backends: Vec::new(),
            remote: Vec::new(),
        }
    }
}
