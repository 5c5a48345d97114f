//! The install manifests on the whole sandbox: `manifests/install` (namespace, RBAC, Deployment,
//! Service) and `manifests/remote` apply cleanly; the Deployment runs two replicas with leader
//! election, probes and a locked-down security context, and on the real node they really run: both
//! become Ready (their probes answer as uid 65532 on a read-only root) and one takes the Lease. Then it
//! is scaled to zero (in a pod the controller could not reach the sandbox's git server and BIND9, on
//! the sandbox namespace's loopback) and the granted roles are shown to be enough: the
//! controller runs with the `ferry-controller` ServiceAccount's own token in the host (target) cluster
//! and the MigCluster uses a `ferry-migration` token in the source, and a stage and a cutover succeed.
//! Its /healthz and /readyz answer.

#[path = "support/http.rs"]
mod http;
#[path = "support/mover.rs"]
mod mover;
#[path = "support/rbac_audit.rs"]
mod rbac_audit;
#[path = "support/scenario.rs"]
mod scenario;

use std::ffi::OsStr;
use std::path::Path;
use std::time::{Duration, Instant};

use base64::Engine as _;
use ferry::api::plan::QuiesceMethod;
use ferry_sandbox::world::FERRY_NAMESPACE;
use ferry_sandbox::{ControlPlane, ControllerProcess, apply_yaml};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Pod, Secret};
use kube::Api;
use kube::api::{ListParams, Patch, PatchParams};
use scenario::{Scenario, write_files};

async fn apply_file(client: &kube::Client, path: &str) {
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join(path);
    let yaml = std::fs::read_to_string(&file).unwrap();
    apply_yaml(client, &yaml, "default")
        .await
        .unwrap_or_else(|err| panic!("{path} does not apply: {err}"));
}

