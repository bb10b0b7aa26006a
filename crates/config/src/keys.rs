//! Which keys Litestream knows, and warnings for every key Tideline will not act on:
//! unknown keys (with a "did you mean" for typos) and Litestream features Tideline does
//! not support yet. Litestream ignores unknown keys silently, which hides typos.

use serde_yaml_ng::Value;

/// Top-level keys Tideline uses.
const TOP: &[&str] = &[
    "dbs",
    "levels",
    "snapshot",
    "l0-retention",
    "l0-retention-check-interval",
    "retention",
    "shutdown-sync-timeout",
    "shutdown-sync-interval",
    "exec",
    "logging",
    "heartbeat-url",
    "heartbeat-interval",
    "addr",
    "socket",
    "validation",
    "mcp-addr",
];

/// Top-level Litestream keys Tideline does not act on yet.
const TOP_UNSUPPORTED: &[&str] = &["verify-compaction"];

/// Replica settings Tideline uses; valid per replica and at the top level (as defaults
/// for every replica).
pub(crate) const REPLICA_SETTINGS: &[&str] = &[
    "sync-interval",
    "max-sync-ltx-files",
    "auto-recover",
    "access-key-id",
    "secret-access-key",
    "region",
    "bucket",
    "endpoint",
    "force-path-style",
    "sign-payload",
    "require-content-md5",
    "skip-verify",
    "storage-class",
    "part-size",
    "concurrency",
    "sse-customer-algorithm",
    "sse-customer-key",
    "sse-customer-key-path",
    "sse-kms-key-id",
    "host",
    "user",
    "password",
    "key-path",
    "concurrent-writes",
    "host-key",
    "webdav-url",
    "webdav-username",
    "webdav-password",
    "account-name",
    "account-key",
    "sas-token",
    "jwt",
    "seed",
    "creds",
    "nkey",
    "username",
    "token",
    "tls",
    "root-cas",
    "client-cert",
    "client-key",
    "max-reconnects",
    "reconnect-wait",
    "timeout",
    "age",
];

/// Replica settings Litestream has that Tideline parses but does not act on, each with
/// what Tideline does instead; setting one gets a warning, so no config relies on it
/// silently.
const IGNORED_SETTINGS: &[(&str, &str)] = &[
    (
        "max-sync-ltx-files",
        "Tideline uploads every pending LTX file at each sync (there is no per-sync limit)",
    ),
    (
        "auto-recover",
        "not supported by Tideline yet; damaged local state is reported, never reset silently",
    ),
    (
        "sign-payload",
        "the S3 client signs requests as the AWS SDK does by default",
    ),
    (
        "require-content-md5",
        "the S3 client sends the checksums the AWS SDK chooses, not Content-MD5",
    ),
];

/// Warns if `name` is a setting Tideline parses but ignores.
fn ignored_setting(name: &str, path: &str, warnings: &mut Vec<String>) {
    if let Some((_, instead)) = IGNORED_SETTINGS.iter().find(|(k, _)| *k == name) {
        warnings.push(format!("{path}: ignored: {instead}"));
    }
}

/// Replica settings of backends Tideline does not support yet (none now: every
/// Litestream backend key above is parsed).
const OTHER_BACKEND_SETTINGS: &[(&str, &str)] = &[];

/// Keys only a replica itself has (not global defaults).
const REPLICA_ONLY: &[&str] = &["type", "path", "url"];

const DB: &[&str] = &[
    "path",
    "dir",
    "pattern",
    "recursive",
    "watch",
    "meta-path",
    "meta-dir",
    "monitor-interval",
    "checkpoint-interval",
    "busy-timeout",
    "min-checkpoint-page-count",
    "truncate-page-n",
    "max-sync-wal-bytes",
    "restore-if-db-not-exists",
    "snapshot",
    "replica",
    "replicas",
];

const SNAPSHOT: &[&str] = &["interval", "retention"];
const LEVEL: &[&str] = &["interval"];
const RETENTION: &[&str] = &["enabled"];
const LOGGING: &[&str] = &["level", "type", "stderr", "source"];
const SOCKET: &[&str] = &["enabled", "path", "permissions"];
const VALIDATION: &[&str] = &["interval"];

