//! Round trips, contract checks and error cases of the encoder, decoder, random-access
//! reader and compactor, on synthetic pages whose content we control.

use std::io::Cursor;

use tideline_ltx::{
    CHECKSUM_FLAG, CompactOptions, Decoder, Encoder, Error, FLAG_NO_CHECKSUM, Header,
    IndexedReader, Merger, PageEncoding, Txid, compact, database_checksum, lock_pgno,
};

/// A page that looks a little like a SQLite b-tree page: a header, a cell pointer
/// array, free space and cell content, so it compresses like one.
fn page(pgno: u32, version: u32, size: usize) -> Vec<u8> {
    let mut p = vec![0u8; size];
    p[0] = 0x0d;
    p[1..5].copy_from_slice(&pgno.to_be_bytes());
    p[5..9].copy_from_slice(&version.to_be_bytes());
    let mut x = u64::from(pgno).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ u64::from(version);
    for (i, b) in p[size / 2..].iter_mut().enumerate() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *b = if i % 3 == 0 {
            (x & 0x3f) as u8 + b'a'
        } else {
            b"row-"[i % 4]
        };
    }
    p
}

fn header(min: u64, max: u64, commit: u32, page_size: u32) -> Header {
    Header {
        flags: FLAG_NO_CHECKSUM,
        page_size,
        commit,
        min_txid: Txid(min),
        max_txid: Txid(max),
        timestamp: 1_795_517_933_079 + max as i64,
        ..Header::default()
    }
}

fn encode(h: Header, pages: &[(u32, Vec<u8>)], encoding: PageEncoding) -> Vec<u8> {
    let mut enc = Encoder::with_encoding(Vec::new(), h, encoding).unwrap();
    for (pgno, data) in pages {
        enc.write_page(*pgno, data).unwrap();
    }
    enc.finish().unwrap().0
}

/// Decoded pages: `(pgno, bytes)` in file order.
type Pages = Vec<(u32, Vec<u8>)>;

fn decode_all(file: &[u8]) -> Result<(Header, Pages), Error> {
    let mut dec = Decoder::new(file)?;
    let mut out = Vec::new();
    while let Some(pgno) = dec.next_page()? {
        out.push((pgno, dec.page().to_vec()));
    }
    Ok((*dec.header(), out))
}

#[test]
fn round_trip_every_page_size_and_encoding() {
    for page_size in [512u32, 1024, 2048, 4096, 8192, 16384, 32768, 65536] {
        for encoding in [PageEncoding::Block, PageEncoding::LegacyFrame] {
            let pages: Vec<_> = (1..=5)
                .map(|n| (n, page(n, 1, page_size as usize)))
                .collect();
            let file = encode(header(1, 3, 5, page_size), &pages, encoding);
            let (h, got) = decode_all(&file).unwrap();
            assert_eq!(h.max_txid, Txid(3));
            assert_eq!(got, pages, "page size {page_size}, {encoding:?}");

            let mut r = IndexedReader::open(Cursor::new(&file)).unwrap();
            let mut buf = vec![0u8; page_size as usize];
            for (pgno, data) in pages.iter().rev() {
                assert!(r.read_page(*pgno, &mut buf).unwrap());
                assert_eq!(&buf, data);
            }
            assert!(!r.read_page(6, &mut buf).unwrap());
        }
    }
}

#[test]
fn reference_file_layout_offsets() {
    // One page in an L0 file, as in the reference's annotated 0.5.17 hexdump: the page
    // frame starts at byte 100 and the index records (2, 100, frame length).
    let h = Header {
        commit: 4,
        wal_offset: 16512,
        wal_size: 4120,
        wal_salt1: 1,
        wal_salt2: 2,
        ..header(2, 2, 4, 4096)
    };
    let file = encode(h, &[(2, page(2, 1, 4096))], PageEncoding::Block);
    assert_eq!(&file[100..106], &[0, 0, 0, 2, 0, 1]);
    let n = u32::from_be_bytes(file[106..110].try_into().unwrap()) as usize;
    let end = 110 + n;
    assert_eq!(&file[end..end + 6], &[0; 6]);
    let r = IndexedReader::open(Cursor::new(&file)).unwrap();
    let e = r.index().get(2).unwrap();
    assert_eq!((e.offset, e.size), (100, 10 + n as u64));
    let index_len = u64::from_be_bytes(file[file.len() - 24..file.len() - 16].try_into().unwrap());
    // Entry (2, 100, 10 + n) and the terminator, then the length and the trailer.
    assert_eq!(index_len, 1 + 1 + if 10 + n < 128 { 1 } else { 2 } + 1);
    assert_eq!(file.len() as u64, (end + 6) as u64 + index_len + 8 + 16);
}

