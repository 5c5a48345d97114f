//! From a container spec to a local process spec: the environment (values, Secret/ConfigMap keys,
//! downward-API fields, `envFrom`), `$(VAR)` expansion, the volume-mount path map applied to command,
//! args, env values and working directory, and the executable (`ferry` → the binary under test, a
//! stand-in image's entrypoint script, anything else from PATH, since there are no images).

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

use k8s_openapi::api::core::v1::{Container, EnvVar, Pod};

use super::Shared;
use super::paths::{PathMap, expand};
use super::sources::{ObjectLookup, field_value};

/// Where Kubernetes writes the termination message unless `terminationMessagePath` says otherwise.
const DEFAULT_TERMINATION_PATH: &str = "/dev/termination-log";

/// The names under which a container spec asks for the Ferry binary (the mover image's paths).
const FERRY_NAMES: [&str; 3] = ["ferry", "/ferry", "/usr/local/bin/ferry"];

/// One container instance, ready to start as a local process.
#[derive(Debug, Clone)]
pub(crate) struct ProcessSpec {
    /// The executable.
    pub(crate) program: PathBuf,
    /// Its arguments (after `command[0]`), expanded and path-mapped.
    pub(crate) args: Vec<String>,
    /// The complete environment (nothing is inherited but what is listed here).
    pub(crate) env: Vec<(String, String)>,
    /// Working directory.
    pub(crate) working_dir: PathBuf,
    /// stdout and stderr of every instance are appended here.
    pub(crate) log: PathBuf,
    /// The local file standing in for `terminationMessagePath`.
    pub(crate) termination_file: PathBuf,
    /// `terminationMessagePolicy: FallbackToLogsOnError`.
    pub(crate) fallback_to_logs: bool,
}

/// Builds the process spec of `container`. Errors are messages for the pod's status.
pub(crate) async fn prepare(
    shared: &Shared,
    pod: &Pod,
    container: &Container,
    volumes: &BTreeMap<String, PathBuf>,
    pod_dir: &Path,
    lookup: &ObjectLookup,
) -> Result<ProcessSpec, String> {
    let name = &container.name;
    let env = container_env(pod, container, lookup)
        .await
        .map_err(|err| format!("container {name}: {err}"))?;
    let lookup_env = |var: &str| env.iter().rev().find(|(k, _)| k == var).map(|(_, v)| v.clone());
    let paths = path_map(container, volumes, pod_dir, &lookup_env)
        .map_err(|err| format!("container {name}: {err}"))?;

    let mut command = container.command.clone().unwrap_or_default();
    if command.is_empty()
        && let Some(script) = container.image.as_deref().and_then(|i| entrypoint(shared, i))
    {
        command = vec!["sh".to_string(), script.display().to_string()];
    }
    let Some(first) = command.first() else {
        return Err(format!(
            "container {name} has no command: the sandbox node agent runs no images, so the image's \
             entrypoint is unknown; set `command`"
        ));
    };
    let program = executable(shared, &paths.rewrite(&expand(first, lookup_env)), first)
        .map_err(|err| format!("container {name}: {err}"))?;
    let args = command[1..]
        .iter()
        .chain(container.args.iter().flatten())
        .map(|arg| paths.rewrite(&expand(arg, lookup_env)))
        .collect();

    let mut process_env = base_env(pod, pod_dir, &paths);
    process_env.extend(shared.options.extra_env.iter().cloned());
    process_env.extend(env.iter().map(|(k, v)| (k.clone(), paths.rewrite(v))));

    let working_dir = match &container.working_dir {
        Some(dir) => {
            let local = PathBuf::from(paths.rewrite(dir));
            if !local.is_dir() {
                return Err(format!(
                    "container {name}: workingDir {dir} is not under a volume mount and does not exist on \
                     this machine"
                ));
            }
            local
        }
        None => pod_dir.to_path_buf(),
    };
    Ok(ProcessSpec {
        program,
        args,
        env: process_env,
        working_dir,
        log: pod_dir.join("logs").join(format!("{name}.log")),
        termination_file: termination_file(pod_dir, name),
        fallback_to_logs: container.termination_message_policy.as_deref() == Some("FallbackToLogsOnError"),
    })
}

/// The entrypoint script of stand-in image `image` (see `NodeAgentOptions::entrypoints`), if there is one.
pub(crate) fn entrypoint(shared: &Shared, image: &str) -> Option<PathBuf> {
    let dir = shared.options.entrypoints.as_ref()?;
    let script = dir.join(image.replace(['/', ':', '@'], "_"));
    script.is_file().then_some(script)
}

