//! C ABI for rings.
