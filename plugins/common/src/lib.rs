//! Pieces every plugin of this collection needs, free of proxy-wasm so they are unit-tested
//! natively and on `wasm32-wasip1`.

pub mod config;
pub mod deny;
pub mod host;
pub mod istio;
#[cfg(not(target_arch = "wasm32"))]
pub mod layout;
pub mod metrics;
#[cfg(not(target_arch = "wasm32"))]
pub mod schema;
pub mod shared;
mod tree;
