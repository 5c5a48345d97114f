//! A YAML syntax tree that remembers where every node sits in the source text (byte ranges), built
//! from the event stream of serde-saphyr's parser (`granit_parser`). The editor needs positions to
//! change a value without re-serialising the file; the manifest model needs the same tree as JSON.

use std::collections::HashMap;
use std::ops::Range;

use serde_saphyr::granit_parser::{Event, Parser, ScalarStyle, Span, StructureStyle};

/// One YAML node with its byte range in the file.
#[derive(Debug, Clone)]
pub(crate) struct Node {
    /// Byte range of the node's content (for scalars, including quotes; excluding anchors and tags).
    pub(crate) range: Range<usize>,
    /// 0-based column (in characters) where the node starts.
    pub(crate) column: usize,
    /// What the node is.
    pub(crate) kind: NodeKind,
}

/// The shape of a node.
#[derive(Debug, Clone)]
pub(crate) enum NodeKind {
    /// A scalar as written: its decoded text and the notation used.
    Scalar {
        value: String,
        style: ScalarStyle,
        tagged: Option<String>,
    },
    /// A mapping; keys and values in source order. `end` is where a flow mapping's `}` starts.
    Mapping {
        entries: Vec<(Node, Node)>,
        flow: bool,
        end: usize,
    },
    /// A sequence in source order.
    Sequence { items: Vec<Node> },
    /// `*name`: a reference to an anchored node, resolved to a copy of it.
    Alias(Box<Node>),
}

/// One document of a (possibly multi-document) YAML file.
#[derive(Debug, Clone)]
pub(crate) struct Document {
    /// The document's root node; `None` for an empty document (e.g. only comments).
    pub(crate) root: Option<Node>,
}

/// A parse failure with its position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SyntaxError {
    /// 1-based line.
    pub(crate) line: usize,
    /// 1-based column.
    pub(crate) column: usize,
    /// What the parser said.
    pub(crate) message: String,
}

/// Parses every document of `text`, keeping source positions.
pub(crate) fn parse(text: &str) -> Result<Vec<Document>, SyntaxError> {
    let mut builder = Builder {
        text,
        anchors: HashMap::new(),
        stack: Vec::new(),
        docs: Vec::new(),
    };
    for item in Parser::new_from_str(text) {
        let (event, span) = item.map_err(|err| SyntaxError {
            line: err.marker().line(),
            column: err.marker().col() + 1,
            message: err.info().to_string(),
        })?;
        builder.event(event, span)?;
    }
    Ok(builder.docs)
}

/// An open collection while its children are being read.
enum Open {
    Mapping {
        start: Span,
        anchor: usize,
        flow: bool,
        entries: Vec<(Node, Node)>,
        key: Option<Node>,
    },
    Sequence {
        start: Span,
        anchor: usize,
        flow: bool,
        items: Vec<Node>,
    },
    Document {
        root: Option<Node>,
    },
}

struct Builder<'t> {
    text: &'t str,
    anchors: HashMap<usize, Node>,
    stack: Vec<Open>,
    docs: Vec<Document>,
}

