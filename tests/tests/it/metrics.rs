//! `addr:` metrics, scraped from the real processes: Litestream 0.5.17 and `tideline`
//! replicate the same kind of database to the same S3 server with the same config, and
//! every `litestream_*` family Litestream exports is in Tideline's `/metrics` with the
//! same type and label names (parsed with a Prometheus text-format parser, as a
//! scraper reads it). Tideline's figures then follow the backup: the replica TXID it
//! reports is the newest in the bucket, a stopped server shows as a failing upload with
//! its error code, and after the server is back the figures and a restore agree.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use tideline_e2e::{
    Litestream, app, free_port, litestream, newest_txid_in, rows, tideline_bin, write,
};
use tideline_testkit::{ACCESS_KEY, BUCKET, REGION, S3Server, SECRET_KEY};

/// Families Litestream exports that Tideline does not, and why.
const NOT_IN_TIDELINE: &[(&str, &str)] = &[(
    "litestream_compaction_verify_error_count",
    "verify-compaction is not supported (warned at start), so there is nothing to count",
)];

/// `GET /metrics` on `port`; the body, or `None` while nothing listens.
fn scrape(port: u16) -> Option<String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    s.write_all(b"GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
        .ok()?;
    let mut reply = String::new();
    s.read_to_string(&mut reply).ok()?;
    let (head, body) = reply.split_once("\r\n\r\n")?;
    head.starts_with("HTTP/1.").then_some(())?;
    assert!(head.contains(" 200 "), "{head}");
    Some(body.to_owned())
}

fn parse(text: &str) -> prometheus_parse::Scrape {
    prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_owned())))
        .unwrap_or_else(|e| panic!("not Prometheus text: {e}\n{text}"))
}

/// Family name → (type, label names) of every `litestream_*` and `process_*` sample.
fn families(text: &str) -> BTreeMap<String, (String, BTreeSet<String>)> {
    let scrape = parse(text);
    let mut out: BTreeMap<String, (String, BTreeSet<String>)> = BTreeMap::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, ty) = rest.split_once(' ').unwrap();
            out.entry(name.to_owned()).or_default().0 = ty.to_owned();
        }
    }
    for s in &scrape.samples {
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|suffix| {
                s.metric
                    .strip_suffix(suffix)
                    .filter(|f| out.get(*f).is_some_and(|(t, _)| t == "histogram"))
            })
            .unwrap_or(&s.metric);
        let labels = s.labels.keys().filter(|k| k.as_str() != "le").cloned();
        out.entry(family.to_owned()).or_default().1.extend(labels);
    }
    out.retain(|name, _| name.starts_with("litestream_") || name.starts_with("process_"));
    out
}

/// The value of the sample `name` whose labels include `labels`.
fn value(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    parse(text).samples.into_iter().find_map(|s| {
        let matches = s.metric == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v));
        match (matches, s.value) {
            (true, prometheus_parse::Value::Counter(v) | prometheus_parse::Value::Gauge(v)) => {
                Some(v)
            }
            (true, prometheus_parse::Value::Untyped(v)) => Some(v),
            _ => None,
        }
    })
}

