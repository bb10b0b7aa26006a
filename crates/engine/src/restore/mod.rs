//! Point-in-time restore: choosing the files ([`plan`]) and writing the database from
//! them ([`apply`]).
pub mod apply;
pub mod plan;

pub use apply::{IntegrityCheck, Restored, apply, check_integrity};
pub use plan::{PlanError, Target, plan};