/// The local file that stands in for container `name`'s termination-message path.
pub(crate) fn termination_file(pod_dir: &Path, name: &str) -> PathBuf {
    pod_dir.join("termination").join(name)
}

/// The environment every agent-run process gets before the container's own: PATH from this machine
/// (there is no image to bring one), HOME and HOSTNAME as a container would have them, and the mount
/// map as `FERRY_SANDBOX_MOUNT_<N>` (container path) / `FERRY_SANDBOX_ROOT_<N>` (local path).
fn base_env(pod: &Pod, pod_dir: &Path, paths: &PathMap) -> Vec<(String, String)> {
    let mut env = vec![
        (
            "PATH".to_string(),
            std::env::var("PATH").unwrap_or_else(|_| "/usr/local/bin:/usr/bin:/bin".into()),
        ),
        ("HOME".to_string(), pod_dir.to_string_lossy().into_owned()),
        (
            "HOSTNAME".to_string(),
            pod.metadata.name.clone().unwrap_or_default(),
        ),
        ("FERRY_SANDBOX".to_string(), "1".to_string()),
    ];
    for (index, (container, local)) in paths.entries().iter().enumerate() {
        env.push((format!("FERRY_SANDBOX_MOUNT_{index}"), container.clone()));
        env.push((
            format!("FERRY_SANDBOX_ROOT_{index}"),
            local.to_string_lossy().into_owned(),
        ));
    }
    env
}

/// The container's environment as the container would see it (`envFrom` first, then `env`, each value
/// `$(VAR)`-expanded against the variables before it), before path mapping.
async fn container_env(
    pod: &Pod,
    container: &Container,
    lookup: &ObjectLookup,
) -> Result<Vec<(String, String)>, String> {
    let mut env: Vec<(String, String)> = Vec::new();
    for source in container.env_from.iter().flatten() {
        let prefix = source.prefix.clone().unwrap_or_default();
        let data = if let Some(secret) = &source.secret_ref {
            lookup.data(true, &secret.name, secret.optional).await?
        } else if let Some(map) = &source.config_map_ref {
            lookup.data(false, &map.name, map.optional).await?
        } else {
            continue;
        };
        for (key, value) in data {
            env.push((format!("{prefix}{key}"), utf8(value, &key)?));
        }
    }
    for var in container.env.iter().flatten() {
        let Some(value) = env_value(pod, var, lookup).await? else {
            continue;
        };
        let expanded = expand(&value, |name| {
            env.iter().rev().find(|(k, _)| k == name).map(|(_, v)| v.clone())
        });
        env.push((var.name.clone(), expanded));
    }
    Ok(env)
}

/// One `env` entry's raw value; `None` when it comes from an optional key that is missing.
async fn env_value(pod: &Pod, var: &EnvVar, lookup: &ObjectLookup) -> Result<Option<String>, String> {
    let Some(from) = &var.value_from else {
        return Ok(Some(var.value.clone().unwrap_or_default()));
    };
    let (secret, name, key, optional) = if let Some(r) = &from.secret_key_ref {
        (true, &r.name, &r.key, r.optional)
    } else if let Some(r) = &from.config_map_key_ref {
        (false, &r.name, &r.key, r.optional)
    } else if let Some(field) = &from.field_ref {
        return field_value(pod, &field.field_path).map(Some);
    } else {
        return Err(format!(
            "env {}: only value, secretKeyRef, configMapKeyRef and fieldRef are supported by the sandbox \
             node agent",
            var.name
        ));
    };
    let kind = if secret { "Secret" } else { "ConfigMap" };
    let data = lookup.data(secret, name, optional).await?;
    match data.get(key.as_str()) {
        Some(bytes) => utf8(bytes.clone(), key).map(Some),
        None if optional == Some(true) => Ok(None),
        None => Err(format!(
            "env {}: key {key:?} not found in {kind} {name}",
            var.name
        )),
    }
}

fn utf8(bytes: Vec<u8>, key: &str) -> Result<String, String> {
    String::from_utf8(bytes)
        .map_err(|_| format!("key {key:?} is not UTF-8, so it cannot be an environment value"))
}

