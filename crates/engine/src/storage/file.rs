//! A folder replica in Litestream's exact layout: `<root>/ltx/<level>/<min>-<max>.ltx`,
//! level in decimal. Files are written as `<name>.tmp`, fsynced, given the header
//! timestamp as mtime (restores by time read it), renamed, and the directory fsynced.

use std::fs::{self, File};
use std::io::{self, Read};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::SystemTime;

use tideline_ltx::{Txid, format_filename, parse_filename};

use super::{FileInfo, ReplicaClient, ReplicaError, ReplicaResult, check_level};

/// A replica in a local (or mounted) folder.
#[derive(Debug, Clone)]
pub struct FileReplica {
    root: PathBuf,
    /// Set once the root was seen to exist: from then on a missing root is an error,
    /// never created again, so that a drive unmounted under a running replicator does
    /// not get a new, partial backup written onto its empty mount point.
    seen_root: Arc<AtomicBool>,
    /// Set once `<root>/ltx` was seen: from then on it is never created again either,
    /// so that a file system mounted over the root (which hides the backup and looks
    /// empty) does not get a partial chain written onto it.
    seen_ltx: Arc<AtomicBool>,
}

impl FileReplica {
    /// A replica rooted at `root` (created on the first write if it does not exist
    /// then; once seen, never recreated).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        FileReplica {
            root: root.into(),
            seen_root: Arc::default(),
            seen_ltx: Arc::default(),
        }
    }

    /// Creates the root on the first write; refuses if it was seen and is now gone
    /// (unless a new backup was started since).
    fn ensure_root(&self) -> ReplicaResult<()> {
        if self.root.is_dir() {
            self.seen_root.store(true, Ordering::Relaxed);
            return Ok(());
        }
        if self.seen_root.load(Ordering::Relaxed) {
            return Err(ReplicaError::Missing {
                replica: self.describe(),
                what: format!("the folder {} is gone", self.root.display()),
            });
        }
        fs::create_dir_all(&self.root).map_err(self.err("create directory", &self.root))?;
        self.seen_root.store(true, Ordering::Relaxed);
        Ok(())
    }

    /// The replica's root folder.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn level_dir(&self, level: u8) -> PathBuf {
        self.root.join("ltx").join(level.to_string())
    }

    fn path(&self, level: u8, min: Txid, max: Txid) -> PathBuf {
        self.level_dir(level).join(format_filename(min, max))
    }

    fn err(&self, op: &'static str, path: &Path) -> impl FnOnce(io::Error) -> ReplicaError {
        let replica = self.describe();
        let path = path.display().to_string();
        move |source| ReplicaError::Io {
            replica,
            op,
            path,
            source,
        }
    }

    fn list_blocking(&self, level: u8) -> ReplicaResult<Vec<FileInfo>> {
        if self.root.is_dir() {
            self.seen_root.store(true, Ordering::Relaxed);
        }
        if self.root.join("ltx").is_dir() {
            self.seen_ltx.store(true, Ordering::Relaxed);
        }
        let dir = self.level_dir(level);
        let rd = match fs::read_dir(&dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(self.err("list", &dir)(e)),
        };
        let mut out = Vec::new();
        for entry in rd {
            let entry = entry.map_err(self.err("list", &dir))?;
            let Some((min, max)) = entry.file_name().to_str().and_then(parse_filename) else {
                continue;
            };
            let md = match entry.metadata() {
                Ok(md) => md,
                // Deleted between the listing and the stat: not there any more.
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(self.err("stat", &entry.path())(e)),
            };
            if !md.is_file() {
                continue;
            }
            out.push(FileInfo {
                level,
                min_txid: min,
                max_txid: max,
                size: md.len(),
                created_at: md.modified().map_err(self.err("stat", &entry.path()))?,
            });
        }
        out.sort_by_key(|f| (f.min_txid, f.max_txid));
        Ok(out)
    }

    fn write_blocking(
        &self,
        level: u8,
        min: Txid,
        max: Txid,
        created_at: SystemTime,
        src: &Path,
    ) -> ReplicaResult<FileInfo> {
        self.ensure_root()?;
        let ltx = self.root.join("ltx");
        if self.seen_ltx.load(Ordering::Relaxed) && !ltx.is_dir() {
            return Err(ReplicaError::Missing {
                replica: self.describe(),
                what: format!(
                    "the folder {} is gone (emptied, or another file system mounted over {})",
                    ltx.display(),
                    self.root.display()
                ),
            });
        }
        let dir = self.level_dir(level);
        fs::create_dir_all(&dir).map_err(self.err("create directory", &dir))?;
        let dst = self.path(level, min, max);
        let tmp = dst.with_extension("ltx.tmp");
        let result = (|| {
            fs::copy(src, &tmp).map_err(self.err("copy to", &tmp))?;
            let f = File::options()
                .write(true)
                .open(&tmp)
                .map_err(self.err("open", &tmp))?;
            f.sync_all().map_err(self.err("fsync", &tmp))?;
            f.set_modified(created_at)
                .map_err(self.err("set mtime of", &tmp))?;
            let size = f.metadata().map_err(self.err("stat", &tmp))?.len();
            drop(f);
            fs::rename(&tmp, &dst).map_err(self.err("rename to", &dst))?;
            if let Ok(d) = File::open(&dir) {
                d.sync_all().map_err(self.err("fsync", &dir))?;
            }
            Ok(FileInfo {
                level,
                min_txid: min,
                max_txid: max,
                size,
                created_at,
            })
        })();
        match &result {
            Ok(_) => self.seen_ltx.store(true, Ordering::Relaxed),
            Err(_) => {
                let _ = fs::remove_file(&tmp);
            }
        }
        result
    }

    fn open_file(&self, file: &FileInfo) -> ReplicaResult<File> {
        let path = self.path(file.level, file.min_txid, file.max_txid);
        File::open(&path).map_err(|e| {
            if e.kind() == io::ErrorKind::NotFound {
                ReplicaError::NotFound {
                    replica: self.describe(),
                    level: file.level,
                    name: file.filename(),
                }
            } else {
                self.err("open", &path)(e)
            }
        })
    }
}

