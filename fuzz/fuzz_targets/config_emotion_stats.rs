//! emotion-stats's configuration loading: the `pluginConfig` bytes as istiod sends them, parsed and
//! compiled. Input: the configuration.
//!
//! Invariant: every configuration is either accepted or refused with the field and the reason
//! (the one log line a user gets), never a panic.
#![no_main]

use emotion_stats::compiled::compile;
use emotion_stats::config::Config;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    model_gateway_fuzz::check_config_loading::<Config, _>(data, compile);
});
