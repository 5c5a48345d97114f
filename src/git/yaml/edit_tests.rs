//! Tests of the in-place YAML editor on the formatting cases real manifests contain.

use super::*;
use proptest::prelude::*;

fn ops(patch: Value) -> Vec<PatchOperation> {
    serde_json::from_value(patch).unwrap()
}

fn replace(path: &str, value: Value) -> Vec<PatchOperation> {
    ops(serde_json::json!([{"op": "replace", "path": path, "value": value}]))
}

/// Asserts that `after` equals `before` with exactly `from` replaced by `to` once.
fn assert_only_change(before: &str, after: &str, from: &str, to: &str) {
    let at = before.find(from).expect("fragment present");
    let expected = format!("{}{}{}", &before[..at], to, &before[at + from.len()..]);
    pretty_assertions::assert_eq!(after, expected);
}

#[test]
fn replace_keeps_comments_and_trailing_comment() {
    let text = "# app\napiVersion: apps/v1\nkind: Deployment\nspec:\n  # how many\n  replicas: 3 # keep me\n  x: y\n";
    let out = apply(text, 0, &replace("/spec/replicas", 0.into())).unwrap();
    assert_only_change(text, &out, "replicas: 3", "replicas: 0");
}

#[test]
fn flow_style_mapping() {
    let text = "kind: Deployment\nspec: {replicas: 3, selector: {app: a}}\n";
    let out = apply(text, 0, &replace("/spec/replicas", 0.into())).unwrap();
    assert_only_change(text, &out, "replicas: 3", "replicas: 0");
}

#[test]
fn odd_indentation_and_quoted_values() {
    let text = "spec:\n     replicas:    '3'\n     name: \"x\"\n";
    let out = apply(text, 0, &replace("/spec/name", "y".into())).unwrap();
    assert_only_change(text, &out, "\"x\"", "\"y\"");
    let out = apply(text, 0, &replace("/spec/replicas", "0".into())).unwrap();
    assert_only_change(text, &out, "'3'", "'0'");
}

#[test]
fn crlf_line_endings_survive_replace_and_insert() {
    let text = "kind: CronJob\r\nspec:\r\n  schedule: '* * * * *'\r\n  jobTemplate: {}\r\n";
    let add = ops(serde_json::json!([{"op": "add", "path": "/spec/suspend", "value": true}]));
    let out = apply(text, 0, &add).unwrap();
    assert_eq!(
        out,
        "kind: CronJob\r\nspec:\r\n  schedule: '* * * * *'\r\n  jobTemplate: {}\r\n  suspend: true\r\n"
    );
    let remove = ops(serde_json::json!([{"op": "remove", "path": "/spec/suspend"}]));
    assert_eq!(apply(&out, 0, &remove).unwrap(), text);
}

#[test]
fn multi_document_with_comments_between_edits_only_the_target_document() {
    let text = "a: 1\nreplicas: 2\n---\n# between\n\n---\nkind: X\nreplicas: 2 # second\n...\n";
    let out = apply(text, 2, &replace("/replicas", 0.into())).unwrap();
    assert_only_change(text, &out, "replicas: 2 # second", "replicas: 0 # second");
}

#[test]
fn alias_value_is_replaced_but_shared_anchor_is_refused() {
    let text = "defaults: &n 3\nspec:\n  replicas: *n\n";
    let out = apply(text, 0, &replace("/spec/replicas", 0.into())).unwrap();
    assert_only_change(text, &out, "*n", "0");
    let refused = apply(text, 0, &replace("/defaults", 0.into()));
    assert!(matches!(refused, Err(Error::ManifestEdit(_))), "{refused:?}");
}

#[test]
fn merge_key_value_is_overridden_by_an_explicit_key() {
    let text = "base: &b {replicas: 3}\nspec:\n  <<: *b\n  name: x\n";
    let out = apply(text, 0, &replace("/spec/replicas", 0.into())).unwrap();
    assert_eq!(
        out,
        "base: &b {replicas: 3}\nspec:\n  <<: *b\n  name: x\n  replicas: 0\n"
    );
}

