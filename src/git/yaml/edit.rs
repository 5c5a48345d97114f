//! Applies RFC 6902 JSON patches to YAML text without re-serialising it: each operation becomes a
//! replacement of the exact bytes of one scalar, an inserted line (or `, key: value` in flow style),
//! or a removed entry. Everything else in the file (comments, key order, quoting, indentation, CRLF,
//! other documents) stays byte for byte. After editing, the file is parsed again and the result must
//! equal the patch applied to the data, so an edit that would mean something else (for example a
//! value shared through an anchor) is refused instead of written.

use json_patch::PatchOperation;
use serde_json::Value;
use serde_saphyr::granit_parser::ScalarStyle;

use super::tree::{self, Node, NodeKind};
use crate::{Error, Result};

/// Applies `ops` to document `doc_index` (0-based, as counted by [`tree::parse`]) of `text`.
pub(crate) fn apply(text: &str, doc_index: usize, ops: &[PatchOperation]) -> Result<String> {
    let before = documents_as_json(text)?;
    let mut expected = before.clone();
    let target = expected
        .get_mut(doc_index)
        .and_then(Option::as_mut)
        .ok_or_else(|| edit_error(format!("document {doc_index} does not exist or is empty")))?;
    json_patch::patch(target, ops).map_err(|err| edit_error(format!("patch does not apply: {err}")))?;

    let mut edited = text.to_string();
    for op in ops {
        edited = apply_one(&edited, doc_index, op)?;
    }
    if documents_as_json(&edited)? != expected {
        return Err(edit_error(
            "the edit cannot be made in place (the value is shared through an anchor or merge key)".into(),
        ));
    }
    Ok(edited)
}

fn documents_as_json(text: &str) -> Result<Vec<Option<Value>>> {
    let docs = tree::parse(text).map_err(|err| edit_error(format!("line {}: {}", err.line, err.message)))?;
    Ok(docs
        .iter()
        .map(|doc| doc.root.as_ref().map(Node::to_json))
        .collect())
}

fn edit_error(message: String) -> Error {
    Error::ManifestEdit(message)
}

/// One operation on freshly parsed text (positions are recomputed after every operation).
fn apply_one(text: &str, doc_index: usize, op: &PatchOperation) -> Result<String> {
    let docs = tree::parse(text).map_err(|err| edit_error(err.message))?;
    let root = docs
        .get(doc_index)
        .and_then(|doc| doc.root.as_ref())
        .ok_or_else(|| edit_error(format!("document {doc_index} is empty")))?;
    let (path, value) = match op {
        PatchOperation::Replace(op) => (&op.path, Some(&op.value)),
        PatchOperation::Add(op) => (&op.path, Some(&op.value)),
        PatchOperation::Remove(op) => (&op.path, None),
        PatchOperation::Test(_) => return Ok(text.to_string()),
        other => return Err(edit_error(format!("unsupported patch operation {other:?}"))),
    };
    let tokens: Vec<String> = path.tokens().map(|token| token.decoded().into_owned()).collect();
    let (last, parents) = tokens
        .split_last()
        .ok_or_else(|| edit_error("cannot replace a whole document".into()))?;
    let mut parent = root;
    for token in parents {
        parent = child(parent, token).ok_or_else(|| edit_error(format!("{path} does not exist")))?;
        if matches!(parent.kind, NodeKind::Alias(_)) {
            return Err(edit_error(format!("{path} passes through an alias")));
        }
    }
    let NodeKind::Mapping { entries, flow, end } = &parent.kind else {
        let node = child(parent, last).ok_or_else(|| edit_error(format!("{path} does not exist")))?;
        return match value {
            Some(value) => replace_scalar(text, node, value),
            None => Err(edit_error(format!(
                "removing sequence items is not supported ({path})"
            ))),
        };
    };
    let existing = entries
        .iter()
        .position(|(key, _)| key.as_str() == Some(last.as_str()));
    match (existing, value) {
        (Some(index), Some(value)) => replace_scalar(text, &entries[index].1, value),
        (Some(index), None) => remove_entry(text, entries, index, *flow),
        (None, Some(value)) => Ok(insert_entry(text, entries, *flow, *end, last, value)),
        (None, None) => Err(edit_error(format!("{path} is not written in the file"))),
    }
}

fn child<'n>(node: &'n Node, token: &str) -> Option<&'n Node> {
    match &node.kind {
        NodeKind::Mapping { .. } => node.get(token),
        NodeKind::Sequence { items, .. } => items.get(token.parse::<usize>().ok()?),
        _ => None,
    }
}

fn replace_scalar(text: &str, node: &Node, value: &Value) -> Result<String> {
    let style = match &node.kind {
        NodeKind::Scalar { style, .. } => *style,
        NodeKind::Alias(_) => ScalarStyle::Plain,
        _ if node.to_json() == *value => return Ok(text.to_string()),
        _ => return Err(edit_error("replacing a collection is not supported".into())),
    };
    if node.to_json() == *value {
        return Ok(text.to_string());
    }
    let rendered = render_scalar(value, style)
        .ok_or_else(|| edit_error("replacing a scalar with a collection is not supported".into()))?;
    Ok(splice(text, node.range.clone(), &rendered))
}