#[test]
fn encoder_enforces_the_contract() {
    let ps = 4096usize;
    type Case = (&'static str, Header, Vec<(u32, usize)>);
    let cases: Vec<Case> = vec![
        (
            "strictly ascending",
            header(2, 2, 10, 4096),
            vec![(3, ps), (3, ps)],
        ),
        (
            "strictly ascending",
            header(2, 2, 10, 4096),
            vec![(5, ps), (4, ps)],
        ),
        ("beyond the commit", header(2, 2, 10, 4096), vec![(11, ps)]),
        ("page number 0", header(2, 2, 10, 4096), vec![(0, ps)]),
        ("page size is 4096", header(2, 2, 10, 4096), vec![(1, 100)]),
        (
            "snapshot skips",
            header(1, 1, 10, 4096),
            vec![(1, ps), (3, ps)],
        ),
        (
            "lock page",
            header(2, 2, lock_pgno(4096) + 1, 4096),
            vec![(lock_pgno(4096), ps)],
        ),
    ];
    for (want, h, pages) in cases {
        let mut enc = Encoder::new(Vec::new(), h).unwrap();
        let err = pages
            .iter()
            .map(|&(pgno, len)| enc.write_page(pgno, &vec![1u8; len]))
            .find_map(Result::err)
            .unwrap_or_else(|| panic!("{want}: accepted"));
        assert!(matches!(err, Error::Encode(_)));
        assert!(err.to_string().contains(want), "{err} should say {want:?}");
    }
    // A snapshot must hold every page up to its commit.
    let mut enc = Encoder::new(Vec::new(), header(1, 1, 3, 4096)).unwrap();
    enc.write_page(1, &page(1, 1, 4096)).unwrap();
    let err = enc.finish().unwrap_err().to_string();
    assert!(err.contains("snapshot has 1 pages"), "{err}");
    // The header is validated before anything is written.
    assert!(Encoder::new(Vec::new(), header(0, 1, 3, 4096)).is_err());
}

#[test]
fn snapshot_spanning_the_lock_page_skips_it() {
    // 512-byte pages put the lock page at 2_097_153; use a commit just past it.
    let lock = lock_pgno(512);
    let h = header(2, 2, lock + 1, 512);
    let pages = vec![(lock - 1, page(1, 1, 512)), (lock + 1, page(2, 1, 512))];
    let file = encode(h, &pages, PageEncoding::Block);
    assert_eq!(decode_all(&file).unwrap().1, pages);
}

#[test]
fn checksummed_files_round_trip_and_are_verified() {
    let ps = 1024u32;
    let pages: Vec<_> = (1..=4).map(|n| (n, page(n, 7, ps as usize))).collect();
    let image: Vec<u8> = pages.iter().flat_map(|(_, d)| d.iter().copied()).collect();
    let sum = database_checksum(&image, ps).value();

    // Snapshot: the encoder computes the post-apply checksum itself.
    let h = Header {
        flags: 0,
        ..header(1, 1, 4, ps)
    };
    let file = encode(h, &pages, PageEncoding::Block);
    let dec = Decoder::new(&file[..]).unwrap();
    assert_eq!(dec.finish().unwrap().post_apply_checksum, sum);

    // A wrong post-apply checksum on a snapshot is refused by the encoder…
    let mut enc = Encoder::new(Vec::new(), h).unwrap();
    for (pgno, d) in &pages {
        enc.write_page(*pgno, d).unwrap();
    }
    enc.set_post_apply_checksum(sum ^ 1);
    assert!(enc.finish().is_err());

    // …and a snapshot whose trailer lies is caught by the decoder even though its file
    // CRC is consistent (rewrite the trailer and re-seal the CRC).
    let mut bad = file.clone();
    let n = bad.len();
    let forged = (sum ^ 2) | CHECKSUM_FLAG;
    bad[n - 16..n - 8].copy_from_slice(&forged.to_be_bytes());
    let crc = reseal(&bad);
    bad[n - 8..].copy_from_slice(&crc.to_be_bytes());
    let err = decode_all(&bad).unwrap_err();
    assert!(
        matches!(err, Error::DatabaseChecksumMismatch { .. }),
        "{err}"
    );

    // Incremental files need both checksums from the caller.
    let h = Header {
        flags: 0,
        pre_apply_checksum: sum,
        ..header(2, 2, 4, ps)
    };
    let mut enc = Encoder::new(Vec::new(), h).unwrap();
    enc.write_page(2, &page(2, 8, ps as usize)).unwrap();
    assert!(enc.finish().unwrap_err().to_string().contains("required"));
    let mut enc = Encoder::new(Vec::new(), h).unwrap();
    enc.write_page(2, &page(2, 8, ps as usize)).unwrap();
    enc.set_post_apply_checksum(CHECKSUM_FLAG | 42);
    let (file, t) = enc.finish().unwrap();
    assert_eq!(Decoder::new(&file[..]).unwrap().finish().unwrap(), t);
}

/// Recomputes the file checksum of a block-encoded file over what the format says it
/// covers (the uncompressed pages, not the stored bytes), to forge consistent files.
fn reseal(file: &[u8]) -> u64 {
    let mut r = IndexedReader::open(Cursor::new(file)).unwrap();
    let mut h = tideline_ltx::FileHasher::new();
    h.update(&file[..100]);
    let mut buf = vec![0u8; r.header().page_size as usize];
    let entries = r.index().entries().to_vec();
    for e in &entries {
        let at = e.offset as usize;
        h.update(&file[at..at + 10]);
        r.read_page(e.pgno, &mut buf).unwrap();
        h.update(&buf);
    }
    let last = entries.last().map_or(100, |e| (e.offset + e.size) as usize);
    h.update(&file[last..file.len() - 8]);
    h.file_checksum()
}

#[test]
fn decoder_rejects_structural_damage_with_typed_errors() {
    let pages: Vec<_> = (1..=3).map(|n| (n, page(n, 1, 4096))).collect();
    let file = encode(header(1, 1, 3, 4096), &pages, PageEncoding::Block);

    // Truncated anywhere: a Truncated error naming the section.
    for len in [0, 50, 99, 100, 105, 300, file.len() - 30, file.len() - 1] {
        let err = decode_all(&file[..len]).unwrap_err();
        assert!(
            matches!(err, Error::Truncated { .. } | Error::InvalidIndex(_)),
            "len {len}: {err}"
        );
        assert!(err.is_corruption());
    }
    // Trailing garbage.
    let mut long = file.clone();
    long.extend_from_slice(b"garbage");
    let err = decode_all(&long).unwrap_err();
    assert!(err.to_string().contains("after the trailer"), "{err}");
    // Not LTX at all.
    let err = decode_all(b"SQLite format 3\0 and then a database, not an LTX file at all. padding padding padding padding.").unwrap_err();
    assert!(matches!(err, Error::BadMagic { .. }), "{err}");
    assert!(err.to_string().contains("LTX1"));
    // An unknown page flag.
    let mut bad = file.clone();
    bad[105] = 0x03;
    let err = decode_all(&bad).unwrap_err();
    assert!(err.to_string().contains("unknown page flags"), "{err}");
    // A huge compressed length must not allocate or read past the file.
    let mut bad = file.clone();
    bad[106..110].copy_from_slice(&u32::MAX.to_be_bytes());
    let err = decode_all(&bad).unwrap_err();
    assert!(err.to_string().contains("compressed length"), "{err}");
}

#[test]
fn every_flipped_byte_is_rejected_or_harmless() {
    for encoding in [PageEncoding::Block, PageEncoding::LegacyFrame] {
        let pages: Vec<_> = [1u32, 2, 5, 9]
            .iter()
            .map(|&n| (n, page(n, 3, 1024)))
            .collect();
        let file = encode(header(4, 6, 9, 1024), &pages, encoding);
        let mut harmless = 0;
        for i in 0..file.len() {
            for mask in [0xFFu8, 0x01, 0x80] {
                let mut f = file.clone();
                f[i] ^= mask;
                match decode_all(&f) {
                    Err(e) => assert!(e.is_corruption(), "byte {i}: {e} is not a corruption error"),
                    Ok((_, got)) => {
                        assert_eq!(
                            got, pages,
                            "byte {i} ^ {mask:#x} decoded to different pages"
                        );
                        harmless += 1;
                    }
                }
            }
        }
        assert!(
            harmless * 100 < file.len() * 3,
            "{harmless} harmless flips of {}",
            file.len() * 3
        );
    }
}

#[test]
fn compaction_newest_wins_and_drops_pages_past_commit() {
    let ps = 512;
    let snap: Vec<_> = (1..=6).map(|n| (n, page(n, 1, ps))).collect();
    let a = encode(header(1, 1, 6, 512), &snap, PageEncoding::LegacyFrame);
    let b = encode(
        header(2, 3, 8, 512),
        &[
            (2, page(2, 2, ps)),
            (7, page(7, 2, ps)),
            (8, page(8, 2, ps)),
        ],
        PageEncoding::Block,
    );
    // The database then shrinks to 7 pages; page 8 must go.
    let c = encode(
        header(4, 4, 7, 512),
        &[(2, page(2, 4, ps)), (5, page(5, 4, ps))],
        PageEncoding::Block,
    );
    let inputs = [&a, &b, &c]
        .map(|f| Decoder::new(&f[..]).unwrap())
        .into_iter()
        .collect();
    let (out, stats) = compact(inputs, Vec::new(), CompactOptions::default()).unwrap();
    assert_eq!(stats.header.min_txid, Txid(1));
    assert_eq!(stats.header.max_txid, Txid(4));
    assert_eq!(stats.header.commit, 7);
    assert_eq!(stats.header.timestamp, header(4, 4, 7, 512).timestamp);
    assert_eq!((stats.header.wal_offset, stats.header.wal_salt1), (0, 0));
    let (_, got) = decode_all(&out).unwrap();
    let want: Vec<_> = vec![
        (1, page(1, 1, ps)),
        (2, page(2, 4, ps)),
        (3, page(3, 1, ps)),
        (4, page(4, 1, ps)),
        (5, page(5, 4, ps)),
        (6, page(6, 1, ps)),
        (7, page(7, 2, ps)),
    ];
    assert_eq!(got, want);

    // The merger alone yields the same pages, for restore.
    let inputs = [&a, &b, &c]
        .map(|f| Decoder::new(&f[..]).unwrap())
        .into_iter()
        .collect();
    let mut m = Merger::new(inputs).unwrap();
    let mut merged = Vec::new();
    while let Some((pgno, data)) = m.next_page().unwrap() {
        merged.push((pgno, data.to_vec()));
    }
    assert_eq!(merged, want);
}

#[test]
fn compaction_rejects_gaps_mixed_sizes_and_corrupt_inputs() {
    let a = encode(
        header(2, 2, 2, 512),
        &[(1, page(1, 1, 512))],
        PageEncoding::Block,
    );
    let gap = encode(
        header(4, 4, 2, 512),
        &[(1, page(1, 2, 512))],
        PageEncoding::Block,
    );
    let other = encode(
        header(3, 3, 2, 1024),
        &[(1, page(1, 2, 1024))],
        PageEncoding::Block,
    );
    let run = |files: &[&Vec<u8>]| {
        let inputs = files
            .iter()
            .map(|f| Decoder::new(&f[..]).unwrap())
            .collect();
        compact(inputs, Vec::new(), CompactOptions::default()).map(|_| ())
    };
    let err = run(&[&a, &gap]).unwrap_err().to_string();
    assert!(err.contains("TXID gap"), "{err}");
    let err = run(&[&a, &other]).unwrap_err().to_string();
    assert!(err.contains("page sizes"), "{err}");
    let err = run(&[&gap, &a]).unwrap_err().to_string();
    assert!(err.contains("out of order"), "{err}");

    // A corrupt input fails the whole compaction, even if its page loses the merge.
    let mut bad = a.clone();
    let n = bad.len();
    bad[n - 1] ^= 1;
    let next = encode(
        header(3, 3, 2, 512),
        &[(1, page(1, 3, 512))],
        PageEncoding::Block,
    );
    let err = run(&[&bad, &next]).unwrap_err();
    assert!(matches!(err, Error::FileChecksumMismatch { .. }), "{err}");
}