/// Appends a warning for every key of the document that Tideline ignores.
pub(crate) fn check(root: &Value, warnings: &mut Vec<String>) {
    let Value::Mapping(map) = root else { return };
    for (key, value) in map {
        let name = key_name(key);
        let path = name.clone();
        match name.as_str() {
            k if TOP.contains(&k) || REPLICA_SETTINGS.contains(&k) => {
                ignored_setting(k, &path, warnings);
            }
            k if TOP_UNSUPPORTED.contains(&k) => warnings.push(unsupported(&path)),
            _ => {
                if !replica_extra(&name, &path, warnings) {
                    let candidates = [TOP, REPLICA_SETTINGS, TOP_UNSUPPORTED].concat();
                    warnings.push(unknown(&path, &name, &candidates));
                }
                continue;
            }
        }
        match (name.as_str(), value) {
            ("snapshot", v) => section(v, "snapshot", SNAPSHOT, warnings),
            ("retention", v) => section(v, "retention", RETENTION, warnings),
            ("logging", v) => section(v, "logging", LOGGING, warnings),
            ("socket", v) => section(v, "socket", SOCKET, warnings),
            ("validation", v) => section(v, "validation", VALIDATION, warnings),
            ("levels", Value::Sequence(levels)) => {
                for (i, level) in levels.iter().enumerate() {
                    section(level, &format!("levels[{i}]"), LEVEL, warnings);
                }
            }
            ("dbs", Value::Sequence(dbs)) => {
                for (i, db) in dbs.iter().enumerate() {
                    check_db(db, &format!("dbs[{i}]"), warnings);
                }
            }
            _ => {}
        }
    }
}

fn check_db(db: &Value, path: &str, warnings: &mut Vec<String>) {
    let Value::Mapping(map) = db else { return };
    for (key, value) in map {
        let name = key_name(key);
        let key_path = format!("{path}.{name}");
        if !DB.contains(&name.as_str()) {
            warnings.push(unknown(&key_path, &name, DB));
            continue;
        }
        match (name.as_str(), value) {
            ("snapshot", v) => section(v, &key_path, SNAPSHOT, warnings),
            ("replica", v) => check_replica(v, &key_path, warnings),
            ("replicas", Value::Sequence(list)) => {
                for (i, replica) in list.iter().enumerate() {
                    check_replica(replica, &format!("{key_path}[{i}]"), warnings);
                }
            }
            _ => {}
        }
    }
}

fn check_replica(replica: &Value, path: &str, warnings: &mut Vec<String>) {
    let Value::Mapping(map) = replica else { return };
    for (key, _) in map {
        let name = key_name(key);
        let key_path = format!("{path}.{name}");
        if REPLICA_ONLY.contains(&name.as_str()) || REPLICA_SETTINGS.contains(&name.as_str()) {
            ignored_setting(&name, &key_path, warnings);
            continue;
        }
        if !replica_extra(&name, &key_path, warnings) {
            let candidates = [REPLICA_ONLY, REPLICA_SETTINGS].concat();
            warnings.push(unknown(&key_path, &name, &candidates));
        }
    }
}

/// Warns about Litestream replica keys Tideline ignores; false if `name` is not one.
fn replica_extra(name: &str, path: &str, warnings: &mut Vec<String>) -> bool {
    if let Some((_, backend)) = OTHER_BACKEND_SETTINGS.iter().find(|(k, _)| *k == name) {
        warnings.push(format!(
            "{path}: used only by {backend} replicas, which Tideline does not support yet; \
             ignored"
        ));
        return true;
    }
    match name {
        "validation-interval" => {
            warnings.push(format!("{path}: has no effect (Litestream ignores it too)"));
            true
        }
        "name" => {
            warnings.push(format!("{path}: deprecated replica name, ignored"));
            true
        }
        _ => false,
    }
}

fn section(value: &Value, path: &str, known: &[&str], warnings: &mut Vec<String>) {
    let Value::Mapping(map) = value else { return };
    for (key, _) in map {
        let name = key_name(key);
        if !known.contains(&name.as_str()) {
            warnings.push(unknown(&format!("{path}.{name}"), &name, known));
        }
    }
}

