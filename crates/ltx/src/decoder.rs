//! The streaming decoder: reads one LTX file front to back, verifying as it goes.
//!
//! Each page is checked (order, bounds, lock page, snapshot completeness) and
//! decompressed into a reused page buffer; the file CRC runs over exactly the bytes the
//! format says. At the end the page index is compared with the frames actually seen
//! (through a CRC of the index bytes they imply, so memory stays constant), the trailer
//! is validated, the file checksum compared, and trailing garbage rejected. A file is
//! only known to be good once [`Decoder::next_page`] has returned `Ok(None)` (or
//! [`Decoder::finish`] returned): callers that write pages somewhere must not commit
//! that output before then.
//!
//! `R` is read with small reads per page; wrap files and sockets in a `BufReader`.

use std::io::{self, Read};

use crate::checksum::{DatabaseChecksum, FileHasher};
use crate::error::{Error, Result, Section};
use crate::header::{HEADER_SIZE, Header, MAGIC};
use crate::index::put_uvarint;
use crate::page::{
    BLOCK_FRAME_OVERHEAD, FrameReadError, PAGE_HEADER_SIZE, PageEncoding, PageHeader, decode_block,
    decode_legacy_frame, max_block_size, read_legacy_frame,
};
use crate::trailer::{TRAILER_SIZE, Trailer};

/// Cap on the buffer used to stream the page index through the hashers.
const INDEX_CHUNK: usize = 64 * 1024;
/// Implied index bytes gathered before they are hashed.
const INDEX_BATCH: usize = 4096;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Pages,
    Done(Trailer),
}

/// Reads and verifies one LTX file from `R`.
#[derive(Debug)]
pub struct Decoder<R: Read> {
    r: R,
    header: Header,
    state: State,
    hasher: FileHasher,
    offset: u64,
    /// The current page, decompressed.
    page: Vec<u8>,
    /// The current page's compressed payload (block or whole legacy frame).
    comp: Vec<u8>,
    comp_len: usize,
    encoding: PageEncoding,
    last_pgno: u32,
    pages: u32,
    /// CRC and length of the index bytes the frames seen so far imply.
    expected_index: FileHasher,
    expected_index_len: u64,
    scratch: Vec<u8>,
    db_checksum: Option<DatabaseChecksum>,
}

impl<R: Read> Decoder<R> {
    /// Reads and validates the header.
    pub fn new(mut r: R) -> Result<Self> {
        let mut b = [0u8; HEADER_SIZE];
        // Check the magic before insisting on 100 bytes, so a short file that is not
        // LTX at all is reported as such rather than as a truncated LTX file.
        read_exact(&mut r, &mut b[..4], Section::Header, 0)?;
        if b[..4] != MAGIC {
            return Err(Error::BadMagic {
                found: [b[0], b[1], b[2], b[3]],
            });
        }
        read_exact(&mut r, &mut b[4..], Section::Header, 4)?;
        let header = Header::decode(&b)?;
        let mut hasher = FileHasher::new();
        hasher.update(&b);
        let page_size = header.page_size as usize;
        Ok(Decoder {
            r,
            header,
            state: State::Pages,
            hasher,
            offset: HEADER_SIZE as u64,
            page: vec![0; page_size],
            comp: vec![0; max_block_size(page_size)],
            comp_len: 0,
            encoding: PageEncoding::Block,
            last_pgno: 0,
            pages: 0,
            expected_index: FileHasher::new(),
            expected_index_len: 0,
            scratch: Vec::with_capacity(INDEX_BATCH + 32),
            db_checksum: (!header.no_checksum() && header.is_snapshot())
                .then(DatabaseChecksum::new),
        })
    }

    /// The file's header.
    pub fn header(&self) -> &Header {
        &self.header
    }

    /// Bytes consumed so far.
    pub fn bytes_read(&self) -> u64 {
        self.offset
    }

    /// Pages decoded so far.
    pub fn pages_read(&self) -> u32 {
        self.pages
    }

    /// The trailer, once the whole file has been read and verified.
    pub fn trailer(&self) -> Option<Trailer> {
        match self.state {
            State::Done(t) => Some(t),
            State::Pages => None,
        }
    }

    /// The page most recently returned by [`Decoder::next_page`].
    pub fn page(&self) -> &[u8] {
        &self.page
    }

    /// The current page's compressed LZ4 block, if it was block-encoded; lets the
    /// compactor copy it without recompressing. (Only valid after `next_page` returned
    /// a page.)
    pub(crate) fn block(&self) -> Option<&[u8]> {
        (self.encoding == PageEncoding::Block).then(|| &self.comp[..self.comp_len])
    }

