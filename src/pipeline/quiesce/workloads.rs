//! Patch-mode quiesce against a cluster: list every workload kind in a namespace and apply the pure
//! patches of [`super::patch`]. Kinds whose API the cluster does not serve (DeploymentConfig outside
//! OpenShift) are skipped.

use kube::api::{DynamicObject, ListParams, Patch, PatchParams};
use kube::core::{ApiResource, GroupVersionKind};
use kube::{Api, Client, ResourceExt};

use super::patch::{Kind, quiesce_patch, unquiesce_patch};
use crate::Result;

/// What a quiesce or unquiesce pass did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    /// `Kind/name` of each workload patched.
    pub changed: Vec<String>,
    /// Workloads already in the wanted state.
    pub unchanged: usize,
}

/// Stops every workload in `namespace`, recording the previous values.
pub async fn quiesce_namespace(client: &Client, namespace: &str) -> Result<Summary> {
    patch_all(client, namespace, &Kind::ALL, quiesce_patch).await
}

/// Restores every workload Ferry quiesced in `namespace`, in the reverse order.
pub async fn unquiesce_namespace(client: &Client, namespace: &str) -> Result<Summary> {
    let mut kinds = Kind::ALL;
    kinds.reverse();
    patch_all(client, namespace, &kinds, unquiesce_patch).await
}

async fn patch_all(
    client: &Client,
    namespace: &str,
    kinds: &[Kind],
    make_patch: fn(Kind, &serde_json::Value) -> Option<serde_json::Value>,
) -> Result<Summary> {
    let mut summary = Summary::default();
    for &kind in kinds {
        let (group, version, kind_name, plural) = kind.api();
        let gvk = GroupVersionKind::gvk(group, version, kind_name);
        let resource = ApiResource::from_gvk_with_plural(&gvk, plural);
        let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), namespace, &resource);
        let objects = match api.list(&ListParams::default()).await {
            Ok(list) => list.items,
            // The cluster does not serve this kind (e.g. DeploymentConfig without OpenShift).
            Err(kube::Error::Api(status)) if status.code == 404 => continue,
            Err(err) => return Err(err.into()),
        };
        for object in objects {
            let value = serde_json::to_value(&object)?;
            if kind.is_owned_elsewhere(&value) {
                continue;
            }
            match make_patch(kind, &value) {
                Some(patch) => {
                    api.patch(&object.name_any(), &PatchParams::default(), &Patch::Merge(&patch))
                        .await?;
                    summary.changed.push(format!("{kind_name}/{}", object.name_any()));
                }
                None => summary.unchanged += 1,
            }
        }
    }
    Ok(summary)
}
