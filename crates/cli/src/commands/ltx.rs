//! `tideline ltx`: the LTX files of a database's replica (or of a replica URL), sorted
//! by level then TXID, with sizes and creation times, like `litestream ltx`.

use anyhow::{Context, Result};
use serde_json::Value;
use tideline_engine::SNAPSHOT_LEVEL;
use tideline_engine::list_levels;

use super::{FILE_HEADERS, file_json, file_row, print_json, table};
use crate::config::ConfigArgs;
use crate::source::resolve;

/// `ltx` flags.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub config: ConfigArgs,
    /// Level to list: 0 to 9, or "all"
    #[arg(long, default_value = "0", value_parser = parse_level, value_name = "N|all")]
    pub level: Level,
    /// Print JSON instead of a table
    #[arg(long)]
    pub json: bool,
    /// A database path from the config, or a replica URL (file:///…, s3://…)
    #[arg(value_name = "DB_PATH|REPLICA_URL")]
    pub target: String,
}

/// Which levels to list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// Every level, 0 to 9.
    All,
    /// One level.
    One(u8),
}

fn parse_level(s: &str) -> Result<Level, String> {
    if s.eq_ignore_ascii_case("all") {
        return Ok(Level::All);
    }
    match s.parse::<u8>() {
        Ok(n) if n <= SNAPSHOT_LEVEL => Ok(Level::One(n)),
        _ => Err(format!(
            "{s:?} is not a level; use 0 to {SNAPSHOT_LEVEL} (9 holds snapshots) or all"
        )),
    }
}

/// Lists the files.
pub async fn run(args: &Args) -> Result<()> {
    let source = resolve(&args.target, &args.config)?;
    let context = || format!("cannot list {}", source.replica);
    let mut files = match args.level {
        Level::All => list_levels(source.client.as_ref())
            .await
            .with_context(context)?
            .into_iter()
            .flatten()
            .collect(),
        Level::One(n) => source.client.list(n).await.with_context(context)?,
    };
    files.sort_by_key(|f| (f.level, f.min_txid, f.max_txid));
    if args.json {
        print_json(&Value::Array(files.iter().map(file_json).collect()));
    } else {
        let rows: Vec<Vec<String>> = files.iter().map(file_row).collect();
        print!("{}", table(&FILE_HEADERS, &rows));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels() {
        assert_eq!(parse_level("all"), Ok(Level::All));
        assert_eq!(parse_level("ALL"), Ok(Level::All));
        assert_eq!(parse_level("0"), Ok(Level::One(0)));
        assert_eq!(parse_level("9"), Ok(Level::One(9)));
        assert!(parse_level("10").is_err());
        assert!(parse_level("-1").is_err());
    }
}
