//! The 16-byte trailer: post-apply database checksum and file checksum.

use crate::error::{Error, Result};
use crate::header::{CHECKSUM_FLAG, Header};

/// Size of the trailer.
pub const TRAILER_SIZE: usize = 16;

/// The last 16 bytes of an LTX file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Trailer {
    /// Database checksum after applying the file; 0 with NoChecksum.
    pub post_apply_checksum: u64,
    /// CRC-64/GO-ISO of everything before this field, with bit 63 set.
    pub file_checksum: u64,
}

impl Trailer {
    /// Encodes the trailer.
    pub fn encode(&self) -> [u8; TRAILER_SIZE] {
        let mut b = [0u8; TRAILER_SIZE];
        b[..8].copy_from_slice(&self.post_apply_checksum.to_be_bytes());
        b[8..].copy_from_slice(&self.file_checksum.to_be_bytes());
        b
    }

    /// Decodes the trailer (validation is [`Trailer::validate`]).
    pub fn decode(b: &[u8; TRAILER_SIZE]) -> Trailer {
        let mut x = [0u8; 8];
        x.copy_from_slice(&b[..8]);
        let post = u64::from_be_bytes(x);
        x.copy_from_slice(&b[8..]);
        Trailer {
            post_apply_checksum: post,
            file_checksum: u64::from_be_bytes(x),
        }
    }

    /// Checks the trailer against its file's header.
    pub fn validate(&self, header: &Header) -> Result<()> {
        let bad = |m: &str| Err(Error::InvalidTrailer(m.to_owned()));
        if header.no_checksum() {
            if self.post_apply_checksum != 0 {
                return bad("a post-apply checksum is set but the NoChecksum flag is on");
            }
        } else if self.post_apply_checksum & CHECKSUM_FLAG == 0 {
            return bad("post-apply checksum is missing bit 63 (required without NoChecksum)");
        }
        if self.file_checksum & CHECKSUM_FLAG == 0 {
            return bad("file checksum is missing bit 63");
        }
        Ok(())
    }
}
