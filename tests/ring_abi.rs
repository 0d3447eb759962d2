//! The C ABI as published: the committed header, the version, and the declarations the
//! contract (spec/c-api.md, ring section) promises.

use std::collections::BTreeMap;
use std::ffi::CStr;

const COMMITTED: &str = include_str!("../include/daqflow.h");
const GENERATED: &str = include_str!(concat!(env!("OUT_DIR"), "/daqflow.h"));

/// The ring section of spec/c-api.md, verbatim. (The test also re-reads the spec when
/// it is checked out next to the repository, and fails if this copy went stale.)
const CONTRACT: &str = r#"
typedef struct ring_client ring_client;          /* a producer or consumer attachment */

#define RING_DEFAULT_DATA_BYTES    8388608       /* 8 MiB */
#define RING_DEFAULT_MAX_CONSUMERS 100

int  ring_create(const char *name, uint64_t data_bytes, uint32_t max_consumers); /* 0 = default */
int  ring_format(const char *name, uint32_t max_consumers);                      /* 0 = default */
int  ring_remove(const char *name);
int  ring_exists(const char *name);              /* 1 a ring, 0 not a ring or missing, < 0 error */
int  ring_list(char ***names, size_t *count);    /* every ring on this host, sorted */
void ring_list_free(char **names, size_t count);

int  ring_attach_producer(const char *name, ring_client **out);  /* -EACCES: has a producer */
int  ring_attach_consumer(const char *name, ring_client **out);  /* -ENOMEM: no free slot   */
int  ring_detach(ring_client *client);

/* All len bytes or nothing. 0 on success; -ETIMEDOUT; -EMSGSIZE if len can never fit. */
int     ring_put(ring_client *producer, const void *data, size_t len, int timeout_ms);
/* Waits until at least min bytes are available, then copies min(available, max).
   Returns the count; -ETIMEDOUT; -EMSGSIZE if min can never be satisfied. */
ssize_t ring_get(ring_client *consumer, void *buf, size_t min, size_t max, int timeout_ms);
ssize_t ring_peek(ring_client *consumer, void *buf, size_t max);   /* never blocks */
int     ring_skip(ring_client *consumer, size_t len);              /* -ERANGE past the data */
uint64_t ring_available_data(const ring_client *consumer);
uint64_t ring_available_put_space(const ring_client *producer);
int      ring_slot(const ring_client *client);   /* consumer slot index; -1 for a producer */

typedef struct ring_usage_info {
    uint64_t data_bytes;      /* data area size */
    uint64_t put_space;       /* what the producer can put now without blocking */
    uint32_t max_consumers;
    int32_t  producer_pid;    /* -1: no producer */
    uint64_t max_get;         /* largest consumer backlog (0 with no consumer) */
    uint64_t min_get;         /* smallest consumer backlog (0 with no consumer) */
    uint32_t n_consumers;     /* attached consumers */
} ring_usage_info;

typedef struct ring_consumer_info {
    int32_t  pid;
    uint32_t slot;
    uint64_t backlog;
} ring_consumer_info;

/* Fills *info and up to capacity consumer entries (slot order); returns n_consumers,
   which may exceed capacity. consumers may be NULL when capacity is 0. */
int ring_usage(const char *name, ring_usage_info *info,
               ring_consumer_info *consumers, size_t capacity);

int ring_disconnect_producer(const char *name);
int ring_disconnect_consumer(const char *name, uint32_t slot);   /* -ERANGE bad slot */
"#;

fn strip_comments(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix("/*") {
            rest = r.find("*/").map(|i| &r[i + 2..]).unwrap_or("");
            out.push(' ');
        } else if let Some(r) = rest.strip_prefix("//") {
            rest = r.find('\n').map(|i| &r[i..]).unwrap_or("");
        } else {
            let c = rest.chars().next().unwrap();
            out.push(c);
            rest = &rest[c.len_utf8()..];
        }
    }
    out
}

