//! Writing a database from the files of a plan.
//!
//! The files are merged by page number (newest wins) through the LTX merger and
//! written sequentially to `<out>.tmp`; every input's checksum is verified before the
//! temporary file is synced, so a corrupt replica file never produces an output. How
//! the temporary file is checked and put in place is [`output`](super::output)'s
//! business. Memory is one page and one block per input plus the write buffer,
//! whatever the database size.

use std::fs::OpenOptions;
use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use tideline_ltx::{Decoder, Merger, Txid};

use super::output::{IntegrityCheck, Overwrite, RestoreOptions, stage};
use crate::error::{Error, Result};

const WRITE_BUFFER: usize = 1 << 20;

/// What a restore wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Restored {
    /// The TXID the database is at.
    pub txid: Txid,
    /// Page size.
    pub page_size: u32,
    /// Pages written (the database size in pages).
    pub pages: u32,
    /// Bytes written.
    pub bytes: u64,
}

/// The temporary path a restore writes before renaming: `<out>.tmp`.
pub fn temp_path(out: &Path) -> PathBuf {
    let mut s = out.as_os_str().to_owned();
    s.push(".tmp");
    PathBuf::from(s)
}

/// Merges `inputs` (`(name, reader)` pairs, in plan order) into a database at `out`,
/// replacing whatever is there ([`Overwrite::Replace`], no integrity check): the same
/// path as every other restore, see [`output`](super::output). On any error nothing is
/// left behind and the old output is untouched.
pub fn apply<R: Read>(inputs: Vec<(String, R)>, out: &Path) -> Result<Restored> {
    stage(
        inputs,
        out,
        RestoreOptions::new(Overwrite::Replace, IntegrityCheck::None),
    )?
    .install()
}

pub(crate) fn write_merged<R: Read>(inputs: Vec<(String, R)>, tmp: &Path) -> Result<Restored> {
    let names: Vec<String> = inputs.iter().map(|(n, _)| n.clone()).collect();
    let decoders = inputs
        .into_iter()
        .map(|(name, r)| Decoder::new(r).map_err(|source| Error::Ltx { name, source }))
        .collect::<Result<Vec<_>>>()?;
    // A merge error names no file; report the plan so the user knows where to look.
    let merge_err = |source| Error::Ltx {
        name: names.join(" + "),
        source,
    };
    let mut merger = Merger::new(decoders).map_err(merge_err)?;
    let h = *merger.header();
    if !h.is_snapshot() {
        return Err(Error::IncompleteRestore(format!(
            "the first file starts at TXID {}, not at 1 (a snapshot)",
            h.min_txid
        )));
    }
    let file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(tmp)
        .map_err(Error::io("create", tmp))?;
    let mut w = BufWriter::with_capacity(WRITE_BUFFER, file);
    let ps = h.page_size as usize;
    let lock = h.lock_pgno();
    let zeros = vec![0u8; ps];
    let mut next = 1u32;
    while let Some((pgno, data)) = merger.next_page().map_err(merge_err)? {
        while next < pgno {
            if next != lock {
                return Err(Error::IncompleteRestore(format!(
                    "no file holds page {next} of the {}-page database",
                    h.commit
                )));
            }
            // The lock page is never stored; SQLite expects it to exist, unused.
            w.write_all(&zeros).map_err(Error::io("write", tmp))?;
            next += 1;
        }
        w.write_all(data).map_err(Error::io("write", tmp))?;
        next = pgno + 1;
    }
    if next <= h.commit {
        return Err(Error::IncompleteRestore(format!(
            "pages {next}..={} of the database are in no file",
            h.commit
        )));
    }
    let file = w.into_inner().map_err(|e| Error::Io {
        op: "write",
        path: tmp.to_owned(),
        source: e.into_error(),
    })?;
    file.sync_all().map_err(Error::io("fsync", tmp))?;
    Ok(Restored {
        txid: h.max_txid,
        page_size: h.page_size,
        pages: h.commit,
        bytes: u64::from(h.commit) * ps as u64,
    })
}

/// Makes a rename durable by syncing the directory that holds it (a no-op where
/// directories cannot be opened, as on Windows).
pub(crate) fn sync_parent(path: &Path) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    crate::storage::durable::sync_dir(dir).map_err(Error::io("fsync directory", dir))
}
