//! CRC-64/GO-ISO checksums: the file checksum and the database checksums.
//!
//! The algorithm is Go's `hash/crc64` with the `ISO` table: reflected polynomial
//! `0xD800000000000000`, init and xorout all ones (check value of `"123456789"` is
//! `0xB90956C775A41001`). It is *not* CRC-64/ECMA or XZ, whatever Litestream's own docs say.
//!
//! * **File checksum**: one running CRC over the header, each page's header (and size
//!   field), the page's *uncompressed* bytes, the end-of-pages header, the page index and
//!   the post-apply field of the trailer; stored with bit 63 set. Recompressing pages
//!   therefore leaves it unchanged, which lets the compactor copy blocks verbatim.
//! * **Database checksum**: XOR of per-page CRCs over `pgno ‖ page`, each with bit 63 set.
//!   Litestream 0.5 never writes it (files carry the NoChecksum flag) but the format
//!   defines it and we support it.

use crc_fast::{CrcAlgorithm, Digest};

use crate::header::CHECKSUM_FLAG;

/// A running file checksum.
#[derive(Clone)]
pub struct FileHasher(Digest);

impl std::fmt::Debug for FileHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileHasher").finish_non_exhaustive()
    }
}

impl Default for FileHasher {
    fn default() -> Self {
        Self::new()
    }
}

impl FileHasher {
    /// A hasher over no bytes yet.
    pub fn new() -> Self {
        FileHasher(Digest::new(CrcAlgorithm::Crc64GoIso))
    }

    /// Adds bytes.
    #[inline]
    pub fn update(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }

    /// The plain CRC-64/GO-ISO of the bytes so far (without bit 63 forced).
    pub fn crc(&self) -> u64 {
        self.0.finalize()
    }

    /// The checksum as stored in a trailer: the CRC with bit 63 set.
    pub fn file_checksum(&self) -> u64 {
        self.crc() | CHECKSUM_FLAG
    }
}

/// CRC-64/GO-ISO of `bytes`.
pub fn crc64(bytes: &[u8]) -> u64 {
    crc_fast::checksum(CrcAlgorithm::Crc64GoIso, bytes)
}

/// The checksum of one database page: CRC over the big-endian page number followed by
/// the page bytes, with bit 63 set.
pub fn page_checksum(pgno: u32, data: &[u8]) -> u64 {
    let mut d = Digest::new(CrcAlgorithm::Crc64GoIso);
    d.update(&pgno.to_be_bytes());
    d.update(data);
    d.finalize() | CHECKSUM_FLAG
}

/// A running database checksum: XOR of [`page_checksum`] over every page (except the
/// lock page), with bit 63 set. An empty database checksums to `1 << 63`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DatabaseChecksum(u64);

impl Default for DatabaseChecksum {
    fn default() -> Self {
        DatabaseChecksum(CHECKSUM_FLAG)
    }
}

impl DatabaseChecksum {
    /// The checksum of an empty database.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds (or, XOR being its own inverse, removes) one page.
    pub fn add_page(&mut self, pgno: u32, data: &[u8]) {
        self.0 = (self.0 ^ page_checksum(pgno, data)) | CHECKSUM_FLAG;
    }

    /// The checksum value.
    pub fn value(&self) -> u64 {
        self.0
    }
}

/// The database checksum of a whole database image laid out as consecutive pages,
/// skipping the lock page.
pub fn database_checksum(db: &[u8], page_size: u32) -> DatabaseChecksum {
    let lock = crate::header::lock_pgno(page_size);
    let mut sum = DatabaseChecksum::new();
    for (i, page) in db.chunks_exact(page_size as usize).enumerate() {
        let pgno = i as u32 + 1;
        if pgno != lock {
            sum.add_page(pgno, page);
        }
    }
    sum
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_value_is_go_iso() {
        assert_eq!(crc64(b"123456789"), 0xB909_56C7_75A4_1001);
        let mut h = FileHasher::new();
        h.update(b"1234");
        h.update(b"56789");
        assert_eq!(h.crc(), 0xB909_56C7_75A4_1001);
        assert_eq!(h.file_checksum(), 0xB909_56C7_75A4_1001 | CHECKSUM_FLAG);
    }

    #[test]
    fn database_checksum_is_order_free_and_self_inverse() {
        let a = [1u8; 512];
        let b = [2u8; 512];
        let mut x = DatabaseChecksum::new();
        x.add_page(1, &a);
        x.add_page(2, &b);
        let mut y = DatabaseChecksum::new();
        y.add_page(2, &b);
        y.add_page(1, &a);
        assert_eq!(x, y);
        assert_ne!(x, DatabaseChecksum::new());
        x.add_page(2, &b);
        x.add_page(1, &a);
        assert_eq!(x, DatabaseChecksum::new());
        let db: Vec<u8> = a.iter().chain(b.iter()).copied().collect();
        assert_eq!(database_checksum(&db, 512), y);
    }
}
