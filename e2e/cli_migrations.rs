//! `ferry stage|cutover|rollback --plan NS/NAME --wait` and `ferry status`, run as the real binary
//! against the sandbox with the real controller: exit codes, the printed summary, a cutover that fails
//! before the DNS flip (the source stays restorable, and a rollback restores it), and a timeout.

#[path = "support/scenario.rs"]
mod scenario;

use std::process::{Command, Output};
use std::time::Duration;

use ferry::api::plan::QuiesceMethod;
use ferry_sandbox::world::{APP_NAMESPACE, SOURCE_ADDRESS};
use k8s_openapi::api::apps::v1::Deployment;
use kube::Api;
use kube::api::DeleteParams;
use scenario::{Scenario, replicas};

fn ferry(scenario: &Scenario, args: &[&str]) -> Output {
    let output = Command::new(env!("CARGO_BIN_EXE_ferry"))
        .args(args)
        .arg("--kubeconfig")
        .arg(&scenario.sandbox.target.kubeconfig)
        .output()
        .unwrap();
    eprintln!(
        "$ ferry {}\n{}{}-> {:?}",
        args.join(" "),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
        output.status.code()
    );
    output
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_runs_and_follows_migrations() {
    let mut scenario = Scenario::start(QuiesceMethod::Patch).await;
    scenario::write_files(&scenario.sandbox.volume_dir(true), &[("table", b"rows")]);

    // A plan that does not exist: one line, exit 1, nothing created.
    let missing = ferry(&scenario, &["stage", "--plan", "ferry-demo/nope", "--wait"]);
    assert_eq!(missing.status.code(), Some(1));
    assert_eq!(
        text(&missing.stderr).trim(),
        "ferry: MigPlan ferry-demo/nope does not exist"
    );

    // A stage, followed to its end.
    let stage = ferry(
        &scenario,
        &["stage", "--plan", "ferry-demo/shop", "--wait", "--timeout", "4m"],
    );
    assert_eq!(stage.status.code(), Some(0));
    let out = text(&stage.stdout);
    assert!(
        out.contains("WaitForTransfer") && out.contains("succeeded"),
        "{out}"
    );
    assert!(
        out.contains("Step 7/8 WaitForTransfer"),
        "plain progress lines when not a terminal: {out}"
    );

    let status = ferry(&scenario, &["status", "-n", "ferry-demo"]);
    let out = text(&status.stdout);
    assert!(
        out.contains("ferry-demo/shop") && out.contains("Succeeded"),
        "{out}"
    );
    assert!(!out.contains(" - \n"), "lastStage recorded: {out}");

    // The same binary as a kubectl plugin: `kubectl-ferry` on the PATH, run through real kubectl.
    let plugins = scenario.dir.path().join("plugins");
    std::fs::create_dir_all(&plugins).unwrap();
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_ferry"), plugins.join("kubectl-ferry")).unwrap();
    let path = format!(
        "{}:{}",
        plugins.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let plugin = Command::new("kubectl")
        .args(["ferry", "status", "-n", "ferry-demo"])
        .env("PATH", &path)
        .env("KUBECONFIG", &scenario.sandbox.target.kubeconfig)
        .output()
        .unwrap();
    let out = text(&plugin.stdout);
    assert!(
        plugin.status.success() && out.contains("ferry-demo/shop"),
        "kubectl ferry status: {out}{}",
        text(&plugin.stderr)
    );
    let help = Command::new("kubectl")
        .args(["ferry", "--help"])
        .env("PATH", &path)
        .output()
        .unwrap();
    assert!(
        text(&help.stdout).contains("Usage: kubectl ferry"),
        "{}",
        text(&help.stdout)
    );

    // The target lacks one of the app's Deployments: the cutover fails at UnquiesceTarget, before the
    // DNS flip; the source is quiesced with its way back recorded.
    let source_before = replicas(&scenario.sandbox.source_client).await;
    Api::<Deployment>::namespaced(scenario.sandbox.host_client.clone(), APP_NAMESPACE)
        .delete("web", &DeleteParams::default())
        .await
        .unwrap();
    let cutover = ferry(&scenario, &["cutover", "--plan", "ferry-demo/shop", "--wait"]);
    assert_eq!(cutover.status.code(), Some(1));
    let err = text(&cutover.stderr);
    assert!(
        err.contains("UnquiesceTarget failed") && err.contains("no Deployment shop/web"),
        "{err}"
    );
    let served = [scenario.sandbox.served_app_record().await.unwrap()];
    assert_eq!(served[0].values, [SOURCE_ADDRESS], "no flip after a failed step");
    assert!(
        replicas(&scenario.sandbox.source_client)
            .await
            .values()
            .all(|r| *r == 0)
    );

    // The rollback restores the source.
    let rollback = ferry(&scenario, &["rollback", "--plan", "ferry-demo/shop", "--wait"]);
    assert_eq!(rollback.status.code(), Some(0), "{}", text(&rollback.stderr));
    assert_eq!(replicas(&scenario.sandbox.source_client).await, source_before);

    // Nobody runs migrations: --timeout ends the wait with exit 3, the migration stays.
    scenario.sandbox.controller.take().unwrap().kill();
    let timeout = ferry(
        &scenario,
        &["stage", "--plan", "ferry-demo/shop", "--wait", "--timeout", "2s"],
    );
    assert_eq!(timeout.status.code(), Some(3));
    assert!(
        text(&timeout.stderr).contains("timed out"),
        "{}",
        text(&timeout.stderr)
    );
    tokio::time::sleep(Duration::from_millis(10)).await;
    scenario.stop().await;
}