/// One declaration in canonical form: single spaces, no `struct` keyword, no spaces
/// around punctuation.
fn normalize(decl: &str) -> String {
    let mut spaced = decl.to_string();
    for p in ["*", "(", ")", ",", "{", "}", ";"] {
        spaced = spaced.replace(p, &format!(" {p} "));
    }
    let words: Vec<&str> = spaced.split_whitespace().filter(|w| *w != "struct").collect();
    let mut s = words.join(" ");
    for p in ["*", "(", ")", ",", "{", "}", ";"] {
        s = s.replace(&format!(" {p}"), p).replace(&format!("{p} "), p);
    }
    s
}

/// Function declarations (name -> canonical text) of a C text.
fn functions(c_text: &str) -> BTreeMap<String, Vec<String>> {
    let text = strip_comments(c_text);
    // Drop preprocessor lines.
    let text: String = text.lines().filter(|l| !l.trim_start().starts_with('#')).collect::<Vec<_>>().join("\n");
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for stmt in text.split(';') {
        let stmt = stmt.trim();
        // Skip struct bodies and typedefs; a function declaration has `name(` and no `{`.
        let stmt = stmt.rsplit(['{', '}']).next().unwrap_or(stmt).trim();
        if stmt.starts_with("typedef") || !stmt.contains('(') {
            continue;
        }
        let canon = normalize(stmt);
        let name = canon[..canon.find('(').unwrap()].rsplit(['*', ' ']).next().unwrap().to_string();
        out.entry(name).or_default().push(canon);
    }
    out
}

/// Field lists of `typedef struct NAME { ... } NAME;` blocks, canonical.
fn structs(c_text: &str) -> BTreeMap<String, String> {
    let text = strip_comments(c_text);
    let mut out = BTreeMap::new();
    let mut rest = text.as_str();
    while let Some(i) = rest.find("typedef struct") {
        rest = &rest[i + "typedef struct".len()..];
        let Some(open) = rest.find(['{', ';']) else { break };
        if &rest[open..open + 1] == ";" {
            continue;
        }
        let name = rest[..open].trim().to_string();
        let close = rest.find('}').unwrap();
        out.insert(name, normalize(&rest[open + 1..close]));
        rest = &rest[close..];
    }
    out
}

fn defines(c_text: &str) -> BTreeMap<String, String> {
    strip_comments(c_text)
        .lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            (w.next() == Some("#define")).then(|| (w.next().unwrap_or("").to_string(), w.collect::<Vec<_>>().join(" ")))
        })
        .collect()
}

#[test]
fn committed_header_matches_generated() {
    if COMMITTED != GENERATED {
        let first = COMMITTED.lines().zip(GENERATED.lines()).position(|(a, b)| a != b);
        panic!(
            "include/daqflow.h differs from what build.rs generates (first differing line: {:?}, {} vs {} lines): run `make header` and commit include/daqflow.h",
            first.map(|i| i + 1),
            COMMITTED.lines().count(),
            GENERATED.lines().count()
        );
    }
}

#[test]
fn version_matches_cargo_toml() {
    let manifest = include_str!("../Cargo.toml");
    let mut in_package = false;
    let mut version = None;
    for line in manifest.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            in_package = line == "[package]";
        } else if in_package {
            if let Some(v) = line.strip_prefix("version").map(str::trim).and_then(|v| v.strip_prefix('=')) {
                version = Some(v.trim().trim_matches('"').to_string());
            }
        }
    }
    let version = version.expect("no version in [package] of Cargo.toml");
    // SAFETY: daqflow_version returns a static NUL-terminated string.
    let got = unsafe { CStr::from_ptr(daqflow::ffi::daqflow_version()) }.to_str().unwrap().to_string();
    assert_eq!(got, version, "daqflow_version() vs Cargo.toml");
}

