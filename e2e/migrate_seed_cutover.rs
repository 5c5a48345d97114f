//! Scenario: MTC's procedure as written (`shared/seeds/`, steps 1 to 11 with the apiVersion changed),
//! run to the end on the whole sandbox: a plan of two source namespaces, one mapped to another name
//! (`app2:app2-new`), each with a bound PVC and a workload, no `gitops` and no `transfer` (but a short
//! `loadBalancerWaitSeconds`: the unset `endpointType` falls back to NodePort, and says so, as the
//! real nodes' load-balancer stand-in is held and assigns no address); and step
//! 10 as the seed writes it, a final migration (`quiescePods: true, stage: false`) with no stage
//! before it. It succeeds: the target namespaces and PVCs are created by the cutover itself, both
//! volumes are identical on the target, the source is quiesced, the target (where the app is
//! deployed later, by Argo CD) has nothing to start and the migration says so in a Warn condition,
//! `kubectl describe migmigration` reads like the seed's sample, and no message shows a Rust debug
//! dump. On real nodes: the workloads are the sandbox's app image (the seed's `postgres:16` is an
//! image no sandbox node holds; the files PostgreSQL would keep are written by the test).

#[path = "support/mover.rs"]
mod mover;
#[path = "support/scenario.rs"]
mod scenario;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use base64::Engine as _;
use ferry::api::{MigMigration, MigPlan};
use ferry_sandbox::{Sandbox, SandboxOptions, apply_yaml};
use k8s_openapi::api::apps::v1::Deployment;
use kube::Api;
use scenario::write_files;

