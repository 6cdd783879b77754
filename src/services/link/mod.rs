//! Component links (issue 10 item 1), gantryd's links done by the agents.
//!
//! [`resolve`] (pure) finds which component defines a required link and on
//! which container port; [`env`] (pure) is the consumer's variables. The
//! relay that makes the address real inside the consumer's container is
//! [`relay`] (effects: a listener in the container's network namespace).

pub mod check;
pub mod env;
pub mod relay;
pub mod resolve;

pub use env::{default_alias, env, LINK_ADDR};
pub use resolve::{resolve, Resolved};
