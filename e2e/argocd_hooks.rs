//! The Argo CD hook examples (`manifests/argocd/`) apply cleanly to a real control plane, and the
//! PreSync hook's command, run with the hook ServiceAccount's own token (so only the RBAC in the
//! examples), stages the plan and exits 0 — what makes Argo CD's sync go on.

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
    scenario.stop().await;
}