const NS: &str = "openshift-migration";
const CONFIG_NS: &str = "openshift-config";
const TIMEOUT: Duration = Duration::from_secs(240);
/// `(source namespace, target namespace)` of the plan.
const NAMESPACES: [(&str, &str); 2] = [("app1", "app1"), ("app2", "app2-new")];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_seed_procedure_runs_to_the_end_with_a_cutover_and_no_stage() {
    let dir = tempfile::Builder::new().prefix("ferry-seed-").tempdir().unwrap();
    let sandbox = Sandbox::start(SandboxOptions {
        dir: dir.path().to_path_buf(),
        ferry_binary: PathBuf::from(env!("CARGO_BIN_EXE_ferry")),
        controller: true,
        nodes: ferry_sandbox::Nodes::Real,
    })
    .await
    .unwrap_or_else(|err| panic!("the sandbox did not start: {err}"));
    // No load balancer answers in either cluster, as in a cluster without one.
    for node in sandbox.nodes() {
        node.hold_load_balancer(true);
    }
    let (source, host) = (sandbox.source_client.clone(), sandbox.host_client.clone());
    let volume = |side: &str, ns: &str| dir.path().join("volumes").join(side).join(ns);

    // The app: per source namespace a PV, a bound claim `data` and a Deployment mounting it; on the
    // target only the PVs a provisioner would offer (the app itself is deployed there later).
    for (src, dest) in NAMESPACES {
        let source_dir = volume("source", src);
        write_files(
            &source_dir,
            &[
                ("PG_VERSION", b"16\n"),
                ("base/1/1259", &[src.len() as u8; 100_000]),
                (
                    "pg_wal/000000010000000000000001",
                    format!("wal of {src}").as_bytes(),
                ),
            ],
        );
        apply_yaml(&source, &app_yaml(src, &source_dir), "default")
            .await
            .unwrap();
        let target_dir = volume("target", dest);
        std::fs::create_dir_all(&target_dir).unwrap();
        apply_yaml(&host, &pv_yaml(dest, &target_dir), "default")
            .await
            .unwrap();
    }

    // The source workloads run (containers on the source node) before the procedure starts, so the
    // cutover quiesces running pods.
    let deadline = Instant::now() + Duration::from_secs(120);
    for (src, _) in NAMESPACES {
        let deployments = Api::<Deployment>::namespaced(source.clone(), src);
        loop {
            let status = deployments.get("db").await.unwrap().status;
            if status.as_ref().and_then(|s| s.available_replicas) == Some(1) {
                break;
            }
            assert!(Instant::now() < deadline, "{src}/db does not run: {status:#?}");
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }

    // Steps 1 to 9, as the seed writes them (apiVersion changed, placeholders filled).
    apply_yaml(
        &host,
        &format!("apiVersion: v1\nkind: Namespace\nmetadata: {{name: {NS}}}\n"),
        "default",
    )
    .await
    .unwrap();
    apply_yaml(
        &host,
        &format!("apiVersion: v1\nkind: Namespace\nmetadata: {{name: {CONFIG_NS}}}\n"),
        "default",
    )
    .await
    .unwrap();
    let token = sandbox
        .source
        .mint_token(NS, "migration-controller", true)
        .unwrap();
    let seed = SEED_RESOURCES
        .replace(
            "${SA_TOKEN}",
            &base64::engine::general_purpose::STANDARD.encode(&token),
        )
        .replace("${SOURCE_URL}", &sandbox.source.url)
        .replace("${SOURCE_CA}", &sandbox.source.ca_bundle().unwrap());
    apply_yaml(&host, &seed, NS).await.unwrap();
    let plans: Api<MigPlan> = Api::namespaced(host.clone(), NS);
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let plan = plans.get("migplan").await.unwrap();
        let status = plan.status.clone().unwrap_or_default();
        let ready = status
            .conditions
            .iter()
            .any(|c| c.type_ == "Ready" && c.is_true());
        if ready && status.volumes.len() == 2 && status.volumes.iter().all(|v| v.bound) {
            break;
        }
        assert!(Instant::now() < deadline, "the plan is not Ready: {status:#?}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }

    // Step 10: the final migration, with no stage before it.
    apply_yaml(&host, STEP_10, NS).await.unwrap();
    // Step 11: watch it; while it runs, `kubectl describe` shows the step count.
    let kubeconfig = sandbox.target.kubeconfig.clone();
    let (mut saw_step, mut saw_reconciling) = (false, false);
    let migrations: Api<MigMigration> = Api::namespaced(host.clone(), NS);
    let deadline = Instant::now() + TIMEOUT;
    let migration = loop {
        let migration = migrations.get("migmigration").await.unwrap();
        let status = migration.status.clone().unwrap_or_default();
        if !saw_step && status.conditions.iter().any(|c| c.type_ == "Running") {
            saw_step = describe(&kubeconfig).contains("Step:");
        }
        saw_reconciling |= status
            .conditions
            .iter()
            .any(|c| c.type_ == "Reconciling" && c.is_true());
        let finished = status
            .conditions
            .iter()
            .any(|c| ["Succeeded", "Failed"].contains(&c.type_.as_str()) && c.is_true());
        if finished {
            break migration;
        }
        assert!(
            Instant::now() < deadline,
            "the migration did not finish: {status:#?}\n{}",
            scenario::tail(
                &std::fs::read_to_string(sandbox.controller_log()).unwrap_or_default(),
                60
            )
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let status = migration.status.clone().unwrap();
    scenario::assert_readable(&status);
    assert!(
        status
            .conditions
            .iter()
            .any(|c| c.type_ == "Succeeded" && c.is_true()),
        "MTC's procedure fails at step 10: {status:#?}\n{}",
        scenario::tail(
            &std::fs::read_to_string(sandbox.controller_log()).unwrap_or_default(),
            60
        )
    );
    assert!(
        saw_step,
        "kubectl describe never showed `Step: N/M` while the migration ran"
    );

    // Both volumes are identical on the target, the mapped one under its new namespace.
    for (src, dest) in NAMESPACES {
        mover::assert_same_tree(&volume("source", src), &volume("target", dest));
    }
    // The cutover created the target PVCs and, without keepAnnotations, removed Ferry's bookkeeping
    // annotation from them at its end.
    for (_, dest) in NAMESPACES {
        let claim = Api::<k8s_openapi::api::core::v1::PersistentVolumeClaim>::namespaced(host.clone(), dest)
            .get("data")
            .await
            .unwrap();
        let annotations = claim.metadata.annotations.unwrap_or_default();
        assert!(
            !annotations.contains_key(ferry::pipeline::labels::SOURCE_PVC),
            "{dest}/data: {annotations:?}"
        );
    }
    // The source is quiesced, with its way back recorded.
    for (src, _) in NAMESPACES {
        let db = Api::<Deployment>::namespaced(source.clone(), src)
            .get("db")
            .await
            .unwrap();
        assert_eq!(db.spec.replicas, Some(0), "{src}/db quiesced");
        assert_eq!(
            db.metadata
                .annotations
                .unwrap_or_default()
                .get("migration.ferry.dev/pre-quiesce-replicas"),
            Some(&"1".to_string())
        );
    }
    // Nothing to start on the target: a warning, not a failure.
    let warning = status
        .conditions
        .iter()
        .find(|c| c.type_ == "NoTargetWorkloads")
        .unwrap_or_else(|| panic!("no NoTargetWorkloads warning: {status:#?}"));
    assert_eq!(warning.category, ferry::api::Category::Warn);
    assert!(
        warning
            .message
            .as_deref()
            .unwrap_or_default()
            .contains("app2-new"),
        "{warning:?}"
    );
    // endpointType unset, two clusters, no Route API and no load balancer: NodePort, and it says why.
    let stage_sync = status
        .pipeline
        .iter()
        .find(|p| p.name == "StageSync")
        .and_then(|p| p.message.clone())
        .unwrap_or_default();
    assert!(
        stage_sync.contains("endpoint NodePort: no Route API and no load-balancer address after 2s"),
        "{stage_sync}"
    );
    // The volume set was fixed when it started.
    let moved = scenario::moved_volumes(&status);
    assert_eq!(moved, ["app1/data", "app2/data"]);

    // kstatus: `kubectl wait` tells a finished migration from a running one.
    assert!(saw_reconciling, "no Reconciling=True while it ran");
    for wanted in ["condition=Succeeded", "condition=Reconciling=False"] {
        let waited = kubectl(
            &kubeconfig,
            &[
                "wait",
                "--for",
                wanted,
                "migmigration/migmigration",
                "-n",
                NS,
                "--timeout=20s",
            ],
        );
        assert!(
            waited.contains("condition met"),
            "kubectl wait --for={wanted}: {waited}"
        );
    }
    // `kubectl get ferry -A` lists every Ferry object; the migration's columns say how it went.
    let listed = kubectl(&kubeconfig, &["get", "ferry", "-A"]);
    eprintln!("kubectl get ferry -A:\n{listed}");
    for expected in [
        "migcluster.migration.ferry.dev/host",
        "migstorage.migration.ferry.dev/migstorage",
        "migplan.migration.ferry.dev/migplan",
        "migmigration.migration.ferry.dev/migmigration",
        "DOWNTIME",
        "Completed",
    ] {
        assert!(
            listed.contains(expected),
            "`kubectl get ferry -A` lacks {expected}:\n{listed}"
        );
    }
    let short = kubectl(&kubeconfig, &["get", "fmig,fplan", "-n", NS]);
    assert!(
        short.contains("migmigration") && short.contains("migplan"),
        "{short}"
    );

    // `kubectl describe` reads like the seed's sample.
    let text = describe(&kubeconfig);
    for expected in [
        "Itinerary:",
        "Final",
        "Phase:",
        "Completed",
        "Pipeline:",
        "FinalSync",
        "Events:",
    ] {
        assert!(
            text.contains(expected),
            "`kubectl describe` lacks {expected:?}:\n{text}"
        );
    }
    for debug in ["Some(", "Status {", "ApiError"] {
        assert!(
            !text.contains(debug),
            "a debug dump in `kubectl describe`:\n{text}"
        );
    }

    scenario::eventually("temporary objects removed", || async {
        scenario::temporary_objects(&sandbox).await.is_empty()
    })
    .await;
    assert!(sandbox.stop().await, "a sandbox process did not exit cleanly");
}

fn describe(kubeconfig: &Path) -> String {
    kubectl(
        kubeconfig,
        &["describe", "migmigration", "migmigration", "-n", NS],
    )
}

/// Real kubectl against the host cluster: stdout and stderr.
fn kubectl(kubeconfig: &Path, args: &[&str]) -> String {
    let output = std::process::Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(args)
        .output()
        .expect("kubectl runs");
    String::from_utf8_lossy(&output.stdout).into_owned() + &String::from_utf8_lossy(&output.stderr)
}

/// A source namespace of the app: PV (hostPath) pre-bound to claim `data`, the claim, a Deployment
/// (the sandbox's busybox image standing by, stopping at once on SIGTERM).
fn app_yaml(ns: &str, dir: &Path) -> String {
    format!(
        "apiVersion: v1\nkind: Namespace\nmetadata: {{name: {ns}}}\n---\n{pv}---\n\
         apiVersion: v1\nkind: PersistentVolumeClaim\nmetadata: {{name: data, namespace: {ns}}}\n\
         spec:\n  accessModes: [ReadWriteOnce]\n  storageClassName: local\n  volumeName: {ns}-data\n  \
         resources: {{requests: {{storage: 1Gi}}}}\n---\n\
         apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: db, namespace: {ns}}}\n\
         spec:\n  replicas: 1\n  selector: {{matchLabels: {{app: db}}}}\n  template:\n    \
         metadata: {{labels: {{app: db}}}}\n    spec:\n      containers:\n        - name: db\n          \
         image: {image}\n          imagePullPolicy: Never\n          \
         command: [sh, -c, 'trap \"exit 0\" TERM; while :; do sleep 1; done']\n          volumeMounts: [{{name: data, mountPath: /var/lib/postgresql/data}}]\n      \
         volumes: [{{name: data, persistentVolumeClaim: {{claimName: data}}}}]\n",
        pv = pv_yaml(ns, dir),
        image = ferry_sandbox::images::APP_IMAGE,
    )
}

fn pv_yaml(ns: &str, dir: &Path) -> String {
    scenario::hostpath_volume(&format!("{ns}-data"), ns, "data", dir)
}

/// Steps 1 to 9 of the seed (`000_…txt`), apiVersion `migration.ferry.dev/v1alpha1`, `<...>` filled in.
const SEED_RESOURCES: &str = "\
apiVersion: migration.ferry.dev/v1alpha1
kind: MigCluster
metadata:
  name: host
  namespace: openshift-migration
spec:
  isHostCluster: true
---
apiVersion: v1
kind: Secret
metadata:
  name: remote-cluster-secret
  namespace: openshift-config
type: Opaque
data:
  saToken: ${SA_TOKEN}
---
apiVersion: migration.ferry.dev/v1alpha1
kind: MigCluster
metadata:
  name: remote
  namespace: openshift-migration
spec:
  exposedRegistryPath: registry.example.com
  insecure: false
  isHostCluster: false
  serviceAccountSecretRef:
    name: remote-cluster-secret
    namespace: openshift-config
  url: ${SOURCE_URL}
  caBundle: ${SOURCE_CA}
---
apiVersion: v1
kind: Secret
metadata:
  name: migstorage-creds
  namespace: openshift-config
type: Opaque
data:
  aws-access-key-id: a2V5LWlk
  aws-secret-access-key: c2VjcmV0
---
apiVersion: migration.ferry.dev/v1alpha1
kind: MigStorage
metadata:
  name: migstorage
  namespace: openshift-migration
spec:
  backupStorageConfig:
    awsBucketName: bucket
    credsSecretRef:
      name: migstorage-creds
      namespace: openshift-config
  backupStorageProvider: aws
  volumeSnapshotConfig:
    credsSecretRef:
      name: migstorage-creds
      namespace: openshift-config
  volumeSnapshotProvider: aws
---
apiVersion: migration.ferry.dev/v1alpha1
kind: MigPlan
metadata:
  name: migplan
  namespace: openshift-migration
spec:
  destMigClusterRef:
    name: host
    namespace: openshift-migration
  indirectImageMigration: false
  indirectVolumeMigration: false
  migStorageRef:
    name: migstorage
    namespace: openshift-migration
  namespaces:
    - app1
    - app2:app2-new
  srcMigClusterRef:
    name: remote
    namespace: openshift-migration
  # Not the seed's: with endpointType unset Ferry tries a LoadBalancer first, which the sandbox (its
  # load-balancer stand-in held) never answers; a short wait keeps this test fast and still takes the
  # NodePort fallback.
  transfer:
    loadBalancerWaitSeconds: 2
";

/// Step 10 of the seed, as written.
const STEP_10: &str = "\
apiVersion: migration.ferry.dev/v1alpha1
kind: MigMigration
metadata:
  name: migmigration
  namespace: openshift-migration
spec:
  migPlanRef:
    name: migplan
    namespace: openshift-migration
  quiescePods: true
  stage: false
  rollback: false
";
