//! Config templating with reload (issue 10 item 2): files rendered inside
//! containers from the endpoint lists of other components.
//!
//! Pure parts: [`template`] (parse check and strict render with minijinja),
//! [`context`] (what a template sees, built from endpoint documents),
//! [`debounce`] (when a burst of membership changes is rendered) and
//! [`change`] (whether a new rendering is written and reloaded). The effects
//! (writing into the container, reloading, reporting) are in the agent's
//! `configs` driver (`crate::services::node::configs`) and `berth endpoints watch`.

pub mod change;
pub mod context;
pub mod debounce;
pub mod template;

pub use change::{decide, Decision};
pub use context::{Context, EndpointView, SourceView};
pub use debounce::{settled, Debounce, DebounceConfig};
pub use template::{check, render, Error};
