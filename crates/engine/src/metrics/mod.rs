//! Prometheus metrics of a running replicator (`addr:`): Litestream 0.5's families with
//! their exact names, types, help texts and labels, so that the Grafana dashboards and
//! alerts written for Litestream work unchanged, and Tideline's own under `tideline_`
//! (lag, replica position, pending files, compaction, heartbeat).
//!
//! The registry is process-wide, as Go's default registry is for Litestream: nothing is
//! recorded until [`enable`] (a replicator without `addr:` pays one atomic load per
//! event), and the storage layer records its requests without a handle threaded through
//! every client. Replication reports through [`observe`] (every event) and the few
//! measurements events do not carry ([`synced`], [`checkpointed`], [`l0_census`],
//! [`replica_request`], [`replica_call`]); [`http`] serves [`render`]'s text.
//!
//! Reason to change: which metrics exist and what moves them.

pub mod http;

use std::path::Path;
use std::sync::OnceLock;
use std::time::Duration;

use prometheus::{
    CounterVec, Encoder, GaugeVec, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, Opts,
    Registry, TextEncoder,
};

use crate::error::ErrorCode;
use crate::events::{CheckpointMode, Event, EventSink, Stage};

pub use http::{MetricsServer, serve};

/// Litestream's buckets for `litestream_replica_operation_duration_seconds`.
const OPERATION_BUCKETS: &[f64] = &[0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0];

/// Buckets of `tideline_replica_lag_seconds`: from one sync interval to a stalled
/// destination.
const LAG_BUCKETS: &[f64] = &[
    0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0,
];

/// Every family, registered once.
struct Metrics {
    registry: Registry,
    // Litestream's database families (its `db.go`), labelled `db` with the path.
    db_size: GaugeVec,
    wal_size: GaugeVec,
    total_wal_bytes: CounterVec,
    txid: GaugeVec,
    sync_count: CounterVec,
    sync_error_count: CounterVec,
    sync_seconds: CounterVec,
    disk_full: GaugeVec,
    checkpoint_count: CounterVec,
    checkpoint_error_count: CounterVec,
    checkpoint_seconds: CounterVec,
    l0_retention: GaugeVec,
    // Litestream's replica families (its `internal.go`), by `replica_type`.
    operation_total: CounterVec,
    operation_bytes: CounterVec,
    operation_duration: HistogramVec,
    operation_errors: CounterVec,
    // Tideline's own.
    databases: IntGauge,
    replica_txid: GaugeVec,
    lag_seconds: GaugeVec,
    lag: HistogramVec,
    shipped_files: IntCounterVec,
    shipped_bytes: IntCounterVec,
    last_shipped: GaugeVec,
    errors: IntCounterVec,
    error_codes: IntCounterVec,
    failing: GaugeVec,
    compactions: IntCounterVec,
    snapshots: IntCounterVec,
    retention_deleted: IntCounterVec,
    new_generations: IntCounterVec,
    heartbeats: IntCounterVec,
    validation_problems: GaugeVec,
    last_validation: GaugeVec,
}

static METRICS: OnceLock<Metrics> = OnceLock::new();

fn opts(name: &str, help: &str) -> Opts {
    Opts::new(name, help)
}

