//! Semantic validation (to be written).
