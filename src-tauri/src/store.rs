//! What the app remembers between runs: its settings and the list of databases, as
//! JSON in the OS config directory (`TIDELINE_CONFIG_DIR` overrides it, so tests start
//! empty). Secrets are never written here.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use tideline_engine::config::S3ReplicaConfig;

use crate::error::{AppError, AppResult, ErrorCode};

/// The environment variable that overrides the config directory.
pub const CONFIG_DIR_ENV: &str = "TIDELINE_CONFIG_DIR";
const FILE: &str = "tideline-app.json";

/// App settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Settings {
    /// Least time between uploads, milliseconds (Litestream's `sync-interval`).
    pub sync_interval_ms: u64,
    /// How often the WAL is checked, milliseconds (`monitor-interval`).
    pub monitor_interval_ms: u64,
    /// Notify when a database stops being backed up.
    pub notifications: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            sync_interval_ms: 1000,
            monitor_interval_ms: 1000,
            notifications: true,
        }
    }
}

/// Where a database is backed up, as the window enters it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
// One per database and rarely moved: boxing the S3 variant would buy nothing.
#[allow(clippy::large_enum_variant)]
pub enum Destination {
    /// A folder.
    Folder {
        /// The folder.
        path: String,
    },
    /// S3-compatible storage. Keys are never stored here.
    S3 {
        /// `https://…` for S3-compatible servers; empty for AWS.
        #[serde(default)]
        endpoint: String,
        /// The bucket.
        bucket: String,
        /// Key prefix in the bucket.
        #[serde(default)]
        path: String,
        /// Region; empty to let the client decide.
        #[serde(default)]
        region: String,
        /// Settings the form does not show, kept from a Litestream config import.
        #[serde(default, skip_serializing_if = "S3Options::is_empty")]
        options: S3Options,
    },
    /// A folder on a WebDAV server (Nextcloud, ownCloud, a NAS…). The password is
    /// never stored here.
    #[serde(rename = "webdav")]
    WebDav {
        /// The server's base URL, `https://cloud.example.com/remote.php/dav/files/NAME`.
        url: String,
        /// The folder below the URL; empty for the URL itself.
        #[serde(default)]
        path: String,
        /// The user name; empty for none.
        #[serde(default)]
        username: String,
    },
    /// A folder on an SFTP server. The password is never stored here.
    Sftp {
        /// `host` or `host:port`.
        host: String,
        /// The user to log in as.
        user: String,
        /// The folder: absolute, or relative to the login folder; empty for that.
        #[serde(default)]
        path: String,
        /// A private key file (full path); empty for none.
        #[serde(default)]
        key_path: String,
        /// The server's key as an `authorized_keys` line; empty to use
        /// `~/.ssh/known_hosts`.
        #[serde(default)]
        host_key: String,
        /// `concurrent-writes`, kept from a Litestream config import; the form never
        /// sets it (`None` is the engine's default).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        concurrent_writes: Option<bool>,
    },
    /// An Azure Blob Storage container. The account key or SAS token is never stored
    /// here.
    Abs {
        /// The storage account; may be empty with an endpoint that names it.
        #[serde(default)]
        account_name: String,
        /// The container.
        container: String,
        /// Blob name prefix in the container.
        #[serde(default)]
        path: String,
        /// The blob service URL (Azurite, a sovereign cloud); empty for
        /// `https://<account>.blob.core.windows.net`.
        #[serde(default)]
        endpoint: String,
    },
    /// A Google Cloud Storage bucket.
    Gs {
        /// The bucket.
        bucket: String,
        /// Object name prefix in the bucket.
        #[serde(default)]
        path: String,
        /// The service-account JSON key file (full path); empty to use
        /// `GOOGLE_APPLICATION_CREDENTIALS`. The file itself stays where it is.
        #[serde(default)]
        credentials_file: String,
    },
    /// A NATS JetStream object store. Passwords, tokens and seeds are never stored
    /// here.
    Nats {
        /// `host` or `host:port`; empty for `127.0.0.1:4222`.
        #[serde(default)]
        server: String,
        /// The object-store bucket (it must exist).
        bucket: String,
        /// The user (with a password in the keychain); empty for none.
        #[serde(default)]
        username: String,
        /// A `.creds` file (full path); empty for none.
        #[serde(default)]
        creds: String,
        /// Settings the form does not show, kept from a Litestream config import.
        #[serde(default, skip_serializing_if = "NatsOptions::is_empty")]
        options: NatsOptions,
    },
    /// An Alibaba Cloud OSS bucket. Keys are never stored here.
    Oss {
        /// The bucket.
        bucket: String,
        /// Key prefix in the bucket.
        #[serde(default)]
        path: String,
        /// Region; empty for `cn-hangzhou`.
        #[serde(default)]
        region: String,
        /// Endpoint; empty for `https://oss-<region>.aliyuncs.com`.
        #[serde(default)]
        endpoint: String,
    },
}

