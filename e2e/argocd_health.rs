//! The Argo CD health checks (`manifests/argocd/health/argocd-cm.yaml`), run by the real Lua 5.1
//! interpreter (`lua5.1`, the dialect of Argo CD's gopher-lua) on MigPlan and MigMigration statuses
//! captured from the sandbox (`e2e/fixtures/health/`): each fixture gets the status and the message
//! a user needs, read from the ConfigMap exactly as Argo CD reads it.
//!
//! ```text
//! fixture JSON ──> Lua table literal `obj` ─┐
//! argocd-cm data key (the script) ──────────┴─> lua5.1 ─> "status\tmessage"
//! ```

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use k8s_openapi::api::core::v1::ConfigMap;
use serde_json::Value;

const KEY_PREFIX: &str = "resource.customizations.health.migration.ferry.dev_";

/// The health scripts by kind, from the ConfigMap's data keys.
fn scripts() -> BTreeMap<String, String> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("manifests/argocd/health/argocd-cm.yaml");
    let config_map: ConfigMap = serde_saphyr::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    assert_eq!(config_map.metadata.name.as_deref(), Some("argocd-cm"));
    config_map
        .data
        .unwrap_or_default()
        .into_iter()
        .map(|(key, script)| {
            let kind = key
                .strip_prefix(KEY_PREFIX)
                .unwrap_or_else(|| panic!("unexpected key {key}"));
            (kind.to_string(), script)
        })
        .collect()
}

/// `value` as a Lua table constructor (JSON null is Lua's nil: an absent field, as in Argo CD).
fn to_lua(value: &Value) -> String {
    match value {
        Value::Null => "nil".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => lua_string(s),
        Value::Array(items) => format!("{{{}}}", items.iter().map(to_lua).collect::<Vec<_>>().join(", ")),
        Value::Object(fields) => format!(
            "{{{}}}",
            fields
                .iter()
                .map(|(k, v)| format!("[{}] = {}", lua_string(k), to_lua(v)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// A Lua 5.1 string literal: `\ddd` escapes for quotes, backslashes and control characters; other
/// text as it is (Lua strings are bytes, so UTF-8 passes through).
fn lua_string(s: &str) -> String {
    let mut out = String::from("\"");
    for ch in s.chars() {
        match ch {
            '"' | '\\' | '\0'..='\u{1f}' | '\u{7f}' => out.push_str(&format!("\\{:03}", ch as u32)),
            _ => out.push(ch),
        }
    }
    out.push('"');
    out
}

/// Runs the `kind` script on the fixture `name` with `lua5.1`; returns `(status, message)`.
fn health(kind: &str, name: &str) -> (String, String) {
    let script = &scripts()[kind];
    assert!(
        !script.contains("]==]"),
        "the script must fit in a Lua long string"
    );
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("e2e/fixtures/health/{name}.json"));
    let fixture: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(fixture["kind"], kind, "{name}");
    let harness = format!(
        "obj = {}\nlocal check = assert(loadstring([==[{script}]==], \"{kind}\"))\nlocal hs = check()\n\
         io.write(tostring(hs.status), \"\\t\", tostring(hs.message), \"\\n\")\n",
        to_lua(&fixture)
    );
    let mut lua = Command::new("lua5.1")
        .arg("-")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("lua5.1 runs (Debian package lua5.1, installed by .ci/run)");
    lua.stdin.take().unwrap().write_all(harness.as_bytes()).unwrap();
    let output = lua.wait_with_output().unwrap();
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert!(
        output.status.success(),
        "{kind} on {name}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let (status, message) = stdout.trim_end().split_once('\t').unwrap();
    (status.to_string(), message.to_string())
}

/// Asserts `kind`'s script gives `status` for fixture `name`, with every fragment in the message.
fn expect(kind: &str, name: &str, status: &str, fragments: &[&str]) {
    let (got, message) = health(kind, name);
    assert_eq!(got, status, "{name}: {message}");
    for fragment in fragments {
        assert!(
            message.contains(fragment),
            "{name}: {fragment:?} not in {message:?}"
        );
    }
}

#[test]
fn the_config_map_holds_one_lua_5_1_script_per_kind() {
    let scripts = scripts();
    assert_eq!(scripts.keys().collect::<Vec<_>>(), ["MigMigration", "MigPlan"]);
    for (kind, script) in &scripts {
        // gopher-lua is Lua 5.1: lua5.1 rejects goto and `//` at parse time, but a `utf8.` call would
        // only fail on the path that runs it.
        assert!(!script.contains("utf8."), "{kind} uses the utf8 library");
        assert!(script.trim_end().ends_with("return hs"), "{kind}");
    }
}

#[test]
fn migrations() {
    let kind = "MigMigration";
    expect(
        kind,
        "migration-new",
        "Progressing",
        &["Waiting for the Ferry controller"],
    );
    expect(
        kind,
        "migration-stage-running",
        "Progressing",
        &["Running Stage, WaitForTransfer", "(Step: 7/8)"],
    );
    expect(
        kind,
        "migration-cutover-running",
        "Progressing",
        &["Running Final, ", "Step: "],
    );
    expect(
        kind,
        "migration-stage-succeeded",
        "Healthy",
        &["The migration has completed successfully."],
    );
    expect(
        kind,
        "migration-cutover-succeeded",
        "Healthy",
        &["The migration has completed successfully.", "Downtime: "],
    );
    expect(
        kind,
        "migration-rollback-succeeded",
        "Healthy",
        &["completed successfully"],
    );
    expect(
        kind,
        "migration-refused-plan-cut-over",
        "Degraded",
        &["(PlanCutOver)", "was cut over by MigMigration", "rollback"],
    );
    expect(
        kind,
        "migration-failed-mover-image",
        "Degraded",
        &[
            "failed (CreateMoverPods)",
            "ErrImagePull",
            "registry.invalid/ferry:missing",
        ],
    );
    expect(kind, "migration-canceled", "Suspended", &["Canceled at "]);
    // Canceled after QuiesceSource started: the source app may be down until a rollback.
    expect(
        kind,
        "migration-canceled-after-quiesce",
        "Degraded",
        &["Canceled at FinalSync.", "run a rollback"],
    );
    // A Warn condition rides on a Healthy result (and a cutover that stopped nothing has no downtime).
    let (status, message) = health(kind, "migration-cutover-succeeded-source-not-quiesced");
    assert_eq!(status, "Healthy", "{message}");
    assert!(message.contains("Warning: quiescePods is false"), "{message}");
    assert!(!message.contains("Downtime"), "{message}");
    expect(
        kind,
        "migration-held-plan-not-ready",
        "Progressing",
        &["Waiting: ", "is not ready"],
    );
}

#[test]
fn plans() {
    let kind = "MigPlan";
    expect(
        kind,
        "plan-ready",
        "Healthy",
        &["The migration plan is ready: 1 volume to migrate."],
    );
    expect(
        kind,
        "plan-cut-over",
        "Healthy",
        &[
            "ready: 1 volume",
            "Cut over by ferry-demo/cutover at ",
            "until a rollback",
        ],
    );
    expect(
        kind,
        "plan-not-ready",
        "Degraded",
        &[
            "Namespaces not found on the source cluster: nowhere.",
            "\"missing\", which does not exist",
        ],
    );
}
