//! The 100-byte LTX header, transaction IDs and file names.
//!
//! | off | size | field |
//! |----:|----:|---|
//! | 0 | 4 | magic `LTX1` |
//! | 4 | 4 | flags (only `0x2`, NoChecksum, is defined) |
//! | 8 | 4 | page size, a power of two in 512..=65536 |
//! | 12 | 4 | commit: database size in pages after applying the file |
//! | 16 | 8 | min TXID |
//! | 24 | 8 | max TXID |
//! | 32 | 8 | timestamp, ms since the Unix epoch (signed) |
//! | 40 | 8 | pre-apply database checksum |
//! | 48 | 8 | WAL offset of the first frame covered |
//! | 56 | 8 | WAL bytes covered |
//! | 64 | 4 | WAL salt-1 |
//! | 68 | 4 | WAL salt-2 |
//! | 72 | 8 | node ID |
//! | 80 | 20 | reserved, zero |
//!
//! All integers are big-endian. There is no version field: v3 files are told apart from
//! older ones per page (see [`crate::page`]).

use std::fmt;
use std::str::FromStr;

use crate::error::{Error, Result};

/// The first four bytes of every LTX file.
pub const MAGIC: [u8; 4] = *b"LTX1";
/// Size of the header in bytes.
pub const HEADER_SIZE: usize = 100;
/// Header flag: the file carries no database checksums (Litestream 0.5 always sets it).
pub const FLAG_NO_CHECKSUM: u32 = 0x0000_0002;
/// All header flags this version understands.
pub const FLAG_MASK: u32 = FLAG_NO_CHECKSUM;
/// Smallest SQLite page size.
pub const MIN_PAGE_SIZE: u32 = 512;
/// Largest SQLite page size.
pub const MAX_PAGE_SIZE: u32 = 65536;
/// Bit 63, set in every stored checksum so that a valid checksum is never zero.
pub const CHECKSUM_FLAG: u64 = 1 << 63;
/// Byte offset of SQLite's lock ("pending byte") page.
pub const PENDING_BYTE: u64 = 0x4000_0000;

/// True if `size` is a valid SQLite page size.
pub fn is_valid_page_size(size: u32) -> bool {
    (MIN_PAGE_SIZE..=MAX_PAGE_SIZE).contains(&size) && size.is_power_of_two()
}

/// The page that holds SQLite's lock byte at offset 1 GiB. It never holds data and is
/// never stored in an LTX file (it only exists in databases larger than 1 GiB).
pub fn lock_pgno(page_size: u32) -> u32 {
    // PENDING_BYTE / page_size is at most 2^21, so the cast is lossless.
    (PENDING_BYTE / u64::from(page_size)) as u32 + 1
}

/// A transaction ID: one Litestream sync, not one SQLite transaction. Formatted as
/// 16 lowercase hex digits, as in file names and on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Txid(pub u64);

impl Txid {
    /// The TXID every restore chain starts at.
    pub const FIRST: Txid = Txid(1);

    /// The next TXID.
    pub fn next(self) -> Txid {
        Txid(self.0 + 1)
    }
}

impl fmt::Display for Txid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

impl FromStr for Txid {
    type Err = ParseTxidError;

    /// Parses exactly 16 hex digits, like Litestream's `-txid` flag.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.len() != 16 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(ParseTxidError(s.to_owned()));
        }
        u64::from_str_radix(s, 16)
            .map(Txid)
            .map_err(|_| ParseTxidError(s.to_owned()))
    }
}

/// A TXID string that is not 16 hex digits.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid TXID {0:?}: expected exactly 16 hex digits, e.g. 000000000000002a")]
pub struct ParseTxidError(String);

/// The file name of an LTX file covering `min..=max`: `%016x-%016x.ltx`.
pub fn format_filename(min: Txid, max: Txid) -> String {
    format!("{min}-{max}.ltx")
}

