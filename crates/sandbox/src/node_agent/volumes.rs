//! A pod's volumes as local directories: a PVC becomes its bound PV's `hostPath`/`local` path (the
//! real directory tests put data in), a hostPath volume its own path, an emptyDir a fresh directory,
//! and Secret, ConfigMap, downward-API and projected volumes fresh directories holding their files
//! (with `items` and modes honoured). Anything else fails the pod with a message saying why.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};
use std::time::{Duration, Instant};

use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{
    DownwardAPIVolumeFile, KeyToPath, PersistentVolume, PersistentVolumeClaim, Pod, ServiceAccount, Volume,
};
use kube::Api;
use kube::api::PostParams;
use tokio_util::sync::CancellationToken;

use super::Shared;
use super::sources::{ObjectLookup, field_value};

/// Kubernetes' default file mode for Secret, ConfigMap, downward-API and projected volumes (0644).
const DEFAULT_MODE: i32 = 0o644;

/// One file of a materialised volume.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct VolumeFile {
    /// Path relative to the volume root.
    pub(crate) path: String,
    /// Contents.
    pub(crate) bytes: Vec<u8>,
    /// Unix mode bits.
    pub(crate) mode: i32,
}

/// The files a Secret or ConfigMap volume (or projection) holds: every key, or only `items` (each
/// key must exist unless `optional`).
pub(crate) fn select_keys(
    data: &BTreeMap<String, Vec<u8>>,
    items: Option<&[KeyToPath]>,
    default_mode: Option<i32>,
    optional: Option<bool>,
) -> Result<Vec<VolumeFile>, String> {
    let mode = default_mode.unwrap_or(DEFAULT_MODE);
    let Some(items) = items else {
        return Ok(data
            .iter()
            .map(|(key, bytes)| VolumeFile {
                path: key.clone(),
                bytes: bytes.clone(),
                mode,
            })
            .collect());
    };
    let mut files = Vec::new();
    for item in items {
        match data.get(&item.key) {
            Some(bytes) => files.push(VolumeFile {
                path: item.path.clone(),
                bytes: bytes.clone(),
                mode: item.mode.unwrap_or(mode),
            }),
            None if optional == Some(true) => {}
            None => return Err(format!("key {:?} not found", item.key)),
        }
    }
    Ok(files)
}

/// Writes `files` under `dir`, refusing paths that would leave it.
pub(crate) fn write_files(dir: &Path, files: &[VolumeFile]) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|err| format!("creating {}: {err}", dir.display()))?;
    for file in files {
        let relative = Path::new(&file.path);
        if !relative.components().all(|c| matches!(c, Component::Normal(_))) {
            return Err(format!(
                "volume file path {:?} must be relative without '..'",
                file.path
            ));
        }
        let path = dir.join(relative);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|err| format!("creating {}: {err}", parent.display()))?;
        }
        std::fs::write(&path, &file.bytes).map_err(|err| format!("writing {}: {err}", path.display()))?;
        let permissions = std::fs::Permissions::from_mode(file.mode as u32 & 0o7777);
        std::fs::set_permissions(&path, permissions)
            .map_err(|err| format!("setting the mode of {}: {err}", path.display()))?;
    }
    Ok(())
}

fn downward_files(
    pod: &Pod,
    items: Option<&[DownwardAPIVolumeFile]>,
    default_mode: Option<i32>,
) -> Result<Vec<VolumeFile>, String> {
    let mut files = Vec::new();
    for item in items.unwrap_or_default() {
        let Some(field) = &item.field_ref else {
            return Err(format!(
                "downward API file {:?}: only fieldRef is supported by the sandbox node agent",
                item.path
            ));
        };
        files.push(VolumeFile {
            path: item.path.clone(),
            bytes: field_value(pod, &field.field_path)?.into_bytes(),
            mode: item.mode.or(default_mode).unwrap_or(DEFAULT_MODE),
        });
    }
    Ok(files)
}

