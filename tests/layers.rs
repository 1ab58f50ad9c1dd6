//! The layers of `src/` (ARCHITECTURE.md) only call down: a file in a folder imports
//! (`crate::<folder>::...`, or a crate-root re-export of an item of that folder) only from
//! its own folder's layer and the ones below it, lowest first:
//!
//! `raw` < `context` < `runtime` < `guards` < `interpreters` < `objects` < `sync`
//!
//! `src/error.rs` and `src/marker.rs` sit below every layer and import none; `src/lib.rs`
//! declares the layers and re-exports from all of them. Comments are not imports (a doc link
//! may name an item of any layer).
//!
//! Two more rules: no two files import each other, directly or around a circle (the
//! file-level graph, `layers/graph.rs`), and CPython is called only from `src/raw/`, through
//! wrappers that state each call's precondition (`pyo3_ffi` is named nowhere else but in
//! the public re-export `gilguard::ffi`).

#[path = "layers/graph.rs"]
mod graph;

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};

/// The layers, lowest first.
const LAYERS: [&str; 8] = [
    "raw",
    "context",
    "runtime",
    "stats",
    "guards",
    "interpreters",
    "objects",
    "sync",
];
/// Files at the root of `src/` that every layer may use and that use no layer.
const BASE: [&str; 2] = ["error", "marker"];

/// The rank of a layer (or of a base module, below every layer).
fn rank(module: &str) -> Option<i32> {
    if BASE.contains(&module) {
        return Some(-1);
    }
    LAYERS
        .iter()
        .position(|layer| *layer == module)
        .map(|rank| rank as i32)
}

/// Every `.rs` file under `dir`.
fn rust_files(dir: &Path, files: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).expect("read src/") {
        let path = entry.expect("read src/").path();
        if path.is_dir() {
            rust_files(&path, files);
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            files.push(path);
        }
    }
}

/// `source` without its comments (line, doc and block comments), line breaks kept so that
/// line numbers still match. String literals are left alone: no path in one is an import.
fn strip_comments(source: &str) -> String {
    let mut out = String::with_capacity(source.len());
    let mut chars = source.chars().peekable();
    let mut in_block = 0usize;
    let mut in_string = false;
    while let Some(c) = chars.next() {
        if in_block > 0 {
            match (c, chars.peek()) {
                ('*', Some('/')) => {
                    chars.next();
                    in_block -= 1;
                }
                ('/', Some('*')) => {
                    chars.next();
                    in_block += 1;
                }
                ('\n', _) => out.push('\n'),
                _ => {}
            }
            continue;
        }
        if in_string {
            out.push(c);
            match c {
                '\\' => {
                    if let Some(next) = chars.next() {
                        out.push(next);
                    }
                }
                '"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match (c, chars.peek()) {
            ('/', Some('/')) => {
                for next in chars.by_ref() {
                    if next == '\n' {
                        out.push('\n');
                        break;
                    }
                }
            }
            ('/', Some('*')) => {
                chars.next();
                in_block = 1;
            }
            ('"', _) => {
                in_string = true;
                out.push(c);
            }
            _ => out.push(c),
        }
    }
    out
}

/// The first segments of every `crate::` path in `code`, with their line numbers: the
/// `a` of `crate::a::b`, and each `a` of `crate::{a::b, c}`.
fn crate_paths(code: &str) -> Vec<(usize, String)> {
    let ident = |text: &str| -> String {
        text.chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect()
    };
    let mut found = Vec::new();
    for (number, line) in code.lines().enumerate() {
        let mut rest = line;
        while let Some(at) = rest.find("crate::") {
            let before = rest[..at].chars().next_back();
            rest = &rest[at + "crate::".len()..];
            if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
                continue; // `$crate::`, `my_crate::`
            }
            if let Some(group) = rest.strip_prefix('{') {
                let end = group.find('}').unwrap_or(group.len());
                for item in group[..end].split(',') {
                    let name = ident(item.trim());
                    if !name.is_empty() {
                        found.push((number + 1, name));
                    }
                }
            } else {
                found.push((number + 1, ident(rest)));
            }
        }
    }
    found
}

/// The crate-root names `src/lib.rs` re-exports, with the layer (or base module) each comes
/// from: `pub use guards::with_gil::{WithGil, with_gil};` maps both names to `guards`.
fn re_exports(lib: &str) -> HashMap<String, String> {
    let mut names = HashMap::new();
    let code = strip_comments(lib);
    for statement in code.split(';') {
        let statement = statement.trim();
        let Some(path) = statement
            .lines()
            .map(str::trim)
            .filter(|line| !line.starts_with("#["))
            .collect::<Vec<_>>()
            .join(" ")
            .strip_prefix("pub use ")
            .map(str::to_owned)
        else {
            continue;
        };
        let origin: String = path
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        let imported = match (path.find('{'), path.rfind('}')) {
            (Some(open), Some(close)) => path[open + 1..close].to_owned(),
            _ => path.rsplit("::").next().unwrap_or_default().to_owned(),
        };
        for name in imported.split(',') {
            let name = name.trim().rsplit("::").next().unwrap_or_default().trim();
            if !name.is_empty() && name != "self" {
                names.insert(name.to_owned(), origin.clone());
            }
        }
    }
    names
}

