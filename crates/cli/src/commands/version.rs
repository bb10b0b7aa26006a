//! `tideline version`: the program version and, with `-verbose`, which replicas it
//! reads and writes.

/// `version` flags.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Also print the replica format and compatibility
    #[arg(long)]
    pub verbose: bool,
}

/// Prints the version.
pub fn run(args: &Args) {
    println!("tideline {}", env!("CARGO_PKG_VERSION"));
    if args.verbose {
        println!("replica format: LTX v3 (block-compressed pages; legacy frame pages read too)");
        println!("compatible with Litestream 0.5 replicas (file and S3 layouts)");
    }
}