/// Scrapes `port` until `ok` holds for the text (bounded); returns that text.
fn wait_scrape(port: u16, what: &str, log: &Path, ok: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut last = String::new();
    loop {
        if let Some(text) = scrape(port) {
            if ok(&text) {
                return text;
            }
            last = text;
        }
        assert!(
            Instant::now() < deadline,
            "no {what} within 60 s; last scrape:\n{last}\nlog:\n{}",
            fs::read_to_string(log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A config replicating `db` to `prefix` in the bucket, serving metrics on `port`.
fn config(dir: &Path, name: &str, db: &Path, s3: &S3Server, prefix: &str, port: u16) -> PathBuf {
    let path = dir.join(name);
    fs::write(
        &path,
        format!(
            "addr: 127.0.0.1:{port}\ndbs:\n  - path: {}\n    monitor-interval: 100ms\n    replica:\n      \
             type: s3\n      bucket: {BUCKET}\n      path: {prefix}\n      endpoint: {}\n      \
             region: {REGION}\n      force-path-style: true\n      access-key-id: {ACCESS_KEY}\n      \
             secret-access-key: {SECRET_KEY}\n      sync-interval: 100ms\n",
            db.display(),
            s3.endpoint()
        ),
    )
    .unwrap();
    path
}

fn replica_url(s3: &S3Server, prefix: &str) -> String {
    format!(
        "s3://{BUCKET}/{prefix}?endpoint={}&region={REGION}&forcePathStyle=true",
        s3.endpoint()
    )
}

/// The newest TXID in the bucket under `prefix` (Litestream's S3 layout).
fn newest_in_bucket(s3: &S3Server, prefix: &str) -> u64 {
    newest_txid_in((0..=9u8).map(|level| s3.object_path(&format!("{prefix}/{level:04x}"))))
}

fn new_db(dir: &Path, name: &str) -> PathBuf {
    let path = dir.join(name);
    let c = app(&path);
    c.execute_batch("CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)")
        .unwrap();
    write(&c, 0, 100);
    path
}

fn s3_env(cmd: &mut Command) -> &mut Command {
    cmd.env("AWS_ACCESS_KEY_ID", ACCESS_KEY)
        .env("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
        .env_remove("AWS_CA_BUNDLE")
}

#[test]
fn metrics_have_litestreams_names_and_labels_and_follow_the_backup() {
    let Some(ls) = litestream("metrics_have_litestreams_names_and_labels") else {
        return;
    };
    let tl = tideline_bin();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let mut s3 = S3Server::start(&d.join("s3")).unwrap();

    // The same workload under each tool: a database, its first sync, then changes
    // shipped (PUTs); the scrape is taken once the replica holds them.
    let mut scraped = BTreeMap::new();
    for (tool, bin) in [("litestream", &ls), ("tideline", &tl)] {
        let db = new_db(d, &format!("{tool}.db"));
        let port = free_port();
        let cfg = config(d, &format!("{tool}.yml"), &db, &s3, tool, port);
        let log = d.join(format!("{tool}.log"));
        let proc = Litestream::replicate(bin, &cfg, log.clone());
        let c = app(&db);
        let db_label = db.to_string_lossy().into_owned();
        wait_scrape(port, "first sync", &log, |t| {
            value(t, "litestream_txid", &[("db", &db_label)]).is_some_and(|v| v >= 1.0)
        });
        write(&c, 100, 50);
        let text = wait_scrape(port, "changes shipped", &log, |t| {
            let txid = value(t, "litestream_txid", &[("db", &db_label)]).unwrap_or(0.0);
            let puts = value(
                t,
                "litestream_replica_operation_total",
                &[("replica_type", "s3"), ("operation", "PUT")],
            );
            txid >= 2.0 && puts.is_some_and(|p| p >= 2.0) && newest_in_bucket(&s3, tool) >= 2
        });
        // Every database family is labelled with the database's path, as Litestream's.
        for s in parse(&text).samples {
            if let Some(v) = s.labels.get("db") {
                assert_eq!(v, db_label, "{tool}: {} labelled {v}", s.metric);
            }
        }
        scraped.insert(tool, text.clone());
        if tool == "litestream" {
            proc.stop();
            continue;
        }

        // Tideline's own figures follow the replica: its TXID is the bucket's newest.
        let replica_txid = |t: &str| value(t, "tideline_replica_txid", &[("db", &db_label)]);
        let local = |t: &str| value(t, "litestream_txid", &[("db", &db_label)]);
        let before = local(&text);
        write(&c, 150, 50);
        // The new write captured (the local TXID moved) and shipped (the replica's
        // caught up with it).
        let text = wait_scrape(port, "replica TXID = bucket's newest", &log, |t| {
            local(t) > before && replica_txid(t) == local(t)
        });
        assert_eq!(
            replica_txid(&text).unwrap() as u64,
            newest_in_bucket(&s3, tool),
            "tideline_replica_txid is the newest TXID in the bucket"
        );
        let shipped_at = value(&text, "tideline_last_shipped_timestamp_seconds", &[]).unwrap();
        assert!(shipped_at > 1.6e9, "a Unix time: {shipped_at}");

        // The server stops: uploads fail, and the metrics say so with the error code.
        s3.stop();
        write(&c, 200, 50);
        let failing = |t: &str| {
            value(
                t,
                "tideline_failing",
                &[("db", &db_label), ("stage", "ship")],
            )
        };
        wait_scrape(port, "a failing upload", &log, |t| {
            failing(t) == Some(1.0)
                && value(
                    t,
                    "litestream_replica_operation_errors_total",
                    &[("replica_type", "s3"), ("code", "destination_unreachable")],
                )
                .is_some_and(|n| n >= 1.0)
                && value(
                    t,
                    "tideline_errors_total",
                    &[("db", &db_label), ("stage", "ship")],
                )
                .is_some_and(|n| n >= 1.0)
        });
        // Back: the upload works again, and the replica catches up with the database.
        s3.restart().unwrap();
        let text = wait_scrape(port, "the upload working again", &log, |t| {
            let local = value(t, "litestream_txid", &[("db", &db_label)]);
            failing(t) == Some(0.0) && replica_txid(t).is_some() && replica_txid(t) == local
        });
        let want = replica_txid(&text).unwrap() as u64;
        proc.stop();
        assert_eq!(newest_in_bucket(&s3, tool), want);
        // What the metrics said is in the bucket restores, row for row.
        let out = d.join("restored.db");
        let o = s3_env(Command::new(&tl).args(["restore", "-o"]).arg(&out))
            .arg(replica_url(&s3, tool))
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        assert_eq!(rows(&out), 250);
    }

    // Names, types and label names: every Litestream family is in Tideline's output.
    let ls_families = families(&scraped["litestream"]);
    let tl_families = families(&scraped["tideline"]);
    assert!(
        ls_families.contains_key("litestream_sync_count")
            && ls_families.contains_key("litestream_replica_operation_total"),
        "Litestream's scrape lacks its own families:\n{}",
        scraped["litestream"]
    );
    let mut missing = Vec::new();
    for (name, (ty, labels)) in &ls_families {
        if NOT_IN_TIDELINE.iter().any(|(n, _)| n == name) {
            continue;
        }
        match tl_families.get(name) {
            Some((tl_ty, tl_labels)) => {
                assert_eq!(tl_ty, ty, "{name}: type");
                assert_eq!(tl_labels, labels, "{name}: label names");
            }
            None => missing.push(format!("{name} ({ty}, labels {labels:?})")),
        }
    }
    assert!(
        missing.is_empty(),
        "in Litestream's /metrics, not in Tideline's: {missing:#?}\n{}",
        scraped["tideline"]
    );
}

#[test]
fn a_taken_metrics_port_is_reported_and_replication_goes_on() {
    let tl = tideline_bin();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let db = new_db(d, "app.db");
    let replica = d.join("replica");
    let cfg = d.join("t.yml");
    fs::write(
        &cfg,
        format!(
            "addr: 127.0.0.1:{port}\ndbs:\n  - path: {}\n    monitor-interval: 100ms\n    replica:\n      \
             path: {}\n      sync-interval: 100ms\n",
            db.display(),
            replica.display()
        ),
    )
    .unwrap();
    let log = d.join("t.log");
    let proc = Litestream::replicate(&tl, &cfg, log.clone());
    let out = d.join("out.db");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let _ = fs::remove_file(&out);
        let o = Command::new(&tl)
            .args(["restore", "-o"])
            .arg(&out)
            .arg(format!("file://{}", replica.display()))
            .output()
            .unwrap();
        if o.status.success() && rows(&out) == 100 {
            break;
        }
        assert!(Instant::now() < deadline, "no backup within 30 s");
        std::thread::sleep(Duration::from_millis(100));
    }
    proc.stop();
    let text = fs::read_to_string(&log).unwrap();
    assert!(
        text.contains(&format!("cannot serve metrics on 127.0.0.1:{port}"))
            && text.contains("choose a free port"),
        "{text}"
    );
}

#[test]
fn validation_finds_a_gap_in_the_replica_and_status_names_it() {
    let tl = tideline_bin();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let db = new_db(d, "app.db");
    let replica = d.join("replica");
    let port = free_port();
    let cfg = d.join("t.yml");
    fs::write(
        &cfg,
        format!(
            "addr: 127.0.0.1:{port}\nvalidation:\n  interval: 1s\ndbs:\n  - path: {}\n    \
             monitor-interval: 100ms\n    replica:\n      path: {}\n      sync-interval: 100ms\n",
            db.display(),
            replica.display()
        ),
    )
    .unwrap();
    let log = d.join("t.log");
    let proc = Litestream::replicate(&tl, &cfg, log.clone());
    let label = db.to_string_lossy().into_owned();
    let txid = |t: &str| value(t, "tideline_replica_txid", &[("db", &label)]).unwrap_or(0.0);
    // Three more transactions, each shipped in its own L0 file.
    let c = app(&db);
    wait_scrape(port, "the first sync", &log, |t| txid(t) >= 1.0);
    for i in 0..3 {
        let before = scrape(port).map_or(0.0, |t| txid(&t));
        write(&c, 100 + i * 10, 10);
        wait_scrape(port, "the next TXID shipped", &log, |t| txid(t) > before);
    }
    let problems = |t: &str| value(t, "tideline_validation_problems", &[("db", &label)]);
    wait_scrape(port, "a clean validation", &log, |t| {
        problems(t) == Some(0.0)
    });

    // A file goes missing from the middle of level 0: restores past it are impossible.
    let l0 = replica.join("ltx/0");
    let mut names: Vec<String> = fs::read_dir(&l0)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert!(names.len() >= 4, "{names:?}");
    let lost = &names[names.len() - 2];
    fs::remove_file(l0.join(lost)).unwrap();
    wait_scrape(port, "the gap found", &log, |t| problems(t) == Some(1.0));
    proc.stop();
    let text = fs::read_to_string(&log).unwrap();
    assert!(
        text.contains("validation found 1 problem(s): level 0: TXID gap"),
        "{text}"
    );

    let o = Command::new(&tl)
        .args(["status", "-json", "-config"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let status: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let found = status[0]["replica_problems"].as_array().unwrap();
    assert_eq!(found.len(), 1, "{status}");
    assert!(found[0].as_str().unwrap().contains("TXID gap"), "{status}");
    let o = Command::new(&tl)
        .args(["status", "-config"])
        .arg(&cfg)
        .output()
        .unwrap();
    let table = String::from_utf8_lossy(&o.stdout);
    assert!(
        table.contains("the replica's levels are not contiguous"),
        "{table}"
    );
}
