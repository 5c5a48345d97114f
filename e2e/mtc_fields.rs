//! e2e: MTC's API where users meet it. One resource of each kind carrying every field of MTC's
//! v1alpha1 API, with only the apiVersion changed, is applied with the real `kubectl apply
//! --validate=strict` (server-side field validation Strict) and accepted; the fields Ferry does not use
//! are named by one `UnusedFields` Warn condition per object, which does not flap; a playbook MigHook is
//! reported `PlaybookNotSupported`, and the plan naming it `HookNotReady`. A MigPlan whose
//! `persistentVolumes` list has bad entries gets one `InvalidVolumeSelection` condition per problem.

#[path = "support/clusters.rs"]
mod support;

use std::io::Write as _;
use std::process::{Command, Stdio};
use std::time::Duration;

use ferry::api::{Condition, MigCluster, MigHook, MigMigration, MigPlan, MigStorage};
use kube::Api;
use support::{Clusters, apply, condition, namespace, wait_for};

const WAIT: Duration = Duration::from_secs(60);
const NS: &str = "openshift-migration";

#[tokio::test]
async fn every_mtc_field_is_accepted_and_bad_volume_entries_are_each_reported() {
    let clusters = Clusters::start().await;
    let host = clusters.host_client.clone();
    let kubeconfig = clusters.host.kubeconfig.to_str().unwrap().to_string();
    namespace(&host, NS).await;
    namespace(&host, "openshift-config").await;

    // Strict validation is on: a field no schema has is refused, naming it.
    let refused = kubectl_apply(&kubeconfig, &UNKNOWN_FIELD.replace("GROUP", GROUP));
    let why = refused.expect_err("an unknown field was accepted");
    assert!(why.contains("notAField"), "{why}");

    for yaml in [
        MIGCLUSTER,
        MIGSTORAGE,
        MIGPLAN,
        MIGMIGRATION,
        MIGHOOK,
        HOST_CLUSTER,
    ] {
        let yaml = yaml.replace("GROUP", GROUP);
        if let Err(why) = kubectl_apply(&kubeconfig, &yaml) {
            panic!("kubectl apply --validate=strict refused an MTC resource: {why}\n{yaml}");
        }
    }

    let unused = |list: &[Condition]| condition(list, "UnusedFields").and_then(|c| c.message.clone());
    let clusters_api: Api<MigCluster> = Api::namespaced(host.clone(), NS);
    let message = wait_for(&clusters_api, "every-field", WAIT, |c| {
        unused(&c.status.as_ref()?.conditions)
    })
    .await;
    for field in [
        "restartRestic (no Restic)",
        "azureResourceGroup",
        "exposedRegistryPath",
    ] {
        assert!(message.contains(field), "{field} not in {message}");
    }
    assert!(
        !message.contains("refresh"),
        "refresh is honoured, not unused: {message}"
    );
    let storages: Api<MigStorage> = Api::namespaced(host.clone(), NS);
    let message = wait_for(&storages, "every-field", WAIT, |s| {
        unused(&s.status.as_ref()?.conditions)
    })
    .await;
    for field in [
        "awsPublicUrl",
        "awsKmsKeyId",
        "awsSignatureVersion",
        "s3CustomCABundle",
    ] {
        assert!(message.contains(field), "{field} not in {message}");
    }
    let plans: Api<MigPlan> = Api::namespaced(host.clone(), NS);
    let message = wait_for(&plans, "every-field", WAIT, |p| {
        unused(&p.status.as_ref()?.conditions)
    })
    .await;
    for field in [
        "spec.includedResources",
        "spec.labelSelector",
        "spec.liveMigrate (no KubeVirt)",
        "selection.copyMethod",
    ] {
        assert!(message.contains(field), "{field} not in {message}");
    }
    let migrations: Api<MigMigration> = Api::namespaced(host.clone(), NS);
    for honoured in ["spec.closed", "spec.refresh", "spec.hooks"] {
        assert!(
            !message.contains(honoured),
            "{honoured} is honoured, not unused: {message}"
        );
    }
    // The playbook hook is accepted and reported (no Ansible runner); the plan naming it says so.
    let hooks: Api<MigHook> = Api::namespaced(host.clone(), NS);
    let playbook = wait_for(&hooks, "prebackup", WAIT, |h| {
        condition(&h.status.as_ref()?.conditions, "InvalidAnsibleHook").cloned()
    })
    .await;
    assert_eq!(playbook.reason.as_deref(), Some("PlaybookNotSupported"));
    let not_ready = wait_for(&plans, "every-field", WAIT, |p| {
        condition(&p.status.as_ref()?.conditions, "HookNotReady").and_then(|c| c.message.clone())
    })
    .await;
    assert!(not_ready.contains("no Ansible runner"), "{not_ready}");
    // The plan is closed: its migration is held with PlanClosed and runs nothing; the plan says so.
    let held = wait_for(&migrations, "every-field", WAIT, |m| {
        let status = m.status.as_ref()?;
        condition(&status.conditions, "PlanClosed").filter(|c| c.is_true())?;
        Some(status.clone())
    })
    .await;
    assert!(
        held.pipeline.is_empty(),
        "a closed plan's migration ran: {held:?}"
    );
    wait_for(&plans, "every-field", WAIT, |p| {
        condition(&p.status.as_ref()?.conditions, "Closed").map(|_| ())
    })
    .await;

    // Bad entries of the list: each problem is its own Critical condition, the plan is not Ready.
    namespace(&host, "shop").await;
    apply(&host, "shop", PVCS).await;
    apply(&host, NS, &BAD_PLAN.replace("GROUP", GROUP)).await;
    let problems = wait_for(&plans, "bad-volumes", WAIT, |p| {
        let list = &p.status.as_ref()?.conditions;
        let problems: Vec<(String, String)> = list
            .iter()
            .filter(|c| c.type_ == "InvalidVolumeSelection")
            .map(|c| {
                let reason = c.reason.clone().unwrap_or_default();
                (reason, c.message.clone().unwrap_or_default())
            })
            .collect();
        (problems.len() == 4).then_some(problems)
    })
    .await;
    let mut reasons: Vec<&str> = problems.iter().map(|(r, _)| r.as_str()).collect();
    reasons.sort();
    assert_eq!(
        reasons,
        [
            "MissingPvcName",
            "PersistentVolumeClaimNotFound",
            "TargetNameConflict",
            "UnknownAction"
        ],
        "{problems:#?}"
    );
    let message = |reason: &str| &problems.iter().find(|(r, _)| r == reason).unwrap().1;
    assert!(message("PersistentVolumeClaimNotFound").contains("[0] (ghost)"));
    assert!(message("UnknownAction").contains("[3] (data)") && message("UnknownAction").contains("shred"));
    assert!(message("TargetNameConflict").contains("shop/data, shop/logs"));
    assert!(message("MissingPvcName").contains("[2]"));
    let plan = plans.get("bad-volumes").await.unwrap();
    let list = plan.status.unwrap().conditions;
    assert!(!condition(&list, "Ready").unwrap().is_true(), "{list:#?}");

    // No flapping: the condition sets settle and are not rewritten while nothing changes.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let before = plans.get("every-field").await.unwrap().metadata.resource_version;
    tokio::time::sleep(Duration::from_secs(8)).await;
    let after = plans.get("every-field").await.unwrap().metadata.resource_version;
    assert_eq!(before, after, "the plan's status was rewritten");

    clusters.stop();
}

