//! OAuth access tokens for Google Cloud Storage from a service-account key file (the
//! JSON `GOOGLE_APPLICATION_CREDENTIALS` names): a JWT signed with the account's RSA key
//! (RS256), exchanged at the file's `token_uri` for an access token (RFC 7523's
//! `jwt-bearer` grant), which is cached until a minute before it expires.
//!
//! The RSA signature is aws-lc-rs's (`RsaKeyPair::sign` with PKCS#1 v1.5 SHA-256),
//! the crypto library rustls already builds for every HTTPS client here, so no crate is
//! added for it. Neither the key nor a token is ever in a `Debug`, a log or an error.

use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{RSA_PKCS1_SHA256, RsaKeyPair};
use serde::Deserialize;

use crate::config::Sensitive;

/// The scope replicas need: read, write and delete objects.
pub(crate) const SCOPE: &str = "https://www.googleapis.com/auth/devstorage.read_write";
/// Google's token endpoint, when the key file names none.
const DEFAULT_TOKEN_URI: &str = "https://oauth2.googleapis.com/token";
/// How long a signed assertion is valid (Google's maximum).
const ASSERTION_LIFETIME: u64 = 3600;
/// A token is renewed this long before it expires.
const RENEW_MARGIN: Duration = Duration::from_secs(60);

/// Why a key file cannot be used.
#[derive(Debug, thiserror::Error)]
pub(crate) enum KeyFileError {
    /// It cannot be read.
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    /// It is not the JSON of a key file.
    #[error("{path} is not a Google credentials JSON file: {source}")]
    Json {
        path: String,
        source: serde_json::Error,
    },
    /// It holds another kind of credentials (`authorized_user`, `external_account`).
    #[error(
        "{path} holds {kind:?} credentials; Tideline needs a service-account key file (\"type\": \"service_account\")"
    )]
    NotServiceAccount { path: String, kind: String },
    /// Its `private_key` is not a PEM PKCS#8 RSA key.
    #[error("{path}: private_key is not a PEM PKCS#8 RSA private key")]
    BadKey { path: String },
}

/// Why no token could be had.
#[derive(Debug, thiserror::Error)]
pub(crate) enum TokenError {
    /// The token endpoint could not be reached.
    #[error("cannot reach the token endpoint {uri}: {detail}")]
    Unreachable { uri: String, detail: String },
    /// It refused the assertion (a revoked or deleted key, a wrong account).
    #[error("the token endpoint refused the service account's key ({status} {detail})")]
    Refused { status: u16, detail: String },
    /// It answered something that is not a token.
    #[error("the token endpoint answered {status} without a token: {detail}")]
    Malformed { status: u16, detail: String },
    /// Signing failed (should not happen with a key that parsed).
    #[error("cannot sign the token request")]
    Sign,
}

#[derive(Deserialize)]
struct KeyFile {
    #[serde(rename = "type", default)]
    kind: String,
    #[serde(default)]
    client_email: String,
    #[serde(default)]
    private_key: String,
    #[serde(default)]
    private_key_id: Option<String>,
    #[serde(default)]
    token_uri: Option<String>,
}

/// A service account: who it is, its key, and where tokens come from.
pub(crate) struct ServiceAccount {
    pub(crate) email: String,
    key_id: Option<String>,
    key: RsaKeyPair,
    pub(crate) token_uri: String,
}

impl std::fmt::Debug for ServiceAccount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceAccount")
            .field("email", &self.email)
            .field("key", &"<redacted>")
            .field("token_uri", &self.token_uri)
            .finish()
    }
}