#[test]
fn header_declares_the_contract() {
    let header = functions(COMMITTED);
    let contract = functions(CONTRACT);
    assert!(contract.len() >= 19, "contract parse found only {:?}", contract.keys());
    let mut problems = Vec::new();
    for (name, decls) in &contract {
        match header.get(name) {
            None => problems.push(format!("{name}: not declared in include/daqflow.h")),
            Some(h) if !h.contains(&decls[0]) => {
                problems.push(format!("{name}: header has `{}`, contract says `{}`", h[0], decls[0]))
            }
            Some(_) => {}
        }
    }
    for f in ["daqflow_last_error", "daqflow_version"] {
        if !header.contains_key(f) {
            problems.push(format!("{f}: not declared"));
        }
    }
    // The structs have the contract's fields, in order, with the contract's types.
    let hs = structs(COMMITTED);
    for (name, fields) in structs(CONTRACT) {
        match hs.get(&name) {
            None => problems.push(format!("struct {name}: not defined in the header")),
            Some(f) if *f != fields => problems.push(format!("struct {name}: header `{f}`, contract `{fields}`")),
            Some(_) => {}
        }
    }
    if !COMMITTED.contains("typedef struct ring_client ring_client;") {
        problems.push("ring_client is not declared as an opaque typedef".into());
    }
    let hd = defines(COMMITTED);
    for (name, value) in defines(CONTRACT) {
        if hd.get(&name) != Some(&value) {
            problems.push(format!("#define {name}: header {:?}, contract {value}", hd.get(&name)));
        }
    }
    assert!(problems.is_empty(), "include/daqflow.h vs spec/c-api.md:\n{}", problems.join("\n"));
}

#[test]
fn header_declares_each_function_once() {
    let dup: Vec<String> = functions(COMMITTED)
        .into_iter()
        .filter(|(_, d)| d.len() > 1)
        .map(|(n, d)| format!("{n} x{}", d.len()))
        .collect();
    assert!(dup.is_empty(), "functions declared more than once in include/daqflow.h: {dup:?}");
}

/// The embedded contract is the spec's text, when the spec is checked out beside us.
#[test]
fn embedded_contract_is_current() {
    let spec = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/spec/c-api.md");
    let Ok(text) = std::fs::read_to_string(&spec) else {
        eprintln!("{} not found; skipping", spec.display());
        return;
    };
    let section = &text[text.find("## Rings").expect("no ring section")..];
    let start = section.find("```c").expect("no C block") + 4;
    let block = &section[start..start + section[start..].find("```").unwrap()];
    assert_eq!(functions(block), functions(CONTRACT), "spec/c-api.md changed: update CONTRACT in tests/ring_abi.rs");
    assert_eq!(structs(block), structs(CONTRACT));
    assert_eq!(defines(block), defines(CONTRACT));
}

#[test]
fn rust_structs_have_the_c_layout() {
    use daqflow::ffi::ring::{ring_consumer_info, ring_usage_info};
    use std::mem::{align_of, offset_of, size_of};
    assert_eq!(size_of::<ring_usage_info>(), 48);
    assert_eq!(align_of::<ring_usage_info>(), 8);
    assert_eq!(offset_of!(ring_usage_info, data_bytes), 0);
    assert_eq!(offset_of!(ring_usage_info, put_space), 8);
    assert_eq!(offset_of!(ring_usage_info, max_consumers), 16);
    assert_eq!(offset_of!(ring_usage_info, producer_pid), 20);
    assert_eq!(offset_of!(ring_usage_info, max_get), 24);
    assert_eq!(offset_of!(ring_usage_info, min_get), 32);
    assert_eq!(offset_of!(ring_usage_info, n_consumers), 40);
    assert_eq!(size_of::<ring_consumer_info>(), 16);
    assert_eq!(offset_of!(ring_consumer_info, pid), 0);
    assert_eq!(offset_of!(ring_consumer_info, slot), 4);
    assert_eq!(offset_of!(ring_consumer_info, backlog), 8);
}

#[test]
fn parser_self_check() {
    // The parser must see a changed signature, or the contract test proves nothing.
    let a = functions("int ring_put(struct ring_client *producer, const void *data, size_t len, int timeout_ms);");
    let b = functions("int  ring_put(ring_client* producer,const void *data, size_t len, int timeout_ms);");
    let c = functions("int ring_put(ring_client *producer, const void *data, uint32_t len, int timeout_ms);");
    assert_eq!(a, b);
    assert_ne!(a, c);
}