impl Metrics {
    fn new() -> prometheus::Result<Metrics> {
        let registry = Registry::new();
        macro_rules! reg {
            ($m:expr) => {{
                let m = $m;
                registry.register(Box::new(m.clone()))?;
                m
            }};
        }
        let gauge =
            |name: &str, help: &str, labels: &[&str]| GaugeVec::new(opts(name, help), labels);
        let counter =
            |name: &str, help: &str, labels: &[&str]| CounterVec::new(opts(name, help), labels);
        let int_counter =
            |name: &str, help: &str, labels: &[&str]| IntCounterVec::new(opts(name, help), labels);
        let db = &["db"];
        let db_mode = &["db", "mode"];
        let op = &["replica_type", "operation"];
        let m = Metrics {
            db_size: reg!(gauge(
                "litestream_db_size",
                "The current size of the real DB",
                db
            )?),
            wal_size: reg!(gauge(
                "litestream_wal_size",
                "The current size of the real WAL",
                db
            )?),
            total_wal_bytes: reg!(counter(
                "litestream_total_wal_bytes",
                "Total number of bytes written to shadow WAL",
                db
            )?),
            txid: reg!(gauge("litestream_txid", "The current transaction ID", db)?),
            sync_count: reg!(counter(
                "litestream_sync_count",
                "Number of sync operations performed",
                db
            )?),
            sync_error_count: reg!(counter(
                "litestream_sync_error_count",
                "Number of sync errors that have occurred",
                db
            )?),
            sync_seconds: reg!(counter(
                "litestream_sync_seconds",
                "Time spent syncing shadow WAL, in seconds",
                db
            )?),
            disk_full: reg!(gauge(
                "litestream_disk_full",
                "Whether replication is paused because the local disk is full",
                db
            )?),
            checkpoint_count: reg!(counter(
                "litestream_checkpoint_count",
                "Number of checkpoint operations performed",
                db_mode
            )?),
            checkpoint_error_count: reg!(counter(
                "litestream_checkpoint_error_count",
                "Number of checkpoint errors that have occurred",
                db_mode
            )?),
            checkpoint_seconds: reg!(counter(
                "litestream_checkpoint_seconds",
                "Time spent checkpointing WAL, in seconds",
                db_mode
            )?),
            l0_retention: reg!(gauge(
                "litestream_l0_retention_files_total",
                "Number of L0 files by status during retention enforcement",
                &["db", "status"]
            )?),
            operation_total: reg!(counter(
                "litestream_replica_operation_total",
                "The number of replica operations performed",
                op
            )?),
            operation_bytes: reg!(counter(
                "litestream_replica_operation_bytes",
                "The number of bytes used by replica operations",
                op
            )?),
            operation_duration: reg!(HistogramVec::new(
                HistogramOpts::new(
                    "litestream_replica_operation_duration_seconds",
                    "Duration of replica operations by type and operation",
                )
                .buckets(OPERATION_BUCKETS.to_vec()),
                op
            )?),
            operation_errors: reg!(counter(
                "litestream_replica_operation_errors_total",
                "Number of replica operation errors by type, operation, and error code",
                &["replica_type", "operation", "code"]
            )?),
            databases: reg!(IntGauge::with_opts(opts(
                "tideline_databases",
                "Databases being replicated now (a watched directory's come and go)"
            ))?),
            replica_txid: reg!(gauge(
                "tideline_replica_txid",
                "The newest TXID the replica holds (what a restore gets now)",
                db
            )?),
            lag_seconds: reg!(gauge(
                "tideline_replica_last_lag_seconds",
                "Time from the capture of the last shipped changes to their arrival at the replica",
                db
            )?),
            lag: reg!(HistogramVec::new(
                HistogramOpts::new(
                    "tideline_replica_lag_seconds",
                    "Time from capture to arrival at the replica, per upload",
                )
                .buckets(LAG_BUCKETS.to_vec()),
                db
            )?),
            shipped_files: reg!(int_counter(
                "tideline_shipped_files_total",
                "L0 files uploaded to the replica",
                db
            )?),
            shipped_bytes: reg!(int_counter(
                "tideline_shipped_bytes_total",
                "Bytes of L0 files uploaded to the replica",
                db
            )?),
            last_shipped: reg!(gauge(
                "tideline_last_shipped_timestamp_seconds",
                "When changes last reached the replica (Unix time)",
                db
            )?),
            errors: reg!(int_counter(
                "tideline_errors_total",
                "Failures by database and stage (open, capture, ship, maintain); each is retried",
                &["db", "stage"]
            )?),
            error_codes: reg!(int_counter(
                "tideline_error_codes_total",
                "Failures of every database by error code (disk_full, wrong_credentials, ...)",
                &["code"]
            )?),
            failing: reg!(gauge(
                "tideline_failing",
                "1 while a stage of the database fails (until it works again), else 0",
                &["db", "stage"]
            )?),
            compactions: reg!(int_counter(
                "tideline_compactions_total",
                "Files written by compaction, by level (9: snapshots)",
                &["db", "level"]
            )?),
            snapshots: reg!(int_counter(
                "tideline_snapshots_total",
                "Snapshots (level 9) written",
                db
            )?),
            retention_deleted: reg!(int_counter(
                "tideline_retention_deleted_files_total",
                "Files deleted from the replica by retention, by level",
                &["db", "level"]
            )?),
            new_generations: reg!(int_counter(
                "tideline_new_generations_total",
                "Times the replica was found changed by someone else and a new generation started",
                db
            )?),
            heartbeats: reg!(int_counter(
                "tideline_heartbeats_total",
                "Heartbeat requests by result (ok, error)",
                &["result"]
            )?),
            validation_problems: reg!(gauge(
                "tideline_validation_problems",
                "Gaps and overlaps found in the replica's levels by the last validation (0: contiguous)",
                db
            )?),
            last_validation: reg!(gauge(
                "tideline_last_validation_timestamp_seconds",
                "When the replica's levels were last validated (Unix time)",
                db
            )?),
            registry: registry.clone(),
        };
        #[cfg(target_os = "linux")]
        {
            registry.register(Box::new(
                prometheus::process_collector::ProcessCollector::for_self(),
            ))?;
            // The one `process_*` family of Go's collector that this one lacks.
            let max = prometheus::Gauge::with_opts(opts(
                "process_virtual_memory_max_bytes",
                "Maximum amount of virtual memory available in bytes.",
            ))?;
            max.set(address_space_limit());
            registry.register(Box::new(max))?;
        }
        Ok(m)
    }
}

