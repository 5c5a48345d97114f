//! `cargo bench --bench mover`: the Ferry mover against plain rsync to an rsync daemon over loopback and
//! against rsync through stunnel (both ends on loopback, as MTC/VolSync do), on the same machine in one
//! run, with the same rsync options. Scenarios: large files (1 GiB), many small files (100,000 x 4 KiB),
//! and re-stages of the small tree with nothing changed and with 1% of files changed.
//! Ferry runs twice: with its default `--parallel` (one stream per CPU) and with one stream, each with a
//! `--manifest-key` as the controller's stages run it, so its re-stages are delta passes.
//! `FERRY_BENCH_SCALE=0.1` shrinks every size for a quick run. Prints a Markdown table of times and
//! ratios (rsync time / Ferry time: above 1 means Ferry is faster). Then the final-sync benchmark
//! (delta passes against rsync's own final pass, and compression: see mover_final.rs);
//! `FERRY_BENCH_ONLY=final` runs only that, `FERRY_BENCH_ONLY=transport` only the table above.

#[path = "mover_final.rs"]
mod mover_final;

use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const FERRY: &str = env!("CARGO_BIN_EXE_ferry");

/// The options `ferry mover send` gives rsync (src/mover/rsync.rs), so every method does the same work;
/// the partial dir and timeout are the ones the mover adds by default.
fn rsync_options() -> Vec<&'static str> {
    let mut options = ferry::mover::ARCHIVE_OPTIONS.to_vec();
    options.extend(["--partial-dir=.ferry-partial", "--timeout=300"]);
    options
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn wait_for_port(port: u16) {
    let start = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "port {port} never opened"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A background process killed on drop.
struct Background(Child);

impl Drop for Background {
    fn drop(&mut self) {
        let _killed = self.0.kill();
        let _waited = self.0.wait();
    }
}

fn spawn(command: &mut Command) -> Background {
    Background(
        command
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn"),
    )
}

fn run_timed(command: &mut Command) -> Duration {
    let start = Instant::now();
    let status = command
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .status()
        .expect("spawn");
    let elapsed = start.elapsed();
    assert!(status.success(), "{command:?} failed with {status}");
    elapsed
}

/// How to reach a destination folder: each method keeps its servers running across its runs.
enum Method {
    Ferry {
        address: String,
        client_certs: PathBuf,
        /// `--parallel N` (0: the default, one stream per CPU).
        parallel: &'static str,
        _receiver: Background,
    },
    RsyncDaemon {
        url: String,
        _daemon: Background,
        _tunnels: Vec<Background>,
    },
}

impl Method {
    fn ferry(target: &Path, certs: &Path, parallel: &'static str) -> Method {
        let mut child = Command::new(FERRY)
            .args(["mover", "receive", "--listen", "127.0.0.1:0", "--root"])
            .arg(target)
            .arg("--certs-dir")
            .arg(certs.join("server"))
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let address = line.split('"').nth(7).expect("listening line").to_string();
        Method::Ferry {
            address,
            client_certs: certs.join("client"),
            parallel,
            _receiver: Background(child),
        }
    }

    fn rsync_daemon(target: &Path, work: &Path, stunnel_certs: Option<&Path>) -> Method {
        let port = free_port();
        let conf = work.join(format!("rsyncd-{port}.conf"));
        fs::write(
            &conf,
            format!(
                "use chroot = no\nnumeric ids = yes\nuid = 0\ngid = 0\n[m]\n    path = {}\n    read only = no\n",
                target.display()
            ),
        )
        .unwrap();
        let daemon = spawn(
            Command::new("rsync")
                .args(["--daemon", "--no-detach", "--address=127.0.0.1"])
                .arg(format!("--port={port}"))
                .arg(format!("--config={}", conf.display())),
        );
        wait_for_port(port);
        let Some(certs) = stunnel_certs else {
            return Method::RsyncDaemon {
                url: format!("rsync://127.0.0.1:{port}/m/"),
                _daemon: daemon,
                _tunnels: vec![],
            };
        };
        // stunnel on both ends, like MTC's transfer pods: client stunnel -> TLS -> server stunnel -> rsyncd.
        let (server_port, client_port) = (free_port(), free_port());
        let server_conf = work.join(format!("stunnel-server-{port}.conf"));
        fs::write(
            &server_conf,
            format!(
                "foreground = yes\npid =\n[rsync]\naccept = 127.0.0.1:{server_port}\nconnect = 127.0.0.1:{port}\n\
                 cert = {0}/server/tls.crt\nkey = {0}/server/tls.key\nCAfile = {0}/server/ca.crt\nverifyChain = yes\n",
                certs.display()
            ),
        )
        .unwrap();
        let client_conf = work.join(format!("stunnel-client-{port}.conf"));
        fs::write(
            &client_conf,
            format!(
                "foreground = yes\npid =\n[rsync]\nclient = yes\naccept = 127.0.0.1:{client_port}\n\
                 connect = 127.0.0.1:{server_port}\ncert = {0}/client/tls.crt\nkey = {0}/client/tls.key\n\
                 CAfile = {0}/client/ca.crt\nverifyChain = yes\n",
                certs.display()
            ),
        )
        .unwrap();
        let server = spawn(Command::new("stunnel4").arg(&server_conf));
        let client = spawn(Command::new("stunnel4").arg(&client_conf));
        wait_for_port(server_port);
        wait_for_port(client_port);
        Method::RsyncDaemon {
            url: format!("rsync://127.0.0.1:{client_port}/m/"),
            _daemon: daemon,
            _tunnels: vec![server, client],
        }
    }

    fn sync(&self, source: &Path) -> Duration {
        // Write back dirty pages of earlier steps first, so no run pays for another one's writes.
        let flushed = Command::new("sync").status().expect("sync");
        assert!(flushed.success());
        let source_arg = format!("{}/", source.display());
        match self {
            Method::Ferry {
                address,
                client_certs,
                parallel,
                ..
            } => run_timed(
                Command::new(FERRY)
                    // Its info logs (one line per send) would only interleave with the table's notes.
                    .env("RUST_LOG", "warn")
                    .args([
                        "mover",
                        "send",
                        "--retries",
                        "0",
                        "--parallel",
                        parallel,
                        // As the controller's stages run it: the pass leaves a manifest of what it
                        // copied on the target, and the next pass sends only what changed against it
                        // (docs/mover.md, "Delta passes"); a fresh target has none, so full copies
                        // are full rsync passes that also write the manifest.
                        "--manifest-key",
                        "bench-volume",
                        "--connect",
                        address,
                        "--source",
                        &source_arg,
                    ])
                    .arg("--certs-dir")
                    .arg(client_certs),
            ),
            Method::RsyncDaemon { url, .. } => run_timed(
                Command::new("rsync")
                    .args(rsync_options())
                    .arg(&source_arg)
                    .arg(url),
            ),
        }
    }
}

/// Cheap incompressible bytes (xorshift), so no method gains from compression or sparseness.
fn fill(buffer: &mut [u8], seed: u64) {
    let mut state = seed | 1;
    for chunk in buffer.chunks_mut(8) {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let bytes = state.to_le_bytes();
        chunk.copy_from_slice(&bytes[..chunk.len()]);
    }
}

fn make_large_tree(root: &Path, total: u64) {
    fs::create_dir_all(root).unwrap();
    let files = 4;
    let mut block = vec![0u8; 1 << 20];
    for file in 0..files {
        let mut out = fs::File::create(root.join(format!("large-{file}.bin"))).unwrap();
        for mb in 0..(total / files) >> 20 {
            fill(&mut block, file * 100_000 + mb + 1);
            out.write_all(&block).unwrap();
        }
    }
}

fn small_file_path(root: &Path, index: u64) -> PathBuf {
    root.join(format!("d{:03}", index % 200))
        .join(format!("f{index:06}"))
}

fn make_small_tree(root: &Path, count: u64) {
    for dir in 0..200 {
        fs::create_dir_all(root.join(format!("d{dir:03}"))).unwrap();
    }
    let mut block = vec![0u8; 4096];
    for index in 0..count {
        fill(&mut block, index + 7);
        fs::write(small_file_path(root, index), &block).unwrap();
    }
}

/// Rewrites 1% of the small files (spread over the tree) with new content and a new mtime.
fn change_one_percent(root: &Path, count: u64, round: u64) {
    let mut block = vec![0u8; 4096];
    for index in (round..count).step_by(100) {
        fill(&mut block, index * 31 + round * 1_000_003);
        fs::write(small_file_path(root, index), &block).unwrap();
    }
}

fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    match sorted.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => sorted[n / 2],
        n => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
    }
}