/// The container's mounts (and termination-message path) as a path map.
fn path_map(
    container: &Container,
    volumes: &BTreeMap<String, PathBuf>,
    pod_dir: &Path,
    lookup_env: &dyn Fn(&str) -> Option<String>,
) -> Result<PathMap, String> {
    let mut paths = PathMap::default();
    for mount in container.volume_mounts.iter().flatten() {
        if mount.mount_path.trim_end_matches('/').is_empty() {
            return Err(format!(
                "volume {} is mounted at /, which cannot be mapped",
                mount.name
            ));
        }
        let base = volumes
            .get(&mount.name)
            .ok_or_else(|| format!("volumeMount {} names no volume of the pod", mount.name))?;
        let sub_path = match (&mount.sub_path, &mount.sub_path_expr) {
            (Some(sub), _) if !sub.is_empty() => sub.clone(),
            (_, Some(expr)) if !expr.is_empty() => expand(expr, lookup_env),
            _ => String::new(),
        };
        let local = if sub_path.is_empty() {
            base.clone()
        } else {
            if !Path::new(&sub_path)
                .components()
                .all(|c| matches!(c, Component::Normal(_)))
            {
                return Err(format!("subPath {sub_path:?} must be relative without '..'"));
            }
            let local = base.join(&sub_path);
            // A kubelet creates a missing subPath as a directory.
            if !local.exists() {
                std::fs::create_dir_all(&local)
                    .map_err(|err| format!("creating {}: {err}", local.display()))?;
            }
            local
        };
        paths.insert(&mount.mount_path, &local);
    }
    let termination = container
        .termination_message_path
        .as_deref()
        .unwrap_or(DEFAULT_TERMINATION_PATH);
    paths.insert(termination, &termination_file(pod_dir, &container.name));
    Ok(paths)
}

/// The executable for `command[0]`: the configured Ferry binary for the mover image's `ferry` paths;
/// otherwise the (mapped) path if it exists here, else its file name looked up in PATH.
fn executable(shared: &Shared, mapped: &str, original: &str) -> Result<PathBuf, String> {
    if FERRY_NAMES.contains(&original) {
        return shared.options.ferry_binary.clone().ok_or_else(|| {
            "the command is ferry but the node agent was started without `ferry_binary`".to_string()
        });
    }
    let path = Path::new(mapped);
    if mapped.contains('/') && path.is_file() {
        return Ok(path.to_path_buf());
    }
    let file_name = path.file_name().map(|f| f.to_os_string()).unwrap_or_default();
    std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
        .map(|dir| dir.join(&file_name))
        .find(|candidate| candidate.is_file())
        .ok_or_else(|| format!("executable {original:?} not found on this machine (nor its name in PATH)"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::VolumeMount;

    fn mount(name: &str, path: &str, sub_path: Option<&str>, sub_path_expr: Option<&str>) -> VolumeMount {
        VolumeMount {
            name: name.into(),
            mount_path: path.into(),
            sub_path: sub_path.map(Into::into),
            sub_path_expr: sub_path_expr.map(Into::into),
            ..VolumeMount::default()
        }
    }

    #[test]
    fn mounts_sub_paths_and_the_termination_file_map_to_local_paths() {
        let dir = tempfile::tempdir().unwrap();
        let volumes = BTreeMap::from([("data".to_string(), dir.path().join("pv"))]);
        let container = Container {
            name: "mover".into(),
            volume_mounts: Some(vec![
                mount("data", "/data", None, None),
                mount("data", "/incoming", Some("in"), None),
                mount("data", "/by-pod", None, Some("$(POD)")),
            ]),
            termination_message_path: Some("/tmp/msg".into()),
            ..Container::default()
        };
        let lookup = |name: &str| (name == "POD").then(|| "p1".to_string());
        let paths = path_map(&container, &volumes, dir.path(), &lookup).unwrap();
        let pv = dir.path().join("pv");
        assert_eq!(paths.rewrite("/data/x"), format!("{}/x", pv.display()));
        assert_eq!(paths.rewrite("/incoming"), pv.join("in").display().to_string());
        assert_eq!(paths.rewrite("/by-pod"), pv.join("p1").display().to_string());
        assert_eq!(
            paths.rewrite("/tmp/msg"),
            termination_file(dir.path(), "mover").display().to_string()
        );
        assert!(
            pv.join("in").is_dir() && pv.join("p1").is_dir(),
            "subPaths are created"
        );
        assert_eq!(paths.rewrite("/dev/termination-log"), "/dev/termination-log");
    }

    #[test]
    fn refuses_escaping_sub_paths_root_mounts_and_unknown_volumes() {
        let dir = tempfile::tempdir().unwrap();
        let volumes = BTreeMap::from([("data".to_string(), dir.path().to_path_buf())]);
        let none = |_: &str| None;
        for (mount, expected) in [
            (mount("data", "/d", Some("../up"), None), "relative"),
            (mount("data", "/", None, None), "mounted at /"),
            (mount("other", "/d", None, None), "names no volume"),
        ] {
            let container = Container {
                name: "c".into(),
                volume_mounts: Some(vec![mount]),
                ..Container::default()
            };
            let err = path_map(&container, &volumes, dir.path(), &none).unwrap_err();
            assert!(err.contains(expected), "{err}");
        }
    }
}
