//! Which PersistentVolumeClaims a plan moves, and what the controller discovered about them.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::NAME_MAPPING_PATTERN;

/// Selection of PVCs, renames and target overrides. With no selection every PVC in the plan's source
/// namespaces moves under its own name.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PersistentVolumes {
    /// Only these PVCs (`name` or `namespace/name`); all when empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub include: Vec<String>,
    /// Never these PVCs (`name` or `namespace/name`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exclude: Vec<String>,
    /// Only PVCs carrying all of these labels.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub match_labels: BTreeMap<String, String>,
    /// Per-PVC renames and target overrides.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub overrides: Vec<VolumeOverride>,
}

/// Rename and override settings for one PVC.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct VolumeOverride {
    /// `src` or `src:dest`: the source PVC name and, optionally, its name in the target.
    #[schemars(regex(pattern = NAME_MAPPING_PATTERN))]
    pub pvc: String,
    /// Source namespace of the PVC; any of the plan's namespaces when empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Storage class of the target PVC; the source's when empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_class: Option<String>,
    /// Access modes of the target PVC; the source's when empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub access_modes: Vec<String>,
}

/// A PVC found in a source namespace, as reported in `MigPlan.status.volumes`.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DiscoveredVolume {
    /// PVC name in the source.
    pub name: String,
    /// UID of the source PVC: a migration moves this claim, not whatever later has its name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<String>,
    /// Source namespace.
    pub namespace: String,
    /// PVC name in the target (after renames).
    pub target_name: String,
    /// Target namespace (after namespace mapping).
    pub target_namespace: String,
    /// Requested (or, when bound, actual) capacity, e.g. `10Gi`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<String>,
    /// Storage class in the source.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_class: Option<String>,
    /// Access modes in the source.
    #[serde(default)]
    pub access_modes: Vec<String>,
    /// Whether the PVC is bound to a PersistentVolume.
    pub bound: bool,
    /// The bound PersistentVolume.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volume_name: Option<String>,
    /// The node of a pod mounting the PVC, when one does (send pods must run there for RWO volumes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// Pods mounting the PVC.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pods: Vec<String>,
}

impl DiscoveredVolume {
    /// `namespace/name` of the source PVC, for messages.
    pub fn source_key(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }

    /// A short, stable id of this volume within a migration (8 hex digits of FNV-1a over the source
    /// PVC's UID, or its namespace and name when the UID is unknown): mover objects are named and
    /// matched by it, never by the volume's position in a list.
    pub fn id(&self) -> String {
        let key = match &self.uid {
            Some(uid) => uid.clone(),
            None => self.source_key(),
        };
        let hash = key.bytes().fold(0x811c_9dc5_u32, |h, b| {
            (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
        });
        format!("{hash:08x}")
    }
}
