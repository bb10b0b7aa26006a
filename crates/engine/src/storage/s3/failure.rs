//! Why an S3 request failed, in terms of what the user must fix: the [`S3Failure`]
//! taxonomy, its messages, and the classification of SDK errors into it.
//!
//! Reason to change: S3 (or an S3-compatible store) reports a failure in a way not
//! yet named, or a message must say something else.

use std::error::Error;

use aws_credential_types::provider::error::CredentialsError;
use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};

/// Why an S3 request failed, in terms of what to fix.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum S3Failure {
    /// The access key is unknown or the secret is wrong (`InvalidAccessKeyId`,
    /// `SignatureDoesNotMatch`, expired tokens).
    WrongCredentials {
        /// The server's error code.
        code: String,
    },
    /// No credentials were found anywhere.
    NoCredentials(String),
    /// The credentials are valid but not allowed to do this.
    AccessDenied,
    /// The bucket does not exist.
    NoSuchBucket,
    /// The endpoint could not be reached (refused, timed out, DNS, TLS).
    Unreachable(String),
    /// This machine's clock is too far from the server's for signatures to be valid.
    ClockSkew,
    /// The bucket lives in another region.
    WrongRegion(Option<String>),
    /// The server kept throttling (`SlowDown`, 503) after every retry.
    Throttled,
    /// Any other error the server returned.
    Server {
        /// HTTP status.
        status: u16,
        /// S3 error code, if any.
        code: String,
        /// The server's message.
        message: String,
    },
    /// Anything else (a body cut short after retries, a malformed response…).
    Other(String),
}

impl std::fmt::Display for S3Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            S3Failure::WrongCredentials { code } => write!(
                f,
                "wrong credentials (the server said {code}): check access-key-id and secret-access-key in the config, or LITESTREAM_ACCESS_KEY_ID / LITESTREAM_SECRET_ACCESS_KEY / AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY"
            ),
            S3Failure::NoCredentials(detail) => write!(
                f,
                "no S3 credentials found ({detail}): set access-key-id and secret-access-key in the config, or LITESTREAM_ACCESS_KEY_ID and LITESTREAM_SECRET_ACCESS_KEY"
            ),
            S3Failure::AccessDenied => f.write_str(
                "access denied: the credentials were accepted but lack permission; allow s3:ListBucket, s3:GetObject, s3:PutObject and s3:DeleteObject on the bucket and path",
            ),
            S3Failure::NoSuchBucket => {
                f.write_str("the bucket does not exist: create it, or fix `bucket:` in the config")
            }
            S3Failure::Unreachable(detail) => write!(
                f,
                "cannot reach the endpoint ({detail}): check `endpoint:` and that the server is running and reachable"
            ),
            S3Failure::ClockSkew => f.write_str(
                "this machine's clock is too far from the server's (RequestTimeTooSkewed): fix the system time, e.g. enable NTP",
            ),
            S3Failure::WrongRegion(Some(r)) => {
                write!(f, "the bucket is in region {r}: set `region: {r}` in the config")
            }
            S3Failure::WrongRegion(None) => {
                f.write_str("the bucket is in another region: set `region:` in the config")
            }
            S3Failure::Throttled => f.write_str(
                "the server kept throttling requests (SlowDown) after retries; it will be tried again",
            ),
            S3Failure::Server {
                status,
                code,
                message,
            } => {
                write!(f, "the server answered HTTP {status}")?;
                if !code.is_empty() {
                    write!(f, " {code}")?;
                }
                if !message.is_empty() {
                    write!(f, ": {message}")?;
                }
                Ok(())
            }
            S3Failure::Other(detail) => f.write_str(detail),
        }
    }
}

/// Names an SDK error for what the user must fix.
pub(super) fn classify<E>(err: SdkError<E, HttpResponse>) -> S3Failure
where
    E: ProvideErrorMetadata + Error + Send + Sync + 'static,
{
    let chain = error_chain(&err);
    match &err {
        SdkError::DispatchFailure(_) | SdkError::TimeoutError(_) => {
            if is_credentials_failure(&err) {
                return S3Failure::NoCredentials(chain);
            }
            return S3Failure::Unreachable(chain);
        }
        SdkError::ConstructionFailure(_) => {
            if is_credentials_failure(&err) {
                return S3Failure::NoCredentials(chain);
            }
            return S3Failure::Other(chain);
        }
        _ => {}
    }
    let status = err.raw_response().map_or(0, |r| r.status().as_u16());
    let region = err
        .raw_response()
        .and_then(|r| r.headers().get("x-amz-bucket-region"))
        .map(str::to_string);
    let code = err.code().unwrap_or_default().to_string();
    let message = err.message().unwrap_or_default().to_string();
    from_response(status, code, message, region, chain)
}

