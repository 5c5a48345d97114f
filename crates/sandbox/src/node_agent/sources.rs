//! Where a pod's data comes from, for volumes and environment variables alike: the keys of Secrets and
//! ConfigMaps in the pod's namespace, and the pod's own fields (the downward API).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{ConfigMap, Pod, Secret};
use kube::{Api, Client};

use super::status::LOOPBACK;

/// Reads Secrets and ConfigMaps of one namespace. Errors are messages for the pod's status.
pub(crate) struct ObjectLookup {
    secrets: Api<Secret>,
    config_maps: Api<ConfigMap>,
}

impl ObjectLookup {
    /// A lookup in `namespace`.
    pub(crate) fn new(client: &Client, namespace: &str) -> Self {
        Self {
            secrets: Api::namespaced(client.clone(), namespace),
            config_maps: Api::namespaced(client.clone(), namespace),
        }
    }

    /// The data of Secret `name`, `None` when it does not exist.
    pub(crate) async fn secret(&self, name: &str) -> Result<Option<BTreeMap<String, Vec<u8>>>, String> {
        let secret = self
            .secrets
            .get_opt(name)
            .await
            .map_err(|err| format!("reading Secret {name}: {err}"))?;
        Ok(secret.map(|s| {
            s.data
                .unwrap_or_default()
                .into_iter()
                .map(|(key, value)| (key, value.0))
                .collect()
        }))
    }

    /// The data and binary data of ConfigMap `name`, `None` when it does not exist.
    pub(crate) async fn config_map(&self, name: &str) -> Result<Option<BTreeMap<String, Vec<u8>>>, String> {
        let map = self
            .config_maps
            .get_opt(name)
            .await
            .map_err(|err| format!("reading ConfigMap {name}: {err}"))?;
        Ok(map.map(|m| {
            let text = m
                .data
                .unwrap_or_default()
                .into_iter()
                .map(|(k, v)| (k, v.into_bytes()));
            let binary = m
                .binary_data
                .unwrap_or_default()
                .into_iter()
                .map(|(k, v)| (k, v.0));
            text.chain(binary).collect()
        }))
    }

    /// The data of a Secret (`secret == true`) or ConfigMap; a missing object is an error unless
    /// `optional`, then it reads as empty.
    pub(crate) async fn data(
        &self,
        secret: bool,
        name: &str,
        optional: Option<bool>,
    ) -> Result<BTreeMap<String, Vec<u8>>, String> {
        let kind = if secret { "Secret" } else { "ConfigMap" };
        let found = if secret {
            self.secret(name).await?
        } else {
            self.config_map(name).await?
        };
        match found {
            Some(data) => Ok(data),
            None if optional == Some(true) => Ok(BTreeMap::new()),
            None => Err(format!("{kind} {name} not found")),
        }
    }
}

/// The value of a downward-API `fieldPath` for `pod`, as a kubelet would render it. Pod IPs and host
/// IPs are the loopback address, where agent-run processes listen.
pub(crate) fn field_value(pod: &Pod, field_path: &str) -> Result<String, String> {
    let meta = &pod.metadata;
    let spec = pod.spec.as_ref();
    let quoted_map = |map: &Option<BTreeMap<String, String>>| {
        map.iter()
            .flatten()
            .map(|(k, v)| format!("{k}={v:?}"))
            .collect::<Vec<_>>()
            .join("\n")
    };
    let keyed = |prefix: &str| {
        field_path
            .strip_prefix(prefix)?
            .strip_prefix("['")?
            .strip_suffix("']")
            .map(str::to_string)
    };
    if let Some(key) = keyed("metadata.labels") {
        return Ok(meta
            .labels
            .as_ref()
            .and_then(|m| m.get(&key))
            .cloned()
            .unwrap_or_default());
    }
    if let Some(key) = keyed("metadata.annotations") {
        return Ok(meta
            .annotations
            .as_ref()
            .and_then(|m| m.get(&key))
            .cloned()
            .unwrap_or_default());
    }
    Ok(match field_path {
        "metadata.name" => meta.name.clone().unwrap_or_default(),
        "metadata.namespace" => meta.namespace.clone().unwrap_or_default(),
        "metadata.uid" => meta.uid.clone().unwrap_or_default(),
        "metadata.labels" => quoted_map(&meta.labels),
        "metadata.annotations" => quoted_map(&meta.annotations),
        "spec.nodeName" => spec.and_then(|s| s.node_name.clone()).unwrap_or_default(),
        "spec.serviceAccountName" => spec
            .and_then(|s| s.service_account_name.clone())
            .unwrap_or_else(|| "default".into()),
        "status.podIP" | "status.podIPs" | "status.hostIP" | "status.hostIPs" => LOOPBACK.into(),
        other => {
            return Err(format!(
                "field {other:?} is not supported by the sandbox node agent"
            ));
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::PodSpec;
    use kube::api::ObjectMeta;

    #[test]
    fn renders_pod_fields() {
        let pod = Pod {
            metadata: ObjectMeta {
                name: Some("mover".into()),
                namespace: Some("app".into()),
                labels: Some([("a".to_string(), "1".to_string()), ("b".into(), "x y".into())].into()),
                ..ObjectMeta::default()
            },
            spec: Some(PodSpec {
                node_name: Some("node-a".into()),
                ..PodSpec::default()
            }),
            status: None,
        };
        assert_eq!(field_value(&pod, "metadata.name").unwrap(), "mover");
        assert_eq!(field_value(&pod, "metadata.namespace").unwrap(), "app");
        assert_eq!(field_value(&pod, "spec.nodeName").unwrap(), "node-a");
        assert_eq!(field_value(&pod, "status.podIP").unwrap(), "127.0.0.1");
        assert_eq!(field_value(&pod, "metadata.labels['b']").unwrap(), "x y");
        assert_eq!(field_value(&pod, "metadata.labels['none']").unwrap(), "");
        assert_eq!(
            field_value(&pod, "metadata.labels").unwrap(),
            "a=\"1\"\nb=\"x y\""
        );
        assert_eq!(field_value(&pod, "spec.serviceAccountName").unwrap(), "default");
        assert!(
            field_value(&pod, "spec.hostname")
                .unwrap_err()
                .contains("not supported")
        );
    }
}
