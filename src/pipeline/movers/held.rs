//! A cutover's final senders, started before the source is quiesced and held until FinalSync
//! releases them (docs/mover.md, "Held senders"): the downtime window then waits for no pod to be
//! scheduled and started. Pure builders and readers; `steps::movers` creates and releases.
//!
//! The pod is the final pass's sender (same name, same volume, same receiver) plus a downward-API
//! volume showing its own [`RELEASE_ANNOTATION`], and `FERRY_MOVER_HOLD_FILE` pointing at it: the
//! sender waits until the file holds text. The release is that annotation, set by the controller; the
//! kubelet rewrites the file when it changes. The pod needs no API access for it.

use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;
use serde_json::json;

use super::{MoverSpec, Pass};
use crate::api::plan::DiscoveredVolume;

/// Annotation marking a sender as held (value [`HELD`]).
pub const HOLD_ANNOTATION: &str = "migration.ferry.dev/hold";
/// The value of [`HOLD_ANNOTATION`].
pub const HELD: &str = "until-released";
/// Annotation releasing a held sender: when it was released (RFC 3339).
pub const RELEASE_ANNOTATION: &str = "migration.ferry.dev/release";
/// Where the release file is mounted.
const RELEASE_DIR: &str = "/etc/ferry-release";

/// The final sender of `volume`, held until released.
pub fn held_send_pod(spec: &MoverSpec, volume: &DiscoveredVolume, connect: &str) -> Pod {
    let mut pod =
        serde_json::to_value(super::send_pod(spec, volume, Pass::Final, connect)).expect("a pod serializes");
    pod["metadata"]["annotations"] = json!({HOLD_ANNOTATION: HELD});
    let spec = &mut pod["spec"];
    spec["volumes"].as_array_mut().expect("volumes").push(json!({
        "name": "release",
        "downwardAPI": {"items": [{
            "path": "release",
            "fieldRef": {"fieldPath": format!("metadata.annotations['{RELEASE_ANNOTATION}']")},
        }]},
    }));
    let container = &mut spec["containers"][0];
    container["volumeMounts"]
        .as_array_mut()
        .expect("mounts")
        .push(json!({"name": "release", "mountPath": RELEASE_DIR, "readOnly": true}));
    container["env"]
        .as_array_mut()
        .expect("env")
        .push(json!({"name": "FERRY_MOVER_HOLD_FILE", "value": format!("{RELEASE_DIR}/release")}));
    serde_json::from_value(pod).expect("a valid pod")
}

/// Whether `pod` was created held.
pub fn is_held(pod: &Pod) -> bool {
    pod.annotations().get(HOLD_ANNOTATION).map(String::as_str) == Some(HELD)
}

/// When `pod` was released, if it was.
pub fn released_at(pod: &Pod) -> Option<k8s_openapi::jiff::Timestamp> {
    pod.annotations().get(RELEASE_ANNOTATION)?.parse().ok()
}

/// The merge patch releasing a held sender at `now`.
pub fn release_patch(now: k8s_openapi::jiff::Timestamp) -> serde_json::Value {
    json!({"metadata": {"annotations": {RELEASE_ANNOTATION: now.to_string()}}})
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::plan::EndpointType;
    use crate::pipeline::movers::tests::{spec as mover_spec, volume as mover_volume};

    fn sample_spec() -> MoverSpec {
        mover_spec(EndpointType::NodePort)
    }

    fn sample_volume() -> DiscoveredVolume {
        mover_volume(&["ReadWriteOnce"], Some("node-a"))
    }

    #[test]
    fn a_held_sender_is_the_final_sender_plus_its_release_file() {
        let (spec, volume) = (sample_spec(), sample_volume());
        let plain = super::super::send_pod(&spec, &volume, Pass::Final, "10.0.0.1:30000");
        let held = held_send_pod(&spec, &volume, "10.0.0.1:30000");
        assert_eq!(
            held.metadata.name, plain.metadata.name,
            "one name: FinalSync finds either"
        );
        assert!(is_held(&held) && !is_held(&plain));
        assert_eq!(released_at(&held), None);
        let container = &held.spec.as_ref().unwrap().containers[0];
        let env = container.env.as_ref().unwrap();
        assert!(
            env.iter().any(|e| e.name == "FERRY_MOVER_HOLD_FILE"
                && e.value.as_deref() == Some("/etc/ferry-release/release"))
        );
        let volumes = held.spec.as_ref().unwrap().volumes.as_ref().unwrap();
        let release = volumes.iter().find(|v| v.name == "release").unwrap();
        let item = &release.downward_api.as_ref().unwrap().items.as_ref().unwrap()[0];
        assert_eq!(
            item.field_ref.as_ref().unwrap().field_path,
            "metadata.annotations['migration.ferry.dev/release']"
        );
        // Nothing else differs: same data mount (read-only), same security context, same receiver.
        assert_eq!(
            held.spec.as_ref().unwrap().security_context,
            plain.spec.as_ref().unwrap().security_context
        );
        assert_eq!(
            container.security_context,
            plain.spec.as_ref().unwrap().containers[0].security_context
        );
    }

    #[test]
    fn the_release_patch_reads_back_as_its_time() {
        let now: k8s_openapi::jiff::Timestamp = "2026-12-02T06:00:00Z".parse().unwrap();
        let mut pod = held_send_pod(&sample_spec(), &sample_volume(), "a:1");
        let patch = release_patch(now);
        let value = patch["metadata"]["annotations"][RELEASE_ANNOTATION]
            .as_str()
            .unwrap();
        pod.annotations_mut()
            .insert(RELEASE_ANNOTATION.into(), value.into());
        assert_eq!(released_at(&pod), Some(now));
    }
}