/// NATS settings beyond the window's form (TLS, reconnection), as a Litestream config
/// import brings them. Empty or `None` leaves a setting to the engine's default.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct NatsOptions {
    /// `tls`.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub tls: bool,
    /// `root-cas` (one PEM file).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub root_ca: String,
    /// `client-cert`.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub client_cert: String,
    /// `client-key`.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub client_key: String,
    /// `max-reconnects`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_reconnects: Option<i64>,
    /// `reconnect-wait`, milliseconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reconnect_wait_ms: Option<u64>,
    /// `timeout`, milliseconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
}

impl NatsOptions {
    /// True when nothing is set (destinations entered in the window).
    pub fn is_empty(&self) -> bool {
        self == &NatsOptions::default()
    }
}

impl Destination {
    /// The destination as the settings file keeps it: an endpoint URL typed with a user
    /// and password in it (S3, Azure, OSS) loses them, so the file never holds
    /// credentials (the engine's config drops them from requests the same way).
    pub fn without_credentials(mut self) -> Destination {
        if let Destination::S3 { endpoint, .. }
        | Destination::Abs { endpoint, .. }
        | Destination::Oss { endpoint, .. } = &mut self
        {
            *endpoint = tideline_engine::config::strip_userinfo(endpoint);
        }
        self
    }

    /// Whether the destination may have secrets in the keychain (all but folders).
    pub fn has_secrets(&self) -> bool {
        !matches!(self, Destination::Folder { .. })
    }

    /// Where it is, in words, without credentials, as the engine describes the replica
    /// (the list shows it for a database that could not start).
    pub fn describe(&self) -> String {
        let join = |base: &str, path: &str| {
            let path = path.trim_matches('/');
            if path.is_empty() {
                base.to_owned()
            } else {
                format!("{}/{path}", base.trim_end_matches('/'))
            }
        };
        match self {
            Destination::Folder { path } => path.clone(),
            Destination::S3 { bucket, path, .. } => join(&format!("s3://{bucket}"), path),
            Destination::WebDav { url, path, .. } => format!("{}/", join(url, path)),
            Destination::Sftp {
                host, user, path, ..
            } if path.starts_with('/') => format!("sftp://{user}@{host}{path}"),
            Destination::Sftp {
                host, user, path, ..
            } if path.is_empty() => {
                format!("sftp://{user}@{host} (login folder)")
            }
            Destination::Sftp {
                host, user, path, ..
            } => format!("sftp://{user}@{host} (folder {path})"),
            Destination::Abs {
                account_name,
                container,
                path,
                endpoint,
            } => {
                let account = match account_name.trim() {
                    "" => String::new(),
                    a => format!("{a}@"),
                };
                let at = join(&format!("abs://{account}{container}"), path);
                match endpoint.trim().trim_end_matches('/') {
                    "" => at,
                    e => format!("{at} (endpoint {e})"),
                }
            }
            Destination::Gs { bucket, path, .. } => join(&format!("gs://{bucket}"), path),
            Destination::Nats { server, bucket, .. } => {
                let server = server.trim().trim_start_matches("nats://");
                let server = match server.trim_end_matches('/') {
                    "" => tideline_engine::config::DEFAULT_NATS_SERVER,
                    s => s,
                };
                format!("nats://{server}/{bucket}")
            }
            Destination::Oss { bucket, path, .. } => join(&format!("oss://{bucket}"), path),
        }
    }
}

