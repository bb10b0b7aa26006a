//! Reading SQLite's write-ahead log, purely over bytes.
//!
//! A WAL is a 32-byte header followed by frames of a 24-byte frame header plus one page:
//!
//! | WAL header | size | | frame header | size |
//! |---|---:|---|---|---:|
//! | magic `0x377f0682`/`0x377f0683` | 4 | | page number | 4 |
//! | format version 3007000 | 4 | | database size after commit, or 0 | 4 |
//! | page size | 4 | | salt-1 (copy of header's) | 4 |
//! | checkpoint sequence | 4 | | salt-2 (copy of header's) | 4 |
//! | salt-1 | 4 | | checksum-1 | 4 |
//! | salt-2 | 4 | | checksum-2 | 4 |
//! | checksum-1, checksum-2 | 8 | | | |
//!
//! All fields are big-endian. The checksum is SQLite's Fletcher-like sum over 32-bit
//! words, whose byte order the magic's low bit selects (1: big-endian), chained from the
//! header through every frame's first 8 header bytes and page. A frame belongs to the
//! current WAL generation only if its salts equal the header's and its checksum
//! continues the chain; the first frame that fails either ends the valid log (SQLite
//! reuses WAL space without zeroing it, so stale frames from an older generation
//! follow). Only frames up to the last *commit* frame (non-zero database size) are
//! durable; later frames belong to a transaction still being written.
//!
//! Nothing here touches the file system: callers hand in bytes or a `Read + Seek`.

use std::collections::HashMap;
use std::io::{self, Read, Seek, SeekFrom};

/// Size of the WAL header.
pub const WAL_HEADER_SIZE: usize = 32;
/// Size of a frame header.
pub const FRAME_HEADER_SIZE: usize = 24;
/// WAL magic with little-endian checksum words.
pub const MAGIC_LE: u32 = 0x377f_0682;
/// WAL magic with big-endian checksum words.
pub const MAGIC_BE: u32 = 0x377f_0683;
/// The only WAL format version.
pub const WAL_VERSION: u32 = 3_007_000;

/// A malformed WAL header.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WalError {
    /// Fewer than 32 bytes: the WAL has no header yet (or was truncated).
    #[error("the WAL is {0} bytes long, shorter than its 32-byte header")]
    Short(usize),
    /// Not a WAL file.
    #[error("not a SQLite WAL: magic {0:08x}")]
    BadMagic(u32),
    /// A WAL format this reader does not know.
    #[error("unsupported WAL format version {0} (expected 3007000)")]
    BadVersion(u32),
    /// A page size SQLite never uses.
    #[error("invalid WAL page size {0}")]
    BadPageSize(u32),
    /// The header's own checksum does not match: a torn or foreign header.
    #[error("WAL header checksum mismatch")]
    BadChecksum,
}

/// The running WAL checksum, two 32-bit accumulators.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Checksum(pub u32, pub u32);

/// Continues `sum` over `data` (a multiple of 8 bytes), reading words big-endian when
/// `big_endian`, as SQLite's `walChecksumBytes`.
pub fn checksum(big_endian: bool, mut sum: Checksum, data: &[u8]) -> Checksum {
    debug_assert_eq!(data.len() % 8, 0);
    let word = |b: &[u8]| {
        let b = [b[0], b[1], b[2], b[3]];
        if big_endian {
            u32::from_be_bytes(b)
        } else {
            u32::from_le_bytes(b)
        }
    };
    for chunk in data.chunks_exact(8) {
        sum.0 = sum.0.wrapping_add(word(&chunk[..4]).wrapping_add(sum.1));
        sum.1 = sum.1.wrapping_add(word(&chunk[4..]).wrapping_add(sum.0));
    }
    sum
}

fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// The WAL header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WalHeader {
    /// Magic; its low bit selects big-endian checksum words.
    pub magic: u32,
    /// Database page size.
    pub page_size: u32,
    /// Checkpoint sequence number, incremented at each WAL restart.
    pub checkpoint_seq: u32,
    /// Salt-1: incremented at each WAL restart.
    pub salt1: u32,
    /// Salt-2: a new random value at each WAL restart.
    pub salt2: u32,
    /// Checksum of the first 24 header bytes; seeds the frame chain.
    pub checksum: Checksum,
}

