//! The library's SIGBUS handler (see src/ring/truncation.rs) must not outlive the code
//! it points to: a program that loads libdaqflow with dlopen, uses a ring and unloads
//! it still dies of SIGBUS on a fault of its own, instead of jumping into unmapped code.

use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::Command;

fn release_dir() -> PathBuf {
    let me = std::env::current_exe().expect("test executable path");
    me.parent().and_then(|deps| deps.parent()).expect("target dir").to_path_buf()
}

#[test]
fn sigbus_after_dlclose_is_sigbus() {
    let lib = release_dir().join("libdaqflow.so");
    assert!(lib.exists(), "{} is missing: build it first (make all)", lib.display());
    let top = env!("CARGO_MANIFEST_DIR");
    let exe = std::env::temp_dir().join(format!("daqflow-unload-{}", std::process::id()));
    let built = match Command::new("gcc")
        .args(["-std=gnu11", "-O2", "-Wall", "-Wextra", "-Werror", "-o"])
        .arg(&exe)
        .arg(format!("{top}/tests/unload_support/unload.c"))
        .arg("-ldl")
        .output()
    {
        Ok(out) => out,
        Err(e) => {
            eprintln!("SKIPPED: no C compiler ({e})");
            return;
        }
    };
    assert!(built.status.success(), "gcc: {}", String::from_utf8_lossy(&built.stderr));
    let ring = format!("unload-{}", std::process::id());
    let ran = Command::new(&exe).arg(&lib).arg(&ring).output().expect("run the unload program");
    let _ = std::fs::remove_file(&exe);
    let _ = std::fs::remove_file(format!("/dev/shm/{ring}"));
    assert_eq!(
        ran.status.signal(),
        Some(libc::SIGBUS),
        "wanted death by SIGBUS, got {:?}; stderr: {}",
        ran.status,
        String::from_utf8_lossy(&ran.stderr)
    );
}
