//! Page frames: the 6-byte page header and the two page encodings.
//!
//! **Block** (written by Litestream 0.5.16+ and by us):
//!
//! | off | size | field |
//! |---:|---:|---|
//! | 0 | 4 | page number |
//! | 4 | 2 | flags = `0x0001` (size present) |
//! | 6 | 4 | N, compressed length |
//! | 10 | N | one raw LZ4 block that decompresses to exactly one page |
//!
//! **Legacy frame** (Litestream 0.5.0–0.5.15): flags = 0 and the header is followed
//! directly by one complete LZ4 *frame* (magic, descriptor, data blocks, end mark,
//! optional content checksum), whose length is not stored and must be parsed.
//!
//! A reader decides per page from the flags. The page block ends with a 6-byte
//! all-zero page header.

use std::io::Read;

use xxhash_rust::xxh32::xxh32;

/// Size of a page header.
pub const PAGE_HEADER_SIZE: usize = 6;
/// Page flag: a u32 compressed length follows and the payload is an LZ4 block.
pub const PAGE_FLAG_SIZE: u16 = 0x0001;
/// Bytes before the payload of a block-encoded page: header plus length.
pub const BLOCK_FRAME_OVERHEAD: usize = PAGE_HEADER_SIZE + 4;

const LZ4_FRAME_MAGIC: u32 = 0x184D_2204;

/// How a page's payload is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum PageEncoding {
    /// u32 length + raw LZ4 block (Litestream 0.5.16+). What Litestream 0.5.17 writes.
    #[default]
    Block,
    /// One LZ4 frame per page (Litestream 0.5.0–0.5.15). Readable by every 0.5.x.
    LegacyFrame,
}

/// The header in front of each page frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageHeader {
    /// Page number, 1-based; 0 only in the end-of-pages marker.
    pub pgno: u32,
    /// Page flags.
    pub flags: u16,
}

impl PageHeader {
    /// Encodes the header.
    pub fn encode(&self) -> [u8; PAGE_HEADER_SIZE] {
        let mut b = [0u8; PAGE_HEADER_SIZE];
        b[..4].copy_from_slice(&self.pgno.to_be_bytes());
        b[4..].copy_from_slice(&self.flags.to_be_bytes());
        b
    }

    /// Decodes the header (validation is [`PageHeader::encoding`]).
    pub fn decode(b: &[u8; PAGE_HEADER_SIZE]) -> PageHeader {
        PageHeader {
            pgno: u32::from_be_bytes([b[0], b[1], b[2], b[3]]),
            flags: u16::from_be_bytes([b[4], b[5]]),
        }
    }

    /// True for the all-zero header that ends the page block.
    pub fn is_end(&self) -> bool {
        self.pgno == 0 && self.flags == 0
    }

    /// Checks a page header read from a file (not the end-of-pages marker): a page
    /// number, and flags announcing a known encoding.
    pub fn validate(&self) -> Result<PageEncoding, String> {
        if self.pgno == 0 {
            return Err("page number 0 with non-zero flags".into());
        }
        self.encoding()
    }

    /// The payload encoding the flags announce, or an explanation of why they are invalid.
    pub fn encoding(&self) -> Result<PageEncoding, String> {
        match self.flags {
            PAGE_FLAG_SIZE => Ok(PageEncoding::Block),
            0 => Ok(PageEncoding::LegacyFrame),
            f => Err(format!(
                "unknown page flags 0x{f:04x} (only 0x0001, LZ4 block with size, is defined)"
            )),
        }
    }
}

/// The largest LZ4 block a page of `page_size` bytes can compress to. A length field
/// above this is corrupt, and checking it first keeps a flipped length from causing a
/// huge allocation.
pub fn max_block_size(page_size: usize) -> usize {
    lz4_flex::block::get_maximum_output_size(page_size)
}

/// The largest legacy frame we accept for one page: the worst-case block plus generous
/// room for frame headers, block headers and checksums.
fn max_legacy_frame_size(page_size: usize) -> usize {
    max_block_size(page_size) + 4096
}