impl WalHeader {
    /// Decodes and verifies the header at the start of `b`.
    pub fn decode(b: &[u8]) -> Result<WalHeader, WalError> {
        if b.len() < WAL_HEADER_SIZE {
            return Err(WalError::Short(b.len()));
        }
        let magic = be32(b, 0);
        if magic != MAGIC_LE && magic != MAGIC_BE {
            return Err(WalError::BadMagic(magic));
        }
        let version = be32(b, 4);
        if version != WAL_VERSION {
            return Err(WalError::BadVersion(version));
        }
        let page_size = be32(b, 8);
        if !tideline_ltx::is_valid_page_size(page_size) {
            return Err(WalError::BadPageSize(page_size));
        }
        let h = WalHeader {
            magic,
            page_size,
            checkpoint_seq: be32(b, 12),
            salt1: be32(b, 16),
            salt2: be32(b, 20),
            checksum: Checksum(be32(b, 24), be32(b, 28)),
        };
        if checksum(h.big_endian(), Checksum::default(), &b[..24]) != h.checksum {
            return Err(WalError::BadChecksum);
        }
        Ok(h)
    }

    /// True if checksum words are big-endian.
    pub(crate) fn big_endian(&self) -> bool {
        self.magic & 1 == 1
    }

    /// Bytes per frame: header plus page.
    pub fn frame_size(&self) -> u64 {
        FRAME_HEADER_SIZE as u64 + u64::from(self.page_size)
    }
}

/// A frame header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    /// The page this frame holds.
    pub pgno: u32,
    /// Database size in pages after this frame's transaction, on its commit frame;
    /// otherwise 0.
    pub commit: u32,
    /// Salt-1 copied from the WAL header that was current when written.
    pub salt1: u32,
    /// Salt-2 likewise.
    pub salt2: u32,
    /// Cumulative checksum through this frame.
    pub checksum: Checksum,
}

impl FrameHeader {
    /// Decodes the 24-byte frame header at the start of `b`.
    pub fn decode(b: &[u8]) -> FrameHeader {
        FrameHeader {
            pgno: be32(b, 0),
            commit: be32(b, 4),
            salt1: be32(b, 8),
            salt2: be32(b, 12),
            checksum: Checksum(be32(b, 16), be32(b, 20)),
        }
    }
}

/// Validates frames one after another: salts and the checksum chain.
#[derive(Debug, Clone, Copy)]
pub struct FrameChain {
    header: WalHeader,
    sum: Checksum,
}

impl FrameChain {
    /// A chain starting at the first frame (offset 32).
    pub fn new(header: WalHeader) -> Self {
        FrameChain {
            header,
            sum: header.checksum,
        }
    }

    /// A chain continuing after a frame whose cumulative checksum was `sum`.
    pub fn resume(header: WalHeader, sum: Checksum) -> Self {
        FrameChain { header, sum }
    }

    /// The cumulative checksum so far.
    pub fn checksum(&self) -> Checksum {
        self.sum
    }

    /// Checks `frame` (frame header plus page) as the next frame. Returns its header and
    /// advances if it belongs to this WAL generation, `None` (without advancing) if it
    /// does not: that is where the valid log ends.
    pub fn next(&mut self, frame: &[u8]) -> Option<FrameHeader> {
        debug_assert_eq!(frame.len() as u64, self.header.frame_size());
        let fh = FrameHeader::decode(frame);
        if fh.salt1 != self.header.salt1 || fh.salt2 != self.header.salt2 || fh.pgno == 0 {
            return None;
        }
        let be = self.header.big_endian();
        let sum = checksum(be, self.sum, &frame[..8]);
        let sum = checksum(be, sum, &frame[FRAME_HEADER_SIZE..]);
        if sum != fh.checksum {
            return None;
        }
        self.sum = sum;
        Some(fh)
    }
}

