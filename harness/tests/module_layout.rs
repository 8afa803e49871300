//! The harness crates keep the layout the plugins keep: no module reaches itself through the
//! modules it uses, so each can be read and tested on its own.

use std::path::Path;

#[test]
fn no_harness_crate_has_modules_that_use_each_other() {
    let harness = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut checked = 0;
    for entry in std::fs::read_dir(harness).unwrap() {
        let src = entry.unwrap().path().join("src");
        if src.is_dir() {
            plugin_kit::layout::check_module_imports(&src)
                .unwrap_or_else(|err| panic!("{}: {err}", src.display()));
            checked += 1;
        }
    }
    plugin_kit::layout::check_module_imports(&harness.join("src")).unwrap();
    // runner, oci, model-server, demo, diff, chaos, bench.
    assert!(checked >= 7, "only {checked} harness crates found");
}
