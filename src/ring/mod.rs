//! Shared-memory rings, binary compatible with NSCLDAQ 12.0.
