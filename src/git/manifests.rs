//! The app's manifests as Ferry sees them: every YAML file under a directory, split into documents
//! (and `kind: List` items), with the workloads Ferry quiesces, the PersistentVolumeClaims it migrates
//! and kustomization `replicas:` entries. Parsing is pure; only [`load`] touches the disk.

use std::path::{Path, PathBuf};

use serde_json::Value;

use super::yaml::tree;
use crate::{Error, Result};

/// All YAML files under one directory.
#[derive(Debug, Clone, Default)]
pub struct Manifests {
    /// Files in path order.
    pub files: Vec<ManifestFile>,
}

/// One YAML file.
#[derive(Debug, Clone)]
pub struct ManifestFile {
    /// Path relative to the base given to [`load_at`] (the repository root), with `/` separators.
    pub path: String,
    /// Documents in file order; empty documents (`---` with only comments) have `Value::Null`.
    pub documents: Vec<Value>,
}

/// The workload kinds Ferry knows how to quiesce (DESIGN.md §4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum WorkloadKind {
    /// apps/v1 Deployment.
    Deployment,
    /// apps/v1 StatefulSet.
    StatefulSet,
    /// apps/v1 ReplicaSet.
    ReplicaSet,
    /// v1 ReplicationController.
    ReplicationController,
    /// apps/v1 DaemonSet.
    DaemonSet,
    /// batch/v1 Job.
    Job,
    /// batch/v1 CronJob.
    CronJob,
    /// OpenShift apps.openshift.io/v1 DeploymentConfig.
    DeploymentConfig,
}

impl WorkloadKind {
    /// Maps a manifest `kind` to a workload kind.
    pub fn from_kind(kind: &str) -> Option<Self> {
        Some(match kind {
            "Deployment" => Self::Deployment,
            "StatefulSet" => Self::StatefulSet,
            "ReplicaSet" => Self::ReplicaSet,
            "ReplicationController" => Self::ReplicationController,
            "DaemonSet" => Self::DaemonSet,
            "Job" => Self::Job,
            "CronJob" => Self::CronJob,
            "DeploymentConfig" => Self::DeploymentConfig,
            _ => return None,
        })
    }
}

/// Where an object lives: file, document, and JSON pointer inside the document (`""` for the whole
/// document, `/items/3` for an item of a `List`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    /// File path relative to the load base.
    pub file: String,
    /// 0-based document index in the file.
    pub document: usize,
    /// JSON pointer of the object inside the document.
    pub pointer: String,
}

/// A workload found in the manifests.
#[derive(Debug, Clone)]
pub struct Workload {
    /// Its kind.
    pub kind: WorkloadKind,
    /// `metadata.name`.
    pub name: String,
    /// `metadata.namespace`, when written in the manifest.
    pub namespace: Option<String>,
    /// Where it is written.
    pub location: Location,
    /// The object as data.
    pub object: Value,
}

/// A PersistentVolumeClaim, written directly or as a StatefulSet `volumeClaimTemplates` entry.
#[derive(Debug, Clone)]
pub struct PersistentVolumeClaim {
    /// The claim name (for templates, the template name; pods get `<name>-<statefulset>-<ordinal>`).
    pub name: String,
    /// `metadata.namespace` of the claim (or of its StatefulSet).
    pub namespace: Option<String>,
    /// The StatefulSet whose `volumeClaimTemplates` define it, if any.
    pub stateful_set: Option<String>,
    /// Where it is written.
    pub location: Location,
    /// Its `spec`.
    pub spec: Value,
}

/// One `replicas:` entry of a kustomization file.
#[derive(Debug, Clone)]
pub struct KustomizeReplicas {
    /// The workload name the entry scales.
    pub name: String,
    /// The count, when written.
    pub count: Option<Value>,
    /// Where the entry is (pointer `/replicas/<i>`).
    pub location: Location,
}

/// Reads every `.yaml`/`.yml` file under `dir`, naming files relative to `dir`.
pub fn load(dir: &Path) -> Result<Manifests> {
    load_at(dir, dir)
}

/// Reads every `.yaml`/`.yml` file under `dir`, naming files relative to `base` (e.g. the repository
/// root, so that edits can be committed). Hidden directories such as `.git` are skipped.
pub fn load_at(base: &Path, dir: &Path) -> Result<Manifests> {
    let mut paths = Vec::new();
    collect_yaml_files(dir, &mut paths)?;
    paths.sort();
    let mut files = Vec::new();
    for path in paths {
        let text =
            std::fs::read_to_string(&path).map_err(Error::io(format!("reading {}", path.display())))?;
        let relative = path.strip_prefix(base).unwrap_or(&path);
        let name = relative
            .components()
            .map(|c| c.as_os_str().to_string_lossy())
            .collect::<Vec<_>>()
            .join("/");
        files.push(parse_file(&name, &text)?);
    }
    Ok(Manifests { files })
}

