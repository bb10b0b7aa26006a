//! The idle group: what a replicator costs while the database it watches is not
//! written. Litestream and tideline each watch one small database on a folder replica
//! and one on an S3 replica (each S3 replica on its own server, so requests are counted
//! per tool), all four at once in one window, the application's connection held open
//! (a desktop app or a server keeps it open all day). After the first copy and a
//! settling period (past the first compaction window), the window measures each
//! process's CPU seconds and, for S3, the requests it made.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result};
use tideline_testkit::S3Server;

use crate::{Args, Proc, REPLICATORS, Replicator, fresh, median_spread, s3, wait_first_copy};

/// One window's figures for one replicator.
#[derive(Debug, Clone, Copy, Default)]
pub struct Idle {
    pub folder_cpu_s: f64,
    pub s3_cpu_s: f64,
    pub s3_requests_per_min: f64,
}

/// Runs `a.rounds` idle windows of `a.idle_seconds`, both tools at once in each.
pub fn run(a: &Args, dir: &Path) -> Result<()> {
    let mut out: Vec<Vec<Idle>> = vec![Vec::new(), Vec::new()];
    for round in 0..a.rounds {
        eprintln!("round {}: idle, litestream and tideline at once", round + 1);
        for (i, idle) in window(a, dir, &REPLICATORS, round)?.into_iter().enumerate() {
            out[i].push(idle);
        }
    }
    let secs = a.idle_seconds as f64;
    println!(
        "\nIdle ({} round(s) of {} s, the application's connection open, after {} s to settle); median (spread)\n",
        a.rounds,
        a.idle_seconds,
        a.idle_settle.as_secs()
    );
    println!("| replica | figure | litestream | tideline |");
    println!("|---|---|---:|---:|");
    let cells = |f: &dyn Fn(&Idle) -> f64, digits: usize| -> Vec<String> {
        out.iter()
            .map(|v| {
                let xs: Vec<f64> = v.iter().map(f).collect();
                median_spread(&xs, digits)
            })
            .collect()
    };
    type Row<'a> = (&'a str, &'a str, Box<dyn Fn(&Idle) -> f64>, usize);
    let rows: [Row; 5] = [
        ("folder", "CPU s", Box::new(|i| i.folder_cpu_s), 3),
        (
            "folder",
            "% of a core",
            Box::new(move |i| i.folder_cpu_s / secs * 100.0),
            3,
        ),
        ("S3", "CPU s", Box::new(|i| i.s3_cpu_s), 3),
        (
            "S3",
            "% of a core",
            Box::new(move |i| i.s3_cpu_s / secs * 100.0),
            3,
        ),
        (
            "S3",
            "requests / minute",
            Box::new(|i| i.s3_requests_per_min),
            1,
        ),
    ];
    for (replica, figure, f, digits) in rows {
        let c = cells(&*f, digits);
        println!("| {replica} | {figure} | {} | {} |", c[0], c[1]);
    }
    Ok(())
}

/// One window: every tool on a folder and an S3 replica at once.
fn window(a: &Args, dir: &Path, tools: &[Replicator], round: usize) -> Result<Vec<Idle>> {
    let mut running = Vec::new();
    for &r in tools {
        let bin = a.bin(r).context("the idle group needs a replicator")?;
        let (db, replica, app) = fresh(dir, &format!("idle-folder-{}-{round}", r.name()))?;
        let folder = Proc::start(bin, &db, &replica, &db.with_file_name("replicate.log"))?;
        wait_first_copy(&replica)?;

        let prefix = format!("idle-s3-{}-{round}-{}", r.name(), s3::unique());
        let server = S3Server::start(&dir.join(format!("{prefix}-server")))?;
        let (s3_db, _s3_replica, s3_app) = fresh(dir, &prefix)?;
        let cfg = s3::config(dir, &s3_db, &server, &prefix)?;
        let on_s3 = Proc::start_config(bin, &cfg, &dir.join(format!("{prefix}.log")))?;
        s3::wait_first_upload(&server, &prefix, r)?;
        running.push((folder, on_s3, server, app, s3_app));
    }
    std::thread::sleep(a.idle_settle);
    let before: Vec<(f64, f64, u64)> = running
        .iter()
        .map(|(f, s, server, ..)| (f.usage().0, s.usage().0, server.total_requests()))
        .collect();
    let window = Duration::from_secs(a.idle_seconds);
    std::thread::sleep(window);
    let mut out = Vec::new();
    for ((folder, on_s3, server, app, s3_app), (f0, s0, r0)) in running.into_iter().zip(before) {
        out.push(Idle {
            folder_cpu_s: folder.usage().0 - f0,
            s3_cpu_s: on_s3.usage().0 - s0,
            s3_requests_per_min: (server.total_requests() - r0) as f64 * 60.0
                / window.as_secs_f64(),
        });
        folder.stop();
        on_s3.stop();
        drop((server, app, s3_app));
    }
    Ok(out)
}
