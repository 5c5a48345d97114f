//! The final-sync benchmark (part of `make bench`, or alone with `FERRY_BENCH_ONLY=final`): a tree of
//! N files of 100 bytes in N/1,000 folders (`FERRY_BENCH_FILES`, default 100,000; the figure is
//! 1,000,000), synced once, then per round a change of 0%, 0.1% or 10% of the files (new content, same
//! size, new mtime) and two timed final syncs of that same change into two targets in the same state:
//!
//! * **delta**: `ferry mover send --final --manifest-key K` (a manifest left by the stage before it);
//! * **rsync**: rsync's own pass, `rsync <Ferry's options>` to an rsync daemon on loopback (no TLS).
//!
//! After each timed delta pass an untimed stage puts a manifest back (the final sync consumes it). Also
//! a compressible-data figure: 64 MiB of text-like bytes through a 16 MiB/s `--bwlimit`, with and
//! without `--compress`. Prints Markdown tables of medians (`FERRY_BENCH_RUNS` rounds, default 3).

use std::fs;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use super::{FERRY, Method, median, reset};

const KEY: &str = "bench-volume";

fn file_path(root: &Path, index: u64) -> std::path::PathBuf {
    root.join(format!("d{:04}", index / 1000))
        .join(format!("f{index:07}"))
}

fn make_tree(root: &Path, count: u64) {
    for dir in 0..count.div_ceil(1000) {
        fs::create_dir_all(root.join(format!("d{dir:04}"))).unwrap();
    }
    for index in 0..count {
        fs::write(file_path(root, index), format!("{index:0100}")).unwrap();
    }
}

/// Rewrites every `step`-th file (from an offset that moves each round) with new bytes of the same size.
fn change(root: &Path, count: u64, step: u64, round: u64) -> u64 {
    let mut changed = 0;
    for index in (round % step..count).step_by(step as usize) {
        fs::write(file_path(root, index), format!("{:0100}", index * 7 + round + 1)).unwrap();
        changed += 1;
    }
    changed
}

/// `ferry mover send` to `address` with `extra`; returns the wall time and the stats record.
fn ferry_send(address: &str, certs: &Path, source: &Path, extra: &[&str]) -> (Duration, serde_json::Value) {
    let started = Instant::now();
    let output = Command::new(FERRY)
        .env("RUST_LOG", "warn")
        .args([
            "mover",
            "send",
            "--retries",
            "0",
            "--connect",
            address,
            "--source",
        ])
        .arg(source)
        .arg("--certs-dir")
        .arg(certs.join("client"))
        .args(extra)
        .output()
        .expect("spawn ferry");
    let took = started.elapsed();
    assert!(output.status.success(), "ferry send failed: {output:?}");
    let records: Vec<serde_json::Value> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| serde_json::from_str(line).ok())
        .collect();
    let mode = records
        .iter()
        .find(|r| r["type"] == "mode")
        .cloned()
        .unwrap_or_default();
    let stats = records
        .iter()
        .rev()
        .find(|r| r["type"] == "stats")
        .cloned()
        .unwrap_or_default();
    (took, serde_json::json!({"mode": mode, "stats": stats}))
}

fn receiver_address(method: &Method) -> &str {
    match method {
        Method::Ferry { address, .. } => address,
        Method::RsyncDaemon { .. } => unreachable!("a Ferry receiver"),
    }
}