impl Builder<'_> {
    fn event(&mut self, event: Event<'_>, span: Span) -> Result<(), SyntaxError> {
        match event {
            Event::DocumentStart(..) => self.stack.push(Open::Document { root: None }),
            Event::DocumentEnd => {
                if let Some(Open::Document { root }) = self.stack.pop() {
                    self.docs.push(Document { root });
                }
                self.anchors.clear();
            }
            Event::Scalar(value, style, anchor, tag) => {
                let node = Node {
                    range: self.byte_range(&span)?,
                    column: span.start.col(),
                    kind: NodeKind::Scalar {
                        value: value.into_owned(),
                        style,
                        tagged: tag.map(|tag| tag.suffix().to_string()),
                    },
                };
                self.finish(node, anchor);
            }
            Event::Alias(id) => {
                let target = self.anchors.get(&id).cloned().ok_or_else(|| SyntaxError {
                    line: span.start.line(),
                    column: span.start.col() + 1,
                    message: "alias to an unknown anchor".to_string(),
                })?;
                let node = Node {
                    range: self.byte_range(&span)?,
                    column: span.start.col(),
                    kind: NodeKind::Alias(Box::new(target)),
                };
                self.finish(node, 0);
            }
            Event::MappingStart(style, anchor, _) => self.stack.push(Open::Mapping {
                start: span,
                anchor,
                flow: style == StructureStyle::Flow,
                entries: Vec::new(),
                key: None,
            }),
            Event::SequenceStart(style, anchor, _) => self.stack.push(Open::Sequence {
                start: span,
                anchor,
                flow: style == StructureStyle::Flow,
                items: Vec::new(),
            }),
            Event::MappingEnd | Event::SequenceEnd => {
                let end = self.byte_range(&span)?.start;
                let (node, anchor) = match self.stack.pop() {
                    Some(Open::Mapping {
                        start,
                        anchor,
                        flow,
                        entries,
                        ..
                    }) => {
                        let last = entries.last().map_or(end, |(_, value)| value.range.end);
                        let node = Node {
                            range: self.byte_range(&start)?.start..if flow { end + 1 } else { last },
                            column: start.start.col(),
                            kind: NodeKind::Mapping { entries, flow, end },
                        };
                        (node, anchor)
                    }
                    Some(Open::Sequence {
                        start,
                        anchor,
                        flow,
                        items,
                    }) => {
                        let last = items.last().map_or(end, |item| item.range.end);
                        let node = Node {
                            range: self.byte_range(&start)?.start..if flow { end + 1 } else { last },
                            column: start.start.col(),
                            kind: NodeKind::Sequence { items },
                        };
                        (node, anchor)
                    }
                    _ => return Err(self.error(&span, "unbalanced collection end")),
                };
                self.finish(node, anchor);
            }
            _ => {}
        }
        Ok(())
    }

    /// Attaches a completed node to its parent and remembers it if it is anchored.
    fn finish(&mut self, node: Node, anchor: usize) {
        if anchor != 0 {
            self.anchors.insert(anchor, node.clone());
        }
        match self.stack.last_mut() {
            Some(Open::Mapping { entries, key, .. }) => match key.take() {
                None => *key = Some(node),
                Some(k) => entries.push((k, node)),
            },
            Some(Open::Sequence { items, .. }) => items.push(node),
            Some(Open::Document { root }) => *root = Some(node),
            None => {}
        }
    }

    fn byte_range(&self, span: &Span) -> Result<Range<usize>, SyntaxError> {
        span.byte_range()
            .filter(|range| self.text.get(range.clone()).is_some())
            .ok_or_else(|| self.error(span, "parser reported no byte offsets"))
    }

    fn error(&self, span: &Span, message: &str) -> SyntaxError {
        SyntaxError {
            line: span.start.line(),
            column: span.start.col() + 1,
            message: message.to_string(),
        }
    }
}

impl Node {
    /// Follows aliases to the node that carries the content.
    pub(crate) fn resolved(&self) -> &Node {
        match &self.kind {
            NodeKind::Alias(target) => target.resolved(),
            _ => self,
        }
    }

    /// The scalar text if this node is a scalar.
    pub(crate) fn as_str(&self) -> Option<&str> {
        match &self.resolved().kind {
            NodeKind::Scalar { value, .. } => Some(value),
            _ => None,
        }
    }

    /// Looks a key up in a mapping node (exact string match on the key's scalar text).
    pub(crate) fn get(&self, key: &str) -> Option<&Node> {
        match &self.resolved().kind {
            NodeKind::Mapping { entries, .. } => entries
                .iter()
                .find(|(k, _)| k.as_str() == Some(key))
                .map(|(_, value)| value),
            _ => None,
        }
    }

    /// The node's value as JSON, resolving scalars with the YAML 1.2 core schema (what Kubernetes uses)
    /// and applying `<<` merge keys.
    pub(crate) fn to_json(&self) -> serde_json::Value {
        use serde_json::Value;
        match &self.kind {
            NodeKind::Alias(target) => target.to_json(),
            NodeKind::Scalar { value, style, tagged } => scalar_to_json(value, *style, tagged.as_deref()),
            NodeKind::Sequence { items, .. } => Value::Array(items.iter().map(Node::to_json).collect()),
            NodeKind::Mapping { entries, .. } => {
                let mut map = serde_json::Map::new();
                for (key, value) in entries {
                    if key.as_str() == Some("<<") && matches!(key.resolved().kind, NodeKind::Scalar { .. }) {
                        merge_into(&mut map, value.to_json());
                        continue;
                    }
                    let key = match key.to_json() {
                        Value::String(text) => text,
                        other => other.to_string(),
                    };
                    map.insert(key, value.to_json());
                }
                Value::Object(map)
            }
        }
    }
}