impl ServiceAccount {
    /// Reads and checks the key file at `path`.
    pub(crate) fn load(path: &Path) -> Result<ServiceAccount, KeyFileError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| KeyFileError::Read {
            path: shown.clone(),
            source,
        })?;
        ServiceAccount::parse(&text, &shown)
    }

    /// The key file's JSON; `shown` names it in errors.
    pub(crate) fn parse(text: &str, shown: &str) -> Result<ServiceAccount, KeyFileError> {
        let file: KeyFile = serde_json::from_str(text).map_err(|source| KeyFileError::Json {
            path: shown.to_owned(),
            source,
        })?;
        if file.kind != "service_account" {
            return Err(KeyFileError::NotServiceAccount {
                path: shown.to_owned(),
                kind: file.kind,
            });
        }
        let bad = || KeyFileError::BadKey {
            path: shown.to_owned(),
        };
        let der = pem_body(&file.private_key).ok_or_else(bad)?;
        let key = RsaKeyPair::from_pkcs8(&der).map_err(|_| bad())?;
        Ok(ServiceAccount {
            email: file.client_email,
            key_id: file.private_key_id.filter(|k| !k.is_empty()),
            key,
            token_uri: file
                .token_uri
                .filter(|u| !u.is_empty())
                .unwrap_or_else(|| DEFAULT_TOKEN_URI.to_owned()),
        })
    }

    /// The signed assertion (`header.claims.signature`, base64url) issued at `now`
    /// (seconds since the epoch).
    pub(crate) fn assertion(&self, now: u64) -> Result<String, TokenError> {
        let mut header = serde_json::json!({"alg": "RS256", "typ": "JWT"});
        if let Some(kid) = &self.key_id {
            header["kid"] = serde_json::Value::from(kid.as_str());
        }
        let claims = serde_json::json!({
            "iss": self.email,
            "scope": SCOPE,
            "aud": self.token_uri,
            "iat": now,
            "exp": now + ASSERTION_LIFETIME,
        });
        let signing_input = format!(
            "{}.{}",
            base64url(header.to_string().as_bytes()),
            base64url(claims.to_string().as_bytes())
        );
        let mut sig = vec![0u8; self.key.public_modulus_len()];
        self.key
            .sign(
                &RSA_PKCS1_SHA256,
                &SystemRandom::new(),
                signing_input.as_bytes(),
                &mut sig,
            )
            .map_err(|_| TokenError::Sign)?;
        Ok(format!("{signing_input}.{}", base64url(&sig)))
    }
}

/// The answer of a token endpoint.
#[derive(Deserialize)]
struct TokenAnswer {
    access_token: Option<String>,
    expires_in: Option<u64>,
    error: Option<String>,
    error_description: Option<String>,
}

/// Access tokens for one service account, cached until near expiry.
#[derive(Debug)]
pub(crate) struct TokenSource {
    account: ServiceAccount,
    cached: tokio::sync::Mutex<Option<(Sensitive<String>, Instant)>>,
}

impl TokenSource {
    pub(crate) fn new(account: ServiceAccount) -> TokenSource {
        TokenSource {
            account,
            cached: tokio::sync::Mutex::new(None),
        }
    }

    /// A valid access token: the cached one, or a new one from the token endpoint.
    /// Concurrent callers wait for one exchange rather than each making their own.
    pub(crate) async fn token(&self, http: &reqwest::Client) -> Result<String, TokenError> {
        let mut cached = self.cached.lock().await;
        if let Some((token, until)) = cached.as_ref()
            && Instant::now() < *until
        {
            return Ok(token.expose().clone());
        }
        let (token, lifetime) = self.exchange(http).await?;
        let until = Instant::now() + lifetime.saturating_sub(RENEW_MARGIN);
        *cached = Some((Sensitive::new(token.clone()), until));
        Ok(token)
    }

    /// Forgets the cached token (the server refused it).
    pub(crate) async fn forget(&self) {
        *self.cached.lock().await = None;
    }

    /// One `jwt-bearer` exchange: the token and how long it lives.
    async fn exchange(&self, http: &reqwest::Client) -> Result<(String, Duration), TokenError> {
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        let body = format!(
            "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer&assertion={}",
            self.account.assertion(now)?
        );
        let uri = &self.account.token_uri;
        let resp = http
            .post(uri)
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .map_err(|e| TokenError::Unreachable {
                uri: uri.clone(),
                detail: e.without_url().to_string(),
            })?;
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap_or_default();
        let answer: Option<TokenAnswer> = serde_json::from_str(&text).ok();
        match answer {
            Some(TokenAnswer {
                access_token: Some(token),
                expires_in,
                ..
            }) if (200..300).contains(&status) => {
                Ok((token, Duration::from_secs(expires_in.unwrap_or(3600))))
            }
            Some(a) if a.error.is_some() || (400..500).contains(&status) => {
                let detail = [a.error, a.error_description]
                    .into_iter()
                    .flatten()
                    .collect::<Vec<_>>()
                    .join(": ");
                Err(TokenError::Refused { status, detail })
            }
            _ => Err(TokenError::Malformed {
                status,
                detail: text.chars().take(200).collect(),
            }),
        }
    }
}

/// The DER bytes of a PEM block (`-----BEGIN …-----` … `-----END …-----`).
fn pem_body(pem: &str) -> Option<Vec<u8>> {
    let start = pem.find("-----BEGIN")?;
    let rest = &pem[start..];
    let body_start = rest.find('\n')? + 1;
    let body_end = rest.find("-----END")?;
    let b64: String = rest
        .get(body_start..body_end)?
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    aws_smithy_types::base64::decode(b64).ok()
}

/// Base64url without padding (JWT's encoding).
pub(crate) fn base64url(bytes: &[u8]) -> String {
    aws_smithy_types::base64::encode(bytes)
        .trim_end_matches('=')
        .chars()
        .map(|c| match c {
            '+' => '-',
            '/' => '_',
            c => c,
        })
        .collect()
}

#[cfg(test)]
mod tests;
