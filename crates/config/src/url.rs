//! A small URL parser for replica URLs (`file:///abs/path`, `s3://bucket/path?…`), with
//! percent-decoding, Go's `path.Clean`, and Litestream's S3 host conventions.
//!
//! Why not the `url` crate: Litestream parses replica URLs with Go's `net/url`, and a
//! replica URL must mean here what it means there. `url` implements the WHATWG URL
//! standard, which differs from `net/url` on inputs this crate's tests pin down:
//! - it normalises (dot segments resolved, special schemes such as `file:` rewritten),
//!   where `net/url` keeps the path as written and Litestream cleans it afterwards;
//! - it keeps the path and host percent-encoded and passes bad escapes through, where
//!   `net/url` decodes them and rejects `%zz` and `%4` (we also reject escapes that
//!   decode to invalid UTF-8, such as `%ff`, which a Rust `String` cannot hold);
//! - it rejects an S3 access point ARN as the host
//!   (`s3://arn:aws:s3:REGION:ACCOUNT:accesspoint/NAME`) as an invalid port, where
//!   Litestream takes the ARN as the bucket.
//!
//! So the parser stays ours: it does what `net/url` does for the parts Litestream
//! reads (scheme, host, path, query), nothing more.

use super::error::UrlProblem;

/// A parsed `scheme://[user@]host[:port]/path?query` URL, components decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Url {
    /// Lower-cased scheme.
    pub scheme: String,
    /// Host and port (decoded); empty when absent.
    pub host: String,
    /// Decoded path, as written (not cleaned).
    pub path: String,
    /// Decoded query pairs in order.
    pub query: Vec<(String, String)>,
    /// The decoded user name of a `user[:password]@` part. S3 never reads it (keys come
    /// from the config or the environment); SFTP and WebDAV take it as Litestream does.
    pub user: Option<String>,
    /// The decoded password of a `user:password@` part.
    pub password: Option<String>,
}

impl Url {
    /// The last value of query key `key`, as Go's `url.Values.Get` (first value) would
    /// see it when the key is not repeated.
    pub fn query_get(&self, key: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// Whether `s` starts like a URL (`word://`), as Litestream's `IsURL` decides:
/// a replica URL rather than a database path.
pub fn looks_like_url(s: &str) -> bool {
    match s.find("://") {
        Some(i) if i > 0 => s[..i]
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_'),
        _ => false,
    }
}

/// The URL (or plain path) safe for messages, logs, events and the UI: any
/// `user:password@` part is replaced, so are the values of query parameters that carry
/// secrets (`secret-access-key=`, `X-Amz-Signature=`, `token=`…), and a URL given as a
/// query value (`?endpoint=https://user:pass@host`) is redacted the same way.
pub fn redact(s: &str) -> String {
    let (head, query) = match s.split_once('?') {
        Some((h, q)) => (h, Some(q)),
        None => (s, None),
    };
    let mut out = redact_userinfo(head);
    if let Some(q) = query {
        out.push('?');
        let pairs: Vec<String> = q
            .split('&')
            .map(|pair| match pair.split_once('=') {
                Some((k, _)) if is_secret_param(k) => format!("{k}=<redacted>"),
                Some((k, v)) => {
                    // Values are percent-encoded as often as not: judge the decoded one.
                    let decoded = decode(v, true).unwrap_or_else(|_| v.to_owned());
                    let safe = redact_userinfo(&decoded);
                    if safe == decoded {
                        pair.to_owned()
                    } else {
                        format!("{k}={safe}")
                    }
                }
                None => pair.to_owned(),
            })
            .collect();
        out.push_str(&pairs.join("&"));
    }
    out
}

/// Query parameter names whose values are secrets (matched case-insensitively on
/// the name without `-`/`_`).
fn is_secret_param(name: &str) -> bool {
    let n: String = name
        .chars()
        .filter(|c| *c != '-' && *c != '_')
        .collect::<String>()
        .to_ascii_lowercase();
    [
        "secret",
        "password",
        "token",
        "signature",
        "credential",
        "customerkey",
    ]
    .iter()
    .any(|w| n.contains(w))
        || n == "accesskeyid"
        || n == "awsaccesskeyid"
}

/// `scheme://user:pass@host…` with the user-info part replaced by `<redacted>`.
fn redact_userinfo(s: &str) -> String {
    let Some(i) = s.find("://") else {
        return s.to_owned();
    };
    let after = &s[i + 3..];
    let authority_end = after.find(['/', '?', '#']).unwrap_or(after.len());
    match after[..authority_end].rfind('@') {
        Some(at) => format!("{}<redacted>@{}", &s[..i + 3], &after[at + 1..]),
        None => s.to_owned(),
    }
}

/// An endpoint URL without its `user:password@` part. S3 requests are signed with the
/// access key, never with URL credentials, so they are dropped where the endpoint is
/// read, and nothing downstream (the HTTP client, its errors, descriptions) holds them.
pub fn strip_userinfo(endpoint: &str) -> String {
    let Some(i) = endpoint.find("://") else {
        return endpoint.to_owned();
    };
    let after = &endpoint[i + 3..];
    let authority_end = after.find(['/', '?', '#']).unwrap_or(after.len());
    match after[..authority_end].rfind('@') {
        Some(at) => format!("{}{}", &endpoint[..i + 3], &after[at + 1..]),
        None => endpoint.to_owned(),
    }
}

/// Parses `s`, which must have a scheme (`scheme:` followed by `//authority` or a path).
pub(crate) fn parse(s: &str) -> Result<Url, UrlProblem> {
    let colon = s.find(':').ok_or_else(|| {
        UrlProblem::new(
            "no scheme",
            "write file:///abs/path for a folder or s3://bucket/path for S3",
        )
    })?;
    let scheme = &s[..colon];
    let valid_scheme = scheme
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic())
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    if !valid_scheme {
        return Err(UrlProblem::new(
            format!("invalid scheme {scheme:?}"),
            "write file:///abs/path for a folder or s3://bucket/path for S3",
        ));
    }
    let mut rest = &s[colon + 1..];
    if let Some(hash) = rest.find('#') {
        rest = &rest[..hash];
    }
    let mut raw_query = "";
    if let Some(q) = rest.find('?') {
        raw_query = &rest[q + 1..];
        rest = &rest[..q];
    }
    let (authority, raw_path) = match rest.strip_prefix("//") {
        Some(after) => after.split_at(after.find('/').unwrap_or(after.len())),
        None => ("", rest),
    };
    let (userinfo, hostport) = match authority.rsplit_once('@') {
        Some((u, h)) => (Some(u), h),
        None => (None, authority),
    };
    let (user, password) = match userinfo {
        Some(u) => match u.split_once(':') {
            Some((name, pass)) => (Some(decode(name, false)?), Some(decode(pass, false)?)),
            None => (Some(decode(u, false)?), None),
        },
        None => (None, None),
    };
    let mut query = Vec::new();
    for pair in raw_query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        query.push((decode(k, true)?, decode(v, true)?));
    }
    Ok(Url {
        scheme: scheme.to_ascii_lowercase(),
        host: decode(hostport, false)?,
        path: decode(raw_path, false)?,
        query,
        user,
        password,
    })
}

