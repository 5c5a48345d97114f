//! `dns::ExternalDns`: the provider for users who already run external-dns. Ferry writes the target
//! values into one `DNSEndpoint` (externaldns.k8s.io/v1alpha1, created if missing) and external-dns
//! (started with `--source=crd`) pushes them to the real DNS provider. Entries for other names in the
//! same resource are left alone. Writes use the resourceVersion read, so concurrent edits conflict
//! instead of being overwritten.

use std::time::{Duration, Instant};

use kube::api::{ApiResource, DynamicObject, GroupVersionKind, PostParams};
use kube::{Api, Client};
use serde_json::{Value, json};

use super::config::ObjectRef;
use super::{Provider, RecordKey, RecordSet, RecordType, canonical_name, describe_sets};
use crate::{Error, Result};

/// The CRD external-dns's CRD source reads (`manifests/external-dns/dnsendpoint-crd.yaml`).
pub const DNS_ENDPOINT_CRD_NAME: &str = "dnsendpoints.externaldns.k8s.io";
/// Pause between reads while waiting for external-dns to pick up a change.
const VERIFY_POLL: Duration = Duration::from_millis(200);

/// An external-dns provider writing one `DNSEndpoint` through a cluster's API server.
#[derive(Clone)]
pub struct ExternalDns {
    api: Api<DynamicObject>,
    name: String,
    namespace: String,
}

impl std::fmt::Debug for ExternalDns {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExternalDns")
            .field("name", &self.name)
            .field("namespace", &self.namespace)
            .finish()
    }
}

fn api_resource() -> ApiResource {
    let gvk = GroupVersionKind::gvk("externaldns.k8s.io", "v1alpha1", "DNSEndpoint");
    ApiResource::from_gvk_with_plural(&gvk, "dnsendpoints")
}

impl ExternalDns {
    /// A provider writing the DNSEndpoint `endpoint` with `client`.
    pub fn new(client: Client, endpoint: &ObjectRef) -> Self {
        Self {
            api: Api::namespaced_with(client, &endpoint.namespace, &api_resource()),
            name: endpoint.name.clone(),
            namespace: endpoint.namespace.clone(),
        }
    }

    fn label(&self) -> String {
        format!("DNSEndpoint {}/{}", self.namespace, self.name)
    }

    /// Maps "the resource type does not exist" to an error naming the missing CRD.
    fn kube_error(&self, err: kube::Error) -> Error {
        match &err {
            // A missing resource type is a bare 404 without details (a missing object or namespace
            // names itself in `details`).
            kube::Error::Api(status)
                if status.code == 404
                    && status
                        .details
                        .as_ref()
                        .is_none_or(|d| d.name.is_empty() && d.kind.is_empty()) =>
            {
                Error::DnsExternalDns(format!(
                    "{}: the API server has no DNSEndpoint resource; install the CRD {DNS_ENDPOINT_CRD_NAME} \
                 (manifests/external-dns/dnsendpoint-crd.yaml)",
                    self.label()
                ))
            }
            _ => Error::Kube(err),
        }
    }

    async fn get(&self) -> Result<Option<DynamicObject>> {
        self.api
            .get_opt(&self.name)
            .await
            .map_err(|err| self.kube_error(err))
    }

    /// Writes `endpoints` into the resource (create or replace), optionally as a server-side dry run.
    async fn write(
        &self,
        existing: Option<DynamicObject>,
        desired: &[RecordSet],
        dry_run: bool,
    ) -> Result<()> {
        let params = PostParams {
            dry_run,
            field_manager: Some("ferry".into()),
        };
        match existing {
            Some(mut object) => {
                let spec = object.data.get("spec").cloned().unwrap_or_else(|| json!({}));
                object.data["spec"] = merge_endpoints(&spec, desired);
                self.api
                    .replace(&self.name, &params, &object)
                    .await
                    .map_err(|err| self.kube_error(err))?;
            }
            None => {
                let mut object = DynamicObject::new(&self.name, &api_resource()).within(&self.namespace);
                object.metadata.labels =
                    Some([("app.kubernetes.io/managed-by".to_string(), "ferry".to_string())].into());
                object.data = json!({ "spec": merge_endpoints(&json!({}), desired) });
                self.api
                    .create(&params, &object)
                    .await
                    .map_err(|err| self.kube_error(err))?;
            }
        }
        Ok(())
    }
}

