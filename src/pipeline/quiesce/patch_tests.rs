//! Unit tests of the quiesce patches: each kind round-trips to its original state.

use super::*;

/// Applies an RFC 7386 merge patch.
fn merge(target: &mut Value, patch: &Value) {
    json_patch::merge(target, patch);
}

fn roundtrip(kind: Kind, original: Value) {
    let mut object = original.clone();
    let patch = quiesce_patch(kind, &object).expect("a running workload needs a patch");
    merge(&mut object, &patch);
    assert_eq!(
        quiesce_patch(kind, &object),
        None,
        "{kind:?}: quiescing twice must be a no-op"
    );
    let restore = unquiesce_patch(kind, &object).expect("a quiesced workload can be restored");
    merge(&mut object, &restore);
    // The merge leaves empty annotation maps / selectors behind; compare what matters.
    assert_eq!(object["spec"], clean(&original["spec"]), "{kind:?}");
    assert_eq!(
        unquiesce_patch(kind, &object),
        None,
        "{kind:?}: nothing left to restore"
    );
}

fn clean(spec: &Value) -> Value {
    let mut spec = spec.clone();
    if spec["template"]["spec"]["nodeSelector"].is_null() && spec["template"].is_object() {
        spec["template"]["spec"]["nodeSelector"] = json!({});
    }
    spec
}

#[test]
fn every_kind_round_trips() {
    roundtrip(
        Kind::Deployment,
        json!({"metadata": {}, "spec": {"replicas": 3, "paused": true}}),
    );
    roundtrip(
        Kind::StatefulSet,
        json!({"metadata": {"annotations": {"a": "b"}}, "spec": {"replicas": 1}}),
    );
    roundtrip(Kind::ReplicaSet, json!({"metadata": {}, "spec": {"replicas": 2}}));
    roundtrip(
        Kind::ReplicationController,
        json!({"metadata": {}, "spec": {"replicas": 5}}),
    );
    roundtrip(
        Kind::DeploymentConfig,
        json!({"metadata": {}, "spec": {"replicas": 2}}),
    );
    roundtrip(Kind::Job, json!({"metadata": {}, "spec": {"parallelism": 4}}));
    roundtrip(
        Kind::CronJob,
        json!({"metadata": {}, "spec": {"suspend": false, "schedule": "* * * * *"}}),
    );
    roundtrip(
        Kind::DaemonSet,
        json!({"metadata": {}, "spec": {"template": {"spec": {"nodeSelector": {"disk": "ssd"}}}}}),
    );
}

#[test]
fn the_original_value_is_recorded_in_the_same_patch_that_stops_the_workload() {
    let patch = quiesce_patch(Kind::Deployment, &json!({"spec": {"replicas": 3}})).unwrap();
    assert_eq!(patch["metadata"]["annotations"][PRE_REPLICAS], "3");
    assert_eq!(patch["spec"]["replicas"], 0);
}

#[test]
fn a_retried_quiesce_keeps_the_original_record() {
    // Quiesced, then something (a GitOps sync) scaled it up again: the record must stay 3, not 2.
    let object = json!({"metadata": {"annotations": {PRE_REPLICAS: "3"}}, "spec": {"replicas": 2}});
    let patch = quiesce_patch(Kind::Deployment, &object).unwrap();
    assert!(patch.get("metadata").is_none());
    assert_eq!(patch["spec"]["replicas"], 0);
}

#[test]
fn a_suspended_cronjob_comes_back_suspended() {
    let mut object = json!({"metadata": {}, "spec": {"suspend": true}});
    let patch = quiesce_patch(Kind::CronJob, &object).unwrap();
    merge(&mut object, &patch);
    let restore = unquiesce_patch(Kind::CronJob, &object).unwrap();
    merge(&mut object, &restore);
    assert_eq!(object["spec"]["suspend"], true);
}

#[test]
fn owned_objects_are_left_to_their_owner() {
    let owned = json!({"metadata": {"ownerReferences": [{"kind": "Deployment", "name": "web"}]}});
    assert!(Kind::ReplicaSet.is_owned_elsewhere(&owned));
    assert!(!Kind::Deployment.is_owned_elsewhere(&owned));
    let by_cron = json!({"metadata": {"ownerReferences": [{"kind": "CronJob", "name": "nightly"}]}});
    assert!(Kind::Job.is_owned_elsewhere(&by_cron));
    // A hook's Job in the app's namespace is Ferry's, not the app's: never quiesced nor started.
    let hook = json!({"metadata": {"labels": {crate::pipeline::labels::MIGRATION_UID: "1234"}}});
    assert!(Kind::Job.is_owned_elsewhere(&hook));
    assert!(!Kind::Job.is_owned_elsewhere(&json!({"metadata": {"labels": {"app": "db"}}})));
}

#[test]
fn the_target_gets_the_value_recorded_on_the_source_and_no_record_of_its_own() {
    let source = json!({"metadata": {"annotations": {PRE_REPLICAS: "3"}}, "spec": {"replicas": 0}});
    assert_eq!(
        restore_on_target_patch(Kind::StatefulSet, &source),
        Some(json!({"spec": {"replicas": 3}}))
    );
    let untouched = json!({"metadata": {}, "spec": {"replicas": 2}});
    assert_eq!(restore_on_target_patch(Kind::Deployment, &untouched), None);
}
