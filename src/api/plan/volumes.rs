//! Which PersistentVolumeClaims a plan moves: MTC's `persistentVolumes` list (one entry per volume,
//! with `selection.action`, a `src:dest` rename and target class / access mode), Ferry's label
//! `volumeSelector`, and what the controller discovered about them (`status.volumes`).

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// One entry of MTC's `spec.persistentVolumes` list. Ferry reads `pvc` and `selection`; the rest is what
/// MTC's own discovery writes there and is accepted unused (Ferry reports discovery in the status).
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PersistentVolume {
    /// Name of the PersistentVolume (MTC's discovery fills it; unused by Ferry).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Capacity of the volume (unused: the target PVC is at least the source's size).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capacity: Option<Quantity>,
    /// Storage class of the source volume (unused: Ferry reads it from the source PVC).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_class: Option<String>,
    /// The actions and copy methods MTC found possible (unused: Ferry always copies with rsync).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub supported: Option<Supported>,
    /// The claim: `name` (`src` or `src:dest` to rename it on the target) and `namespace`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pvc: Option<PvcEntry>,
    /// What to do with the claim: `action` copy (default), skip or move, and target settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selection: Option<Selection>,
    /// MTC's record that the volume was staged (unused).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub staged: Option<bool>,
    /// MTC's confirmation of a proposed capacity (unused).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capacity_confirmed: Option<bool>,
    /// MTC's proposed target capacity (unused).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proposed_capacity: Option<Quantity>,
}

/// MTC's `supported`: what discovery found possible for a volume.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Supported {
    /// Possible actions (`copy`, `move`, `skip`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub actions: Vec<String>,
    /// Possible copy methods (`filesystem`, `snapshot`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub copy_methods: Vec<String>,
}

/// MTC's `pvc` of a volume entry.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PvcEntry {
    /// `src` or `src:dest`: the source PVC name and, optionally, its name on the target.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Source namespace of the PVC; any of the plan's namespaces when empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Access modes of the source PVC (unused: read from the source).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub access_modes: Vec<String>,
    /// Volume mode of the source PVC (unused: read from the source).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volume_mode: Option<String>,
    /// Whether a pod references the PVC (unused: Ferry finds the pods itself).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub has_reference: Option<bool>,
}

/// MTC's `selection` of a volume entry.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Selection {
    /// `copy` (default), `skip` (leave the PVC out) or `move` (treated like copy). A string, not an enum,
    /// so the controller reports every bad entry at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
    /// Storage class of the target PVC; the source's when empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_class: Option<String>,
    /// Access mode of the target PVC, e.g. `ReadWriteOnce`; the source's when empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_mode: Option<String>,
    /// MTC's `filesystem` or `snapshot` (unused: Ferry always copies files with rsync).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub copy_method: Option<String>,
    /// MTC's per-volume checksum verification (unused: see `MigMigration.spec.verify`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verify: Option<bool>,
}

/// What MTC's `selection.action` asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Copy the data (also what an absent action means).
    Copy,
    /// Leave the PVC out.
    Skip,
    /// MTC: re-attach the PV on the target. Ferry copies instead.
    Move,
}

impl Action {
    /// Parses `copy`, `skip` or `move` (as MTC, lower case); absent means `copy`.
    pub fn parse(text: Option<&str>) -> Result<Self, String> {
        match text {
            None | Some("") | Some("copy") => Ok(Action::Copy),
            Some("skip") => Ok(Action::Skip),
            Some("move") => Ok(Action::Move),
            Some(other) => Err(format!("unknown action {other:?}; use copy, skip or move")),
        }
    }
}

/// Ferry's label selection of PVCs (MTC has none): only PVCs carrying all of these labels move.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct VolumeSelector {
    /// Labels a PVC must carry, all of them.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub match_labels: BTreeMap<String, String>,
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
    /// Storage class of the target PVC when the plan's `selection.storageClass` sets one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_storage_class: Option<String>,
    /// Access mode of the target PVC when the plan's `selection.accessMode` sets one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_access_mode: Option<String>,
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
