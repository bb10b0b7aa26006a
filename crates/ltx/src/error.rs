//! The error type of the format crate.
//!
//! Every variant says *what* is wrong and *where* (offset, page number, section), so a
//! user looking at a corrupt replica file knows which file and which part failed, and
//! the engine can map the variant to a fixed error code without parsing strings.

use std::io;

/// The part of an LTX file an error refers to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Section {
    /// The 100-byte header.
    Header,
    /// A page frame (page header, size, compressed payload).
    Page,
    /// The page index after the page block.
    Index,
    /// The 16-byte trailer.
    Trailer,
}

impl std::fmt::Display for Section {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Section::Header => "header",
            Section::Page => "page block",
            Section::Index => "page index",
            Section::Trailer => "trailer",
        })
    }
}

/// Everything that can go wrong reading, writing or compacting LTX files.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The underlying reader or writer failed (not a format problem).
    #[error("I/O error in the LTX {section}: {source}")]
    Io {
        /// Where in the file the error happened.
        section: Section,
        /// The I/O error.
        #[source]
        source: io::Error,
    },

    /// The data ended before the file did: a partial upload or a truncated copy.
    #[error(
        "truncated LTX file: the data ends inside the {section} (at byte {offset}); the file is incomplete or corrupt"
    )]
    Truncated {
        /// The section that was being read.
        section: Section,
        /// Bytes read before the end.
        offset: u64,
    },

    /// The first four bytes are not `LTX1`.
    #[error("not an LTX file: it starts with {found:02x?} instead of the magic \"LTX1\"")]
    BadMagic {
        /// The first four bytes found.
        found: [u8; 4],
    },

    /// The header fails validation (see [`crate::Header::validate`]).
    #[error("invalid LTX header: {0}")]
    InvalidHeader(String),

    /// A page frame is malformed: bad flags, order, size, or an LZ4 payload that does
    /// not decompress to exactly one page.
    #[error("invalid page frame at byte {offset} (page {pgno}): {reason}")]
    InvalidPage {
        /// File offset of the frame's 6-byte page header.
        offset: u64,
        /// Page number from the frame header (0 if unknown).
        pgno: u32,
        /// What is wrong.
        reason: String,
    },

    /// The page index is malformed or disagrees with the page frames.
    #[error("invalid page index: {0}")]
    InvalidIndex(String),

    /// The trailer fails validation.
    #[error("invalid LTX trailer: {0}")]
    InvalidTrailer(String),

    /// The CRC-64 over the file contents differs from the one in the trailer.
    #[error(
        "file checksum mismatch: the trailer records {stored:016x} but the contents hash to {computed:016x}; the file is corrupt"
    )]
    FileChecksumMismatch {
        /// Checksum stored in the trailer.
        stored: u64,
        /// Checksum computed over the contents.
        computed: u64,
    },

    /// A snapshot's pages do not hash to its post-apply database checksum.
    #[error(
        "database checksum mismatch: the trailer records {stored:016x} but the snapshot's pages hash to {computed:016x}"
    )]
    DatabaseChecksumMismatch {
        /// Post-apply checksum stored in the trailer.
        stored: u64,
        /// Checksum computed from the pages.
        computed: u64,
    },

    /// The caller broke the encoder's contract (pages out of order, wrong size, …).
    #[error("cannot encode LTX file: {0}")]
    Encode(String),

    /// Compaction inputs that cannot be merged (mixed page sizes, a TXID gap, …).
    #[error("cannot compact LTX files: {0}")]
    Compaction(String),
}

impl Error {
    /// True when the error means the *data* is corrupt or not LTX, as opposed to an
    /// I/O failure of the reader or a misuse of the API. A replica file that gives such
    /// an error must not be applied.
    pub fn is_corruption(&self) -> bool {
        matches!(
            self,
            Error::Truncated { .. }
                | Error::BadMagic { .. }
                | Error::InvalidHeader(_)
                | Error::InvalidPage { .. }
                | Error::InvalidIndex(_)
                | Error::InvalidTrailer(_)
                | Error::FileChecksumMismatch { .. }
                | Error::DatabaseChecksumMismatch { .. }
        )
    }

    /// Maps an I/O error in `section` at `offset`: an early EOF becomes [`Error::Truncated`].
    pub(crate) fn read(section: Section, offset: u64, source: io::Error) -> Error {
        if source.kind() == io::ErrorKind::UnexpectedEof {
            Error::Truncated { section, offset }
        } else {
            Error::Io { section, source }
        }
    }

    pub(crate) fn write(section: Section, source: io::Error) -> Error {
        Error::Io { section, source }
    }
}

/// Result alias of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
