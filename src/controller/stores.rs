//! Lookups of Ferry's own objects from the controllers' reflector stores (the watch caches kube-runtime
//! keeps anyway), so a reconcile does not GET or LIST what the controller already watches. Until the
//! stores are set and have listed once (at start, or in a context without [`super::run`]), every
//! lookup falls back to the API.
//!
//! A store can lag behind the API by a few milliseconds. Where a decision must not rest on a stale
//! read (admitting a migration that has not started: another one may have been created a moment
//! before), the caller reads the API itself; see `migration::reconcile`.

use std::collections::HashMap;
use std::sync::Mutex;

use futures::FutureExt as _;
use kube::api::ListParams;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Api, ResourceExt};

use super::Context;
use crate::Result;
use crate::api::{MigCluster, MigMigration, MigPlan, MigStorage};

/// The reflector stores of the four controllers.
pub struct Stores {
    /// Every MigCluster.
    pub clusters: Store<MigCluster>,
    /// Every MigStorage.
    pub storages: Store<MigStorage>,
    /// Every MigPlan.
    pub plans: Store<MigPlan>,
    /// Every MigMigration.
    pub migrations: Store<MigMigration>,
}

/// A store that has listed at least once.
fn ready<K>(store: &Store<K>) -> Option<&Store<K>>
where
    K: kube::Resource + Clone + 'static,
    K::DynamicType: Eq + std::hash::Hash + Clone,
{
    store.wait_until_ready().now_or_never()?.ok()?;
    Some(store)
}

impl Context {
    fn stores(&self) -> Option<&Stores> {
        self.stores.get()
    }

    /// The MigCluster `namespace/name`.
    pub async fn cluster(&self, namespace: &str, name: &str) -> Result<Option<MigCluster>> {
        if let Some(store) = self.stores().and_then(|s| ready(&s.clusters)) {
            return Ok(store
                .get(&ObjectRef::new(name).within(namespace))
                .map(|c| (*c).clone()));
        }
        Ok(Api::<MigCluster>::namespaced(self.client.clone(), namespace)
            .get_opt(name)
            .await?)
    }

    /// The MigStorage `namespace/name`.
    pub async fn storage(&self, namespace: &str, name: &str) -> Result<Option<MigStorage>> {
        if let Some(store) = self.stores().and_then(|s| ready(&s.storages)) {
            return Ok(store
                .get(&ObjectRef::new(name).within(namespace))
                .map(|c| (*c).clone()));
        }
        Ok(Api::<MigStorage>::namespaced(self.client.clone(), namespace)
            .get_opt(name)
            .await?)
    }

    /// The MigPlan `namespace/name`, from the store when `cached` allows it, else read fresh.
    pub async fn plan(&self, namespace: &str, name: &str, cached: bool) -> Result<Option<MigPlan>> {
        if let Some(store) = self.stores().filter(|_| cached).and_then(|s| ready(&s.plans)) {
            return Ok(store
                .get(&ObjectRef::new(name).within(namespace))
                .map(|p| (*p).clone()));
        }
        Ok(Api::<MigPlan>::namespaced(self.client.clone(), namespace)
            .get_opt(name)
            .await?)
    }

    /// Whether the plan `namespace/name` is in the watch cache (true when there is no cache yet).
    pub fn plan_exists(&self, namespace: &str, name: &str) -> bool {
        match self.stores().and_then(|s| ready(&s.plans)) {
            Some(store) => store.get(&ObjectRef::new(name).within(namespace)).is_some(),
            None => true,
        }
    }

    /// The MigMigrations of plan `plan` (namespace, name), in `namespace` (all namespaces when `None`),
    /// carrying `label` when given; from the store when `cached` allows it (only those are copied out
    /// of it), else listed fresh.
    pub async fn migrations(
        &self,
        plan: (&str, &str),
        namespace: Option<&str>,
        label: Option<&str>,
        cached: bool,
    ) -> Result<Vec<MigMigration>> {
        let of_plan = |m: &MigMigration| {
            let own = m.namespace().unwrap_or_default();
            m.spec.mig_plan_ref.name == plan.1 && m.spec.mig_plan_ref.namespace_or(&own) == plan.0
        };
        if let Some(store) = self
            .stores()
            .filter(|_| cached)
            .and_then(|s| ready(&s.migrations))
        {
            return Ok(store
                .state()
                .into_iter()
                .filter(|m| namespace.is_none_or(|ns| m.namespace().as_deref() == Some(ns)))
                .filter(|m| label.is_none_or(|l| m.labels().contains_key(l)))
                .filter(|m| of_plan(m))
                .map(|m| (*m).clone())
                .collect());
        }
        let api = match namespace {
            Some(ns) => Api::<MigMigration>::namespaced(self.client.clone(), ns),
            None => Api::<MigMigration>::all(self.client.clone()),
        };
        let params = match label {
            Some(label) => ListParams::default().labels(label),
            None => ListParams::default(),
        };
        let mut listed = api.list(&params).await?.items;
        listed.retain(|m| of_plan(m));
        Ok(listed)
    }
}

