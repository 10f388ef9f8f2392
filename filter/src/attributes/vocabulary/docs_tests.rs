//! docs/attributes.md is the users' copy of this vocabulary: every name the tables here accept
//! is listed there, and every name listed there resolves here.

use super::*;

const DOC: &str = include_str!("../../../../docs/attributes.md");

/// The backticked spans of a Markdown text.
fn code_spans(text: &str) -> Vec<&str> {
    text.split('`').skip(1).step_by(2).collect()
}

/// The Markdown section that starts with heading `title` (up to the next `## `).
fn section(title: &str) -> &'static str {
    let start = DOC
        .find(&format!("## {title}\n"))
        .unwrap_or_else(|| panic!("no `## {title}`"));
    let body = &DOC[start + 3..];
    body.find("\n## ").map_or(body, |end| &body[..end])
}

/// The first cell of every table row in `text`, with the first header cell of its table.
fn first_cells(text: &str) -> Vec<(&str, &str)> {
    let mut header = "";
    let mut out = Vec::new();
    let mut in_table = false;
    for line in text.lines() {
        let Some(cell) = line.strip_prefix('|').and_then(|l| l.split('|').next()) else {
            in_table = false;
            continue;
        };
        if !in_table {
            (header, in_table) = (cell.trim(), true);
        } else if !cell.trim().starts_with("---") {
            out.push((header, cell));
        }
    }
    out
}

/// `request.headers["k"].value` → `[F(request), F(headers), K(k), F(value)]`.
fn segs(name: &str) -> Vec<Seg<'_>> {
    let mut out = Vec::new();
    for part in name.split('.') {
        match part.split_once("[\"") {
            Some((field, key)) => {
                out.push(Seg::Field(field));
                out.push(Seg::Key(key.trim_end_matches("\"]")));
            }
            None => out.push(Seg::Field(part)),
        }
    }
    out
}

fn resolves(name: &str) -> bool {
    Vocabulary::default().resolve(&segs(name)).is_ok()
}

#[test]
fn every_accepted_name_is_documented() {
    let documented = code_spans(DOC);
    let mut missing: Vec<String> = PROPERTIES
        .iter()
        .flat_map(|(names, _, _)| names.iter())
        .chain(DERIVED.iter().flat_map(|(names, _, _)| names.iter()))
        .chain(KEYED.iter().map(|(name, _, _)| name))
        .chain(PASSTHROUGH.iter().map(|(name, _)| name))
        .filter(|name| {
            !documented.iter().any(|d| {
                d == *name
                    || d.starts_with(&format!("{name}."))
                    || d.starts_with(&format!("{name}["))
                    || d.starts_with(&format!("{name}…"))
            })
        })
        .map(|name| name.to_string())
        .collect();
    let workloads = code_spans(section("Workloads"));
    missing.extend(
        NODE_FIELDS
            .iter()
            .flat_map(|(names, _)| names.iter())
            .filter(|f| !workloads.contains(f))
            .map(|f| format!("<side>.{f}")),
    );
    missing.extend(
        SIDES
            .iter()
            .filter(|(prefix, _)| !workloads.contains(&format!("{prefix}.*").as_str()))
            .map(|(prefix, _)| format!("{prefix}.*")),
    );
    assert!(
        missing.is_empty(),
        "accepted but not in docs/attributes.md: {missing:?}"
    );
}

#[test]
fn every_documented_name_resolves() {
    let mut unknown = Vec::new();
    for title in ["Request and response (from Envoy)", "Workloads"] {
        for (header, cell) in first_cells(section(title)) {
            for name in code_spans(cell) {
                // One table lists node fields, which follow a side: `source.<field>`.
                let full = if header.starts_with("field") {
                    format!("source.{name}")
                } else {
                    name.to_string()
                };
                if !resolves(&full) {
                    unknown.push(full);
                }
            }
        }
    }
    let bullets = section("Passed through to Envoy")
        .lines()
        .filter(|l| l.trim_start().starts_with("- "));
    for name in bullets.flat_map(code_spans) {
        if name.contains('.') && !name.contains('…') && !name.contains('{') && !resolves(name) {
            unknown.push(name.to_string());
        }
    }
    assert!(
        unknown.is_empty(),
        "in docs/attributes.md but not accepted: {unknown:?}"
    );
}

#[test]
fn a_misspelled_name_is_caught() {
    assert!(!resolves("request.hots"));
    assert!(resolves("request.headers[\"x-user\"]"));
    assert!(resolves("source.labels[\"app\"].value"));
}
