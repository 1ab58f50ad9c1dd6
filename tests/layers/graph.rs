//! The file-level import graph of `src/`: which file each path in a file leads to, after
//! following re-exports to the file that defines the item.
//!
//! Rust paths are resolved as far as this crate needs: `use` trees (groups, `self`, `as`,
//! globs), `crate::`, `super::`, `self::`, names a file imports and child modules it declares.
//! A path that ends at a module (`use crate::guards::stack;`) is no edge by itself; the items
//! used through it are. A path into an inline module (`mod tests { ... }`) resolves from
//! that module, so a test module's `use super::*` is no edge.

use std::collections::{BTreeSet, HashMap};

/// One source file: its module path and its code, comments already stripped.
pub struct SourceFile {
    pub name: String,
    pub module: Vec<String>,
    pub code: String,
}

/// A `use` leaf: the name it binds in its module (`None` for a glob) and the full path.
struct UseLeaf {
    binding: Option<String>,
    path: Vec<String>,
    public: bool,
    line: usize,
    scope: Vec<String>,
}

/// What a path leads to.
enum Target {
    Module,
    Item(usize),
}

/// The graph: for each file, the files it depends on, each with the first line that does.
pub struct Graph {
    pub names: Vec<String>,
    pub edges: Vec<HashMap<usize, usize>>,
}

fn is_ident(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// Splits a `use` tree (the text between `use` and `;`) into leaves: `(binding, path)`.
fn use_leaves(tree: &str) -> Vec<(Option<String>, Vec<String>)> {
    fn walk(prefix: &[String], text: &str, out: &mut Vec<(Option<String>, Vec<String>)>) {
        let text = text.trim();
        if text.is_empty() {
            return;
        }
        if let Some(open) = text.find('{') {
            let head: Vec<String> = text[..open]
                .split("::")
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect();
            let inner = &text[open + 1..text.rfind('}').unwrap_or(text.len())];
            let mut path = prefix.to_vec();
            path.extend(head);
            let mut depth = 0;
            let mut start = 0;
            for (at, c) in inner.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        walk(&path, &inner[start..at], out);
                        start = at + 1;
                    }
                    _ => {}
                }
            }
            walk(&path, &inner[start..], out);
            return;
        }
        let (text, rename) = match text.split_once(" as ") {
            Some((path, name)) => (path.trim(), Some(name.trim().to_owned())),
            None => (text, None),
        };
        let mut path = prefix.to_vec();
        path.extend(text.split("::").map(str::trim).map(str::to_owned));
        match path.last().map(String::as_str) {
            Some("*") => {
                path.pop();
                out.push((None, path));
            }
            Some("self") => {
                path.pop();
                let name = rename.or_else(|| path.last().cloned());
                out.push((name, path));
            }
            _ => {
                let name = rename.or_else(|| path.last().cloned());
                out.push((name, path));
            }
        }
    }
    let mut out = Vec::new();
    walk(&[], tree, &mut out);
    out
}

/// The inline module path at each byte of `code` (`mod name { ... }`), as a list of
/// `(start, end, name)` spans, outermost first.
fn inline_modules(code: &str) -> Vec<(usize, usize, String)> {
    let bytes = code.as_bytes();
    let mut spans = Vec::new();
    let mut open: Vec<(usize, Option<String>)> = Vec::new();
    let mut pending: Option<String> = None;
    let mut at = 0;
    while at < bytes.len() {
        let c = bytes[at] as char;
        if c == '"' {
            at += 1;
            while at < bytes.len() && bytes[at] != b'"' {
                at += if bytes[at] == b'\\' { 2 } else { 1 };
            }
        } else if c == '{' {
            open.push((at, pending.take()));
        } else if c == '}' {
            if let Some((start, Some(name))) = open.pop() {
                spans.push((start, at, name));
            }
        } else if c == ';' {
            pending = None;
        } else if code[at..].starts_with("mod ") && (at == 0 || !is_ident(bytes[at - 1] as char)) {
            let name: String = code[at + 4..]
                .trim_start()
                .chars()
                .take_while(|c| is_ident(*c))
                .collect();
            pending = Some(name);
            at += 4;
            continue;
        }
        at += 1;
    }
    spans.sort();
    spans
}

/// The module path at byte `at` of a file of module `module`.
fn scope_at(module: &[String], spans: &[(usize, usize, String)], at: usize) -> Vec<String> {
    let mut scope = module.to_vec();
    for (start, end, name) in spans {
        if *start < at && at < *end {
            scope.push(name.clone());
        }
    }
    scope
}

