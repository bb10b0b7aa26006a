//! Merging several LTX files: the k-way merge behind compaction and restore.
//!
//! Inputs are ordered oldest to newest. Pages are produced in ascending page number;
//! when several inputs hold a page the newest wins; pages above the newest input's
//! commit size are dropped (the database shrank). Every input is fully decoded, so every
//! input's file checksum is verified before the merge reports success.
//!
//! Memory is one page and one compressed block per input plus a heap of `k` entries,
//! whatever the file sizes. [`compact`] copies each winning page's LZ4 block verbatim
//! (the file checksum covers uncompressed bytes, so this is exact), which makes
//! compaction cost about one decode of the inputs rather than a decode plus a
//! recompression.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::io::{Read, Write};

use crate::decoder::Decoder;
use crate::encoder::Encoder;
use crate::error::{Error, Result};
use crate::header::{FLAG_NO_CHECKSUM, Header};
use crate::trailer::Trailer;

/// A k-way merge over decoders of LTX files, newest page wins.
#[derive(Debug)]
pub struct Merger<R: Read> {
    inputs: Vec<Decoder<R>>,
    /// `(pgno, newest-first input index)` of each input's current page, smallest
    /// page first and, among equal pages, the newest input first.
    heap: BinaryHeap<Reverse<(u32, Reverse<usize>)>>,
    /// Input whose page was returned last; advanced on the next call.
    pending: Option<usize>,
    header: Header,
    started: bool,
    trailers: Vec<Option<Trailer>>,
}

impl<R: Read> Merger<R> {
    /// Prepares a merge of `inputs` (oldest first). They must share a page size and
    /// cover TXIDs without gaps (overlaps are fine: a restore plan may combine a
    /// snapshot with a compaction that also starts at TXID 1).
    pub fn new(inputs: Vec<Decoder<R>>) -> Result<Self> {
        let header = merged_header(inputs.iter().map(|d| d.header()))?;
        let n = inputs.len();
        Ok(Merger {
            inputs,
            heap: BinaryHeap::with_capacity(n),
            pending: None,
            header,
            started: false,
            trailers: vec![None; n],
        })
    }

    /// The header of the merged result: TXIDs spanning all inputs, the newest input's
    /// commit and timestamp, no WAL fields. NoChecksum unless every input has checksums.
    pub fn header(&self) -> &Header {
        &self.header
    }

    /// Post-apply checksum of the newest input (known once the merge has ended).
    pub fn post_apply_checksum(&self) -> Option<u64> {
        self.trailers
            .last()
            .copied()
            .flatten()
            .map(|t| t.post_apply_checksum)
    }

    fn advance(&mut self, i: usize) -> Result<()> {
        match self.inputs[i].next_page()? {
            Some(pgno) => self.heap.push(Reverse((pgno, Reverse(i)))),
            None => self.trailers[i] = self.inputs[i].trailer(),
        }
        Ok(())
    }

    /// The next merged page as `(pgno, bytes)`, or `None` once every input has been read
    /// to its end and verified.
    pub fn next_page(&mut self) -> Result<Option<(u32, &[u8])>> {
        Ok(self
            .next_winner()?
            .map(|(i, pgno)| (pgno, self.inputs[i].page())))
    }

    /// Like [`Merger::next_page`], with the winner's LZ4 block if it was block-encoded.
    #[allow(clippy::type_complexity)]
    pub(crate) fn next_page_with_block(&mut self) -> Result<Option<(u32, &[u8], Option<&[u8]>)>> {
        Ok(self.next_winner()?.map(|(i, pgno)| {
            let d = &self.inputs[i];
            (pgno, d.page(), d.block())
        }))
    }

    /// Advances to the next page to emit; returns the winning input and the page number.
    fn next_winner(&mut self) -> Result<Option<(usize, u32)>> {
        if !self.started {
            self.started = true;
            for i in 0..self.inputs.len() {
                self.advance(i)?;
            }
        }
        if let Some(i) = self.pending.take() {
            self.advance(i)?;
        }
        let commit = self.header.commit;
        while let Some(Reverse((pgno, Reverse(winner)))) = self.heap.pop() {
            // Older inputs holding the same page lose; move them on.
            while let Some(&Reverse((p, Reverse(loser)))) = self.heap.peek() {
                if p != pgno {
                    break;
                }
                self.heap.pop();
                self.advance(loser)?;
            }
            if pgno > commit {
                // The database shrank below this page; only the decode (for the
                // checksum) is needed.
                self.advance(winner)?;
                continue;
            }
            self.pending = Some(winner);
            return Ok(Some((winner, pgno)));
        }
        Ok(None)
    }
}

/// The header of a merge of files with these headers (oldest first).
fn merged_header<'a>(mut headers: impl Iterator<Item = &'a Header>) -> Result<Header> {
    let bad = |m: String| Err(Error::Compaction(m));
    let Some(first) = headers.next() else {
        return bad("no input files".into());
    };
    let mut out = Header {
        wal_offset: 0,
        wal_size: 0,
        wal_salt1: 0,
        wal_salt2: 0,
        node_id: 0,
        ..*first
    };
    for h in headers {
        if h.page_size != out.page_size {
            return bad(format!(
                "inputs have different page sizes ({} and {})",
                out.page_size, h.page_size
            ));
        }
        if h.min_txid.0 > out.max_txid.0 + 1 {
            return bad(format!(
                "TXID gap: an input ends at {} and the next starts at {}",
                out.max_txid, h.min_txid
            ));
        }
        if h.max_txid <= out.max_txid {
            return bad(format!(
                "inputs out of order: {}-{} does not extend past {}",
                h.min_txid, h.max_txid, out.max_txid
            ));
        }
        out.max_txid = h.max_txid;
        out.commit = h.commit;
        out.timestamp = h.timestamp;
        out.flags |= h.flags & FLAG_NO_CHECKSUM;
    }
    if out.no_checksum() {
        out.pre_apply_checksum = 0;
    }
    Ok(out)
}

/// Options for [`compact`].
#[derive(Debug, Clone, Copy, Default)]
pub struct CompactOptions {
    /// Timestamp of the output; by default the newest input's, as Litestream does.
    pub timestamp: Option<i64>,
}

/// What a compaction did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CompactStats {
    /// Header of the written file.
    pub header: Header,
    /// Trailer of the written file.
    pub trailer: Trailer,
    /// Pages written.
    pub pages: u32,
}

/// Merges `inputs` (oldest first) into one LTX file written to `w`, verifying every
/// input. The output's TXID range spans the inputs; pages are the newest version of
/// each, up to the newest input's commit.
pub fn compact<R: Read, W: Write>(
    inputs: Vec<Decoder<R>>,
    w: W,
    opts: CompactOptions,
) -> Result<(W, CompactStats)> {
    let mut merger = Merger::new(inputs)?;
    let mut header = *merger.header();
    if let Some(ts) = opts.timestamp {
        header.timestamp = ts;
    }
    let mut enc = Encoder::new(w, header)?;
    while let Some((pgno, data, block)) = merger.next_page_with_block()? {
        match block {
            Some(block) => enc.write_page_block(pgno, data, block)?,
            None => enc.write_page(pgno, data)?,
        }
    }
    if !header.no_checksum()
        && let Some(c) = merger.post_apply_checksum()
    {
        enc.set_post_apply_checksum(c);
    }
    let pages = enc.pages_written();
    let (w, trailer) = enc.finish()?;
    Ok((
        w,
        CompactStats {
            header,
            trailer,
            pages,
        },
    ))
}
