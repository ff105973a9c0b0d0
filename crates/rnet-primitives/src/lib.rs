//! placeholder crate root, replaced by its implementation