/// The address-space limit (`ulimit -v`) in bytes, -1 when unlimited, as Go's process
/// collector reports it; read from `/proc/self/limits`.
#[cfg(target_os = "linux")]
fn address_space_limit() -> f64 {
    let limits = std::fs::read_to_string("/proc/self/limits").unwrap_or_default();
    limits
        .lines()
        .find_map(|l| l.strip_prefix("Max address space"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|soft| soft.parse::<f64>().ok())
        .unwrap_or(-1.0)
}

/// Starts recording (idempotent). Until then every recording function does nothing.
pub fn enable() {
    METRICS.get_or_init(|| Metrics::new().expect("the metric families are valid and distinct"));
}

/// True once [`enable`] ran.
pub fn enabled() -> bool {
    METRICS.get().is_some()
}

fn get() -> Option<&'static Metrics> {
    METRICS.get()
}

/// Every family in Prometheus's text format (version 0.0.4), as `/metrics` serves it;
/// empty before [`enable`].
pub fn render() -> String {
    let Some(m) = get() else {
        return String::new();
    };
    let mut out = Vec::with_capacity(16 << 10);
    // Writing to a Vec cannot fail, and every family is well-formed.
    let _ = TextEncoder::new().encode(&m.registry.gather(), &mut out);
    String::from_utf8(out).unwrap_or_default()
}

/// The content type of [`render`]'s text.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

fn db_label(db: &Path) -> String {
    db.display().to_string()
}

/// The stable code's name (`"disk_full"`), as the error's `{code, message}` has it.
fn code_name(code: ErrorCode) -> String {
    serde_json::to_value(code)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_else(|| "unknown".to_owned())
}

fn stage_name(stage: Stage) -> &'static str {
    match stage {
        Stage::Open => "open",
        Stage::Capture => "capture",
        Stage::Ship => "ship",
        Stage::Maintain => "maintain",
    }
}

const STAGES: [Stage; 4] = [Stage::Open, Stage::Capture, Stage::Ship, Stage::Maintain];

/// `events`, with every event recorded by [`observe`] first when metrics are enabled.
pub(crate) fn observing(events: EventSink) -> EventSink {
    if !enabled() {
        return events;
    }
    std::sync::Arc::new(move |event: &Event| {
        observe(event);
        events(event);
    })
}