fn kubeconfig(plane: &ControlPlane, token: &str, path: &Path) {
    std::fs::write(
        path,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: {}\n    \
             certificate-authority-data: {}\nusers:\n- name: u\n  user:\n    token: {token}\n\
             contexts:\n- name: c\n  context: {{cluster: c, user: u}}\ncurrent-context: c\n",
            plane.url,
            plane.ca_bundle().unwrap()
        ),
    )
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_install_manifests_apply_and_their_roles_are_enough_to_migrate() {
    let scenario = Scenario::start_with(QuiesceMethod::Patch, false).await;
    let sandbox = &scenario.sandbox;
    for file in [
        "manifests/install/namespace.yaml",
        "manifests/remote/rbac.yaml",
        "manifests/install/rbac.yaml",
        "manifests/install/deployment.yaml",
        "manifests/install/service.yaml",
    ] {
        apply_file(&sandbox.host_client, file).await;
    }
    let deployment = Api::<Deployment>::namespaced(sandbox.host_client.clone(), "ferry-system")
        .get("ferry-controller")
        .await
        .unwrap();
    let spec = deployment.spec;
    assert_eq!(spec.replicas, Some(2));
    let pod = spec.template.spec.unwrap();
    assert_eq!(pod.security_context.unwrap().run_as_non_root, Some(true));
    let container = &pod.containers[0];
    assert!(
        container
            .command
            .as_ref()
            .unwrap()
            .contains(&"--leader-elect".to_string())
    );
    let security = container.security_context.clone().unwrap();
    assert_eq!(security.read_only_root_filesystem, Some(true));
    assert_eq!(security.allow_privilege_escalation, Some(false));
    assert!(container.liveness_probe.is_some() && container.readiness_probe.is_some());
    the_deployment_runs_and_leads(&sandbox.host_client).await;

    // The source cluster: the remote role, and the MigCluster's token switched to it.
    apply_file(&sandbox.source_client, "manifests/install/namespace.yaml").await;
    apply_file(&sandbox.source_client, "manifests/remote/rbac.yaml").await;
    let remote_token = sandbox
        .source
        .mint_token("ferry-system", "ferry-migration", false)
        .unwrap();
    let patch = serde_json::json!({"data": {"saToken": base64::engine::general_purpose::STANDARD.encode(&remote_token)}});
    Api::<Secret>::namespaced(sandbox.host_client.clone(), FERRY_NAMESPACE)
        .patch("source-cluster", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();

    // The controller as its ServiceAccount in the host cluster.
    let host_token = sandbox
        .target
        .mint_token("ferry-system", "ferry-controller", false)
        .unwrap();
    let config = scenario.dir.path().join("controller.kubeconfig");
    kubeconfig(&sandbox.target, &host_token, &config);
    let port = http::free_port();
    let addr = format!("127.0.0.1:{port}");
    // As the Deployment runs it: leader election, JSON logs.
    let env: [(&str, &OsStr); 5] = [
        ("FERRY_LEADER_ELECT", OsStr::new("true")),
        ("FERRY_JSON_LOGS", OsStr::new("true")),
        ("POD_NAMESPACE", OsStr::new("ferry-system")),
        ("POD_NAME", OsStr::new("ferry-controller-0")),
        ("FERRY_HTTP_ADDR", OsStr::new(&addr)),
    ];
    let log = scenario.dir.path().join("controller.log");
    let controller =
        ControllerProcess::start_with_env(Path::new(env!("CARGO_BIN_EXE_ferry")), &config, &log, &env)
            .unwrap();
    scenario::eventually("/readyz answers", || async {
        tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_ok()
    })
    .await;
    assert!(http::get(port, "/healthz").await.starts_with("HTTP/1.0 200"));
    let ready = http::get(port, "/readyz").await;
    assert!(
        ready.starts_with("HTTP/1.0 200") && ready.contains("v1.37"),
        "{ready}"
    );

    scenario.wait_plan_ready().await;
    write_files(&sandbox.volume_dir(true), &[("x", b"data")]);
    scenario.create_migration("stage", |s| s.stage = true).await;
    scenario.wait_succeeded("stage", Duration::from_secs(240)).await;
    scenario
        .create_migration("cutover", |s| s.quiesce_pods = true)
        .await;
    scenario.wait_succeeded("cutover", Duration::from_secs(240)).await;
    mover::assert_same_tree(&sandbox.volume_dir(true), &sandbox.volume_dir(false));
    let metrics = http::get(port, "/metrics").await;
    for line in [
        "ferry_migrations_total{itinerary=\"Stage\",result=\"succeeded\"} 1",
        "ferry_migrations_total{itinerary=\"Final\",result=\"succeeded\"} 1",
        "ferry_cutover_downtime_seconds_count 1",
        "ferry_stage_duration_seconds_count 1",
    ] {
        assert!(metrics.contains(line), "{line} not in /metrics:\n{metrics}");
    }
    assert!(!metrics.contains("ferry_synced_bytes_total 0\n"), "{metrics}");
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        !text.contains("forbidden"),
        "a missing grant: {}",
        scenario::tail(&text, 40)
    );
    assert!(controller.stop(), "the controller stops cleanly");
    check_json_logs(&std::fs::read_to_string(&log).unwrap());
    check_least_privilege(&scenario);
    scenario.stop().await;
}