/// The resourceVersion of each object's latest write by this controller, so a reconcile can tell the
/// watch cache's copy is what it wrote (use it) from an older or foreign one (read fresh).
#[derive(Default)]
pub struct Written {
    versions: Mutex<HashMap<String, String>>,
    /// The write before the latest, per object: a cached copy at that version is this controller's
    /// own and the watch event of its newer write is still on its way.
    previous: Mutex<HashMap<String, String>>,
}

/// `Kind/namespace/name`: the key of an object in the controller's per-object bookkeeping (last
/// written versions, failure counts, next looks).
pub(crate) fn object_key<K: kube::Resource<DynamicType = ()>>(object: &K) -> String {
    let meta = object.meta();
    format!(
        "{}/{}/{}",
        K::kind(&()),
        meta.namespace.as_deref().unwrap_or_default(),
        meta.name.as_deref().unwrap_or_default()
    )
}

impl Written {
    /// Records that this controller's write of `object` produced `version` (`None`: forget it).
    pub fn record<K: kube::Resource<DynamicType = ()>>(&self, object: &K, version: Option<String>) {
        let key = object_key(object);
        let mut versions = self.versions.lock().unwrap_or_else(|p| p.into_inner());
        let mut previous = self.previous.lock().unwrap_or_else(|p| p.into_inner());
        let before = match version {
            Some(version) => versions.insert(key.clone(), version),
            None => versions.remove(&key),
        };
        match before {
            Some(before) => previous.insert(key, before),
            None => previous.remove(&key),
        };
    }

    /// Whether the cached `object` is this controller's write before its latest one: the watch event
    /// of the latest write is still to come (and reconciles the object), so a read now is not needed.
    pub fn is_superseded<K: kube::Resource<DynamicType = ()>>(&self, object: &K) -> bool {
        let key = object_key(object);
        let versions = self.versions.lock().unwrap_or_else(|p| p.into_inner());
        let previous = self.previous.lock().unwrap_or_else(|p| p.into_inner());
        object.meta().resource_version.as_ref().is_some_and(|rv| {
            previous.get(&key) == Some(rv) && versions.get(&key).is_some_and(|latest| latest != rv)
        })
    }

    /// Whether `object` is, to the resourceVersion, what this controller wrote last.
    pub fn is_latest<K: kube::Resource<DynamicType = ()>>(&self, object: &K) -> bool {
        let key = object_key(object);
        let versions = self.versions.lock().unwrap_or_else(|p| p.into_inner());
        object
            .meta()
            .resource_version
            .as_ref()
            .is_some_and(|rv| versions.get(&key) == Some(rv))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn migration(rv: &str) -> MigMigration {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "migration.ferry.dev/v1alpha1", "kind": "MigMigration",
            "metadata": {"name": "m", "namespace": "ns", "resourceVersion": rv},
            "spec": {"migPlanRef": {"name": "plan"}}
        }))
        .unwrap()
    }

    #[test]
    fn only_the_version_this_controller_wrote_counts_as_latest() {
        let written = Written::default();
        assert!(
            !written.is_latest(&migration("5")),
            "nothing written yet: read fresh"
        );
        written.record(&migration("0"), Some("5".into()));
        assert!(written.is_latest(&migration("5")));
        assert!(!written.is_latest(&migration("4")), "an older cached copy");
        assert!(!written.is_latest(&migration("6")), "someone else wrote since");
        written.record(&migration("5"), None);
        assert!(!written.is_latest(&migration("5")));
    }

    #[test]
    fn a_cached_copy_of_the_write_before_the_latest_waits_for_the_latest() {
        let written = Written::default();
        written.record(&migration("0"), Some("5".into()));
        assert!(!written.is_superseded(&migration("5")), "the latest");
        written.record(&migration("5"), Some("7".into()));
        assert!(
            written.is_superseded(&migration("5")),
            "its event for 7 is on its way"
        );
        assert!(
            !written.is_superseded(&migration("6")),
            "someone else's: read fresh"
        );
        assert!(!written.is_superseded(&migration("7")));
        written.record(&migration("7"), None);
        assert!(!written.is_superseded(&migration("5")), "forgotten");
    }
}