/// `<<: *base` or `<<: [*a, *b]`: keys already present win, earlier merge sources win over later ones.
fn merge_into(map: &mut serde_json::Map<String, serde_json::Value>, source: serde_json::Value) {
    let sources = match source {
        serde_json::Value::Array(items) => items,
        other => vec![other],
    };
    let mut merged = serde_json::Map::new();
    for source in sources {
        if let serde_json::Value::Object(fields) = source {
            for (key, value) in fields {
                merged.entry(key).or_insert(value);
            }
        }
    }
    for (key, value) in merged {
        map.entry(key).or_insert(value);
    }
}

/// Resolves a scalar per the YAML 1.2 core schema; quoted and block scalars are always strings.
pub(crate) fn scalar_to_json(value: &str, style: ScalarStyle, tag: Option<&str>) -> serde_json::Value {
    use serde_json::Value;
    if style != ScalarStyle::Plain || tag == Some("str") {
        return Value::String(value.to_string());
    }
    match value {
        "" | "~" | "null" | "Null" | "NULL" => return Value::Null,
        "true" | "True" | "TRUE" => return Value::Bool(true),
        "false" | "False" | "FALSE" => return Value::Bool(false),
        _ => {}
    }
    if let Some(number) = parse_int(value) {
        return Value::from(number);
    }
    let is_float_syntax = value.chars().all(|c| c.is_ascii_digit() || "+-.eE".contains(c))
        && value.chars().any(|c| c.is_ascii_digit());
    if is_float_syntax && let Ok(number) = value.parse::<f64>() {
        return serde_json::Number::from_f64(number).map_or(Value::Null, Value::Number);
    }
    Value::String(value.to_string())
}

fn parse_int(value: &str) -> Option<i64> {
    if let Some(hex) = value.strip_prefix("0x") {
        return i64::from_str_radix(hex, 16).ok();
    }
    if let Some(octal) = value.strip_prefix("0o") {
        return i64::from_str_radix(octal, 8).ok();
    }
    let digits = value.strip_prefix(['-', '+']).unwrap_or(value);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    value.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scalar_spans_cover_the_written_value_including_quotes() {
        let text = "a: 1\nb: \"two\" # c\nc: {d: 3, e: [4, 5]}\n";
        let docs = parse(text).unwrap();
        let root = docs[0].root.as_ref().unwrap();
        assert_eq!(&text[root.get("a").unwrap().range.clone()], "1");
        assert_eq!(&text[root.get("b").unwrap().range.clone()], "\"two\"");
        let flow = root.get("c").unwrap();
        assert_eq!(&text[flow.range.clone()], "{d: 3, e: [4, 5]}");
        assert_eq!(&text[flow.get("d").unwrap().range.clone()], "3");
        assert_eq!(
            root.to_json(),
            serde_json::json!({"a": 1, "b": "two", "c": {"d": 3, "e": [4, 5]}})
        );
    }

    #[test]
    fn multi_document_files_and_empty_documents() {
        let text = "# lead\na: 1\n---\n# only a comment\n---\nb: [x]\n";
        let docs = parse(text).unwrap();
        let values: Vec<_> = docs.iter().map(|d| d.root.as_ref().map(Node::to_json)).collect();
        // `---` followed only by a comment is a document whose content is null.
        assert_eq!(values.len(), 3, "{values:?}");
        assert_eq!(values[1], Some(serde_json::Value::Null));
    }

    #[test]
    fn anchors_aliases_and_merge_keys_resolve() {
        let text = "base: &b {x: 1, y: 2}\nuse:\n  <<: *b\n  y: 3\nr: &r 4\ns: *r\n";
        let root = parse(text).unwrap().remove(0).root.unwrap();
        let json = root.to_json();
        assert_eq!(json["use"], serde_json::json!({"x": 1, "y": 3}));
        assert_eq!(json["s"], serde_json::json!(4));
    }

    #[test]
    fn core_schema_scalars() {
        let plain = ScalarStyle::Plain;
        assert_eq!(scalar_to_json("3", plain, None), serde_json::json!(3));
        assert_eq!(
            scalar_to_json("3", ScalarStyle::DoubleQuoted, None),
            serde_json::json!("3")
        );
        assert_eq!(scalar_to_json("yes", plain, None), serde_json::json!("yes"));
        assert_eq!(scalar_to_json("~", plain, None), serde_json::Value::Null);
        assert_eq!(scalar_to_json("1.5", plain, None), serde_json::json!(1.5));
        assert_eq!(scalar_to_json("0x1F", plain, None), serde_json::json!(31));
    }

    #[test]
    fn syntax_errors_carry_the_line() {
        let err = parse("a: 1\nb: [1, 2\nc: 3\n").unwrap_err();
        assert!(err.line >= 2, "{err:?}");
    }
}
