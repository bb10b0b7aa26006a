//! The meta directory's layout: where, beside a watched database, capture keeps its
//! L0 files, the replicator lock, and the replicator's state files.
//!
//! Every path inside the meta directory the engine uses is computed here, so the
//! layout (shared with Litestream, which may take over the same directory) has one
//! home. The default location rule (`<dir>/.<file>-litestream`) is the config crate's
//! [`tideline_config::meta_path_for`], so a configured database and a bare one agree.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use tideline_ltx::{Txid, format_filename, parse_filename};

use crate::error::{Error, Result};

/// The lock file's name in a meta directory.
const LOCK_FILE: &str = "tideline.lock";
/// The shipped record's file name (what reached the replica; see `replicate`).
const SHIPPED_RECORD_FILE: &str = "tideline-shipped.json";
/// The request report's file name (a replicator's requests, for `tideline status`).
const REQUEST_REPORT_FILE: &str = "tideline-requests.json";

/// A database's meta directory, and the paths inside it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetaDir {
    root: PathBuf,
}

impl MetaDir {
    /// The meta directory at `root` (a configured `meta-path`, or one found earlier).
    pub fn new(root: impl Into<PathBuf>) -> MetaDir {
        MetaDir { root: root.into() }
    }

    /// The default meta directory of `db`: `<dir>/.<file>-litestream`.
    pub(crate) fn default_for(db: &Path) -> MetaDir {
        MetaDir::new(tideline_config::meta_path_for(db))
    }

    /// `configured` if given, else the default meta directory of `db`.
    pub fn of(db: &Path, configured: Option<&Path>) -> MetaDir {
        configured.map_or_else(|| MetaDir::default_for(db), MetaDir::new)
    }

    /// The directory itself.
    pub fn path(&self) -> &Path {
        &self.root
    }

    /// `ltx/`: the levels' local copies, and temporaries of compactions and snapshots.
    pub(crate) fn ltx_dir(&self) -> PathBuf {
        self.root.join("ltx")
    }

    /// `ltx/0/`: the L0 files capture writes (the newest one is the position).
    pub fn l0_dir(&self) -> PathBuf {
        self.ltx_dir().join("0")
    }

    /// The L0 file of `txid` in `ltx/0/` (local L0 files hold a single TXID).
    pub(crate) fn l0_file(&self, txid: Txid) -> PathBuf {
        l0_file_in(&self.l0_dir(), txid)
    }

    /// Where the L0 file of `txid` is written before it is renamed into place (a
    /// crash leaves it behind; [`MetaDir::remove_tmp_files`] clears it).
    pub(crate) fn l0_tmp_file(&self, txid: Txid) -> PathBuf {
        self.l0_dir()
            .join(format!("{}.tmp", format_filename(txid, txid)))
    }

    /// The replicator lock file.
    pub(crate) fn lock_file(&self) -> PathBuf {
        self.root.join(LOCK_FILE)
    }

    /// The shipped record: what this machine knows reached the replica.
    pub(crate) fn shipped_record(&self) -> PathBuf {
        self.root.join(SHIPPED_RECORD_FILE)
    }

    /// The request report a replicator keeps for `tideline status`.
    pub(crate) fn request_report(&self) -> PathBuf {
        self.root.join(REQUEST_REPORT_FILE)
    }

    /// The local L0 files, oldest first (see [`list_l0`]).
    pub fn list_l0(&self) -> Result<Vec<(Txid, PathBuf)>> {
        list_l0(&self.l0_dir())
    }

    /// Creates the directory down to `ltx/0/`.
    pub fn create(&self) -> Result<()> {
        let l0_dir = self.l0_dir();
        fs::create_dir_all(&l0_dir).map_err(Error::io("create meta directory", &l0_dir))
    }

    /// Removes the temporaries a crash leaves: of L0 files (in `ltx/0/`), of
    /// compactions and snapshots (in `ltx/`) and of state files (in the directory
    /// itself).
    pub(crate) fn remove_tmp_files(&self) -> Result<()> {
        for dir in [self.l0_dir(), self.ltx_dir(), self.root.clone()] {
            remove_tmp_files(&dir)?;
        }
        Ok(())
    }
}

/// The default meta directory of `db`: `<dir>/.<file>-litestream`.
pub fn default_meta_dir(db: &Path) -> PathBuf {
    MetaDir::default_for(db).root
}

/// The L0 file of `txid` in the L0 folder `l0_dir`.
pub(super) fn l0_file_in(l0_dir: &Path, txid: Txid) -> PathBuf {
    l0_dir.join(format_filename(txid, txid))
}

/// The L0 files in a meta directory's `ltx/0` folder (`l0_dir`), oldest first, as
/// `(TXID, path)`; a missing folder holds none. Only single-TXID names count: local
/// L0 files always are.
pub fn list_l0(l0_dir: &Path) -> Result<Vec<(Txid, PathBuf)>> {
    let rd = match fs::read_dir(l0_dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io("list", l0_dir)(e)),
    };
    let mut out = Vec::new();
    for e in rd {
        let e = e.map_err(Error::io("list", l0_dir))?;
        if let Some((min, max)) = e.file_name().to_str().and_then(parse_filename)
            && min == max
        {
            out.push((max, e.path()));
        }
    }
    out.sort();
    Ok(out)
}

fn remove_tmp_files(dir: &Path) -> Result<()> {
    for e in fs::read_dir(dir).map_err(Error::io("list", dir))? {
        let e = e.map_err(Error::io("list", dir))?;
        if e.file_name().to_string_lossy().ends_with(".tmp") {
            let _ = fs::remove_file(e.path());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout() {
        let m = MetaDir::default_for(Path::new("/data/app.db"));
        assert_eq!(m.path(), Path::new("/data/.app.db-litestream"));
        assert_eq!(m.l0_dir(), Path::new("/data/.app.db-litestream/ltx/0"));
        assert_eq!(
            m.l0_file(Txid(3)),
            m.l0_dir().join(format_filename(Txid(3), Txid(3)))
        );
        assert_eq!(m.lock_file(), m.path().join("tideline.lock"));
        assert_eq!(m.shipped_record(), m.path().join("tideline-shipped.json"));
        assert_eq!(m.request_report(), m.path().join("tideline-requests.json"));
        let c = MetaDir::of(Path::new("/data/app.db"), Some(Path::new("/m")));
        assert_eq!(c.ltx_dir(), Path::new("/m/ltx"));
        assert_eq!(
            default_meta_dir(Path::new("app.db")),
            Path::new(".app.db-litestream")
        );
    }
}
