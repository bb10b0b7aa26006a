//! # tideline-ltx
//!
//! LTX v3, the file format of Litestream 0.5 replicas, byte-compatible in both
//! directions: every file Litestream 0.5.x writes decodes here, and every file written
//! here restores with Litestream 0.5.16+ (and 0.5.0+ with
//! [`PageEncoding::LegacyFrame`]).
//!
//! The crate is pure: it works over [`std::io::Read`], [`std::io::Write`],
//! [`std::io::Seek`] and byte slices. No files, network, async or clock: time is a
//! header field the caller sets.
//!
//! ## Layout of a file
//!
//! | section | size | contents |
//! |---|---|---|
//! | [header] | 100 | magic `LTX1`, flags, page size, commit, TXID range, timestamp, WAL position |
//! | [page block](page) | variable | page frames in strictly ascending page number, then a 6-byte zero header |
//! | [page index](index) | variable | varint (pgno, offset, size) per page, a 0, then a u64 length |
//! | [trailer] | 16 | post-apply database checksum, file checksum |
//!
//! All integers are big-endian except the index varints. The file checksum is
//! CRC-64/GO-ISO over the uncompressed content (see [`checksum`]).
//!
//! ## Pieces
//!
//! * [`Encoder`] writes a file page by page; [`Decoder`] reads one front to back and
//!   verifies everything, including the file checksum;
//! * [`IndexedReader`] reads single pages through the index (tail first), for browsing;
//! * [`Merger`] and [`compact`] merge files, newest page wins, in constant memory per
//!   input — compaction and restore are both built on them.
//!
//! ```
//! use tideline_ltx::{compact, CompactOptions, Decoder, Encoder, Header, Txid, FLAG_NO_CHECKSUM};
//!
//! let file = |min, max, pages: &[(u32, u8)], commit| -> Vec<u8> {
//!     let h = Header { flags: FLAG_NO_CHECKSUM, page_size: 512, commit,
//!         min_txid: Txid(min), max_txid: Txid(max), timestamp: 0, ..Header::default() };
//!     let mut enc = Encoder::new(Vec::new(), h).unwrap();
//!     for &(pgno, fill) in pages { enc.write_page(pgno, &[fill; 512]).unwrap(); }
//!     enc.finish().unwrap().0
//! };
//! let snapshot = file(1, 1, &[(1, 1), (2, 1)], 2);
//! let change = file(2, 2, &[(2, 9), (3, 9)], 3);
//! let inputs = vec![Decoder::new(&snapshot[..])?, Decoder::new(&change[..])?];
//! let (merged, stats) = compact(inputs, Vec::new(), CompactOptions::default())?;
//! assert_eq!((stats.header.min_txid, stats.header.max_txid, stats.pages), (Txid(1), Txid(2), 3));
//!
//! let mut dec = Decoder::new(&merged[..])?;
//! let mut pages = Vec::new();
//! while let Some(pgno) = dec.next_page()? { pages.push((pgno, dec.page()[0])); }
//! assert_eq!(pages, [(1, 1), (2, 9), (3, 9)]);
//! # Ok::<(), tideline_ltx::Error>(())
//! ```

#![deny(missing_docs)]

pub mod checksum;
mod compactor;
mod decoder;
mod encoder;
mod error;
pub mod header;
pub mod index;
mod indexed;
pub mod page;
pub mod trailer;

pub use checksum::{DatabaseChecksum, FileHasher, crc64, database_checksum, page_checksum};
pub use compactor::{CompactOptions, CompactStats, Merger, compact};
pub use decoder::Decoder;
pub use encoder::Encoder;
pub use error::{Error, Result, Section};
pub use header::{
    CHECKSUM_FLAG, FLAG_NO_CHECKSUM, HEADER_SIZE, Header, ParseTxidError, Txid, format_filename,
    is_valid_page_size, lock_pgno, parse_filename,
};
pub use index::{PageIndex, PageIndexEntry};
pub use indexed::{IndexedReader, decode_frame};
pub use page::{PageEncoding, PageHeader};
pub use trailer::Trailer;

/// The replica level of full snapshots: one file per snapshot, MinTXID always 1
/// (Litestream's `SnapshotLevel`).
pub const SNAPSHOT_LEVEL: u8 = 9;
/// The highest compaction level: levels 1 to 8 hold compactions of the level below, so a
/// config may name at most 8 (Litestream's `levels:` limit).
pub const MAX_COMPACTION_LEVEL: u8 = 8;
