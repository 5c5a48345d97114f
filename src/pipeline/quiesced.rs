//! EnsureSourceQuiesced: the final sync may only start once no pod mounts the PVCs being moved, so
//! nothing writes behind rsync's back. Pure: which pods still hold which claims.

use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;

use crate::api::plan::DiscoveredVolume;
use crate::pipeline::{labels, movers};

/// `namespace/pod → namespace/claim` for every pod that still mounts one of `volumes`. Terminating pods
/// count too (they may write until they are gone); pods that ran to completion do not, nor do the
/// senders of migration `own_uid` (they mount the claims read-only: the cutover's held final senders
/// wait there for this very step to end).
pub fn pods_still_mounting(pods: &[Pod], volumes: &[DiscoveredVolume], own_uid: &str) -> Vec<String> {
    let mut holding = Vec::new();
    for pod in pods {
        let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
        let finished = matches!(phase, Some("Succeeded") | Some("Failed"));
        if finished || own_sender(pod, own_uid) {
            continue;
        }
        let ns = pod.namespace().unwrap_or_default();
        for volume in volumes
            .iter()
            .filter(|v| v.namespace == ns && mounts(pod, &v.name))
        {
            holding.push(format!("{ns}/{} → {ns}/{}", pod.name_any(), volume.name));
        }
    }
    holding
}

/// Whether `pod` is a sender of migration `uid` (by its labels).
fn own_sender(pod: &Pod, uid: &str) -> bool {
    let labels = pod.labels();
    !uid.is_empty()
        && labels.get(labels::MIGRATION_UID).map(String::as_str) == Some(uid)
        && labels.get(movers::ROLE).map(String::as_str) == Some("send")
}

/// Whether `pod` mounts the claim `claim` (of its own namespace).
pub fn mounts(pod: &Pod, claim: &str) -> bool {
    pod.spec
        .as_ref()
        .and_then(|s| s.volumes.as_ref())
        .is_some_and(|volumes| {
            volumes.iter().any(|v| {
                v.persistent_volume_claim
                    .as_ref()
                    .is_some_and(|c| c.claim_name == claim)
            })
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(name: &str, claim: &str, phase: &str, terminating: bool) -> Pod {
        let mut value = serde_json::json!({
            "metadata": {"name": name, "namespace": "app"},
            "spec": {"containers": [{"name": "c"}],
                     "volumes": [{"name": "v", "persistentVolumeClaim": {"claimName": claim}}]},
            "status": {"phase": phase}
        });
        if terminating {
            value["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z".into();
        }
        serde_json::from_value(value).unwrap()
    }

    fn volume(name: &str) -> DiscoveredVolume {
        DiscoveredVolume {
            name: name.into(),
            namespace: "app".into(),
            ..DiscoveredVolume::default()
        }
    }

    #[test]
    fn running_and_terminating_pods_hold_their_claims_finished_ones_do_not() {
        let pods = [
            pod("db-0", "data", "Running", false),
            pod("db-1", "data", "Running", true),
            pod("job-1", "data", "Succeeded", false),
            pod("web-0", "other", "Running", false),
        ];
        assert_eq!(
            pods_still_mounting(&pods, &[volume("data")], "uid-1"),
            ["app/db-0 → app/data", "app/db-1 → app/data"]
        );
        assert!(pods_still_mounting(&pods[2..3], &[volume("data")], "uid-1").is_empty());
    }

    #[test]
    fn only_this_migrations_own_senders_are_not_counted() {
        let labelled = |uid: &str, role: &str| {
            let mut p = pod(&format!("ferry-{role}-{uid}"), "data", "Running", false);
            p.labels_mut().insert(labels::MIGRATION_UID.into(), uid.into());
            p.labels_mut().insert(movers::ROLE.into(), role.into());
            p
        };
        let pods = [
            labelled("uid-1", "send"),
            labelled("uid-2", "send"),
            labelled("uid-1", "receive"),
        ];
        assert_eq!(
            pods_still_mounting(&pods, &[volume("data")], "uid-1"),
            [
                "app/ferry-send-uid-2 → app/data",
                "app/ferry-receive-uid-1 → app/data"
            ],
            "another migration's sender and anything not a sender still hold the claim"
        );
        assert_eq!(
            pods_still_mounting(&pods[..1], &[volume("data")], "").len(),
            1,
            "no uid: nothing is exempt"
        );
    }
}
