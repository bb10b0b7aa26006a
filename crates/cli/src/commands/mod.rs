//! The subcommands, each thin glue over the engine, and the output helpers they share:
//! aligned tables for people, JSON for scripts (`-json`), on stdout.

#[cfg(unix)]
pub mod control;
pub mod databases;
pub mod ltx;
pub mod replicate;
pub mod reset;
pub mod restore;
pub mod status;
pub mod version;

use serde_json::{Value, json};
use tideline_engine::FileInfo;

use crate::time::format_rfc3339;

/// Columns separated by two spaces and padded to the widest cell, like Go's
/// `tabwriter` in Litestream's listings.
pub fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.len()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let header: Vec<String> = headers.iter().map(|h| (*h).to_owned()).collect();
    for row in std::iter::once(&header).chain(rows) {
        let mut line = String::new();
        for (i, (cell, w)) in row.iter().zip(&widths).enumerate() {
            if i + 1 == row.len() {
                line.push_str(cell);
            } else {
                line.push_str(&format!("{cell:<w$}  "));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// Prints a JSON value, indented, on stdout.
pub fn print_json(value: &Value) {
    println!(
        "{}",
        serde_json::to_string_pretty(value).expect("JSON values always serialise")
    );
}

/// One LTX file as JSON (`ltx -json`, `restore -dry-run -json`).
pub fn file_json(f: &FileInfo) -> Value {
    json!({
        "level": f.level,
        "filename": f.filename(),
        "min_txid": f.min_txid.to_string(),
        "max_txid": f.max_txid.to_string(),
        "size": f.size,
        "created_at": format_rfc3339(f.created_at),
    })
}

/// One LTX file as a table row: level, min, max, size, created.
pub fn file_row(f: &FileInfo) -> Vec<String> {
    vec![
        f.level.to_string(),
        f.min_txid.to_string(),
        f.max_txid.to_string(),
        f.size.to_string(),
        format_rfc3339(f.created_at),
    ]
}

/// Headers matching [`file_row`].
pub const FILE_HEADERS: [&str; 5] = ["level", "min_txid", "max_txid", "size", "created"];

/// A byte count for people: `512 B`, `4.0 KiB`, `1.5 MiB`.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut value = n as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align_columns() {
        let out = table(
            &["level", "name"],
            &[
                vec!["0".into(), "a".into()],
                vec!["10".into(), "long-name".into()],
            ],
        );
        assert_eq!(out, "level  name\n0      a\n10     long-name\n");
    }

    #[test]
    fn byte_counts() {
        assert_eq!(human_bytes(0), "0 B");
        assert_eq!(human_bytes(1023), "1023 B");
        assert_eq!(human_bytes(4096), "4.0 KiB");
        assert_eq!(human_bytes(3 << 20 | 1 << 19), "3.5 MiB");
    }
}