/// Decompresses one LZ4 block into `out`, which must be filled exactly.
pub fn decode_block(block: &[u8], out: &mut [u8]) -> Result<(), String> {
    match lz4_flex::block::decompress_into(block, out) {
        Ok(n) if n == out.len() => Ok(()),
        Ok(n) => Err(format!(
            "LZ4 block decompresses to {n} bytes instead of one {}-byte page",
            out.len()
        )),
        Err(e) => Err(format!("LZ4 block does not decompress: {e}")),
    }
}

/// Appends one legacy LZ4 frame holding `page` to `out`, in the shape pierrec/lz4 (the Go
/// library Litestream 0.5.0–0.5.15 used) writes: FLG `0x64`, BD `0x40`, one data block
/// (stored raw if it does not compress), end mark, xxHash32 content checksum.
pub fn encode_legacy_frame(page: &[u8], out: &mut Vec<u8>) {
    const FLG: u8 = 0x64; // version 01, independent blocks, content checksum
    const BD: u8 = 0x40; // 64 KiB maximum block size
    out.extend_from_slice(&LZ4_FRAME_MAGIC.to_le_bytes());
    out.extend_from_slice(&[FLG, BD, (xxh32(&[FLG, BD], 0) >> 8) as u8]);
    let size_at = out.len();
    out.extend_from_slice(&[0; 4]);
    let start = out.len();
    out.resize(start + max_block_size(page.len()), 0);
    let n = lz4_flex::block::compress_into(page, &mut out[start..])
        .expect("the output holds the worst-case compressed size");
    let size = if n < page.len() {
        out.truncate(start + n);
        n as u32
    } else {
        out.truncate(start);
        out.extend_from_slice(page);
        page.len() as u32 | 0x8000_0000
    };
    out[size_at..size_at + 4].copy_from_slice(&size.to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes());
    out.extend_from_slice(&xxh32(page, 0).to_le_bytes());
}

/// Why a legacy frame could not be read from a stream.
#[derive(Debug)]
pub(crate) enum FrameReadError {
    Io(std::io::Error),
    Invalid(String),
}

/// The parsed frame descriptor fields we need.
struct FrameFlags {
    independent: bool,
    block_checksum: bool,
    content_checksum: bool,
    block_max: usize,
    header_len: usize,
}

/// Parses the frame descriptor at the start of `b` (which must hold at least 7 bytes,
/// more if the descriptor announces optional fields).
fn parse_frame_descriptor(b: &[u8]) -> Result<FrameFlags, String> {
    let magic = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
    if magic != LZ4_FRAME_MAGIC {
        return Err(format!(
            "legacy page (flags 0) does not start with an LZ4 frame (magic {magic:08x})"
        ));
    }
    let (flg, bd) = (b[4], b[5]);
    if flg >> 6 != 1 {
        return Err(format!("LZ4 frame version {} is not 1", flg >> 6));
    }
    if flg & 0x02 != 0 || bd & 0x8F != 0 {
        return Err("LZ4 frame descriptor has reserved bits set".into());
    }
    if flg & 0x01 != 0 {
        return Err("LZ4 frame needs a dictionary, which LTX pages never use".into());
    }
    let block_max = match (bd >> 4) & 0x7 {
        4 => 64 << 10,
        5 => 256 << 10,
        6 => 1 << 20,
        7 => 4 << 20,
        x => return Err(format!("LZ4 frame block size code {x} is invalid")),
    };
    let content_size = flg & 0x08 != 0;
    Ok(FrameFlags {
        independent: flg & 0x20 != 0,
        block_checksum: flg & 0x10 != 0,
        content_checksum: flg & 0x04 != 0,
        block_max,
        header_len: 4 + 2 + if content_size { 8 } else { 0 } + 1,
    })
}