/// Parses `%016x-%016x.ltx` (lowercase hex only, as Litestream writes and accepts).
/// Returns `None` for any other name, which replica listings ignore.
pub fn parse_filename(name: &str) -> Option<(Txid, Txid)> {
    let b = name.as_bytes();
    if b.len() != 37 || b[16] != b'-' || &b[33..] != b".ltx" {
        return None;
    }
    let hex = |s: &[u8]| -> Option<u64> {
        if !s
            .iter()
            .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(c))
        {
            return None;
        }
        u64::from_str_radix(std::str::from_utf8(s).ok()?, 16).ok()
    };
    Some((Txid(hex(&b[..16])?), Txid(hex(&b[17..33])?)))
}

/// The LTX file header. See the module docs for the byte layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Header {
    /// Header flags; [`FLAG_NO_CHECKSUM`] is the only one defined.
    pub flags: u32,
    /// Database page size in bytes.
    pub page_size: u32,
    /// Database size in pages after this file is applied.
    pub commit: u32,
    /// First transaction covered.
    pub min_txid: Txid,
    /// Last transaction covered.
    pub max_txid: Txid,
    /// Creation time, milliseconds since the Unix epoch.
    pub timestamp: i64,
    /// Database checksum before applying (0 for snapshots and NoChecksum files).
    pub pre_apply_checksum: u64,
    /// Offset in the source WAL of the first frame covered; 0 for compactions.
    pub wal_offset: u64,
    /// Bytes of WAL covered; 0 for compactions.
    pub wal_size: u64,
    /// Salt-1 of the WAL generation read; 0 for compactions.
    pub wal_salt1: u32,
    /// Salt-2 of the WAL generation read; 0 for compactions.
    pub wal_salt2: u32,
    /// Node that wrote the file; unused by Litestream (0).
    pub node_id: u64,
}

impl Header {
    /// True if the file carries no database checksums.
    pub fn no_checksum(&self) -> bool {
        self.flags & FLAG_NO_CHECKSUM != 0
    }

    /// True if the file is a full snapshot: it starts at TXID 1 and so must hold every
    /// page `1..=commit` except the lock page.
    pub fn is_snapshot(&self) -> bool {
        self.min_txid == Txid::FIRST
    }

    /// The lock page number for this file's page size.
    pub fn lock_pgno(&self) -> u32 {
        lock_pgno(self.page_size)
    }

    /// The number of pages a snapshot with this header must contain.
    pub fn snapshot_page_count(&self) -> u32 {
        let lock = self.lock_pgno();
        if self.commit >= lock {
            self.commit - 1
        } else {
            self.commit
        }
    }

    /// Checks the header as strictly as Litestream's `ltx` library does, plus the rules
    /// it leaves implicit (reserved bytes are checked by [`Header::decode`]).
    pub fn validate(&self) -> Result<()> {
        let bad = |msg: String| Err(Error::InvalidHeader(msg));
        if self.flags & !FLAG_MASK != 0 {
            return bad(format!(
                "unknown flags 0x{:08x} (only 0x{FLAG_NO_CHECKSUM:08x}, NoChecksum, is defined)",
                self.flags
            ));
        }
        if !is_valid_page_size(self.page_size) {
            return bad(format!(
                "page size {} is not a power of two between {MIN_PAGE_SIZE} and {MAX_PAGE_SIZE}",
                self.page_size
            ));
        }
        if self.min_txid.0 == 0 {
            return bad("minimum TXID is 0; TXIDs start at 1".into());
        }
        if self.max_txid.0 == 0 {
            return bad("maximum TXID is 0; TXIDs start at 1".into());
        }
        if self.min_txid > self.max_txid {
            return bad(format!(
                "TXIDs out of order: min {} > max {}",
                self.min_txid, self.max_txid
            ));
        }
        // Go stores these as int64 and rejects negatives.
        if self.wal_offset > i64::MAX as u64 {
            return bad(format!(
                "WAL offset {} is negative as int64",
                self.wal_offset
            ));
        }
        if self.wal_size > i64::MAX as u64 {
            return bad(format!("WAL size {} is negative as int64", self.wal_size));
        }
        if (self.wal_salt1 != 0 || self.wal_salt2 != 0) && self.wal_offset == 0 {
            return bad("WAL salts are set but the WAL offset is 0".into());
        }
        if self.wal_offset == 0 && self.wal_size != 0 {
            return bad("WAL size is set but the WAL offset is 0".into());
        }
        if self.commit == 0 && self.no_checksum() {
            return bad("commit is 0 pages, which only a checksummed file may encode".into());
        }
        if self.is_snapshot() {
            if self.pre_apply_checksum != 0 {
                return bad("a snapshot (min TXID 1) must have a zero pre-apply checksum".into());
            }
        } else if self.no_checksum() {
            if self.pre_apply_checksum != 0 {
                return bad("a pre-apply checksum is set but the NoChecksum flag is on".into());
            }
        } else if self.pre_apply_checksum & CHECKSUM_FLAG == 0 {
            return bad(format!(
                "pre-apply checksum {:016x} is missing bit 63 (required without NoChecksum)",
                self.pre_apply_checksum
            ));
        }
        Ok(())
    }

