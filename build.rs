//! Generates the C header from the `ffi` module with cbindgen.
//!
//! The header always goes to `$OUT_DIR/daqflow.h`; the committed `include/daqflow.h`
//! is rewritten only when `DAQFLOW_WRITE_HEADER=1` (what `make header` does), so a test
//! can compare the two and fail when someone changed the ABI without refreshing the
//! committed header.

use std::env;
use std::path::PathBuf;

fn main() {
    let crate_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let out_dir = PathBuf::from(env::var("OUT_DIR").expect("cargo sets OUT_DIR"));

    println!("cargo:rerun-if-changed=src/ffi");
    println!("cargo:rerun-if-changed=cbindgen.toml");
    println!("cargo:rerun-if-env-changed=DAQFLOW_WRITE_HEADER");
    // The SONAME the Makefile installs under; the version suffix is the major version.
    let major = env::var("CARGO_PKG_VERSION_MAJOR").expect("cargo sets the version");
    println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libdaqflow.so.{major}");
    // Never unloaded: the SIGBUS handler installed at the first ring mapping (see
    // src/ring/truncation.rs) stays the process's after a dlclose, and must not point
    // into unmapped code.
    println!("cargo:rustc-cdylib-link-arg=-Wl,-z,nodelete");
    // The tests run the workspace's programs (daqportmgr, ringmaster, ringbuffer, ...),
    // which other packages build; CARGO_BIN_EXE_* names only this package's. They all
    // land in the profile's directory, three levels above OUT_DIR.
    let programs = out_dir.ancestors().nth(3).expect("OUT_DIR is <profile>/build/<pkg>/out");
    println!("cargo:rustc-env=DAQFLOW_PROGRAMS={}", programs.display());

    let config = cbindgen::Config::from_file(crate_dir.join("cbindgen.toml")).expect("cbindgen.toml is valid");
    let bindings = cbindgen::Builder::new()
        .with_config(config)
        // cbindgen follows the `mod` declarations from here to ring.rs and portmgr.rs.
        .with_src(crate_dir.join("src/ffi/mod.rs"))
        .generate()
        .expect("cbindgen could not parse src/ffi");
    bindings.write_to_file(out_dir.join("daqflow.h"));
    if env::var("DAQFLOW_WRITE_HEADER").as_deref() == Ok("1") {
        bindings.write_to_file(crate_dir.join("include/daqflow.h"));
    }
}
