//! Compaction levels: what to merge into level *n* (a pure function of the listing,
//! the time and the level's window) and merging it (a streaming k-way merge through
//! the LTX compactor into a temporary file, then one upload).
//!
//! Litestream 0.5's rules, kept exactly so either tool can take over the other's
//! replica:
//!
//! * Level *n* (1..=8) runs once per wall-clock-aligned window of its interval
//!   (`now` truncated to a multiple of the interval since the Unix epoch: L1 at :00 and
//!   :30 of every minute with the default 30 s). It is skipped if its newest file was
//!   created at or after the start of the current window ("too early"), which also
//!   makes a restart inside a window harmless.
//! * Inputs are the files of level *n − 1* after the newest file of level *n*, in TXID
//!   order, as long as each continues the previous one (`min ≤ prev + 1`,
//!   `max > prev`).
//! * The output is named `<first min>-<last max>`, holds the newest version of each
//!   page up to the last input's commit size, and carries the last input's header
//!   timestamp, which is also its creation time (point-in-time restore reads it).
//!
//! Cheaper than Litestream where it can be: local L0 copies in the meta directory are
//! read instead of downloads; memory is a 64 KiB read buffer plus one page and one
//! compressed block per input ([`tideline_ltx::compact`] copies LZ4 blocks verbatim, no
//! recompression); the output goes to a temporary file so a failed upload is retried
//! from the same bytes and a listing never shows a partial file.

use std::fs::File;
use std::io::{BufReader, BufWriter, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use tideline_ltx::{CompactOptions, Decoder, Txid};

use crate::error::{Error, Result};
use crate::storage::{FileInfo, ReplicaClient};

/// Start of the wall-clock window of `interval` that contains `now` (Go's
/// `now.Truncate(interval)`). A zero interval has no windows: `now` itself.
pub fn window_start(now: SystemTime, interval: Duration) -> SystemTime {
    let since = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    let iv = interval.as_nanos();
    if iv == 0 {
        return now;
    }
    let start = since.as_nanos() - since.as_nanos() % iv;
    SystemTime::UNIX_EPOCH + nanos(start)
}

/// Start of the window after the one containing `now`.
pub fn next_window(now: SystemTime, interval: Duration) -> SystemTime {
    window_start(now, interval) + interval.max(Duration::from_millis(1))
}

fn nanos(n: u128) -> Duration {
    Duration::new((n / 1_000_000_000) as u64, (n % 1_000_000_000) as u32)
}

/// True if a level with this `interval`, whose newest file was created at
/// `newest_created` and which last ran in the window starting `last_window`, should
/// run now: once per window, and never in a window its newest file already belongs to.
pub fn level_due(
    last_window: Option<SystemTime>,
    newest_created: Option<SystemTime>,
    now: SystemTime,
    interval: Duration,
) -> bool {
    let ws = window_start(now, interval);
    last_window.is_none_or(|w| w < ws) && newest_created.is_none_or(|c| c < ws)
}

/// Why a level cannot be compacted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CompactionError {
    /// The source level does not continue the destination level.
    #[error(
        "level {level} cannot be compacted: it reaches TXID {have} but the next file of level {src} starts at {next}; the replica is missing files (check `tideline ltx -level all`); a restart re-reads the replica"
    )]
    Gap {
        /// The destination level.
        level: u8,
        /// The source level.
        src: u8,
        /// The TXID the destination reaches.
        have: Txid,
        /// Where the next source file starts.
        next: Txid,
    },
}

/// The files of level `level - 1` (`src`, sorted by TXID) to merge into the next file
/// of `level` (`dst`, sorted), oldest first; empty if there is nothing new.
pub fn plan_inputs(
    level: u8,
    src: &[FileInfo],
    dst: &[FileInfo],
) -> Result<Vec<FileInfo>, CompactionError> {
    let after = dst.last().map(|f| f.max_txid);
    let mut prev = after;
    let mut out = Vec::new();
    for f in src {
        match prev {
            Some(p) if f.max_txid <= p => continue, // already in `level`, or covered
            Some(p) if f.min_txid.0 > p.0 + 1 => {
                if out.is_empty() {
                    return Err(CompactionError::Gap {
                        level,
                        src: level - 1,
                        have: p,
                        next: f.min_txid,
                    });
                }
                // Take the contiguous part now; the gap is reported on the next run
                // if it is still there.
                break;
            }
            _ => {}
        }
        prev = Some(f.max_txid);
        out.push(f.clone());
    }
    Ok(out)
}

