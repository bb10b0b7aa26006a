//! Litestream-compatible config files: parsing, defaults, env expansion, replica URLs,
//! warnings and errors.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tideline_config::{
    Config, ConfigError, DEFAULT_LEVELS, DbConfig, FileReplicaConfig, LogFormat, LogLevel,
    ReplicaConfig, ReplicaTarget, S3ReplicaConfig, Sensitive, SnapshotOverride,
    default_config_path, meta_path_for,
};

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> + use<> {
    let map: HashMap<String, String> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    move |k: &str| map.get(k).cloned()
}

fn parse(text: &str) -> Config {
    parse_env(text, &[])
}

fn parse_env(text: &str, env: &[(&str, &str)]) -> Config {
    Config::parse(text, &env_of(env), true).unwrap_or_else(|e| panic!("{e}"))
}

fn parse_err(text: &str) -> ConfigError {
    match Config::parse(text, &env_of(&[]), true) {
        Ok(c) => panic!("expected an error, got {c:#?}"),
        Err(e) => e,
    }
}

/// Asserts that `err`'s message contains every fragment.
fn assert_msg(err: &ConfigError, fragments: &[&str]) {
    let msg = err.to_string();
    for f in fragments {
        assert!(msg.contains(f), "{f:?} not in: {msg}");
    }
}

fn s3(replica: &ReplicaConfig) -> &S3ReplicaConfig {
    match &replica.target {
        ReplicaTarget::S3(s3) => s3,
        other => panic!("not s3: {other:?}"),
    }
}

fn file_path(replica: &ReplicaConfig) -> &Path {
    match &replica.target {
        ReplicaTarget::File(FileReplicaConfig { path }) => path,
        other => panic!("not a file replica: {other:?}"),
    }
}

fn expose(s: &Option<Sensitive<String>>) -> Option<&str> {
    s.as_ref().map(|s| s.expose().as_str())
}

const FULL: &str = r#"
# Global replica defaults.
access-key-id: ${KEY_ID}
secret-access-key: ${SECRET}
region: eu-west-1
sync-interval: 2s
levels:
  - interval: 10s
  - interval: 1m
  - interval: 15m
  - interval: 4h
snapshot:
  interval: 12h
  retention: 72h
l0-retention: 10m
l0-retention-check-interval: 30s
retention:
  enabled: false
shutdown-sync-timeout: 1m
shutdown-sync-interval: 250ms
exec: "/usr/bin/myapp -port 8080"
logging:
  level: debug
  type: json
  stderr: true
  source: true
dbs:
  - path: /var/lib/app/app.db
    meta-path: /var/lib/app/meta
    monitor-interval: 500ms
    checkpoint-interval: 0
    busy-timeout: 5s
    min-checkpoint-page-count: 2000
    truncate-page-n: 200000
    max-sync-wal-bytes: 16777216
    restore-if-db-not-exists: true
    replica:
      url: s3://app-bucket/backups/app?endpoint=http://127.0.0.1:9000&forcePathStyle=true&skipVerify=true
      max-sync-ltx-files: 0
      auto-recover: true
      part-size: 10MiB
      concurrency: 8
      storage-class: STANDARD_IA
      sign-payload: false
      require-content-md5: false
      sse-customer-key: c3VwZXJzZWNyZXRzc2VrZXk=
      sse-kms-key-id: kms-1234
  - path: /srv/notes.db
    snapshot:
      interval: 12h
    replica:
      type: file
      path: /mnt/backup/notes
      sync-interval: 10s
  - path: /srv/s3.db
    replica:
      type: s3
      bucket: other-bucket
      path: notes/db
      access-key-id: LOCALKEY
      secret-access-key: LOCALSECRET
      endpoint: https://s3.eu-west-1.amazonaws.com
      force-path-style: false
"#;

#[test]
fn full_litestream_config_parses_with_every_field() {
    let c = parse_env(
        FULL,
        &[("KEY_ID", "AKIAGLOBAL"), ("SECRET", "globalsecret")],
    );
    // The settings Tideline parses but does not act on are the only warnings.
    let ignored: Vec<&str> = c
        .warnings
        .iter()
        .map(|w| w.split(": ").next().unwrap())
        .collect();
    assert_eq!(
        ignored,
        [
            "dbs[0].replica.max-sync-ltx-files",
            "dbs[0].replica.auto-recover",
            "dbs[0].replica.sign-payload",
            "dbs[0].replica.require-content-md5"
        ],
        "{:?}",
        c.warnings
    );
    assert!(c.warnings.iter().all(|w| w.contains(": ignored: ")));
    assert_eq!(
        c.levels,
        vec![secs(10), secs(60), secs(900), secs(4 * 3600)]
    );
    assert_eq!(c.snapshot.interval, secs(12 * 3600));
    assert_eq!(c.snapshot.retention, secs(72 * 3600));
    assert_eq!(c.l0_retention, Some(secs(600)));
    assert_eq!(c.l0_retention_check_interval, secs(30));
    assert!(!c.retention.enabled);
    assert_eq!(c.shutdown_sync_timeout, secs(60));
    assert_eq!(c.shutdown_sync_interval, Duration::from_millis(250));
    assert_eq!(c.exec.as_deref(), Some("/usr/bin/myapp -port 8080"));
    assert_eq!(c.logging.level, LogLevel::Debug);
    assert_eq!(c.logging.format, LogFormat::Json);
    assert!(c.logging.stderr);
    assert!(c.logging.source);
    assert_eq!(c.source, None);
    assert_eq!(c.dbs.len(), 3);

    let app = &c.dbs[0];
    assert_eq!(app.path, PathBuf::from("/var/lib/app/app.db"));
    assert_eq!(app.meta_path, PathBuf::from("/var/lib/app/meta"));
    assert_eq!(app.monitor_interval, Duration::from_millis(500));
    assert_eq!(app.checkpoint_interval, None);
    assert_eq!(app.busy_timeout, secs(5));
    assert_eq!(app.min_checkpoint_page_count, 2000);
    assert_eq!(app.truncate_page_n, 200_000);
    assert_eq!(app.max_sync_wal_bytes, 16 << 20);
    assert!(app.restore_if_db_not_exists);
    assert_eq!(app.snapshot, SnapshotOverride::default());
    let r = app.replica.as_ref().unwrap();
    assert_eq!(r.sync_interval, secs(2), "inherited from the top level");
    assert_eq!(r.max_sync_ltx_files, None, "0 = no limit");
    assert!(r.auto_recover);
    assert_eq!(r.target.kind(), "s3");
    assert_eq!(r.target.to_string(), "s3://app-bucket/backups/app");
    let s = s3(r);
    assert_eq!(s.bucket, "app-bucket");
    assert_eq!(s.path, "backups/app");
    assert_eq!(
        s.region.as_deref(),
        Some("eu-west-1"),
        "global region wins over none"
    );
    assert_eq!(s.endpoint.as_deref(), Some("http://127.0.0.1:9000"));
    assert_eq!(expose(&s.access_key_id), Some("AKIAGLOBAL"));
    assert_eq!(expose(&s.secret_access_key), Some("globalsecret"));
    assert!(s.force_path_style);
    assert!(s.skip_verify);
    assert!(!s.sign_payload);
    assert!(!s.require_content_md5);
    assert_eq!(s.part_size, 10 << 20);
    assert_eq!(s.concurrency, 8);
    assert_eq!(s.storage_class.as_deref(), Some("STANDARD_IA"));
    assert_eq!(s.sse_customer_algorithm.as_deref(), Some("AES256"));
    assert_eq!(
        expose(&s.sse_customer_key),
        Some("c3VwZXJzZWNyZXRzc2VrZXk=")
    );
    assert_eq!(s.sse_customer_key_path, None);
    assert_eq!(s.sse_kms_key_id.as_deref(), Some("kms-1234"));

    let notes = &c.dbs[1];
    assert_eq!(notes.meta_path, PathBuf::from("/srv/.notes.db-litestream"));
    assert_eq!(notes.snapshot.interval, Some(secs(12 * 3600)));
    assert_eq!(notes.snapshot.retention, None);
    let r = notes.replica.as_ref().unwrap();
    assert_eq!(file_path(r), Path::new("/mnt/backup/notes"));
    assert_eq!(r.sync_interval, secs(10), "the replica's own value wins");
    assert_eq!(r.max_sync_ltx_files, Some(256));
    assert!(!r.auto_recover);

    let other = s3(c.dbs[2].replica.as_ref().unwrap());
    assert_eq!(other.bucket, "other-bucket");
    assert_eq!(other.path, "notes/db");
    assert_eq!(expose(&other.access_key_id), Some("LOCALKEY"));
    assert_eq!(expose(&other.secret_access_key), Some("LOCALSECRET"));
    assert_eq!(
        other.endpoint.as_deref(),
        Some("https://s3.eu-west-1.amazonaws.com")
    );
    assert!(
        !other.force_path_style,
        "explicit false beats the endpoint default"
    );
    assert!(!other.skip_verify);
    assert!(other.sign_payload && other.require_content_md5);
    assert_eq!(other.part_size, 5 << 20);
    assert_eq!(other.concurrency, 5);
    assert_eq!(other.sse_customer_algorithm, None);
}

#[test]
fn defaults_match_litestream() {
    let c = parse("dbs:\n  - path: /data/app.db\n    replica:\n      path: /backup\n");
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    assert_eq!(c.levels, vec![secs(30), secs(300), secs(3600)]);
    assert_eq!(c.levels, DEFAULT_LEVELS.to_vec());
    assert_eq!(c.snapshot.interval, secs(86_400));
    assert_eq!(c.snapshot.retention, secs(86_400));
    assert_eq!(c.l0_retention, Some(secs(300)));
    assert_eq!(c.l0_retention_check_interval, secs(15));
    assert!(c.retention.enabled);
    assert_eq!(c.shutdown_sync_timeout, secs(30));
    assert_eq!(c.shutdown_sync_interval, Duration::from_millis(500));
    assert_eq!(c.exec, None);
    assert_eq!(c.logging.level, LogLevel::Info);
    assert_eq!(c.logging.format, LogFormat::Text);
    assert!(!c.logging.stderr && !c.logging.source);

    let db = &c.dbs[0];
    assert_eq!(db.path, PathBuf::from("/data/app.db"));
    assert_eq!(db.meta_path, PathBuf::from("/data/.app.db-litestream"));
    assert_eq!(db.monitor_interval, secs(1));
    assert_eq!(db.checkpoint_interval, Some(secs(60)));
    assert_eq!(db.busy_timeout, secs(1));
    assert_eq!(db.min_checkpoint_page_count, 1000);
    assert_eq!(db.truncate_page_n, 121_359);
    assert_eq!(db.max_sync_wal_bytes, 64 << 20);
    assert!(!db.restore_if_db_not_exists);
    let r = db.replica.as_ref().unwrap();
    assert_eq!(file_path(r), Path::new("/backup"), "type defaults to file");
    assert_eq!(r.sync_interval, secs(1));
    assert_eq!(r.max_sync_ltx_files, Some(256));
    assert!(!r.auto_recover);

    // The same defaults through the constructors.
    let mut expected = DbConfig::new("/data/app.db");
    expected.replica = db.replica.clone();
    assert_eq!(*db, expected);
    let mut without_dbs = c.clone();
    without_dbs.dbs.clear();
    assert_eq!(without_dbs, Config::default());
}

