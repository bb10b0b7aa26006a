//! Where a client's credentials and region come from: the keys in the config, else
//! the standard AWS chain (environment, profile files, web identity, container and
//! instance metadata).
//!
//! Reason to change: a new source of credentials or of the region.

use aws_credential_types::provider::{ProvideCredentials, future};
use aws_sdk_s3::config::{Credentials, SharedCredentialsProvider};

use crate::config::S3ReplicaConfig;

/// The configured region, else `AWS_REGION`, `AWS_DEFAULT_REGION`, `us-east-1`.
pub(super) fn region(cfg: &S3ReplicaConfig) -> String {
    cfg.region
        .clone()
        .or_else(|| std::env::var("AWS_REGION").ok())
        .or_else(|| std::env::var("AWS_DEFAULT_REGION").ok())
        .unwrap_or_else(|| "us-east-1".to_string())
}

/// The keys of the config when it has both, else the standard chain.
pub(super) fn provider(cfg: &S3ReplicaConfig) -> SharedCredentialsProvider {
    match (&cfg.access_key_id, &cfg.secret_access_key) {
        // The token was resolved with the keys (never an environment token with
        // keys from the config): see `config::resolve_s3_credentials`.
        (Some(id), Some(secret)) => SharedCredentialsProvider::new(Credentials::new(
            id.expose().clone(),
            secret.expose().clone(),
            cfg.session_token.as_ref().map(|t| t.expose().clone()),
            None,
            "tideline-config",
        )),
        _ => SharedCredentialsProvider::new(StandardChain::default()),
    }
}

/// The standard AWS credential chain (environment, profile files, web identity,
/// container and instance metadata), built on first use because building it is async.
#[derive(Debug, Default)]
struct StandardChain(
    tokio::sync::OnceCell<aws_config::default_provider::credentials::DefaultCredentialsChain>,
);

impl ProvideCredentials for StandardChain {
    fn provide_credentials<'a>(&'a self) -> future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        future::ProvideCredentials::new(async move {
            let chain = self
                .0
                .get_or_init(|| async {
                    aws_config::default_provider::credentials::DefaultCredentialsChain::builder()
                        .build()
                        .await
                })
                .await;
            chain.provide_credentials().await
        })
    }
}