fn key_name(key: &Value) -> String {
    match key {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Null => "~".to_owned(),
        _ => "?".to_owned(),
    }
}

fn unsupported(path: &str) -> String {
    format!("{path}: not supported by Tideline yet, ignored")
}

fn unknown(path: &str, name: &str, candidates: &[&str]) -> String {
    match suggest(name, candidates) {
        Some(s) => format!("{path}: unknown key, ignored (did you mean {s}?)"),
        None => format!("{path}: unknown key, ignored"),
    }
}

/// The closest candidate to `name`, if close enough to be a typo: same key after
/// lower-casing and `_` → `-`, or an edit distance of at most 2 (1 for short keys).
pub(crate) fn suggest<'a>(name: &str, candidates: &[&'a str]) -> Option<&'a str> {
    let normal = name.to_ascii_lowercase().replace('_', "-");
    let limit = if normal.chars().count() <= 4 { 1 } else { 2 };
    candidates
        .iter()
        .map(|&c| (edit_distance(&normal, c), c))
        .filter(|&(d, _)| d <= limit)
        .min_by_key(|&(d, _)| d)
        .map(|(_, c)| c)
}

/// Optimal-string-alignment distance: insertions, deletions, substitutions and
/// transpositions of adjacent characters each cost 1 (counted in `char`s).
fn edit_distance(a: &str, b: &str) -> usize {
    strsim::osa_distance(a, b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggestions() {
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("bukcet", "bucket"), 1);
        assert_eq!(
            suggest("sync-intervall", REPLICA_SETTINGS),
            Some("sync-interval")
        );
        assert_eq!(
            suggest("sync_interval", REPLICA_SETTINGS),
            Some("sync-interval")
        );
        assert_eq!(suggest("Bucket", REPLICA_SETTINGS), Some("bucket"));
        assert_eq!(suggest("bukcet", REPLICA_SETTINGS), Some("bucket"));
        assert_eq!(suggest("pth", DB), Some("path"));
        assert_eq!(suggest("completely-different", DB), None);
        assert_eq!(suggest("xy", DB), None);
    }

    fn warnings_for(yaml: &str) -> Vec<String> {
        let value: Value = serde_yaml_ng::from_str(yaml).unwrap();
        let mut warnings = Vec::new();
        check(&value, &mut warnings);
        warnings
    }

    #[test]
    fn walks_every_section() {
        let w = warnings_for(
            "socket: {pth: /tmp/s}\nverify-compaction: true\nsnapshot: {intervall: 1h}\nlevels: [{interval: 30s, x: 1}]\n\
             logging: {levle: debug}\nretention: {enable: false}\nsync-interval: 1s\n\
             dbs:\n  - path: /a\n    monitor-intervall: 1s\n    snapshot: {retension: 1h}\n\
             \x20   replica: {url: 's3://b', jwtt: h, name: n, validation-interval: 1s, zzzz: 1}\n\
             \x20   replicas: [{typ: file}]\n",
        );
        let want = [
            "socket.pth: unknown key, ignored (did you mean path?)",
            "verify-compaction: not supported by Tideline yet, ignored",
            "snapshot.intervall: unknown key, ignored (did you mean interval?)",
            "levels[0].x: unknown key, ignored",
            "logging.levle: unknown key, ignored (did you mean level?)",
            "retention.enable: unknown key, ignored (did you mean enabled?)",
            "dbs[0].monitor-intervall: unknown key, ignored (did you mean monitor-interval?)",
            "dbs[0].snapshot.retension: unknown key, ignored (did you mean retention?)",
            "dbs[0].replica.jwtt: unknown key, ignored (did you mean jwt?)",
            "dbs[0].replica.name: deprecated replica name, ignored",
            "dbs[0].replica.validation-interval: has no effect (Litestream ignores it too)",
            "dbs[0].replica.zzzz: unknown key, ignored",
            "dbs[0].replicas[0].typ: unknown key, ignored (did you mean type?)",
        ];
        assert_eq!(w, want);
    }
}