fn reset(target: &Path) {
    if target.exists() {
        fs::remove_dir_all(target).unwrap();
    }
    fs::create_dir_all(target).unwrap();
}

fn main() {
    // `cargo bench` passes `--bench`; without it (`cargo test --all-targets`) this is not a test: say so
    // and do nothing, so a test run never spends minutes on a benchmark.
    if !std::env::args().any(|arg| arg == "--bench") {
        println!("the mover benchmark runs with `make bench` (cargo bench --bench mover)");
        return;
    }
    let scale: f64 = std::env::var("FERRY_BENCH_SCALE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1.0);
    let large_bytes = (((1u64 << 30) as f64 * scale) as u64 >> 22).max(1) << 22;
    let small_count = ((100_000.0 * scale) as u64).max(1000);
    let base = std::env::var_os("FERRY_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    let work = tempfile::Builder::new()
        .prefix("ferry-bench-")
        .tempdir_in(base)
        .unwrap();
    let work = work.path();
    eprintln!(
        "scale {scale}: {} MiB in 4 large files, {small_count} small files of 4 KiB",
        large_bytes >> 20
    );

    let certs = work.join("certs");
    let issued = ferry::mover::issue("bench", &["127.0.0.1".to_string()]).unwrap();
    issued.write_server_dir(&certs.join("server")).unwrap();
    issued.write_client_dir(&certs.join("client")).unwrap();
    let only = std::env::var("FERRY_BENCH_ONLY").unwrap_or_default();
    let rounds: u64 = std::env::var("FERRY_BENCH_RUNS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3)
        .max(1);
    if only == "final" {
        mover_final::run(work, &certs, rounds);
        return;
    }
    let (large, small) = (work.join("large"), work.join("small"));
    make_large_tree(&large, large_bytes);
    make_small_tree(&small, small_count);

    let methods = ["ferry", "ferry-1", "rsync-daemon", "rsync-stunnel"];
    let scenarios = [
        "large files (full)",
        "small files (full)",
        "small re-stage, no change",
        "small re-stage, 1% changed",
    ];
    // samples[scenario][method] = seconds of each round
    let mut samples = vec![vec![Vec::new(); methods.len()]; scenarios.len()];
    // Run order matters on a busy machine (the first method follows the tree creation), so it can be
    // changed: FERRY_BENCH_ORDER=ferry,ferry-1,rsync-daemon,rsync-stunnel. Default: Ferry last. Rounds
    // (FERRY_BENCH_RUNS, default 3) run every method in turn, so drift in the machine's load hits all
    // methods alike; the table shows each cell's median.
    let order = std::env::var("FERRY_BENCH_ORDER")
        .unwrap_or_else(|_| "rsync-daemon,rsync-stunnel,ferry-1,ferry".into());
    for round in 0..rounds {
        for name in order.split(',') {
            let column = methods
                .iter()
                .position(|m| *m == name)
                .expect("unknown method in FERRY_BENCH_ORDER");
            let target = work.join(format!("target-{name}"));
            reset(&target);
            let method = match name {
                "ferry" => Method::ferry(&target, &certs, "0"),
                "ferry-1" => Method::ferry(&target, &certs, "1"),
                "rsync-daemon" => Method::rsync_daemon(&target, work, None),
                _ => Method::rsync_daemon(&target, work, Some(&certs)),
            };
            // Each full run starts from an empty module root; the re-stages run over the finished copy.
            let mut record = |row: usize, took: Duration| {
                samples[row][column].push(took.as_secs_f64());
                eprintln!(
                    "round {round} {name}: {} {:.2}s",
                    scenarios[row],
                    took.as_secs_f64()
                );
            };
            record(0, method.sync(&large));
            reset(&target);
            record(1, method.sync(&small));
            record(2, method.sync(&small));
            change_one_percent(
                &small,
                small_count,
                round * methods.len() as u64 + column as u64 + 1,
            );
            record(3, method.sync(&small));
            drop(method);
            fs::remove_dir_all(&target).unwrap();
        }
    }
    let results: Vec<Vec<f64>> = samples
        .iter()
        .map(|row| row.iter().map(|cell| median(cell)).collect())
        .collect();

    let sizes = [large_bytes, small_count * 4096, 0, 0];
    println!("run order: {order}; median of {rounds} rounds");
    let streams = ferry::mover::send::default_parallel();
    println!(
        "| scenario | ferry ({streams} streams) | ferry (1 stream) | rsync daemon | rsync + stunnel | \
         ferry vs rsync | ferry vs stunnel | 1 stream vs rsync | 1 stream vs stunnel |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for (row, scenario) in scenarios.iter().enumerate() {
        let [ferry, single, plain, stunnel] = [0, 1, 2, 3].map(|column| results[row][column]);
        let rate = |secs: f64| {
            if sizes[row] > 0 {
                format!(" ({:.0} MiB/s)", sizes[row] as f64 / secs / (1 << 20) as f64)
            } else {
                String::new()
            }
        };
        println!(
            "| {scenario} | {ferry:.2}s{} | {single:.2}s{} | {plain:.2}s{} | {stunnel:.2}s{} | {:.2}x | {:.2}x | {:.2}x | {:.2}x |",
            rate(ferry),
            rate(single),
            rate(plain),
            rate(stunnel),
            plain / ferry,
            stunnel / ferry,
            plain / single,
            stunnel / single
        );
    }
    if only != "transport" {
        let _removed = fs::remove_dir_all(&large);
        let _removed = fs::remove_dir_all(&small);
        mover_final::run(work, &certs, rounds);
    }
}