/// Percent-decodes `s` (and `+` as a space in query components).
fn decode(s: &str, query: bool) -> Result<String, UrlProblem> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = bytes
                    .get(i + 1..i + 3)
                    .and_then(|h| std::str::from_utf8(h).ok())
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .ok_or_else(|| {
                        let end = (i + 3).min(bytes.len());
                        UrlProblem::new(
                            format!(
                                "invalid percent-escape {:?}",
                                String::from_utf8_lossy(&bytes[i..end])
                            ),
                            "write % as %25, and escape other bytes as % followed by two hex digits",
                        )
                    })?;
                out.push(hex);
                i += 3;
            }
            b'+' if query => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).map_err(|_| {
        UrlProblem::new(
            "percent-escapes decode to invalid UTF-8",
            "escape only UTF-8 text",
        )
    })
}

/// Go's `path.Clean`: lexical clean-up of a slash-separated path.
pub(crate) fn clean_path(p: &str) -> String {
    if p.is_empty() {
        return ".".to_owned();
    }
    let rooted = p.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for part in p.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                if parts.last().is_some_and(|last| *last != "..") {
                    parts.pop();
                } else if !rooted {
                    parts.push("..");
                }
            }
            part => parts.push(part),
        }
    }
    let joined = parts.join("/");
    match (rooted, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".to_owned(),
        (false, false) => joined,
    }
}

/// An object-store key prefix from a URL path: cleaned, without a leading slash, empty
/// for the bucket root (Litestream's `CleanReplicaURLPath`).
pub(crate) fn s3_key_prefix(path: &str) -> String {
    let cleaned = clean_path(&format!("/{path}"));
    cleaned.trim_start_matches('/').to_owned()
}

/// What an S3 URL's host says.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct S3Host {
    pub bucket: Option<String>,
    pub region: Option<String>,
    pub endpoint: Option<String>,
    pub force_path_style: bool,
}

