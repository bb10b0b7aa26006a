//! Property tests: random page sets round-trip through every reader; compaction agrees
//! with a model; arbitrary or damaged bytes never panic the decoders and never decode
//! to pages other than the ones written.

use std::collections::BTreeMap;
use std::io::Cursor;

use proptest::prelude::*;
use tideline_ltx::{
    CompactOptions, Decoder, Encoder, FLAG_NO_CHECKSUM, Header, IndexedReader, PageEncoding, Txid,
    compact,
};

fn page_bytes(seed: u64, kind: u8, size: usize) -> Vec<u8> {
    let mut x = seed | 1;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    match kind % 3 {
        0 => vec![(seed & 0xff) as u8; size],
        1 => (0..size).map(|_| next() as u8).collect(),
        _ => (0..size)
            .map(|i| {
                if i % 16 < 4 {
                    next() as u8
                } else {
                    b"sqlite-ish"[i % 10]
                }
            })
            .collect(),
    }
}

#[derive(Debug, Clone)]
struct FileSpec {
    page_size: u32,
    min: u64,
    max: u64,
    commit: u32,
    pages: BTreeMap<u32, (u64, u8)>,
    encoding: PageEncoding,
}

impl FileSpec {
    fn header(&self) -> Header {
        Header {
            flags: FLAG_NO_CHECKSUM,
            page_size: self.page_size,
            commit: self.commit,
            min_txid: Txid(self.min),
            max_txid: Txid(self.max),
            timestamp: self.max as i64 * 1000,
            ..Header::default()
        }
    }

    fn pages(&self) -> Vec<(u32, Vec<u8>)> {
        self.pages
            .iter()
            .map(|(&pgno, &(seed, kind))| (pgno, page_bytes(seed, kind, self.page_size as usize)))
            .collect()
    }

    fn encode(&self) -> Vec<u8> {
        let mut enc = Encoder::with_encoding(Vec::new(), self.header(), self.encoding).unwrap();
        for (pgno, data) in self.pages() {
            enc.write_page(pgno, &data).unwrap();
        }
        enc.finish().unwrap().0
    }
}

fn encoding() -> impl Strategy<Value = PageEncoding> {
    prop_oneof![Just(PageEncoding::Block), Just(PageEncoding::LegacyFrame)]
}

/// A non-snapshot file (min TXID ≥ 2) with a random page subset.
fn file_spec() -> impl Strategy<Value = FileSpec> {
    (
        prop::sample::select(vec![512u32, 1024, 4096, 65536]),
        2u64..1000,
        0u64..3,
        1u32..64,
        encoding(),
    )
        .prop_flat_map(|(page_size, min, span, commit, encoding)| {
            let max_pages = if page_size == 65536 { 4 } else { 24 };
            (
                prop::collection::btree_map(1..=commit, (any::<u64>(), any::<u8>()), 0..max_pages),
                Just((page_size, min, span, commit, encoding)),
            )
        })
        .prop_map(
            |(pages, (page_size, min, span, commit, encoding))| FileSpec {
                page_size,
                min,
                max: min + span,
                commit,
                pages,
                encoding,
            },
        )
}

fn decode(file: &[u8]) -> Result<Vec<(u32, Vec<u8>)>, tideline_ltx::Error> {
    let mut dec = Decoder::new(file)?;
    let mut out = Vec::new();
    while let Some(pgno) = dec.next_page()? {
        out.push((pgno, dec.page().to_vec()));
    }
    Ok(out)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn random_files_round_trip(spec in file_spec()) {
        let file = spec.encode();
        let want = spec.pages();
        prop_assert_eq!(decode(&file).unwrap(), want.clone());

        let mut r = IndexedReader::open(Cursor::new(&file)).unwrap();
        prop_assert_eq!(r.index().len(), want.len());
        let mut buf = vec![0u8; spec.page_size as usize];
        for (pgno, data) in &want {
            prop_assert!(r.read_page(*pgno, &mut buf).unwrap());
            prop_assert_eq!(&buf, data);
        }
    }

    #[test]
    fn compaction_matches_a_model(
        specs in prop::collection::vec(file_spec(), 1..5),
    ) {
        // Chain the inputs' TXIDs and give them one page size.
        let mut specs = specs;
        let page_size = specs[0].page_size;
        let mut next = 2u64;
        for s in &mut specs {
            let span = s.max - s.min;
            s.min = next;
            s.max = next + span;
            next = s.max + 1;
            if s.page_size != page_size {
                s.page_size = page_size;
            }
        }
        let files: Vec<Vec<u8>> = specs.iter().map(FileSpec::encode).collect();
        let mut model = BTreeMap::new();
        for s in &specs {
            for (pgno, data) in s.pages() {
                model.insert(pgno, data);
            }
        }
        let commit = specs.last().unwrap().commit;
        model.retain(|&pgno, _| pgno <= commit);

        let inputs = files.iter().map(|f| Decoder::new(&f[..]).unwrap()).collect();
        let (out, stats) = compact(inputs, Vec::new(), CompactOptions::default()).unwrap();
        prop_assert_eq!(stats.header.min_txid, Txid(2));
        prop_assert_eq!(stats.header.max_txid, Txid(next - 1));
        prop_assert_eq!(stats.header.commit, commit);
        let want: Vec<_> = model.into_iter().collect();
        prop_assert_eq!(decode(&out).unwrap(), want);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..4096), header_prefix in any::<bool>()) {
        // With a valid header in front the decoder gets past the magic and into pages.
        let mut data = Vec::new();
        if header_prefix {
            let h = Header { flags: FLAG_NO_CHECKSUM, page_size: 512, commit: 100,
                min_txid: Txid(2), max_txid: Txid(2), ..Header::default() };
            data.extend_from_slice(&h.encode());
        }
        data.extend_from_slice(&bytes);
        if let Err(e) = decode(&data) {
            prop_assert!(e.is_corruption(), "{e}");
        }
        let _ = IndexedReader::open(Cursor::new(&data)).and_then(|mut r| {
            let mut buf = vec![0u8; r.header().page_size as usize];
            let pgnos: Vec<u32> = r.index().entries().iter().map(|e| e.pgno).collect();
            for pgno in pgnos { r.read_page(pgno, &mut buf)?; }
            Ok(())
        });
    }

    #[test]
    fn damaged_files_fail_or_decode_identically(
        spec in file_spec(),
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0u8..4), 1..4),
    ) {
        let file = spec.encode();
        let want = spec.pages();
        let mut f = file.clone();
        for (at, byte, op) in edits {
            if f.is_empty() { break; }
            let i = at.index(f.len());
            match op {
                0 => f[i] ^= byte | 1,
                1 => f.truncate(i),
                2 => f.insert(i, byte),
                _ => { f.remove(i); }
            }
        }
        match decode(&f) {
            Err(e) => prop_assert!(e.is_corruption(), "{e}"),
            Ok(got) => prop_assert_eq!(got, want),
        }
        // Random access must not panic either (it cannot verify the CRC, so only
        // absence of panics is asserted here).
        if let Ok(mut r) = IndexedReader::open(Cursor::new(&f)) {
            let mut buf = vec![0u8; r.header().page_size as usize];
            let pgnos: Vec<u32> = r.index().entries().iter().map(|e| e.pgno).collect();
            for pgno in pgnos { let _ = r.read_page(pgno, &mut buf); }
        }
    }
}
