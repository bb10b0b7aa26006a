//! RFC 3339 timestamps for `-timestamp` and printed times: the engine's, which S3
//! object metadata (`litestream-timestamp`) uses too.

pub use tideline_engine::{format_rfc3339, parse_rfc3339};
