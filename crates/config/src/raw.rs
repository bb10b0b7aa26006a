//! The YAML as written: every key optional, unknown keys ignored here (they are reported
//! by `keys`). Values are typed strictly so that serde_yaml_ng reports bad ones with
//! their key path, line and column.

use serde::Deserialize;
use serde_yaml_ng::Value;

use super::duration::{AnyDuration, ByteSize, Interval};

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) struct RawConfig {
    pub dbs: Option<Vec<RawDb>>,
    pub levels: Option<Vec<RawLevel>>,
    pub snapshot: Option<RawSnapshot>,
    pub l0_retention: Option<AnyDuration>,
    pub l0_retention_check_interval: Option<Interval>,
    pub retention: Option<RawRetention>,
    pub shutdown_sync_timeout: Option<AnyDuration>,
    pub shutdown_sync_interval: Option<Interval>,
    pub exec: Option<String>,
    pub logging: Option<RawLogging>,
    pub heartbeat_url: Option<String>,
    pub heartbeat_interval: Option<Interval>,
    pub addr: Option<String>,
    pub mcp_addr: Option<String>,
    pub socket: Option<RawSocket>,
    pub validation: Option<RawValidation>,
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct RawValidation {
    pub interval: Option<Interval>,
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct RawSocket {
    pub enabled: Option<bool>,
    pub path: Option<String>,
    pub permissions: Option<Value>,
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct RawLevel {
    pub interval: Option<Interval>,
}

#[derive(Debug, Default, Clone, Copy, Deserialize)]
pub(crate) struct RawSnapshot {
    pub interval: Option<Interval>,
    pub retention: Option<Interval>,
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct RawRetention {
    pub enabled: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct RawLogging {
    pub level: Option<String>,
    #[serde(rename = "type")]
    pub format: Option<String>,
    pub stderr: Option<bool>,
    pub source: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) struct RawDb {
    pub path: Option<String>,
    pub dir: Option<String>,
    pub pattern: Option<String>,
    pub recursive: Option<bool>,
    pub watch: Option<bool>,
    pub meta_path: Option<String>,
    pub meta_dir: Option<String>,
    pub monitor_interval: Option<Interval>,
    pub checkpoint_interval: Option<AnyDuration>,
    pub busy_timeout: Option<AnyDuration>,
    pub min_checkpoint_page_count: Option<u32>,
    pub truncate_page_n: Option<u32>,
    pub max_sync_wal_bytes: Option<ByteSize>,
    pub restore_if_db_not_exists: Option<bool>,
    pub snapshot: Option<RawSnapshot>,
    pub replica: Option<RawReplica>,
    pub replicas: Option<Vec<RawReplica>>,
}

/// A replica, or (at the top level) the replica settings every replica inherits.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) struct RawReplica {
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub path: Option<String>,
    pub url: Option<String>,

    pub sync_interval: Option<Interval>,
    pub max_sync_ltx_files: Option<u64>,
    pub auto_recover: Option<bool>,

    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
    pub region: Option<String>,
    pub bucket: Option<String>,
    pub endpoint: Option<String>,
    pub force_path_style: Option<bool>,
    pub sign_payload: Option<bool>,
    pub require_content_md5: Option<bool>,
    pub skip_verify: Option<bool>,
    pub storage_class: Option<String>,
    pub part_size: Option<ByteSize>,
    pub concurrency: Option<u64>,
    pub sse_customer_algorithm: Option<String>,
    pub sse_customer_key: Option<String>,
    pub sse_customer_key_path: Option<String>,
    pub sse_kms_key_id: Option<String>,

    pub host: Option<String>,
    pub user: Option<String>,
    pub password: Option<String>,
    pub key_path: Option<String>,
    pub concurrent_writes: Option<bool>,
    pub host_key: Option<String>,

    pub webdav_url: Option<String>,
    pub webdav_username: Option<String>,
    pub webdav_password: Option<String>,

    pub account_name: Option<String>,
    pub account_key: Option<String>,
    pub sas_token: Option<String>,

    pub jwt: Option<String>,
    pub seed: Option<String>,
    pub creds: Option<String>,
    pub nkey: Option<String>,
    pub username: Option<String>,
    pub token: Option<String>,
    pub tls: Option<bool>,
    pub root_cas: Option<Vec<String>>,
    pub client_cert: Option<String>,
    pub client_key: Option<String>,
    pub max_reconnects: Option<i64>,
    pub reconnect_wait: Option<AnyDuration>,
    pub timeout: Option<AnyDuration>,

    /// Litestream 0.3's age encryption; rejected when it names any key.
    pub age: Option<Value>,
}

impl RawReplica {
    /// This replica's settings, each falling back to the global default when unset
    /// (an empty string counts as unset, as in Go).
    pub fn with_defaults(&self, global: &RawReplica) -> RawReplica {
        fn s(local: &Option<String>, global: &Option<String>) -> Option<String> {
            non_empty(local).or_else(|| non_empty(global))
        }
        RawReplica {
            kind: non_empty(&self.kind),
            path: non_empty(&self.path),
            url: non_empty(&self.url),
            sync_interval: self.sync_interval.or(global.sync_interval),
            max_sync_ltx_files: self.max_sync_ltx_files.or(global.max_sync_ltx_files),
            auto_recover: self.auto_recover.or(global.auto_recover),
            access_key_id: s(&self.access_key_id, &global.access_key_id),
            secret_access_key: s(&self.secret_access_key, &global.secret_access_key),
            region: s(&self.region, &global.region),
            bucket: s(&self.bucket, &global.bucket),
            endpoint: s(&self.endpoint, &global.endpoint),
            force_path_style: self.force_path_style.or(global.force_path_style),
            sign_payload: self.sign_payload.or(global.sign_payload),
            require_content_md5: self.require_content_md5.or(global.require_content_md5),
            skip_verify: self.skip_verify.or(global.skip_verify),
            storage_class: s(&self.storage_class, &global.storage_class),
            part_size: self.part_size.or(global.part_size),
            concurrency: self.concurrency.or(global.concurrency),
            sse_customer_algorithm: s(&self.sse_customer_algorithm, &global.sse_customer_algorithm),
            sse_customer_key: s(&self.sse_customer_key, &global.sse_customer_key),
            sse_customer_key_path: s(&self.sse_customer_key_path, &global.sse_customer_key_path),
            sse_kms_key_id: s(&self.sse_kms_key_id, &global.sse_kms_key_id),
            host: s(&self.host, &global.host),
            user: s(&self.user, &global.user),
            password: s(&self.password, &global.password),
            key_path: s(&self.key_path, &global.key_path),
            concurrent_writes: self.concurrent_writes.or(global.concurrent_writes),
            host_key: s(&self.host_key, &global.host_key),
            webdav_url: s(&self.webdav_url, &global.webdav_url),
            webdav_username: s(&self.webdav_username, &global.webdav_username),
            webdav_password: s(&self.webdav_password, &global.webdav_password),
            account_name: s(&self.account_name, &global.account_name),
            account_key: s(&self.account_key, &global.account_key),
            sas_token: s(&self.sas_token, &global.sas_token),
            jwt: s(&self.jwt, &global.jwt),
            seed: s(&self.seed, &global.seed),
            creds: s(&self.creds, &global.creds),
            nkey: s(&self.nkey, &global.nkey),
            username: s(&self.username, &global.username),
            token: s(&self.token, &global.token),
            tls: self.tls.or(global.tls),
            root_cas: self
                .root_cas
                .clone()
                .filter(|l| !l.is_empty())
                .or_else(|| global.root_cas.clone()),
            client_cert: s(&self.client_cert, &global.client_cert),
            client_key: s(&self.client_key, &global.client_key),
            max_reconnects: self.max_reconnects.or(global.max_reconnects),
            reconnect_wait: self.reconnect_wait.or(global.reconnect_wait),
            timeout: self.timeout.or(global.timeout),
            age: if age_is_set(&self.age) {
                self.age.clone()
            } else {
                global.age.clone()
            },
        }
    }
}

pub(crate) fn non_empty(s: &Option<String>) -> Option<String> {
    s.as_ref().filter(|s| !s.is_empty()).cloned()
}

/// Whether an `age:` section names any identity or recipient.
pub(crate) fn age_is_set(age: &Option<Value>) -> bool {
    let Some(Value::Mapping(map)) = age else {
        return false;
    };
    ["identities", "recipients"]
        .iter()
        .any(|k| match map.get(*k) {
            Some(Value::Sequence(list)) => !list.is_empty(),
            Some(Value::Null) | None => false,
            Some(_) => true,
        })
}