#[test]
fn empty_files_and_empty_sections_give_defaults() {
    for text in [
        "",
        "# only a comment\n",
        "dbs: []\n",
        "dbs:\nsnapshot:\nlogging:\n",
    ] {
        let c = parse(text);
        assert_eq!(c, Config::default(), "{text:?}");
    }
    // A database without a replica is accepted (e.g. for `databases`); replicating it
    // fails with Litestream's message.
    let c = parse("dbs:\n  - path: /a.db\n");
    let err = c.dbs[0].require_replica().unwrap_err();
    assert_msg(
        &err,
        &["/a.db", "must specify replica for database", "replica:"],
    );
}

#[test]
fn env_expansion_over_the_whole_text() {
    let text = "dbs:\n  - path: ${DATA}/app.db\n    replica:\n      url: s3://$BUCKET/app$SUFFIX\n";
    let c = parse_env(text, &[("DATA", "/srv/data"), ("BUCKET", "prod")]);
    assert_eq!(c.dbs[0].path, PathBuf::from("/srv/data/app.db"));
    let s = s3(c.dbs[0].replica.as_ref().unwrap());
    assert_eq!((s.bucket.as_str(), s.path.as_str()), ("prod", "app"));
    assert_eq!(c.warnings.len(), 1, "{:?}", c.warnings);
    assert!(
        c.warnings[0].contains("SUFFIX is not set"),
        "{:?}",
        c.warnings
    );

    // -no-expand-env keeps the text as written.
    let c = Config::parse(
        "dbs:\n  - path: /x/$NAME.db\n",
        &env_of(&[("NAME", "expanded")]),
        false,
    )
    .unwrap();
    assert_eq!(c.dbs[0].path, PathBuf::from("/x/$NAME.db"));
    assert!(c.warnings.is_empty());

    // Expanded values are parsed as YAML, so a variable can supply a whole value.
    let c = parse_env("l0-retention: $RET\n", &[("RET", "90s")]);
    assert_eq!(c.l0_retention, Some(secs(90)));
}

#[test]
fn durations_in_every_go_form() {
    for (text, want) in [
        ("1s", secs(1)),
        ("\"500ms\"", Duration::from_millis(500)),
        ("1m30s", secs(90)),
        ("24h", secs(86_400)),
        ("1.5h", secs(5400)),
        ("2h45m", secs(2 * 3600 + 45 * 60)),
        ("100us", Duration::from_micros(100)),
    ] {
        let c = parse(&format!("shutdown-sync-timeout: {text}\n"));
        assert_eq!(c.shutdown_sync_timeout, want, "{text}");
    }
    // 0 where zero means "off" or is allowed.
    let c = parse(
        "l0-retention: 0\nshutdown-sync-timeout: 0s\ndbs:\n  - path: /a.db\n    \
         checkpoint-interval: \"0\"\n    busy-timeout: 0\n",
    );
    assert_eq!(c.l0_retention, None);
    assert_eq!(c.shutdown_sync_timeout, Duration::ZERO);
    assert_eq!(c.dbs[0].checkpoint_interval, None);
    assert_eq!(c.dbs[0].busy_timeout, Duration::ZERO);
}

#[test]
fn bad_durations_name_the_key_line_and_fix() {
    let err = parse_err("dbs:\n  - path: /a.db\n    monitor-interval: 5x\n");
    assert!(matches!(err, ConfigError::Value { .. }), "{err:?}");
    let origin = err.origin().unwrap();
    assert_eq!((origin.line, origin.column), (Some(3), Some(23)));
    assert_msg(
        &err,
        &[
            "config line 3 column 23",
            "dbs[0].monitor-interval",
            "invalid duration \"5x\"",
            "unknown unit \"x\"",
            "such as \"1s\"",
        ],
    );

    let err = parse_err("snapshot:\n  interval: 5\n");
    assert_msg(&err, &["line 2", "snapshot.interval", "no unit", "\"5s\""]);

    let err = parse_err("dbs:\n  - path: /a.db\n    busy-timeout: -1s\n");
    assert_msg(&err, &["line 3", "dbs[0].busy-timeout", "negative"]);

    let err = parse_err("l0-retention: [1s]\n");
    assert_msg(&err, &["line 1", "l0-retention", "Go duration"]);

    // Zero where an interval must be positive.
    for (text, key) in [
        (
            "dbs:\n  - path: /a.db\n    monitor-interval: 0s\n",
            "dbs[0].monitor-interval",
        ),
        ("sync-interval: 0\n", "sync-interval"),
        (
            "dbs:\n  - path: /a.db\n    replica:\n      path: /b\n      sync-interval: 0s\n",
            "dbs[0].replica.sync-interval",
        ),
        ("levels:\n  - interval: 0s\n", "levels[0].interval"),
        ("snapshot:\n  retention: 0s\n", "snapshot.retention"),
        (
            "l0-retention-check-interval: 0s\n",
            "l0-retention-check-interval",
        ),
        ("shutdown-sync-interval: 0s\n", "shutdown-sync-interval"),
    ] {
        let err = parse_err(text);
        assert_msg(&err, &[key, "must be greater than 0", "remove the key"]);
        assert!(err.origin().unwrap().line.is_some(), "{err}");
    }
}

#[test]
fn malformed_yaml_reports_line_and_how_to_fix() {
    let err = parse_err("dbs:\n  - path: /a.db\n   replica: [\n");
    assert!(matches!(err, ConfigError::Syntax { .. }), "{err:?}");
    assert!(err.origin().unwrap().line.is_some());
    assert_msg(&err, &["config line", "invalid YAML", "indentation"]);

    let err = parse_err("dbs:\n\tpath: x\n");
    assert_msg(&err, &["line 2", "invalid YAML", "not tabs"]);
    let err = parse_err("exec: a\nexec: b\n");
    assert_msg(
        &err,
        &["duplicate entry with key \"exec\"", "remove or rename one"],
    );
    let err = parse_err("exec: a\n---\nexec: b\n");
    assert_msg(
        &err,
        &["more than one document", "remove the --- separators"],
    );

    // Right YAML, wrong shape.
    let err = parse_err("- path: /a.db\n");
    assert_msg(&err, &["top level", "mapping", "dbs:"]);
    let err = parse_err("dbs:\n  path: /a.db\n");
    assert_msg(&err, &["line 2", "dbs", "invalid type", "sequence"]);
    let err = parse_err("dbs:\n  - path: /a.db\n    truncate-page-n: lots\n");
    assert_msg(&err, &["line 3", "dbs[0].truncate-page-n", "invalid type"]);
}

