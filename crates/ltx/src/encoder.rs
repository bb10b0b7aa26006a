//! The streaming encoder: header, pages in ascending order, page index, trailer.
//!
//! Memory is one reusable frame buffer plus the page index (a few bytes per page, which
//! the format requires at the end of the file). Pages are LZ4-compressed one at a time
//! straight into the frame buffer and written with a single `write_all` each, so a
//! `BufWriter` is only needed for unbuffered sinks with many small pages.

use std::io::Write;

use crate::checksum::{DatabaseChecksum, FileHasher};
use crate::error::{Error, Result, Section};
use crate::header::{HEADER_SIZE, Header};
use crate::index::put_uvarint;
use crate::page::{
    BLOCK_FRAME_OVERHEAD, PAGE_FLAG_SIZE, PAGE_HEADER_SIZE, PageEncoding, PageHeader,
    encode_legacy_frame, max_block_size,
};
use crate::trailer::Trailer;

/// Writes one LTX file to `W`.
///
/// ```
/// use tideline_ltx::{Decoder, Encoder, Header, Txid, FLAG_NO_CHECKSUM};
///
/// let header = Header {
///     flags: FLAG_NO_CHECKSUM,
///     page_size: 4096,
///     commit: 2,
///     min_txid: Txid(1),
///     max_txid: Txid(1),
///     timestamp: 1_700_000_000_000,
///     ..Header::default()
/// };
/// let mut enc = Encoder::new(Vec::new(), header)?;
/// enc.write_page(1, &[1u8; 4096])?;
/// enc.write_page(2, &[2u8; 4096])?;
/// let (file, _trailer) = enc.finish()?;
///
/// let mut dec = Decoder::new(&file[..])?;
/// while let Some(pgno) = dec.next_page()? {
///     assert_eq!(dec.page()[0] as u32, pgno);
/// }
/// # Ok::<(), tideline_ltx::Error>(())
/// ```
#[derive(Debug)]
pub struct Encoder<W: Write> {
    w: W,
    header: Header,
    encoding: PageEncoding,
    hasher: FileHasher,
    offset: u64,
    /// Page index entries, already varint-encoded.
    index: Vec<u8>,
    pages: u32,
    last_pgno: u32,
    /// Reused for every frame: header, length and compressed payload.
    frame: Vec<u8>,
    /// Running database checksum; only for checksummed snapshots, where it is the
    /// post-apply checksum.
    db_checksum: Option<DatabaseChecksum>,
    post_apply_checksum: Option<u64>,
}

impl<W: Write> Encoder<W> {
    /// Validates `header` and writes it; pages are block-encoded.
    pub fn new(w: W, header: Header) -> Result<Self> {
        Self::with_encoding(w, header, PageEncoding::Block)
    }

    /// Like [`Encoder::new`], choosing the page encoding. [`PageEncoding::LegacyFrame`]
    /// makes files that Litestream 0.5.0–0.5.15 can read too.
    pub fn with_encoding(mut w: W, header: Header, encoding: PageEncoding) -> Result<Self> {
        header.validate()?;
        let bytes = header.encode();
        let mut hasher = FileHasher::new();
        hasher.update(&bytes);
        w.write_all(&bytes)
            .map_err(|e| Error::write(Section::Header, e))?;
        let frame_cap = BLOCK_FRAME_OVERHEAD + max_block_size(header.page_size as usize);
        Ok(Encoder {
            w,
            header,
            encoding,
            hasher,
            offset: HEADER_SIZE as u64,
            index: Vec::new(),
            pages: 0,
            last_pgno: 0,
            frame: vec![0; frame_cap],
            db_checksum: (!header.no_checksum() && header.is_snapshot())
                .then(DatabaseChecksum::new),
            post_apply_checksum: None,
        })
    }

    /// The header being written.
    pub fn header(&self) -> &Header {
        &self.header
    }

