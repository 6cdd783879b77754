//! Leader roles (issue 10 item 3): one ready replica of a component with
//! `roles.elect` leads. Each agent with a ready replica campaigns by creating
//! `roles/<project>/<component>/leader` (create-if-absent) on its own lease;
//! the key's create revision is the term. [`decide`] is the pure part,
//! [`cache`] the watched leader keys, [`elector`] the etcd and Docker
//! effects, [`runner`] the loop.

pub mod cache;
pub mod decide;
pub mod elector;
pub mod runner;

pub use cache::LeaderCache;
pub use decide::{Elected, LeaderRecord, Role};
pub use elector::{ElectError, Elector, Leaders, ROLE_FILE};