/// Litestream's S3 host conventions: `bucket` (AWS), `bucket.host:port` (MinIO and
/// other local servers), `bucket.s3.REGION.backblazeb2.com`,
/// `bucket.REGION.digitaloceanspaces.com`, `bucket.s3.filebase.com`,
/// `bucket.s3.REGION.scw.cloud`, and AWS virtual-host names
/// `bucket.s3[.-]REGION.amazonaws.com`.
pub(crate) fn parse_s3_host(host: &str) -> S3Host {
    let lower = host.to_ascii_lowercase();
    if host.contains(':') && !lower.contains(".com") {
        return local_server_host(host);
    }
    if let Some(found) = provider_host(host, &lower) {
        return found;
    }
    if let Some(prefix) = lower.strip_suffix(".amazonaws.com") {
        return aws_host(host, prefix);
    }
    S3Host {
        bucket: non_empty(host),
        ..S3Host::default()
    }
}

/// `Some` of a non-empty string.
fn non_empty(s: &str) -> Option<String> {
    (!s.is_empty()).then(|| s.to_owned())
}

/// `bucket.host:port` (MinIO and other local servers, path-style over plain http), or
/// `host:port` / `IP:port` without a bucket.
fn local_server_host(host: &str) -> S3Host {
    let name = host.rsplit_once(':').map_or(host, |(name, _)| name);
    let is_ip = name.parse::<std::net::Ipv4Addr>().is_ok() || name.starts_with('[');
    match host.split_once('.') {
        Some((bucket, server)) if !is_ip => S3Host {
            bucket: non_empty(bucket),
            region: Some("us-east-1".to_owned()),
            endpoint: Some(format!("http://{server}")),
            force_path_style: true,
        },
        _ => S3Host {
            endpoint: Some(format!("http://{host}")),
            force_path_style: true,
            ..S3Host::default()
        },
    }
}

/// `[bucket.]s3.REGION.<suffix>` → (bucket, region); `lower` is `host` lower-cased.
fn s3_region(host: &str, lower: &str, suffix: &str) -> Option<(String, String)> {
    let prefix = lower.strip_suffix(suffix)?;
    let labels: Vec<&str> = prefix.split('.').collect();
    let n = labels.len();
    (n >= 2 && labels[n - 2] == "s3" && !labels[n - 1].is_empty()).then(|| {
        let bucket_len = prefix.len() - labels[n - 1].len() - labels[n - 2].len() - 1;
        let bucket = host[..bucket_len.saturating_sub(1)].to_owned();
        (bucket, labels[n - 1].to_owned())
    })
}

/// Backblaze B2, Scaleway, DigitalOcean Spaces and Filebase hosts.
fn provider_host(host: &str, lower: &str) -> Option<S3Host> {
    if let Some((bucket, region)) = s3_region(host, lower, ".backblazeb2.com") {
        return Some(S3Host {
            bucket: non_empty(&bucket),
            endpoint: Some(format!("https://s3.{region}.backblazeb2.com")),
            region: Some(region),
            force_path_style: true,
        });
    }
    if let Some((bucket, region)) = s3_region(host, lower, ".scw.cloud") {
        return Some(S3Host {
            bucket: non_empty(&bucket),
            endpoint: Some(format!("https://s3.{region}.scw.cloud")),
            region: Some(region),
            force_path_style: false,
        });
    }
    if let Some(prefix) = lower.strip_suffix(".digitaloceanspaces.com") {
        let (bucket, region) = prefix.rsplit_once('.').unwrap_or(("", prefix));
        return Some(S3Host {
            bucket: non_empty(&host[..bucket.len()]),
            endpoint: Some(format!("https://{region}.digitaloceanspaces.com")),
            region: non_empty(region),
            force_path_style: false,
        });
    }
    if lower == "s3.filebase.com" || lower.ends_with(".s3.filebase.com") {
        let bucket = &host[..host.len() - "s3.filebase.com".len()];
        return Some(S3Host {
            bucket: non_empty(bucket.trim_end_matches('.')),
            endpoint: Some("https://s3.filebase.com".to_owned()),
            ..S3Host::default()
        });
    }
    None
}

/// AWS names: `bucket.s3`, `bucket.s3.REGION`, `bucket.s3-REGION` or `s3.REGION` (no
/// bucket) before `.amazonaws.com` (`prefix` is that part, lower-cased); any other
/// name is a bucket that happens to end in `.amazonaws.com`.
fn aws_host(host: &str, prefix: &str) -> S3Host {
    let (bucket, rest) = if prefix == "s3" || prefix.starts_with("s3.") || prefix.starts_with("s3-")
    {
        ("", prefix)
    } else if let Some(i) = prefix.rfind(".s3") {
        (&host[..i], &prefix[i + 1..])
    } else {
        return S3Host {
            bucket: Some(host.to_owned()),
            ..S3Host::default()
        };
    };
    let region = rest
        .strip_prefix("s3")
        .map(|r| r.trim_start_matches(['.', '-']))
        .unwrap_or("");
    S3Host {
        bucket: non_empty(bucket),
        region: non_empty(region),
        ..S3Host::default()
    }
}