/// Runs `kubectl apply --validate=strict -f -` against the host cluster; stderr on refusal.
fn kubectl_apply(kubeconfig: &str, yaml: &str) -> Result<(), String> {
    let mut child = Command::new("kubectl")
        .args([
            "--kubeconfig",
            kubeconfig,
            "apply",
            "--validate=strict",
            "-f",
            "-",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("kubectl");
    child.stdin.take().unwrap().write_all(yaml.as_bytes()).unwrap();
    let output = child.wait_with_output().unwrap();
    if output.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&output.stderr).into_owned())
    }
}

const GROUP: &str = "migration.ferry.dev/v1alpha1";

const UNKNOWN_FIELD: &str = "\
apiVersion: GROUP
kind: MigCluster
metadata: {name: strict, namespace: openshift-migration}
spec:
  isHostCluster: true
  notAField: true
";

const HOST_CLUSTER: &str = "\
apiVersion: GROUP
kind: MigCluster
metadata: {name: host, namespace: openshift-migration}
spec:
  isHostCluster: true
";

// Every field of MTC's MigCluster spec.
const MIGCLUSTER: &str = "\
apiVersion: GROUP
kind: MigCluster
metadata: {name: every-field, namespace: openshift-migration}
spec:
  isHostCluster: false
  url: https://127.0.0.1:1
  serviceAccountSecretRef: {name: sa-token-remote, namespace: openshift-config}
  caBundle: bm90IGEgY2VydGlmaWNhdGU=
  insecure: false
  exposedRegistryPath: default-route-openshift-image-registry.apps.example.com
  azureResourceGroup: my-resource-group
  restartRestic: true
  refresh: true
";

