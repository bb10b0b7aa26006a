//! Random access to single pages through the page index.
//!
//! Reads the header and the tail of the file (one [`DEFAULT_TAIL_READ`] read, a second
//! only if the index is larger), then any page with one seek and one read of exactly
//! its frame. For browsing restore points and for fetching single pages with ranged
//! requests. It cannot verify the file checksum (that needs every byte): use the
//! streaming [`crate::Decoder`] where integrity matters.

use std::io::{Read, Seek, SeekFrom};

use crate::error::{Error, Result, Section};
use crate::header::{HEADER_SIZE, Header};
use crate::index::{DEFAULT_TAIL_READ, INDEX_LOCATOR_SIZE, PageIndex};
use crate::page::{
    BLOCK_FRAME_OVERHEAD, PAGE_HEADER_SIZE, PageEncoding, PageHeader, decode_block,
    decode_legacy_frame,
};

/// Decodes one page frame (`frame` = exactly the bytes the index entry names) into
/// `out`, checking that it is page `pgno`.
pub fn decode_frame(frame: &[u8], pgno: u32, out: &mut [u8]) -> Result<(), String> {
    let hb: &[u8; PAGE_HEADER_SIZE] = frame
        .get(..PAGE_HEADER_SIZE)
        .and_then(|b| b.try_into().ok())
        .ok_or("frame is shorter than a page header")?;
    let ph = PageHeader::decode(hb);
    if ph.pgno != pgno {
        return Err(format!(
            "frame holds page {} where the index says {pgno}",
            ph.pgno
        ));
    }
    match ph.encoding()? {
        PageEncoding::Block => {
            let nb = frame
                .get(PAGE_HEADER_SIZE..BLOCK_FRAME_OVERHEAD)
                .ok_or("frame ends inside its length field")?;
            let n = u32::from_be_bytes([nb[0], nb[1], nb[2], nb[3]]) as usize;
            if n != frame.len() - BLOCK_FRAME_OVERHEAD {
                return Err(format!(
                    "frame length field says {n} bytes but the index gives {}",
                    frame.len() - BLOCK_FRAME_OVERHEAD
                ));
            }
            decode_block(&frame[BLOCK_FRAME_OVERHEAD..], out)
        }
        PageEncoding::LegacyFrame => decode_legacy_frame(&frame[PAGE_HEADER_SIZE..], out),
    }
}

/// An LTX file opened for random page reads.
#[derive(Debug)]
pub struct IndexedReader<R: Read + Seek> {
    r: R,
    header: Header,
    index: PageIndex,
    file_size: u64,
    frame: Vec<u8>,
}

impl<R: Read + Seek> IndexedReader<R> {
    /// Reads the header and the page index.
    pub fn open(mut r: R) -> Result<Self> {
        let io = |e| Error::read(Section::Header, 0, e);
        let file_size = r.seek(SeekFrom::End(0)).map_err(io)?;
        let min = (HEADER_SIZE + PAGE_HEADER_SIZE + 1 + INDEX_LOCATOR_SIZE) as u64;
        if file_size < min {
            return Err(Error::Truncated {
                section: Section::Header,
                offset: file_size,
            });
        }
        let mut hb = [0u8; HEADER_SIZE];
        r.seek(SeekFrom::Start(0)).map_err(io)?;
        r.read_exact(&mut hb).map_err(io)?;
        let header = Header::decode(&hb)?;

        let read_tail = |r: &mut R, len: u64| -> Result<Vec<u8>> {
            let io = |e| Error::read(Section::Index, file_size - len, e);
            let mut tail = vec![0u8; len as usize];
            r.seek(SeekFrom::Start(file_size - len)).map_err(io)?;
            r.read_exact(&mut tail).map_err(io)?;
            Ok(tail)
        };
        let body = file_size - HEADER_SIZE as u64;
        let mut tail = read_tail(&mut r, body.min(DEFAULT_TAIL_READ as u64))?;
        let index = match PageIndex::from_tail(&tail, file_size)? {
            Some(index) => index,
            None => {
                let need = PageIndex::tail_len_needed(&tail, file_size)?;
                tail = read_tail(&mut r, need)?;
                PageIndex::from_tail(&tail, file_size)?
                    .ok_or_else(|| Error::InvalidIndex("index moved between reads".into()))?
            }
        };
        let lock = header.lock_pgno();
        if let Some(e) = index
            .entries()
            .iter()
            .find(|e| e.pgno > header.commit || e.pgno == lock)
        {
            return Err(Error::InvalidIndex(format!(
                "page {} is the lock page or beyond the commit size of {} pages",
                e.pgno, header.commit
            )));
        }
        if header.is_snapshot() && index.len() != header.snapshot_page_count() as usize {
            return Err(Error::InvalidIndex(format!(
                "snapshot index lists {} pages but the commit size needs {}",
                index.len(),
                header.snapshot_page_count()
            )));
        }
        Ok(IndexedReader {
            r,
            header,
            index,
            file_size,
            frame: Vec::new(),
        })
    }

    /// The file's header.
    pub fn header(&self) -> &Header {
        &self.header
    }

    /// The page index.
    pub fn index(&self) -> &PageIndex {
        &self.index
    }

    /// The file's size in bytes.
    pub fn file_size(&self) -> u64 {
        self.file_size
    }

    /// Reads page `pgno` into `out` (one page long). Returns `false` if the file does
    /// not hold that page.
    pub fn read_page(&mut self, pgno: u32, out: &mut [u8]) -> Result<bool> {
        let Some(e) = self.index.get(pgno) else {
            return Ok(false);
        };
        if out.len() != self.header.page_size as usize {
            return Err(Error::Encode(format!(
                "output buffer is {} bytes, not one {}-byte page",
                out.len(),
                self.header.page_size
            )));
        }
        let io = |err| Error::read(Section::Page, e.offset, err);
        self.frame.resize(e.size as usize, 0);
        self.r.seek(SeekFrom::Start(e.offset)).map_err(io)?;
        self.r.read_exact(&mut self.frame).map_err(io)?;
        decode_frame(&self.frame, pgno, out).map_err(|reason| Error::InvalidPage {
            offset: e.offset,
            pgno,
            reason,
        })?;
        Ok(true)
    }
}
