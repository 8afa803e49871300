//! auth-gate's configuration loading: the `pluginConfig` bytes as istiod sends them, parsed and
//! compiled. Input: the configuration.
//!
//! Invariant: every configuration is either accepted or refused with the field and the reason
//! (the one log line a user gets), never a panic.
#![no_main]

use auth_gate::compiled::compile;
use auth_gate::config::Config;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    model_gateway_fuzz::check_config_loading::<Config, _>(data, compile);
});