    /// Decodes the next page and returns its number (its bytes are in
    /// [`Decoder::page`]), or `None` after the last page, once the index, trailer and
    /// file checksum have been verified.
    pub fn next_page(&mut self) -> Result<Option<u32>> {
        if let State::Done(_) = self.state {
            return Ok(None);
        }
        let frame_offset = self.offset;
        // Header and (for block pages) size share one buffer so that they are hashed in
        // one update: small hasher calls are a measurable share of decode time.
        let mut hb = [0u8; BLOCK_FRAME_OVERHEAD];
        self.read(&mut hb[..PAGE_HEADER_SIZE], Section::Page)?;
        let ph = PageHeader::decode(hb[..PAGE_HEADER_SIZE].try_into().expect("6 bytes"));
        if ph.is_end() {
            self.hasher.update(&hb[..PAGE_HEADER_SIZE]);
            self.finish_file(frame_offset)?;
            return Ok(None);
        }
        let invalid = |reason: String| Error::InvalidPage {
            offset: frame_offset,
            pgno: ph.pgno,
            reason,
        };
        let encoding = ph.validate().map_err(invalid)?;
        self.check_pgno(ph.pgno).map_err(invalid)?;

        match encoding {
            PageEncoding::Block => {
                self.read(&mut hb[PAGE_HEADER_SIZE..], Section::Page)?;
                self.hasher.update(&hb);
                let n = u32::from_be_bytes([hb[6], hb[7], hb[8], hb[9]]) as usize;
                if n > self.comp.len() {
                    return Err(invalid(format!(
                        "compressed length {n} exceeds the {} bytes any {}-byte page can need",
                        self.comp.len(),
                        self.header.page_size
                    )));
                }
                let mut comp = std::mem::take(&mut self.comp);
                let res = self.read(&mut comp[..n], Section::Page);
                self.comp = comp;
                res?;
                self.comp_len = n;
                decode_block(&self.comp[..n], &mut self.page).map_err(invalid)?;
            }
            PageEncoding::LegacyFrame => {
                self.hasher.update(&hb[..PAGE_HEADER_SIZE]);
                let page_size = self.page.len();
                read_legacy_frame(&mut self.r, page_size, &mut self.comp).map_err(|e| match e {
                    FrameReadError::Io(e) => Error::read(Section::Page, self.offset, e),
                    FrameReadError::Invalid(reason) => invalid(reason),
                })?;
                self.offset += self.comp.len() as u64;
                self.comp_len = self.comp.len();
                decode_legacy_frame(&self.comp, &mut self.page).map_err(invalid)?;
                // Keep the buffer large enough for block pages that may follow.
                let cap = max_block_size(page_size);
                if self.comp.len() < cap {
                    self.comp.resize(cap, 0);
                }
            }
        }
        self.hasher.update(&self.page);
        if let Some(sum) = &mut self.db_checksum {
            sum.add_page(ph.pgno, &self.page);
        }

        self.encoding = encoding;
        // The index bytes these frames imply, hashed in batches (see `finish_file`).
        put_uvarint(&mut self.scratch, u64::from(ph.pgno));
        put_uvarint(&mut self.scratch, frame_offset);
        put_uvarint(&mut self.scratch, self.offset - frame_offset);
        if self.scratch.len() >= INDEX_BATCH {
            self.flush_expected_index();
        }
        self.last_pgno = ph.pgno;
        self.pages += 1;
        Ok(Some(ph.pgno))
    }

    /// Decodes the next page into `out` (one page long). Convenience over
    /// [`Decoder::next_page`] + [`Decoder::page`].
    pub fn read_page_into(&mut self, out: &mut [u8]) -> Result<Option<u32>> {
        let pgno = self.next_page()?;
        if pgno.is_some() {
            out.copy_from_slice(&self.page);
        }
        Ok(pgno)
    }

    /// Reads (and verifies) whatever is left and returns the trailer.
    pub fn finish(mut self) -> Result<Trailer> {
        while self.next_page()?.is_some() {}
        Ok(self.trailer().expect("done after the last page"))
    }

    /// Returns the reader, e.g. to check what follows the file.
    pub fn into_inner(self) -> R {
        self.r
    }

