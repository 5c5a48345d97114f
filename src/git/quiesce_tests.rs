//! Tests of quiesce planning and of the round trip quiesce → unquiesce through the in-place editor.

use super::*;
use crate::git::manifests::parse_file;
use crate::git::yaml::edit;

const SOURCE: &str = r#"# Shop, source cluster
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: shop}
spec:
  replicas: 3 # scaled by hand
---
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: agent}
spec:
  template:
    spec:
      nodeSelector: {disk: ssd}
      containers: [{name: a}]
---
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: logs}
spec:
  template:
    spec:
      containers:
      - name: l
---
apiVersion: batch/v1
kind: Job
metadata: {name: once}
spec:
  parallelism: 2
---
apiVersion: batch/v1
kind: CronJob
metadata: {name: nightly}
spec:
  schedule: "0 3 * * *"
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: db}
spec: {serviceName: db}
"#;

fn apply_all(files: &mut BTreeMap<String, String>, edits: &[FileEdit]) {
    for edit in edits {
        let text = files.get(&edit.path).unwrap();
        let out = edit::apply(text, edit.document, &edit.patch).unwrap();
        files.insert(edit.path.clone(), out);
    }
}

fn manifests(files: &BTreeMap<String, String>) -> Manifests {
    Manifests {
        files: files
            .iter()
            .map(|(path, text)| parse_file(path, text).unwrap())
            .collect(),
    }
}

#[test]
fn quiesce_sets_each_kind_and_records_previous_values() {
    let files = BTreeMap::from([("app.yaml".to_string(), SOURCE.to_string())]);
    let plan = plan(&manifests(&files));
    let recorded: Vec<_> = plan
        .recorded
        .iter()
        .map(|r| (r.name.as_str(), r.field.as_str(), r.previous.clone()))
        .collect();
    assert_eq!(
        recorded,
        vec![
            ("web", "/spec/replicas", Some(3.into())),
            (
                "agent",
                "/spec/template/spec/nodeSelector",
                Some(serde_json::json!({"disk": "ssd"}))
            ),
            ("logs", "/spec/template/spec/nodeSelector", None),
            ("once", "/spec/parallelism", Some(2.into())),
            ("nightly", "/spec/suspend", None),
            ("db", "/spec/replicas", None),
        ]
    );
    let mut quiesced = files.clone();
    apply_all(&mut quiesced, &plan.edits);
    let text = &quiesced["app.yaml"];
    assert!(!text.contains("replicas: 3 # scaled by hand") && text.contains("replicas: 0 # scaled by hand"));
    assert!(
        text.contains("nodeSelector: {disk: ssd, migration.ferry.dev/quiesced: \"true\"}"),
        "{text}"
    );
    assert!(
        text.contains("      nodeSelector:\n        migration.ferry.dev/quiesced: \"true\"\n"),
        "{text}"
    );
    assert!(text.contains("  parallelism: 0\n"));
    assert!(
        text.contains("  schedule: \"0 3 * * *\"\n  suspend: true\n"),
        "{text}"
    );
    assert!(text.contains("spec: {serviceName: db, replicas: 0}"), "{text}");

    // Planning again on the quiesced files changes nothing: the quiesce is idempotent.
    let again = super::plan(&manifests(&quiesced));
    assert!(again.edits.is_empty(), "{:?}", again.edits);
    assert!(again.recorded.iter().all(|r| !r.changed));

    // Unquiesce with the recorded values gives back the original bytes.
    let restore = unquiesce_plan(&manifests(&quiesced), &plan.recorded).unwrap();
    let mut restored = quiesced.clone();
    apply_all(&mut restored, &restore);
    pretty_assertions::assert_eq!(restored["app.yaml"], SOURCE);
}

#[test]
fn kustomize_replicas_entries_are_set_to_zero_and_restored_on_a_target_copy() {
    let kustomization =
        "resources: [app.yaml]\nreplicas:\n- name: web # front\n  count: 4\n- name: api\n  count: 2\n";
    let files = BTreeMap::from([("src/kustomization.yaml".to_string(), kustomization.to_string())]);
    let plan = plan(&manifests(&files));
    assert_eq!(plan.recorded.len(), 2);
    let mut quiesced = files.clone();
    apply_all(&mut quiesced, &plan.edits);
    assert_eq!(
        quiesced["src/kustomization.yaml"],
        "resources: [app.yaml]\nreplicas:\n- name: web # front\n  count: 0\n- name: api\n  count: 0\n"
    );
    // The target path holds its own copy at zero; unquiesce brings the source's counts there.
    let target = BTreeMap::from([(
        "dst/kustomization.yaml".to_string(),
        quiesced["src/kustomization.yaml"].clone(),
    )]);
    let edits = unquiesce_plan(&manifests(&target), &plan.recorded).unwrap();
    let mut started = target.clone();
    apply_all(&mut started, &edits);
    assert_eq!(started["dst/kustomization.yaml"], kustomization);
}

#[test]
fn unquiesce_with_a_missing_object_is_a_clear_error() {
    let recorded = vec![RecordedValue {
        kind: "Deployment".into(),
        namespace: Some("shop".into()),
        name: "gone".into(),
        field: "/spec/replicas".into(),
        previous: Some(2.into()),
        changed: true,
    }];
    let err = unquiesce_plan(&Manifests::default(), &recorded).unwrap_err();
    assert!(err.to_string().contains("no Deployment named shop/gone"), "{err}");
}

#[test]
fn list_items_and_block_scalars_neighbours_are_edited_in_place() {
    let list = "apiVersion: v1\nkind: List\nitems:\n- apiVersion: apps/v1\n  kind: Deployment\n  metadata: {name: a}\n  spec:\n    replicas: 2\n    template:\n      metadata:\n        annotations:\n          note: |\n            keep\n            this\n";
    let files = BTreeMap::from([("list.yaml".to_string(), list.to_string())]);
    let plan = plan(&manifests(&files));
    assert_eq!(plan.edits[0].patch.0.len(), 1);
    let mut quiesced = files.clone();
    apply_all(&mut quiesced, &plan.edits);
    assert_eq!(quiesced["list.yaml"], list.replace("replicas: 2", "replicas: 0"));
}
