//! Two `ferry controller --leader-elect` processes against one host cluster: only the Lease holder
//! runs the reconcilers; when it is SIGKILLed during a cutover the other takes the Lease over within
//! the lease duration and the cutover completes, with identical trees.

#[path = "support/mover.rs"]
mod mover;
#[path = "support/scenario.rs"]
mod scenario;

use std::ffi::OsStr;
use std::time::{Duration, Instant};

use ferry::api::plan::QuiesceMethod;
use ferry_sandbox::ControllerProcess;
use k8s_openapi::api::coordination::v1::Lease;
use kube::Api;
use scenario::{Scenario, write_files};

const LEASE_SECONDS: u64 = 4;

async fn holder(leases: &Api<Lease>) -> Option<String> {
    leases
        .get_opt("ferry-controller")
        .await
        .ok()
        .flatten()
        .and_then(|l| l.spec?.holder_identity)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_leader_acts_and_a_successor_finishes_the_cutover() {
    let scenario = Scenario::start_with(QuiesceMethod::Patch, false).await;
    let sandbox = &scenario.sandbox;
    let start = |identity: &str| {
        let lease = LEASE_SECONDS.to_string();
        let env: [(&str, &OsStr); 3] = [
            ("FERRY_LEADER_ELECT", OsStr::new("true")),
            ("POD_NAME", OsStr::new(identity)),
            ("FERRY_LEASE_DURATION_SECONDS", OsStr::new(&lease)),
        ];
        ControllerProcess::start_with_env(
            std::path::Path::new(env!("CARGO_BIN_EXE_ferry")),
            &sandbox.target.kubeconfig,
            &scenario.dir.path().join(format!("controller-{identity}.log")),
            &env,
        )
        .unwrap()
    };
    let leases: Api<Lease> = Api::namespaced(sandbox.host_client.clone(), "default");
    let first = start("first");
    scenario::eventually("the first controller leads", || async {
        holder(&leases).await.as_deref() == Some("first")
    })
    .await;
    let second = start("second");
    scenario.wait_plan_ready().await;

    write_files(
        &sandbox.volume_dir(true),
        &[("a", &[3u8; 100_000]), ("b/c", b"c")],
    );
    scenario
        .create_migration("cutover", |s| s.quiesce_pods = true)
        .await;
    scenario::eventually("the cutover is under way", || async {
        let m = scenario.migrations().get("cutover").await.unwrap();
        m.status
            .is_some_and(|s| s.pipeline.iter().any(|p| p.completed.is_some()))
    })
    .await;
    let follower_log = || std::fs::read_to_string(scenario.dir.path().join("controller-second.log")).unwrap();
    assert!(
        follower_log().contains("waiting for leadership"),
        "{}",
        follower_log()
    );
    assert!(
        !follower_log().contains("leading: running"),
        "two leaders: {}",
        follower_log()
    );

    first.kill();
    let killed = Instant::now();
    scenario::eventually("the second controller takes over", || async {
        holder(&leases).await.as_deref() == Some("second")
    })
    .await;
    let takeover = killed.elapsed();
    eprintln!(
        "takeover after {:.1}s (lease {LEASE_SECONDS}s)",
        takeover.as_secs_f64()
    );
    assert!(
        takeover < Duration::from_secs(LEASE_SECONDS * 3),
        "took {takeover:?}"
    );
    // The Lease names it a moment before its log says it runs the reconcilers.
    scenario::eventually("the second controller runs the reconcilers", || async {
        follower_log().contains("leading: running")
    })
    .await;

    scenario.wait_succeeded("cutover", Duration::from_secs(240)).await;
    mover::assert_same_tree(&sandbox.volume_dir(true), &sandbox.volume_dir(false));
    assert!(second.stop(), "the new leader stops cleanly on SIGTERM");
    scenario.stop().await;
}
