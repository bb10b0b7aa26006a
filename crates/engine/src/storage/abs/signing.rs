//! Shared Key signing of Blob service requests, as pure functions: the canonical
//! string-to-sign Azure's spec defines, its HMAC-SHA256, and the URL encoding both
//! the request and the canonical form rely on.

use std::collections::BTreeMap;

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Azure's Shared Key string-to-sign for the Blob service (versions since
/// 2015-02-21): the verb, eleven standard headers (`Content-Length` empty when 0), the
/// `x-ms-*` headers lowercased and sorted, and the canonicalized resource:
/// `/<account><escaped path>`, then each query parameter, lowercased and sorted, as
/// `\n<name>:<values, sorted, comma-joined>` (values unescaped). `path` is the request
/// URL's escaped path, including the endpoint's own path (`/devstoreaccount1` on
/// Azurite, hence the account twice there).
pub(super) fn string_to_sign(
    method: &str,
    account: &str,
    path: &str,
    query: &[(&str, &str)],
    headers: &[(&str, &str)],
) -> String {
    let get = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map_or("", |(_, v)| v.trim())
    };
    let content_length = match get("Content-Length") {
        "0" => "",
        other => other,
    };
    let mut out = format!("{method}\n");
    for value in [
        get("Content-Encoding"),
        get("Content-Language"),
        content_length,
        get("Content-MD5"),
        get("Content-Type"),
        get("Date"),
        get("If-Modified-Since"),
        get("If-Match"),
        get("If-None-Match"),
        get("If-Unmodified-Since"),
        get("Range"),
    ] {
        out.push_str(value);
        out.push('\n');
    }
    let mut ms: Vec<(String, &str)> = headers
        .iter()
        .map(|(n, v)| (n.to_ascii_lowercase(), v.trim()))
        .filter(|(n, _)| n.starts_with("x-ms-"))
        .collect();
    ms.sort();
    for (name, value) in ms {
        out.push_str(&name);
        out.push(':');
        out.push_str(value);
        out.push('\n');
    }
    out.push('/');
    out.push_str(account);
    out.push_str(if path.is_empty() { "/" } else { path });
    let mut params: BTreeMap<String, Vec<&str>> = BTreeMap::new();
    for (name, value) in query {
        params
            .entry(name.to_ascii_lowercase())
            .or_default()
            .push(value);
    }
    for (name, mut values) in params {
        values.sort_unstable();
        out.push('\n');
        out.push_str(&name);
        out.push(':');
        out.push_str(&values.join(","));
    }
    out
}

/// The base64 HMAC-SHA256 of `string_to_sign` with the decoded account key.
pub(super) fn sign(key: &[u8], string_to_sign: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(string_to_sign.as_bytes());
    aws_smithy_types::base64::encode(mac.finalize().into_bytes())
}

/// `scheme://host[:port]` and the endpoint's own path (no trailing slash).
pub(super) fn split_endpoint(endpoint: &str) -> (String, String) {
    let endpoint = endpoint.trim_end_matches('/');
    let after = endpoint.find("://").map_or(0, |i| i + 3);
    match endpoint[after..].find('/') {
        Some(i) => (
            endpoint[..after + i].to_owned(),
            endpoint[after + i..].to_owned(),
        ),
        None => (endpoint.to_owned(), String::new()),
    }
}

/// Percent-encodes one path segment or query value (RFC 3986 unreserved characters
/// stay).
pub(super) fn encode_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Azurite's well-known development account key (public, from Microsoft's docs).
    const DEV_KEY: &str =
        "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";
    const DATE: &str = "Thu, 03 Dec 2026 08:00:00 GMT";

    fn dev_key() -> Vec<u8> {
        aws_smithy_types::base64::decode(DEV_KEY).unwrap()
    }

    #[test]
    fn a_put_blob_is_canonicalized_per_azures_shared_key_rules() {
        // Standard headers in their fixed slots (Content-Type, Content-Length), x-ms-*
        // lowercased and sorted, the account before the path (twice on Azurite).
        let sts = string_to_sign(
            "PUT",
            "devstoreaccount1",
            "/devstoreaccount1/c/ltx/0/0000000000000001-0000000000000001.ltx",
            &[],
            &[
                ("Content-Length", "11"),
                ("x-ms-version", "2021-08-06"),
                ("X-MS-Date", DATE),
                ("x-ms-blob-type", "BlockBlob"),
            ],
        );
        assert_eq!(
            sts,
            "PUT\n\n\n11\n\n\n\n\n\n\n\n\nx-ms-blob-type:BlockBlob\nx-ms-date:Thu, 03 Dec 2026 08:00:00 GMT\n\
             x-ms-version:2021-08-06\n/devstoreaccount1/devstoreaccount1/c/ltx/0/0000000000000001-0000000000000001.ltx"
        );
        // The signature, checked against Python's hmac/hashlib/base64 on the same text.
        assert_eq!(
            sign(&dev_key(), &sts),
            "6FoKFdF39WHmch7ljhYkPV2Mv5AQGx6XTiRpYfGXwjc="
        );
    }

    #[test]
    fn a_listing_signs_sorted_unescaped_query_parameters_and_no_zero_length() {
        let sts = string_to_sign(
            "GET",
            "myaccount",
            "/mycontainer",
            &[
                ("restype", "container"),
                ("comp", "list"),
                ("prefix", "db/ltx/0/"),
                ("include", "metadata"),
            ],
            &[
                ("Content-Length", "0"),
                ("x-ms-date", DATE),
                ("x-ms-version", "2021-08-06"),
            ],
        );
        assert_eq!(
            sts,
            "GET\n\n\n\n\n\n\n\n\n\n\n\nx-ms-date:Thu, 03 Dec 2026 08:00:00 GMT\nx-ms-version:2021-08-06\n\
             /myaccount/mycontainer\ncomp:list\ninclude:metadata\nprefix:db/ltx/0/\nrestype:container"
        );
        assert_eq!(
            sign(&dev_key(), &sts),
            "dLGVTq8NNmKaYkBRWx175xq0emqIgwcBU5qI2XieWNk="
        );
        // A ranged read puts Range in its slot, the last of the eleven standard ones.
        let ranged = string_to_sign("GET", "a", "/c/b", &[], &[("Range", "bytes=0-99")]);
        assert_eq!(ranged, "GET\n\n\n\n\n\n\n\n\n\n\nbytes=0-99\n/a/c/b");
    }

    #[test]
    fn endpoints_split_into_origin_and_path() {
        assert_eq!(
            split_endpoint("http://127.0.0.1:10000/devstoreaccount1/"),
            ("http://127.0.0.1:10000".into(), "/devstoreaccount1".into())
        );
        assert_eq!(
            split_endpoint("https://acct.blob.core.windows.net"),
            ("https://acct.blob.core.windows.net".into(), String::new())
        );
        assert_eq!(encode_segment("a b+c=="), "a%20b%2Bc%3D%3D");
    }
}