#[test]
fn every_config_error_names_the_key_and_the_fix() {
    let cases: &[(&str, &[&str])] = &[
        (
            "dbs:\n  - monitor-interval: 1s\n",
            &["dbs[0].path", "missing", "add path:"],
        ),
        (
            "dbs:\n  - path: /a.db\n  - {}\n",
            &["dbs[1].path", "missing"],
        ),
        (
            "dbs:\n  - path: /a.db\n    dir: /data\n",
            &["dbs[0]", "cannot specify both 'path' and 'dir'"],
        ),
        (
            "dbs:\n  - dir: /data\n",
            &["dbs[0].pattern", "required", "pattern: \"*.db\""],
        ),
        (
            "dbs:\n  - path: /a.db\n    watch: true\n",
            &["dbs[0].watch", "only be enabled with a directory", "dir:"],
        ),
        (
            "dbs:\n  - path: /a.db\n    meta-dir: /meta\n",
            &[
                "dbs[0].meta-dir",
                "only be used with a directory",
                "meta-path:",
            ],
        ),
        (
            "levels:\n  - interval: 1s\n  - interval: 2s\n  - interval: 3s\n  - interval: 4s\n  \
             - interval: 5s\n  - interval: 6s\n  - interval: 7s\n  - interval: 8s\n  - interval: 9s\n",
            &[
                "levels",
                "9 compaction levels",
                "at most 8",
                "remove levels",
            ],
        ),
        (
            "levels:\n  - {}\n",
            &["levels[0].interval", "missing", "- interval: 5m"],
        ),
        (
            "dbs:\n  - path: /a.db\n    snapshot: {interval: 1h}\n  - path: /b.db\n    \
             snapshot: {interval: 2h}\n",
            &[
                "dbs[1].snapshot.interval",
                "conflicting database snapshot intervals",
                "/a.db has 1h0m0s",
                "/b.db has 2h0m0s",
                "same snapshot.interval",
            ],
        ),
        (
            "dbs:\n  - path: /a.db\n    replica:\n      type: s3\n      path: backups\n",
            &[
                "dbs[0].replica",
                "s3 replica has no bucket",
                "bucket:",
                "s3://BUCKET",
            ],
        ),
        (
            "dbs:\n  - path: /a.db\n    replica:\n      url: ftp://host/x\n",
            &[
                "dbs[0].replica.url",
                "unknown replica URL scheme \"ftp\"",
                "s3://bucket/path",
            ],
        ),
        (
            "dbs:\n  - path: /a.db\n    replica:\n      url: gs://bucket/x\n",
            &[
                "dbs[0].replica",
                "no credentials for gs replica",
                "GOOGLE_APPLICATION_CREDENTIALS",
            ],
        ),
        (
            "dbs:\n  - path: /a.db\n    replica:\n      type: s4\n      bucket: b\n",
            &[
                "dbs[0].replica.type",
                "unknown replica type \"s4\"",
                "did you mean type: s3?",
            ],
        ),
        (
            "dbs:\n  - path: /a.db\n    replica:\n      type: file\n",
            &["dbs[0].replica", "file replica path required", "path:"],
        ),
        (
            "dbs:\n  - path: /a.db\n    replica:\n      path: s3://bucket/x\n",
            &["dbs[0].replica.path", "cannot be a URL", "url:"],
        ),
        (
            "dbs:\n  - path: /a.db\n    replica:\n      url: file:///b\n      path: /c\n",
            &[
                "dbs[0].replica",
                "cannot specify url & path for file replica",
            ],
        ),
        (
            "dbs:\n  - path: /a.db\n    replica:\n      url: s3://b/x\n      bucket: c\n",
            &[
                "dbs[0].replica",
                "cannot specify url & bucket for s3 replica",
            ],
        ),
        (
            "dbs:\n  - path: /a.db\n    replica:\n      url: s3://b/x\n      path: y\n",
            &["dbs[0].replica", "cannot specify url & path for s3 replica"],
        ),
        (
            "dbs:\n  - path: /a.db\n    replica:\n      url: file://host/b\n",
            &[
                "dbs[0].replica.url",
                "file URL has a host",
                "file:///abs/path",
            ],
        ),
        (
            "dbs:\n  - path: /a.db\n    replica:\n      url: s3://b/%zz\n",
            &["dbs[0].replica.url", "invalid percent-escape"],
        ),
        (
            "dbs:\n  - path: /a.db\n    replica:\n      url: s3://b/x?forcePathStyle=maybe\n",
            &[
                "dbs[0].replica.url",
                "forcePathStyle=\"maybe\"",
                "forcePathStyle=true",
            ],
        ),
        (
            "dbs:\n  - path: /a.db\n    replica:\n      url: s3://b/x\n      part-size: 1MB\n",
            &[
                "dbs[0].replica.part-size",
                "below S3's minimum part size",
                "5MiB",
            ],
        ),
        (
            "dbs:\n  - path: /a.db\n    replica:\n      bucket: b\n      type: s3\n      \
             part-size: lots\n",
            &[
                "line 6",
                "dbs[0].replica.part-size",
                "invalid size \"lots\"",
                "5MiB",
            ],
        ),
        (
            "dbs:\n  - path: /a.db\n    max-sync-wal-bytes: 0\n",
            &["dbs[0].max-sync-wal-bytes", "greater than 0", "64MiB"],
        ),
        (
            "dbs:\n  - path: /a.db\n    replica:\n      url: s3://b/x\n      age:\n        \
             recipients: [age1xyz]\n",
            &[
                "dbs[0].replica.age",
                "age encryption is not currently supported",
                "#790",
                "remove",
            ],
        ),
        (
            "age:\n  identities: [/key.txt]\ndbs:\n  - path: /a.db\n    replica:\n      path: /b\n",
            &["config: age:", "age encryption"],
        ),
        (
            "logging:\n  type: xml\n",
            &["logging.type", "\"xml\"", "text, json or pretty"],
        ),
    ];
    for (text, fragments) in cases {
        let err = parse_err(text);
        assert_msg(&err, fragments);
    }
}

#[test]
fn deprecated_replicas_list() {
    let c = parse("dbs:\n  - path: /a.db\n    replicas:\n      - url: s3://bucket/a\n");
    let s = s3(c.dbs[0].replica.as_ref().unwrap());
    assert_eq!((s.bucket.as_str(), s.path.as_str()), ("bucket", "a"));
    assert_eq!(c.warnings.len(), 1, "{:?}", c.warnings);
    assert!(
        c.warnings[0].starts_with("dbs[0].replicas: deprecated")
            && c.warnings[0].contains("replica:"),
        "{:?}",
        c.warnings
    );

    let err = parse_err(
        "dbs:\n  - path: /a.db\n    replicas:\n      - url: s3://bucket/a\n      - path: /b\n",
    );
    assert_msg(
        &err,
        &[
            "dbs[0].replicas",
            "multiple replicas on a single database are no longer supported",
            "keep one replica",
        ],
    );

    let err = parse_err(
        "dbs:\n  - path: /a.db\n    replica:\n      path: /b\n    replicas:\n      - path: /c\n",
    );
    assert_msg(&err, &["dbs[0]", "cannot specify 'replica' and 'replicas'"]);

    // Errors inside the listed replica name its position.
    let err = parse_err("dbs:\n  - path: /a.db\n    replicas:\n      - type: s3\n");
    assert_msg(&err, &["dbs[0].replicas[0]", "no bucket"]);
}

#[test]
fn unknown_and_unsupported_keys_become_warnings() {
    let c = parse(
        "addr: \":9090\"\nsocket:\n  enabled: true\nheartbeat-url: https://hc.example/x\n\
         validation:\n  interval: 1h\nverify-compaction: true\nmcp-addr: :3001\n\
         snapshots:\n  interval: 1h\n\
         dbs:\n  - path: /a.db\n    monitor_interval: 5s\n    replica:\n      url: s3://b/p\n      \
         sync-intervall: 5s\n      jwtt: k\n",
    );
    assert_eq!(
        c.warnings,
        vec![
            "verify-compaction: not supported by Tideline yet, ignored",
            "snapshots: unknown key, ignored (did you mean snapshot?)",
            "dbs[0].monitor_interval: unknown key, ignored (did you mean monitor-interval?)",
            "dbs[0].replica.sync-intervall: unknown key, ignored (did you mean sync-interval?)",
            "dbs[0].replica.jwtt: unknown key, ignored (did you mean jwt?)",
        ]
    );
    // The heartbeat, the metrics address and the control socket are acted on.
    assert_eq!(c.validation_interval, Some(secs(3600)));
    assert_eq!(c.mcp_addr.as_ref().unwrap().port, 3001);
    let socket = c.socket.as_ref().unwrap();
    assert_eq!(
        socket.path,
        std::path::Path::new(tideline_config::DEFAULT_SOCKET_PATH)
    );
    let addr = c.addr.as_ref().unwrap();
    assert_eq!((addr.host.as_str(), addr.port), ("", 9090));
    let hb = c.heartbeat.as_ref().unwrap();
    assert_eq!(hb.url, "https://hc.example/x");
    assert_eq!(hb.interval, secs(300));
    // The misspelled keys really were ignored.
    assert_eq!(c.snapshot.interval, secs(86_400));
    assert_eq!(c.dbs[0].monitor_interval, secs(1));
    assert_eq!(c.dbs[0].replica.as_ref().unwrap().sync_interval, secs(1));
}

#[test]
fn a_metrics_address_without_a_port_is_refused_with_the_fix() {
    let err = parse_err("addr: localhost\ndbs:\n  - path: /a.db\n    replica:\n      path: /b\n");
    assert_msg(&err, &["addr", "must specify port", "addr: \":9090\""]);
}

#[test]
fn advisory_warnings() {
    let c = parse("levels:\n  - interval: 5m\n  - interval: 1m\n");
    assert_eq!(c.levels, vec![secs(300), secs(60)]);
    assert_eq!(c.warnings.len(), 1, "{:?}", c.warnings);
    assert!(
        c.warnings[0]
            .starts_with("levels[1].interval: 1m0s is not longer than levels[0].interval (5m0s)")
    );

    let c = parse("levels: []\n");
    assert!(c.levels.is_empty());
    assert!(
        c.warnings[0].starts_with("levels: empty"),
        "{:?}",
        c.warnings
    );

    let c = parse("dbs:\n  - path: /a.db\n    replica:\n      url: file:///b\n      type: s3\n");
    assert_eq!(
        file_path(c.dbs[0].replica.as_ref().unwrap()),
        Path::new("/b")
    );
    assert!(
        c.warnings[0].contains("dbs[0].replica.type: \"s3\" ignored"),
        "{:?}",
        c.warnings
    );

    let c = parse("dbs:\n  - path: /a.db\n    pattern: '*.db'\n");
    assert_eq!(
        c.warnings,
        vec!["dbs[0].pattern: only used with dir:, ignored"]
    );

    let c = parse("logging:\n  level: loud\n");
    assert_eq!(c.logging.level, LogLevel::Info);
    assert!(c.warnings[0].contains("logging.level: unknown level \"loud\""));

    let c = parse(
        "dbs:\n  - path: /a.db\n    replica:\n      url: s3://b/p?regoin=x\n      \
         sse-customer-algorithm: AES256\n",
    );
    assert_eq!(
        c.warnings,
        vec![
            "dbs[0].replica.url: unknown query parameter \"regoin\", ignored (did you mean region?)",
            "dbs[0].replica.sse-customer-algorithm: has no effect without sse-customer-key or \
             sse-customer-key-path; ignored",
        ]
    );
}

#[test]
fn per_database_snapshot_settings_follow_litestream() {
    // Without a top-level value, the databases' (agreeing) value is used.
    let c = parse(
        "dbs:\n  - path: /a.db\n    snapshot: {interval: 6h, retention: 48h}\n  - path: /b.db\n    \
         snapshot: {interval: 6h}\n",
    );
    assert_eq!(c.snapshot.interval, secs(6 * 3600));
    assert_eq!(c.snapshot.retention, secs(48 * 3600));
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);

    // A top-level value wins; a different per-database value is reported.
    let c =
        parse("snapshot:\n  interval: 1h\ndbs:\n  - path: /a.db\n    snapshot: {interval: 6h}\n");
    assert_eq!(c.snapshot.interval, secs(3600));
    assert_eq!(c.dbs[0].snapshot.interval, Some(secs(6 * 3600)));
    assert_eq!(c.warnings.len(), 1);
    assert!(c.warnings[0].starts_with("dbs[0].snapshot.interval: 6h0m0s differs"));

    let err = parse_err(
        "dbs:\n  - path: /a.db\n    snapshot: {retention: 1h}\n  - path: /b.db\n    \
         snapshot: {retention: 2h}\n",
    );
    assert_msg(
        &err,
        &[
            "dbs[1].snapshot.retention",
            "conflicting database snapshot retentions",
        ],
    );
}

