//! The Argo CD hook examples (`manifests/argocd/`) apply cleanly to a real control plane, and the
//! PreSync hook's command, run with the hook ServiceAccount's own token (so only the RBAC in the
//! examples), stages the plan and exits 0 — what makes Argo CD's sync go on. The PreSync Job itself,
//! applied here as Argo CD would create it, runs on the target's real node as the hook
//! ServiceAccount and completes: its `ferry stage --wait` and the CLI's run one after the other,
//! never together (one migration per plan, even when both are created within moments).

#[path = "support/scenario.rs"]
mod scenario;

use std::process::Command;

use ferry::api::plan::QuiesceMethod;
use scenario::Scenario;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_hook_examples_apply_and_the_presync_command_stages_with_the_hook_rbac() {
    let scenario = Scenario::start(QuiesceMethod::Patch).await;
    let sandbox = &scenario.sandbox;
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("manifests/argocd");
    for file in ["hook-rbac.yaml", "presync-stage.yaml", "syncfail-status.yaml"] {
        let yaml = std::fs::read_to_string(dir.join(file)).unwrap();
        ferry_sandbox::apply_yaml(&sandbox.host_client, &yaml, "shop")
            .await
            .unwrap_or_else(|err| panic!("{file} does not apply: {err}"));
    }

    // The hook's identity: the ServiceAccount from hook-rbac.yaml, no other grants.
    let token = sandbox.target.mint_token("shop", "ferry-hook", false).unwrap();
    let kubeconfig = scenario.dir.path().join("hook.kubeconfig");
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: {}\n    \
             certificate-authority-data: {}\nusers:\n- name: hook\n  user:\n    token: {token}\n\
             contexts:\n- name: c\n  context: {{cluster: c, user: hook}}\ncurrent-context: c\n",
            sandbox.target.url,
            sandbox.target.ca_bundle().unwrap()
        ),
    )
    .unwrap();
    let hook = |args: &[&str]| {
        let output = Command::new(env!("CARGO_BIN_EXE_ferry"))
            .args(args)
            .arg("--kubeconfig")
            .arg(&kubeconfig)
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        (output.status.code(), text)
    };
    let (code, text) = hook(&["stage", "--plan", "ferry-demo/shop", "--wait", "--timeout", "4m"]);
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("succeeded"), "{text}");
    let (code, text) = hook(&["status", "--plan", "ferry-demo/shop"]);
    assert_eq!(code, Some(0), "{text}");
    // Least privilege: the hook cannot touch the plan itself.
    let (code, text) = hook(&["stage", "--plan", "other-namespace/shop"]);
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("forbidden") || text.contains("Forbidden"), "{text}");

    // The PreSync Job ran on the node, as the hook ServiceAccount, and succeeded.
    let jobs: kube::Api<k8s_openapi::api::batch::v1::Job> =
        kube::Api::namespaced(sandbox.host_client.clone(), "shop");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(240);
    loop {
        let job = jobs.get("ferry-stage").await.unwrap();
        let status = job.status.unwrap_or_default();
        if status.succeeded == Some(1) {
            break;
        }
        assert!(
            status.failed.unwrap_or(0) == 0 && std::time::Instant::now() < deadline,
            "the PreSync Job did not succeed: {status:?}\ncontroller log:\n{}",
            scenario::tail(&scenario.controller_log(), 60)
        );
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
    let stages = scenario
        .migrations()
        .list(&Default::default())
        .await
        .unwrap()
        .items;
    let succeeded = stages
        .iter()
        .filter(|m| {
            m.status
                .as_ref()
                .is_some_and(|s| s.conditions.iter().any(|c| c.type_ == "Succeeded" && c.is_true()))
        })
        .count();
    assert_eq!(succeeded, 2, "the Job's stage and the CLI's, one after the other");
    scenario.stop().await;
}