/// Where `code` (a file of layer `own`, of rank `own_rank`) imports from a higher layer:
/// one message per such path.
fn upward_imports(
    file: &str,
    own: &str,
    own_rank: i32,
    code: &str,
    exports: &HashMap<String, String>,
) -> Vec<String> {
    let mut violations = Vec::new();
    for (line, first) in crate_paths(&strip_comments(code)) {
        let target = if rank(&first).is_some() {
            first.clone()
        } else if let Some(origin) = exports.get(&first) {
            origin.clone()
        } else {
            continue;
        };
        let Some(target_rank) = rank(&target) else {
            continue;
        };
        if target_rank > own_rank {
            violations.push(format!(
                "{file}:{line}: `{own}` imports `crate::{first}` from the higher layer `{target}`"
            ));
        }
    }
    violations
}

#[test]
fn no_layer_imports_from_a_higher_one() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let lib = fs::read_to_string(src.join("lib.rs")).expect("read src/lib.rs");
    let exports = re_exports(&lib);
    assert!(
        exports.get("with_gil").map(String::as_str) == Some("guards")
            && exports.get("Interpreter").map(String::as_str) == Some("interpreters"),
        "src/lib.rs re-exports not understood: {exports:?}"
    );
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    files.sort();
    let mut violations = Vec::new();
    let mut checked = 0;
    for path in &files {
        let relative = path.strip_prefix(&src).expect("under src/");
        let mut components = relative.components();
        let first = components
            .next()
            .and_then(|c| c.as_os_str().to_str())
            .expect("a file name");
        let own = first.strip_suffix(".rs").unwrap_or(first);
        if own == "lib" {
            continue;
        }
        let Some(own_rank) = rank(own) else {
            violations.push(format!(
                "src/{}: not in a layer; add it to a folder (or to BASE in tests/layers.rs)",
                relative.display()
            ));
            continue;
        };
        let code = fs::read_to_string(path).expect("read a source file");
        let file = format!("src/{}", relative.display());
        violations.extend(upward_imports(&file, own, own_rank, &code, &exports));
        checked += 1;
    }
    assert!(checked > 20, "only {checked} files checked under src/");
    assert!(
        violations.is_empty(),
        "imports against the layers (ARCHITECTURE.md):\n{}",
        violations.join("\n")
    );
}

/// The checker itself finds what it must, and nothing in comments.
#[test]
fn the_checker_sees_upward_imports() {
    let exports = re_exports(
        "pub use guards::with_gil::{WithGil, with_gil};\n#[cfg(feature = \"x\")]\npub use interpreters::sub_interpreter::SubInterpreter;",
    );
    let check = |code: &str| upward_imports("f.rs", "runtime", 3, code, &exports);
    assert_eq!(check("use crate::guards::stack;").len(), 1);
    assert_eq!(check("use crate::{raw::ffi, guards::stack};").len(), 1);
    assert_eq!(check("let x = crate::with_gil(|| 1);").len(), 1);
    assert_eq!(check("fn f(_: crate::SubInterpreter) {}").len(), 1);
    assert_eq!(check("use crate::sync::GilOnceLock;").len(), 1);
    assert!(check("use crate::raw::ffi;\nuse crate::runtime::shutdown;").is_empty());
    assert!(check("use crate::error::GilError;").is_empty());
    assert!(
        check("/// [`x`](crate::guards::stack)\n// crate::with_gil\n/* crate::guards */")
            .is_empty()
    );
    assert!(check("let s = \"// not a comment\"; use crate::raw::ffi;").is_empty());
    let base = upward_imports("error.rs", "error", -1, "use crate::raw::ffi;", &exports);
    assert_eq!(base.len(), 1);
}

/// The source files of `src/`, each with its module path and its code without comments.
fn source_files() -> Vec<graph::SourceFile> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut paths = Vec::new();
    rust_files(&src, &mut paths);
    paths.sort();
    paths
        .iter()
        .map(|path| {
            let relative = path.strip_prefix(&src).expect("under src/");
            let mut module: Vec<String> = relative
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect();
            let last = module.pop().expect("a file name");
            if last != "mod.rs" && last != "lib.rs" {
                module.push(last.trim_end_matches(".rs").to_owned());
            }
            graph::SourceFile {
                name: format!("src/{}", relative.display()),
                module,
                code: strip_comments(&fs::read_to_string(path).expect("read a source file")),
            }
        })
        .collect()
}

