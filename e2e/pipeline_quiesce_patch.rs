//! e2e: Patch-mode quiesce on a real control plane (with its controller-manager): every workload kind
//! stops, its previous value recorded in an annotation in the same write; the Deployment's pods go
//! away; quiescing again changes nothing; unquiesce brings every workload back exactly as it was.

use std::time::{Duration, Instant};

use ferry::pipeline::quiesce::patch::{NO_NODE_KEY, PRE_REPLICAS};
use ferry::pipeline::quiesce::{quiesce_namespace, unquiesce_namespace};
use ferry_sandbox::{ControlPlane, apply_yaml, wait_for_default_service_account};
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::{Pod, ReplicationController};
use kube::api::ListParams;
use kube::{Api, Client, ResourceExt};

const NS: &str = "shop";

#[tokio::test]
async fn every_workload_kind_is_stopped_and_restored() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = ControlPlane::start("source", dir.path(), &["node-a"]).unwrap();
    let client = cluster.client().await.unwrap();
    apply_yaml(
        &client,
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: shop}\n",
        NS,
    )
    .await
    .unwrap();
    wait_for_default_service_account(&client, NS).await.unwrap();
    apply_yaml(&client, WORKLOADS, NS).await.unwrap();
    wait_until(
        || async { pod_count(&client).await >= 3 },
        "the Deployment's pods to exist",
    )
    .await;
    let before = snapshot(&client).await;

    let first = quiesce_namespace(&client, NS).await.unwrap();
    let mut changed = first.changed.clone();
    changed.sort();
    assert_eq!(
        changed,
        [
            "CronJob/nightly",
            "DaemonSet/agent",
            "Deployment/web",
            "Job/import",
            "ReplicaSet/bare",
            "ReplicationController/legacy",
            "StatefulSet/db"
        ]
    );
    let deployment = Api::<Deployment>::namespaced(client.clone(), NS)
        .get("web")
        .await
        .unwrap();
    assert_eq!(deployment.spec.replicas, Some(0));
    assert_eq!(
        deployment.annotations().get(PRE_REPLICAS).map(String::as_str),
        Some("3")
    );
    let daemonset = Api::<DaemonSet>::namespaced(client.clone(), NS)
        .get("agent")
        .await
        .unwrap();
    let selector = daemonset.spec.template.spec.unwrap().node_selector.unwrap();
    assert_eq!(selector.get(NO_NODE_KEY).map(String::as_str), Some("true"));
    assert_eq!(selector.get("disk").map(String::as_str), Some("ssd"));
    let cron = Api::<CronJob>::namespaced(client.clone(), NS)
        .get("nightly")
        .await
        .unwrap();
    assert_eq!(cron.spec.suspend, Some(true));
    let job = Api::<Job>::namespaced(client.clone(), NS)
        .get("import")
        .await
        .unwrap();
    assert_eq!(job.spec.unwrap().parallelism, Some(0));
    // The controller-manager follows: the Deployment's ReplicaSet scales down and its pods go away.
    wait_until(
        || async { pods_of(&client, "web").await == 0 },
        "the web pods to be deleted",
    )
    .await;
    // The ReplicaSet the Deployment owns is not in `changed` above: it is left to its Deployment (whose
    // controller copies the Deployment's annotations, the pre-quiesce record included, onto it).
    let again = quiesce_namespace(&client, NS).await.unwrap();
    assert!(
        again.changed.is_empty(),
        "quiescing twice changed {:?}",
        again.changed
    );

    let restored = unquiesce_namespace(&client, NS).await.unwrap();
    assert_eq!(restored.changed.len(), 7);
    assert_eq!(
        snapshot(&client).await,
        before,
        "unquiesce did not restore the original state"
    );
    wait_until(
        || async { pods_of(&client, "web").await == 3 },
        "the web pods to come back",
    )
    .await;
    assert!(unquiesce_namespace(&client, NS).await.unwrap().changed.is_empty());
    assert!(cluster.stop());
}

