//! The harness's library beyond the runner, the OCI images and the model server: the demo
//! walkthrough, `harness diff` and `harness chaos`, used by the `harness` CLI (whose `bench`
//! module measures the plugins) and its tests.

pub mod chaos;
pub mod demo;
pub mod diff;
