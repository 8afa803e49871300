//! `config.schema.json` of each plugin is generated from its configuration types; a unit test in
//! each plugin calls [`check_schema_file`] so the committed file can never drift from the code.
//! Native only: schemars never reaches the wasm modules.

use schemars::JsonSchema;
use std::path::Path;

/// Renders the JSON Schema of `T` as the committed file should hold it.
pub fn render<T: JsonSchema>() -> String {
    let schema = schemars::schema_for!(T);
    let mut text = serde_json::to_string_pretty(&schema).unwrap_or_default();
    text.push('\n');
    text
}

/// Compares the schema of `T` with the file at `path`. With `UPDATE_SCHEMAS=1` in the
/// environment the file is rewritten instead (that is how a change to the types is accepted).
pub fn check_schema_file<T: JsonSchema>(path: &Path) -> Result<(), String> {
    let expected = render::<T>();
    if std::env::var_os("UPDATE_SCHEMAS").is_some() {
        return std::fs::write(path, &expected).map_err(|e| format!("{}: {e}", path.display()));
    }
    let actual = std::fs::read_to_string(path).unwrap_or_default();
    if actual == expected {
        Ok(())
    } else {
        Err(format!(
            "{} is not current: run `UPDATE_SCHEMAS=1 cargo test` and commit the result",
            path.display()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(all(target_arch = "wasm32", target_os = "unknown"))]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    #[derive(JsonSchema)]
    #[allow(dead_code)]
    struct Sample {
        paths: Vec<String>,
    }

    #[test]
    fn stale_file_is_reported_and_current_file_passes() {
        let dir = std::env::temp_dir().join(format!("schema-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("config.schema.json");
        std::fs::write(&file, "{}").unwrap();
        let err = check_schema_file::<Sample>(&file).unwrap_err();
        assert!(err.contains("not current"), "{err}");
        std::fs::write(&file, render::<Sample>()).unwrap();
        check_schema_file::<Sample>(&file).unwrap();
        assert!(render::<Sample>().contains("\"paths\""));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