fn splice(text: &str, range: std::ops::Range<usize>, with: &str) -> String {
    let mut out = String::with_capacity(text.len() + with.len());
    out.push_str(&text[..range.start]);
    out.push_str(with);
    out.push_str(&text[range.end..]);
    out
}

/// Adds `key: value` after the last entry of a mapping, at the same indentation (block) or before
/// the closing brace (flow).
fn insert_entry(
    text: &str,
    entries: &[(Node, Node)],
    flow: bool,
    end: usize,
    key: &str,
    value: &Value,
) -> String {
    let key = render_key(key);
    if flow || entries.is_empty() {
        let rendered = format!("{key}: {}", render_flow(value));
        return match entries.last() {
            Some((_, last)) => splice(text, last.range.end..last.range.end, &format!(", {rendered}")),
            None => splice(text, end..end, &rendered),
        };
    }
    let indent = " ".repeat(entries[0].0.column);
    let (_, last) = &entries[entries.len() - 1];
    let (at, newline) = line_end(text, last.range.end);
    let rendered = render_block_entry(&key, value, &indent, newline);
    splice(text, at..at, &format!("{newline}{rendered}"))
}

/// The position of the line break ending the line that contains `pos`, and the file's newline style.
fn line_end(text: &str, pos: usize) -> (usize, &'static str) {
    let newline = if text.contains("\r\n") { "\r\n" } else { "\n" };
    let pos = if pos > 0 && text.as_bytes()[pos - 1] == b'\n' {
        pos - 1
    } else {
        pos
    };
    let at = text[pos..].find('\n').map_or(text.len(), |offset| pos + offset);
    if at > 0 && text.as_bytes()[at - 1] == b'\r' {
        (at - 1, "\r\n")
    } else {
        (at, newline)
    }
}

fn remove_entry(text: &str, entries: &[(Node, Node)], index: usize, flow: bool) -> Result<String> {
    let (key, value) = &entries[index];
    if flow {
        let range = if index > 0 {
            entries[index - 1].1.range.end..value.range.end
        } else if let Some((next_key, _)) = entries.get(1) {
            key.range.start..next_key.range.start
        } else {
            key.range.start..value.range.end
        };
        return Ok(splice(text, range, ""));
    }
    if entries.len() == 1 {
        return Err(edit_error(
            "removing the only entry of a block mapping is not supported".into(),
        ));
    }
    let line_start = text[..key.range.start].rfind('\n').map_or(0, |i| i + 1);
    if !text[line_start..key.range.start].chars().all(|c| c == ' ') {
        return Err(edit_error(
            "the entry to remove does not start its own line".into(),
        ));
    }
    let (at, _) = line_end(text, value.range.end);
    let end = if text[at..].starts_with("\r\n") {
        at + 2
    } else {
        (at + 1).min(text.len())
    };
    Ok(splice(text, line_start..end, ""))
}

fn render_block_entry(key: &str, value: &Value, indent: &str, newline: &str) -> String {
    match value {
        Value::Object(fields) if !fields.is_empty() => {
            let inner = format!("{indent}  ");
            let lines: Vec<String> = fields
                .iter()
                .map(|(k, v)| render_block_entry(&render_key(k), v, &inner, newline))
                .collect();
            format!("{indent}{key}:{newline}{}", lines.join(newline))
        }
        other => format!("{indent}{key}: {}", render_flow(other)),
    }
}

fn render_flow(value: &Value) -> String {
    match value {
        Value::Object(fields) => {
            let inner: Vec<String> = fields
                .iter()
                .map(|(k, v)| format!("{}: {}", render_key(k), render_flow(v)))
                .collect();
            format!("{{{}}}", inner.join(", "))
        }
        Value::Array(items) => format!(
            "[{}]",
            items.iter().map(render_flow).collect::<Vec<_>>().join(", ")
        ),
        scalar => render_scalar(scalar, ScalarStyle::Plain).unwrap_or_default(),
    }
}

fn render_key(key: &str) -> String {
    render_scalar(&Value::String(key.to_string()), ScalarStyle::Plain).unwrap_or_default()
}

/// Writes a scalar in the given style when that style can hold it; strings that would read back as
/// something else (numbers, booleans, special characters) are double-quoted.
pub(crate) fn render_scalar(value: &Value, style: ScalarStyle) -> Option<String> {
    Some(match value {
        Value::Null => "null".to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => match style {
            ScalarStyle::SingleQuoted if !s.contains('\n') => format!("'{}'", s.replace('\'', "''")),
            ScalarStyle::Plain if is_plain_safe(s) => s.clone(),
            _ => serde_json::to_string(s).ok()?,
        },
        Value::Array(_) | Value::Object(_) => return None,
    })
}

fn is_plain_safe(s: &str) -> bool {
    !s.is_empty()
        && s.chars().all(|c| c.is_ascii_alphanumeric() || "._/-".contains(c))
        && !s.starts_with(['-', '.'])
        && tree::scalar_to_json(s, ScalarStyle::Plain, None) == Value::String(s.to_string())
}

#[cfg(test)]
#[path = "edit_tests.rs"]
mod tests;
