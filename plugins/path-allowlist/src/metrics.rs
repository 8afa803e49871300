//! The plugin's counters, one per outcome of a request.

/// The counters of the plugin, one per outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Allowed,
    Denied,
    Malformed,
    DryRunDenied,
}

impl Outcome {
    pub const ALL: [Outcome; 4] = [
        Outcome::Allowed,
        Outcome::Denied,
        Outcome::Malformed,
        Outcome::DryRunDenied,
    ];

    /// The counter name (Envoy prints it on `/stats/prometheus` as is).
    pub fn metric_name(self) -> &'static str {
        match self {
            Self::Allowed => "path_allowlist_allowed_total",
            Self::Denied => "path_allowlist_denied_total",
            Self::Malformed => "path_allowlist_malformed_total",
            Self::DryRunDenied => "path_allowlist_dry_run_denied_total",
        }
    }
}

plugin_kit::enum_counter_set!(Outcome {
    fn metric(self) -> &'static str {
        self.metric_name()
    }
});

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(all(target_arch = "wasm32", target_os = "unknown"))]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    #[test]
    fn counters_are_indexed_by_position() {
        plugin_kit::metrics::check_counter_set::<Outcome>().unwrap();
    }
}