/// Rewrites the files of `pod`'s downward-API volumes under `dir/volumes/` from the pod as it is now,
/// as a kubelet does when the pod's labels or annotations change (each file replaced whole, by a
/// rename, so a reader never sees half of one).
pub(crate) fn refresh_downward(pod: &Pod, dir: &Path) -> Result<(), String> {
    for volume in pod
        .spec
        .as_ref()
        .and_then(|s| s.volumes.as_ref())
        .into_iter()
        .flatten()
    {
        let Some(source) = &volume.downward_api else {
            continue;
        };
        let root = dir.join("volumes").join(&volume.name);
        let files = downward_files(pod, source.items.as_deref(), source.default_mode)?;
        let staging = dir.join("volumes").join(format!(".{}.refresh", volume.name));
        write_files(&staging, &files)?;
        for file in &files {
            let target = root.join(&file.path);
            std::fs::rename(staging.join(&file.path), &target)
                .map_err(|err| format!("replacing {}: {err}", target.display()))?;
        }
        let _ = std::fs::remove_dir_all(&staging);
    }
    Ok(())
}

/// Resolves every volume of `pod` to a local directory (volume name → directory). Fresh directories go
/// under `dir/volumes/`.
pub(crate) async fn resolve(
    shared: &Shared,
    pod: &Pod,
    dir: &Path,
    lookup: &ObjectLookup,
    cancel: &CancellationToken,
) -> Result<BTreeMap<String, PathBuf>, String> {
    let mut resolved = BTreeMap::new();
    for volume in pod
        .spec
        .as_ref()
        .and_then(|s| s.volumes.as_ref())
        .into_iter()
        .flatten()
    {
        let fresh = dir.join("volumes").join(&volume.name);
        let path = resolve_one(shared, pod, volume, &fresh, lookup, cancel)
            .await
            .map_err(|err| format!("volume {:?}: {err}", volume.name))?;
        resolved.insert(volume.name.clone(), path);
    }
    Ok(resolved)
}

async fn resolve_one(
    shared: &Shared,
    pod: &Pod,
    volume: &Volume,
    fresh: &Path,
    lookup: &ObjectLookup,
    cancel: &CancellationToken,
) -> Result<PathBuf, String> {
    if let Some(claim) = &volume.persistent_volume_claim {
        let namespace = pod.metadata.namespace.as_deref().unwrap_or("default");
        let path = claim_path(shared, namespace, &claim.claim_name, cancel).await?;
        std::fs::create_dir_all(&path).map_err(|err| format!("creating {}: {err}", path.display()))?;
        return Ok(path);
    }
    if let Some(host_path) = &volume.host_path {
        let path = PathBuf::from(&host_path.path);
        if host_path.type_.as_deref() == Some("DirectoryOrCreate") {
            std::fs::create_dir_all(&path).map_err(|err| format!("creating {}: {err}", path.display()))?;
        }
        return Ok(path);
    }
    let files = if volume.empty_dir.is_some() {
        Vec::new()
    } else if let Some(source) = &volume.secret {
        let name = source.secret_name.as_deref().unwrap_or_default();
        let data = lookup.data(true, name, source.optional).await?;
        select_keys(
            &data,
            source.items.as_deref(),
            source.default_mode,
            source.optional,
        )
        .map_err(|err| format!("Secret {name}: {err}"))?
    } else if let Some(source) = &volume.config_map {
        let data = lookup.data(false, &source.name, source.optional).await?;
        select_keys(
            &data,
            source.items.as_deref(),
            source.default_mode,
            source.optional,
        )
        .map_err(|err| format!("ConfigMap {}: {err}", source.name))?
    } else if let Some(source) = &volume.downward_api {
        downward_files(pod, source.items.as_deref(), source.default_mode)?
    } else if let Some(source) = &volume.projected {
        let mut files = Vec::new();
        for projection in source.sources.iter().flatten() {
            if let Some(secret) = &projection.secret {
                let data = lookup.data(true, &secret.name, secret.optional).await?;
                files.extend(select_keys(
                    &data,
                    secret.items.as_deref(),
                    source.default_mode,
                    secret.optional,
                )?);
            } else if let Some(map) = &projection.config_map {
                let data = lookup.data(false, &map.name, map.optional).await?;
                files.extend(select_keys(
                    &data,
                    map.items.as_deref(),
                    source.default_mode,
                    map.optional,
                )?);
            } else if let Some(downward) = &projection.downward_api {
                files.extend(downward_files(
                    pod,
                    downward.items.as_deref(),
                    source.default_mode,
                )?);
            } else if let Some(token) = &projection.service_account_token {
                let bytes =
                    service_account_token(shared, pod, token.audience.clone(), token.expiration_seconds)
                        .await?
                        .into_bytes();
                let mode = source.default_mode.unwrap_or(DEFAULT_MODE);
                files.push(VolumeFile {
                    path: token.path.clone(),
                    bytes,
                    mode,
                });
            } else {
                return Err(
                    "this projected source is not supported by the sandbox node agent \
                            (secret, configMap, downwardAPI and serviceAccountToken are)"
                        .into(),
                );
            }
        }
        files
    } else {
        return Err(
            "this volume type is not supported by the sandbox node agent (persistentVolumeClaim \
                    with a hostPath/local PV, hostPath, emptyDir, secret, configMap, downwardAPI and \
                    projected are)"
                .into(),
        );
    };
    write_files(fresh, &files)?;
    Ok(fresh.to_path_buf())
}