#[test]
fn global_replica_settings_are_inherited() {
    let c = parse_env(
        "bucket: shared\nregion: us-west-2\nendpoint: minio.local:9000\nsync-interval: 5s\n\
         max-sync-ltx-files: 10\nauto-recover: true\nskip-verify: true\npart-size: 8388608\n\
         concurrency: 3\nstorage-class: GLACIER_IR\nsse-kms-key-id: kms\n\
         dbs:\n  - path: /a.db\n    replica:\n      type: s3\n      path: a\n\
         \x20 - path: /b.db\n    replica:\n      url: s3://own-bucket/b\n      region: eu-central-1\n      \
         concurrency: 1\n      auto-recover: false\n  - path: /c.db\n    replica:\n      path: /backup/c\n",
        &[],
    );
    let a = c.dbs[0].replica.as_ref().unwrap();
    assert_eq!(
        (a.sync_interval, a.max_sync_ltx_files, a.auto_recover),
        (secs(5), Some(10), true)
    );
    let sa = s3(a);
    assert_eq!((sa.bucket.as_str(), sa.path.as_str()), ("shared", "a"));
    assert_eq!(sa.region.as_deref(), Some("us-west-2"));
    assert_eq!(sa.endpoint.as_deref(), Some("http://minio.local:9000"));
    assert!(sa.force_path_style && sa.skip_verify);
    assert_eq!((sa.part_size, sa.concurrency), (8 << 20, 3));
    assert_eq!(sa.storage_class.as_deref(), Some("GLACIER_IR"));
    assert_eq!(sa.sse_kms_key_id.as_deref(), Some("kms"));

    let b = c.dbs[1].replica.as_ref().unwrap();
    assert!(!b.auto_recover, "local false beats global true");
    let sb = s3(b);
    assert_eq!(
        sb.bucket, "own-bucket",
        "the URL's bucket beats the global one"
    );
    assert_eq!(sb.region.as_deref(), Some("eu-central-1"));
    assert_eq!(sb.concurrency, 1);

    let fc = c.dbs[2].replica.as_ref().unwrap();
    assert_eq!(file_path(fc), Path::new("/backup/c"));
    assert_eq!(
        fc.sync_interval,
        secs(5),
        "file replicas inherit common settings too"
    );
}

#[test]
fn s3_credentials_come_from_config_then_environment() {
    let text = "dbs:\n  - path: /a.db\n    replica:\n      url: s3://b/p\n";
    let creds = |env: &[(&str, &str)]| {
        let c = parse_env(text, env);
        let s = s3(c.dbs[0].replica.as_ref().unwrap()).clone();
        (
            expose(&s.access_key_id).map(str::to_owned),
            expose(&s.secret_access_key).map(str::to_owned),
        )
    };
    assert_eq!(creds(&[]), (None, None), "left to the AWS default chain");
    let lit = [
        ("LITESTREAM_ACCESS_KEY_ID", "lk"),
        ("LITESTREAM_SECRET_ACCESS_KEY", "ls"),
    ];
    assert_eq!(creds(&lit), (Some("lk".into()), Some("ls".into())));
    // As in Litestream, LITESTREAM_* only stands in for unset AWS_* variables.
    let both = [
        lit[0],
        lit[1],
        ("AWS_ACCESS_KEY_ID", "ak"),
        ("AWS_SECRET_ACCESS_KEY", "as"),
    ];
    assert_eq!(creds(&both), (Some("ak".into()), Some("as".into())));
    assert_eq!(
        creds(&[("AWS_ACCESS_KEY_ID", "")]),
        (None, None),
        "empty = unset"
    );

    let c = parse_env(
        "dbs:\n  - path: /a.db\n    replica:\n      url: s3://b/p\n      access-key-id: ck\n      \
         secret-access-key: cs\n",
        &both,
    );
    let s = s3(c.dbs[0].replica.as_ref().unwrap());
    assert_eq!(
        (expose(&s.access_key_id), expose(&s.secret_access_key)),
        (Some("ck"), Some("cs"))
    );
}

#[test]
fn secrets_are_redacted_in_debug_output() {
    let c = parse_env(
        "secret-access-key: GLOBAL-SECRET-1\ndbs:\n  - path: /a.db\n    replica:\n      \
         url: s3://b/p\n      access-key-id: ACCESS-KEY-2\n      sse-customer-key: SSE-KEY-3\n\
         \x20 - path: /b.db\n    replica:\n      type: s3\n      bucket: x\n",
        &[("AWS_SECRET_ACCESS_KEY", "ENV-SECRET-4")],
    );
    let s = s3(c.dbs[0].replica.as_ref().unwrap());
    assert_eq!(expose(&s.secret_access_key), Some("GLOBAL-SECRET-1"));
    assert_eq!(
        expose(&s3(c.dbs[1].replica.as_ref().unwrap()).secret_access_key),
        Some("GLOBAL-SECRET-1")
    );
    for shown in [format!("{c:?}"), format!("{c:#?}")] {
        for secret in [
            "GLOBAL-SECRET-1",
            "ACCESS-KEY-2",
            "SSE-KEY-3",
            "ENV-SECRET-4",
        ] {
            assert!(!shown.contains(secret), "{secret} leaked: {shown}");
        }
        assert!(shown.contains("<redacted>"));
    }
    let secret = Sensitive::new("hunter2".to_owned());
    assert_eq!(format!("{secret} {secret:?}"), "<redacted> <redacted>");
    assert_eq!(secret.clone().into_inner(), "hunter2");

    // Nor do URLs with credentials leak through errors.
    let err =
        ReplicaConfig::from_url_with_env("ftp://user:pa55word@host/x", &env_of(&[])).unwrap_err();
    assert!(!err.to_string().contains("pa55word"), "{err}");
    assert_msg(&err, &["<redacted>@host"]);
}

#[test]
fn replica_urls() {
    let env = env_of(&[("HOME", "/home/me")]);
    let url =
        |u: &str| ReplicaConfig::from_url_with_env(u, &env).unwrap_or_else(|e| panic!("{u}: {e}"));

    // Folders.
    for (u, want) in [
        ("file:///var/backups/app", "/var/backups/app"),
        ("file:///var/backups/my%20app/", "/var/backups/my app"),
        ("file://localhost/var/b", "/var/b"),
        ("file:/var/b", "/var/b"),
        ("/var/backups/app", "/var/backups/app"),
        ("relative/dir", "relative/dir"),
        ("~/backups", "/home/me/backups"),
    ] {
        let r = url(u);
        assert_eq!(file_path(&r), Path::new(want), "{u}");
        assert_eq!(r.sync_interval, secs(1));
        assert_eq!(r.max_sync_ltx_files, Some(256));
    }

    // S3 with Litestream's query keys.
    let r = url(
        "s3://my-bucket/db/app%20one?endpoint=http://127.0.0.1:9000&region=us-east-1&forcePathStyle=true",
    );
    let s = s3(&r);
    assert_eq!(s.bucket, "my-bucket");
    assert_eq!(s.path, "db/app one");
    assert_eq!(s.endpoint.as_deref(), Some("http://127.0.0.1:9000"));
    assert_eq!(s.region.as_deref(), Some("us-east-1"));
    assert!(s.force_path_style && !s.skip_verify);
    assert!(s.sign_payload && s.require_content_md5);
    assert_eq!((s.part_size, s.concurrency), (5 << 20, 5));

    let s =
        url("s3://b?endpoint=localhost:9000&skipVerify=true&partSize=8MiB&concurrency=2").target;
    let ReplicaTarget::S3(s) = s else { panic!() };
    assert_eq!(s.path, "");
    assert_eq!(
        s.endpoint.as_deref(),
        Some("http://localhost:9000"),
        "scheme added"
    );
    assert!(s.force_path_style, "custom endpoints default to path style");
    assert!(s.skip_verify);
    assert_eq!((s.part_size, s.concurrency), (8 << 20, 2));

    let s = url("s3://b/p?endpoint=minio.example.com&forcePathStyle=false").target;
    let ReplicaTarget::S3(s) = s else { panic!() };
    assert_eq!(s.endpoint.as_deref(), Some("https://minio.example.com"));
    assert!(!s.force_path_style);

    // Provider conventions.
    let tigris = url("s3://b/p?endpoint=fly.storage.tigris.dev&region=auto");
    assert!(!s3(&tigris).require_content_md5 && s3(&tigris).sign_payload);
    let r2 = url("s3://b/p?endpoint=https://acct.r2.cloudflarestorage.com");
    assert_eq!(s3(&r2).concurrency, 2);
    let b2 = url("s3://bkt.s3.us-west-002.backblazeb2.com/db");
    assert_eq!(s3(&b2).bucket, "bkt");
    assert_eq!(s3(&b2).region.as_deref(), Some("us-west-002"));
    assert_eq!(
        s3(&b2).endpoint.as_deref(),
        Some("https://s3.us-west-002.backblazeb2.com")
    );
    assert!(s3(&b2).force_path_style);
    let vhost = url("s3://bkt.s3.eu-west-1.amazonaws.com/x");
    assert_eq!(
        (
            s3(&vhost).bucket.as_str(),
            s3(&vhost).region.as_deref(),
            s3(&vhost).endpoint.as_deref()
        ),
        ("bkt", Some("eu-west-1"), None)
    );
    let arn = url("s3://arn:aws:s3:us-east-2:123456789012:accesspoint/my-ap/backups/db");
    assert_eq!(
        s3(&arn).bucket,
        "arn:aws:s3:us-east-2:123456789012:accesspoint/my-ap"
    );
    assert_eq!(s3(&arn).path, "backups/db");
    assert_eq!(s3(&arn).region.as_deref(), Some("us-east-2"));

    // Errors.
    let bad = |u: &str, fragments: &[&str]| {
        let err = ReplicaConfig::from_url_with_env(u, &env).unwrap_err();
        assert!(matches!(err, ConfigError::ReplicaUrl { .. }), "{err:?}");
        assert_msg(&err, fragments);
    };
    bad("", &["empty", "s3://bucket/path"]);
    bad(
        "http://example.com/x",
        &[
            "replica URL http://example.com/x",
            "unknown replica URL scheme \"http\"",
        ],
    );
    bad(
        "sftp://host/x",
        &["user required for sftp replica", "sftp://user@host/path"],
    );
    bad(
        "webdav:///x",
        &["webdav-url required", "webdavs://host/path"],
    );
    bad(
        "nats://host:4222/a/b",
        &["\"a/b\" is not a NATS object-store bucket name"],
    );
    bad("nats://host:4222", &["bucket required for NATS replica"]);
    bad(
        "abs://container/x",
        &["account name is required when endpoint is not specified"],
    );
    bad(
        "oss://bucket/x",
        &["no credentials for oss replica", "OSS_ACCESS_KEY_ID"],
    );
    bad("s3:///path-only", &["no bucket", "s3://BUCKET"]);
    bad(
        "s3://b/p?forcepathstyle=true",
        &[
            "replica URL s3://b/p?forcepathstyle=true: unknown query parameter \"forcepathstyle\"",
            "did you mean forcePathStyle?",
            "remove it",
        ],
    );
    bad(
        "file://server/share",
        &["file URL has a host", "file:///abs/path"],
    );
    bad(
        "s3://b/p?concurrency=many",
        &["concurrency=\"many\"", "whole number"],
    );
}

