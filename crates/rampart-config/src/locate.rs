//! Maps a key path such as `routes[2].match.path_regex` to a line and column,
//! using the spans `toml_edit` keeps for every item.

use toml_edit::{ImDocument, Item, Value};

/// One step of a key path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Segment {
    /// A table key.
    Key(String),
    /// An array index.
    Index(usize),
}

/// Renders a path as `a.b[2].c`.
pub fn render(path: &[Segment]) -> String {
    let mut out = String::new();
    for segment in path {
        match segment {
            Segment::Key(key) => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(key);
            }
            Segment::Index(i) => {
                out.push('[');
                out.push_str(&i.to_string());
                out.push(']');
            }
        }
    }
    out
}

/// Byte offset → 1-based (line, column).
pub fn line_column(source: &str, offset: usize) -> (usize, usize) {
    let before = &source[..offset.min(source.len())];
    let line = before.matches('\n').count() + 1;
    let column = before
        .rfind('\n')
        .map_or(before.len(), |nl| before.len() - nl - 1)
        + 1;
    (line, column)
}

/// The deepest position along `path` that the document knows.
pub fn locate(doc: &ImDocument<&str>, source: &str, path: &[Segment]) -> Option<(usize, usize)> {
    let mut best = None;
    let mut current: Option<Node<'_>> = Some(Node::Item(doc.as_item()));
    for segment in path {
        let Some(node) = current.take() else { break };
        let next = match (node, segment) {
            (Node::Item(item), Segment::Key(key)) => match item {
                Item::Table(t) => {
                    if let Some((k, _)) = t.get_key_value(key) {
                        if let Some(span) = k.span() {
                            best = Some(span);
                        }
                    }
                    t.get(key).map(Node::Item)
                }
                Item::Value(Value::InlineTable(t)) => {
                    if let Some((k, _)) = t.get_key_value(key) {
                        if let Some(span) = k.span() {
                            best = Some(span);
                        }
                    }
                    t.get(key).map(Node::Value)
                }
                _ => None,
            },
            (Node::Value(Value::InlineTable(t)), Segment::Key(key)) => {
                if let Some((k, _)) = t.get_key_value(key) {
                    if let Some(span) = k.span() {
                        best = Some(span);
                    }
                }
                t.get(key).map(Node::Value)
            }
            (Node::Item(Item::ArrayOfTables(a)), Segment::Index(i)) => a.get(*i).map(|t| {
                if let Some(span) = t.span() {
                    best = Some(span);
                }
                Node::Table(t)
            }),
            (Node::Item(Item::Value(Value::Array(a))), Segment::Index(i))
            | (Node::Value(Value::Array(a)), Segment::Index(i)) => a.get(*i).map(|v| {
                if let Some(span) = v.span() {
                    best = Some(span);
                }
                Node::Value(v)
            }),
            (Node::Table(t), Segment::Key(key)) => {
                if let Some((k, _)) = t.get_key_value(key) {
                    if let Some(span) = k.span() {
                        best = Some(span);
                    }
                }
                t.get(key).map(Node::Item)
            }
            _ => None,
        };
        current = next;
    }
    best.map(|span| line_column(source, span.start))
}

#[derive(Clone, Copy)]
enum Node<'a> {
    Item(&'a Item),
    Value(&'a Value),
    Table(&'a toml_edit::Table),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_keys_in_tables_arrays_and_inline_tables() {
        let src = "a = 1\n[[routes]]\nupstream = \"x\"\n[[routes]]\nmatch = { path = \"/\" }\nupstream = \"y\"\n";
        let doc = ImDocument::parse(src).expect("valid");
        let at = |p: &[Segment]| locate(&doc, src, p);
        assert_eq!(at(&[Segment::Key("a".into())]), Some((1, 1)));
        assert_eq!(
            at(&[
                Segment::Key("routes".into()),
                Segment::Index(1),
                Segment::Key("upstream".into())
            ]),
            Some((6, 1))
        );
        assert_eq!(
            at(&[
                Segment::Key("routes".into()),
                Segment::Index(1),
                Segment::Key("match".into()),
                Segment::Key("path".into())
            ]),
            Some((5, 11))
        );
        // A missing key falls back to the deepest known ancestor.
        assert_eq!(
            at(&[
                Segment::Key("routes".into()),
                Segment::Index(0),
                Segment::Key("nope".into())
            ]),
            Some((2, 1))
        );
        assert_eq!(
            render(&[
                Segment::Key("routes".into()),
                Segment::Index(0),
                Segment::Key("x".into())
            ]),
            "routes[0].x"
        );
    }
}
