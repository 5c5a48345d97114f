//! Least privilege, checked against what Ferry really did: the control planes audit-log every request
//! of a `ferry-system` ServiceAccount (e2e/controlplane/apiserver.go), and this module compares those
//! requests with the rules of Ferry's roles in `manifests/`. A request refused with 403 is a missing
//! grant; a granted (group, resource, verb) no request used, and not listed as exercised elsewhere,
//! is an extra grant.

#![allow(dead_code)]

use std::collections::BTreeSet;
use std::path::Path;

/// One permission: API group (`""` for core), resource (with `/subresource`), verb.
pub type Permission = (String, String, String);

/// The permissions a role grants: every (group, resource, verb) of its rules, expanded.
pub fn granted(manifest: &Path, kind: &str, name: &str) -> BTreeSet<Permission> {
    let text = std::fs::read_to_string(manifest).unwrap();
    let documents: Vec<serde_json::Value> = serde_saphyr::from_multiple(&text).unwrap();
    let role = documents
        .iter()
        .find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("{kind} {name} not in {}", manifest.display()));
    let strings = |value: &serde_json::Value| -> Vec<String> {
        value
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect()
    };
    let mut permissions = BTreeSet::new();
    for rule in role["rules"].as_array().unwrap() {
        for group in strings(&rule["apiGroups"]) {
            for resource in strings(&rule["resources"]) {
                for verb in strings(&rule["verbs"]) {
                    permissions.insert((group.clone(), resource.clone(), verb));
                }
            }
        }
    }
    permissions
}

/// What `user` did according to an audit log: the permissions its resource requests used, and the
/// requests the API server refused with 403 (as `verb group/resource` lines).
pub fn used(audit_log: &Path, user: &str) -> (BTreeSet<Permission>, Vec<String>) {
    let text = std::fs::read_to_string(audit_log)
        .unwrap_or_else(|err| panic!("reading {}: {err}", audit_log.display()));
    let mut permissions = BTreeSet::new();
    let mut forbidden = Vec::new();
    for line in text.lines() {
        let event: serde_json::Value = serde_json::from_str(line).unwrap();
        if event["user"]["username"] != user {
            continue;
        }
        let Some(object) = event["objectRef"].as_object() else {
            continue; // non-resource URLs (discovery, /version) are open to every authenticated user
        };
        let text = |key: &str| object.get(key).and_then(|v| v.as_str()).unwrap_or_default();
        let resource = match text("subresource") {
            "" => text("resource").to_string(),
            sub => format!("{}/{sub}", text("resource")),
        };
        let verb = event["verb"].as_str().unwrap_or_default().to_string();
        if event["responseStatus"]["code"] == 403 {
            forbidden.push(format!("{verb} {}/{resource} {}", text("apiGroup"), text("name")));
        }
        permissions.insert((text("apiGroup").to_string(), resource, verb));
    }
    (permissions, forbidden)
}

/// The granted permissions neither used nor in `elsewhere` (permissions exercised by code paths this
/// run does not take, each with its reason).
pub fn unused(
    granted: &BTreeSet<Permission>,
    used: &BTreeSet<Permission>,
    elsewhere: &[(&str, &str, &str, &str)],
) -> Vec<Permission> {
    granted
        .iter()
        .filter(|p| !used.contains(*p))
        .filter(|(group, resource, verb)| {
            !elsewhere
                .iter()
                .any(|(g, r, v, _why)| g == group && r == resource && v == verb)
        })
        .cloned()
        .collect()
}
