//! Every relative link of the documentation leads somewhere: the file or folder exists, and a
//! `#anchor` is a heading of the target, as GitHub makes anchors of headings.
#![allow(clippy::unwrap_used, clippy::panic)]

use std::path::{Path, PathBuf};

/// `README.md`, `docs/*.md` and the plugins' READMEs.
fn documents() -> Vec<PathBuf> {
    let root = harness_runner::repo_root();
    let mut files = vec![root.join("README.md")];
    for dir in ["docs", "plugins"] {
        for entry in std::fs::read_dir(root.join(dir)).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "md") {
                files.push(path);
            } else if path.join("README.md").is_file() {
                files.push(path.join("README.md"));
            }
        }
    }
    files.sort();
    files
}

/// The lines of a Markdown text outside fenced code blocks.
fn prose(text: &str) -> impl Iterator<Item = &str> {
    let mut fenced = false;
    text.lines().filter(move |line| {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            return false;
        }
        !fenced
    })
}

/// The link targets of a line (`[text](target)`, `![alt](target)`), outside `code spans`.
fn targets(line: &str) -> Vec<&str> {
    let mut found = Vec::new();
    for (i, piece) in line.split('`').enumerate() {
        if i % 2 == 1 {
            continue;
        }
        let mut rest = piece;
        while let Some(at) = rest.find("](") {
            rest = &rest[at + 2..];
            let Some(end) = rest.find(')') else { break };
            found.push(&rest[..end]);
            rest = &rest[end..];
        }
    }
    found
}

/// GitHub's anchor of a heading: lowercase, punctuation dropped, spaces as `-`.
fn anchor(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
            _ => None,
        })
        .collect()
}

/// The anchors of a Markdown file's headings, repeated ones numbered as GitHub numbers them.
fn anchors(file: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(file).unwrap();
    let (mut anchors, mut bases) = (Vec::new(), Vec::new());
    for line in prose(&text) {
        // `# Title` to `###### Title`; `#hashtag` is no heading.
        let heading = line.trim_start_matches('#');
        if heading.len() == line.len() || !heading.starts_with(' ') {
            continue;
        }
        let base = anchor(heading);
        let seen = bases.iter().filter(|b| **b == base).count();
        anchors.push(if seen == 0 {
            base.clone()
        } else {
            format!("{base}-{seen}")
        });
        bases.push(base);
    }
    anchors
}

/// What is wrong with `target` as a link of `from`, if anything.
fn broken(from: &Path, target: &str) -> Option<String> {
    if target.contains("://") || target.starts_with("mailto:") {
        return None;
    }
    let (path, fragment) = target.split_once('#').unwrap_or((target, ""));
    let file = if path.is_empty() {
        from.to_path_buf()
    } else {
        from.parent().unwrap().join(path)
    };
    if !file.exists() {
        return Some(format!("{} does not exist", file.display()));
    }
    if !fragment.is_empty() && !anchors(&file).iter().any(|a| a == fragment) {
        return Some(format!(
            "no heading of {} has the anchor #{fragment}",
            file.display()
        ));
    }
    None
}

#[test]
fn every_relative_link_resolves() {
    let mut checked = 0;
    let mut problems = Vec::new();
    for document in documents() {
        let text = std::fs::read_to_string(&document).unwrap();
        for (target, line) in
            prose(&text).flat_map(|line| targets(line).into_iter().map(move |t| (t, line)))
        {
            checked += 1;
            if let Some(problem) = broken(&document, target) {
                problems.push(format!(
                    "{}: ({target}): {problem}\n    {line}",
                    document.display()
                ));
            }
        }
    }
    assert!(
        problems.is_empty(),
        "broken links:\n{}",
        problems.join("\n")
    );
    assert!(checked > 20, "only {checked} links found");
}

#[test]
fn a_broken_link_or_anchor_is_found() {
    let readme = harness_runner::repo_root().join("README.md");
    assert_eq!(
        broken(&readme, "docs/rehearse.md#compare-with-istio-harness-diff"),
        None
    );
    assert_eq!(broken(&readme, "#prerequisites"), None);
    assert_eq!(broken(&readme, "wasmplugin-manifests/gateway/"), None);
    assert_eq!(broken(&readme, "https://istio.io/x#y"), None);
    assert!(broken(&readme, "docs/nowhere.md").is_some());
    assert!(broken(&readme, "docs/rehearse.md#no-such-heading").is_some());
    assert_eq!(
        targets("see [a](x.md) and `[b](y.md)` and ![c](z.png)"),
        ["x.md", "z.png"]
    );
    assert_eq!(
        anchor(" Compare with Istio: `harness diff`"),
        "compare-with-istio-harness-diff"
    );
}