    fn check_pgno(&self, pgno: u32) -> Result<(), String> {
        let h = &self.header;
        if pgno > h.commit {
            return Err(format!(
                "page is beyond the commit size of {} pages",
                h.commit
            ));
        }
        if pgno == h.lock_pgno() {
            return Err("the lock page is stored, which no writer may do".into());
        }
        if pgno <= self.last_pgno {
            return Err(format!(
                "page follows page {}; pages must be strictly ascending",
                self.last_pgno
            ));
        }
        if h.is_snapshot() {
            let mut want = self.last_pgno + 1;
            if want == h.lock_pgno() {
                want += 1;
            }
            if pgno != want {
                return Err(format!("snapshot is missing page {want}"));
            }
        }
        Ok(())
    }

    fn flush_expected_index(&mut self) {
        self.expected_index.update(&self.scratch);
        self.expected_index_len += self.scratch.len() as u64;
        self.scratch.clear();
    }

    fn read(&mut self, buf: &mut [u8], section: Section) -> Result<()> {
        read_exact(&mut self.r, buf, section, self.offset)?;
        self.offset += buf.len() as u64;
        Ok(())
    }

    /// After the end-of-pages header: index, trailer, checksums, end of data.
    fn finish_file(&mut self, end_offset: u64) -> Result<()> {
        let h = self.header;
        if h.is_snapshot() && self.pages != h.snapshot_page_count() {
            return Err(Error::InvalidPage {
                offset: end_offset,
                pgno: 0,
                reason: format!(
                    "snapshot ends after {} pages but its commit size of {} pages needs {}",
                    self.pages,
                    h.commit,
                    h.snapshot_page_count()
                ),
            });
        }

        // The index must be exactly the bytes the frames imply: stream that many bytes
        // (plus the length field) through the file hasher and a second hasher.
        self.scratch.push(0);
        self.flush_expected_index();
        let mut actual = FileHasher::new();
        let mut left = self.expected_index_len;
        let mut comp = std::mem::take(&mut self.comp);
        let chunk = comp.len().min(INDEX_CHUNK);
        let mut res = Ok(());
        while left > 0 {
            let n = (left as usize).min(chunk);
            res = self.read(&mut comp[..n], Section::Index);
            if res.is_err() {
                break;
            }
            self.hasher.update(&comp[..n]);
            actual.update(&comp[..n]);
            left -= n as u64;
        }
        self.comp = comp;
        res?;
        let mut lb = [0u8; 8];
        self.read(&mut lb, Section::Index)?;
        self.hasher.update(&lb);
        let recorded = u64::from_be_bytes(lb);
        if recorded != self.expected_index_len || actual.crc() != self.expected_index.crc() {
            return Err(Error::InvalidIndex(format!(
                "the page index (recorded length {recorded}) does not describe the {} page frames in the file (expected length {})",
                self.pages, self.expected_index_len
            )));
        }

        let mut tb = [0u8; TRAILER_SIZE];
        self.read(&mut tb, Section::Trailer)?;
        self.hasher.update(&tb[..8]);
        let trailer = Trailer::decode(&tb);
        let computed = self.hasher.file_checksum();
        if trailer.file_checksum != computed {
            return Err(Error::FileChecksumMismatch {
                stored: trailer.file_checksum,
                computed,
            });
        }
        trailer.validate(&h)?;
        if let Some(sum) = self.db_checksum
            && sum.value() != trailer.post_apply_checksum
        {
            return Err(Error::DatabaseChecksumMismatch {
                stored: trailer.post_apply_checksum,
                computed: sum.value(),
            });
        }

        let extra =
            count_extra(&mut self.r).map_err(|e| Error::read(Section::Trailer, self.offset, e))?;
        if extra > 0 {
            return Err(Error::InvalidTrailer(format!(
                "{extra}{} unexpected bytes after the trailer",
                if extra == EXTRA_PROBE as u64 { "+" } else { "" }
            )));
        }
        self.state = State::Done(trailer);
        Ok(())
    }
}

const EXTRA_PROBE: usize = 64;

/// Reads up to a few bytes past the trailer to detect trailing data.
fn count_extra<R: Read>(r: &mut R) -> io::Result<u64> {
    let mut buf = [0u8; EXTRA_PROBE];
    let mut total = 0usize;
    while total < buf.len() {
        match r.read(&mut buf[total..]) {
            Ok(0) => break,
            Ok(n) => total += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(total as u64)
}

fn read_exact<R: Read>(r: &mut R, buf: &mut [u8], section: Section, offset: u64) -> Result<()> {
    r.read_exact(buf)
        .map_err(|e| Error::read(section, offset, e))
}