    /// Pages written so far.
    pub fn pages_written(&self) -> u32 {
        self.pages
    }

    /// Bytes written so far.
    pub fn bytes_written(&self) -> u64 {
        self.offset
    }

    fn check_page(&self, pgno: u32, data: &[u8]) -> Result<()> {
        let h = &self.header;
        let bad = |m: String| Err(Error::Encode(m));
        if data.len() != h.page_size as usize {
            return bad(format!(
                "page {pgno} is {} bytes but the page size is {}",
                data.len(),
                h.page_size
            ));
        }
        if pgno == 0 {
            return bad("page number 0 is invalid; pages start at 1".into());
        }
        if pgno > h.commit {
            return bad(format!(
                "page {pgno} is beyond the commit size of {} pages",
                h.commit
            ));
        }
        if pgno == h.lock_pgno() {
            return bad(format!(
                "page {pgno} is the lock page, which is never stored"
            ));
        }
        if pgno <= self.last_pgno {
            return bad(format!(
                "page {pgno} written after page {}; pages must be strictly ascending",
                self.last_pgno
            ));
        }
        if h.is_snapshot() {
            let mut want = self.last_pgno + 1;
            if want == h.lock_pgno() {
                want += 1;
            }
            if pgno != want {
                return bad(format!(
                    "snapshot skips from page {} to {pgno}; a snapshot holds every page",
                    self.last_pgno
                ));
            }
        }
        Ok(())
    }

    /// Compresses and writes one page. Pages must come in strictly ascending order,
    /// be at most `commit`, never the lock page, and for a snapshot (min TXID 1) every
    /// page must be present.
    pub fn write_page(&mut self, pgno: u32, data: &[u8]) -> Result<()> {
        self.check_page(pgno, data)?;
        let len = match self.encoding {
            PageEncoding::Block => {
                let n =
                    lz4_flex::block::compress_into(data, &mut self.frame[BLOCK_FRAME_OVERHEAD..])
                        .map_err(|e| {
                        Error::Encode(format!("LZ4 compression of page {pgno} failed: {e}"))
                    })?;
                self.fill_block_header(pgno, n);
                BLOCK_FRAME_OVERHEAD + n
            }
            PageEncoding::LegacyFrame => {
                self.frame.clear();
                self.frame
                    .extend_from_slice(&PageHeader { pgno, flags: 0 }.encode());
                encode_legacy_frame(data, &mut self.frame);
                self.frame.len()
            }
        };
        let prefix = match self.encoding {
            PageEncoding::Block => BLOCK_FRAME_OVERHEAD,
            PageEncoding::LegacyFrame => PAGE_HEADER_SIZE,
        };
        self.emit(pgno, data, prefix, len)
    }

    /// Writes a page whose LZ4 block the caller already has (and has verified decodes to
    /// `data`): the compactor copies winning pages this way without recompressing.
    pub(crate) fn write_page_block(&mut self, pgno: u32, data: &[u8], block: &[u8]) -> Result<()> {
        if self.encoding != PageEncoding::Block {
            return self.write_page(pgno, data);
        }
        self.check_page(pgno, data)?;
        // Written in place rather than copied into the frame buffer first.
        self.fill_block_header(pgno, block.len());
        self.hasher.update(&self.frame[..BLOCK_FRAME_OVERHEAD]);
        self.hasher.update(data);
        if let Some(sum) = &mut self.db_checksum {
            sum.add_page(pgno, data);
        }
        let io = |e| Error::write(Section::Page, e);
        self.w
            .write_all(&self.frame[..BLOCK_FRAME_OVERHEAD])
            .map_err(io)?;
        self.w.write_all(block).map_err(io)?;
        self.record(pgno, BLOCK_FRAME_OVERHEAD + block.len());
        Ok(())
    }

