//! Runs the test S3 server (s3s-fs on 127.0.0.1, SigV4 with the testkit's keys) on a
//! directory until stdin closes, printing its endpoint: for trying tideline and
//! Litestream against a real S3 API by hand (`cargo run -p tideline-testkit --example
//! s3-server -- DIR`).
use std::io::Read;

fn main() -> std::io::Result<()> {
    let dir = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "s3-server-data".into());
    let server = tideline_testkit::S3Server::start(std::path::Path::new(&dir))?;
    println!(
        "endpoint {} bucket {} access key {} secret key {}",
        server.endpoint(),
        tideline_testkit::BUCKET,
        tideline_testkit::ACCESS_KEY,
        tideline_testkit::SECRET_KEY
    );
    // Serve until stdin closes (Ctrl-D, or the parent's pipe goes away).
    let _ = std::io::stdin().read_to_end(&mut Vec::new());
    Ok(())
}
