//! Reading the workspace's own Rust sources, for the tests that check the code's shape
//! (tests/layers.rs, tests/unsafe_places.rs).

use std::path::{Path, PathBuf};

/// The repository (every package's sources are below it).
pub const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// Every .rs file below `dir`, into `out`.
pub fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read source directory") {
        let path = entry.expect("directory entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The code of a file without its line comments (a comment may name anything).
pub fn code(path: &Path) -> String {
    let text = std::fs::read_to_string(path).expect("read source file");
    text.lines().map(|l| l.split("//").next().unwrap_or("")).collect::<Vec<_>>().join("\n")
}
