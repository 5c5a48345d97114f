//! `make bench-controller` (not part of `make test`): what the controller costs the API servers and the
//! machine, on the sandbox. The controller runs as a process with its production defaults (resync 60 s,
//! retry 10 s) under a `ferry-system` ServiceAccount in the host cluster, the MigCluster of the source
//! uses the `ferry-migration` ServiceAccount, and both control planes audit-log every request of
//! `ferry-system` ServiceAccounts (e2e/controlplane/apiserver.go), so the counts below are the
//! controller's requests and nothing else's.
//!
//! 1. Idle: `FERRY_BENCH_IDLE_PLANS` plans (default 200) that are Ready and do nothing; requests per
//!    second per idle plan over a window of `FERRY_BENCH_IDLE_SECONDS` (default 180: three resyncs).
//! 2. Running: `FERRY_BENCH_MIGRATIONS` stage migrations at once (default 20), one per plan, each
//!    moving its own volume; requests per second per running migration, from their creation until
//!    the last one succeeded, less what the idle plans made meanwhile (at the idle rate).
//!
//! Also the controller's RSS (peak of samples every 500 ms) and CPU (utime + stime from /proc) per
//! phase, and the reconcile latency: from a migration's creation to the first status the controller
//! wrote on it (polled every 100 ms with the sandbox's admin client, which the audit policy ignores).
//! Prints a Markdown table.

#[path = "../support/scenario.rs"]
mod scenario;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ferry::api::plan::QuiesceMethod;
use ferry::api::{MigMigration, MigMigrationSpec, MigPlan};
use ferry_sandbox::apply_yaml;
use ferry_sandbox::world::FERRY_NAMESPACE;
use k8s_openapi::jiff::Timestamp;
use kube::api::{ListParams, PostParams};
use kube::{Api, ResourceExt};
use scenario::Scenario;

/// A moment, on the local clock and on the API servers' (audit) clock.
type Moment = (Instant, Timestamp);

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The controller under measurement, killed on drop.
struct Controller(Child);

impl Drop for Controller {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// (RSS in KiB, CPU seconds) of process `pid`, from /proc.
fn usage(pid: u32) -> (u64, f64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let rss = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or_default();
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which is in parentheses): utime and stime are the 12th and 13th.
    let after = stat.rsplit_once(')').map(|(_, rest)| rest).unwrap_or_default();
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or_default()
    };
    let cpu = (ticks(11) + ticks(12)) as f64 / 100.0;
    (rss, cpu)
}

/// Audit events of the controller's ServiceAccounts received in `[from, to)`, by "verb resource".
/// A streamed response (a log, a watch) is audited twice, at ResponseStarted and ResponseComplete:
/// each request counts once, by its audit ID.
fn requests(logs: &[PathBuf], from: Timestamp, to: Timestamp) -> BTreeMap<String, u64> {
    let mut counts = BTreeMap::new();
    let mut seen = std::collections::HashSet::new();
    for log in logs {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        for line in text.lines() {
            let Ok(event) = serde_json::from_str::<serde_json::Value>(line) else {
                continue;
            };
            let Some(at) = event["requestReceivedTimestamp"]
                .as_str()
                .and_then(|t| t.parse::<Timestamp>().ok())
            else {
                continue;
            };
            if at < from || at >= to {
                continue;
            }
            if !seen.insert(event["auditID"].as_str().unwrap_or_default().to_string()) {
                continue;
            }
            let verb = event["verb"].as_str().unwrap_or("?");
            let resource = event["objectRef"]["resource"].as_str().unwrap_or("-");
            let sub = event["objectRef"]["subresource"]
                .as_str()
                .map(|s| format!("/{s}"))
                .unwrap_or_default();
            *counts.entry(format!("{verb} {resource}{sub}")).or_default() += 1;
        }
    }
    counts
}

fn total(counts: &BTreeMap<String, u64>) -> u64 {
    counts.values().sum()
}