/// The `use` statements of a file: their leaves, with the statement's text blanked out of
/// `code` so that the path scan does not see them twice.
fn take_uses(file: &SourceFile, spans: &[(usize, usize, String)]) -> (Vec<UseLeaf>, String) {
    let code = &file.code;
    let mut leaves = Vec::new();
    let mut rest = String::with_capacity(code.len());
    let mut at = 0;
    while let Some(found) = code[at..].find("use ") {
        let start = at + found;
        let before = code[..start].trim_end();
        let boundary = start == 0 || !is_ident(code.as_bytes()[start - 1] as char);
        let public = before.ends_with("pub") || before.ends_with(')') && before.contains("pub(");
        let statement_start = before.is_empty()
            || before.ends_with(';')
            || before.ends_with('{')
            || before.ends_with('}')
            || before.ends_with(']')
            || public;
        if !boundary || !statement_start {
            rest.push_str(&code[at..start + 4]);
            at = start + 4;
            continue;
        }
        let end = start + code[start..].find(';').expect("a use statement ends");
        let line = code[..start].matches('\n').count() + 1;
        let scope = scope_at(&file.module, spans, start);
        for (binding, path) in use_leaves(&code[start + 4..end]) {
            leaves.push(UseLeaf {
                binding,
                path,
                public,
                line,
                scope: scope.clone(),
            });
        }
        rest.push_str(&code[at..start]);
        rest.extend(
            code[start..end]
                .chars()
                .map(|c| if c == '\n' { '\n' } else { ' ' }),
        );
        at = end;
    }
    rest.push_str(&code[at..]);
    (leaves, rest)
}

/// Every path `a::b::c` in `code` with its byte offset and line.
fn paths(code: &str) -> Vec<(usize, usize, Vec<String>)> {
    let chars: Vec<(usize, char)> = code.char_indices().collect();
    let mut found = Vec::new();
    let mut line = 1;
    let mut i = 0;
    while i < chars.len() {
        let (at, c) = chars[i];
        if c == '\n' {
            line += 1;
        }
        if c == '"' {
            i += 1;
            while i < chars.len() && chars[i].1 != '"' {
                if chars[i].1 == '\n' {
                    line += 1;
                }
                i += if chars[i].1 == '\\' { 2 } else { 1 };
            }
            i += 1;
            continue;
        }
        let starts = is_ident(c)
            && !c.is_ascii_digit()
            && (i == 0 || !is_ident(chars[i - 1].1) && chars[i - 1].1 != '$');
        if !starts {
            i += 1;
            continue;
        }
        let mut segments = Vec::new();
        loop {
            let mut name = String::new();
            while i < chars.len() && is_ident(chars[i].1) {
                name.push(chars[i].1);
                i += 1;
            }
            segments.push(name);
            if code[chars.get(i).map_or(code.len(), |c| c.0)..].starts_with("::")
                && chars.get(i + 2).is_some_and(|c| is_ident(c.1))
            {
                i += 2;
            } else {
                break;
            }
        }
        if segments.len() > 1 {
            found.push((at, line, segments));
        }
    }
    found
}

/// `path`, written in module `scope` of a file with the `use` leaves `uses`, as a path from
/// the crate root; `None` for a path outside the crate (`core::ptr`, a local type's `T::x`).
fn absolute(
    modules: &HashMap<Vec<String>, usize>,
    uses: &[UseLeaf],
    scope: &[String],
    path: &[String],
    depth: usize,
) -> Option<Vec<String>> {
    let (mut out, rest) = match path.first().map(String::as_str)? {
        "crate" => (Vec::new(), &path[1..]),
        "self" => (scope.to_vec(), &path[1..]),
        "super" => {
            let mut out = scope.to_vec();
            let mut rest = path;
            while rest.first().map(String::as_str) == Some("super") {
                out.pop();
                rest = &rest[1..];
            }
            (out, rest)
        }
        first => {
            let mut child = scope.to_vec();
            child.push(first.to_owned());
            if modules.contains_key(&child) {
                (scope.to_vec(), path)
            } else {
                // A name imported here, or (through `use super::*`) in an enclosing module.
                let leaf = (0..=scope.len()).rev().find_map(|len| {
                    uses.iter().find(|leaf| {
                        leaf.scope == scope[..len] && leaf.binding.as_deref() == Some(first)
                    })
                })?;
                if depth > 8 {
                    return None;
                }
                let out = absolute(modules, uses, &leaf.scope, &leaf.path, depth + 1)?;
                (out, &path[1..])
            }
        }
    };
    out.extend(rest.iter().cloned());
    Some(out)
}

