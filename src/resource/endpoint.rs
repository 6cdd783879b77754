//! The endpoint document: one ready, not draining container with ports, as
//! its agent announces it (`endpoints/<project>/<component>/<node>/<container>`,
//! bound to the agent's lease). Peers read these to forward traffic to a node
//! that has a ready replica; `berth get endpoints` lists them.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::component::Protocol;

#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Endpoint {
    pub project: String,
    pub component: String,
    pub node: String,
    /// Docker's container id.
    pub container: String,
    /// Where the node's proxy takes forwarded connections (`--address` and
    /// `--forward-port`); `None` when the agent advertises no address, so
    /// peers cannot forward to it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forward: Option<String>,
    /// The container's ports, each with its published host port.
    #[serde(default)]
    pub ports: Vec<EndpointPort>,
}

#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct EndpointPort {
    /// Port the container listens on.
    pub container: u16,
    /// Published port on the node's 127.0.0.1.
    pub host: u16,
    /// The component's external port for it, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external: Option<u16>,
    #[serde(default)]
    pub protocol: Protocol,
}
