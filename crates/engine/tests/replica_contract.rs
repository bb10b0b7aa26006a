//! The replica client contract, checked against every backend that runs here: the
//! folder replica on a real directory and the in-memory replica. (S3 joins with its
//! own server.)

use std::fs;
use std::io::Read;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tideline_engine::Error;
use tideline_engine::replica::file::FileReplica;
use tideline_engine::replica::memory::MemoryReplica;
use tideline_engine::replica::{ReplicaClient, ReplicaError};
use tideline_engine::restore::{IntegrityCheck, Target, restore};
use tideline_ltx::{Decoder, Encoder, FLAG_NO_CHECKSUM, Header, Txid};

fn ltx(dir: &Path, min: u64, max: u64, fill: u8) -> (std::path::PathBuf, SystemTime) {
    let ts = 1_800_000_000_000 + max as i64;
    let h = Header {
        flags: FLAG_NO_CHECKSUM,
        page_size: 512,
        commit: 2,
        min_txid: Txid(min),
        max_txid: Txid(max),
        timestamp: ts,
        ..Header::default()
    };
    let mut enc = Encoder::new(Vec::new(), h).unwrap();
    if min == 1 {
        enc.write_page(1, &[fill; 512]).unwrap();
    }
    enc.write_page(2, &[fill; 512]).unwrap();
    let path = dir.join(format!("src-{min}-{max}.ltx"));
    fs::write(&path, enc.finish().unwrap().0).unwrap();
    (path, UNIX_EPOCH + Duration::from_millis(ts as u64))
}

async fn contract(client: Arc<dyn ReplicaClient>, scratch: &Path) {
    assert!(
        client.list(0).await.unwrap().is_empty(),
        "empty replica lists nothing"
    );
    assert!(matches!(
        client.list(10).await,
        Err(ReplicaError::BadLevel(10))
    ));

    // Written out of order, listed in TXID order, with size and creation time.
    let mut written = Vec::new();
    for (level, min, max) in [(0u8, 3u64, 3u64), (0, 2, 2), (9, 1, 1), (1, 1, 3)] {
        let (src, t) = ltx(scratch, min, max, min as u8);
        let info = client
            .write(level, Txid(min), Txid(max), t, &src)
            .await
            .unwrap();
        assert_eq!(info.size, fs::metadata(&src).unwrap().len());
        assert_eq!(info.created_at, t);
        written.push(info);
    }
    let l0 = client.list(0).await.unwrap();
    assert_eq!(l0.iter().map(|f| f.min_txid.0).collect::<Vec<_>>(), [2, 3]);
    assert_eq!(l0[0], written[1]);
    assert_eq!(client.list(9).await.unwrap(), vec![written[2].clone()]);

    // Whole and ranged reads return the bytes written.
    let src = fs::read(ltx(scratch, 2, 2, 2).0).unwrap();
    let mut whole = Vec::new();
    client
        .open(&l0[0])
        .unwrap()
        .read_to_end(&mut whole)
        .unwrap();
    assert_eq!(whole, src);
    assert_eq!(
        client.read_range(&l0[0], 10..20).await.unwrap(),
        src[10..20]
    );
    assert_eq!(
        client.read_range(&l0[0], 100..u64::MAX).await.unwrap(),
        src[100..]
    );
    Decoder::new(client.open(&l0[0]).unwrap())
        .unwrap()
        .finish()
        .unwrap();

    // Restore through the client: snapshot 1-1 then the L1 1-3 reaches furthest.
    let out = scratch.join("restored.db");
    let r = restore(
        Arc::clone(&client),
        Target::Latest,
        &out,
        IntegrityCheck::None,
    )
    .await
    .unwrap();
    assert_eq!(r.txid, Txid(3));
    assert_eq!(fs::read(&out).unwrap(), [[1u8; 512], [1u8; 512]].concat());
    // TXID 2: snapshot 1-1 plus L0 2-2 (1-3 overshoots).
    let r = restore(
        Arc::clone(&client),
        Target::Txid(Txid(2)),
        &out,
        IntegrityCheck::None,
    )
    .await
    .unwrap();
    assert_eq!(r.txid, Txid(2));
    assert_eq!(fs::read(&out).unwrap(), [[1u8; 512], [2u8; 512]].concat());
    // TXID 4 does not exist.
    let r = restore(
        Arc::clone(&client),
        Target::Txid(Txid(4)),
        &out,
        IntegrityCheck::None,
    )
    .await;
    assert!(matches!(r, Err(Error::Plan(_))), "{r:?}");

    // Deleting is idempotent; reading a deleted file says which one is missing.
    client.delete(&l0).await.unwrap();
    client.delete(&l0).await.unwrap();
    assert!(client.list(0).await.unwrap().is_empty());
    let err = client.open(&l0[0]).err().expect("deleted");
    assert!(
        matches!(err, ReplicaError::NotFound { level: 0, .. }),
        "{err}"
    );
    assert!(
        err.to_string()
            .contains("0000000000000002-0000000000000002.ltx"),
        "{err}"
    );
    assert!(client.read_range(&l0[0], 0..1).await.is_err());
}

#[tokio::test]
async fn memory_replica_meets_the_contract() {
    let dir = tempfile::tempdir().unwrap();
    contract(Arc::new(MemoryReplica::new()), dir.path()).await;
}

#[tokio::test]
async fn file_replica_meets_the_contract_in_litestreams_layout() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("replica");
    let scratch = dir.path().join("scratch");
    fs::create_dir_all(&scratch).unwrap();
    let client = Arc::new(FileReplica::new(&root));
    assert_eq!(client.describe(), format!("file://{}", root.display()));
    contract(client.clone(), &scratch).await;

    // Litestream's layout: decimal level directories, mtime = header timestamp.
    let snap = root.join("ltx/9/0000000000000001-0000000000000001.ltx");
    let mtime = fs::metadata(&snap).unwrap().modified().unwrap();
    assert_eq!(mtime, UNIX_EPOCH + Duration::from_millis(1_800_000_000_001));
    assert!(
        root.join("ltx/1/0000000000000001-0000000000000003.ltx")
            .is_file()
    );

    // Temporary files, other names and directories are not LTX files.
    fs::write(
        root.join("ltx/9/0000000000000001-0000000000000005.ltx.tmp"),
        b"partial",
    )
    .unwrap();
    fs::write(root.join("ltx/9/notes.txt"), b"x").unwrap();
    fs::create_dir_all(root.join("ltx/9/0000000000000001-0000000000000009.ltx")).unwrap();
    assert_eq!(client.list(9).await.unwrap().len(), 1);
}