/// What one compaction did.
#[derive(Debug, Clone)]
pub struct Compacted {
    /// The file written.
    pub output: FileInfo,
    /// The files merged, oldest first.
    pub inputs: Vec<FileInfo>,
    /// Bytes read from the inputs.
    pub bytes_in: u64,
    /// Inputs read from local L0 copies instead of the replica.
    pub local_inputs: usize,
    /// Pages in the output.
    pub pages: u32,
    /// Wall time, merge and upload.
    pub duration: Duration,
}

/// Merges `inputs` (oldest first) into level `level` of `client`: reads each from
/// `local_dir/<name>` when that local copy exists (files are kept in the meta
/// directory until compacted into the next level), else from the replica; writes the
/// merge to a temporary file in `tmp_dir` and uploads it; then moves it to
/// `keep_in/<name>` as the local copy the next level will read, or removes it.
pub async fn compact_files(
    client: &Arc<dyn ReplicaClient>,
    level: u8,
    inputs: Vec<FileInfo>,
    local_dir: Option<&Path>,
    tmp_dir: &Path,
    keep_in: Option<&Path>,
) -> Result<Compacted> {
    let started = Instant::now();
    let (Some(first), Some(last)) = (inputs.first(), inputs.last()) else {
        return Err(Error::Internal("compaction of no files".into()));
    };
    let (min, max) = (first.min_txid, last.max_txid);
    let name = tideline_ltx::format_filename(min, max);
    std::fs::create_dir_all(tmp_dir).map_err(Error::io("create", tmp_dir))?;
    let tmp = tmp_dir.join(format!("compact-{level}-{name}.tmp"));
    let job = {
        let client = Arc::clone(client);
        let inputs = inputs.clone();
        let local_dir = local_dir.map(Path::to_owned);
        let tmp = tmp.clone();
        let name = name.clone();
        move || merge_to_file(client, &inputs, local_dir.as_deref(), &tmp, &name)
    };
    let merged = crate::blocking::blocking("compaction", job).await;
    let (stats, local_inputs) = match merged {
        Ok(x) => x,
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            return Err(e);
        }
    };
    // The creation time is the header timestamp, as Litestream sets it.
    let created_at =
        SystemTime::UNIX_EPOCH + Duration::from_millis(stats.header.timestamp.max(0) as u64);
    let written = client.write(level, min, max, created_at, &tmp).await;
    let kept = match (&written, keep_in) {
        (Ok(_), Some(dir)) => std::fs::create_dir_all(dir)
            .and_then(|_| std::fs::rename(&tmp, dir.join(&name)))
            .is_ok(),
        _ => false,
    };
    if !kept {
        let _ = std::fs::remove_file(&tmp);
    }
    let output = written?;
    crate::failpoint::hit("compaction-uploaded");
    Ok(Compacted {
        output,
        bytes_in: inputs.iter().map(|f| f.size).sum(),
        inputs,
        local_inputs,
        pages: stats.pages,
        duration: started.elapsed(),
    })
}