/// S3 settings beyond the window's form, as a Litestream config import brings them
/// (SSE-KMS, SSE-C key file, storage class, part size…), kept so that every later start
/// replicates the way the config said. `None` leaves a setting to the engine's default.
/// An inline SSE-C key is a secret: it goes to the keychain with the access keys.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct S3Options {
    /// `force-path-style`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub force_path_style: Option<bool>,
    /// `skip-verify`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub skip_verify: Option<bool>,
    /// `sign-payload`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sign_payload: Option<bool>,
    /// `require-content-md5`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub require_content_md5: Option<bool>,
    /// `part-size`, bytes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub part_size: Option<u64>,
    /// `concurrency`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub concurrency: Option<usize>,
    /// `storage-class`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub storage_class: Option<String>,
    /// `sse-kms-key-id`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sse_kms_key_id: Option<String>,
    /// `sse-customer-algorithm`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sse_customer_algorithm: Option<String>,
    /// `sse-customer-key-path` (the file, not the key).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sse_customer_key_path: Option<PathBuf>,
}

impl S3Options {
    /// True when nothing is set (destinations entered in the window).
    pub fn is_empty(&self) -> bool {
        self == &S3Options::default()
    }

    /// Every setting of an engine S3 config, as an import keeps them.
    pub fn from_config(s3: &S3ReplicaConfig) -> S3Options {
        S3Options {
            force_path_style: Some(s3.force_path_style),
            skip_verify: Some(s3.skip_verify),
            sign_payload: Some(s3.sign_payload),
            require_content_md5: Some(s3.require_content_md5),
            part_size: Some(s3.part_size),
            concurrency: Some(s3.concurrency),
            storage_class: s3.storage_class.clone(),
            sse_kms_key_id: s3.sse_kms_key_id.clone(),
            sse_customer_algorithm: s3.sse_customer_algorithm.clone(),
            sse_customer_key_path: s3.sse_customer_key_path.clone(),
        }
    }

    /// Sets what is kept on a config built from the form's fields.
    pub fn apply(&self, s3: &mut S3ReplicaConfig) {
        fn set<T: Clone>(to: &mut T, from: &Option<T>) {
            if let Some(v) = from {
                *to = v.clone();
            }
        }
        fn set_opt<T: Clone>(to: &mut Option<T>, from: &Option<T>) {
            if from.is_some() {
                to.clone_from(from);
            }
        }
        set(&mut s3.force_path_style, &self.force_path_style);
        set(&mut s3.skip_verify, &self.skip_verify);
        set(&mut s3.sign_payload, &self.sign_payload);
        set(&mut s3.require_content_md5, &self.require_content_md5);
        set(&mut s3.part_size, &self.part_size);
        set(&mut s3.concurrency, &self.concurrency);
        set_opt(&mut s3.storage_class, &self.storage_class);
        set_opt(&mut s3.sse_kms_key_id, &self.sse_kms_key_id);
        set_opt(&mut s3.sse_customer_algorithm, &self.sse_customer_algorithm);
        set_opt(&mut s3.sse_customer_key_path, &self.sse_customer_key_path);
    }
}

/// One remembered database.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredDb {
    /// The database file.
    pub path: PathBuf,
    /// Its destination.
    pub destination: Destination,
    /// Paused by the user.
    #[serde(default)]
    pub paused: bool,
    /// The meta directory, when a Litestream config import set one (`meta-path`);
    /// `None` is the default beside the database.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub meta_path: Option<PathBuf>,
    /// Its destination's secrets were put in the keychain. S3 destinations are read
    /// from the keychain whatever this says (files from before it existed do not have
    /// it); a WebDAV or SFTP destination without secrets (a key file, no login) then
    /// starts on a computer without a keychain.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub keychain: bool,
}

impl StoredDb {
    /// Whether starting it reads the keychain.
    pub fn reads_keychain(&self) -> bool {
        self.keychain || matches!(self.destination, Destination::S3 { .. })
    }
}

/// The whole file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Stored {
    /// Settings.
    pub settings: Settings,
    /// Databases, in the order added.
    pub databases: Vec<StoredDb>,
}

/// The config directory: `$TIDELINE_CONFIG_DIR`, else the OS one.
pub fn config_dir() -> PathBuf {
    if let Some(d) = std::env::var_os(CONFIG_DIR_ENV).filter(|d| !d.is_empty()) {
        return PathBuf::from(d);
    }
    directories::ProjectDirs::from("dev", "tideline", "Tideline")
        .map(|p| p.config_dir().to_owned())
        .unwrap_or_else(|| PathBuf::from(".tideline"))
}