/// Records what `event` says. Called for every event of a replicator.
pub fn observe(event: &Event) {
    let Some(m) = get() else { return };
    match event {
        Event::Started { db, txid, .. } => {
            let db = db_label(db);
            let l = [db.as_str()];
            // The families Litestream creates when it opens a database, so that a
            // dashboard sees every database from its start, idle ones too.
            for vec in [
                &m.total_wal_bytes,
                &m.sync_count,
                &m.sync_error_count,
                &m.sync_seconds,
            ] {
                vec.with_label_values(&l);
            }
            m.disk_full.with_label_values(&l).set(0.0);
            for mode in [CheckpointMode::Passive, CheckpointMode::Truncate] {
                let l = [db.as_str(), mode.pragma()];
                m.checkpoint_count.with_label_values(&l);
                m.checkpoint_error_count.with_label_values(&l);
                m.checkpoint_seconds.with_label_values(&l);
            }
            for stage in STAGES {
                m.failing
                    .with_label_values(&[db.as_str(), stage_name(stage)])
                    .set(0.0);
            }
            // The local position; the replica's is known once something is shipped.
            if let Some(txid) = txid {
                m.txid.with_label_values(&l).set(txid.0 as f64);
            }
            m.databases.inc();
        }
        Event::Captured { db, txid, .. } => {
            m.txid
                .with_label_values(&[db_label(db).as_str()])
                .set(txid.0 as f64);
        }
        Event::Shipped {
            db,
            files,
            bytes,
            txid,
            lag,
        } => {
            let db = db_label(db);
            let l = [db.as_str()];
            m.replica_txid.with_label_values(&l).set(txid.0 as f64);
            m.lag_seconds.with_label_values(&l).set(lag.as_secs_f64());
            m.lag.with_label_values(&l).observe(lag.as_secs_f64());
            m.shipped_files.with_label_values(&l).inc_by(*files as u64);
            m.shipped_bytes.with_label_values(&l).inc_by(*bytes);
            m.last_shipped.with_label_values(&l).set(unix_now());
        }
        Event::Error {
            db, stage, code, ..
        } => {
            let db = db_label(db);
            let code_name = code_name(*code);
            m.errors
                .with_label_values(&[db.as_str(), stage_name(*stage)])
                .inc();
            m.error_codes.with_label_values(&[code_name.as_str()]).inc();
            m.failing
                .with_label_values(&[db.as_str(), stage_name(*stage)])
                .set(1.0);
            if *stage == Stage::Capture {
                m.sync_error_count.with_label_values(&[db.as_str()]).inc();
                let full = if *code == ErrorCode::DiskFull {
                    1.0
                } else {
                    0.0
                };
                m.disk_full.with_label_values(&[db.as_str()]).set(full);
            }
        }
        Event::Recovered { db, stage } => {
            let db = db_label(db);
            m.failing
                .with_label_values(&[db.as_str(), stage_name(*stage)])
                .set(0.0);
            if *stage == Stage::Capture {
                m.disk_full.with_label_values(&[db.as_str()]).set(0.0);
            }
        }
        Event::NewGeneration { db, .. } => {
            m.new_generations
                .with_label_values(&[db_label(db).as_str()])
                .inc();
        }
        Event::Compacted { db, level, .. } => {
            m.compactions
                .with_label_values(&[db_label(db).as_str(), &level.to_string()])
                .inc();
        }
        Event::Snapshotted { db, .. } => {
            let db = db_label(db);
            m.snapshots.with_label_values(&[db.as_str()]).inc();
            m.compactions.with_label_values(&[db.as_str(), "9"]).inc();
        }
        Event::Deleted {
            db, level, files, ..
        } => {
            m.retention_deleted
                .with_label_values(&[db_label(db).as_str(), &level.to_string()])
                .inc_by(*files as u64);
        }
        Event::Heartbeat { error, .. } => {
            let result = if error.is_none() { "ok" } else { "error" };
            m.heartbeats.with_label_values(&[result]).inc();
        }
        Event::Stopped { db, .. } => {
            // A database that stopped (removed from a watched directory, or the end of
            // replication) is not reported any more: a fleet's series stay bounded.
            forget(m, &db_label(db));
            m.databases.dec();
        }
        Event::Validated { db, problems } => {
            let db = db_label(db);
            let l = [db.as_str()];
            m.validation_problems
                .with_label_values(&l)
                .set(problems.len() as f64);
            m.last_validation.with_label_values(&l).set(unix_now());
        }
        Event::Checkpointed { .. } | Event::Discovered { .. } | Event::Vanished { .. } => {}
    }
}

fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64()
}

/// Drops every series of database `db`.
fn forget(m: &Metrics, db: &str) {
    let l = [db];
    for vec in [
        &m.db_size,
        &m.wal_size,
        &m.txid,
        &m.disk_full,
        &m.replica_txid,
        &m.lag_seconds,
        &m.last_shipped,
        &m.validation_problems,
        &m.last_validation,
    ] {
        let _ = vec.remove_label_values(&l);
    }
    for vec in [
        &m.total_wal_bytes,
        &m.sync_count,
        &m.sync_error_count,
        &m.sync_seconds,
    ] {
        let _ = vec.remove_label_values(&l);
    }
    for vec in [
        &m.shipped_files,
        &m.shipped_bytes,
        &m.snapshots,
        &m.new_generations,
    ] {
        let _ = vec.remove_label_values(&l);
    }
    let _ = m.lag.remove_label_values(&l);
    // The families with a second label, by its every value.
    for mode in [CheckpointMode::Passive, CheckpointMode::Truncate] {
        let l = [db, mode.pragma()];
        for vec in [
            &m.checkpoint_count,
            &m.checkpoint_error_count,
            &m.checkpoint_seconds,
        ] {
            let _ = vec.remove_label_values(&l);
        }
    }
    for status in L0_STATUSES {
        let _ = m.l0_retention.remove_label_values(&[db, status]);
    }
    for stage in STAGES.map(stage_name) {
        let _ = m.failing.remove_label_values(&[db, stage]);
        let _ = m.errors.remove_label_values(&[db, stage]);
    }
    for level in 0..=tideline_ltx::SNAPSHOT_LEVEL {
        let level = level.to_string();
        let _ = m.compactions.remove_label_values(&[db, &level]);
        let _ = m.retention_deleted.remove_label_values(&[db, &level]);
    }
}

/// The `status` values of `litestream_l0_retention_files_total`.
const L0_STATUSES: [&str; 3] = ["eligible", "not_compacted", "too_recent"];

/// One look at database `db` (with write-ahead log `wal`) for new commits (Litestream's
/// sync): `took` long, `wal_bytes` of WAL captured (a failure arrives as an event); the
/// files' sizes are read now.
pub(crate) fn synced(db: &Path, wal: &Path, took: Duration, wal_bytes: u64) {
    let Some(m) = get() else { return };
    let label = db_label(db);
    let l = [label.as_str()];
    m.sync_count.with_label_values(&l).inc();
    m.sync_seconds
        .with_label_values(&l)
        .inc_by(took.as_secs_f64());
    if wal_bytes > 0 {
        m.total_wal_bytes
            .with_label_values(&l)
            .inc_by(wal_bytes as f64);
    }
    // Sizes as Litestream reports them: the files' lengths now.
    let len = |p: &Path| std::fs::metadata(p).map(|md| md.len() as f64).ok();
    if let Some(size) = len(db) {
        m.db_size.with_label_values(&l).set(size);
    }
    m.wal_size
        .with_label_values(&l)
        .set(len(wal).unwrap_or(0.0));
}

/// A checkpoint in `mode` ran for `took`, and failed unless `ok`.
pub(crate) fn checkpointed(db: &Path, mode: CheckpointMode, took: Duration, ok: bool) {
    let Some(m) = get() else { return };
    let label = db_label(db);
    let l = [label.as_str(), mode.pragma()];
    m.checkpoint_count.with_label_values(&l).inc();
    if !ok {
        m.checkpoint_error_count.with_label_values(&l).inc();
    }
    m.checkpoint_seconds
        .with_label_values(&l)
        .inc_by(took.as_secs_f64());
}