/// Reads exactly one legacy LZ4 frame from `r` into `buf` (cleared first), parsing only
/// enough of it to find where it ends. [`decode_legacy_frame`] then checks the rest.
pub(crate) fn read_legacy_frame<R: Read>(
    r: &mut R,
    page_size: usize,
    buf: &mut Vec<u8>,
) -> Result<(), FrameReadError> {
    buf.clear();
    let limit = max_legacy_frame_size(page_size);
    let mut take = |buf: &mut Vec<u8>, n: usize| -> Result<(), FrameReadError> {
        if buf.len() + n > limit {
            return Err(FrameReadError::Invalid(format!(
                "LZ4 frame is longer than the {limit} bytes one page can need"
            )));
        }
        let start = buf.len();
        buf.resize(start + n, 0);
        r.read_exact(&mut buf[start..]).map_err(FrameReadError::Io)
    };
    take(buf, 7)?;
    let flags = parse_frame_descriptor(buf).map_err(FrameReadError::Invalid)?;
    take(buf, flags.header_len - 7)?;
    loop {
        take(buf, 4)?;
        let n = buf.len();
        let size = u32::from_le_bytes([buf[n - 4], buf[n - 3], buf[n - 2], buf[n - 1]]);
        if size == 0 {
            break;
        }
        let len = (size & 0x7FFF_FFFF) as usize;
        if len > flags.block_max {
            return Err(FrameReadError::Invalid(format!(
                "LZ4 frame block of {len} bytes exceeds the frame's {}-byte maximum",
                flags.block_max
            )));
        }
        take(buf, len + if flags.block_checksum { 4 } else { 0 })?;
    }
    if flags.content_checksum {
        take(buf, 4)?;
    }
    Ok(())
}

