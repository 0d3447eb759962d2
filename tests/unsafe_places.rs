//! Unsafe code in few places, checked: the shipped code (library, daemons, tools) may use
//! `unsafe` only in the files listed here, each with a reason, and every package takes
//! the workspace's lints, so `make lint` refuses an unsafe block that does not say why it
//! is sound (`clippy::undocumented_unsafe_blocks`). A raw system call that nix does not
//! wrap goes into its package's system-call module (src/sys.rs, daemons/src/sys.rs) behind
//! a safe function, not into the module that needs it.

mod source_support;

use std::path::Path;

use source_support::{ROOT, code, rust_files};

/// Where `unsafe` may be, and why there.
const ALLOWED: &[(&str, &str)] = &[
    ("src/ring/mem.rs", "the ring core's only access to shared memory"),
    ("src/ring/truncation.rs", "the SIGBUS guard: a signal handler that remaps truncated rings"),
    ("src/ring/futex.rs", "futex, which nix does not wrap"),
    ("src/ring/fence.rs", "membarrier, which nix does not wrap"),
    ("src/ffi/mod.rs", "the C ABI"),
    ("src/ffi/ring.rs", "the C ABI"),
    ("src/ffi/portmgr.rs", "the C ABI"),
    ("src/ffi/ringmaster.rs", "the C ABI"),
    ("src/ffi/remote.rs", "the C ABI"),
    ("src/sys.rs", "the library's system calls"),
    ("src/remote/feeder.rs", "a stream read straight into a proxy ring's reservation (zero copy)"),
    ("src/bin/daqflow-feeder.rs", "taking the report descriptor its starter hands over"),
    ("daemons/src/sys.rs", "the daemons' system calls"),
    ("daemons/src/ringmaster/sender.rs", "a ring's bytes sent to a socket straight from the ring (zero copy)"),
    // Kept rather than crossterm: see the module's header.
    ("tools/src/bin/ringbuffer/top/terminal.rs", "raw termios and ioctl for `ringbuffer top`"),
];

/// Whether the code of `path` (comments left out) has the keyword `unsafe`.
fn has_unsafe(path: &Path) -> bool {
    let ident = |c: char| c.is_ascii_alphanumeric() || c == '_';
    code(path).lines().any(|code| {
        code.match_indices("unsafe").any(|(at, word)| {
            !code[..at].chars().next_back().is_some_and(ident) && !code[at + word.len()..].starts_with(ident)
        })
    })
}

#[test]
fn unsafe_stays_in_its_places() {
    let root = Path::new(ROOT);
    let mut files = Vec::new();
    for dir in ["src", "daemons/src", "tools/src"] {
        rust_files(&root.join(dir), &mut files);
    }
    let mut strays: Vec<String> = files
        .iter()
        .filter(|f| has_unsafe(f))
        .map(|f| f.strip_prefix(root).expect("below the root").to_string_lossy().into_owned())
        .filter(|f| !ALLOWED.iter().any(|(allowed, _)| allowed == f))
        .collect();
    strays.sort();
    assert!(
        strays.is_empty(),
        "unsafe code in {strays:?}: use nix or std, or put the call behind a safe function in the package's \
         system-call module (src/sys.rs, daemons/src/sys.rs)"
    );
    // An allowance whose file no longer needs it would let unsafe back in unnoticed.
    let stale: Vec<&str> = ALLOWED
        .iter()
        .map(|(file, _)| *file)
        .filter(|file| !(root.join(file).exists() && has_unsafe(&root.join(file))))
        .collect();
    assert!(stale.is_empty(), "allowed but without unsafe code (take them off the list): {stale:?}");
}

#[test]
fn every_package_takes_the_workspace_lints() {
    let root = Path::new(ROOT);
    let manifest = |dir: &str| std::fs::read_to_string(root.join(dir).join("Cargo.toml")).expect("read Cargo.toml");
    let workspace = manifest(".");
    let section = |text: &str, name: &str| -> String {
        let header = format!("[{name}]\n");
        let start = text.find(&header).map(|at| at + header.len());
        start.map_or_else(String::new, |s| text[s..].split("\n[").next().unwrap_or("").to_string())
    };
    let clippy = section(&workspace, "workspace.lints.clippy");
    assert!(clippy.contains("undocumented_unsafe_blocks = \"warn\""), "workspace clippy lints: {clippy:?}");
    let rust = section(&workspace, "workspace.lints.rust");
    assert!(rust.contains("unsafe_op_in_unsafe_fn = \"warn\""), "workspace rust lints: {rust:?}");
    for dir in [".", "daemons", "tools", "interop"] {
        let lints = section(&manifest(dir), "lints");
        assert!(lints.contains("workspace = true"), "{dir}/Cargo.toml does not take the workspace lints: {lints:?}");
    }
}
