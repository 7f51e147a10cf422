//! placeholder
use super::*;
pub struct ShmBackend;
impl ShmBackend { pub fn open(_c: &crate::config::ShmConfig) -> Result<ShmBackend, Error> { Err(Error::Backend("todo".into())) } }