impl Stored {
    /// Loads the file in `dir` (empty when there is none).
    pub fn load(dir: &Path) -> AppResult<Stored> {
        let path = dir.join(FILE);
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
                AppError::new(
                    ErrorCode::Io,
                    format!("{} is not valid: {e}; fix or delete it", path.display()),
                )
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Stored::default()),
            Err(e) => Err(AppError::new(
                ErrorCode::Io,
                format!("read {}: {e}", path.display()),
            )),
        }
    }

    /// Writes the file in `dir` atomically.
    pub fn save(&self, dir: &Path) -> AppResult<()> {
        let io = |what: &str, e: std::io::Error| {
            AppError::new(ErrorCode::Io, format!("{what} {}: {e}", dir.display()))
        };
        std::fs::create_dir_all(dir).map_err(|e| io("create", e))?;
        let json = serde_json::to_vec_pretty(self)
            .map_err(|e| AppError::new(ErrorCode::Internal, e.to_string()))?;
        // Atomic and durable: a crash or power cut leaves the old settings or the new,
        // never an empty file that would forget every database.
        tideline_engine::write_atomic(&dir.join(FILE), &json).map_err(|e| io("write in", e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A settings file written before WebDAV and SFTP existed reads as it was, and the
    /// new destinations are written with the `kind` the window sends.
    #[test]
    fn old_settings_files_read_and_new_destinations_round_trip() {
        let old = r#"{"settings":{"sync_interval_ms":1000,"monitor_interval_ms":1000,"notifications":true},
            "databases":[
              {"path":"/a.db","destination":{"kind":"folder","path":"/backup/a"},"paused":false},
              {"path":"/b.db","destination":{"kind":"s3","endpoint":"","bucket":"bkt","path":"b","region":""},"paused":true}
            ]}"#;
        let stored: Stored = serde_json::from_str(old).unwrap();
        assert_eq!(stored.databases.len(), 2);
        assert!(
            matches!(&stored.databases[1].destination, Destination::S3 { bucket, .. } if bucket == "bkt")
        );
        assert!(!stored.databases[0].destination.has_secrets());
        assert!(!stored.databases[0].reads_keychain());
        assert!(stored.databases[1].reads_keychain(), "S3 keys of old files");

        let dav: Destination =
            serde_json::from_str(r#"{"kind":"webdav","url":"https://h/dav"}"#).unwrap();
        assert_eq!(
            dav,
            Destination::WebDav {
                url: "https://h/dav".into(),
                path: String::new(),
                username: String::new(),
            }
        );
        let sftp: Destination =
            serde_json::from_str(r#"{"kind":"sftp","host":"nas","user":"u","path":"/srv/b"}"#)
                .unwrap();
        assert_eq!(sftp.describe(), "sftp://u@nas/srv/b");
        // The newer kinds, as the window sends them (only the form's fields).
        let abs: Destination =
            serde_json::from_str(r#"{"kind":"abs","account_name":"acct","container":"c"}"#)
                .unwrap();
        assert_eq!(abs.describe(), "abs://acct@c");
        let gs: Destination = serde_json::from_str(r#"{"kind":"gs","bucket":"b"}"#).unwrap();
        assert_eq!(gs.describe(), "gs://b");
        let nats: Destination = serde_json::from_str(r#"{"kind":"nats","bucket":"b"}"#).unwrap();
        assert_eq!(nats.describe(), "nats://127.0.0.1:4222/b");
        let oss: Destination =
            serde_json::from_str(r#"{"kind":"oss","bucket":"b","path":"/p/"}"#).unwrap();
        assert_eq!(oss.describe(), "oss://b/p");
        // Credentials typed into an endpoint never reach the settings file.
        for kind in ["s3", "abs", "oss"] {
            let typed: Destination = serde_json::from_value(serde_json::json!({
                "kind": kind, "bucket": "b", "container": "c",
                "endpoint": "https://ann:endpoint-secret@store.example.com/x",
            }))
            .unwrap();
            let kept = serde_json::to_string(&typed.without_credentials()).unwrap();
            assert!(!kept.contains("endpoint-secret"), "{kept}");
            assert!(kept.contains("https://store.example.com/x"), "{kept}");
        }
        for d in [dav, sftp, abs, gs, nats, oss] {
            assert!(d.has_secrets());
            let json = serde_json::to_string(&d).unwrap();
            assert!(!json.contains("concurrent_writes"), "{json}");
            assert!(!json.contains("options"), "{json}");
            assert_eq!(serde_json::from_str::<Destination>(&json).unwrap(), d);
        }
    }
}
