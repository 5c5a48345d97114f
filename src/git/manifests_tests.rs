//! Tests of manifest discovery on a directory written to a temp dir.

use super::*;

const APP: &str = r#"# the app
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: shop}
spec:
  replicas: 2
---
apiVersion: apps/v1
kind: StatefulSet
metadata:
  name: db
spec:
  replicas: 1
  volumeClaimTemplates:
  - metadata: {name: data}
    spec: {accessModes: [ReadWriteOnce], resources: {requests: {storage: 1Gi}}}
"#;

const LIST: &str = r#"apiVersion: v1
kind: List
items:
- apiVersion: v1
  kind: PersistentVolumeClaim
  metadata: {name: uploads}
  spec: {resources: {requests: {storage: 2Gi}}}
- apiVersion: batch/v1
  kind: CronJob
  metadata: {name: nightly}
  spec: {schedule: "0 3 * * *"}
- apiVersion: v1
  kind: ConfigMap
  metadata: {name: cfg}
"#;

const KUSTOMIZATION: &str = "resources: [app.yaml]\nreplicas:\n- name: web\n  count: 5\n";

fn write(dir: &Path, files: &[(&str, &str)]) {
    for (name, text) in files {
        let path = dir.join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
}

#[test]
fn finds_workloads_claims_and_kustomize_replicas() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        &[
            ("app.yaml", APP),
            ("extra/list.yml", LIST),
            ("kustomization.yaml", KUSTOMIZATION),
            ("README.md", "not yaml"),
            (".git/config.yaml", "ignored: [because hidden"),
        ],
    );
    let manifests = load(dir.path()).unwrap();
    let workloads: Vec<_> = manifests
        .workloads()
        .into_iter()
        .map(|w| (w.kind, w.name, w.location))
        .collect();
    assert_eq!(workloads.len(), 3, "{workloads:?}");
    assert_eq!(
        workloads[0],
        (
            WorkloadKind::Deployment,
            "web".into(),
            Location {
                file: "app.yaml".into(),
                document: 0,
                pointer: "".into()
            }
        )
    );
    assert_eq!(workloads[1].2.document, 1);
    assert_eq!(workloads[2].0, WorkloadKind::CronJob);
    assert_eq!(workloads[2].2.pointer, "/items/1");
    assert_eq!(workloads[2].2.file, "extra/list.yml");

    let claims = manifests.persistent_volume_claims();
    let names: Vec<_> = claims
        .iter()
        .map(|c| (c.name.as_str(), c.stateful_set.as_deref()))
        .collect();
    assert_eq!(names, vec![("data", Some("db")), ("uploads", None)]);
    assert_eq!(claims[0].location.pointer, "/spec/volumeClaimTemplates/0");

    let replicas = manifests.kustomize_replicas();
    assert_eq!(replicas.len(), 1);
    assert_eq!(replicas[0].name, "web");
    assert_eq!(replicas[0].count, Some(5.into()));
}

#[test]
fn parse_errors_name_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        &[
            ("ok.yaml", APP),
            ("sub/broken.yaml", "a: 1\nb:\n  - [unclosed\nc: 2\n"),
        ],
    );
    let err = load(dir.path()).unwrap_err();
    match &err {
        Error::Manifest { file, line, .. } => {
            assert_eq!(file, "sub/broken.yaml");
            assert!((3..=4).contains(line), "{err}");
        }
        other => panic!("unexpected {other:?}"),
    }
    assert!(err.to_string().starts_with("sub/broken.yaml:"), "{err}");
}

#[test]
fn load_at_names_files_relative_to_the_repository_root() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), &[("apps/source/app.yaml", APP)]);
    let manifests = load_at(dir.path(), &dir.path().join("apps/source")).unwrap();
    assert_eq!(manifests.files[0].path, "apps/source/app.yaml");
}