/// Decodes one complete legacy LZ4 frame (exactly `frame`, nothing after it) into `out`,
/// which must be filled exactly. Verifies the descriptor checksum, block checksums and
/// content checksum when present.
pub fn decode_legacy_frame(frame: &[u8], out: &mut [u8]) -> Result<(), String> {
    let short = || "LZ4 frame ends early".to_string();
    if frame.len() < 7 {
        return Err(short());
    }
    let flags = parse_frame_descriptor(frame)?;
    let hdr = frame.get(..flags.header_len).ok_or_else(short)?;
    let hc = hdr[flags.header_len - 1];
    if (xxh32(&hdr[4..flags.header_len - 1], 0) >> 8) as u8 != hc {
        return Err("LZ4 frame descriptor checksum mismatch".into());
    }
    let mut pos = flags.header_len;
    let mut filled = 0usize;
    let mut dict: Vec<u8> = Vec::new();
    loop {
        let size_bytes = frame.get(pos..pos + 4).ok_or_else(short)?;
        let size = u32::from_le_bytes([size_bytes[0], size_bytes[1], size_bytes[2], size_bytes[3]]);
        pos += 4;
        if size == 0 {
            break;
        }
        let len = (size & 0x7FFF_FFFF) as usize;
        let data = frame.get(pos..pos + len).ok_or_else(short)?;
        pos += len;
        if flags.block_checksum {
            let c = frame.get(pos..pos + 4).ok_or_else(short)?;
            if xxh32(data, 0) != u32::from_le_bytes([c[0], c[1], c[2], c[3]]) {
                return Err("LZ4 frame block checksum mismatch".into());
            }
            pos += 4;
        }
        let rest = &mut out[filled..];
        let n = if size & 0x8000_0000 != 0 {
            let dst = rest
                .get_mut(..len)
                .ok_or_else(|| "LZ4 frame holds more than one page of data".to_string())?;
            dst.copy_from_slice(data);
            len
        } else if flags.independent || filled == 0 {
            lz4_flex::block::decompress_into(data, rest)
                .map_err(|e| format!("LZ4 frame block does not decompress: {e}"))?
        } else {
            // Linked blocks may refer back into earlier output. pierrec never writes
            // them for one page, but the frame format allows it.
            dict.clear();
            dict.extend_from_slice(&out[filled.saturating_sub(64 << 10)..filled]);
            lz4_flex::block::decompress_into_with_dict(data, &mut out[filled..], &dict)
                .map_err(|e| format!("LZ4 frame block does not decompress: {e}"))?
        };
        filled += n;
    }
    if filled != out.len() {
        return Err(format!(
            "LZ4 frame decompresses to {filled} bytes instead of one {}-byte page",
            out.len()
        ));
    }
    if flags.content_checksum {
        let c = frame.get(pos..pos + 4).ok_or_else(short)?;
        if xxh32(out, 0) != u32::from_le_bytes([c[0], c[1], c[2], c[3]]) {
            return Err("LZ4 frame content checksum mismatch".into());
        }
        pos += 4;
    }
    if pos != frame.len() {
        return Err(format!(
            "{} unexpected bytes after the end of the LZ4 frame",
            frame.len() - pos
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page(seed: u8, size: usize) -> Vec<u8> {
        (0..size)
            .map(|i| if i % 7 == 0 { seed ^ (i as u8) } else { seed })
            .collect()
    }

    #[test]
    fn legacy_frame_round_trip_and_stream_length() {
        for size in [512usize, 4096, 65536] {
            for p in [
                page(3, size),
                vec![0u8; size],
                (0..size).map(|i| (i * 7919 % 251) as u8).collect(),
            ] {
                let mut frame = Vec::new();
                encode_legacy_frame(&p, &mut frame);
                let mut out = vec![0u8; size];
                decode_legacy_frame(&frame, &mut out).unwrap();
                assert_eq!(out, p);
                // The streaming reader must stop exactly at the end of the frame.
                let mut stream = frame.clone();
                stream.extend_from_slice(b"NEXT");
                let mut cursor = &stream[..];
                let mut buf = Vec::new();
                read_legacy_frame(&mut cursor, size, &mut buf).unwrap();
                assert_eq!(buf, frame);
                assert_eq!(cursor, b"NEXT");
            }
        }
    }

    #[test]
    fn legacy_frame_rejects_damage() {
        let p = page(9, 4096);
        let mut frame = Vec::new();
        encode_legacy_frame(&p, &mut frame);
        let mut out = vec![0u8; 4096];
        for i in 0..frame.len() {
            let mut f = frame.clone();
            f[i] ^= 0x55;
            if decode_legacy_frame(&f, &mut out).is_ok() {
                assert_eq!(out, p, "flip at {i} decoded to a different page");
            }
        }
        assert!(decode_legacy_frame(&frame[..frame.len() - 1], &mut out).is_err());
    }

    #[test]
    fn page_header_flags() {
        let h = PageHeader {
            pgno: 2,
            flags: PAGE_FLAG_SIZE,
        };
        assert_eq!(h.encode(), [0, 0, 0, 2, 0, 1]);
        assert_eq!(PageHeader::decode(&h.encode()), h);
        assert_eq!(h.encoding(), Ok(PageEncoding::Block));
        assert_eq!(
            PageHeader { pgno: 2, flags: 0 }.encoding(),
            Ok(PageEncoding::LegacyFrame)
        );
        assert!(PageHeader { pgno: 2, flags: 2 }.encoding().is_err());
        assert!(PageHeader { pgno: 0, flags: 0 }.is_end());
        assert!(PageHeader { pgno: 0, flags: 1 }.validate().is_err());
        assert_eq!(h.validate(), Ok(PageEncoding::Block));
    }

    #[test]
    fn block_decode_checks_length() {
        let p = page(1, 4096);
        let c = lz4_flex::block::compress(&p);
        let mut out = vec![0u8; 4096];
        decode_block(&c, &mut out).unwrap();
        assert_eq!(out, p);
        let mut small = vec![0u8; 2048];
        assert!(decode_block(&c, &mut small).is_err());
        let mut big = vec![0u8; 8192];
        assert!(decode_block(&c, &mut big).is_err());
    }
}