/// Adds a scheme to a scheme-less endpoint: `http://` for local and private-network
/// hosts, `https://` otherwise (Litestream's `EnsureEndpointScheme`).
pub(crate) fn ensure_endpoint_scheme(endpoint: &str) -> String {
    let lower = endpoint.to_ascii_lowercase();
    if lower.starts_with("http://") || lower.starts_with("https://") {
        return endpoint.to_owned();
    }
    let host = lower.split('/').next().unwrap_or("");
    let host = match host.rsplit_once(':') {
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
        _ => host,
    };
    let private_172 = host
        .strip_prefix("172.")
        .and_then(|r| r.split('.').next())
        .and_then(|o| o.parse::<u8>().ok())
        .is_some_and(|o| (16..=31).contains(&o));
    let local = host == "localhost"
        || host.starts_with("127.")
        || host.starts_with("10.")
        || host.starts_with("192.168.")
        || private_172
        || host == "[::1]"
        || host.ends_with(".local")
        || host.ends_with(".localhost");
    if local {
        format!("http://{endpoint}")
    } else {
        format!("https://{endpoint}")
    }
}

/// The lower-cased host of an endpoint URL (or the endpoint itself without a scheme).
pub(crate) fn endpoint_host(endpoint: &str) -> String {
    let lower = endpoint.trim().to_ascii_lowercase();
    let rest = lower
        .strip_prefix("https://")
        .or_else(|| lower.strip_prefix("http://"))
        .unwrap_or(&lower);
    let host = rest.split(['/', '?']).next().unwrap_or("");
    host.rsplit_once('@').map_or(host, |(_, h)| h).to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_components() {
        let u =
            parse("S3://my-bucket/a%20b/c+d?endpoint=http%3A%2F%2Fx%3A9000&region=eu+west&flag")
                .unwrap();
        assert_eq!(u.scheme, "s3");
        assert_eq!(u.host, "my-bucket");
        assert_eq!(u.path, "/a b/c+d");
        assert_eq!(u.query_get("endpoint"), Some("http://x:9000"));
        assert_eq!(u.query_get("region"), Some("eu west"));
        assert_eq!(u.query_get("flag"), Some(""));
        assert_eq!(u.query_get("nope"), None);

        let u = parse("file:///var/backups/app%2Fdb#frag").unwrap();
        assert_eq!(
            (u.host.as_str(), u.path.as_str()),
            ("", "/var/backups/app/db")
        );
        let u = parse("file:/var/backups").unwrap();
        assert_eq!((u.host.as_str(), u.path.as_str()), ("", "/var/backups"));
        let u = parse("s3://key:secret@bucket/p").unwrap();
        assert_eq!(u.host, "bucket");

        assert!(parse("no-scheme").is_err());
        assert!(parse("1x://a").is_err());
        let e = parse("s3://b/%zz").unwrap_err();
        assert!(e.problem.contains("%zz"), "{e:?}");
        assert!(parse("s3://b/%ff").is_err());
        assert!(parse("s3://b/%4").is_err());
    }

    #[test]
    fn url_detection_and_redaction() {
        assert!(looks_like_url("s3://b"));
        assert!(looks_like_url("file:///x"));
        assert!(!looks_like_url("/var/x"));
        assert!(!looks_like_url("C:\\x"));
        assert!(!looks_like_url("://x"));
        assert_eq!(
            redact("s3://AK:SECRET@bucket/p?x=1"),
            "s3://<redacted>@bucket/p?x=1"
        );
        assert_eq!(redact("s3://bucket/p@x"), "s3://bucket/p@x");
        assert_eq!(redact("/plain/path"), "/plain/path");
        assert_eq!(
            redact("https://user:pass@host/"),
            "https://<redacted>@host/"
        );
        // A URL inside the query, plain or percent-encoded, and secret parameters.
        for url in [
            "s3://b/p?endpoint=https://user:pass@host:9000&region=x",
            "s3://b/p?endpoint=https%3A%2F%2Fuser%3Apass%40host%3A9000&region=x",
            "s3://b/p?secret-access-key=pass&X-Amz-Signature=pass&token=pass&region=x",
        ] {
            let shown = redact(url);
            assert!(!shown.contains("pass"), "{shown}");
            assert!(shown.contains("region=x"), "{shown}");
        }
        assert_eq!(
            redact("s3://b/p?endpoint=http://h:9000&x=1"),
            "s3://b/p?endpoint=http://h:9000&x=1"
        );
    }

    #[test]
    fn endpoint_userinfo_is_dropped() {
        assert_eq!(
            strip_userinfo("https://user:pass@host:9000/x"),
            "https://host:9000/x"
        );
        assert_eq!(strip_userinfo("https://host/a@b"), "https://host/a@b");
        assert_eq!(strip_userinfo("host:9000"), "host:9000");
    }

    #[test]
    fn go_path_clean() {
        for (input, want) in [
            ("", "."),
            ("/", "/"),
            ("a/b/../c/", "a/c"),
            ("/a//b/./c", "/a/b/c"),
            ("/../a", "/a"),
            ("../a", "../a"),
            ("a/..", "."),
        ] {
            assert_eq!(clean_path(input), want, "{input}");
        }
        assert_eq!(s3_key_prefix(""), "");
        assert_eq!(s3_key_prefix("/"), "");
        assert_eq!(s3_key_prefix("/backups//db/"), "backups/db");
    }

    #[test]
    fn s3_hosts() {
        let h = |host: &str| parse_s3_host(host);
        assert_eq!(h("my-bucket").bucket.as_deref(), Some("my-bucket"));
        let minio = h("my-bucket.localhost:9000");
        assert_eq!(minio.bucket.as_deref(), Some("my-bucket"));
        assert_eq!(minio.endpoint.as_deref(), Some("http://localhost:9000"));
        assert!(minio.force_path_style);
        let ip = h("127.0.0.1:9000");
        assert_eq!(ip.bucket, None);
        assert_eq!(ip.endpoint.as_deref(), Some("http://127.0.0.1:9000"));
        let b2 = h("bkt.s3.us-west-002.backblazeb2.com");
        assert_eq!(b2.bucket.as_deref(), Some("bkt"));
        assert_eq!(b2.region.as_deref(), Some("us-west-002"));
        assert_eq!(
            b2.endpoint.as_deref(),
            Some("https://s3.us-west-002.backblazeb2.com")
        );
        let d = h("bkt.nyc3.digitaloceanspaces.com");
        assert_eq!(d.bucket.as_deref(), Some("bkt"));
        assert_eq!(d.region.as_deref(), Some("nyc3"));
        let f = h("bkt.s3.filebase.com");
        assert_eq!(f.bucket.as_deref(), Some("bkt"));
        assert_eq!(f.endpoint.as_deref(), Some("https://s3.filebase.com"));
        let s = h("bkt.s3.fr-par.scw.cloud");
        assert_eq!(
            (s.bucket.as_deref(), s.region.as_deref()),
            (Some("bkt"), Some("fr-par"))
        );
        let a = h("my.bucket.s3.eu-west-1.amazonaws.com");
        assert_eq!(
            (a.bucket.as_deref(), a.region.as_deref()),
            (Some("my.bucket"), Some("eu-west-1"))
        );
        let a = h("bkt.s3-eu-west-1.amazonaws.com");
        assert_eq!(
            (a.bucket.as_deref(), a.region.as_deref()),
            (Some("bkt"), Some("eu-west-1"))
        );
        let a = h("bkt.s3.amazonaws.com");
        assert_eq!((a.bucket.as_deref(), a.region), (Some("bkt"), None));
    }

    #[test]
    fn endpoint_schemes() {
        assert_eq!(ensure_endpoint_scheme("http://x"), "http://x");
        assert_eq!(ensure_endpoint_scheme("HTTPS://x"), "HTTPS://x");
        assert_eq!(
            ensure_endpoint_scheme("127.0.0.1:9000"),
            "http://127.0.0.1:9000"
        );
        assert_eq!(
            ensure_endpoint_scheme("localhost:9000"),
            "http://localhost:9000"
        );
        assert_eq!(ensure_endpoint_scheme("172.20.0.5"), "http://172.20.0.5");
        assert_eq!(ensure_endpoint_scheme("172.40.0.5"), "https://172.40.0.5");
        assert_eq!(ensure_endpoint_scheme("minio.local"), "http://minio.local");
        assert_eq!(
            ensure_endpoint_scheme("s3.example.com"),
            "https://s3.example.com"
        );
        assert_eq!(
            endpoint_host("https://u@Fly.Storage.Tigris.dev/x"),
            "fly.storage.tigris.dev"
        );
    }
}