/// The quiesce-relevant fields of every workload, and whether any Ferry annotation is left.
async fn snapshot(client: &Client) -> Vec<String> {
    let ns = |k: &str, n: String, v: String| format!("{k}/{n}: {v}");
    let mut lines = Vec::new();
    for d in Api::<Deployment>::namespaced(client.clone(), NS)
        .list(&Default::default())
        .await
        .unwrap()
    {
        lines.push(ns(
            "Deployment",
            d.name_any(),
            format!("{:?} {:?}", d.spec.replicas, d.spec.paused),
        ));
        lines.push(format!("annotations {:?}", ferry_annotations(d.annotations())));
    }
    for s in Api::<StatefulSet>::namespaced(client.clone(), NS)
        .list(&Default::default())
        .await
        .unwrap()
    {
        lines.push(ns("StatefulSet", s.name_any(), format!("{:?}", s.spec.replicas)));
    }
    for r in Api::<ReplicationController>::namespaced(client.clone(), NS)
        .list(&Default::default())
        .await
        .unwrap()
    {
        lines.push(ns(
            "ReplicationController",
            r.name_any(),
            format!("{:?}", r.spec.unwrap().replicas),
        ));
    }
    for d in Api::<DaemonSet>::namespaced(client.clone(), NS)
        .list(&Default::default())
        .await
        .unwrap()
    {
        let selector = d.spec.template.spec.unwrap().node_selector;
        lines.push(ns(
            "DaemonSet",
            d.metadata.name.clone().unwrap(),
            format!("{selector:?}"),
        ));
    }
    for j in Api::<Job>::namespaced(client.clone(), NS)
        .list(&Default::default())
        .await
        .unwrap()
    {
        lines.push(ns(
            "Job",
            j.name_any(),
            format!("{:?}", j.spec.unwrap().parallelism),
        ));
    }
    for c in Api::<CronJob>::namespaced(client.clone(), NS)
        .list(&Default::default())
        .await
        .unwrap()
    {
        lines.push(ns("CronJob", c.name_any(), format!("{:?}", c.spec.suspend)));
    }
    lines
}

fn ferry_annotations(annotations: &std::collections::BTreeMap<String, String>) -> Vec<&String> {
    annotations
        .keys()
        .filter(|k| k.starts_with("migration.ferry.dev/"))
        .collect()
}

async fn pod_count(client: &Client) -> usize {
    Api::<Pod>::namespaced(client.clone(), NS)
        .list(&Default::default())
        .await
        .unwrap()
        .items
        .len()
}

async fn pods_of(client: &Client, app: &str) -> usize {
    let params = ListParams::default().labels(&format!("app={app}"));
    let pods = Api::<Pod>::namespaced(client.clone(), NS)
        .list(&params)
        .await
        .unwrap()
        .items;
    pods.iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .count()
}

async fn wait_until<F, Fut>(check: F, what: &str)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(60);
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

const WORKLOADS: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 3
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec: {containers: [{name: web, image: nginx}]}
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: db}
spec:
  replicas: 2
  serviceName: db
  selector: {matchLabels: {app: db}}
  template:
    metadata: {labels: {app: db}}
    spec: {containers: [{name: db, image: postgres}]}
---
apiVersion: apps/v1
kind: ReplicaSet
metadata: {name: bare}
spec:
  replicas: 2
  selector: {matchLabels: {app: bare}}
  template:
    metadata: {labels: {app: bare}}
    spec: {containers: [{name: c, image: busybox}]}
---
apiVersion: v1
kind: ReplicationController
metadata: {name: legacy}
spec:
  replicas: 1
  selector: {app: legacy}
  template:
    metadata: {labels: {app: legacy}}
    spec: {containers: [{name: c, image: busybox}]}
---
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: agent}
spec:
  selector: {matchLabels: {app: agent}}
  template:
    metadata: {labels: {app: agent}}
    spec:
      nodeSelector: {disk: ssd}
      containers: [{name: c, image: busybox}]
---
apiVersion: batch/v1
kind: Job
metadata: {name: import}
spec:
  parallelism: 2
  template:
    spec:
      restartPolicy: Never
      containers: [{name: c, image: busybox}]
---
apiVersion: batch/v1
kind: CronJob
metadata: {name: nightly}
spec:
  schedule: "0 3 * * *"
  jobTemplate:
    spec:
      template:
        spec:
          restartPolicy: Never
          containers: [{name: c, image: busybox}]
"#;