impl Graph {
    pub fn new(files: &[SourceFile]) -> Graph {
        let modules: HashMap<Vec<String>, usize> = files
            .iter()
            .enumerate()
            .map(|(index, file)| (file.module.clone(), index))
            .collect();
        let parsed: Vec<_> = files
            .iter()
            .map(|file| {
                let spans = inline_modules(&file.code);
                let (uses, rest) = take_uses(file, &spans);
                (spans, uses, rest)
            })
            .collect();
        let uses: Vec<&Vec<UseLeaf>> = parsed.iter().map(|(_, uses, _)| uses).collect();
        let absolute = |scope: &[String], path: &[String], own: usize| {
            absolute(&modules, uses[own], scope, path, 0)
        };
        let mut exports: Vec<HashMap<String, Vec<String>>> = vec![HashMap::new(); files.len()];
        for (index, (_, uses, _)) in parsed.iter().enumerate() {
            for leaf in uses
                .iter()
                .filter(|leaf| leaf.public && leaf.scope == files[index].module)
            {
                if let (Some(name), Some(path)) =
                    (&leaf.binding, absolute(&leaf.scope, &leaf.path, index))
                {
                    exports[index].insert(name.clone(), path);
                }
            }
        }
        let resolve = |path: &[String]| -> Option<Target> {
            let mut path = path.to_vec();
            for _ in 0..16 {
                let mut module = Vec::new();
                let mut at = 0;
                while at < path.len() {
                    let mut next = module.clone();
                    next.push(path[at].clone());
                    if !modules.contains_key(&next) {
                        break;
                    }
                    module = next;
                    at += 1;
                }
                if at == path.len() {
                    return Some(Target::Module);
                }
                let file = *modules.get(&module)?;
                match exports[file].get(&path[at]) {
                    Some(target) => {
                        let mut next = target.clone();
                        next.extend(path[at + 1..].iter().cloned());
                        path = next;
                    }
                    None => return Some(Target::Item(file)),
                }
            }
            None
        };
        let mut edges = vec![HashMap::new(); files.len()];
        for (index, (spans, uses, rest)) in parsed.iter().enumerate() {
            if files[index].module.is_empty() {
                // The crate root re-exports every layer; its own items (`gilguard::ffi`, the
                // guide) use nothing of the crate, so nothing it points at can lead back.
                continue;
            }
            let mut add = |line: usize, target: Option<Target>| {
                if let Some(Target::Item(to)) = target {
                    if to != index {
                        edges[index].entry(to).or_insert(line);
                    }
                }
            };
            for leaf in uses {
                if let Some(path) = absolute(&leaf.scope, &leaf.path, index) {
                    add(leaf.line, resolve(&path));
                }
            }
            for (at, line, path) in paths(rest) {
                let scope = scope_at(&files[index].module, spans, at);
                if let Some(path) = absolute(&scope, &path, index) {
                    add(line, resolve(&path));
                }
            }
        }
        Graph {
            names: files.iter().map(|file| file.name.clone()).collect(),
            edges,
        }
    }

    /// Every circle of files (a strongly connected set of more than one), each as the
    /// lines that close it: `a.rs:12 -> b.rs`, ...
    pub fn cycles(&self) -> Vec<Vec<String>> {
        let count = self.names.len();
        // Tarjan's strongly connected components.
        struct State {
            index: Vec<Option<usize>>,
            low: Vec<usize>,
            on_stack: Vec<bool>,
            stack: Vec<usize>,
            next: usize,
            components: Vec<Vec<usize>>,
        }
        fn connect(graph: &Graph, node: usize, state: &mut State) {
            state.index[node] = Some(state.next);
            state.low[node] = state.next;
            state.next += 1;
            state.stack.push(node);
            state.on_stack[node] = true;
            let mut targets: Vec<usize> = graph.edges[node].keys().copied().collect();
            targets.sort();
            for to in targets {
                match state.index[to] {
                    None => {
                        connect(graph, to, state);
                        state.low[node] = state.low[node].min(state.low[to]);
                    }
                    Some(index) if state.on_stack[to] => {
                        state.low[node] = state.low[node].min(index);
                    }
                    Some(_) => {}
                }
            }
            if Some(state.low[node]) == state.index[node] {
                let mut component = Vec::new();
                while let Some(top) = state.stack.pop() {
                    state.on_stack[top] = false;
                    component.push(top);
                    if top == node {
                        break;
                    }
                }
                state.components.push(component);
            }
        }
        let mut state = State {
            index: vec![None; count],
            low: vec![0; count],
            on_stack: vec![false; count],
            stack: Vec::new(),
            next: 0,
            components: Vec::new(),
        };
        for node in 0..count {
            if state.index[node].is_none() {
                connect(self, node, &mut state);
            }
        }
        let mut cycles = Vec::new();
        for component in state.components.into_iter().filter(|c| c.len() > 1) {
            let members: BTreeSet<usize> = component.iter().copied().collect();
            let mut lines = Vec::new();
            for &from in &members {
                let mut targets: Vec<_> = self.edges[from]
                    .iter()
                    .filter(|(to, _)| members.contains(to))
                    .collect();
                targets.sort();
                for (to, line) in targets {
                    lines.push(format!(
                        "{}:{line} -> {}",
                        self.names[from], self.names[*to]
                    ));
                }
            }
            cycles.push(lines);
        }
        cycles
    }
}