/// The committed transactions found by one scan of the WAL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    /// The WAL header the frames belong to.
    pub header: WalHeader,
    /// Offset of the first frame scanned.
    pub start: u64,
    /// Offset just past the last commit frame: where the next scan resumes.
    pub end: u64,
    /// Cumulative checksum at `end`, to resume the chain.
    pub checksum: Checksum,
    /// Database size in pages after the last commit.
    pub commit: u32,
    /// The newest version of each page changed, as `(pgno, offset of its frame)`,
    /// ascending by page number, pages beyond `commit` dropped.
    pub pages: Vec<(u32, u64)>,
    /// Committed frames scanned.
    pub frames: u64,
}

impl Segment {
    /// Offset of a page's bytes (after the frame header) within the WAL.
    pub fn page_offset(frame_offset: u64) -> u64 {
        frame_offset + FRAME_HEADER_SIZE as u64
    }
}

/// Reads committed frames from `start` (a frame boundary; `chain` must hold the
/// checksum through the frame before it), stopping at the end of the valid log or, if
/// `max_bytes` is set, at the first commit at or past that many bytes (a sync reads at
/// most that much at a time, cut at a commit). Returns `None` if no complete
/// transaction follows `start`.
///
/// Memory is one frame buffer plus one entry per distinct page, never page data.
pub fn scan_committed<R: Read + Seek>(
    r: &mut R,
    start: u64,
    mut chain: FrameChain,
    max_bytes: Option<u64>,
) -> io::Result<Option<Segment>> {
    let header = chain.header;
    let frame_size = header.frame_size();
    if start < WAL_HEADER_SIZE as u64
        || !(start - WAL_HEADER_SIZE as u64).is_multiple_of(frame_size)
    {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "WAL offset {start} is not a frame boundary for page size {}",
                header.page_size
            ),
        ));
    }
    r.seek(SeekFrom::Start(start))?;
    // Frames are read in order: one `read` per 256 KiB instead of one per frame (per-call
    // overhead was ~20 % of a scan). Callers seek before reading again, so the
    // read-ahead left in the file position does not matter.
    let mut r = io::BufReader::with_capacity(256 * 1024, r);
    let mut frame = vec![0u8; frame_size as usize];
    let mut committed: HashMap<u32, u64> = HashMap::new();
    let mut pending: Vec<(u32, u64)> = Vec::new();
    let mut offset = start;
    let mut last: Option<(u64, Checksum, u32)> = None;
    let mut frames = 0u64;
    let mut pending_frames = 0u64;
    loop {
        if !read_full(&mut r, &mut frame)? {
            break; // end of file, or a partly written frame
        }
        let Some(fh) = chain.next(&frame) else { break };
        pending.push((fh.pgno, offset));
        pending_frames += 1;
        offset += frame_size;
        if fh.commit != 0 {
            committed.extend(pending.drain(..));
            frames += pending_frames;
            pending_frames = 0;
            last = Some((offset, chain.checksum(), fh.commit));
            if max_bytes.is_some_and(|m| offset - start >= m) {
                break;
            }
        }
    }
    let Some((end, checksum, commit)) = last else {
        return Ok(None);
    };
    let mut pages: Vec<(u32, u64)> = committed
        .into_iter()
        .filter(|&(p, _)| p <= commit)
        .collect();
    pages.sort_unstable();
    Ok(Some(Segment {
        header,
        start,
        end,
        checksum,
        commit,
        pages,
        frames,
    }))
}

