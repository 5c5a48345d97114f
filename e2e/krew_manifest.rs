//! `manifests/krew/ferry.yaml`, the krew plugin manifest: it parses as krew's `Plugin` (unknown or
//! misspelt fields fail), names the plugin `ferry`, carries the crate's version, and its linux/amd64
//! platform installs a `bin` that the real binary answers to as `kubectl ferry`. The archive fields
//! are either the documented unreleased placeholder (a `.invalid` host and 64 zeros, which no archive
//! matches) or a real release (an https URI and a 64-hex-digit sha256) — never a mix.

use std::collections::BTreeMap;
use std::process::Command;

use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Plugin {
    api_version: String,
    kind: String,
    metadata: Metadata,
    spec: Spec,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Metadata {
    name: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Spec {
    version: String,
    #[serde(default)]
    homepage: Option<String>,
    short_description: String,
    description: String,
    #[serde(default)]
    caveats: Option<String>,
    platforms: Vec<Platform>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Platform {
    selector: Selector,
    uri: String,
    sha256: String,
    #[serde(default)]
    files: Vec<FileOperation>,
    bin: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Selector {
    match_labels: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileOperation {
    from: String,
    to: String,
}

/// Placeholder of an unreleased manifest (documented in the manifest's header and docs/cli.md).
const UNRELEASED_SHA256: &str = "0000000000000000000000000000000000000000000000000000000000000000";

fn manifest() -> Plugin {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/manifests/krew/ferry.yaml");
    let text = std::fs::read_to_string(path).unwrap();
    serde_saphyr::from_str(&text).unwrap_or_else(|err| panic!("{path} is not a krew Plugin: {err}"))
}

#[test]
fn the_manifest_is_a_krew_plugin_named_ferry_at_the_crates_version() {
    let plugin = manifest();
    assert_eq!(
        plugin.api_version,
        "krew.googlecontainertools.github.com/v1alpha2"
    );
    assert_eq!(plugin.kind, "Plugin");
    // krew: the name is how the plugin is invoked (`kubectl ferry`) and the manifest's file name.
    assert_eq!(plugin.metadata.name, "ferry");
    assert_eq!(plugin.spec.version, format!("v{}", env!("CARGO_PKG_VERSION")));
    assert!(!plugin.spec.short_description.is_empty() && plugin.spec.short_description.len() <= 80);
    assert!(plugin.spec.description.contains("kubectl ferry"));
    assert!(plugin.spec.homepage.is_none_or(|h| h.starts_with("https://")));
    assert!(plugin.spec.caveats.is_some());
}

#[test]
fn the_linux_amd64_archive_is_a_placeholder_or_a_release_never_a_mix() {
    let plugin = manifest();
    let linux: Vec<&Platform> = plugin
        .spec
        .platforms
        .iter()
        .filter(|p| {
            p.selector.match_labels.get("os").map(String::as_str) == Some("linux")
                && p.selector.match_labels.get("arch").map(String::as_str) == Some("amd64")
        })
        .collect();
    let [platform] = linux[..] else {
        panic!(
            "exactly one linux/amd64 platform expected: {:?}",
            plugin.spec.platforms
        )
    };
    assert!(
        platform.sha256.len() == 64 && platform.sha256.chars().all(|c| c.is_ascii_hexdigit()),
        "sha256 must be 64 hex digits: {}",
        platform.sha256
    );
    let host = url::Url::parse(&platform.uri)
        .unwrap_or_else(|err| panic!("uri {}: {err}", platform.uri))
        .host_str()
        .unwrap_or_default()
        .to_string();
    if platform.sha256 == UNRELEASED_SHA256 {
        assert!(
            host.ends_with(".invalid"),
            "a placeholder sha256 with a real host: {host}"
        );
    } else {
        assert!(
            platform.uri.starts_with("https://") && !host.ends_with(".invalid"),
            "a release sha256 needs the release's https URI: {}",
            platform.uri
        );
        assert!(
            platform.uri.contains(&plugin.spec.version),
            "the URI names another version"
        );
    }
    assert!(platform.uri.ends_with(".tar.gz") || platform.uri.ends_with(".zip"));
    // The archive's file ends up where `bin` says.
    assert!(
        platform
            .files
            .iter()
            .any(|f| f.from == platform.bin && f.to == "."),
        "{:?} does not place {}",
        platform.files,
        platform.bin
    );
}

#[test]
fn the_binary_answers_to_the_manifests_bin_as_kubectl_ferry() {
    let plugin = manifest();
    let bin = &plugin.spec.platforms[0].bin;
    assert_eq!(bin, &format!("kubectl-{}", plugin.metadata.name));
    let dir = tempfile::tempdir().unwrap();
    let link = dir.path().join(bin);
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_ferry"), &link).unwrap();
    let help = Command::new(&link).arg("--help").output().unwrap();
    let out = String::from_utf8_lossy(&help.stdout);
    assert!(help.status.success(), "{out}");
    assert!(out.contains("Usage: kubectl ferry"), "{out}");
    assert!(out.contains("report"), "the plugin's help lists `report`: {out}");
}