#[test]
fn insert_nested_mapping_in_block_and_flow_parents() {
    let text = "spec:\n  template:\n    spec:\n      containers:\n      - name: c # main\n";
    let add = ops(
        serde_json::json!([{"op": "add", "path": "/spec/template/spec/nodeSelector",
        "value": {"migration.ferry.dev/quiesced": "true"}}]),
    );
    let out = apply(text, 0, &add).unwrap();
    assert_eq!(
        out,
        format!("{text}      nodeSelector:\n        migration.ferry.dev/quiesced: \"true\"\n")
    );
    let flow = "spec: {template: {spec: {containers: []}}}\n";
    let out = apply(flow, 0, &add).unwrap();
    assert_eq!(
        out,
        "spec: {template: {spec: {containers: [], nodeSelector: {migration.ferry.dev/quiesced: \"true\"}}}}\n"
    );
}

#[test]
fn remove_entry_in_block_and_flow() {
    let text = "s:\n  a: 1\n  b: 2 # c\n  c: 3\n";
    let remove = ops(serde_json::json!([{"op": "remove", "path": "/s/b"}]));
    assert_eq!(apply(text, 0, &remove).unwrap(), "s:\n  a: 1\n  c: 3\n");
    let flow = "s: {a: 1, b: 2, c: 3}\n";
    assert_eq!(apply(flow, 0, &remove).unwrap(), "s: {a: 1, c: 3}\n");
}

#[test]
fn sequence_items_by_index() {
    let text = "replicas:\n- name: a\n  count: 3\n- {name: b, count: 4}\n";
    let out = apply(text, 0, &replace("/replicas/1/count", 0.into())).unwrap();
    assert_only_change(text, &out, "count: 4", "count: 0");
}

#[test]
fn missing_document_or_path_is_an_error() {
    assert!(apply("a: 1\n", 3, &replace("/a", 0.into())).is_err());
    assert!(apply("a: 1\n", 0, &replace("/b/c", 0.into())).is_err());
}

/// Builds a Deployment manifest with varied formatting around one replicas value.
fn manifest(comment: &str, indent: usize, quote: bool, flow: bool, crlf: bool, replicas: u32) -> String {
    let pad = " ".repeat(indent);
    let value = if quote {
        format!("\"{replicas}\"")
    } else {
        replicas.to_string()
    };
    let body = if flow {
        format!("spec: {{ replicas: {value}, paused: false }} # {comment}\n")
    } else {
        format!("spec:\n{pad}# {comment}\n{pad}replicas: {value}   # {comment}\n{pad}paused: false\n")
    };
    let text =
        format!("# {comment}\n---\napiVersion: apps/v1\nkind: Deployment\n{body}---\n# tail {comment}\n");
    if crlf { text.replace('\n', "\r\n") } else { text }
}

proptest! {
    #[test]
    fn editing_replicas_changes_no_other_byte(
        comment in "[a-zA-Z0-9 :#'\"{}-]{0,20}",
        indent in 1usize..7,
        quote: bool,
        flow: bool,
        crlf: bool,
        before in 0u32..100_000,
        after in 0u32..100_000,
    ) {
        let text = manifest(&comment, indent, quote, flow, crlf, before);
        let value = if quote { Value::String(after.to_string()) } else { Value::from(after) };
        // Comments before the first `---` open no document, so the Deployment is document 0.
        let out = apply(&text, 0, &replace("/spec/replicas", value)).unwrap();
        let old = if quote { format!("\"{before}\"") } else { before.to_string() };
        let new = if quote { format!("\"{after}\"") } else { after.to_string() };
        let at = text.find(&format!("replicas: {old}")).unwrap() + "replicas: ".len();
        let expected = format!("{}{}{}", &text[..at], new, &text[at + old.len()..]);
        prop_assert_eq!(out, expected);
    }
}