#[test]
fn no_two_files_import_each_other() {
    let files = source_files();
    let graph = graph::Graph::new(&files);
    let edges: usize = graph.edges.iter().map(|targets| targets.len()).sum();
    assert!(edges > 50, "only {edges} imports between files found");
    let cycles = graph.cycles();
    assert!(
        cycles.is_empty(),
        "files that import each other, around a circle (ARCHITECTURE.md):\n{}",
        cycles
            .iter()
            .map(|cycle| cycle.join("\n"))
            .collect::<Vec<_>>()
            .join("\n\n")
    );
}

/// The graph follows re-exports, relative paths and imported names, and a test module's
/// `use super::*` is no edge.
#[test]
fn the_checker_sees_circles_between_files() {
    let file = |name: &str, module: &[&str], code: &str| graph::SourceFile {
        name: name.to_owned(),
        module: module.iter().map(|s| s.to_string()).collect(),
        code: code.to_owned(),
    };
    let facade = "mod a; mod b; pub(crate) use a::{A, helper}; pub(crate) use b::B;";
    let cycles = |a: &str, b: &str| {
        graph::Graph::new(&[
            file("lib.rs", &[], "mod m; pub use m::A;"),
            file("m/mod.rs", &["m"], facade),
            file("m/a.rs", &["m", "a"], a),
            file("m/b.rs", &["m", "b"], b),
        ])
        .cycles()
    };
    let a = "pub struct A; pub fn helper() {}";
    assert!(cycles(a, "use super::A; pub struct B;").is_empty());
    assert!(cycles(a, "use crate::A; struct B;").is_empty());
    assert!(cycles(a, "mod tests { use super::*; fn t() { B; } }").is_empty());
    let b = "use super::A; pub struct B;";
    let circle = cycles("use super::B; pub struct A;", b);
    assert_eq!(circle.len(), 1, "{circle:?}");
    assert_eq!(circle[0], ["m/a.rs:1 -> m/b.rs", "m/b.rs:1 -> m/a.rs"]);
    assert_eq!(
        cycles("pub struct A; fn f() { crate::m::b::B; }", b).len(),
        1
    );
    assert_eq!(
        cycles("use crate::m; pub struct A; fn f() { m::B; }", b).len(),
        1
    );
    assert_eq!(
        cycles("use super::{self as parent}; fn f() { parent::B; }", b).len(),
        1
    );
    assert_eq!(cycles("use super::b; fn f() { b::B::new(); }", b).len(), 1);
    assert!(cycles("fn f() { let s = \"super::B\"; }", b).is_empty());
}

/// Where `code` names `pyo3_ffi`: one message per line.
fn names_pyo3_ffi(file: &str, code: &str) -> Vec<String> {
    code.lines()
        .enumerate()
        .filter(|(_, line)| {
            line.match_indices("pyo3_ffi").any(|(at, _)| {
                !line[..at]
                    .chars()
                    .next_back()
                    .is_some_and(|c| c.is_alphanumeric() || c == '_')
            })
        })
        .map(|(number, line)| format!("{file}:{}: {}", number + 1, line.trim()))
        .collect()
}

#[test]
fn cpython_is_called_only_from_raw() {
    let mut violations = Vec::new();
    let mut checked = 0;
    for file in source_files() {
        if file.module.first().map(String::as_str) == Some("raw") {
            continue;
        }
        let mut found = names_pyo3_ffi(&file.name, &file.code);
        if file.name == "src/lib.rs" {
            found.retain(|line| !line.ends_with(": pub use pyo3_ffi::*;"));
        }
        violations.extend(found);
        checked += 1;
    }
    assert!(checked > 20, "only {checked} files checked under src/");
    assert!(
        violations.is_empty(),
        "CPython called (or pyo3_ffi named) outside src/raw/; add a wrapper to raw::ffi \
         whose # Safety states the call's precondition:\n{}",
        violations.join("\n")
    );
}

#[test]
fn the_checker_sees_pyo3_ffi() {
    assert_eq!(
        names_pyo3_ffi("f.rs", "unsafe { pyo3_ffi::Py_IsInitialized() }").len(),
        1
    );
    assert_eq!(names_pyo3_ffi("f.rs", "use pyo3_ffi as c;").len(), 1);
    assert_eq!(
        names_pyo3_ffi("f.rs", "let t: *mut ::pyo3_ffi::PyObject;").len(),
        1
    );
    assert!(names_pyo3_ffi("f.rs", "use crate::raw::ffi; my_pyo3_ffi::x();").is_empty());
    let stripped = strip_comments("/// pyo3_ffi::PyList_New(0)\n// pyo3_ffi::x\nfn f() {}");
    assert!(names_pyo3_ffi("f.rs", &stripped).is_empty());
}
