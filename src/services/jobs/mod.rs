//! Scheduled jobs (issue 10 item 4). Every agent with a ready replica of a
//! component evaluates its jobs' cron schedules ([`schedule`], pure) and,
//! for each tick that came due, the runs it would start ([`fire`], pure).
//! A run starts only after its record
//! `jobs/<project>/<component>/<job>/<tick>` was created by a
//! create-if-absent transaction ([`claim`]): the tick is named by its
//! scheduled time, so agents firing together, or with clocks a second
//! apart, name the same key and exactly one runs it. [`run`] does the exec
//! (and the backup file), [`record`] is the document `describe` shows,
//! [`manual`] serves `berth job run`.

pub mod claim;
pub mod fire;
pub mod manual;
pub mod record;
pub mod run;
pub mod runner;
pub mod schedule;

pub use record::{JobRun, RunPhase, Trigger};
pub use schedule::{Schedule, ScheduleError};