// Every field of MTC's MigStorage spec.
const MIGSTORAGE: &str = "\
apiVersion: GROUP
kind: MigStorage
metadata: {name: every-field, namespace: openshift-migration}
spec:
  backupStorageProvider: aws
  volumeSnapshotProvider: aws
  backupStorageConfig:
    awsBucketName: migration-bucket
    awsRegion: us-east-1
    awsS3ForcePathStyle: true
    awsS3Url: https://s3.example.com
    awsPublicUrl: https://s3-public.example.com
    awsKmsKeyId: arn:aws:kms:us-east-1:123456789012:key/abcd
    awsSignatureVersion: \"4\"
    s3CustomCABundle: bm90IGEgY2VydGlmaWNhdGU=
    azureStorageAccount: account
    azureStorageContainer: container
    azureResourceGroup: my-resource-group
    gcpBucket: gcp-bucket
    insecure: false
    credsSecretRef: {name: migstorage-creds, namespace: openshift-config}
  volumeSnapshotConfig:
    awsRegion: us-east-1
    azureResourceGroup: my-resource-group
    azureApiTimeout: 2m0s
    snapshotCreationTimeout: 10m0s
    credsSecretRef: {name: migstorage-creds, namespace: openshift-config}
";

// Every field of MTC's MigPlan spec, `persistentVolumes` as MTC's discovery writes it.
const MIGPLAN: &str = "\
apiVersion: GROUP
kind: MigPlan
metadata: {name: every-field, namespace: openshift-migration}
spec:
  srcMigClusterRef: {name: host, namespace: openshift-migration}
  destMigClusterRef: {name: host, namespace: openshift-migration}
  migStorageRef: {name: every-field, namespace: openshift-migration}
  namespaces: [absent]
  indirectImageMigration: false
  indirectVolumeMigration: false
  closed: true
  refresh: true
  liveMigrate: true
  hooks:
  - reference: {name: prebackup, namespace: openshift-migration}
    executionNamespace: absent
    serviceAccount: migration-controller
    phase: PreBackup
  includedResources:
  - {group: '', kind: ConfigMap}
  - {group: apps, kind: Deployment}
  labelSelector:
    matchLabels: {app: shop}
    matchExpressions: [{key: tier, operator: In, values: [db]}]
  persistentVolumes:
  - name: pvc-3f1c
    capacity: 10Gi
    storageClass: standard
    supported: {actions: [copy, move, skip], copyMethods: [filesystem, snapshot]}
    pvc:
      name: data:data-new
      namespace: absent
      accessModes: [ReadWriteOnce]
      volumeMode: Filesystem
      hasReference: true
    selection:
      action: copy
      storageClass: standard
      accessMode: ReadWriteOnce
      copyMethod: filesystem
      verify: true
    staged: false
    capacityConfirmed: false
    proposedCapacity: 10Gi
";

// Every field of MTC's MigMigration spec.
const MIGMIGRATION: &str = "\
apiVersion: GROUP
kind: MigMigration
metadata: {name: every-field, namespace: openshift-migration}
spec:
  migPlanRef: {name: every-field, namespace: openshift-migration}
  stage: true
  quiescePods: false
  keepAnnotations: true
  verify: false
  canceled: false
  rollback: false
  migrateState: false
  runAsRoot: true
  runAsUser: 1000
  runAsGroup: 1000
";

// Every field of MTC's MigHook spec (a playbook hook, as MTC's default kind).
const MIGHOOK: &str = "\
apiVersion: GROUP
kind: MigHook
metadata: {name: prebackup, namespace: openshift-migration}
spec:
  custom: false
  image: quay.io/konveyor/hook-runner:latest
  playbook: LSBob3N0czogYWxsCg==
  targetCluster: source
  activeDeadlineSeconds: 1800
";

const PVCS: &str = "\
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: data, namespace: shop}
spec: {accessModes: [ReadWriteOnce], resources: {requests: {storage: 1Gi}}}
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: logs, namespace: shop}
spec: {accessModes: [ReadWriteOnce], resources: {requests: {storage: 1Gi}}}
";

// 0: a PVC that does not exist; 1: `logs` renamed onto unlisted `data`; 2: no pvc.name; 3: no such action.
const BAD_PLAN: &str = "\
apiVersion: GROUP
kind: MigPlan
metadata: {name: bad-volumes, namespace: openshift-migration}
spec:
  srcMigClusterRef: {name: host, namespace: openshift-migration}
  destMigClusterRef: {name: host, namespace: openshift-migration}
  namespaces: [shop]
  persistentVolumes:
  - pvc: {name: ghost}
  - pvc: {name: logs:data}
  - selection: {action: copy}
  - pvc: {name: data}
    selection: {action: shred}
";
