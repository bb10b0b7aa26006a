//! The pure parts of service-account tokens (key files, the signed assertion) and the
//! exchange itself against a token endpoint on 127.0.0.1.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rsa::{KeyPair as RsaGen, KeySize};
use aws_lc_rs::signature::{KeyPair, RSA_PKCS1_2048_8192_SHA256, UnparsedPublicKey};

use super::*;

/// A fresh RSA key as a PEM PKCS#8 block, and its public key (PKCS#1 DER).
fn key_pem() -> (String, Vec<u8>) {
    let key = RsaGen::generate(KeySize::Rsa2048).unwrap();
    let der = AsDer::<aws_lc_rs::encoding::Pkcs8V1Der>::as_der(&key).unwrap();
    let b64 = aws_smithy_types::base64::encode(der.as_ref());
    let mut pem = String::from("-----BEGIN PRIVATE KEY-----\n");
    for line in b64.as_bytes().chunks(64) {
        pem.push_str(std::str::from_utf8(line).unwrap());
        pem.push('\n');
    }
    pem.push_str("-----END PRIVATE KEY-----\n");
    (pem, key.public_key().as_ref().to_vec())
}

fn key_file(pem: &str, token_uri: &str) -> String {
    serde_json::json!({
        "type": "service_account",
        "project_id": "p",
        "private_key_id": "kid-1",
        "private_key": pem,
        "client_email": "replica@p.iam.gserviceaccount.com",
        "token_uri": token_uri,
    })
    .to_string()
}

fn unbase64url(s: &str) -> Vec<u8> {
    let mut std: String = s
        .chars()
        .map(|c| match c {
            '-' => '+',
            '_' => '/',
            c => c,
        })
        .collect();
    while !std.len().is_multiple_of(4) {
        std.push('=');
    }
    aws_smithy_types::base64::decode(std).unwrap()
}

#[test]
fn the_assertion_is_an_rs256_jwt_with_googles_claims() {
    let (pem, public) = key_pem();
    let sa = ServiceAccount::parse(&key_file(&pem, "https://t.example/token"), "sa.json").unwrap();
    let jwt = sa.assertion(1_800_000_000).unwrap();
    let parts: Vec<&str> = jwt.split('.').collect();
    assert_eq!(parts.len(), 3);
    assert!(!jwt.contains('=') && !jwt.contains('+') && !jwt.contains('/'));
    let header: serde_json::Value = serde_json::from_slice(&unbase64url(parts[0])).unwrap();
    assert_eq!(header["alg"], "RS256");
    assert_eq!(header["kid"], "kid-1");
    let claims: serde_json::Value = serde_json::from_slice(&unbase64url(parts[1])).unwrap();
    assert_eq!(claims["iss"], "replica@p.iam.gserviceaccount.com");
    assert_eq!(claims["aud"], "https://t.example/token");
    assert_eq!(claims["scope"], SCOPE);
    assert_eq!(
        (claims["iat"].as_u64(), claims["exp"].as_u64()),
        (Some(1_800_000_000), Some(1_800_003_600))
    );
    let signed = format!("{}.{}", parts[0], parts[1]);
    UnparsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, &public)
        .verify(signed.as_bytes(), &unbase64url(parts[2]))
        .expect("a valid RS256 signature");
    assert!(!format!("{sa:?}").contains("PRIVATE"), "no key in Debug");
}

#[test]
fn key_files_that_cannot_be_used_say_why() {
    let e = ServiceAccount::parse("{not json", "sa.json").unwrap_err();
    assert!(matches!(e, KeyFileError::Json { .. }), "{e}");
    let e = ServiceAccount::parse(r#"{"type":"authorized_user"}"#, "sa.json").unwrap_err();
    assert!(e.to_string().contains("service_account"), "{e}");
    let bad = key_file(
        "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
        "",
    );
    let e = ServiceAccount::parse(&bad, "sa.json").unwrap_err();
    assert!(matches!(e, KeyFileError::BadKey { .. }), "{e}");
    assert!(!e.to_string().contains("AAAA"));
    let e = ServiceAccount::load(Path::new("/nonexistent/sa.json")).unwrap_err();
    assert!(matches!(e, KeyFileError::Read { .. }), "{e}");
    // No token_uri: Google's.
    let (pem, _) = key_pem();
    let sa = ServiceAccount::parse(&key_file(&pem, ""), "sa.json").unwrap();
    assert_eq!(sa.token_uri, DEFAULT_TOKEN_URI);
}

/// A token endpoint on 127.0.0.1 answering every request with `status` and `body`;
/// it keeps the request bodies it got.
fn token_server(status: u16, body: &'static str) -> (String, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let uri = format!("http://{}/token", listener.local_addr().unwrap());
    let got = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&got);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut len = 0usize;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    len = v.trim().parse().unwrap_or(0);
                }
            }
            let mut req = vec![0u8; len];
            let _ = reader.read_exact(&mut req);
            seen.lock()
                .unwrap()
                .push(String::from_utf8_lossy(&req).into_owned());
            let _ = write!(
                stream,
                "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    (uri, got)
}

#[tokio::test]
async fn tokens_are_exchanged_once_and_cached_until_near_expiry() {
    let (uri, got) = token_server(
        200,
        r#"{"access_token":"ya29.TOKEN","expires_in":3599,"token_type":"Bearer"}"#,
    );
    let (pem, _) = key_pem();
    let source = TokenSource::new(ServiceAccount::parse(&key_file(&pem, &uri), "sa.json").unwrap());
    let http = reqwest::Client::new();
    assert_eq!(source.token(&http).await.unwrap(), "ya29.TOKEN");
    assert_eq!(source.token(&http).await.unwrap(), "ya29.TOKEN");
    let bodies = got.lock().unwrap().clone();
    assert_eq!(bodies.len(), 1, "cached: {bodies:?}");
    assert!(
        bodies[0].starts_with(
            "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer&assertion=ey"
        ),
        "{}",
        bodies[0]
    );
    assert!(!format!("{source:?}").contains("ya29"), "no token in Debug");
    source.forget().await;
    source.token(&http).await.unwrap();
    assert_eq!(got.lock().unwrap().len(), 2, "asked again once forgotten");
}

#[tokio::test]
async fn a_refused_key_and_a_dead_endpoint_are_named() {
    let (uri, _) = token_server(
        400,
        r#"{"error":"invalid_grant","error_description":"Invalid JWT Signature."}"#,
    );
    let (pem, _) = key_pem();
    let http = reqwest::Client::new();
    let source = TokenSource::new(ServiceAccount::parse(&key_file(&pem, &uri), "sa.json").unwrap());
    let e = source.token(&http).await.unwrap_err();
    assert!(matches!(e, TokenError::Refused { status: 400, .. }), "{e}");
    assert!(
        e.to_string()
            .contains("invalid_grant: Invalid JWT Signature."),
        "{e}"
    );

    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dead = format!("http://127.0.0.1:{port}/token");
    let source =
        TokenSource::new(ServiceAccount::parse(&key_file(&pem, &dead), "sa.json").unwrap());
    let e = source.token(&http).await.unwrap_err();
    assert!(matches!(e, TokenError::Unreachable { .. }), "{e}");
}