/// Fills `buf` entirely; `false` if the data ends first (a short tail is not an error:
/// it is a frame still being written, or nothing at all).
fn read_full<R: Read>(r: &mut R, buf: &mut [u8]) -> io::Result<bool> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => return Ok(false),
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Builds a WAL in memory the way SQLite does, for cases real SQLite will not
    /// produce on this machine (big-endian checksums).
    pub(crate) fn synthetic_wal(
        big_endian: bool,
        page_size: u32,
        frames: &[(u32, u32, u8)],
    ) -> Vec<u8> {
        let mut w = Vec::new();
        let magic = if big_endian { MAGIC_BE } else { MAGIC_LE };
        for v in [magic, WAL_VERSION, page_size, 7, 0x1234_5678, 0x9abc_def0] {
            w.extend_from_slice(&v.to_be_bytes());
        }
        let mut sum = checksum(big_endian, Checksum::default(), &w);
        w.extend_from_slice(&sum.0.to_be_bytes());
        w.extend_from_slice(&sum.1.to_be_bytes());
        for &(pgno, commit, fill) in frames {
            let mut fh = Vec::new();
            for v in [pgno, commit, 0x1234_5678, 0x9abc_def0] {
                fh.extend_from_slice(&v.to_be_bytes());
            }
            let page = vec![fill; page_size as usize];
            sum = checksum(big_endian, sum, &fh[..8]);
            sum = checksum(big_endian, sum, &page);
            fh.extend_from_slice(&sum.0.to_be_bytes());
            fh.extend_from_slice(&sum.1.to_be_bytes());
            w.extend_from_slice(&fh);
            w.extend_from_slice(&page);
        }
        w
    }

    #[test]
    fn both_checksum_byte_orders() {
        for be in [false, true] {
            let wal = synthetic_wal(be, 512, &[(1, 0, 1), (2, 2, 2), (1, 0, 3)]);
            let h = WalHeader::decode(&wal).unwrap();
            assert_eq!(h.big_endian(), be);
            let seg = scan_committed(&mut io::Cursor::new(&wal), 32, FrameChain::new(h), None)
                .unwrap()
                .unwrap();
            // The third frame is an uncommitted transaction: not included.
            assert_eq!(seg.pages, vec![(1, 32), (2, 32 + 536)]);
            assert_eq!((seg.commit, seg.end, seg.frames), (2, 32 + 2 * 536, 2));
        }
    }

    #[test]
    fn rejects_bad_headers() {
        let wal = synthetic_wal(false, 512, &[]);
        assert_eq!(WalHeader::decode(&wal[..31]), Err(WalError::Short(31)));
        let mut bad = wal.clone();
        bad[20] ^= 1;
        assert_eq!(WalHeader::decode(&bad), Err(WalError::BadChecksum));
        bad = wal.clone();
        bad[0] = 0;
        assert!(matches!(
            WalHeader::decode(&bad),
            Err(WalError::BadMagic(_))
        ));
    }

    #[test]
    fn chain_stops_at_a_corrupt_or_foreign_frame() {
        let wal = synthetic_wal(false, 512, &[(1, 1, 1), (2, 2, 2), (3, 3, 3)]);
        let h = WalHeader::decode(&wal).unwrap();
        // Damage the page of the second frame: only the first transaction survives.
        let mut bad = wal.clone();
        bad[32 + 536 + 24 + 100] ^= 0xff;
        let seg = scan_committed(&mut io::Cursor::new(&bad), 32, FrameChain::new(h), None)
            .unwrap()
            .unwrap();
        assert_eq!((seg.pages.len(), seg.commit), (1, 1));
        // A torn final frame is ignored.
        let seg = scan_committed(
            &mut io::Cursor::new(&wal[..wal.len() - 10]),
            32,
            FrameChain::new(h),
            None,
        )
        .unwrap()
        .unwrap();
        assert_eq!(seg.commit, 2);
        // max_bytes cuts at the first commit at or past the limit.
        let seg = scan_committed(
            &mut io::Cursor::new(&wal),
            32,
            FrameChain::new(h),
            Some(600),
        )
        .unwrap()
        .unwrap();
        assert_eq!(seg.commit, 2);
        // Resuming mid-log continues the chain.
        let rest = scan_committed(
            &mut io::Cursor::new(&wal),
            seg.end,
            FrameChain::resume(h, seg.checksum),
            None,
        )
        .unwrap()
        .unwrap();
        assert_eq!(rest.pages, vec![(3, seg.end)]);
        assert!(scan_committed(&mut io::Cursor::new(&wal), 33, FrameChain::new(h), None).is_err());
    }
}
