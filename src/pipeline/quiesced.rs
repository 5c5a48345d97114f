//! EnsureSourceQuiesced: the final sync may only start once no pod mounts the PVCs being moved, so
//! nothing writes behind rsync's back. Pure: which pods still hold which claims.

use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;

use crate::api::plan::DiscoveredVolume;

/// `namespace/pod → namespace/claim` for every pod that still mounts one of `volumes`. Terminating pods
/// count too (they may write until they are gone); pods that ran to completion do not.
pub fn pods_still_mounting(pods: &[Pod], volumes: &[DiscoveredVolume]) -> Vec<String> {
    let mut holding = Vec::new();
    for pod in pods {
        let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
        let finished = matches!(phase, Some("Succeeded") | Some("Failed"));
        if finished {
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
            pods_still_mounting(&pods, &[volume("data")]),
            ["app/db-0 → app/data", "app/db-1 → app/data"]
        );
        assert!(pods_still_mounting(&pods[2..3], &[volume("data")]).is_empty());
    }
}