#[test]
fn from_url_reads_the_process_environment_and_cwd() {
    // Only relative-path resolution is checked here: the test must not depend on the
    // credentials of whoever runs it.
    let r = ReplicaConfig::from_url("some/dir").unwrap();
    assert_eq!(
        file_path(&r),
        std::env::current_dir().unwrap().join("some/dir")
    );
}

#[test]
fn paths_expand_home_and_strip_sqlite_prefixes() {
    let c = parse_env(
        "dbs:\n  - path: ~/data/app.db\n    meta-path: ~/meta\n    replica:\n      path: ~/backup\n\
         \x20 - path: sqlite3:///srv/x.db\n  - path: sqlite:///srv/y.db\n  - path: rel.db\n",
        &[("HOME", "/home/me"), ("USERPROFILE", "/home/me")],
    );
    assert_eq!(c.dbs[0].path, PathBuf::from("/home/me/data/app.db"));
    assert_eq!(c.dbs[0].meta_path, PathBuf::from("/home/me/meta"));
    assert_eq!(
        file_path(c.dbs[0].replica.as_ref().unwrap()),
        Path::new("/home/me/backup")
    );
    assert_eq!(c.dbs[1].path, PathBuf::from("/srv/x.db"));
    assert_eq!(c.dbs[2].path, PathBuf::from("/srv/y.db"));
    assert_eq!(
        c.dbs[3].path,
        PathBuf::from("rel.db"),
        "parse leaves relative paths alone"
    );
    assert_eq!(c.dbs[3].meta_path, PathBuf::from(".rel.db-litestream"));
    assert_eq!(
        meta_path_for(Path::new("/a/b.sqlite")),
        PathBuf::from("/a/.b.sqlite-litestream")
    );
    assert_eq!(
        c.db(Path::new("/srv/x.db")).unwrap().path,
        PathBuf::from("/srv/x.db")
    );
    assert!(c.db(Path::new("/nope.db")).is_none());

    let err = parse_err("dbs:\n  - path: ~/app.db\n");
    assert_msg(
        &err,
        &["dbs[0].path", "cannot expand ~", "is not set", "in full"],
    );
}

#[test]
fn log_level_environment_variable_overrides_the_file() {
    let c = parse_env("logging:\n  level: error\n", &[("LOG_LEVEL", "TRACE")]);
    assert_eq!(c.logging.level, LogLevel::Trace);
    let c = parse_env("logging:\n  level: WARNING\n", &[]);
    assert_eq!(c.logging.level, LogLevel::Warn);
    let c = parse_env("logging:\n  type: pretty\n", &[]);
    assert_eq!(c.logging.format, LogFormat::Pretty);
}

#[test]
fn load_reads_the_file_and_reports_it_in_errors() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("litestream.yml");
    std::fs::write(
        &path,
        "dbs:\n  - path: rel/app.db\n    replica:\n      path: rel-backup\n",
    )
    .unwrap();
    let c = Config::load(&path, true).unwrap();
    assert_eq!(c.source.as_deref(), Some(path.as_path()));
    let cwd = std::env::current_dir().unwrap();
    assert_eq!(
        c.dbs[0].path,
        cwd.join("rel/app.db"),
        "relative to the working directory, as Litestream"
    );
    assert_eq!(c.dbs[0].meta_path, cwd.join("rel/.app.db-litestream"));
    assert_eq!(
        file_path(c.dbs[0].replica.as_ref().unwrap()),
        cwd.join("rel-backup")
    );

    std::fs::write(&path, "dbs:\n  - path: /a.db\n    monitor-interval: 1x\n").unwrap();
    let err = Config::load(&path, true).unwrap_err();
    let origin = err.origin().unwrap();
    assert_eq!(origin.file.as_deref(), Some(path.as_path()));
    assert_msg(
        &err,
        &[&format!("{}:3:23: dbs[0].monitor-interval", path.display())],
    );

    std::fs::write(&path, "dbs:\n  - replica:\n      path: /b\n").unwrap();
    let err = Config::load(&path, true).unwrap_err();
    assert_msg(
        &err,
        &[&format!("{}: dbs[0].path: missing", path.display())],
    );

    let missing = dir.path().join("nope.yml");
    let err = Config::load(&missing, true).unwrap_err();
    assert!(matches!(err, ConfigError::Read { .. }), "{err:?}");
    assert_msg(
        &err,
        &["nope.yml not found", "-config", "LITESTREAM_CONFIG"],
    );
}

#[test]
fn default_config_path_follows_litestream() {
    assert_eq!(
        default_config_path(&env_of(&[("LITESTREAM_CONFIG", "/opt/ls.yml")])),
        PathBuf::from("/opt/ls.yml")
    );
    let fallback = default_config_path(&env_of(&[("LITESTREAM_CONFIG", "")]));
    if cfg!(windows) {
        assert_eq!(fallback, PathBuf::from(r"C:\Litestream\litestream.yml"));
    } else {
        assert_eq!(fallback, PathBuf::from("/etc/litestream.yml"));
    }
}

fn sftp(replica: &ReplicaConfig) -> &tideline_config::SftpReplicaConfig {
    match &replica.target {
        ReplicaTarget::Sftp(c) => c,
        other => panic!("not sftp: {other:?}"),
    }
}

fn webdav(replica: &ReplicaConfig) -> &tideline_config::WebDavReplicaConfig {
    match &replica.target {
        ReplicaTarget::WebDav(c) => c,
        other => panic!("not webdav: {other:?}"),
    }
}

#[test]
fn sftp_replicas_read_litestreams_keys_and_url() {
    let c = parse_env(
        "key-path: /keys/id_ed25519\n\
         dbs:\n  - path: /a.db\n    replica:\n      type: sftp\n      host: nas.local:2222\n      \
         user: backup\n      \
         password: ${PW}\n      path: backups/a\n      concurrent-writes: false\n      \
         host-key: ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB2example0key0text0here\n\
         \x20 - path: /b.db\n    replica:\n      url: sftp://ann:s%40cret@10.0.0.2/srv/b/\n",
        &[("PW", "pw1")],
    );
    let a = sftp(c.dbs[0].replica.as_ref().unwrap());
    assert_eq!(a.host_and_port(), ("nas.local".into(), 2222));
    assert_eq!(a.user, "backup");
    assert_eq!(expose(&a.password), Some("pw1"));
    assert_eq!(a.path, "backups/a");
    assert_eq!(a.level_dir(3), "backups/a/ltx/3");
    assert_eq!(
        a.key_path.as_deref(),
        Some(Path::new("/keys/id_ed25519")),
        "inherited from the top level"
    );
    assert!(!a.concurrent_writes);
    assert!(
        a.host_key
            .as_deref()
            .unwrap()
            .starts_with("ssh-ed25519 AAAA")
    );
    assert!(
        !format!("{a:?}").contains("pw1"),
        "the password is not in Debug"
    );

    let b = c.dbs[1].replica.as_ref().unwrap();
    let sb = sftp(b);
    assert_eq!(
        (sb.host.as_str(), sb.user.as_str(), sb.path.as_str()),
        ("10.0.0.2", "ann", "/srv/b")
    );
    assert_eq!(expose(&sb.password), Some("s@cret"), "decoded from the URL");
    assert_eq!(sb.host_and_port().1, 22);
    assert!(sb.concurrent_writes, "Litestream's default");
    assert_eq!(sb.level_dir(0), "/srv/b/ltx/0");
    assert_eq!(b.target.to_string(), "sftp://ann@10.0.0.2/srv/b");

    for (text, fragments) in [
        (
            "dbs:\n  - path: /a.db\n    replica:\n      type: sftp\n      user: u\n",
            &["dbs[0].replica", "host required for sftp replica"][..],
        ),
        (
            "dbs:\n  - path: /a.db\n    replica:\n      url: sftp://u@h/p\n      host: h2\n",
            &["cannot specify url & host for sftp replica"][..],
        ),
        (
            "dbs:\n  - path: /a.db\n    replica:\n      url: sftp://u@h/p\n      path: /q\n",
            &["cannot specify url & path for sftp replica"][..],
        ),
        (
            "dbs:\n  - path: /a.db\n    replica:\n      url: sftp://u@h/p\n      host-key: AAAA\n",
            &[
                "dbs[0].replica.host-key",
                "not a public key line",
                "ssh-keyscan",
            ][..],
        ),
    ] {
        assert_msg(&parse_err(text), fragments);
    }
}

#[test]
fn webdav_replicas_read_litestreams_keys_and_url() {
    let c = parse_env(
        "dbs:\n  - path: /a.db\n    replica:\n      type: webdav\n      \
         webdav-url: https://cloud.example.com/remote.php/dav/files/ann/\n      \
         webdav-username: ann\n      webdav-password: ${PW}\n      path: /backups/a/\n\
         \x20 - path: /b.db\n    replica:\n      url: webdav://bob:pw2@127.0.0.1:8080/dav/b\n\
         \x20 - path: /c.db\n    replica:\n      url: webdavs://nas/c\n      type: s3\n",
        &[("PW", "pw1")],
    );
    let a = webdav(c.dbs[0].replica.as_ref().unwrap());
    assert_eq!(a.url, "https://cloud.example.com/remote.php/dav/files/ann");
    assert_eq!(a.path, "backups/a");
    assert_eq!(a.level_dir(9), "backups/a/ltx/9");
    assert_eq!(
        (a.username.as_deref(), expose(&a.password)),
        (Some("ann"), Some("pw1"))
    );
    assert!(
        !format!("{a:?}").contains("pw1"),
        "the password is not in Debug"
    );

    let b = c.dbs[1].replica.as_ref().unwrap();
    let wb = webdav(b);
    assert_eq!(
        (wb.url.as_str(), wb.path.as_str()),
        ("http://127.0.0.1:8080", "dav/b")
    );
    assert_eq!(
        (wb.username.as_deref(), expose(&wb.password)),
        (Some("bob"), Some("pw2"))
    );
    assert_eq!(b.target.to_string(), "http://127.0.0.1:8080/dav/b/");

    let wc = webdav(c.dbs[2].replica.as_ref().unwrap());
    assert_eq!((wc.url.as_str(), wc.path.as_str()), ("https://nas", "c"));
    assert!(
        c.warnings
            .iter()
            .any(|w| w.contains("the url scheme makes this a webdav replica")),
        "{:?}",
        c.warnings
    );

    for (text, fragments) in [
        (
            "dbs:\n  - path: /a.db\n    replica:\n      type: webdav\n      path: x\n",
            &[
                "webdav-url required for webdav replica",
                "webdav-url: https://host",
            ][..],
        ),
        (
            "dbs:\n  - path: /a.db\n    replica:\n      type: webdav\n      webdav-url: ftp://h\n",
            &["dbs[0].replica.webdav-url", "not an http(s) URL"][..],
        ),
        (
            "dbs:\n  - path: /a.db\n    replica:\n      url: webdav://h/p\n      webdav-url: http://h\n",
            &["cannot specify url & webdav-url for webdav replica"][..],
        ),
    ] {
        assert_msg(&parse_err(text), fragments);
    }
}

