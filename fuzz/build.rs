//! Compiles the Tcl packages' C stubs (tcl/*.c, the shipped sources) with the harness
//! (c/harness.c, a fake libdaqflow) for the tcl_* targets, instrumented like the Rust
//! code: clang's libFuzzer coverage and, when cargo fuzz builds with ASan (its default),
//! AddressSanitizer. Tcl is found through tclConfig.sh ($TCLCONFIG).

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

/// `VAR` of tclConfig.sh, as the shell sees it after sourcing the file.
fn tcl_config(config: &Path, var: &str) -> String {
    let script = format!(". '{}' && printf %s \"${var}\"", config.display());
    let out = Command::new("sh").args(["-c", &script]).output().expect("sh runs");
    if !out.status.success() {
        panic!("cannot read {var} from {}: install tcl-dev or set TCLCONFIG", config.display());
    }
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn main() {
    let here = PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let top = here.parent().expect("fuzz/ is inside the repository").to_path_buf();
    let config = PathBuf::from(env::var("TCLCONFIG").unwrap_or_else(|_| "/usr/lib/tcl8.6/tclConfig.sh".into()));
    println!("cargo:rerun-if-env-changed=TCLCONFIG");
    println!("cargo:rerun-if-env-changed=FUZZ_CC");
    for dir in ["c", "../tcl", "../include"] {
        println!("cargo:rerun-if-changed={}", here.join(dir).display());
    }

    let mut build = cc::Build::new();
    // libFuzzer's coverage for C needs clang; the Debian package is clang-14 (with
    // libclang-rt-14-dev), which installs no plain `clang`.
    build.compiler(env::var("FUZZ_CC").unwrap_or_else(|_| "clang-14".into()));
    build
        .std("c99")
        .define("_POSIX_C_SOURCE", "200809L")
        .include(top.join("include"))
        .include(top.join("tcl"))
        .include(here.join("c"))
        // ckalloc and friends on malloc, keeping Tcl 8.6's unsigned int size argument,
        // so ASan sees every block the stubs allocate (Tcl's own allocator pools them).
        .flag("-include")
        .flag(here.join("c/fuzz_alloc.h").to_str().expect("UTF-8 path"))
        .flag("-fsanitize=fuzzer-no-link")
        .flag("-g")
        .flag("-Wall")
        .flag("-Wextra")
        .warnings_into_errors(true);
    if env::var("CARGO_CFG_SANITIZE").is_ok_and(|s| s.split(',').any(|s| s == "address")) {
        build.flag("-fsanitize=address");
    }
    for word in tcl_config(&config, "TCL_INCLUDE_SPEC").split_whitespace() {
        if let Some(dir) = word.strip_prefix("-I") {
            build.include(dir);
        }
    }
    build
        .file(top.join("tcl/ring.c"))
        .file(top.join("tcl/portallocator.c"))
        .file(top.join("tcl/dferror.c"))
        .file(here.join("c/harness.c"))
        // Linked into the tcl_* targets only (below): the fake library's symbols would
        // clash with the real one's in the targets over the library's Rust code.
        .cargo_metadata(false)
        .compile("dftclfuzz");
    let archive = PathBuf::from(env::var("OUT_DIR").expect("cargo sets OUT_DIR")).join("libdftclfuzz.a");

    // Linked to Tcl itself, not through its stubs table: the harness creates the
    // interpreters, and the stubs' code is the same either way.
    let tcl = tcl_config(&config, "TCL_LIB_SPEC");
    for bin in TCL_TARGETS {
        println!("cargo:rustc-link-arg-bin={bin}={}", archive.display());
        for word in tcl.split_whitespace() {
            println!("cargo:rustc-link-arg-bin={bin}={word}");
        }
    }
}

/// The targets over the C stubs and the harness.
const TCL_TARGETS: [&str; 2] = ["tcl_ring", "tcl_portallocator"];
