//! The `pluginConfig` this plugin accepts.

use plugin_common::config::ConfigError;
use serde::Deserialize;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Config {}

/// The configuration once validated, ready for the request path.
#[derive(Debug)]
pub struct Compiled {}

pub fn compile(_config: Config) -> Result<Compiled, ConfigError> {
    Ok(Compiled {})
}