#[test]
fn a_replica_url_beats_top_level_defaults_and_its_own_keys_beat_the_url() {
    let c = parse(
        "user: everyone\nhost: default-host\nwebdav-url: http://default-dav\n\
         dbs:\n  - path: /a.db\n    replica:\n      url: sftp://ann@nas:2222/srv/a\n\
         \x20 - path: /b.db\n    replica:\n      url: sftp://nas/srv/b\n\
         \x20 - path: /c.db\n    replica:\n      url: webdavs://cloud/c\n\
         \x20 - path: /d.db\n    replica:\n      type: sftp\n      path: d\n",
    );
    let a = sftp(c.dbs[0].replica.as_ref().unwrap());
    assert_eq!((a.host.as_str(), a.user.as_str()), ("nas:2222", "ann"));
    let b = sftp(c.dbs[1].replica.as_ref().unwrap());
    assert_eq!(
        (b.host.as_str(), b.user.as_str()),
        ("nas", "everyone"),
        "what the URL leaves out comes from the top level"
    );
    let cw = webdav(c.dbs[2].replica.as_ref().unwrap());
    assert_eq!(cw.url, "https://cloud");
    let d = sftp(c.dbs[3].replica.as_ref().unwrap());
    assert_eq!((d.host.as_str(), d.path.as_str()), ("default-host", "d"));
}

/// The app's WebDAV and SFTP forms build their replicas through the config file's
/// rules: the same parts give the same config as the same keys in a file, and bad
/// values are refused with the same errors.
#[test]
fn webdav_and_sftp_replicas_from_parts_match_config_files() {
    use tideline_config::{SftpParts, WebDavParts};

    let from_parts = ReplicaConfig::webdav(&WebDavParts {
        url: " https://cloud.example.com/remote.php/dav/files/ann/ ".into(),
        path: "/backups/a/".into(),
        username: "ann".into(),
        password: Sensitive::new(" pw 1".into()),
    })
    .unwrap();
    let file = parse(
        "dbs:\n  - path: /a.db\n    replica:\n      type: webdav\n      \
         webdav-url: https://cloud.example.com/remote.php/dav/files/ann/\n      \
         webdav-username: ann\n      webdav-password: \" pw 1\"\n      path: backups/a\n",
    );
    assert_eq!(&from_parts, file.dbs[0].replica.as_ref().unwrap());
    assert_eq!(
        expose(&webdav(&from_parts).password),
        Some(" pw 1"),
        "kept as typed"
    );

    let anonymous = ReplicaConfig::webdav(&WebDavParts {
        url: "http://127.0.0.1:8080".into(),
        ..WebDavParts::default()
    })
    .unwrap();
    let w = webdav(&anonymous);
    assert_eq!((w.path.as_str(), w.username.as_deref()), ("", None));
    assert_eq!(w.password, None);

    for (parts, fragments) in [
        (WebDavParts::default(), &["webdav-url required"][..]),
        (
            WebDavParts {
                url: "cloud.example.com".into(),
                ..WebDavParts::default()
            },
            &["replica.webdav-url", "not an http(s) URL"][..],
        ),
    ] {
        assert_msg(&ReplicaConfig::webdav(&parts).unwrap_err(), fragments);
    }

    let key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB2example0key0text0here";
    let from_parts = ReplicaConfig::sftp(&SftpParts {
        host: "nas.local:2222".into(),
        user: "backup".into(),
        path: "/srv/backups/a".into(),
        password: Sensitive::new("pw1".into()),
        key_path: "/keys/id_ed25519".into(),
        host_key: format!(" {key} "),
        concurrent_writes: Some(false),
    })
    .unwrap();
    let file = parse(&format!(
        "dbs:\n  - path: /a.db\n    replica:\n      type: sftp\n      host: nas.local:2222\n      \
         user: backup\n      password: pw1\n      path: /srv/backups/a\n      \
         key-path: /keys/id_ed25519\n      host-key: {key}\n      concurrent-writes: false\n"
    ));
    assert_eq!(&from_parts, file.dbs[0].replica.as_ref().unwrap());
    assert_eq!(
        from_parts.target.to_string(),
        "sftp://backup@nas.local:2222/srv/backups/a"
    );

    let minimal = ReplicaConfig::sftp(&SftpParts {
        host: "nas".into(),
        user: "u".into(),
        path: "backups/a/".into(),
        ..SftpParts::default()
    })
    .unwrap();
    let s = sftp(&minimal);
    assert_eq!(s.path, "backups/a", "relative to the login folder");
    assert!(s.concurrent_writes, "the config file's default");
    assert_eq!((s.password.clone(), s.key_path.clone()), (None, None));
    assert_eq!(s.host_key, None);

    for (parts, fragments) in [
        (
            SftpParts {
                user: "u".into(),
                ..SftpParts::default()
            },
            &["host required for sftp replica"][..],
        ),
        (
            SftpParts {
                host: "nas".into(),
                ..SftpParts::default()
            },
            &["user required for sftp replica"][..],
        ),
        (
            SftpParts {
                host: "nas".into(),
                user: "u".into(),
                host_key: "nas ssh-ed25519 AAAA".into(),
                ..SftpParts::default()
            },
            &["replica.host-key", "not a public key line", "ssh-keyscan"][..],
        ),
    ] {
        assert_msg(&ReplicaConfig::sftp(&parts).unwrap_err(), fragments);
    }
}

fn abs(replica: &ReplicaConfig) -> &tideline_config::AbsReplicaConfig {
    match &replica.target {
        ReplicaTarget::Abs(c) => c,
        other => panic!("not abs: {other:?}"),
    }
}

fn oss(replica: &ReplicaConfig) -> &tideline_config::OssReplicaConfig {
    match &replica.target {
        ReplicaTarget::Oss(c) => c,
        other => panic!("not oss: {other:?}"),
    }
}

#[test]
fn oss_replicas_read_litestreams_keys_url_and_defaults() {
    let c = parse_env(
        "access-key-id: LTAIglobal\n\
         dbs:\n  - path: /a.db\n    replica:\n      type: oss\n      bucket: backups\n      \
         path: /db/a/\n      secret-access-key: ${SECRET}\n\
         \x20 - path: /b.db\n    replica:\n      url: oss://bkt.oss-cn-shanghai.aliyuncs.com/x/y\n\
         \x20 - path: /c.db\n    replica:\n      url: oss://cdb\n      region: eu-central-1\n      \
         endpoint: 127.0.0.1:9000/\n",
        &[
            ("SECRET", "TOPSECRET"),
            ("OSS_ACCESS_KEY_ID", "LTAIenv"),
            ("OSS_ACCESS_KEY_SECRET", "ENVSECRET"),
        ],
    );
    let a = c.dbs[0].replica.as_ref().unwrap();
    let oa = oss(a);
    assert_eq!((oa.bucket.as_str(), oa.path.as_str()), ("backups", "db/a"));
    assert_eq!(
        oa.access_key_id, "LTAIglobal",
        "inherited from the top level"
    );
    assert_eq!(oa.access_key_secret.expose(), "TOPSECRET");
    assert_eq!(oa.region, "cn-hangzhou", "Litestream's default region");
    assert_eq!(oa.endpoint_url(), "https://oss-cn-hangzhou.aliyuncs.com");
    assert_eq!(oa.level_dir(9), "db/a/0009", "S3's layout, level in %04x");
    assert_eq!(a.target.kind(), "oss");
    assert_eq!(a.target.to_string(), "oss://backups/db/a");
    assert!(
        !format!("{a:?}").contains("TOPSECRET"),
        "no secret in Debug"
    );

    // Without both keys, the SDK's environment variables, as a pair.
    let ob = oss(c.dbs[1].replica.as_ref().unwrap());
    assert_eq!((ob.bucket.as_str(), ob.path.as_str()), ("bkt", "x/y"));
    assert_eq!(ob.region, "cn-shanghai", "from the URL's host");
    assert_eq!(ob.endpoint_url(), "https://oss-cn-shanghai.aliyuncs.com");
    assert_eq!(
        (
            ob.access_key_id.as_str(),
            ob.access_key_secret.expose().as_str()
        ),
        ("LTAIenv", "ENVSECRET")
    );

    let oc = oss(c.dbs[2].replica.as_ref().unwrap());
    assert_eq!(oc.endpoint_url(), "https://127.0.0.1:9000", "https added");
    assert_eq!((oc.region.as_str(), oc.path.as_str()), ("eu-central-1", ""));
    assert_eq!(
        oc.level_dir(0),
        "/0000",
        "Litestream's key for an empty path"
    );

    for (text, fragments) in [
        (
            "dbs:\n  - path: /a.db\n    replica:\n      type: oss\n      path: p\n",
            &[
                "dbs[0].replica",
                "bucket required for oss replica",
                "bucket:",
            ][..],
        ),
        (
            "dbs:\n  - path: /a.db\n    replica:\n      url: oss://b/p\n      bucket: c\n",
            &["cannot specify url & bucket for oss replica"][..],
        ),
        (
            "dbs:\n  - path: /a.db\n    replica:\n      url: oss://b/p\n      access-key-id: x\n",
            &[
                "no credentials for oss replica",
                "secret-access-key",
                "OSS_ACCESS_KEY_SECRET",
            ][..],
        ),
    ] {
        assert_msg(&parse_err(text), fragments);
    }
}