/// Runs blocking file-system work off the async threads.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> ReplicaResult<T> + Send + 'static,
) -> ReplicaResult<T> {
    crate::blocking::blocking("file replica", f).await
}

#[async_trait::async_trait]
impl ReplicaClient for FileReplica {
    fn describe(&self) -> String {
        format!("file://{}", self.root.display())
    }

    fn start_new_backup(&self) {
        self.seen_root.store(false, Ordering::Relaxed);
        self.seen_ltx.store(false, Ordering::Relaxed);
    }

    async fn list(&self, level: u8) -> ReplicaResult<Vec<FileInfo>> {
        check_level(level)?;
        let this = self.clone();
        blocking(move || this.list_blocking(level)).await
    }

    async fn read_range(&self, file: &FileInfo, range: Range<u64>) -> ReplicaResult<Vec<u8>> {
        let this = self.clone();
        let file = file.clone();
        blocking(move || {
            use std::io::{Seek, SeekFrom};
            let mut f = this.open_file(&file)?;
            let path = this.path(file.level, file.min_txid, file.max_txid);
            let len = f.metadata().map_err(this.err("stat", &path))?.len();
            let (start, end) = (range.start.min(len), range.end.min(len));
            let mut buf = vec![0u8; (end.saturating_sub(start)) as usize];
            f.seek(SeekFrom::Start(start))
                .map_err(this.err("seek", &path))?;
            f.read_exact(&mut buf).map_err(this.err("read", &path))?;
            Ok(buf)
        })
        .await
    }

    fn open(&self, file: &FileInfo) -> ReplicaResult<Box<dyn Read + Send>> {
        Ok(Box::new(io::BufReader::with_capacity(
            256 * 1024,
            self.open_file(file)?,
        )))
    }

    async fn write(
        &self,
        level: u8,
        min: Txid,
        max: Txid,
        created_at: SystemTime,
        src: &Path,
    ) -> ReplicaResult<FileInfo> {
        check_level(level)?;
        let this = self.clone();
        let src = src.to_owned();
        blocking(move || this.write_blocking(level, min, max, created_at, &src)).await
    }

    async fn delete(&self, files: &[FileInfo]) -> ReplicaResult<()> {
        let this = self.clone();
        let files = files.to_vec();
        blocking(move || {
            for f in &files {
                let path = this.path(f.level, f.min_txid, f.max_txid);
                match fs::remove_file(&path) {
                    Ok(()) => {}
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => return Err(this.err("delete", &path)(e)),
                }
            }
            Ok(())
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A file system mounted over the root hides `ltx/`: the replica must not write a
    /// partial chain onto it, until a new backup is started on purpose.
    #[test]
    fn a_root_that_lost_its_ltx_folder_is_not_written() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("src.ltx");
        fs::write(&src, b"ltx bytes").unwrap();
        let r = FileReplica::new(dir.path().join("replica"));
        let now = SystemTime::now();
        r.write_blocking(0, Txid(1), Txid(1), now, &src).unwrap();
        // What a mount over the root looks like: the root is there, empty.
        fs::remove_dir_all(dir.path().join("replica/ltx")).unwrap();
        let e = r
            .write_blocking(0, Txid(2), Txid(2), now, &src)
            .unwrap_err();
        assert!(matches!(e, ReplicaError::Missing { .. }), "{e}");
        assert!(!dir.path().join("replica/ltx").exists());
        r.start_new_backup();
        r.write_blocking(0, Txid(1), Txid(1), now, &src).unwrap();
    }
}
