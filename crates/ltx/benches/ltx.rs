//! Throughput benchmarks of the LTX codec over pages of a real SQLite database.
//!
//! Setup builds a ~24 MiB SQLite database with rusqlite in a temporary directory
//! (page size 4096, WAL mode, then `wal_checkpoint(TRUNCATE)`): users, posts, comments
//! and attachments with integer keys, generated names, e-mails, sentences and JSON from
//! a seeded PRNG, modest blobs and secondary indexes, followed by updates and deletes so
//! pages are not perfectly packed. Its pages (`page_size` chunks of the file) are the
//! input of every benchmark; the database size, page count and LZ4 ratio are printed
//! once to stderr.
//!
//! Every group reports `Throughput::Bytes` of *uncompressed page data*, so the MB/s
//! figures compare directly across groups:
//!
//! * `lz4_raw/compress`, `lz4_raw/decompress`: bare `lz4_flex::block::compress_into` /
//!   `decompress_into` over the same pages with reused buffers: the ceiling the codec is
//!   measured against;
//! * `ltx_write/snapshot`: the whole database encoded as one snapshot LTX file (TXID 1,
//!   NoChecksum) into a reused `Vec<u8>`. Target: **≥ 80 %** of `lz4_raw/compress`;
//! * `ltx_decode/snapshot`: that file decoded with [`Decoder`] to the end (so the file
//!   checksum, index and trailer are verified). Target: **≥ 80 %** of
//!   `lz4_raw/decompress`;
//! * `page_iteration/indexed_read_all`: every page read through [`IndexedReader`] over a
//!   `Cursor` (opened once, outside the timed loop); `page_iteration/open_and_read_all`
//!   includes the open (header and index parse);
//! * `compaction/compact_8`: [`compact`] of 8 L0-like files (a snapshot at TXID 1, then
//!   TXIDs 2..=8 each holding a random ~10 % of the pages, modified) into a reused
//!   `Vec<u8>`; `compaction/decode_inputs_once` decodes the same 8 files once each
//!   (the baseline: compaction must verify every input anyway). Target: `compact_8`
//!   **≤ 1.5×** the time of `decode_inputs_once`. `compaction/compact_2_snapshot_plus_l1`
//!   merges the snapshot with the compaction of TXIDs 2..=8 (the L1-into-snapshot case).
//!   All three count the page bytes of their inputs.

use std::hint::black_box;
use std::io::Cursor;
use std::sync::OnceLock;
use std::time::Duration;

use criterion::{BenchmarkGroup, Criterion, SamplingMode, Throughput, measurement::WallTime};
use tideline_ltx::{
    CompactOptions, Decoder, Encoder, FLAG_NO_CHECKSUM, Header, IndexedReader, Txid, compact,
    lock_pgno,
};

const PAGE_SIZE: usize = 4096;
const TIMESTAMP: i64 = 1_700_000_000_000;
/// Files merged by `compaction/compact_8`.
const COMPACT_INPUTS: u64 = 8;

// ---------------------------------------------------------------------------------------
// Deterministic content
// ---------------------------------------------------------------------------------------

