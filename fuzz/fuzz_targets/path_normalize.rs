//! `:path` normalization (plugin-kit), in each of Istio's three modes.
//!
//! Invariants: a normalized path normalizes to itself (idempotent, `changed` false), and so does
//! the `:path` forwarded upstream (path + untouched query); it starts with `/`, holds no `.` or
//! `..` segment, not even after the upstream decodes it once more, and no `//` unless the mode is
//! `BASE`; `changed` says whether the path part differs from what was received.
#![no_main]

use libfuzzer_sys::fuzz_target;
use model_gateway_fuzz::{has_dot_segment, percent_decode};
use plugin_kit::istio::{normalize_path, PathNormalization};

const MODES: [PathNormalization; 3] = [
    PathNormalization::Base,
    PathNormalization::MergeSlashes,
    PathNormalization::DecodeAndMergeSlashes,
];

fuzz_target!(|data: &[u8]| {
    let Ok(raw) = std::str::from_utf8(data) else {
        return;
    };
    for mode in MODES {
        let Ok(normalized) = normalize_path(raw, mode) else {
            continue;
        };
        let path = &normalized.path;
        let again = normalize_path(path, mode)
            .unwrap_or_else(|e| panic!("{mode:?}: {raw:?} -> {path:?}, which is malformed: {e}"));
        assert_eq!(&again.path, path, "{mode:?}: not idempotent for {raw:?}");
        assert!(!again.changed, "{mode:?}: {path:?} reported as changed");
        let request_path = normalized.request_path();
        let forwarded = normalize_path(&request_path, mode)
            .unwrap_or_else(|e| panic!("{mode:?}: forwarded path of {raw:?} is malformed: {e}"));
        assert_eq!(&forwarded.path, path, "{mode:?}: forwarded path of {raw:?}");
        assert_eq!(forwarded.suffix, normalized.suffix);

        assert!(path.starts_with('/'), "{mode:?}: {raw:?} -> {path:?}");
        assert!(
            !has_dot_segment(path.as_bytes()),
            "{mode:?}: {raw:?} -> {path:?}"
        );
        assert!(
            !has_dot_segment(&percent_decode(path)),
            "{mode:?}: {raw:?} -> {path:?} has a dot segment once decoded again"
        );
        if mode != PathNormalization::Base {
            assert!(!path.contains("//"), "{mode:?}: {raw:?} -> {path:?}");
        }
        let received = raw.strip_suffix(normalized.suffix);
        assert_eq!(
            received.map(|received| received != path),
            Some(normalized.changed),
            "{mode:?}: {raw:?} -> {path:?} + {:?}",
            normalized.suffix
        );
    }
});