/// The DNSEndpoint's record set for `key` (absent if it has no endpoint for that name and type).
pub(crate) fn endpoint_record_set(spec: &Value, key: &RecordKey) -> Result<RecordSet> {
    let found = endpoints(spec).find(|endpoint| matches_key(endpoint, key));
    let Some(endpoint) = found else {
        return RecordSet::absent(&key.fqdn, key.record_type);
    };
    let targets: Vec<String> = endpoint["targets"]
        .as_array()
        .map(|targets| {
            targets
                .iter()
                .filter_map(|t| t.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    let ttl = endpoint["recordTTL"]
        .as_u64()
        .and_then(|ttl| u32::try_from(ttl).ok())
        .unwrap_or(0);
    RecordSet::new(
        &key.fqdn,
        key.record_type,
        if targets.is_empty() { 0 } else { ttl },
        &targets,
    )
}

fn endpoints(spec: &Value) -> impl Iterator<Item = &Value> {
    spec["endpoints"].as_array().into_iter().flatten()
}

fn matches_key(endpoint: &Value, key: &RecordKey) -> bool {
    let name = endpoint["dnsName"].as_str().and_then(canonical_name);
    let record_type = endpoint["recordType"]
        .as_str()
        .and_then(|t| RecordType::parse(t).ok());
    name.as_deref() == canonical_name(&key.fqdn).as_deref() && record_type == Some(key.record_type)
}

/// `spec` with the endpoints of `desired` replaced (absent sets removed), others kept in order.
/// Names and CNAME targets are written without the trailing dot, as external-dns users write them.
pub(crate) fn merge_endpoints(spec: &Value, desired: &[RecordSet]) -> Value {
    let mut merged: Vec<Value> = endpoints(spec)
        .filter(|endpoint| {
            !desired
                .iter()
                .any(|set| matches_key(endpoint, &RecordKey::of(set)))
        })
        .cloned()
        .collect();
    for set in desired.iter().filter(|set| set.exists()) {
        let targets: Vec<&str> = set.values.iter().map(|v| v.trim_end_matches('.')).collect();
        merged.push(json!({
            "dnsName": set.fqdn.trim_end_matches('.'),
            "recordType": set.record_type.to_string(),
            "targets": targets,
            "recordTTL": set.ttl,
        }));
    }
    let mut spec = spec.clone();
    if !spec.is_object() {
        spec = json!({});
    }
    spec["endpoints"] = Value::Array(merged);
    spec
}

/// Whether external-dns has processed the object's current generation (`status.observedGeneration`).
fn observed(object: &DynamicObject) -> (Option<i64>, Option<i64>) {
    (
        object.metadata.generation,
        object.data["status"]["observedGeneration"].as_i64(),
    )
}

impl Provider for ExternalDns {
    fn describe(&self) -> String {
        format!("external-dns {}", self.label())
    }

    async fn check_credentials(&self) -> Result<()> {
        // A server-side dry run of the write Ferry would make: proves the CRD is installed and that
        // Ferry may create/update the resource, without changing it.
        let existing = self.get().await?;
        self.write(existing, &[], true).await
    }

    async fn read(&self, keys: &[RecordKey]) -> Result<Vec<RecordSet>> {
        let spec = self
            .get()
            .await?
            .and_then(|object| object.data.get("spec").cloned())
            .unwrap_or_default();
        keys.iter().map(|key| endpoint_record_set(&spec, key)).collect()
    }

    async fn replace(&self, desired: &[RecordSet]) -> Result<()> {
        let existing = self.get().await?;
        self.write(existing, desired, false).await
    }

    async fn verify(&self, desired: &[RecordSet], timeout: Duration) -> Result<Duration> {
        let started = Instant::now();
        loop {
            let object = self.get().await?;
            let spec = object
                .as_ref()
                .and_then(|o| o.data.get("spec").cloned())
                .unwrap_or_default();
            let served: Vec<RecordSet> = desired
                .iter()
                .map(|set| endpoint_record_set(&spec, &RecordKey::of(set)))
                .collect::<Result<_>>()?;
            let (generation, observed_generation) = object.as_ref().map(observed).unwrap_or((None, None));
            let written = desired
                .iter()
                .zip(&served)
                .all(|(want, have)| want.is_served_by(have));
            let processed = generation.is_some() && observed_generation >= generation;
            if written && processed {
                return Ok(started.elapsed());
            }
            if started.elapsed() >= timeout {
                return Err(Error::DnsVerifyTimeout {
                    server: self.describe(),
                    expected: describe_sets(desired),
                    last_seen: format!(
                        "{} (generation {}, external-dns observedGeneration {}; \
                         is external-dns running with --source=crd?)",
                        describe_sets(&served),
                        generation.map_or("none".into(), |g| g.to_string()),
                        observed_generation.map_or("none".into(), |g| g.to_string()),
                    ),
                    waited: started.elapsed(),
                });
            }
            tokio::time::sleep(VERIFY_POLL).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(fqdn: &str, record_type: RecordType, ttl: u32, values: &[&str]) -> RecordSet {
        let values: Vec<String> = values.iter().map(|v| v.to_string()).collect();
        RecordSet::new(fqdn, record_type, ttl, &values).unwrap()
    }

    #[test]
    fn merge_replaces_only_the_matching_endpoint() {
        let spec = json!({"endpoints": [
            {"dnsName": "other.example.test", "recordType": "TXT", "targets": ["keep"]},
            {"dnsName": "App.example.test.", "recordType": "A", "targets": ["10.0.0.1"], "recordTTL": 300}
        ]});
        let key = RecordKey {
            fqdn: "app.example.test".into(),
            record_type: RecordType::A,
        };
        assert_eq!(
            endpoint_record_set(&spec, &key).unwrap(),
            set("app.example.test", RecordType::A, 300, &["10.0.0.1"])
        );
        let desired = set("app.example.test", RecordType::A, 60, &["10.0.1.1"]);
        let merged = merge_endpoints(&spec, std::slice::from_ref(&desired));
        assert_eq!(merged["endpoints"].as_array().unwrap().len(), 2);
        assert_eq!(merged["endpoints"][0]["targets"][0], "keep");
        assert_eq!(
            merged["endpoints"][1],
            json!({"dnsName": "app.example.test", "recordType": "A",
            "targets": ["10.0.1.1"], "recordTTL": 60})
        );
        assert_eq!(endpoint_record_set(&merged, &key).unwrap(), desired);
    }

    #[test]
    fn the_checked_in_crd_serves_what_this_provider_writes() {
        use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
        let yaml = include_str!("../../manifests/external-dns/dnsendpoint-crd.yaml");
        let crd: CustomResourceDefinition = serde_saphyr::from_str(yaml).unwrap();
        let resource = api_resource();
        assert_eq!(crd.metadata.name.as_deref(), Some(DNS_ENDPOINT_CRD_NAME));
        assert_eq!(
            (crd.spec.group.as_str(), crd.spec.names.plural.as_str()),
            (resource.group.as_str(), "dnsendpoints")
        );
        assert_eq!(crd.spec.names.kind, resource.kind);
        let version = &crd.spec.versions[0];
        assert_eq!(version.name, resource.version);
        let schema = serde_json::to_value(&version.schema).unwrap();
        let fields = &schema["openAPIV3Schema"]["properties"]["spec"]["properties"]["endpoints"]["items"]["properties"];
        for field in ["dnsName", "recordType", "targets", "recordTTL"] {
            assert!(fields.get(field).is_some(), "CRD lacks endpoints[].{field}");
        }
        assert!(
            version
                .subresources
                .as_ref()
                .and_then(|s| s.status.as_ref())
                .is_some(),
            "status subresource"
        );
    }

    #[test]
    fn absent_sets_remove_the_endpoint_and_cname_targets_lose_the_dot() {
        let alias = set("www.example.test", RecordType::CNAME, 60, &["lb.example.net"]);
        let merged = merge_endpoints(&json!(null), std::slice::from_ref(&alias));
        assert_eq!(merged["endpoints"][0]["targets"][0], "lb.example.net");
        let absent = RecordSet::absent("www.example.test", RecordType::CNAME).unwrap();
        let removed = merge_endpoints(&merged, std::slice::from_ref(&absent));
        assert!(removed["endpoints"].as_array().unwrap().is_empty());
        assert_eq!(
            endpoint_record_set(&removed, &RecordKey::of(&absent)).unwrap(),
            absent
        );
    }
}