fn collect_yaml_files(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    let entries = std::fs::read_dir(dir).map_err(Error::io(format!("listing {}", dir.display())))?;
    for entry in entries {
        let entry = entry.map_err(Error::io(format!("listing {}", dir.display())))?;
        let path = entry.path();
        let hidden = entry.file_name().to_string_lossy().starts_with('.');
        let file_type = entry
            .file_type()
            .map_err(Error::io(format!("inspecting {}", path.display())))?;
        if file_type.is_dir() && !hidden {
            collect_yaml_files(&path, out)?;
        } else if file_type.is_file() && path.extension().is_some_and(|ext| ext == "yaml" || ext == "yml") {
            out.push(path);
        }
    }
    Ok(())
}

/// Parses one file's text; a syntax error names the file and line.
pub fn parse_file(path: &str, text: &str) -> Result<ManifestFile> {
    let docs = tree::parse(text).map_err(|err| Error::Manifest {
        file: path.to_string(),
        line: err.line,
        message: err.message,
    })?;
    let documents = docs
        .iter()
        .map(|doc| doc.root.as_ref().map_or(Value::Null, tree::Node::to_json))
        .collect();
    Ok(ManifestFile {
        path: path.to_string(),
        documents,
    })
}

impl Manifests {
    /// Every Kubernetes object with its location: documents, and items of `kind: List` documents.
    pub fn objects(&self) -> impl Iterator<Item = (Location, &Value)> {
        self.files.iter().flat_map(|file| {
            file.documents
                .iter()
                .enumerate()
                .flat_map(move |(document, value)| {
                    let at = |pointer: String| Location {
                        file: file.path.clone(),
                        document,
                        pointer,
                    };
                    let is_list = value["kind"]
                        .as_str()
                        .is_some_and(|kind| kind == "List" || kind.ends_with("List"))
                        && value["items"].is_array();
                    let objects: Vec<(Location, &Value)> = if is_list {
                        let items = value["items"].as_array().map(Vec::as_slice).unwrap_or_default();
                        items
                            .iter()
                            .enumerate()
                            .map(|(i, item)| (at(format!("/items/{i}")), item))
                            .collect()
                    } else if value.is_object() {
                        vec![(at(String::new()), value)]
                    } else {
                        Vec::new()
                    };
                    objects
                })
        })
    }

    /// The workloads Ferry can quiesce.
    pub fn workloads(&self) -> Vec<Workload> {
        self.objects()
            .filter_map(|(location, object)| {
                let kind = WorkloadKind::from_kind(object["kind"].as_str()?)?;
                Some(Workload {
                    kind,
                    name: object["metadata"]["name"].as_str()?.to_string(),
                    namespace: object["metadata"]["namespace"].as_str().map(str::to_string),
                    location,
                    object: object.clone(),
                })
            })
            .collect()
    }

    /// PersistentVolumeClaims, including StatefulSet `volumeClaimTemplates`.
    pub fn persistent_volume_claims(&self) -> Vec<PersistentVolumeClaim> {
        let mut claims = Vec::new();
        for (location, object) in self.objects() {
            let namespace = object["metadata"]["namespace"].as_str().map(str::to_string);
            match object["kind"].as_str() {
                Some("PersistentVolumeClaim") => claims.extend(object["metadata"]["name"].as_str().map(
                    |name| PersistentVolumeClaim {
                        name: name.to_string(),
                        namespace,
                        stateful_set: None,
                        location: location.clone(),
                        spec: object["spec"].clone(),
                    },
                )),
                Some("StatefulSet") => {
                    let owner = object["metadata"]["name"].as_str().map(str::to_string);
                    let templates = object["spec"]["volumeClaimTemplates"].as_array();
                    for (i, template) in templates.into_iter().flatten().enumerate() {
                        let Some(name) = template["metadata"]["name"].as_str() else {
                            continue;
                        };
                        claims.push(PersistentVolumeClaim {
                            name: name.to_string(),
                            namespace: namespace.clone(),
                            stateful_set: owner.clone(),
                            location: Location {
                                pointer: format!("{}/spec/volumeClaimTemplates/{i}", location.pointer),
                                ..location.clone()
                            },
                            spec: template["spec"].clone(),
                        });
                    }
                }
                _ => {}
            }
        }
        claims
    }

    /// `replicas:` entries of kustomization files (`kustomization.yaml` or `kind: Kustomization`).
    pub fn kustomize_replicas(&self) -> Vec<KustomizeReplicas> {
        let mut found = Vec::new();
        for file in &self.files {
            let file_name = file.path.rsplit('/').next().unwrap_or_default();
            let named = matches!(
                file_name,
                "kustomization.yaml" | "kustomization.yml" | "Kustomization"
            );
            for (document, value) in file.documents.iter().enumerate() {
                if !(named || value["kind"] == "Kustomization") {
                    continue;
                }
                for (i, entry) in value["replicas"].as_array().into_iter().flatten().enumerate() {
                    let Some(name) = entry["name"].as_str() else {
                        continue;
                    };
                    found.push(KustomizeReplicas {
                        name: name.to_string(),
                        count: entry.get("count").cloned(),
                        location: Location {
                            file: file.path.clone(),
                            document,
                            pointer: format!("/replicas/{i}"),
                        },
                    });
                }
            }
        }
        found
    }
}

#[cfg(test)]
#[path = "manifests_tests.rs"]
mod tests;
