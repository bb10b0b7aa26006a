//! The page index: where each page's frame sits in the file, for random access.
//!
//! After the end-of-pages header come, per page in ascending page number, three
//! unsigned LEB128 varints (page number, absolute offset of the frame's page header,
//! frame length), then a varint 0, then a big-endian u64 with the byte length of the
//! entries plus terminator. The 16-byte trailer follows, so a reader that knows the file
//! size finds the index from the last 24 bytes.

use crate::error::{Error, Result};
use crate::header::HEADER_SIZE;
use crate::page::PAGE_HEADER_SIZE;
use crate::trailer::TRAILER_SIZE;

/// Bytes at the end of a file that locate the index: its u64 length and the trailer.
pub const INDEX_LOCATOR_SIZE: usize = 8 + TRAILER_SIZE;

/// How many tail bytes a first ranged read should fetch; most indexes fit (Litestream
/// reads the same amount).
pub const DEFAULT_TAIL_READ: usize = 32 * 1024;

/// One page's location.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageIndexEntry {
    /// Page number.
    pub pgno: u32,
    /// Absolute file offset of the frame's 6-byte page header.
    pub offset: u64,
    /// Frame length: page header, size field and payload.
    pub size: u64,
}

/// Appends `v` as an unsigned LEB128 varint (Go's `binary.PutUvarint`).
pub(crate) fn put_uvarint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Reads an unsigned LEB128 varint from the front of `b`; returns it and its length.
pub(crate) fn get_uvarint(b: &[u8]) -> Option<(u64, usize)> {
    let mut v = 0u64;
    for (i, &byte) in b.iter().enumerate().take(10) {
        if i == 9 && byte > 1 {
            return None; // overflows u64
        }
        v |= u64::from(byte & 0x7F) << (7 * i);
        if byte < 0x80 {
            return Some((v, i + 1));
        }
    }
    None
}

/// Where the index sits in a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexLocation {
    /// File offset of the first index entry.
    pub offset: u64,
    /// Length of the entries plus terminator (not the u64 length field).
    pub len: u64,
}

/// Locates the index from the last [`INDEX_LOCATOR_SIZE`] (or more) bytes of a file of
/// `file_size` bytes.
pub fn locate_index(tail: &[u8], file_size: u64) -> Result<IndexLocation> {
    if tail.len() < INDEX_LOCATOR_SIZE || file_size < tail.len() as u64 {
        return Err(Error::InvalidIndex(format!(
            "need the last {INDEX_LOCATOR_SIZE} bytes of the file to find the index, got {} of a {file_size}-byte file",
            tail.len()
        )));
    }
    let at = tail.len() - INDEX_LOCATOR_SIZE;
    let mut len = [0u8; 8];
    len.copy_from_slice(&tail[at..at + 8]);
    let len = u64::from_be_bytes(len);
    // Smallest file: header, end-of-pages header, terminator, length, trailer.
    let min_end = (HEADER_SIZE + PAGE_HEADER_SIZE) as u64;
    let end = file_size - INDEX_LOCATOR_SIZE as u64;
    if len == 0 || len > end.saturating_sub(min_end) {
        return Err(Error::InvalidIndex(format!(
            "recorded index length {len} does not fit in a {file_size}-byte file"
        )));
    }
    Ok(IndexLocation {
        offset: end - len,
        len,
    })
}

/// The decoded page index, sorted by page number.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PageIndex {
    entries: Vec<PageIndexEntry>,
}

impl PageIndex {
    /// Decodes index entries plus terminator (`bytes` exactly as located by
    /// [`locate_index`]), checking that entries are ascending, that frames lie between
    /// the header and `index_offset`, and do not overlap.
    pub fn decode(bytes: &[u8], index_offset: u64) -> Result<PageIndex> {
        let bad = |m: String| Err(Error::InvalidIndex(m));
        let mut entries = Vec::new();
        let mut pos = 0usize;
        let mut next_free = HEADER_SIZE as u64;
        let read = |pos: &mut usize| -> Result<u64> {
            let (v, n) = get_uvarint(&bytes[*pos..]).ok_or_else(|| {
                Error::InvalidIndex(format!("malformed varint at index byte {pos}"))
            })?;
            *pos += n;
            Ok(v)
        };
        loop {
            let pgno = read(&mut pos)?;
            if pgno == 0 {
                break;
            }
            let offset = read(&mut pos)?;
            let size = read(&mut pos)?;
            let Ok(pgno) = u32::try_from(pgno) else {
                return bad(format!("page number {pgno} does not fit in 32 bits"));
            };
            if let Some(prev) = entries.last().map(|e: &PageIndexEntry| e.pgno)
                && pgno <= prev
            {
                return bad(format!(
                    "page {pgno} follows page {prev}; entries must ascend"
                ));
            }
            if offset < next_free || size < PAGE_HEADER_SIZE as u64 + 1 {
                return bad(format!(
                    "page {pgno} at offset {offset} size {size} overlaps the header or the previous frame"
                ));
            }
            next_free = offset.saturating_add(size);
            // The end-of-pages header must still fit before the index.
            if next_free + PAGE_HEADER_SIZE as u64 > index_offset {
                return bad(format!(
                    "page {pgno} frame ends at {next_free}, past the page block"
                ));
            }
            entries.push(PageIndexEntry { pgno, offset, size });
        }
        if pos != bytes.len() {
            return bad(format!(
                "{} bytes after the index terminator",
                bytes.len() - pos
            ));
        }
        Ok(PageIndex { entries })
    }

