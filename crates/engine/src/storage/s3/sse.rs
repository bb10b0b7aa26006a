//! Server-side encryption settings: SSE-C (a key of the user's, sent with every read
//! and write of an object) and SSE-KMS (a key id, sent when an object is created).
//!
//! Reason to change: how encryption is configured or which requests carry it.

use crate::config::S3ReplicaConfig;

/// Server-side encryption settings applied to every request that needs them.
#[derive(Clone, Default)]
pub(super) struct Sse {
    /// (algorithm, base64 key, base64 MD5 of the key) for SSE-C.
    pub(super) customer: Option<(String, String, String)>,
    pub(super) kms_key_id: Option<String>,
}

impl std::fmt::Debug for Sse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sse")
            .field("customer", &self.customer.as_ref().map(|_| "<redacted>"))
            .field("kms_key_id", &self.kms_key_id)
            .finish()
    }
}

impl Sse {
    /// The settings of `cfg`, reading the SSE-C key file if one is configured.
    pub(super) fn from_config(cfg: &S3ReplicaConfig) -> crate::Result<Sse> {
        Ok(Sse {
            customer: customer_key(cfg)?,
            kms_key_id: cfg.sse_kms_key_id.clone(),
        })
    }
}

/// Sets the SSE-C headers (algorithm, key, key MD5) on any request builder that takes
/// them: S3 needs them on every read and write of an SSE-C object.
macro_rules! sse_customer {
    ($req:expr, $sse:expr) => {
        match &$sse.customer {
            Some((alg, key, md5)) => $req
                .sse_customer_algorithm(alg)
                .sse_customer_key(key)
                .sse_customer_key_md5(md5),
            None => $req,
        }
    };
}

fn customer_key(cfg: &S3ReplicaConfig) -> crate::Result<Option<(String, String, String)>> {
    use md5::Digest;
    let key = if let Some(path) = &cfg.sse_customer_key_path {
        let text = std::fs::read_to_string(path).map_err(|source| crate::Error::Io {
            op: "read sse-customer-key-path",
            path: path.clone(),
            source,
        })?;
        Some(text.trim().to_string())
    } else {
        cfg.sse_customer_key.as_ref().map(|k| k.expose().clone())
    };
    let Some(key) = key else { return Ok(None) };
    // The config holds the key base64-encoded, as Litestream's does; S3 wants the
    // base64 key and the base64 MD5 of the raw key.
    let raw = aws_smithy_types::base64::decode(key.trim()).map_err(|_| {
        crate::Error::from(crate::config::ConfigError::invalid(
            "sse-customer-key",
            "the key is not valid base64",
            "set a base64-encoded 256-bit key (e.g. from `openssl rand -base64 32`)",
        ))
    })?;
    let md5 = aws_smithy_types::base64::encode(md5::Md5::digest(&raw));
    let alg = cfg
        .sse_customer_algorithm
        .clone()
        .unwrap_or_else(|| "AES256".to_string());
    Ok(Some((alg, key, md5)))
}
