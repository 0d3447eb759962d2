//! What daqflow's operator tools share beyond the library.

pub mod glob;
