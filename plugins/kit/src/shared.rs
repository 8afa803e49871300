//! The host's shared data (one key-value store that every worker of a VM id sees, each value with
//! a version for compare-and-swap), as the plugins' logic sees it: the glue passes
//! [`crate::host::HostSharedData`], tests a fake.

/// `get_shared_data` / `set_shared_data`.
pub trait SharedData {
    /// The value and its version, `None` when the key does not exist.
    fn get(&self, key: &str) -> Result<Option<(Vec<u8>, u32)>, StoreError>;
    /// Writes `value`; with `cas` (not 0), only if the key still has that version.
    fn set(&self, key: &str, value: &[u8], cas: Option<u32>) -> Result<(), SetError>;
}

/// The host refused a read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SetError {
    /// Another worker wrote the key since it was read.
    CasMismatch,
    /// The host refused the write.
    Failed,
}

/// One store handed to several users (the workers of a test sharing one fake store).
impl<T: SharedData + ?Sized> SharedData for std::rc::Rc<T> {
    fn get(&self, key: &str) -> Result<Option<(Vec<u8>, u32)>, StoreError> {
        (**self).get(key)
    }
    fn set(&self, key: &str, value: &[u8], cas: Option<u32>) -> Result<(), SetError> {
        (**self).set(key, value, cas)
    }
}