    /// Decodes the index from the last bytes of a file, if `tail` reaches back far
    /// enough; `Ok(None)` means fetch `file_size - locate_index(..).offset + ...` bytes
    /// (see [`PageIndex::tail_len_needed`]) and try again.
    pub fn from_tail(tail: &[u8], file_size: u64) -> Result<Option<PageIndex>> {
        let loc = locate_index(tail, file_size)?;
        let needed = Self::tail_len_for(loc, file_size);
        if (tail.len() as u64) < needed {
            return Ok(None);
        }
        let start = tail.len() - needed as usize;
        PageIndex::decode(&tail[start..start + loc.len as usize], loc.offset).map(Some)
    }

    /// How many tail bytes hold the whole index for a file whose last bytes are `tail`.
    pub fn tail_len_needed(tail: &[u8], file_size: u64) -> Result<u64> {
        Ok(Self::tail_len_for(
            locate_index(tail, file_size)?,
            file_size,
        ))
    }

    fn tail_len_for(loc: IndexLocation, file_size: u64) -> u64 {
        file_size - loc.offset
    }

    /// The entries in page order.
    pub fn entries(&self) -> &[PageIndexEntry] {
        &self.entries
    }

    /// Number of pages in the file.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True if the file holds no pages.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The location of page `pgno`, if the file holds it.
    pub fn get(&self, pgno: u32) -> Option<PageIndexEntry> {
        self.entries
            .binary_search_by_key(&pgno, |e| e.pgno)
            .ok()
            .map(|i| self.entries[i])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_match_go_uvarint() {
        for (v, bytes) in [
            (0u64, vec![0u8]),
            (2, vec![2]),
            (100, vec![100]),
            (74, vec![0x4a]),
            (300, vec![0xac, 0x02]),
            (
                u64::MAX,
                vec![0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01],
            ),
        ] {
            let mut out = Vec::new();
            put_uvarint(&mut out, v);
            assert_eq!(out, bytes);
            assert_eq!(get_uvarint(&out), Some((v, out.len())));
        }
        assert_eq!(get_uvarint(&[0x80]), None);
        assert_eq!(get_uvarint(&[0xff; 10]), None);
    }

    #[test]
    fn decodes_reference_index() {
        // The index of the reference's 208-byte L0 file: page 2 at 100, 74 bytes.
        let idx = PageIndex::decode(&[0x02, 0x64, 0x4a, 0x00], 180).unwrap();
        assert_eq!(
            idx.get(2),
            Some(PageIndexEntry {
                pgno: 2,
                offset: 100,
                size: 74
            })
        );
        assert_eq!(idx.get(3), None);
        let mut tail = vec![0x02, 0x64, 0x4a, 0x00];
        tail.extend_from_slice(&4u64.to_be_bytes());
        tail.extend_from_slice(&[0u8; 16]);
        assert_eq!(
            locate_index(&tail, 208).unwrap(),
            IndexLocation {
                offset: 180,
                len: 4
            }
        );
        assert_eq!(PageIndex::from_tail(&tail, 208).unwrap(), Some(idx));
        assert_eq!(PageIndex::from_tail(&tail[2..], 208).unwrap(), None);
        assert_eq!(PageIndex::tail_len_needed(&tail[2..], 208).unwrap(), 28);
    }

    #[test]
    fn rejects_bad_indexes() {
        assert!(PageIndex::decode(&[0x03, 0x64, 0x4a, 0x02, 0x64, 0x4a, 0x00], 400).is_err());
        assert!(PageIndex::decode(&[0x02, 0x10, 0x4a, 0x00], 400).is_err());
        assert!(PageIndex::decode(&[0x02, 0x64, 0x4a, 0x00, 0x00], 400).is_err());
        assert!(PageIndex::decode(&[0x02, 0x64, 0x4a, 0x00], 150).is_err());
        let mut tail = vec![0u8; 24];
        tail[..8].copy_from_slice(&1000u64.to_be_bytes());
        assert!(locate_index(&tail, 208).is_err());
    }
}
