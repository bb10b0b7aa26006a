//! End-to-end suites live in `tests/`: tideline's engine and command against the real
//! Litestream 0.5.17 binary and real SQLite databases. This library is empty.