/// Names a failure the server answered, by its S3 error code and else its status.
fn from_response(
    status: u16,
    code: String,
    message: String,
    region: Option<String>,
    chain: String,
) -> S3Failure {
    match code.as_str() {
        "InvalidAccessKeyId"
        | "SignatureDoesNotMatch"
        | "InvalidToken"
        | "ExpiredToken"
        | "TokenRefreshRequired"
        | "InvalidSecurity" => S3Failure::WrongCredentials { code },
        "AccessDenied" | "AllAccessDisabled" | "AccountProblem" => S3Failure::AccessDenied,
        "NoSuchBucket" => S3Failure::NoSuchBucket,
        "RequestTimeTooSkewed" => S3Failure::ClockSkew,
        "PermanentRedirect"
        | "AuthorizationHeaderMalformed"
        | "IllegalLocationConstraintException" => S3Failure::WrongRegion(region),
        "SlowDown" | "Throttling" | "ThrottlingException" | "RequestLimitExceeded" => {
            S3Failure::Throttled
        }
        _ => match status {
            // HEAD responses have no body, so no code: go by the status.
            301 => S3Failure::WrongRegion(region),
            403 => S3Failure::AccessDenied,
            503 => S3Failure::Throttled,
            0 => S3Failure::Other(chain),
            _ => S3Failure::Server {
                status,
                code,
                message,
            },
        },
    }
}

