//! Destination secrets (S3 and OSS keys, WebDAV, SFTP and NATS passwords, Azure
//! account keys and SAS tokens, NATS tokens and seeds) in the OS keychain
//! (Secret Service, macOS Keychain, Windows Credential Manager), one entry per
//! database. They are never written to the settings file, logged or sent back to the
//! window; without a keychain, adding them fails with
//! [`ErrorCode::KeychainUnavailable`] and says so.

use serde::{Deserialize, Serialize};

use crate::error::{AppError, AppResult, ErrorCode};

const SERVICE: &str = "dev.tideline.app";

/// A destination's secrets: S3 or OSS keys, the password of a WebDAV, SFTP or NATS
/// server, an Azure account key or SAS token, NATS tokens and seeds.
/// Every field may be absent, so entries written before passwords existed (S3 keys
/// only) read as they were.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Keys {
    /// S3 access key ID.
    #[serde(default)]
    pub access_key_id: String,
    /// S3 secret access key.
    #[serde(default)]
    pub secret_access_key: String,
    /// The WebDAV, SFTP or NATS password.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    /// An SSE-C key (base64) a Litestream config import brought (`sse-customer-key`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sse_customer_key: Option<String>,
    /// An Azure storage account key (base64).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_key: Option<String>,
    /// An Azure SAS token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sas_token: Option<String>,
    /// A NATS token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// A NATS user JWT (with its seed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwt: Option<String>,
    /// The NATS nkey seed that signs with the JWT.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<String>,
    /// A NATS user nkey seed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nkey: Option<String>,
}

impl Keys {
    /// True when no key is set.
    pub fn is_empty(&self) -> bool {
        let blank = |v: &Option<String>| v.as_deref().is_none_or(str::is_empty);
        self.access_key_id.is_empty()
            && self.secret_access_key.is_empty()
            && self.sse_customer_key.is_none()
            && [
                &self.password,
                &self.account_key,
                &self.sas_token,
                &self.token,
                &self.jwt,
                &self.seed,
                &self.nkey,
            ]
            .into_iter()
            .all(blank)
    }

    /// Only a password (a WebDAV or SFTP destination's).
    pub fn password(password: impl Into<String>) -> Keys {
        Keys {
            password: Some(password.into()),
            ..Keys::default()
        }
    }
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Keys(<redacted>)")
    }
}

fn unavailable(e: &keyring::Error) -> AppError {
    AppError::new(
        ErrorCode::KeychainUnavailable,
        format!(
            "No system keychain is available ({e}). Tideline never stores keys in plain text: \
             leave the key fields empty and start Tideline with the keys in its environment \
             (S3: AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY; Azure: \
             LITESTREAM_AZURE_ACCOUNT_KEY; OSS: OSS_ACCESS_KEY_ID and OSS_ACCESS_KEY_SECRET), \
             use a key file instead of a password (SFTP, NATS .creds), or start a keychain \
             service (e.g. GNOME Keyring)."
        ),
    )
}

fn entry(account: &str) -> AppResult<keyring::Entry> {
    keyring::Entry::new(SERVICE, account).map_err(|e| unavailable(&e))
}

/// Whether a keychain can be used here; `Err` says why not.
pub fn check() -> AppResult<()> {
    match entry("tideline-keychain-check")?.get_password() {
        Ok(_) | Err(keyring::Error::NoEntry) => Ok(()),
        Err(e) => Err(unavailable(&e)),
    }
}

/// Stores the keys of the database `account`.
pub fn store(account: &str, keys: &Keys) -> AppResult<()> {
    let json = serde_json::to_string(keys)
        .map_err(|e| AppError::new(ErrorCode::Internal, e.to_string()))?;
    entry(account)?
        .set_password(&json)
        .map_err(|e| unavailable(&e))
}

/// The keys of `account`, if any were stored.
pub fn load(account: &str) -> AppResult<Option<Keys>> {
    match entry(account)?.get_password() {
        Ok(json) => serde_json::from_str(&json).map(Some).map_err(|_| {
            AppError::new(
                ErrorCode::KeychainUnavailable,
                format!("the keychain entry of {account} is not readable; add the database again"),
            )
        }),
        Err(keyring::Error::NoEntry) => Ok(None),
        Err(e) => Err(unavailable(&e)),
    }
}

/// Deletes the keys of `account` (none stored is fine).
pub fn delete(account: &str) -> AppResult<()> {
    match entry(account)?.delete_credential() {
        Ok(()) | Err(keyring::Error::NoEntry) => Ok(()),
        Err(e) => Err(unavailable(&e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_never_print() {
        let k = Keys {
            access_key_id: "AKIAEXAMPLE".into(),
            secret_access_key: "very-secret".into(),
            sse_customer_key: Some("c2VjcmV0".into()),
            password: Some("pw".into()),
            account_key: Some("a2V5".into()),
            ..Keys::default()
        };
        assert_eq!(format!("{k:?}"), "Keys(<redacted>)");
    }

    /// Works where a keychain exists; elsewhere it must fail with the code that makes
    /// the window say so (this machine has no Secret Service running).
    #[test]
    fn store_load_delete_or_say_unavailable() {
        let account = format!("tideline-test-{}", std::process::id());
        let keys = Keys {
            access_key_id: "id".into(),
            secret_access_key: "secret".into(),
            password: Some("webdav-pw".into()),
            token: Some("nats-token".into()),
            ..Keys::default()
        };
        match store(&account, &keys) {
            Ok(()) => {
                assert_eq!(load(&account).unwrap(), Some(keys));
                delete(&account).unwrap();
                assert_eq!(load(&account).unwrap(), None);
            }
            Err(e) => {
                assert_eq!(e.code, ErrorCode::KeychainUnavailable);
                assert!(e.message.contains("never stores keys in plain text"));
                assert!(check().is_err());
            }
        }
    }

    /// Entries written before passwords existed read as they were; a password-only
    /// entry (WebDAV, SFTP) needs no S3 fields, and an empty password is no secret.
    #[test]
    fn old_entries_read_and_passwords_alone_are_keys() {
        let old: Keys =
            serde_json::from_str(r#"{"access_key_id":"AK","secret_access_key":"SK"}"#).unwrap();
        assert_eq!((old.access_key_id.as_str(), old.password), ("AK", None));
        let pw: Keys = serde_json::from_str(r#"{"password":"pw"}"#).unwrap();
        assert_eq!(pw, Keys::password("pw"));
        assert!(!pw.is_empty());
        assert!(Keys::password("").is_empty());
        let json = serde_json::to_string(&Keys::default()).unwrap();
        assert!(!json.contains("password"), "{json}");
    }
}
