//! The module layout every plugin keeps, checked by a unit test in each: `config.rs` (the
//! `pluginConfig` as written) uses no other module of its crate, and no module reaches itself
//! through the modules it uses. A module that both uses and is used by another cannot be read,
//! tested or moved into a shared module on its own. Native only: it reads the source files.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Checks the modules in `src` (a plugin's `src/`, one file per module, `lib.rs` left out):
/// `config` uses no module of the crate, and the `crate::` uses form no cycle. Test code
/// (`#[cfg(test)]` items at the top level of a file) and comments are not counted.
pub fn check_module_imports(src: &Path) -> Result<(), String> {
    let uses = module_uses(src)?;
    if let Some(used) = uses.get("config").filter(|used| !used.is_empty()) {
        return Err(format!(
            "config.rs uses {used:?}: it must use no module of the crate"
        ));
    }
    match find_cycle(&uses) {
        Some(cycle) => Err(format!("modules use each other: {}", cycle.join(" -> "))),
        None => Ok(()),
    }
}

/// Each module of `src` and the modules of the crate it uses.
fn module_uses(src: &Path) -> Result<BTreeMap<String, BTreeSet<String>>, String> {
    let entries = std::fs::read_dir(src).map_err(|e| format!("{}: {e}", src.display()))?;
    let mut uses = BTreeMap::new();
    for entry in entries {
        let path = entry.map_err(|e| e.to_string())?.path();
        let Some(module) = path.file_stem().and_then(|s| s.to_str()) else {
            continue;
        };
        if path.extension().is_none_or(|e| e != "rs") || module == "lib" {
            continue;
        }
        let text =
            std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        let mut used = crate_uses(&without_tests(&text));
        used.remove(module);
        uses.insert(module.to_string(), used);
    }
    Ok(uses)
}

/// The lines outside top-level `#[cfg(test)]` items, without their comments.
fn without_tests(text: &str) -> String {
    let mut kept = String::new();
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        if line.starts_with("#[cfg(test)]") || line.starts_with("#[cfg(all(test") {
            // Skips the item: further attributes, then one line or a block closed at column 0.
            for item in lines.by_ref() {
                if item.starts_with("#[") {
                    continue;
                }
                if item.trim_end().ends_with('{') {
                    for inner in lines.by_ref() {
                        if inner == "}" {
                            break;
                        }
                    }
                }
                break;
            }
            continue;
        }
        let code = line.split("//").next().unwrap_or_default();
        kept.push_str(code);
        kept.push('\n');
    }
    kept
}

/// The first segment of every `crate::` (or `super::`) path, `crate::{a::X, b}` included.
fn crate_uses(code: &str) -> BTreeSet<String> {
    let mut used = BTreeSet::new();
    // In a module file of `src/`, `super::` is the crate root too.
    let paths = ["crate::", "super::"]
        .into_iter()
        .flat_map(|root| code.match_indices(root).map(move |(at, _)| at + root.len()));
    for at in paths {
        let rest = &code[at..];
        if let Some(group) = rest.strip_prefix('{') {
            let mut depth = 0usize;
            let mut segment_start = true;
            for (i, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => segment_start = true,
                    c if segment_start && (c.is_alphanumeric() || c == '_') => {
                        used.insert(identifier(&group[i..]));
                        segment_start = false;
                    }
                    _ => {}
                }
            }
        } else {
            used.insert(identifier(rest));
        }
    }
    used.remove("");
    used
}

fn identifier(text: &str) -> String {
    text.chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_')
        .collect()
}

/// A cycle of `uses`, as the modules along it (the first one again at the end).
fn find_cycle(uses: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit<'a>(
        module: &'a str,
        uses: &'a BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<&'a str>,
        done: &mut BTreeSet<&'a str>,
    ) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|m| *m == module) {
            let mut cycle: Vec<String> = path[at..].iter().map(|m| m.to_string()).collect();
            cycle.push(module.to_string());
            return Some(cycle);
        }
        if !done.insert(module) {
            return None;
        }
        path.push(module);
        for used in uses.get(module).into_iter().flatten() {
            if let Some(cycle) = visit(used, uses, path, done) {
                return Some(cycle);
            }
        }
        path.pop();
        None
    }
    let mut done = BTreeSet::new();
    uses.keys()
        .find_map(|module| visit(module, uses, &mut Vec::new(), &mut done))
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(all(target_arch = "wasm32", target_os = "unknown"))]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    #[test]
    fn uses_are_read_from_paths_and_groups_outside_tests_and_comments() {
        let code = without_tests(
            "use crate::a::X;\nuse crate::{b, c::{D, E}};\nfn f() { crate::d::g(); } // crate::z\n\
             use super::e::F;\n\
             #[cfg(test)]\nmod tests {\n    use crate::t;\n}\n#[cfg(test)]\nuse crate::u;\n",
        );
        let used: Vec<String> = crate_uses(&code).into_iter().collect();
        assert_eq!(used, ["a", "b", "c", "d", "e"]);
    }

    #[test]
    fn cycles_are_found_and_named() {
        let uses = |edges: &[(&str, &str)]| {
            let mut map: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
            for (from, to) in edges {
                map.entry(from.to_string())
                    .or_default()
                    .insert(to.to_string());
                map.entry(to.to_string()).or_default();
            }
            map
        };
        assert_eq!(
            find_cycle(&uses(&[("a", "b"), ("b", "c"), ("a", "c")])),
            None
        );
        assert_eq!(
            find_cycle(&uses(&[("a", "b"), ("b", "c"), ("c", "a")])),
            Some(vec!["a".into(), "b".into(), "c".into(), "a".into()])
        );
    }
}