/// Whether the request failed for want of credentials, before anything was sent.
///
/// The SDK resolves credentials before it transmits; a provider's failure (the
/// standard chain finding nothing, a profile or web-identity error) comes back as a
/// dispatch or construction failure whose source chain holds the provider's
/// [`CredentialsError`], which is looked for by type.
fn is_credentials_failure(err: &(dyn Error + 'static)) -> bool {
    let mut next = Some(err);
    while let Some(e) = next {
        if e.downcast_ref::<CredentialsError>().is_some() {
            return true;
        }
        // The one case with nothing typed to inspect: when no identity resolver can be
        // found at all, aws-smithy-runtime fails with `NoMatchingAuthSchemeError`, a
        // private type, whose message is all there is to go by.
        if e.source().is_none() && e.to_string().contains("such as credentials") {
            return true;
        }
        next = e.source();
    }
    false
}

/// The error's message and those of its sources, each once.
pub(super) fn error_chain(err: &(dyn Error + 'static)) -> String {
    let mut out = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use aws_credential_types::provider::{ProvideCredentials, future};
    use aws_sdk_s3::error::{ConnectorError, ErrorMetadata};
    use aws_sdk_s3::operation::get_object::GetObjectError;
    use aws_sdk_s3::primitives::SdkBody;

    use super::*;

    fn response(status: u16) -> HttpResponse {
        HttpResponse::new(status.try_into().unwrap(), SdkBody::empty())
    }

    /// What the server answered with `status` and (when not empty) `code`.
    fn server(status: u16, code: &str, message: &str) -> S3Failure {
        let mut meta = ErrorMetadata::builder();
        if !code.is_empty() {
            meta = meta.code(code);
        }
        if !message.is_empty() {
            meta = meta.message(message);
        }
        let err = GetObjectError::generic(meta.build());
        classify(SdkError::service_error(err, response(status)))
    }

    fn dispatch(source: impl Into<aws_sdk_s3::error::BoxError>) -> S3Failure {
        classify::<GetObjectError>(SdkError::dispatch_failure(ConnectorError::other(
            source.into(),
            None,
        )))
    }

    #[test]
    fn server_error_codes_name_what_to_fix() {
        for code in [
            "InvalidAccessKeyId",
            "SignatureDoesNotMatch",
            "ExpiredToken",
        ] {
            let want = S3Failure::WrongCredentials { code: code.into() };
            assert_eq!(server(403, code, "no"), want);
        }
        assert_eq!(server(403, "AccessDenied", ""), S3Failure::AccessDenied);
        assert_eq!(server(404, "NoSuchBucket", ""), S3Failure::NoSuchBucket);
        assert_eq!(
            server(403, "RequestTimeTooSkewed", ""),
            S3Failure::ClockSkew
        );
        assert_eq!(server(503, "SlowDown", ""), S3Failure::Throttled);
        assert_eq!(server(400, "Throttling", ""), S3Failure::Throttled);
        assert_eq!(
            server(400, "AuthorizationHeaderMalformed", ""),
            S3Failure::WrongRegion(None)
        );
    }

    #[test]
    fn bodiless_answers_go_by_the_status() {
        // HEAD answers carry no code.
        assert_eq!(server(403, "", ""), S3Failure::AccessDenied);
        assert_eq!(server(503, "", ""), S3Failure::Throttled);
        assert_eq!(server(301, "", ""), S3Failure::WrongRegion(None));
        assert_eq!(
            server(500, "", ""),
            S3Failure::Server {
                status: 500,
                code: String::new(),
                message: String::new()
            }
        );
        // An unknown code keeps the server's words.
        let other = server(409, "OperationAborted", "try again");
        assert_eq!(
            other,
            S3Failure::Server {
                status: 409,
                code: "OperationAborted".into(),
                message: "try again".into()
            }
        );
        assert_eq!(
            other.to_string(),
            "the server answered HTTP 409 OperationAborted: try again"
        );
    }

    #[test]
    fn the_region_header_names_the_region() {
        let mut resp = response(301);
        resp.headers_mut()
            .insert("x-amz-bucket-region", "eu-central-1");
        let err = GetObjectError::generic(ErrorMetadata::builder().build());
        let failure = classify(SdkError::service_error(err, resp));
        assert_eq!(failure, S3Failure::WrongRegion(Some("eu-central-1".into())));
        assert_eq!(
            failure.to_string(),
            "the bucket is in region eu-central-1: set `region: eu-central-1` in the config"
        );
    }

    #[test]
    fn credential_provider_errors_are_found_by_type() {
        let failure = dispatch(CredentialsError::not_loaded("no providers in chain"));
        let S3Failure::NoCredentials(detail) = failure else {
            panic!("{failure:?}")
        };
        assert!(detail.contains("no providers in chain"), "{detail}");
        // Wrapped deeper, as an identity cache or the orchestrator may do.
        let wrapped = ConnectorError::other(
            Box::new(CredentialsError::provider_error("profile is broken")),
            None,
        );
        assert!(matches!(dispatch(wrapped), S3Failure::NoCredentials(_)));
        let built = classify::<GetObjectError>(SdkError::construction_failure(
            CredentialsError::invalid_configuration("bad profile"),
        ));
        assert!(matches!(built, S3Failure::NoCredentials(_)), "{built:?}");
    }

    #[test]
    fn a_word_in_a_message_is_not_a_credentials_failure() {
        // A connection error that merely mentions credentials is still a connection error.
        let io = std::io::Error::new(
            std::io::ErrorKind::ConnectionRefused,
            "refused while sending credentials",
        );
        let failure = dispatch(io);
        assert!(matches!(failure, S3Failure::Unreachable(_)), "{failure:?}");
        let timeout = classify::<GetObjectError>(SdkError::timeout_error("read timed out"));
        assert!(matches!(timeout, S3Failure::Unreachable(_)), "{timeout:?}");
        let built = classify::<GetObjectError>(SdkError::construction_failure("bad key"));
        assert_eq!(
            built,
            S3Failure::Other("failed to construct request: bad key".into())
        );
    }

    #[derive(Debug)]
    struct NoneFound;

    impl ProvideCredentials for NoneFound {
        fn provide_credentials<'a>(&'a self) -> future::ProvideCredentials<'a>
        where
            Self: 'a,
        {
            future::ProvideCredentials::ready(Err(CredentialsError::not_loaded(
                "nothing configured",
            )))
        }
    }

    /// The real SDK path: a provider finding nothing fails the request before it is
    /// sent (the endpoint is never contacted), and that is named as such.
    #[tokio::test]
    async fn the_sdk_reports_a_failing_provider_as_no_credentials() {
        let conf = aws_sdk_s3::Config::builder()
            .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
            .region(aws_sdk_s3::config::Region::new("us-east-1"))
            .credentials_provider(NoneFound)
            .endpoint_url("http://127.0.0.1:9")
            .retry_config(aws_sdk_s3::config::retry::RetryConfig::disabled())
            .build();
        let client = aws_sdk_s3::Client::from_conf(conf);
        let err = client
            .list_objects_v2()
            .bucket("b")
            .send()
            .await
            .unwrap_err();
        let failure = classify(err);
        assert!(
            matches!(failure, S3Failure::NoCredentials(_)),
            "{failure:?}"
        );
        assert!(
            failure.to_string().contains("nothing configured"),
            "{failure}"
        );
    }

    #[test]
    fn the_chain_names_each_cause_once() {
        let io = std::io::Error::other("connection reset");
        let err = ConnectorError::io(Box::new(io));
        let chain = error_chain(&err);
        assert!(chain.ends_with("connection reset"), "{chain}");
        assert_eq!(chain.matches("connection reset").count(), 1, "{chain}");
    }
}