/// L0 retention looked at database `db`'s L0 files: `[eligible, not_compacted,
/// too_recent]`, how many may go, wait for compaction into L1, are too recent.
pub(crate) fn l0_census(db: &Path, counts: [usize; 3]) {
    let Some(m) = get() else { return };
    let label = db_label(db);
    for (status, n) in L0_STATUSES.into_iter().zip(counts) {
        m.l0_retention
            .with_label_values(&[label.as_str(), status])
            .set(n as f64);
    }
}

/// One request of a replica client (`replica_type` as Litestream names it: `s3`, `gs`,
/// `abs`, `sftp`, `webdav`, `nats`, `oss`), of kind `operation` (`GET`, `PUT`, `LIST`,
/// `DELETE`, `HEAD`, `MULTIPART`), with `bytes` of body sent or received.
pub(crate) fn replica_request(replica_type: &'static str, operation: &'static str, bytes: u64) {
    let Some(m) = get() else { return };
    let l = [replica_type, operation];
    m.operation_total.with_label_values(&l).inc();
    if bytes > 0 {
        m.operation_bytes.with_label_values(&l).inc_by(bytes as f64);
    }
}

/// Bytes received by a request already counted by [`replica_request`].
pub(crate) fn replica_download(replica_type: &'static str, operation: &'static str, bytes: u64) {
    let Some(m) = get() else { return };
    if bytes > 0 {
        m.operation_bytes
            .with_label_values(&[replica_type, operation])
            .inc_by(bytes as f64);
    }
}

/// One operation the engine asked of a replica (retries inside it included) took
/// `took`, and failed with `error` if set.
pub(crate) fn replica_call(
    replica_type: &'static str,
    operation: &'static str,
    took: Duration,
    error: Option<ErrorCode>,
) {
    let Some(m) = get() else { return };
    m.operation_duration
        .with_label_values(&[replica_type, operation])
        .observe(took.as_secs_f64());
    if let Some(code) = error {
        m.operation_errors
            .with_label_values(&[replica_type, operation, code_name(code).as_str()])
            .inc();
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use tideline_ltx::Txid;

    use super::*;

    fn started(db: &str) -> Event {
        Event::Started {
            db: PathBuf::from(db),
            replica: "file:///r".into(),
            txid: Some(Txid(7)),
        }
    }

    #[test]
    fn a_database_is_reported_from_its_start_until_it_stops() {
        enable();
        let db = "/metrics-test/tenant-1.db";
        observe(&started(db));
        let text = render();
        let line = format!("litestream_txid{{db=\"{db}\"}} 7");
        assert!(text.contains(&line), "{text}");
        // Litestream's per-database families exist from the start, idle or not.
        for family in [
            "litestream_sync_count",
            "litestream_checkpoint_count",
            "litestream_disk_full",
        ] {
            assert!(
                text.contains(&format!("{family}{{db=\"{db}\"")),
                "{family}: {text}"
            );
        }
        observe(&Event::Error {
            db: PathBuf::from(db),
            stage: Stage::Capture,
            code: ErrorCode::DiskFull,
            message: "full".into(),
            retry_in: Duration::from_secs(1),
        });
        let text = render();
        assert!(
            text.contains(&format!("litestream_disk_full{{db=\"{db}\"}} 1")),
            "{text}"
        );
        assert!(
            text.contains(&format!("litestream_sync_error_count{{db=\"{db}\"}} 1")),
            "{text}"
        );
        assert!(
            text.contains("tideline_error_codes_total{code=\"disk_full\"}"),
            "{text}"
        );
        observe(&Event::Recovered {
            db: PathBuf::from(db),
            stage: Stage::Capture,
        });
        assert!(render().contains(&format!("litestream_disk_full{{db=\"{db}\"}} 0")));
        // Stopped (a watched directory's database removed): every series goes, so a
        // fleet whose databases come and go keeps a bounded registry.
        observe(&Event::Stopped {
            db: PathBuf::from(db),
            txid: Some(Txid(7)),
            pending: 0,
        });
        let text = render();
        assert!(!text.contains(db), "{text}");
    }
}