/// The local path of the PV bound to claim `namespace/name`, waiting (bounded) for the binding as a
/// kubelet waits for a volume to attach.
async fn claim_path(
    shared: &Shared,
    namespace: &str,
    name: &str,
    cancel: &CancellationToken,
) -> Result<PathBuf, String> {
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(shared.client.clone(), namespace);
    let deadline = Instant::now() + shared.options.volume_wait;
    let volume_name = loop {
        let claim = claims
            .get_opt(name)
            .await
            .map_err(|err| format!("reading PersistentVolumeClaim {name}: {err}"))?;
        let phase = claim.as_ref().and_then(|c| c.status.as_ref()?.phase.clone());
        let bound = claim.as_ref().and_then(|c| c.spec.as_ref()?.volume_name.clone());
        match (&claim, phase.as_deref(), bound) {
            (Some(_), Some("Bound"), Some(volume)) if !volume.is_empty() => break volume,
            _ if Instant::now() < deadline && !cancel.is_cancelled() => {
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            (None, ..) => return Err(format!("PersistentVolumeClaim {name} not found")),
            (Some(_), phase, _) => {
                return Err(format!(
                    "PersistentVolumeClaim {name} is not bound (phase {}) after {:?}",
                    phase.unwrap_or("unknown"),
                    shared.options.volume_wait
                ));
            }
        }
    };
    let volumes: Api<PersistentVolume> = Api::all(shared.client.clone());
    let volume = volumes
        .get_opt(&volume_name)
        .await
        .map_err(|err| format!("reading PersistentVolume {volume_name}: {err}"))?
        .ok_or_else(|| format!("PersistentVolume {volume_name} (bound to claim {name}) not found"))?;
    let spec = volume.spec.unwrap_or_default();
    spec.host_path
        .map(|h| h.path)
        .or(spec.local.map(|l| l.path))
        .map(PathBuf::from)
        .ok_or_else(|| {
            format!(
                "PersistentVolume {volume_name} (bound to claim {name}) is neither hostPath nor local, so it \
                 has no directory on this machine"
            )
        })
}

/// A token for the pod's ServiceAccount from the TokenRequest API, as the projected
/// `kube-api-access-*` volume holds.
async fn service_account_token(
    shared: &Shared,
    pod: &Pod,
    audience: Option<String>,
    expiration_seconds: Option<i64>,
) -> Result<String, String> {
    let namespace = pod.metadata.namespace.as_deref().unwrap_or("default");
    let account = field_value(pod, "spec.serviceAccountName")?;
    let accounts: Api<ServiceAccount> = Api::namespaced(shared.client.clone(), namespace);
    let request = TokenRequest {
        spec: Some(TokenRequestSpec {
            audiences: audience.map(|a| vec![a]),
            expiration_seconds: Some(expiration_seconds.unwrap_or(3600)),
            ..TokenRequestSpec::default()
        }),
        ..TokenRequest::default()
    };
    let response = accounts
        .create_token_request(&account, &PostParams::default(), &request)
        .await
        .map_err(|err| format!("requesting a token for ServiceAccount {account}: {err}"))?;
    response
        .status
        .and_then(|s| s.token)
        .ok_or_else(|| format!("the token request for ServiceAccount {account} returned no token"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data() -> BTreeMap<String, Vec<u8>> {
        [
            ("ca.crt".to_string(), b"CA".to_vec()),
            ("tls.key".into(), b"KEY".to_vec()),
        ]
        .into()
    }

    #[test]
    fn selects_all_keys_or_only_items() {
        let all = select_keys(&data(), None, Some(0o400), None).unwrap();
        assert_eq!(all.len(), 2);
        assert!(all.iter().all(|f| f.mode == 0o400));
        let item = KeyToPath {
            key: "tls.key".into(),
            path: "private/key.pem".into(),
            mode: Some(0o600),
            user: None,
        };
        let picked = select_keys(&data(), Some(std::slice::from_ref(&item)), None, None).unwrap();
        assert_eq!(
            picked,
            [VolumeFile {
                path: "private/key.pem".into(),
                bytes: b"KEY".to_vec(),
                mode: 0o600
            }]
        );
        let missing = KeyToPath {
            key: "nope".into(),
            ..item
        };
        assert!(select_keys(&data(), Some(std::slice::from_ref(&missing)), None, None).is_err());
        assert!(
            select_keys(&data(), Some(&[missing]), None, Some(true))
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn writes_files_with_modes_and_refuses_escapes() {
        let dir = tempfile::tempdir().unwrap();
        let files = select_keys(&data(), None, None, None).unwrap();
        write_files(dir.path(), &files).unwrap();
        assert_eq!(std::fs::read(dir.path().join("ca.crt")).unwrap(), b"CA");
        let mode = std::fs::metadata(dir.path().join("tls.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o644);
        let escape = VolumeFile {
            path: "../x".into(),
            bytes: vec![],
            mode: 0o644,
        };
        assert!(write_files(dir.path(), &[escape]).unwrap_err().contains(".."));
    }

    #[test]
    fn downward_files_follow_the_pods_annotations() {
        let dir = tempfile::tempdir().unwrap();
        let pod = |release: Option<&str>| -> Pod {
            let mut value = serde_json::json!({
                "metadata": {"name": "p", "namespace": "n", "annotations": {}},
                "spec": {"containers": [{"name": "c"}], "volumes": [{"name": "release", "downwardAPI": {
                    "items": [{"path": "release",
                               "fieldRef": {"fieldPath": "metadata.annotations['x.dev/release']"}}]}}]}
            });
            if let Some(release) = release {
                value["metadata"]["annotations"]["x.dev/release"] = release.into();
            }
            serde_json::from_value(value).unwrap()
        };
        let file = dir.path().join("volumes/release/release");
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(&file, "").unwrap();
        refresh_downward(&pod(Some("now")), dir.path()).unwrap();
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "now");
        refresh_downward(&pod(None), dir.path()).unwrap();
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "");
        assert!(
            !dir.path().join("volumes/.release.refresh").exists(),
            "no staging left behind"
        );
    }
}