#[test]
fn abs_replicas_read_litestreams_keys_and_url() {
    let c = parse_env(
        "account-name: globalacct\n\
         dbs:\n  - path: /a.db\n    replica:\n      type: abs\n      account-key: ${KEY}\n      \
         bucket: backups\n      path: /db/a/\n\
         \x20 - path: /b.db\n    replica:\n      url: abs://bob@cont/x/y\n      \
         sas-token: '?sv=2021&sig=SECRETSIG'\n\
         \x20 - path: /c.db\n    replica:\n      url: abs://devstoreaccount1@cdb\n      \
         endpoint: http://127.0.0.1:10000/devstoreaccount1/\n",
        &[
            ("KEY", "a2V5MQ=="),
            ("LITESTREAM_AZURE_ACCOUNT_KEY", "ZW52a2V5"),
        ],
    );
    let a = c.dbs[0].replica.as_ref().unwrap();
    let aa = abs(a);
    assert_eq!(aa.account_name.as_deref(), Some("globalacct"), "inherited");
    assert_eq!(expose(&aa.account_key), Some("a2V5MQ=="));
    assert_eq!((aa.bucket.as_str(), aa.path.as_str()), ("backups", "db/a"));
    assert_eq!(aa.level_dir(0), "db/a/ltx/0");
    assert_eq!(
        aa.endpoint_url(),
        "https://globalacct.blob.core.windows.net"
    );
    assert_eq!(a.target.kind(), "abs");
    assert_eq!(a.target.to_string(), "abs://globalacct@backups/db/a");
    assert!(!format!("{aa:?}").contains("a2V5MQ=="), "no key in Debug");

    let b = c.dbs[1].replica.as_ref().unwrap();
    let ab = abs(b);
    assert_eq!(
        ab.account_name.as_deref(),
        Some("globalacct"),
        "config wins over URL"
    );
    assert_eq!((ab.bucket.as_str(), ab.path.as_str()), ("cont", "x/y"));
    assert_eq!(expose(&ab.sas_token), Some("sv=2021&sig=SECRETSIG"));
    assert_eq!(
        expose(&ab.account_key),
        Some("ZW52a2V5"),
        "from the environment"
    );
    assert!(!b.target.to_string().contains("SECRETSIG"));

    let ac = abs(c.dbs[2].replica.as_ref().unwrap());
    assert_eq!(ac.endpoint_url(), "http://127.0.0.1:10000/devstoreaccount1");
    assert_eq!((ac.bucket.as_str(), ac.path.as_str()), ("cdb", ""));
    assert_eq!(ac.level_dir(9), "ltx/9");
    assert_eq!(
        c.dbs[2].replica.as_ref().unwrap().target.to_string(),
        "abs://globalacct@cdb (endpoint http://127.0.0.1:10000/devstoreaccount1)"
    );

    // The URL's account is used when the config names none.
    let from_url = parse_env(
        "dbs:\n  - path: /a.db\n    replica:\n      url: abs://acct@cont/p\n",
        &[("LITESTREAM_AZURE_SAS_TOKEN", "sv=1&sig=x")],
    );
    let u = abs(from_url.dbs[0].replica.as_ref().unwrap());
    assert_eq!(u.account_name.as_deref(), Some("acct"));
    assert_eq!(expose(&u.sas_token), Some("sv=1&sig=x"));
    assert!(from_url.warnings.is_empty(), "{:?}", from_url.warnings);

    for (text, fragments) in [
        (
            "dbs:\n  - path: /a.db\n    replica:\n      type: abs\n      account-name: a\n      \
             account-key: k\n",
            &[
                "dbs[0].replica",
                "bucket required for abs replica",
                "bucket:",
            ][..],
        ),
        (
            "dbs:\n  - path: /a.db\n    replica:\n      url: abs://a@ctr/p\n      path: q\n      \
             account-key: k\n",
            &["cannot specify url & path for abs replica"][..],
        ),
        (
            "dbs:\n  - path: /a.db\n    replica:\n      url: abs://a@ctr/p\n      bucket: d\n      \
             account-key: k\n",
            &["cannot specify url & bucket for abs replica"][..],
        ),
        (
            "dbs:\n  - path: /a.db\n    replica:\n      type: abs\n      bucket: ctr\n      \
             account-key: k\n",
            &[
                "account name is required when endpoint is not specified",
                "account-name:",
            ][..],
        ),
        (
            "dbs:\n  - path: /a.db\n    replica:\n      url: abs://a@ctr/p\n",
            &[
                "no credentials for abs replica",
                "LITESTREAM_AZURE_ACCOUNT_KEY",
                "sas-token:",
            ][..],
        ),
        (
            "dbs:\n  - path: /a.db\n    replica:\n      url: abs://ctr/p\n      \
             endpoint: http://h/acct\n      account-key: k\n",
            &["account-key needs account-name"][..],
        ),
        (
            "dbs:\n  - path: /a.db\n    replica:\n      url: abs://a@ctr/p\n      \
             endpoint: h:10000\n      account-key: k\n",
            &["dbs[0].replica.endpoint", "not an http(s) URL"][..],
        ),
        (
            "dbs:\n  - path: /a.db\n    replica:\n      url: abs://a@My_Backups/p\n      \
             account-key: k\n",
            &[
                "dbs[0].replica.url",
                "\"My_Backups\" is not a valid Azure Blob Storage container name",
                "3 to 63 lowercase letters",
            ][..],
        ),
        (
            "dbs:\n  - path: /a.db\n    replica:\n      type: abs\n      bucket: ab\n      \
             account-name: a\n      account-key: k\n",
            &["dbs[0].replica.bucket", "\"ab\" is not a valid"][..],
        ),
    ] {
        assert_msg(&parse_err(text), fragments);
    }
}

fn gs(replica: &ReplicaConfig) -> &tideline_config::GsReplicaConfig {
    match &replica.target {
        ReplicaTarget::Gs(c) => c,
        other => panic!("not gs: {other:?}"),
    }
}

#[test]
fn gs_replicas_read_litestreams_keys_url_and_google_environment() {
    let c = parse_env(
        "dbs:\n  - path: /a.db\n    replica:\n      type: gs\n      bucket: backups\n      \
         path: /db/a/\n\
         \x20 - path: /b.db\n    replica:\n      url: gs://my-bucket/x/y\n\
         \x20 - path: /c.db\n    replica:\n      url: gs://root.bucket\n",
        &[("GOOGLE_APPLICATION_CREDENTIALS", "/keys/sa.json")],
    );
    let a = c.dbs[0].replica.as_ref().unwrap();
    let ga = gs(a);
    assert_eq!((ga.bucket.as_str(), ga.path.as_str()), ("backups", "db/a"));
    assert_eq!(ga.level_dir(0), "db/a/ltx/0");
    assert_eq!(
        ga.credentials_file.as_deref(),
        Some(Path::new("/keys/sa.json"))
    );
    assert_eq!(
        (ga.emulator.as_deref(), ga.origin()),
        (None, "https://storage.googleapis.com")
    );
    assert_eq!(a.target.kind(), "gs");
    assert_eq!(a.target.to_string(), "gs://backups/db/a");
    let gb = gs(c.dbs[1].replica.as_ref().unwrap());
    assert_eq!((gb.bucket.as_str(), gb.path.as_str()), ("my-bucket", "x/y"));
    let gc = gs(c.dbs[2].replica.as_ref().unwrap());
    assert_eq!((gc.bucket.as_str(), gc.path.as_str()), ("root.bucket", ""));
    assert_eq!(gc.level_dir(9), "ltx/9");
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);

    // An emulator, as Google's libraries read STORAGE_EMULATOR_HOST: no credentials.
    for (host, origin) in [
        ("127.0.0.1:9023", "http://127.0.0.1:9023"),
        ("http://localhost:4443/", "http://localhost:4443"),
    ] {
        let c = parse_env(
            "dbs:\n  - path: /a.db\n    replica:\n      url: gs://b-1/p\n",
            &[("STORAGE_EMULATOR_HOST", host)],
        );
        let r = c.dbs[0].replica.as_ref().unwrap();
        assert_eq!(gs(r).origin(), origin);
        assert_eq!(gs(r).credentials_file, None);
        assert_eq!(
            r.target.to_string(),
            format!("gs://b-1/p (emulator {origin})")
        );
    }
    let r = ReplicaConfig::from_url_with_env("gs://bkt/db", &|k: &str| {
        (k == "STORAGE_EMULATOR_HOST").then(|| "127.0.0.1:1".to_owned())
    })
    .unwrap();
    assert_eq!(gs(&r).path, "db");

    for (text, fragments) in [
        (
            "dbs:\n  - path: /a.db\n    replica:\n      type: gs\n      path: x\n",
            &[
                "dbs[0].replica",
                "bucket required for gs replica",
                "bucket:",
            ][..],
        ),
        (
            "dbs:\n  - path: /a.db\n    replica:\n      url: gs://b-1/p\n      path: q\n",
            &["cannot specify url & path for gs replica"][..],
        ),
        (
            "dbs:\n  - path: /a.db\n    replica:\n      url: gs://b-1/p\n      bucket: d\n",
            &["cannot specify url & bucket for gs replica"][..],
        ),
        (
            "dbs:\n  - path: /a.db\n    replica:\n      type: gs\n      bucket: b-1\n",
            &[
                "no credentials for gs replica",
                "GOOGLE_APPLICATION_CREDENTIALS",
                "STORAGE_EMULATOR_HOST",
            ][..],
        ),
        (
            "dbs:\n  - path: /a.db\n    replica:\n      url: gs://My_Bucket/p\n",
            &[
                "dbs[0].replica.url",
                "\"My_Bucket\" is not a valid Google Cloud Storage bucket name",
                "3 to 63 lowercase letters",
            ][..],
        ),
        (
            "dbs:\n  - path: /a.db\n    replica:\n      type: gs\n      bucket: ab\n",
            &["dbs[0].replica.bucket", "\"ab\" is not a valid"][..],
        ),
    ] {
        assert_msg(&parse_err(text), fragments);
    }
}

fn nats(replica: &ReplicaConfig) -> &tideline_config::NatsReplicaConfig {
    match &replica.target {
        ReplicaTarget::Nats(c) => c,
        other => panic!("not nats: {other:?}"),
    }
}