/// The Deployment's two replicas run on the real node (the node holds their image, the mover image)
/// until both are Ready and one holds the Lease; then it is scaled to zero, its leader releasing the
/// Lease on SIGTERM, and its pods are gone.
async fn the_deployment_runs_and_leads(client: &kube::Client) {
    let deployments = Api::<Deployment>::namespaced(client.clone(), "ferry-system");
    let leases = Api::<Lease>::namespaced(client.clone(), "ferry-system");
    let pods = Api::<Pod>::namespaced(client.clone(), "ferry-system");
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let status = deployments.get("ferry-controller").await.unwrap().status;
        let ready = status.and_then(|s| s.ready_replicas).unwrap_or(0);
        let holder = leases
            .get_opt("ferry-controller")
            .await
            .unwrap()
            .and_then(|l| l.spec?.holder_identity);
        if ready == 2
            && holder
                .as_deref()
                .is_some_and(|h| h.starts_with("ferry-controller-"))
        {
            break;
        }
        if Instant::now() > deadline {
            let mut why = String::new();
            for pod in pods.list(&Default::default()).await.unwrap().items {
                let name = pod.metadata.name.clone().unwrap_or_default();
                let log = pods.logs(&name, &Default::default()).await.unwrap_or_default();
                let states = pod.status.and_then(|s| s.container_statuses);
                why += &format!("{name}: {states:?}\n{}\n", scenario::tail(&log, 20));
            }
            panic!("the Deployment is not Ready with a leader (Lease holder {holder:?}):\n{why}");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let scale = serde_json::json!({"spec": {"replicas": 0}});
    deployments
        .patch("ferry-controller", &PatchParams::default(), &Patch::Merge(&scale))
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(90);
    let labels = ListParams::default().labels("app.kubernetes.io/name=ferry");
    while !pods.list(&labels).await.unwrap().items.is_empty() {
        assert!(Instant::now() < deadline, "the controller pods did not stop");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Every controller log line is one JSON object; lines logged while reconciling a migration carry the
/// migration and its plan; SIGTERM ends with the controller's own "stopped" line.
fn check_json_logs(text: &str) {
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|err| panic!("not JSON ({err}): {line}")))
        .collect();
    let tagged = lines.iter().find(|line| {
        line["span"]["migration"] == format!("{FERRY_NAMESPACE}/cutover")
            && line["span"]["plan"] == format!("{FERRY_NAMESPACE}/shop")
    });
    assert!(
        tagged.is_some(),
        "no log line names the cutover migration and its plan:\n{}",
        scenario::tail(text, 20)
    );
    let last = lines.last().expect("the controller logged");
    assert_eq!(last["fields"]["message"], "ferry controller stopped", "{last}");
}

/// Permissions granted for code paths this run does not take, each with the path that needs it.
const EXERCISED_ELSEWHERE: &[(&str, &str, &str, &str)] = &[
    (
        "",
        "pods/log",
        "get",
        "a running sender's progress and a failed hook's last lines (migrate_movers_deleted, migrate_hooks); \
         this test's small transfer may end before any look sees its sender running",
    ),
    (
        "migration.ferry.dev",
        "migclusters",
        "get",
        "lookups made before the watch caches have listed once (src/controller/stores.rs; timing-dependent)",
    ),
    (
        "",
        "services",
        "patch",
        "an unset endpointType turning receiver LoadBalancers without an address into NodePorts \
         (migrate_endpoints_and_policies)",
    ),
    (
        "migration.ferry.dev",
        "mighooks",
        "get",
        "the plan reconciler looks up the MigHooks of spec.hooks (migrate_hooks)",
    ),
    (
        "migration.ferry.dev",
        "mighooks/status",
        "patch",
        "the MigHook reconciler writes a hook's conditions (migrate_hooks)",
    ),
    (
        "batch",
        "jobs",
        "create",
        "a plan's hooks run as Jobs (migrate_hooks)",
    ),
    (
        "batch",
        "jobs",
        "delete",
        "Cleanup removes the hook Jobs (migrate_hooks)",
    ),
    (
        "migration.ferry.dev",
        "migmigrations",
        "delete",
        "pruning triggered stages beyond the history limits (triggers)",
    ),
    (
        "events.k8s.io",
        "events",
        "patch",
        "kube's event Recorder raising the count of an Event that repeats (timing-dependent)",
    ),
    (
        "argoproj.io",
        "applications",
        "get",
        "Commit mode waits for the Application's revision (migrate_commit_cutover)",
    ),
    (
        "argoproj.io",
        "applications",
        "patch",
        "pausing selfHeal auto-sync (migrate_endpoints_and_policies)",
    ),
    (
        "externaldns.k8s.io",
        "dnsendpoints",
        "get",
        "the external-dns DNS provider (dns_external_dns)",
    ),
    (
        "externaldns.k8s.io",
        "dnsendpoints",
        "create",
        "the external-dns DNS provider (dns_external_dns)",
    ),
    (
        "externaldns.k8s.io",
        "dnsendpoints",
        "update",
        "the external-dns DNS provider (dns_external_dns)",
    ),
    (
        "migration.ferry.dev",
        "migmigrations",
        "create",
        "scheduled and pushed stages (triggers)",
    ),
    (
        "migration.ferry.dev",
        "migstorages",
        "get",
        "a plan naming a MigStorage (seed_procedure)",
    ),
    (
        "migration.ferry.dev",
        "migstorages/status",
        "patch",
        "the MigStorage reconciler (seed_procedure)",
    ),
    (
        "",
        "namespaces",
        "create",
        "a target namespace that does not exist yet (pipeline_destination)",
    ),
    (
        "",
        "persistentvolumeclaims",
        "create",
        "a target claim that does not exist yet (pipeline_destination)",
    ),
    (
        "networking.k8s.io",
        "networkpolicies",
        "create",
        "transfer.networkPolicies (migrate_endpoints_and_policies)",
    ),
    (
        "networking.k8s.io",
        "networkpolicies",
        "delete",
        "transfer.networkPolicies cleanup (migrate_endpoints_and_policies)",
    ),
    (
        "route.openshift.io",
        "routes",
        "get",
        "the Route mover endpoint on OpenShift",
    ),
    (
        "route.openshift.io",
        "routes",
        "create",
        "the Route mover endpoint on OpenShift",
    ),
    (
        "route.openshift.io",
        "routes",
        "delete",
        "the Route mover endpoint on OpenShift",
    ),
    (
        "",
        "replicationcontrollers",
        "get",
        "Patch-mode start on the target of workload kinds the example app lacks (pipeline_quiesce_patch)",
    ),
    (
        "",
        "replicationcontrollers",
        "patch",
        "Patch-mode quiesce of workload kinds the example app lacks (pipeline_quiesce_patch)",
    ),
    (
        "apps",
        "daemonsets",
        "get",
        "Patch-mode start on the target of workload kinds the example app lacks (pipeline_quiesce_patch)",
    ),
    (
        "apps",
        "daemonsets",
        "patch",
        "Patch-mode quiesce of workload kinds the example app lacks (pipeline_quiesce_patch)",
    ),
    (
        "apps",
        "replicasets",
        "get",
        "Patch-mode start on the target of workload kinds the example app lacks (pipeline_quiesce_patch)",
    ),
    (
        "apps",
        "replicasets",
        "patch",
        "Patch-mode quiesce of workload kinds the example app lacks (pipeline_quiesce_patch)",
    ),
    (
        "apps",
        "statefulsets",
        "get",
        "Patch-mode start on the target of workload kinds the example app lacks (pipeline_quiesce_patch)",
    ),
    (
        "apps",
        "statefulsets",
        "patch",
        "Patch-mode quiesce of workload kinds the example app lacks (pipeline_quiesce_patch)",
    ),
    (
        "apps.openshift.io",
        "deploymentconfigs",
        "get",
        "Patch-mode start on the target of workload kinds the example app lacks (pipeline_quiesce_patch)",
    ),
    (
        "apps.openshift.io",
        "deploymentconfigs",
        "patch",
        "Patch-mode quiesce of workload kinds the example app lacks (pipeline_quiesce_patch)",
    ),
    (
        "batch",
        "cronjobs",
        "get",
        "Patch-mode start on the target of workload kinds the example app lacks (pipeline_quiesce_patch)",
    ),
    (
        "batch",
        "cronjobs",
        "patch",
        "Patch-mode quiesce of workload kinds the example app lacks (pipeline_quiesce_patch)",
    ),
    (
        "batch",
        "jobs",
        "get",
        "Patch-mode start on the target of workload kinds the example app lacks (pipeline_quiesce_patch)",
    ),
    (
        "batch",
        "jobs",
        "patch",
        "Patch-mode quiesce of workload kinds the example app lacks (pipeline_quiesce_patch)",
    ),
];

/// Compares the audit logs of both clusters with the roles: no request was refused, and every
/// granted permission was used by this stage and cutover or is listed in [`EXERCISED_ELSEWHERE`].
fn check_least_privilege(scenario: &Scenario) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let install = root.join("manifests/install/rbac.yaml");
    let remote = root.join("manifests/remote/rbac.yaml");
    let sandbox = &scenario.sandbox;
    let (host_used, host_forbidden) = rbac_audit::used(
        &sandbox.target.dir.join("audit.log"),
        "system:serviceaccount:ferry-system:ferry-controller",
    );
    let (source_used, source_forbidden) = rbac_audit::used(
        &sandbox.source.dir.join("audit.log"),
        "system:serviceaccount:ferry-system:ferry-migration",
    );
    assert!(
        host_forbidden.is_empty() && source_forbidden.is_empty(),
        "requests refused (a missing grant): host {host_forbidden:?}, source {source_forbidden:?}"
    );
    let all_used: std::collections::BTreeSet<_> = host_used.union(&source_used).cloned().collect();
    let mut extra = Vec::new();
    for (manifest, kind, name, used) in [
        (&install, "ClusterRole", "ferry-controller", &host_used),
        (&install, "Role", "ferry-controller-leader-election", &host_used),
        (&remote, "ClusterRole", "ferry-migration", &all_used),
    ] {
        let granted = rbac_audit::granted(manifest, kind, name);
        for permission in rbac_audit::unused(&granted, used, EXERCISED_ELSEWHERE) {
            extra.push(format!("{name}: {permission:?}"));
        }
    }
    assert!(
        extra.is_empty(),
        "granted but never used (remove the grant, or list the code path that needs it):\n{}",
        extra.join("\n")
    );
}
