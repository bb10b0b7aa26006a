//! The LTX crate's tests, in one binary: encode/decode round trips, property tests, and
//! byte compatibility with the real Litestream 0.5.17.

mod codec;
mod common;
mod litestream_compat;
mod proptests;
