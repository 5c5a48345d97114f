use k8s_openapi::api::batch::v1::{JobCondition, JobStatus};
use k8s_openapi::api::core::v1::{ContainerState, ContainerStateWaiting, ContainerStatus, PodStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::*;
use crate::api::ResourceRef;
use crate::pipeline::labels;

fn plan_hook(phase: &str) -> PlanHook {
    PlanHook {
        reference: Some(ResourceRef {
            name: phase.to_ascii_lowercase(),
            namespace: None,
        }),
        execution_namespace: Some("shop".into()),
        service_account: Some("hook-runner".into()),
        phase: Some(phase.into()),
    }
}

fn hook() -> MigHookSpec {
    MigHookSpec {
        custom: true,
        image: "registry.example/flush:1".into(),
        target_cluster: "source".into(),
        active_deadline_seconds: Some(60),
        ..MigHookSpec::default()
    }
}

fn time(text: &str) -> Time {
    Time(text.parse().unwrap())
}

fn job_with(conditions: &[(&str, &str)], succeeded: Option<i32>) -> Job {
    let hook = hook();
    let plan_hook = plan_hook("PreBackup");
    let mut job = job(&JobInput {
        phase: HookPhase::PreBackup,
        plan_hook: &plan_hook,
        hook: &hook,
        uid: "1234",
        plan_name: "shop",
        namespaces: &[],
        labels: BTreeMap::new(),
    });
    job.status = Some(JobStatus {
        start_time: Some(time("2026-12-01T10:00:00Z")),
        completion_time: succeeded.map(|_| time("2026-12-01T10:00:04Z")),
        succeeded,
        conditions: Some(
            conditions
                .iter()
                .map(|(type_, reason)| JobCondition {
                    type_: type_.to_string(),
                    status: "True".into(),
                    reason: Some(reason.to_string()),
                    last_transition_time: Some(time("2026-12-01T10:00:02Z")),
                    ..JobCondition::default()
                })
                .collect(),
        ),
        ..JobStatus::default()
    });
    job
}

const NOW: &str = "2026-12-01T10:00:07Z";

#[test]
fn the_hook_of_a_phase_is_selected() {
    let plan = MigPlanSpec {
        hooks: vec![plan_hook("PreBackup"), plan_hook("PostRestore")],
        ..MigPlanSpec::default()
    };
    assert_eq!(
        selected(&plan, HookPhase::PreBackup)
            .and_then(|h| h.reference.clone())
            .unwrap()
            .name,
        "prebackup"
    );
    assert!(selected(&plan, HookPhase::PostRestore).is_some());
    assert!(selected(&plan, HookPhase::PostBackup).is_none());
    assert!(selected(&MigPlanSpec::default(), HookPhase::PreRestore).is_none());
}

#[test]
fn the_job_runs_the_image_once_within_its_deadline_labelled_for_cleanup() {
    let hook = hook();
    let plan_hook = plan_hook("PostRestore");
    let namespaces = ["shop".to_string(), "db:db-new".to_string()];
    let job = job(&JobInput {
        phase: HookPhase::PostRestore,
        plan_hook: &plan_hook,
        hook: &hook,
        uid: "0f6c7a6e-3d61-4c59-9d2b-8a3bd1a5e0b1",
        plan_name: "shop",
        namespaces: &namespaces,
        labels: labels::temporary_labels("ferry", "shop", "0f6c7a6e-3d61-4c59-9d2b-8a3bd1a5e0b1"),
    });
    let name = job.metadata.name.clone().unwrap();
    assert_eq!(name, "ferry-postrestore-0f6c7a6e-3d61-4c59-9d2b-8a3bd1a5e0b1");
    // The Job controller adds a 5-character suffix for its pod: still a valid name.
    assert!(name.len() + 6 <= 63, "{name}");
    assert_eq!(job.metadata.namespace.as_deref(), Some("shop"));
    let job_labels = job.metadata.labels.clone().unwrap();
    assert_eq!(
        job_labels.get(labels::MIGRATION_UID).map(String::as_str),
        Some("0f6c7a6e-3d61-4c59-9d2b-8a3bd1a5e0b1")
    );
    assert_eq!(
        job_labels.get(HOOK_PHASE).map(String::as_str),
        Some("PostRestore")
    );
    let spec = job.spec.unwrap();
    assert_eq!(spec.backoff_limit, Some(0));
    assert_eq!(spec.active_deadline_seconds, Some(60));
    assert_eq!(spec.template.metadata.unwrap().labels.unwrap(), job_labels);
    let pod = spec.template.spec.unwrap();
    assert_eq!(pod.restart_policy.as_deref(), Some("Never"));
    assert_eq!(pod.service_account_name.as_deref(), Some("hook-runner"));
    let container = &pod.containers[0];
    assert_eq!(container.name, CONTAINER);
    assert_eq!(container.image.as_deref(), Some("registry.example/flush:1"));
    assert_eq!(container.command, None, "the image runs its own entrypoint");
    let env: Vec<(String, String)> = container
        .env
        .iter()
        .flatten()
        .map(|e| (e.name.clone(), e.value.clone().unwrap()))
        .collect();
    assert!(env.contains(&("MIGRATION_NAMESPACES".into(), "shop,db:db-new".into())));
    assert!(env.contains(&("MIGRATION_PLAN_NAME".into(), "shop".into())));
    // MTC's default deadline when the hook sets none (or 0).
    let hook = MigHookSpec {
        active_deadline_seconds: Some(0),
        ..hook
    };
    let job = super::job(&JobInput {
        phase: HookPhase::PreBackup,
        plan_hook: &plan_hook,
        hook: &hook,
        uid: "1",
        plan_name: "shop",
        namespaces: &[],
        labels: BTreeMap::new(),
    });
    assert_eq!(job.spec.unwrap().active_deadline_seconds, Some(1800));
}

/// Idempotence: only a missing Job is created; an existing one (after a restart, or a second look) is
/// followed to its end, and a succeeded one is never run again.
#[test]
fn an_existing_job_is_followed_never_created_again() {
    assert_eq!(decide(None, &[], NOW), Decision::Create);
    let running = job_with(&[], None);
    assert_eq!(
        decide(Some(&running), &[], NOW),
        Decision::Wait { seconds: Some(7.0) }
    );
    let done = job_with(&[("Complete", "")], Some(1));
    assert_eq!(
        decide(Some(&done), &[], NOW),
        Decision::Succeeded { seconds: Some(4.0) }
    );
    // Kubernetes 1.31+ may report success by the count before the condition.
    let counted = job_with(&[], Some(1));
    assert!(matches!(
        decide(Some(&counted), &[], NOW),
        Decision::Succeeded { .. }
    ));
}

#[test]
fn a_failed_or_timed_out_job_fails_with_the_reason() {
    let failed = job_with(&[("Failed", "BackoffLimitExceeded")], None);
    assert_eq!(
        decide(Some(&failed), &[], NOW),
        Decision::Failed {
            why: "its pod failed".into(),
            seconds: Some(2.0)
        }
    );
    let late = job_with(&[("FailureTarget", "DeadlineExceeded")], None);
    let Decision::Failed { why, .. } = decide(Some(&late), &[], NOW) else {
        panic!("a job past its deadline failed");
    };
    assert_eq!(why, "it ran past its activeDeadlineSeconds (60s)");
}

#[test]
fn a_pod_that_cannot_pull_its_image_fails_at_once() {
    let pod = Pod {
        status: Some(PodStatus {
            container_statuses: Some(vec![ContainerStatus {
                name: CONTAINER.into(),
                state: Some(ContainerState {
                    waiting: Some(ContainerStateWaiting {
                        reason: Some("ErrImagePull".into()),
                        message: Some("failed to pull image\n\"flush:1\": not found".into()),
                    }),
                    ..ContainerState::default()
                }),
                ..ContainerStatus::default()
            }]),
            ..PodStatus::default()
        }),
        ..Pod::default()
    };
    assert_eq!(
        decide(Some(&job_with(&[], None)), &[pod], NOW),
        Decision::CannotStart {
            why: "ErrImagePull: failed to pull image \"flush:1\": not found".into()
        }
    );
}

#[test]
fn the_log_tail_is_a_few_short_lines_on_one_line() {
    let log = "one\n\ntwo\nthree\nfour\nfive\nsix\n";
    assert_eq!(log_tail(log), "two | three | four | five | six");
    let long = "x".repeat(500);
    assert_eq!(log_tail(&long).len(), 200);
    assert_eq!(log_tail(""), "");
    assert_eq!(duration(Some(2.34)), " in 2.3s");
    assert_eq!(duration(Some(42.4)), " in 42s");
    assert_eq!(duration(None), "");
    let progress = vec!["log: waiting for the lock".to_string()];
    assert_eq!(logged_before(&progress), Some("waiting for the lock"));
    assert_eq!(logged_before(&[]), None);
}
