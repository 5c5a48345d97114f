//! Removing a migration's temporary objects (hook Jobs, mover Pods, Services, Routes, Secrets,
//! NetworkPolicies) from one cluster by the migration-UID label, whatever step created them and even
//! after a crash.
//! Lasting objects (target namespaces and PVCs) carry no UID label and are never touched here.

use kube::api::{DeleteParams, DynamicObject, ListParams};
use kube::core::{ApiResource, GroupVersionKind};
use kube::{Api, Client, ResourceExt};

use super::labels;
use crate::Result;
use crate::api::Itinerary;

/// `(group, version, kind, plural)` of every kind Ferry creates per migration.
/// Jobs come before Pods, so the Job controller does not replace a hook pod deleted under a live Job.
pub const TEMPORARY_KINDS: &[(&str, &str, &str, &str)] = &[
    ("batch", "v1", "Job", "jobs"),
    ("", "v1", "Pod", "pods"),
    ("", "v1", "Service", "services"),
    ("route.openshift.io", "v1", "Route", "routes"),
    ("networking.k8s.io", "v1", "NetworkPolicy", "networkpolicies"),
    ("", "v1", "Secret", "secrets"),
];

/// Deletes every temporary object of migration `uid` in the cluster of `client` (all namespaces) and
/// returns how many deletions were requested. Kinds the cluster does not serve are skipped; objects
/// already gone count as deleted.
pub async fn delete_temporary(client: &Client, uid: &str) -> Result<usize> {
    delete_temporary_kinds(client, uid, TEMPORARY_KINDS).await
}

/// Which of a plan's two clusters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    /// The source cluster: senders, their Secrets and egress policies, hook Jobs.
    Source,
    /// The target cluster: receivers and their Services, Routes, Secrets and ingress policies, hook Jobs.
    Target,
}

/// The kinds a migration of `itinerary` (any itinerary: `None`) can have created in the cluster on
/// `side`: receiver Services and Routes only in the target (a plan whose source is its target cleans
/// that one cluster up with the target's kinds too), hook Jobs only in itineraries with hook steps
/// (a stage runs none). Each kind left out is a LIST less per cluster in Prepare and the cleanup.
pub fn kinds_of(
    itinerary: Option<Itinerary>,
    side: Side,
) -> Vec<(&'static str, &'static str, &'static str, &'static str)> {
    TEMPORARY_KINDS
        .iter()
        .filter(|(_, _, kind, _)| itinerary != Some(Itinerary::Stage) || *kind != "Job")
        .filter(|(_, _, kind, _)| side == Side::Target || !matches!(*kind, "Service" | "Route"))
        .copied()
        .collect()
}

/// [`delete_temporary`] for the given kinds only.
pub async fn delete_temporary_kinds(
    client: &Client,
    uid: &str,
    kinds: &[(&str, &str, &str, &str)],
) -> Result<usize> {
    let selector = labels::temporary_selector(uid);
    let mut deleted = 0;
    for &(group, version, kind, plural) in kinds {
        let resource =
            ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(group, version, kind), plural);
        let all: Api<DynamicObject> = Api::all_with(client.clone(), &resource);
        let objects = match all.list(&ListParams::default().labels(&selector)).await {
            Ok(list) => list.items,
            Err(kube::Error::Api(status)) if status.code == 404 => continue,
            Err(err) => return Err(err.into()),
        };
        for object in objects {
            let namespace = object.namespace().unwrap_or_default();
            let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), &namespace, &resource);
            match api.delete(&object.name_any(), &DeleteParams::background()).await {
                Ok(_) => deleted += 1,
                Err(kube::Error::Api(status)) if status.code == 404 => {}
                Err(err) => return Err(err.into()),
            }
        }
    }
    Ok(deleted)
}

/// UIDs of other migrations of plan `plan_namespace/plan_name` that left temporary objects in the
/// cluster of `client` (a crashed or deleted run): Prepare removes them so no stale mover writes into
/// a volume this migration is about to fill.
pub async fn stale_migrations(
    client: &Client,
    side: Side,
    plan_namespace: &str,
    plan_name: &str,
    keep_uid: &str,
) -> Result<Vec<String>> {
    let selector = format!(
        "{}={plan_name},{}={plan_namespace},{uid},{uid}!={keep_uid}",
        labels::PLAN,
        labels::PLAN_NAMESPACE,
        uid = labels::MIGRATION_UID,
    );
    let mut uids = std::collections::BTreeSet::new();
    for (group, version, kind, plural) in kinds_of(None, side) {
        let resource =
            ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(group, version, kind), plural);
        let all: Api<DynamicObject> = Api::all_with(client.clone(), &resource);
        match all.list_metadata(&ListParams::default().labels(&selector)).await {
            Ok(list) => uids.extend(
                list.items
                    .iter()
                    .filter_map(|o| o.labels().get(labels::MIGRATION_UID).cloned()),
            ),
            Err(kube::Error::Api(status)) if status.code == 404 => continue,
            Err(err) => return Err(err.into()),
        }
    }
    Ok(uids.into_iter().collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cluster_is_cleaned_up_of_every_kind_made_there() {
        let names =
            |kinds: Vec<(&str, &str, &'static str, &str)>| kinds.iter().map(|k| k.2).collect::<Vec<_>>();
        assert_eq!(
            names(kinds_of(Some(Itinerary::Stage), Side::Target)),
            ["Pod", "Service", "Route", "NetworkPolicy", "Secret"],
            "a stage runs no hooks"
        );
        assert_eq!(
            names(kinds_of(Some(Itinerary::Stage), Side::Source)),
            ["Pod", "NetworkPolicy", "Secret"],
            "receivers live in the target"
        );
        assert_eq!(
            kinds_of(Some(Itinerary::Final), Side::Target),
            TEMPORARY_KINDS.to_vec()
        );
        assert_eq!(kinds_of(None, Side::Target), TEMPORARY_KINDS.to_vec());
        assert_eq!(
            names(kinds_of(None, Side::Source)),
            ["Job", "Pod", "NetworkPolicy", "Secret"]
        );
    }
}
