//! Tideline as a drop-in for Litestream 0.5.17, both directions, with a real writer:
//! each tool restores what the other replicated, and each takes over a database and
//! replica the other was replicating, continuing its TXIDs.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rusqlite::Connection;
use tideline_engine::replicate::Event;
use tideline_engine::restore::{IntegrityCheck, Target, list_levels, restore};
use tideline_engine::storage::file::FileReplica;
use tideline_ltx::Txid;

use tideline_e2e::{Litestream, app, checkpointed, litestream, rows, write};

use crate::replicator::Tideline;

fn config(dir: &Path, db: &Path, replica: &Path) -> PathBuf {
    let path = dir.join("litestream.yml");
    fs::write(
        &path,
        format!(
            "levels:\n  - interval: 2s\nsnapshot:\n  interval: 4s\n  retention: 1h\nl0-retention: 1h\ndbs:\n  - path: {}\n    monitor-interval: 100ms\n    replica:\n      type: file\n      path: {}\n      sync-interval: 100ms\n",
            db.display(),
            replica.display()
        ),
    )
    .unwrap();
    path
}

/// Restores with Litestream.
fn ls_restore(bin: &Path, replica: &Path, out: &Path, extra: &[&str]) {
    let _ = fs::remove_file(out);
    let o = Command::new(bin)
        .arg("restore")
        .args(extra)
        .arg("-o")
        .arg(out)
        .arg(format!("file://{}", replica.display()))
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "litestream restore failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// Restores with tideline's engine.
async fn tl_restore(replica: &Path, out: &Path, target: Target) -> Txid {
    restore(
        Arc::new(FileReplica::new(replica)),
        target,
        out,
        IntegrityCheck::Full,
    )
    .await
    .unwrap()
    .txid
}

/// Waits (bounded) until a tideline restore of the replica has `want` rows.
async fn wait_rows(replica: &Path, scratch: &Path, want: i64) {
    let out = scratch.join("probe.db");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if restore(
            Arc::new(FileReplica::new(replica)),
            Target::Latest,
            &out,
            IntegrityCheck::None,
        )
        .await
        .is_ok()
            && rows(&out) == want
        {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "replica did not reach {want} rows within 30 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn txids(replica: &Path) -> Vec<(u8, Txid, Txid)> {
    let levels = list_levels(&FileReplica::new(replica)).await.unwrap();
    levels
        .iter()
        .flatten()
        .map(|f| (f.level, f.min_txid, f.max_txid))
        .collect()
}

fn setup() -> (tempfile::TempDir, PathBuf, PathBuf, Connection) {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("app.db");
    let c = app(&db);
    c.execute_batch("CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)")
        .unwrap();
    write(&c, 0, 100);
    let replica = dir.path().join("replica");
    (dir, db, replica, c)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn litestream_restores_what_tideline_replicated() {
    let Some(ls) = litestream("litestream_restores_what_tideline_replicated") else {
        return;
    };
    let (dir, db, replica, c) = setup();
    let tl = Tideline::start(&db, Arc::new(FileReplica::new(&replica)));
    wait_rows(&replica, dir.path(), 100).await;
    for k in 0..10 {
        write(&c, 1000 + k * 50, 50);
        tokio::time::sleep(Duration::from_millis(120)).await;
    }
    wait_rows(&replica, dir.path(), 600).await;
    let mid = txids(&replica).await.iter().map(|t| t.2).max().unwrap();
    write(&c, 5000, 300);
    tl.stop().await;
    drop(c);
    let want = checkpointed(&db);

    let out = dir.path().join("ls.db");
    ls_restore(&ls, &replica, &out, &[]);
    assert!(
        fs::read(&out).unwrap() == want,
        "litestream's restore of tideline's replica is not byte-identical"
    );
    // A point in time: Litestream and tideline agree on the state at a TXID.
    ls_restore(&ls, &replica, &out, &["-txid", &mid.to_string()]);
    let ours = dir.path().join("tl.db");
    tl_restore(&replica, &ours, Target::Txid(mid)).await;
    assert!(
        fs::read(&out).unwrap() == fs::read(&ours).unwrap(),
        "restores at TXID {mid} differ"
    );
    assert_eq!(rows(&out), 600);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tideline_restores_what_litestream_replicated_and_compacted() {
    let Some(ls) = litestream("tideline_restores_what_litestream_replicated_and_compacted") else {
        return;
    };
    let (dir, db, replica, c) = setup();
    let cfg = config(dir.path(), &db, &replica);
    let proc = Litestream::replicate(&ls, &cfg, dir.path().join("ls.log"));
    for k in 0..30 {
        write(&c, 1000 + k * 20, 20);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    wait_rows(&replica, dir.path(), 700).await;
    // Wait (bounded) for a compaction level and a snapshot past TXID 1.
    let deadline = Instant::now() + Duration::from_secs(30);
    while !(txids(&replica).await.iter().any(|t| t.0 == 1)
        && txids(&replica)
            .await
            .iter()
            .any(|t| t.0 == 9 && t.2 > Txid(1)))
    {
        assert!(
            Instant::now() < deadline,
            "no L1/L9 from litestream:\n{}",
            fs::read_to_string(dir.path().join("ls.log")).unwrap()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    proc.stop();
    drop(c);
    let want = checkpointed(&db);
    let out = dir.path().join("tl.db");
    tl_restore(&replica, &out, Target::Latest).await;
    assert!(
        fs::read(&out).unwrap() == want,
        "tideline's restore of litestream's replica is not byte-identical"
    );
    // And every TXID Litestream can restore, tideline restores identically.
    let ends: Vec<Txid> = txids(&replica)
        .await
        .iter()
        .filter(|t| t.0 == 0)
        .map(|t| t.2)
        .collect();
    let theirs = dir.path().join("ls.db");
    for txid in ends.iter().step_by(4) {
        ls_restore(&ls, &replica, &theirs, &["-txid", &txid.to_string()]);
        tl_restore(&replica, &out, Target::Txid(*txid)).await;
        assert!(
            fs::read(&out).unwrap() == fs::read(&theirs).unwrap(),
            "TXID {txid}: restores differ"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_tool_takes_over_from_the_other() {
    let Some(ls) = litestream("each_tool_takes_over_from_the_other") else {
        return;
    };
    let (dir, db, replica, c) = setup();
    let cfg = config(dir.path(), &db, &replica);

    // 1. tideline replicates.
    let tl = Tideline::start(&db, Arc::new(FileReplica::new(&replica)));
    write(&c, 1000, 100);
    wait_rows(&replica, dir.path(), 200).await;
    tl.stop().await;
    let after_tideline = txids(&replica).await.iter().map(|t| t.2).max().unwrap();

    // 2. Litestream takes over the same database, meta directory and replica.
    let proc = Litestream::replicate(&ls, &cfg, dir.path().join("ls1.log"));
    for k in 0..5 {
        write(&c, 2000 + k * 20, 20);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    wait_rows(&replica, dir.path(), 300).await;
    proc.stop();
    let after_litestream = txids(&replica)
        .await
        .iter()
        .filter(|t| t.0 == 0)
        .map(|t| t.2)
        .max()
        .unwrap();
    assert!(
        after_litestream > after_tideline,
        "litestream continued the TXIDs ({after_tideline} -> {after_litestream})"
    );

    // 3. tideline takes over again.
    write(&c, 3000, 100);
    let tl = Tideline::start(&db, Arc::new(FileReplica::new(&replica)));
    write(&c, 4000, 100);
    wait_rows(&replica, dir.path(), 500).await;
    let events = tl.stop().await;
    assert!(
        matches!(events.first(), Some(Event::Started { txid: Some(t), .. }) if *t >= after_litestream),
        "{:?}",
        events.first()
    );
    drop(c);
    let want = checkpointed(&db);

    // Both tools restore the whole history identically, L0 TXIDs without gaps.
    let mut l0: Vec<Txid> = txids(&replica)
        .await
        .iter()
        .filter(|t| t.0 == 0)
        .map(|t| t.2)
        .collect();
    l0.sort();
    assert!(
        l0.windows(2).all(|w| w[1].0 == w[0].0 + 1),
        "L0 TXIDs have gaps: {l0:?}"
    );
    let out = dir.path().join("tl.db");
    tl_restore(&replica, &out, Target::Latest).await;
    assert!(
        fs::read(&out).unwrap() == want,
        "tideline's restore after the takeovers differs"
    );
    let theirs = dir.path().join("ls.db");
    ls_restore(&ls, &replica, &theirs, &[]);
    assert!(
        fs::read(&theirs).unwrap() == want,
        "litestream's restore after the takeovers differs"
    );
}
