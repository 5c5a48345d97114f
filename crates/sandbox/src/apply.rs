//! `kubectl apply` for the sandbox: server-side apply of multi-document YAML of any kind the API server
//! serves, and a wait for freshly applied CRDs to be established.

use std::time::{Duration, Instant};

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{DynamicObject, Patch, PatchParams};
use kube::core::GroupVersionKind;
use kube::discovery::{Scope, pinned_kind};
use kube::{Api, Client, ResourceExt};

use crate::{Error, Result};

/// Applies every document of `yaml` (server-side apply, field manager `ferry-sandbox`). Namespaced
/// objects without a namespace go into `default_namespace`. Returns the applied objects.
pub async fn apply_yaml(client: &Client, yaml: &str, default_namespace: &str) -> Result<Vec<DynamicObject>> {
    let documents: Vec<serde_json::Value> =
        serde_saphyr::from_multiple(yaml).map_err(|err| Error::Sandbox(format!("YAML: {err}")))?;
    let mut applied = Vec::new();
    for document in documents.into_iter().filter(|d| !d.is_null()) {
        let object: DynamicObject = serde_json::from_value(document)?;
        let types = object.types.clone().ok_or_else(|| {
            Error::Sandbox(format!(
                "object {:?} has no apiVersion/kind",
                object.metadata.name
            ))
        })?;
        let gvk = GroupVersionKind::try_from(&types)
            .map_err(|err| Error::Sandbox(format!("bad apiVersion {:?}: {err}", types.api_version)))?;
        let (resource, capabilities) = pinned_kind(client, &gvk).await?;
        let api: Api<DynamicObject> = match capabilities.scope {
            Scope::Namespaced => {
                let ns = object
                    .namespace()
                    .unwrap_or_else(|| default_namespace.to_string());
                Api::namespaced_with(client.clone(), &ns, &resource)
            }
            Scope::Cluster => Api::all_with(client.clone(), &resource),
        };
        let params = PatchParams::apply("ferry-sandbox").force();
        applied.push(
            api.patch(&object.name_any(), &params, &Patch::Apply(&object))
                .await?,
        );
    }
    Ok(applied)
}

/// Waits until every CRD named in `names` reports `Established=True`.
pub async fn wait_for_crds(client: &Client, names: &[String], timeout: Duration) -> Result<()> {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    let deadline = Instant::now() + timeout;
    for name in names {
        loop {
            let established = api
                .get_opt(name)
                .await?
                .and_then(|crd| crd.status)
                .is_some_and(|status| {
                    status
                        .conditions
                        .unwrap_or_default()
                        .iter()
                        .any(|c| c.type_ == "Established" && c.status == "True")
                });
            if established {
                break;
            }
            if Instant::now() > deadline {
                return Err(Error::Sandbox(format!(
                    "CRD {name} was not established within {timeout:?}"
                )));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    Ok(())
}

/// Applies the CRDs generated from the API types and waits until they are served.
pub async fn install_crds(client: &Client) -> Result<()> {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    let params = PatchParams::apply("ferry-sandbox").force();
    let mut names = Vec::new();
    for crd in ferry::api::crds() {
        let name = crd.name_any();
        api.patch(&name, &params, &Patch::Apply(&crd)).await?;
        names.push(name);
    }
    wait_for_crds(client, &names, Duration::from_secs(30)).await
}

/// Waits until namespace `namespace` has its `default` ServiceAccount, without which the API server's
/// ServiceAccount admission refuses pods.
pub async fn wait_for_default_service_account(client: &Client, namespace: &str) -> Result<()> {
    let api: Api<k8s_openapi::api::core::v1::ServiceAccount> = Api::namespaced(client.clone(), namespace);
    let deadline = Instant::now() + Duration::from_secs(30);
    while api.get_opt("default").await?.is_none() {
        if Instant::now() > deadline {
            return Err(Error::Sandbox(format!(
                "namespace {namespace} got no default ServiceAccount in 30s"
            )));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Ok(())
}