/// SplitMix64: small, seeded, good enough for test data.
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n`.
    fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    /// Uniform in `lo..=hi`.
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi - lo + 1)
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len() as u64) as usize]
    }
}

#[rustfmt::skip]
const FIRST_NAMES: &[&str] = &[
    "Alice", "Bob", "Carol", "David", "Emma", "Farid", "Grace", "Hiro", "Ines", "James",
    "Keiko", "Liam", "Maria", "Noah", "Olga", "Pedro", "Quinn", "Rosa", "Samir", "Tara",
    "Umar", "Valentina", "Wei", "Ximena", "Yusuf", "Zoe", "Ahmed", "Beatriz", "Chen",
    "Dmitri", "Elena", "Fatima", "Giulia", "Hannah", "Ivan", "Jorge", "Katarzyna", "Lucas",
    "Mei", "Nadia", "Oscar", "Priya", "Rafael", "Sofia", "Thomas", "Ursula", "Victor",
];

#[rustfmt::skip]
const LAST_NAMES: &[&str] = &[
    "Smith", "Johnson", "Garcia", "Müller", "Rossi", "Tanaka", "Kowalski", "Nguyen",
    "Silva", "Dubois", "Andersson", "Okafor", "Patel", "Kim", "Hernández", "Novak",
    "O'Brien", "Ivanova", "Cohen", "Yamamoto", "Fischer", "Moreau", "Santos", "Jensen",
    "Costa", "Haddad", "Lindqvist", "Papadopoulos", "Schmidt", "Wójcik", "Zhang", "Li",
];

#[rustfmt::skip]
const DOMAINS: &[&str] = &[
    "example.com", "mail.example.org", "fastmail.test", "inbox.example.net", "corp.example",
    "university.example.edu", "gmail.example", "proton.example",
];

#[rustfmt::skip]
const CITIES: &[&str] = &[
    "Lisbon", "Osaka", "Toronto", "Nairobi", "Berlin", "São Paulo", "Melbourne", "Seoul",
    "Warsaw", "Austin", "Lyon", "Bangalore", "Reykjavík", "Cape Town", "Montréal", "Oslo",
    "Buenos Aires", "Istanbul", "Hanoi", "Dublin",
];

#[rustfmt::skip]
const WORDS: &[&str] = &[
    "the", "of", "and", "to", "in", "a", "is", "that", "for", "it", "as", "was", "with",
    "be", "by", "on", "not", "he", "this", "are", "or", "his", "from", "at", "which", "but",
    "have", "an", "had", "they", "you", "were", "their", "one", "all", "we", "can", "her",
    "has", "there", "been", "if", "more", "when", "will", "would", "who", "so", "no",
    "database", "replica", "snapshot", "server", "storage", "backup", "restore", "latency",
    "throughput", "configuration", "deployment", "morning", "weekend", "garden", "coffee",
    "mountain", "river", "bicycle", "kitchen", "library", "window", "harbour", "journey",
    "quickly", "slowly", "carefully", "honestly", "yesterday", "tomorrow", "finally",
    "beautiful", "strange", "ancient", "bright", "quiet", "heavy", "simple", "curious",
    "remember", "discover", "explain", "consider", "imagine", "develop", "measure",
    "question", "answer", "problem", "solution", "experience", "community", "history",
    "weather", "market", "project", "schedule", "meeting", "release", "version", "feature",
    "performance", "customer", "invoice", "shipment", "warehouse", "recipe", "festival",
    "neighbour", "holiday", "airport", "ticket", "museum", "painting", "concert",
    "orchestra", "football", "election", "economy", "research", "experiment", "hypothesis",
    "evidence",
];

#[rustfmt::skip]
const TAGS: &[&str] = &[
    "rust", "sqlite", "travel", "cooking", "music", "science", "politics", "sports",
    "photography", "books", "gardening", "devops", "finance", "health", "art", "history",
];

#[rustfmt::skip]
const ACTIONS: &[&str] = &[
    "login", "logout", "view", "comment", "like", "share", "upload", "purchase", "refund",
    "password_reset",
];

#[rustfmt::skip]
const MIMES: &[&str] = &[
    "image/jpeg", "image/png", "application/octet-stream", "application/x-sensor",
];

fn name(rng: &mut Rng) -> (String, String) {
    (
        rng.pick(FIRST_NAMES).to_owned(),
        rng.pick(LAST_NAMES).to_owned(),
    )
}

fn email(rng: &mut Rng, first: &str, last: &str) -> String {
    let ascii = |s: &str| -> String {
        s.chars()
            .filter(char::is_ascii_alphabetic)
            .collect::<String>()
            .to_lowercase()
    };
    let sep = rng.pick(&[".", "_", ""]);
    let num = if rng.chance(40) {
        rng.below(1000).to_string()
    } else {
        String::new()
    };
    format!(
        "{}{sep}{}{num}@{}",
        ascii(first),
        ascii(last),
        rng.pick(DOMAINS)
    )
}

fn sentence(rng: &mut Rng, out: &mut String) {
    let n = rng.range(5, 18);
    for i in 0..n {
        let w = rng.pick(WORDS);
        if i == 0 {
            let mut c = w.chars();
            if let Some(f) = c.next() {
                out.extend(f.to_uppercase());
                out.push_str(c.as_str());
            }
        } else {
            out.push(' ');
            out.push_str(w);
            if rng.chance(6) {
                out.push(',');
            }
        }
    }
    out.push_str(rng.pick(&[".", ".", ".", "!", "?"]));
}

fn paragraph(rng: &mut Rng, min: u64, max: u64) -> String {
    let mut s = String::new();
    for i in 0..rng.range(min, max) {
        if i > 0 {
            s.push(' ');
        }
        sentence(rng, &mut s);
    }
    s
}

fn title(rng: &mut Rng) -> String {
    let mut s = String::new();
    sentence(rng, &mut s);
    s.truncate(s.len().min(80));
    s
}

fn tags(rng: &mut Rng) -> String {
    let n = rng.range(1, 4);
    (0..n).map(|_| rng.pick(TAGS)).collect::<Vec<_>>().join(",")
}

/// An attachment: either incompressible (like a JPEG thumbnail) or a little-endian f32
/// sensor series with small steps.
fn blob(rng: &mut Rng, mime: &str) -> Vec<u8> {
    let len = rng.range(200, 2500) as usize;
    if mime.starts_with("image/") {
        (0..len).map(|_| rng.next_u64() as u8).collect()
    } else {
        let mut v = Vec::with_capacity(len);
        let mut x = rng.below(1000) as f32 / 10.0;
        while v.len() + 4 <= len {
            x += (rng.below(200) as f32 - 100.0) / 1000.0;
            v.extend_from_slice(&x.to_le_bytes());
        }
        v
    }
}

// ---------------------------------------------------------------------------------------
// The database
// ---------------------------------------------------------------------------------------

const USERS: u64 = 20_000;
const POSTS: u64 = 14_000;
const COMMENTS: u64 = 30_000;
const ATTACHMENTS: u64 = 2_000;
const EVENTS: u64 = 26_000;

/// Builds the database and returns its file's bytes.
fn build_database() -> Vec<u8> {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("bench.db");
    let mut conn = rusqlite::Connection::open(&path).expect("open database");
    conn.pragma_update(None, "page_size", PAGE_SIZE as i64)
        .expect("page_size");
    let mode: String = conn
        .query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))
        .expect("journal_mode");
    assert_eq!(mode, "wal");
    conn.execute_batch(
        "CREATE TABLE users (
             id INTEGER PRIMARY KEY, first_name TEXT NOT NULL, last_name TEXT NOT NULL,
             email TEXT NOT NULL, city TEXT, created_at INTEGER NOT NULL, bio TEXT);
         CREATE UNIQUE INDEX users_email ON users(email, id);
         CREATE INDEX users_city_created ON users(city, created_at);
         CREATE TABLE posts (
             id INTEGER PRIMARY KEY, user_id INTEGER NOT NULL REFERENCES users(id),
             title TEXT NOT NULL, body TEXT NOT NULL, score REAL NOT NULL, tags TEXT,
             created_at INTEGER NOT NULL);
         CREATE INDEX posts_user ON posts(user_id, created_at);
         CREATE INDEX posts_score ON posts(score);
         CREATE TABLE comments (
             id INTEGER PRIMARY KEY, post_id INTEGER NOT NULL, user_id INTEGER NOT NULL,
             body TEXT NOT NULL, created_at INTEGER NOT NULL);
         CREATE INDEX comments_post ON comments(post_id);
         CREATE TABLE attachments (
             id INTEGER PRIMARY KEY, post_id INTEGER NOT NULL, mime TEXT NOT NULL,
             data BLOB NOT NULL);
         CREATE TABLE events (
             id INTEGER PRIMARY KEY, ts INTEGER NOT NULL, kind TEXT NOT NULL, payload TEXT);
         CREATE INDEX events_kind_ts ON events(kind, ts);",
    )
    .expect("schema");

    let mut rng = Rng(0x7D1E_711E);
    let t0: i64 = 1_600_000_000;
    {
        let tx = conn.transaction().expect("begin");
        {
            let mut st = tx
                .prepare(
                    "INSERT INTO users (id, first_name, last_name, email, city, created_at, bio)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                )
                .expect("prepare");
            for id in 1..=USERS {
                let (first, last) = name(&mut rng);
                let mail = email(&mut rng, &first, &last);
                let city = rng.chance(90).then(|| rng.pick(CITIES));
                let created = t0 + rng.below(100_000_000) as i64;
                let bio = rng.chance(70).then(|| paragraph(&mut rng, 1, 3));
                st.execute(rusqlite::params![
                    id as i64, first, last, mail, city, created, bio
                ])
                .expect("insert user");
            }
            let mut st = tx
                .prepare(
                    "INSERT INTO posts (id, user_id, title, body, score, tags, created_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                )
                .expect("prepare");
            for id in 1..=POSTS {
                let user = rng.range(1, USERS) as i64;
                let score = rng.below(10_000) as f64 / 100.0;
                st.execute(rusqlite::params![
                    id as i64,
                    user,
                    title(&mut rng),
                    paragraph(&mut rng, 2, 7),
                    score,
                    tags(&mut rng),
                    t0 + rng.below(100_000_000) as i64
                ])
                .expect("insert post");
            }
            let mut st = tx
                .prepare(
                    "INSERT INTO comments (id, post_id, user_id, body, created_at)
                     VALUES (?1, ?2, ?3, ?4, ?5)",
                )
                .expect("prepare");
            for id in 1..=COMMENTS {
                st.execute(rusqlite::params![
                    id as i64,
                    rng.range(1, POSTS) as i64,
                    rng.range(1, USERS) as i64,
                    paragraph(&mut rng, 1, 2),
                    t0 + rng.below(100_000_000) as i64
                ])
                .expect("insert comment");
            }
            let mut st = tx
                .prepare(
                    "INSERT INTO attachments (id, post_id, mime, data) VALUES (?1, ?2, ?3, ?4)",
                )
                .expect("prepare");
            for id in 1..=ATTACHMENTS {
                let mime = rng.pick(MIMES);
                let data = blob(&mut rng, mime);
                st.execute(rusqlite::params![
                    id as i64,
                    rng.range(1, POSTS) as i64,
                    mime,
                    data
                ])
                .expect("insert attachment");
            }
            let mut st = tx
                .prepare("INSERT INTO events (ts, kind, payload) VALUES (?1, ?2, ?3)")
                .expect("prepare");
            let mut ts = t0;
            for _ in 0..EVENTS {
                ts += rng.range(1, 5000) as i64;
                let kind = rng.pick(ACTIONS);
                let payload = format!(
                    r#"{{"user":{},"ip":"10.{}.{}.{}","ua":"Mozilla/5.0 ({})","ok":{}}}"#,
                    rng.range(1, USERS),
                    rng.below(256),
                    rng.below(256),
                    rng.below(256),
                    rng.pick(&[
                        "X11; Linux x86_64",
                        "Macintosh; Intel Mac OS X 14_4",
                        "Windows NT 10.0; Win64; x64",
                        "iPhone; CPU iPhone OS 17_4"
                    ]),
                    rng.chance(95)
                );
                st.execute(rusqlite::params![ts, kind, payload])
                    .expect("insert event");
            }
        }
        tx.commit().expect("commit");
    }

    // Churn: updates that grow and shrink rows, deletes, and a few later inserts that
    // reuse the freed space, in several transactions like a live application.
    for round in 0..4u64 {
        let tx = conn.transaction().expect("begin");
        {
            let mut up_bio = tx
                .prepare("UPDATE users SET bio = ?1 WHERE id = ?2")
                .expect("prepare");
            let mut up_score = tx
                .prepare("UPDATE posts SET score = score + ?1, title = ?2 WHERE id = ?3")
                .expect("prepare");
            let mut del_post = tx
                .prepare("DELETE FROM posts WHERE id = ?1")
                .expect("prepare");
            let mut del_comment = tx
                .prepare("DELETE FROM comments WHERE id = ?1")
                .expect("prepare");
            let mut del_event = tx
                .prepare("DELETE FROM events WHERE id = ?1")
                .expect("prepare");
            let mut ins_comment = tx
                .prepare(
                    "INSERT INTO comments (post_id, user_id, body, created_at) VALUES (?1, ?2, ?3, ?4)",
                )
                .expect("prepare");
            for _ in 0..USERS / 25 {
                let bio = if rng.chance(20) {
                    String::new()
                } else {
                    paragraph(&mut rng, 1, 5)
                };
                up_bio
                    .execute(rusqlite::params![bio, rng.range(1, USERS) as i64])
                    .expect("update user");
            }
            for _ in 0..POSTS / 20 {
                up_score
                    .execute(rusqlite::params![
                        rng.below(500) as f64 / 100.0,
                        title(&mut rng),
                        rng.range(1, POSTS) as i64
                    ])
                    .expect("update post");
            }
            for _ in 0..POSTS / 40 {
                del_post
                    .execute([rng.range(1, POSTS) as i64])
                    .expect("delete post");
            }
            for _ in 0..COMMENTS / 30 {
                del_comment
                    .execute([rng.range(1, COMMENTS) as i64])
                    .expect("delete comment");
            }
            for _ in 0..EVENTS / 30 {
                del_event
                    .execute([rng.range(1, EVENTS) as i64])
                    .expect("delete event");
            }
            for _ in 0..COMMENTS / 50 {
                ins_comment
                    .execute(rusqlite::params![
                        rng.range(1, POSTS) as i64,
                        rng.range(1, USERS) as i64,
                        paragraph(&mut rng, 1, 3),
                        t0 + 100_000_000 + round as i64 * 1000 + rng.below(1000) as i64
                    ])
                    .expect("insert comment");
            }
        }
        tx.commit().expect("commit");
    }

    let (busy, _, _): (i64, i64, i64) = conn
        .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })
        .expect("checkpoint");
    assert_eq!(busy, 0, "checkpoint was blocked");
    conn.close().map_err(|(_, e)| e).expect("close");
    let db = std::fs::read(&path).expect("read database");
    assert_eq!(db.len() % PAGE_SIZE, 0, "database is not whole pages");
    let in_header = u32::from_be_bytes(db[28..32].try_into().expect("4 bytes")) as usize;
    assert_eq!(
        in_header,
        db.len() / PAGE_SIZE,
        "header page count differs from the file"
    );
    db
}

// ---------------------------------------------------------------------------------------
// The fixture shared by every group
// ---------------------------------------------------------------------------------------

struct Fixture {
    /// `(pgno, page)` of every database page except the lock page.
    pages: Vec<(u32, Vec<u8>)>,
    commit: u32,
    /// Bytes of all pages.
    page_bytes: u64,
    /// The pages' LZ4 blocks, back to back, and their `(start, end)`.
    blocks: Vec<u8>,
    block_ranges: Vec<(usize, usize)>,
    /// The database as one snapshot LTX file (TXID 1).
    snapshot: Vec<u8>,
    /// TXIDs 1..=8: the snapshot, then seven ~10 % change sets.
    l0: Vec<Vec<u8>>,
    l0_page_bytes: u64,
    /// Compaction of TXIDs 2..=8.
    l1: Vec<u8>,
    l1_pages: u64,
}

fn header(commit: u32, min: u64, max: u64) -> Header {
    Header {
        flags: FLAG_NO_CHECKSUM,
        page_size: PAGE_SIZE as u32,
        commit,
        min_txid: Txid(min),
        max_txid: Txid(max),
        timestamp: TIMESTAMP,
        ..Header::default()
    }
}

fn encode<'a>(h: Header, pages: impl IntoIterator<Item = (u32, &'a [u8])>) -> Vec<u8> {
    let mut enc = Encoder::new(Vec::new(), h).expect("encoder");
    for (pgno, data) in pages {
        enc.write_page(pgno, data).expect("write page");
    }
    enc.finish().expect("finish").0
}

/// Decodes `file` completely; returns its pages.
fn decode_all(file: &[u8]) -> Vec<(u32, Vec<u8>)> {
    let mut dec = Decoder::new(file).expect("decoder");
    let mut out = Vec::new();
    while let Some(pgno) = dec.next_page().expect("decode") {
        out.push((pgno, dec.page().to_vec()));
    }
    out
}

/// A page as an application write leaves it: a few cells rewritten in place (runs
/// copied from elsewhere in the database) and the page header touched.
fn mutate(rng: &mut Rng, page: &mut [u8], donor: &[u8]) {
    let runs = rng.range(1, 4);
    for _ in 0..runs {
        let len = rng.range(40, 160) as usize;
        let at = rng.range(120, (PAGE_SIZE - len) as u64) as usize;
        let from = rng.below((PAGE_SIZE - len) as u64) as usize;
        page[at..at + len].copy_from_slice(&donor[from..from + len]);
    }
    // Free-block / cell-count / content-start fields of a b-tree page header.
    let at = 1 + rng.below(6) as usize;
    page[at] = page[at].wrapping_add(1);
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let db = build_database();
        let commit = (db.len() / PAGE_SIZE) as u32;
        let lock = lock_pgno(PAGE_SIZE as u32);
        let pages: Vec<(u32, Vec<u8>)> = db
            .chunks_exact(PAGE_SIZE)
            .zip(1u32..)
            .filter(|&(_, pgno)| pgno != lock)
            .map(|(p, pgno)| (pgno, p.to_vec()))
            .collect();
        let page_bytes = (pages.len() * PAGE_SIZE) as u64;

        let mut blocks = Vec::new();
        let mut block_ranges = Vec::with_capacity(pages.len());
        let mut buf = vec![0u8; lz4_flex::block::get_maximum_output_size(PAGE_SIZE)];
        for (_, p) in &pages {
            let n = lz4_flex::block::compress_into(p, &mut buf).expect("compress");
            block_ranges.push((blocks.len(), blocks.len() + n));
            blocks.extend_from_slice(&buf[..n]);
        }

        let snapshot = encode(header(commit, 1, 1), pages.iter().map(|(n, p)| (*n, &p[..])));
        assert_eq!(decode_all(&snapshot), pages, "snapshot round trip");

        // Seven change sets: a random ~10 % of the pages each (page 1, whose change
        // counter every commit bumps, always), modified.
        let mut rng = Rng(42);
        let mut l0 = vec![snapshot.clone()];
        let mut latest: Vec<Vec<u8>> = pages.iter().map(|(_, p)| p.clone()).collect();
        let mut l0_pages = pages.len() as u64;
        for txid in 2..=COMPACT_INPUTS {
            let mut changed = Vec::new();
            for (i, (pgno, p)) in pages.iter().enumerate() {
                if *pgno == 1 || rng.chance(10) {
                    let mut page = p.clone();
                    let donor = &pages[rng.below(pages.len() as u64) as usize].1;
                    mutate(&mut rng, &mut page, donor);
                    latest[i].clone_from(&page);
                    changed.push((*pgno, page));
                }
            }
            l0_pages += changed.len() as u64;
            l0.push(encode(
                header(commit, txid, txid),
                changed.iter().map(|(n, p)| (*n, &p[..])),
            ));
        }
        let l0_page_bytes = l0_pages * PAGE_SIZE as u64;

        // Check the compaction once: every page at its newest version.
        let decoders = l0.iter().map(|f| Decoder::new(&f[..]).expect("decoder")).collect();
        let (merged, stats) =
            compact(decoders, Vec::new(), CompactOptions::default()).expect("compact");
        assert_eq!((stats.header.min_txid, stats.header.max_txid), (Txid(1), Txid(8)));
        let want: Vec<(u32, Vec<u8>)> =
            pages.iter().map(|(n, _)| *n).zip(latest).collect();
        assert_eq!(decode_all(&merged), want, "compaction result");

        let decoders = l0[1..].iter().map(|f| Decoder::new(&f[..]).expect("decoder")).collect();
        let (l1, stats) =
            compact(decoders, Vec::new(), CompactOptions::default()).expect("compact L1");
        let l1_pages = u64::from(stats.pages);

        let ratio = page_bytes as f64 / blocks.len() as f64;
        eprintln!(
            "bench database: {:.1} MiB, {} pages of {PAGE_SIZE} bytes; LZ4 block ratio {ratio:.2}:1 \
             ({:.1} MiB compressed); snapshot LTX {:.1} MiB; {} compaction inputs, {} pages \
             ({:.1} MiB uncompressed); L1 of TXIDs 2-8: {l1_pages} pages",
            db.len() as f64 / 1048576.0,
            pages.len(),
            blocks.len() as f64 / 1048576.0,
            snapshot.len() as f64 / 1048576.0,
            l0.len(),
            l0_pages,
            l0_page_bytes as f64 / 1048576.0,
        );
        Fixture {
            pages,
            commit,
            page_bytes,
            blocks,
            block_ranges,
            snapshot,
            l0,
            l0_page_bytes,
            l1,
            l1_pages,
        }
    })
}

fn configure(group: &mut BenchmarkGroup<'_, WallTime>, bytes: u64) {
    group
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sampling_mode(SamplingMode::Flat)
        .throughput(Throughput::Bytes(bytes));
}

// ---------------------------------------------------------------------------------------
// Benchmarks
// ---------------------------------------------------------------------------------------

fn lz4_raw(c: &mut Criterion) {
    let f = fixture();
    let mut group = c.benchmark_group("lz4_raw");
    configure(&mut group, f.page_bytes);
    let mut out = vec![0u8; lz4_flex::block::get_maximum_output_size(PAGE_SIZE)];
    group.bench_function("compress", |b| {
        b.iter(|| {
            for (_, page) in &f.pages {
                let n = lz4_flex::block::compress_into(page, &mut out).expect("compress");
                black_box(&out[..n]);
            }
        })
    });
    let mut page = vec![0u8; PAGE_SIZE];
    group.bench_function("decompress", |b| {
        b.iter(|| {
            for &(s, e) in &f.block_ranges {
                let n = lz4_flex::block::decompress_into(&f.blocks[s..e], &mut page)
                    .expect("decompress");
                black_box(&page[..n]);
            }
        })
    });
    group.finish();
}

fn ltx_write(c: &mut Criterion) {
    let f = fixture();
    let mut group = c.benchmark_group("ltx_write");
    configure(&mut group, f.page_bytes);
    let mut out = Vec::with_capacity(f.snapshot.len() + 4096);
    let h = header(f.commit, 1, 1);
    group.bench_function("snapshot", |b| {
        b.iter(|| {
            out.clear();
            let mut enc = Encoder::new(&mut out, h).expect("encoder");
            for (pgno, page) in &f.pages {
                enc.write_page(*pgno, page).expect("write page");
            }
            black_box(enc.finish().expect("finish").1);
        })
    });
    group.finish();
    // Empty when a filter skipped the benchmark.
    assert!(
        out.is_empty() || out == f.snapshot,
        "ltx_write output differs from the fixture"
    );
}

fn ltx_decode(c: &mut Criterion) {
    let f = fixture();
    let mut group = c.benchmark_group("ltx_decode");
    configure(&mut group, f.page_bytes);
    group.bench_function("snapshot", |b| {
        b.iter(|| {
            let mut dec = Decoder::new(&f.snapshot[..]).expect("decoder");
            while let Some(pgno) = dec.next_page().expect("decode") {
                black_box((pgno, dec.page()));
            }
            black_box(dec.trailer());
        })
    });
    group.finish();
}

fn page_iteration(c: &mut Criterion) {
    let f = fixture();
    let mut group = c.benchmark_group("page_iteration");
    configure(&mut group, f.page_bytes);
    let mut page = vec![0u8; PAGE_SIZE];
    let mut reader = IndexedReader::open(Cursor::new(&f.snapshot)).expect("open");
    group.bench_function("indexed_read_all", |b| {
        b.iter(|| {
            for (pgno, _) in &f.pages {
                assert!(reader.read_page(*pgno, &mut page).expect("read page"));
                black_box(&page);
            }
        })
    });
    group.bench_function("open_and_read_all", |b| {
        b.iter(|| {
            let mut reader = IndexedReader::open(Cursor::new(&f.snapshot)).expect("open");
            for (pgno, _) in &f.pages {
                assert!(reader.read_page(*pgno, &mut page).expect("read page"));
                black_box(&page);
            }
        })
    });
    group.finish();
}

fn compaction(c: &mut Criterion) {
    let f = fixture();
    let mut group = c.benchmark_group("compaction");
    configure(&mut group, f.l0_page_bytes);
    let mut out = Vec::with_capacity(f.snapshot.len() * 2);
    group.bench_function("compact_8", |b| {
        b.iter(|| {
            out.clear();
            let decoders =
                f.l0.iter()
                    .map(|f| Decoder::new(&f[..]).expect("decoder"))
                    .collect();
            let (_, stats) =
                compact(decoders, &mut out, CompactOptions::default()).expect("compact");
            black_box(stats);
        })
    });
    group.bench_function("decode_inputs_once", |b| {
        b.iter(|| {
            for file in &f.l0 {
                let mut dec = Decoder::new(&file[..]).expect("decoder");
                while let Some(pgno) = dec.next_page().expect("decode") {
                    black_box((pgno, dec.page()));
                }
                black_box(dec.trailer());
            }
        })
    });
    group.throughput(Throughput::Bytes(
        (f.pages.len() as u64 + f.l1_pages) * PAGE_SIZE as u64,
    ));
    group.bench_function("compact_2_snapshot_plus_l1", |b| {
        b.iter(|| {
            out.clear();
            let decoders = vec![
                Decoder::new(&f.snapshot[..]).expect("decoder"),
                Decoder::new(&f.l1[..]).expect("decoder"),
            ];
            let (_, stats) =
                compact(decoders, &mut out, CompactOptions::default()).expect("compact");
            black_box(stats);
        })
    });
    group.finish();
}

criterion::criterion_group!(
    benches,
    lz4_raw,
    ltx_write,
    ltx_decode,
    page_iteration,
    compaction
);
criterion::criterion_main!(benches);