    /// Encodes the header into its 100-byte form (does not validate).
    pub fn encode(&self) -> [u8; HEADER_SIZE] {
        let mut b = [0u8; HEADER_SIZE];
        b[0..4].copy_from_slice(&MAGIC);
        b[4..8].copy_from_slice(&self.flags.to_be_bytes());
        b[8..12].copy_from_slice(&self.page_size.to_be_bytes());
        b[12..16].copy_from_slice(&self.commit.to_be_bytes());
        b[16..24].copy_from_slice(&self.min_txid.0.to_be_bytes());
        b[24..32].copy_from_slice(&self.max_txid.0.to_be_bytes());
        b[32..40].copy_from_slice(&self.timestamp.to_be_bytes());
        b[40..48].copy_from_slice(&self.pre_apply_checksum.to_be_bytes());
        b[48..56].copy_from_slice(&self.wal_offset.to_be_bytes());
        b[56..64].copy_from_slice(&self.wal_size.to_be_bytes());
        b[64..68].copy_from_slice(&self.wal_salt1.to_be_bytes());
        b[68..72].copy_from_slice(&self.wal_salt2.to_be_bytes());
        b[72..80].copy_from_slice(&self.node_id.to_be_bytes());
        b
    }

    /// Decodes and validates a header. Non-zero reserved bytes are rejected: no writer
    /// sets them, so they can only come from corruption.
    pub fn decode(b: &[u8; HEADER_SIZE]) -> Result<Header> {
        if b[0..4] != MAGIC {
            return Err(Error::BadMagic {
                found: [b[0], b[1], b[2], b[3]],
            });
        }
        let u32_at = |o: usize| u32::from_be_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]]);
        let u64_at = |o: usize| {
            let mut x = [0u8; 8];
            x.copy_from_slice(&b[o..o + 8]);
            u64::from_be_bytes(x)
        };
        let h = Header {
            flags: u32_at(4),
            page_size: u32_at(8),
            commit: u32_at(12),
            min_txid: Txid(u64_at(16)),
            max_txid: Txid(u64_at(24)),
            timestamp: u64_at(32) as i64,
            pre_apply_checksum: u64_at(40),
            wal_offset: u64_at(48),
            wal_size: u64_at(56),
            wal_salt1: u32_at(64),
            wal_salt2: u32_at(68),
            node_id: u64_at(72),
        };
        if b[80..].iter().any(|&x| x != 0) {
            return Err(Error::InvalidHeader(
                "reserved bytes 80..100 are not zero".into(),
            ));
        }
        h.validate()?;
        Ok(h)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn valid() -> Header {
        Header {
            flags: FLAG_NO_CHECKSUM,
            page_size: 4096,
            commit: 4,
            min_txid: Txid(2),
            max_txid: Txid(2),
            timestamp: 1_795_517_933_079,
            wal_offset: 16512,
            wal_size: 4120,
            wal_salt1: 0x6caa_6279,
            wal_salt2: 0xfddb_9145,
            ..Header::default()
        }
    }

    #[test]
    fn round_trips_and_matches_reference_layout() {
        let h = valid();
        let b = h.encode();
        // Bytes from the reference's annotated hexdump of a real 0.5.17 L0 file.
        assert_eq!(&b[0..16], b"LTX1\0\0\0\x02\0\0\x10\0\0\0\0\x04");
        assert_eq!(&b[32..40], &[0, 0, 1, 0xa2, 0x0d, 0x35, 0x66, 0x17]);
        assert_eq!(&b[48..56], &16512u64.to_be_bytes());
        assert_eq!(Header::decode(&b).unwrap(), h);
    }

    #[test]
    fn rejects_each_invalid_field() {
        let cases: Vec<(&str, Header)> = vec![
            (
                "unknown flags",
                Header {
                    flags: 1,
                    ..valid()
                },
            ),
            (
                "page size",
                Header {
                    page_size: 1000,
                    ..valid()
                },
            ),
            (
                "page size",
                Header {
                    page_size: 256,
                    ..valid()
                },
            ),
            (
                "page size",
                Header {
                    page_size: 131072,
                    ..valid()
                },
            ),
            (
                "minimum TXID",
                Header {
                    min_txid: Txid(0),
                    ..valid()
                },
            ),
            (
                "out of order",
                Header {
                    min_txid: Txid(3),
                    ..valid()
                },
            ),
            (
                "salts",
                Header {
                    wal_offset: 0,
                    wal_size: 0,
                    ..valid()
                },
            ),
            (
                "WAL size",
                Header {
                    wal_offset: 0,
                    wal_salt1: 0,
                    wal_salt2: 0,
                    ..valid()
                },
            ),
            (
                "negative",
                Header {
                    wal_offset: u64::MAX,
                    ..valid()
                },
            ),
            (
                "pre-apply",
                Header {
                    pre_apply_checksum: CHECKSUM_FLAG | 5,
                    ..valid()
                },
            ),
            (
                "commit is 0",
                Header {
                    commit: 0,
                    ..valid()
                },
            ),
            (
                "snapshot",
                Header {
                    min_txid: Txid(1),
                    pre_apply_checksum: CHECKSUM_FLAG,
                    flags: 0,
                    ..valid()
                },
            ),
            (
                "bit 63",
                Header {
                    flags: 0,
                    pre_apply_checksum: 5,
                    ..valid()
                },
            ),
        ];
        for (want, h) in cases {
            let err = h.validate().unwrap_err().to_string();
            assert!(err.contains(want), "{h:?}: {err:?} should mention {want:?}");
        }
    }

    #[test]
    fn rejects_bad_magic_and_reserved_bytes() {
        let mut b = valid().encode();
        b[79 + 5] = 1;
        assert!(matches!(Header::decode(&b), Err(Error::InvalidHeader(_))));
        b[84] = 0;
        b[0] = b'X';
        assert!(matches!(Header::decode(&b), Err(Error::BadMagic { .. })));
    }

    #[test]
    fn lock_page_numbers() {
        assert_eq!(lock_pgno(4096), 262_145);
        assert_eq!(lock_pgno(512), 2_097_153);
        assert_eq!(lock_pgno(65536), 16_385);
    }

    #[test]
    fn filenames() {
        let n = format_filename(Txid(1), Txid(0x2a));
        assert_eq!(n, "0000000000000001-000000000000002a.ltx");
        assert_eq!(parse_filename(&n), Some((Txid(1), Txid(0x2a))));
        assert_eq!(
            parse_filename("0000000000000001-000000000000002A.ltx"),
            None
        );
        assert_eq!(
            parse_filename("0000000000000001-000000000000002a.ltx.tmp"),
            None
        );
        assert_eq!(parse_filename("x"), None);
        assert_eq!("000000000000002a".parse::<Txid>(), Ok(Txid(42)));
        assert!("2a".parse::<Txid>().is_err());
        assert!("+00000000000002a".parse::<Txid>().is_err());
    }
}
