//! Finds the line of a field path (`steps[2].devices`, `expect.versions.P/D`) in scenario text,
//! so that a validation error can name it.

use toml::de::{DeTable, DeValue};

/// The 1-based line where `field` (or its deepest existing parent) is written.
pub(crate) fn line_of(text: &str, field: &str) -> Option<usize> {
    let root = DeTable::parse(text).ok()?;
    let mut value = DeValue::Table(root.into_inner());
    let mut found: Option<usize> = None;
    for segment in split(field) {
        let next = match segment {
            Segment::Key(k) => value.get(k),
            Segment::Index(i) => value.get(i),
        };
        let Some(next) = next else { break };
        found = Some(next.span().start);
        value = next.get_ref().clone();
    }
    found.map(|at| text[..at.min(text.len())].matches('\n').count() + 1)
}

enum Segment<'a> {
    Key(&'a str),
    Index(usize),
}

fn split(field: &str) -> Vec<Segment<'_>> {
    let mut out = Vec::new();
    for part in field.split('.') {
        let (key, rest) = part.split_once('[').unwrap_or((part, ""));
        if !key.is_empty() {
            out.push(Segment::Key(key));
        }
        for index in rest.split('[') {
            if let Ok(i) = index.trim_end_matches(']').parse() {
                out.push(Segment::Index(i));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nested_fields_are_found_on_their_line() {
        let text = "name = \"x\"\n\n[[steps]]\naction = \"a\"\n\n[[steps]]\naction = \"b\"\ndevices = [\"d\"]\n\n[expect.versions]\n\"P/D\" = \"1\"\n";
        assert_eq!(line_of(text, "name"), Some(1));
        assert_eq!(line_of(text, "steps[1].devices"), Some(8));
        assert_eq!(line_of(text, "steps[1].missing"), Some(6));
        assert_eq!(line_of(text, "expect.versions.P/D"), Some(11));
        assert_eq!(line_of("not toml [", "x"), None);
    }
}