    fn fill_block_header(&mut self, pgno: u32, block_len: usize) {
        let hdr = PageHeader {
            pgno,
            flags: PAGE_FLAG_SIZE,
        }
        .encode();
        self.frame[..PAGE_HEADER_SIZE].copy_from_slice(&hdr);
        // A block never exceeds max_block_size(65536), far below u32::MAX.
        self.frame[PAGE_HEADER_SIZE..BLOCK_FRAME_OVERHEAD]
            .copy_from_slice(&(block_len as u32).to_be_bytes());
    }

    /// Hashes the frame's prefix and the uncompressed page, writes the frame, records it.
    fn emit(&mut self, pgno: u32, data: &[u8], prefix: usize, len: usize) -> Result<()> {
        self.hasher.update(&self.frame[..prefix]);
        self.hasher.update(data);
        if let Some(sum) = &mut self.db_checksum {
            sum.add_page(pgno, data);
        }
        self.w
            .write_all(&self.frame[..len])
            .map_err(|e| Error::write(Section::Page, e))?;
        self.record(pgno, len);
        Ok(())
    }

    /// Adds a written frame to the index and the counters.
    fn record(&mut self, pgno: u32, len: usize) {
        put_uvarint(&mut self.index, u64::from(pgno));
        put_uvarint(&mut self.index, self.offset);
        put_uvarint(&mut self.index, len as u64);
        self.offset += len as u64;
        self.pages += 1;
        self.last_pgno = pgno;
    }

    /// Sets the post-apply database checksum, required for files written without the
    /// NoChecksum flag (a snapshot's is computed, and checked against this if given).
    pub fn set_post_apply_checksum(&mut self, checksum: u64) {
        self.post_apply_checksum = Some(checksum);
    }

    /// Writes the end of the page block, the index and the trailer, flushes, and
    /// returns the writer with the trailer written.
    pub fn finish(mut self) -> Result<(W, Trailer)> {
        let h = self.header;
        if h.is_snapshot() && self.pages != h.snapshot_page_count() {
            return Err(Error::Encode(format!(
                "snapshot has {} pages but its commit size of {} pages needs {}",
                self.pages,
                h.commit,
                h.snapshot_page_count()
            )));
        }
        let post_apply = if h.no_checksum() {
            if self.post_apply_checksum.is_some_and(|c| c != 0) {
                return Err(Error::Encode(
                    "a post-apply checksum was given for a NoChecksum file".into(),
                ));
            }
            0
        } else {
            match (
                self.db_checksum.map(|s| s.value()),
                self.post_apply_checksum,
            ) {
                (Some(computed), Some(given)) if computed != given => {
                    return Err(Error::Encode(format!(
                        "post-apply checksum {given:016x} differs from the snapshot's computed {computed:016x}"
                    )));
                }
                (Some(computed), _) => computed,
                (None, Some(given)) => given,
                (None, None) => {
                    return Err(Error::Encode(
                        "a post-apply checksum is required for a file without NoChecksum".into(),
                    ));
                }
            }
        };

        let end = [0u8; PAGE_HEADER_SIZE];
        self.hasher.update(&end);
        self.w
            .write_all(&end)
            .map_err(|e| Error::write(Section::Page, e))?;

        self.index.push(0); // terminator
        let len = (self.index.len() as u64).to_be_bytes();
        self.hasher.update(&self.index);
        self.hasher.update(&len);
        self.w
            .write_all(&self.index)
            .map_err(|e| Error::write(Section::Index, e))?;
        self.w
            .write_all(&len)
            .map_err(|e| Error::write(Section::Index, e))?;

        self.hasher.update(&post_apply.to_be_bytes());
        let trailer = Trailer {
            post_apply_checksum: post_apply,
            file_checksum: self.hasher.file_checksum(),
        };
        trailer.validate(&h)?;
        self.w
            .write_all(&trailer.encode())
            .map_err(|e| Error::write(Section::Trailer, e))?;
        self.w
            .flush()
            .map_err(|e| Error::write(Section::Trailer, e))?;
        Ok((self.w, trailer))
    }
}
