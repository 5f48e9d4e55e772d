//! What a context's memory holds.
pub(super) mod adapter_set;
pub(super) mod checkpoint;
pub(super) mod sequences;