/// The blocking half of [`compact_files`].
fn merge_to_file(
    client: Arc<dyn ReplicaClient>,
    inputs: &[FileInfo],
    local_dir: Option<&Path>,
    tmp: &Path,
    name: &str,
) -> Result<(tideline_ltx::CompactStats, usize)> {
    let ltx_err = |what: String| move |source| Error::Ltx { name: what, source };
    let mut decoders = Vec::with_capacity(inputs.len());
    let mut local = 0;
    for f in inputs {
        // A local copy counts only if it has the listed size: a copy left from an
        // earlier replica (reset, or written by another tool) must not be merged.
        let local_path: Option<PathBuf> = local_dir
            .map(|d| d.join(f.filename()))
            .filter(|p| std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.len() == f.size));
        let (what, reader): (String, Box<dyn Read + Send>) = match local_path {
            Some(p) => {
                local += 1;
                let file = File::open(&p).map_err(Error::io("open", &p))?;
                (
                    p.display().to_string(),
                    Box::new(BufReader::with_capacity(64 * 1024, file)),
                )
            }
            None => (
                format!("{} level {} {}", client.describe(), f.level, f.filename()),
                Box::new(BufReader::with_capacity(64 * 1024, client.open(f)?)),
            ),
        };
        decoders.push(Decoder::new(reader).map_err(ltx_err(what))?);
    }
    let out = File::create(tmp).map_err(Error::io("create", tmp))?;
    let (w, stats) = tideline_ltx::compact(
        decoders,
        BufWriter::with_capacity(256 * 1024, out),
        CompactOptions::default(),
    )
    .map_err(ltx_err(name.to_owned()))?;
    let file = w
        .into_inner()
        .map_err(|e| Error::io("write", tmp)(e.into_error()))?;
    file.sync_all().map_err(Error::io("fsync", tmp))?;
    Ok((stats, local))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(level: u8, min: u64, max: u64) -> FileInfo {
        FileInfo {
            level,
            min_txid: Txid(min),
            max_txid: Txid(max),
            size: 10,
            created_at: SystemTime::UNIX_EPOCH,
        }
    }

    fn at(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
    }

    #[test]
    fn windows_are_wall_clock_aligned() {
        let iv = Duration::from_secs(30);
        assert_eq!(window_start(at(1_000_000_037), iv), at(1_000_000_020));
        assert_eq!(window_start(at(1_000_000_050), iv), at(1_000_000_050));
        assert_eq!(next_window(at(1_000_000_037), iv), at(1_000_000_050));
        let hour = Duration::from_secs(3600);
        assert_eq!(window_start(at(7200 + 3599), hour), at(7200));
        let ms = SystemTime::UNIX_EPOCH + Duration::from_millis(61_500);
        assert_eq!(window_start(ms, Duration::from_secs(1)), at(61));
    }

    #[test]
    fn a_level_runs_once_per_window() {
        let iv = Duration::from_secs(30);
        assert!(level_due(None, None, at(100), iv));
        // Ran in this window already.
        assert!(!level_due(Some(at(90)), None, at(100), iv));
        assert!(level_due(Some(at(90)), None, at(120), iv));
        // Newest file created inside the current window (e.g. before a restart).
        assert!(!level_due(None, Some(at(95)), at(100), iv));
        assert!(level_due(None, Some(at(89)), at(100), iv));
    }

    #[test]
    fn inputs_continue_the_destination() {
        let l0: Vec<_> = (1..=6).map(|t| f(0, t, t)).collect();
        assert_eq!(plan_inputs(1, &l0, &[]).unwrap(), l0);
        let l1 = vec![f(1, 1, 3)];
        assert_eq!(plan_inputs(1, &l0, &l1).unwrap(), l0[3..].to_vec());
        assert!(plan_inputs(1, &l0, &[f(1, 1, 6)]).unwrap().is_empty());
        // Overlapping source files (a snapshot-like L1 1-8 beside 1-1) are fine.
        let src = vec![f(1, 1, 1), f(1, 2, 8), f(1, 9, 10)];
        assert_eq!(plan_inputs(2, &src, &[]).unwrap(), src);
        assert_eq!(
            plan_inputs(2, &src, &[f(2, 1, 8)]).unwrap(),
            vec![f(1, 9, 10)]
        );
    }

    #[test]
    fn gaps_stop_the_inputs() {
        let l0 = vec![f(0, 4, 4), f(0, 5, 5), f(0, 7, 7)];
        assert_eq!(
            plan_inputs(1, &l0, &[f(1, 1, 3)]).unwrap(),
            l0[..2].to_vec()
        );
        assert_eq!(
            plan_inputs(1, &l0[2..], &[f(1, 1, 5)]),
            Err(CompactionError::Gap {
                level: 1,
                src: 0,
                have: Txid(5),
                next: Txid(7)
            })
        );
    }
}