pub fn run(work: &Path, certs: &Path, rounds: u64) {
    let count: u64 = std::env::var("FERRY_BENCH_FILES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(100_000);
    let source = work.join("final-source");
    let started = Instant::now();
    make_tree(&source, count);
    eprintln!(
        "final sync: {count} files of 100 bytes built in {:.1}s",
        started.elapsed().as_secs_f64()
    );
    let (delta_target, rsync_target) = (work.join("final-delta"), work.join("final-rsync"));
    reset(&delta_target);
    reset(&rsync_target);
    let ferry = Method::ferry(&delta_target, certs, "0");
    let rsync = Method::rsync_daemon(&rsync_target, work, None);
    let address = receiver_address(&ferry).to_string();
    let stage = |label: &str| {
        let (took, record) = ferry_send(&address, certs, &source, &["--manifest-key", KEY]);
        eprintln!("  stage ({label}): {:.2}s {}", took.as_secs_f64(), record["mode"]);
    };
    stage("first copy");
    let took = rsync.sync(&source);
    eprintln!("  rsync first copy: {:.2}s", took.as_secs_f64());
    let fractions: [(&str, u64); 3] = [("0%", 0), ("0.1%", 1000), ("10%", 10)];
    println!();
    println!(
        "final sync of {count} files of 100 bytes in {} folders; median of {rounds} rounds",
        count.div_ceil(1000)
    );
    println!("| changed | files changed | ferry delta final | rsync final | delta / rsync | rsync / delta |");
    println!("|---|---|---|---|---|---|");
    let mut round_seed = 0;
    for (label, step) in fractions {
        let (mut delta, mut plain, mut changed) = (Vec::new(), Vec::new(), 0);
        for round in 0..rounds {
            round_seed += 1;
            changed = if step == 0 {
                0
            } else {
                change(&source, count, step, round_seed)
            };
            // Alternate which goes first, so cache effects of the change fall on both alike.
            let time_delta = || {
                let flushed = Command::new("sync").status().expect("sync");
                assert!(flushed.success());
                let (took, record) =
                    ferry_send(&address, certs, &source, &["--manifest-key", KEY, "--final"]);
                assert_eq!(record["mode"]["mode"], "delta", "{record}");
                eprintln!(
                    "  {label} round {round} delta: {:.2}s {}",
                    took.as_secs_f64(),
                    record["mode"]
                );
                took.as_secs_f64()
            };
            let time_rsync = || {
                let took = rsync.sync(&source).as_secs_f64();
                eprintln!("  {label} round {round} rsync: {took:.2}s");
                took
            };
            if round % 2 == 0 {
                delta.push(time_delta());
                plain.push(time_rsync());
            } else {
                plain.push(time_rsync());
                delta.push(time_delta());
            }
            stage("manifest back");
        }
        let (d, r) = (median(&delta), median(&plain));
        println!(
            "| {label} | {changed} | {d:.2}s | {r:.2}s | {:.2}x | {:.2}x |",
            d / r,
            r / d
        );
    }
    drop(ferry);
    drop(rsync);
    for dir in [&source, &delta_target, &rsync_target] {
        let _removed = fs::remove_dir_all(dir);
    }
    compress(work, certs, rounds);
}

/// 64 MiB of compressible bytes (words from a small vocabulary) through a bandwidth limit, with and
/// without `--compress`.
fn compress(work: &Path, certs: &Path, rounds: u64) {
    let source = work.join("compress-source");
    fs::create_dir_all(&source).unwrap();
    let words = [
        "migration",
        "volume",
        "ferry",
        "cluster",
        "rsync",
        "manifest",
        "delta",
        "stage",
    ];
    let mut text = String::with_capacity(16 << 20);
    let mut state = 88_172_645_463_325_252u64;
    while text.len() < (16 << 20) {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        text.push_str(words[(state % words.len() as u64) as usize]);
        text.push(if state.is_multiple_of(11) { '\n' } else { ' ' });
    }
    for file in 0..4 {
        fs::write(source.join(format!("log-{file}.txt")), format!("{file}{text}")).unwrap();
    }
    let target = work.join("compress-target");
    println!();
    println!(
        "64 MiB of text-like data (4 files), --bwlimit 16384 KiB/s, full copy; median of {rounds} rounds"
    );
    println!("| ferry | time | bytes sent |");
    println!("|---|---|---|");
    for (label, extra) in [("plain", &[][..]), ("--compress (zstd)", &["--compress"][..])] {
        let (mut times, mut sent) = (Vec::new(), 0);
        for _ in 0..rounds {
            reset(&target);
            let ferry = Method::ferry(&target, certs, "1");
            let args: Vec<&str> = ["--bwlimit", "16384"].iter().chain(extra).copied().collect();
            let (took, record) = ferry_send(receiver_address(&ferry), certs, &source, &args);
            times.push(took.as_secs_f64());
            sent = record["stats"]["bytesSent"].as_u64().unwrap_or(0);
        }
        println!(
            "| {label} | {:.2}s | {:.1} MiB |",
            median(&times),
            sent as f64 / (1 << 20) as f64
        );
    }
    let _removed = fs::remove_dir_all(&source);
    let _removed = fs::remove_dir_all(&target);
}