fn nats_replica(yaml_replica: &str) -> Result<Config, ConfigError> {
    let text = format!("dbs:\n  - path: /a.db\n    replica:\n{yaml_replica}");
    Config::parse(&text, &env_of(&[("HOME", "/home/u")]), true)
}

#[test]
fn nats_replicas_read_litestreams_keys_and_url() {
    use tideline_config::NatsAuth;
    // The URL names the server and the bucket; defaults as Litestream's.
    let c = nats_replica("      url: nats://127.0.0.1:4333/backups\n").unwrap();
    let r = c.dbs[0].replica.as_ref().unwrap();
    let n = nats(r);
    assert_eq!(
        (n.server.as_str(), n.bucket.as_str()),
        ("127.0.0.1:4333", "backups")
    );
    assert_eq!(n.auth, NatsAuth::None);
    assert_eq!((n.tls, n.max_reconnects), (false, None));
    assert_eq!((n.reconnect_wait, n.timeout), (secs(2), secs(10)));
    assert_eq!(r.target.to_string(), "nats://127.0.0.1:4333/backups");
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);

    // Every key; credentials in the URL are dropped with a warning.
    let c = nats_replica(
        "      url: nats://u:p@nats.example:4222/b_1\n      username: alice\n      \
         password: pw\n      tls: true\n      root-cas: [~/ca.pem]\n      client-cert: /c.pem\n      \
         client-key: /k.pem\n      max-reconnects: 5\n      reconnect-wait: 500ms\n      \
         timeout: 3s\n",
    )
    .unwrap();
    let n = nats(c.dbs[0].replica.as_ref().unwrap());
    assert_eq!(
        n.auth,
        NatsAuth::UserPassword {
            username: "alice".into(),
            password: Sensitive::new("pw".into())
        }
    );
    assert!(
        !format!("{n:?}").contains("pw\""),
        "no password in Debug: {n:?}"
    );
    assert_eq!(n.root_ca.as_deref(), Some(Path::new("/home/u/ca.pem")));
    assert_eq!(
        n.client_cert,
        Some((PathBuf::from("/c.pem"), PathBuf::from("/k.pem")))
    );
    assert_eq!((n.tls, n.max_reconnects), (true, Some(5)));
    assert_eq!(
        (n.reconnect_wait, n.timeout),
        (Duration::from_millis(500), secs(3))
    );
    assert!(
        c.warnings
            .iter()
            .any(|w| w.contains("dbs[0].replica.url: the user and password"))
    );
}

#[test]
fn nats_replicas_log_in_in_litestreams_order() {
    use tideline_config::NatsAuth;
    // Litestream's order: jwt + seed, creds, nkey, username + password, token.
    let auth = |extra: &str| {
        let c = nats_replica(&format!("      url: nats://h/b\n{extra}")).unwrap();
        nats(c.dbs[0].replica.as_ref().unwrap()).auth.clone()
    };
    assert!(matches!(
        auth("      jwt: eyJ\n      seed: SUAB\n      token: t\n"),
        NatsAuth::Jwt { .. }
    ));
    assert_eq!(
        auth("      creds: ~/u.creds\n      token: t\n"),
        NatsAuth::Creds(PathBuf::from("/home/u/u.creds"))
    );
    assert!(matches!(auth("      nkey: SUACSSL\n"), NatsAuth::Nkey(_)));
    assert_eq!(
        auth("      token: t0k\n"),
        NatsAuth::Token(Sensitive::new("t0k".into()))
    );
    assert_eq!(auth("      token: t0k\n").keys(), "token");
    // Global defaults apply, as in Litestream; `bucket:` stands in for the URL's path,
    // and the server defaults to NATS's.
    let c = parse(
        "token: g\ndbs:\n  - path: /a.db\n    replica:\n      type: nats\n      bucket: bk\n",
    );
    let n = nats(c.dbs[0].replica.as_ref().unwrap());
    assert_eq!(
        (n.server.as_str(), n.bucket.as_str()),
        ("127.0.0.1:4222", "bk")
    );
    assert_eq!(n.auth, NatsAuth::Token(Sensitive::new("g".into())));

    // On the command line, the URL's user and password log in (Litestream's URL form).
    let r = ReplicaConfig::from_url_with_env("nats://bob:s3@h:4222/b", &|_| None).unwrap();
    assert_eq!(
        nats(&r).auth,
        NatsAuth::UserPassword {
            username: "bob".into(),
            password: Sensitive::new("s3".into())
        }
    );
}

#[test]
fn nats_replica_errors_name_the_key_to_fix() {
    for (replica, fragments) in [
        (
            "      type: nats\n",
            &[
                "bucket required for NATS replica",
                "nats://HOST:PORT/BUCKET",
            ][..],
        ),
        (
            "      url: nats://h/b\n      jwt: eyJ\n",
            &["jwt is set without seed"][..],
        ),
        (
            "      url: nats://h/b\n      seed: SU\n",
            &["seed is set without jwt"][..],
        ),
        (
            "      url: nats://h/b\n      username: u\n",
            &["username is set without password"][..],
        ),
        (
            "      url: nats://h/b\n      nkey: UABC\n",
            &["replica.nkey", "not a user nkey seed"][..],
        ),
        (
            "      url: nats://h/b\n      client-cert: /c.pem\n",
            &["client-cert and client-key must both be specified"][..],
        ),
        (
            "      url: nats://h/b\n      root-cas: [/a.pem, /b.pem]\n",
            &["replica.root-cas", "one root CA file", "concatenate"][..],
        ),
        (
            "      url: nats://h/b\n      max-reconnects: 0\n",
            &["replica.max-reconnects", "not supported", "-1"][..],
        ),
        (
            "      url: nats://h/my.bucket\n",
            &["replica.url", "not a NATS object-store bucket name"][..],
        ),
        (
            "      url: nats://h/b\n      timeout: x\n",
            &["timeout"][..],
        ),
    ] {
        match nats_replica(replica) {
            Ok(c) => panic!("{replica:?} accepted: {c:?}"),
            Err(e) => assert_msg(&e, fragments),
        }
    }
    // No secret in an error.
    let e = nats_replica("      url: nats://h/b\n      jwt: SECRETJWT\n").unwrap_err();
    assert!(!e.to_string().contains("SECRETJWT"), "{e}");
}

#[test]
fn a_directory_entry_lays_out_each_database_as_litestream_does() {
    let c = parse(
        "dbs:\n  - dir: /srv/tenants\n    pattern: \"*.db\"\n    recursive: true\n    watch: true\n    \
         monitor-interval: 250ms\n    replica:\n      url: s3://bucket/backups?endpoint=http://127.0.0.1:9000\n  \
         - dir: /srv/other\n    pattern: \"*.sqlite\"\n    meta-dir: /var/lib/meta\n    replica:\n      \
         path: /mnt/backup\n  - dir: /srv/third\n    pattern: \"t-?.db\"\n    meta-path: /var/meta\n    \
         replica:\n      type: sftp\n      host: 127.0.0.1:2222\n      user: u\n      password: p\n      \
         path: /home/u/bk\n",
    );
    assert!(c.dbs.is_empty());
    let [tenants, other, third] = &c.dirs[..] else {
        panic!("{:?}", c.dirs)
    };
    assert!(tenants.recursive && tenants.watch && !other.recursive && !other.watch);

    // Replica path + the path in the folder; meta directory beside the database.
    let db = tenants.entry(Path::new("/srv/tenants/eu/a.db")).unwrap();
    assert_eq!(s3(db.replica.as_ref().unwrap()).path, "backups/eu/a.db");
    assert_eq!(s3(db.replica.as_ref().unwrap()).bucket, "bucket");
    assert_eq!(
        db.meta_path,
        PathBuf::from("/srv/tenants/eu/.a.db-litestream")
    );
    assert_eq!(db.monitor_interval, Duration::from_millis(250));
    assert!(tenants.matches(Path::new("/srv/tenants/eu/a.db")));
    assert!(!tenants.matches(Path::new("/srv/tenants/eu/a.db-wal")));
    assert!(!tenants.matches(Path::new("/srv/tenants/eu/a.sqlite")));
    assert!(!tenants.matches(Path::new("/srv/elsewhere/a.db")));
    // Found through the config by its path, as `restore -config … DB` needs.
    assert_eq!(c.db(Path::new("/srv/tenants/eu/a.db")), Some(db));

    // meta-dir: <meta-dir>/<rel>-litestream; only direct children without recursive.
    let db = other.entry(Path::new("/srv/other/x.sqlite")).unwrap();
    assert_eq!(
        db.meta_path,
        PathBuf::from("/var/lib/meta/x.sqlite-litestream")
    );
    assert_eq!(
        file_path(db.replica.as_ref().unwrap()),
        Path::new("/mnt/backup/x.sqlite")
    );
    assert!(!other.matches(Path::new("/srv/other/sub/x.sqlite")));

    // meta-path: <meta-path>/<rel's folder>/.<file>-litestream; an SFTP path grows too.
    let db = third.entry(Path::new("/srv/third/t-1.db")).unwrap();
    assert_eq!(db.meta_path, PathBuf::from("/var/meta/.t-1.db-litestream"));
    match &db.replica.as_ref().unwrap().target {
        ReplicaTarget::Sftp(s) => assert_eq!(s.path, "/home/u/bk/t-1.db"),
        other => panic!("{other:?}"),
    }
    assert!(!third.matches(Path::new("/srv/third/t-12.db")));
}

#[test]
fn directory_entries_are_checked() {
    for (text, want) in [
        (
            "dbs:\n  - dir: /d\n    replica:\n      path: /r\n",
            "'pattern' is required",
        ),
        (
            "dbs:\n  - dir: /d\n    path: /d/a.db\n    pattern: \"*\"\n",
            "cannot specify both 'path' and 'dir'",
        ),
        (
            "dbs:\n  - dir: /d\n    pattern: \"*.db\"\n    meta-path: /m\n    meta-dir: /n\n",
            "cannot specify both 'meta-path' and 'meta-dir'",
        ),
        (
            "dbs:\n  - dir: /d\n    pattern: \"[a\"\n",
            "not a valid file-name pattern",
        ),
        (
            "dbs:\n  - path: /d/a.db\n    meta-dir: /m\n",
            "'meta-dir' can only be used with a directory",
        ),
    ] {
        let e = parse_err(text).to_string();
        assert!(e.contains(want), "{text}: {e}");
    }
}