fn top(counts: &BTreeMap<String, u64>, n: usize) -> String {
    let mut sorted: Vec<(&String, &u64)> = counts.iter().collect();
    sorted.sort_by(|a, b| b.1.cmp(a.1));
    sorted
        .into_iter()
        .take(n)
        .map(|(k, v)| format!("{k}: {v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn kubeconfig(url: &str, ca: &str, token: &str, path: &Path) {
    std::fs::write(
        path,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: {url}\n    \
             certificate-authority-data: {ca}\nusers:\n- name: u\n  user:\n    token: {token}\n\
             contexts:\n- name: c\n  context: {{cluster: c, user: u}}\ncurrent-context: c\n"
        ),
    )
    .unwrap();
}

/// A plan like the sandbox's `shop` but without Git, DNS or triggers: `namespaces` only, and rsync's
/// bandwidth limit (KiB/s) so a stage's transfer lasts long enough to measure its steady state.
fn plan_yaml(name: &str, namespace: &str, bw_limit: u64) -> String {
    let limit = if bw_limit > 0 {
        format!(", bwLimit: {bw_limit}")
    } else {
        String::new()
    };
    format!(
        "apiVersion: migration.ferry.dev/v1alpha1\nkind: MigPlan\nmetadata: {{name: {name}, namespace: {FERRY_NAMESPACE}}}\n\
         spec:\n  srcMigClusterRef: {{name: source, namespace: {FERRY_NAMESPACE}}}\n  \
         destMigClusterRef: {{name: host, namespace: {FERRY_NAMESPACE}}}\n  namespaces: [{namespace}]\n  \
         transfer: {{endpointType: NodePort{limit}}}\n"
    )
}

/// A namespace `ns` in the source with claim `data` bound to a hostPath volume holding a few files,
/// and the target's volume pre-bound to the claim Ferry will create there.
async fn volume(scenario: &Scenario, ns: &str) {
    let sandbox = &scenario.sandbox;
    let source_dir = sandbox.dir.join("bench-volumes").join("source").join(ns);
    let target_dir = sandbox.dir.join("bench-volumes").join("target").join(ns);
    std::fs::create_dir_all(&target_dir).unwrap();
    let files: Vec<(String, Vec<u8>)> = (0..40).map(|i| (format!("f{i}"), vec![i as u8; 65536])).collect();
    let refs: Vec<(&str, &[u8])> = files.iter().map(|(n, d)| (n.as_str(), d.as_slice())).collect();
    scenario::write_files(&source_dir, &refs);
    let source = format!(
        "apiVersion: v1\nkind: Namespace\nmetadata: {{name: {ns}}}\n---\n{}---\n\
         apiVersion: v1\nkind: PersistentVolumeClaim\nmetadata: {{name: data, namespace: {ns}}}\n\
         spec:\n  accessModes: [ReadWriteOnce]\n  storageClassName: local\n  volumeName: {ns}-data\n  \
         resources: {{requests: {{storage: 1Gi}}}}\n",
        scenario::hostpath_volume(&format!("{ns}-data"), ns, "data", &source_dir)
    );
    apply_yaml(&sandbox.source_client, &source, "default")
        .await
        .unwrap();
    let target = scenario::hostpath_volume(&format!("{ns}-data"), ns, "data", &target_dir);
    apply_yaml(&sandbox.host_client, &target, "default")
        .await
        .unwrap();
}

async fn wait_ready(plans: &Api<MigPlan>, names: &[String], timeout: Duration) {
    let start = Instant::now();
    loop {
        let listed = plans.list(&ListParams::default()).await.unwrap();
        let ready = listed
            .items
            .iter()
            .filter(|p| names.contains(&p.name_any()))
            .filter(|p| {
                p.status.as_ref().is_some_and(|s| {
                    ferry::api::condition::is_true(&s.conditions, ferry::api::condition::READY)
                })
            })
            .count();
        if ready == names.len() {
            return;
        }
        assert!(
            start.elapsed() < timeout,
            "only {ready} of {} plans Ready after {timeout:?}",
            names.len()
        );
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let idle_plans = env_number("FERRY_BENCH_IDLE_PLANS", 200) as usize;
    let idle_seconds = env_number("FERRY_BENCH_IDLE_SECONDS", 180);
    let running = env_number("FERRY_BENCH_MIGRATIONS", 20) as usize;
    // 2.5 MiB per volume at 40 KiB/s: about a minute of transfer per stage.
    let bw_limit = env_number("FERRY_BENCH_BWLIMIT", 40);
    let binary = std::env::var_os("FERRY_BENCH_CONTROLLER")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_ferry")));

    let scenario = Scenario::start_with(QuiesceMethod::Patch, false).await;
    let sandbox = &scenario.sandbox;
    let token = sandbox
        .target
        .mint_token("ferry-system", "ferry-controller", true)
        .unwrap();
    let config = scenario.dir.path().join("controller.kubeconfig");
    kubeconfig(
        &sandbox.target.url,
        &sandbox.target.ca_bundle().unwrap(),
        &token,
        &config,
    );
    let audit = vec![
        sandbox.target.dir.join("audit.log"),
        sandbox.source.dir.join("audit.log"),
    ];

    for i in 0..running {
        volume(&scenario, &format!("bench-{i:02}")).await;
    }
    let plans: Api<MigPlan> = Api::namespaced(sandbox.host_client.clone(), FERRY_NAMESPACE);
    let mut yaml = String::new();
    let mut idle_names = Vec::new();
    for i in 0..idle_plans {
        let name = format!("idle-{i:03}");
        yaml.push_str(&plan_yaml(&name, "bench-00", 0));
        yaml.push_str("---\n");
        idle_names.push(name);
    }
    let busy_names: Vec<String> = (0..running).map(|i| format!("busy-{i:02}")).collect();
    for (i, name) in busy_names.iter().enumerate() {
        yaml.push_str(&plan_yaml(name, &format!("bench-{i:02}"), bw_limit));
        yaml.push_str("---\n");
    }
    apply_yaml(&sandbox.host_client, &yaml, FERRY_NAMESPACE)
        .await
        .unwrap();

    let log = scenario.dir.path().join("bench-controller.log");
    let child = Command::new(&binary)
        .args(["controller", "--kubeconfig"])
        .arg(&config)
        .args(["--http-addr", "off"])
        .env(
            "RUST_LOG",
            std::env::var("FERRY_BENCH_RUST_LOG").unwrap_or_else(|_| "warn".into()),
        )
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .expect("the controller starts");
    let pid = child.id();
    let _controller = Controller(child);
    let started = Instant::now();
    let mut all: Vec<String> = idle_names.clone();
    all.extend(busy_names.iter().cloned());
    all.push(ferry_sandbox::world::PLAN_NAME.to_string());
    wait_ready(&plans, &all, Duration::from_secs(600)).await;
    let ready_after = started.elapsed();
    eprintln!(
        "{} plans Ready after {:.1}s",
        all.len(),
        ready_after.as_secs_f64()
    );

    // Idle: let the start-up burst pass, then count one window.
    tokio::time::sleep(Duration::from_secs(20)).await;
    let (_, cpu0) = usage(pid);
    let from = Timestamp::now();
    let mut idle_rss = 0;
    let window = Instant::now();
    while window.elapsed() < Duration::from_secs(idle_seconds) {
        idle_rss = idle_rss.max(usage(pid).0);
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let to = Timestamp::now();
    let (_, cpu1) = usage(pid);
    let idle_window = window.elapsed().as_secs_f64();
    let idle_counts = requests(&audit, from, to);
    let plans_total = all.len() as f64;
    let idle_rate = total(&idle_counts) as f64 / idle_window;
    let per_idle_plan = idle_rate / plans_total;
    let idle_cpu = (cpu1 - cpu0) / idle_window * 100.0;

    // Running: every busy plan's stage at once.
    let migrations: Api<MigMigration> = Api::namespaced(sandbox.host_client.clone(), FERRY_NAMESPACE);
    let from = Timestamp::now();
    let run_start = Instant::now();
    let (_, cpu2) = usage(pid);
    let mut created = BTreeMap::new();
    for name in &busy_names {
        let migration = MigMigration {
            metadata: kube::api::ObjectMeta {
                name: Some(format!("{name}-stage")),
                namespace: Some(FERRY_NAMESPACE.into()),
                ..Default::default()
            },
            spec: MigMigrationSpec {
                stage: true,
                ..MigMigrationSpec::of_plan(FERRY_NAMESPACE, name)
            },
            status: None,
        };
        migrations
            .create(&PostParams::default(), &migration)
            .await
            .unwrap();
        created.insert(format!("{name}-stage"), Instant::now());
    }
    let mut first_status: BTreeMap<String, Duration> = BTreeMap::new();
    let mut finished: BTreeMap<String, Duration> = BTreeMap::new();
    let mut run_rss = 0;
    let mut failed = Vec::new();
    // The steady state: from 10 s after every migration is in WaitForTransfer until the first leaves it.
    let mut steady_from: Option<Moment> = None;
    let mut steady_to: Option<Moment> = None;
    while finished.len() < created.len() {
        assert!(
            run_start.elapsed() < Duration::from_secs(900),
            "the stages did not finish in 15 minutes: {} of {} done",
            finished.len(),
            created.len()
        );
        run_rss = run_rss.max(usage(pid).0);
        let listed = migrations.list(&ListParams::default()).await.unwrap().items;
        let transferring = listed
            .iter()
            .filter(|m| created.contains_key(&m.name_any()))
            .filter(|m| {
                m.status.as_ref().is_some_and(|s| {
                    s.pipeline
                        .iter()
                        .find(|p| p.name == "WaitForTransfer")
                        .is_some_and(|p| p.started.is_some() && p.completed.is_none())
                })
            })
            .count();
        if transferring == created.len() && steady_from.is_none() {
            steady_from = Some((
                Instant::now() + Duration::from_secs(10),
                Timestamp::now() + Duration::from_secs(10),
            ));
        }
        if transferring < created.len() && steady_from.is_some() && steady_to.is_none() {
            steady_to = Some((Instant::now(), Timestamp::now()));
        }
        for migration in listed {
            let name = migration.name_any();
            let Some(at) = created.get(&name) else { continue };
            let Some(status) = migration.status.as_ref() else {
                continue;
            };
            first_status.entry(name.clone()).or_insert_with(|| at.elapsed());
            let done = ["Succeeded", "Failed"]
                .iter()
                .find(|t| ferry::api::condition::is_true(&status.conditions, t));
            if let Some(done) = done
                && !finished.contains_key(&name)
            {
                finished.insert(name.clone(), at.elapsed());
                if *done == "Failed" {
                    failed.push(name);
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let to = Timestamp::now();
    let (_, cpu3) = usage(pid);
    let run_window = run_start.elapsed().as_secs_f64();
    let run_counts = requests(&audit, from, to);
    let busy_requests = (total(&run_counts) as f64 - idle_rate * run_window).max(0.0);
    let per_migration = busy_requests / running as f64 / run_window;
    let run_cpu = (cpu3 - cpu2) / run_window * 100.0;
    let steady = match (steady_from, steady_to) {
        (Some((a, from)), Some((b, to))) if b > a => {
            let seconds = (b - a).as_secs_f64();
            let counts = requests(&audit, from, to);
            let busy = (total(&counts) as f64 - idle_rate * seconds).max(0.0);
            Some((busy / running as f64 / seconds, seconds, counts))
        }
        _ => None,
    };
    let per_stage = busy_requests / running as f64;
    let median = |values: &mut Vec<f64>| {
        values.sort_by(f64::total_cmp);
        values.get(values.len() / 2).copied().unwrap_or_default()
    };
    let mut latencies: Vec<f64> = first_status.values().map(Duration::as_secs_f64).collect();
    let mut durations: Vec<f64> = finished.values().map(Duration::as_secs_f64).collect();
    let max_latency = latencies.iter().copied().fold(0.0, f64::max);

    println!(
        "\n## Controller cost ({} plans, {running} concurrent stages)\n",
        all.len()
    );
    println!("| measure | value | goal |");
    println!("|---|---|---|");
    println!("| requests/s per idle plan ({idle_window:.0} s window) | {per_idle_plan:.4} | < 0.1 |");
    println!("| requests/s per running migration ({run_window:.0} s window) | {per_migration:.3} | <= 1 |");
    match &steady {
        Some((rate, seconds, _)) => println!(
            "| requests/s per migration while transferring ({seconds:.0} s steady window) | {rate:.3} | <= 1 |"
        ),
        None => println!("| requests/s per migration while transferring | (no steady window) | <= 1 |"),
    }
    println!("| requests per stage migration (whole run) | {per_stage:.0} | |");
    println!(
        "| controller RSS, idle / running (MiB) | {:.1} / {:.1} | < 100 |",
        idle_rss as f64 / 1024.0,
        run_rss as f64 / 1024.0
    );
    println!("| controller CPU, idle / running (% of a core) | {idle_cpu:.1} / {run_cpu:.1} | |");
    println!(
        "| reconcile latency, creation to first status (median / max, s) | {:.2} / {max_latency:.2} | |",
        median(&mut latencies)
    );
    println!(
        "| stage duration (median / max, s) | {:.1} / {:.1} | |",
        median(&mut durations),
        durations.iter().copied().fold(0.0, f64::max)
    );
    println!(
        "| plans Ready after start (s) | {:.1} | |",
        ready_after.as_secs_f64()
    );
    println!(
        "\nidle requests ({}): {}",
        total(&idle_counts),
        top(&idle_counts, 8)
    );
    println!(
        "running requests ({}): {}",
        total(&run_counts),
        top(&run_counts, 10)
    );
    if let Some((_, _, counts)) = &steady {
        println!("steady requests ({}): {}", total(counts), top(counts, 10));
    }
    if !failed.is_empty() {
        println!("\nFAILED stages: {}", failed.join(", "));
        std::process::exit(1);
    }
    drop(_controller);
    if let Some(keep) = std::env::var_os("FERRY_BENCH_KEEP_LOGS") {
        let keep = PathBuf::from(keep);
        let _ = std::fs::create_dir_all(&keep);
        let _ = std::fs::copy(&log, keep.join("controller.log"));
        for (i, audit_log) in audit.iter().enumerate() {
            let _ = std::fs::copy(audit_log, keep.join(format!("audit-{i}.log")));
        }
    }
    scenario.stop().await;
}
