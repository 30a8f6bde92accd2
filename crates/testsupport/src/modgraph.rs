//! The `use` graph between the modules of one crate, and its circles.
//!
//! Modules that import each other (`a` uses `b`, `b` uses `a`) cannot be understood, tested or
//! moved one at a time. A crate's test calls [`ModuleGraph::of_crate`] on its root file and
//! [`ModuleGraph::assert_acyclic`], so a circle fails the build's tests naming the lines that
//! close it.
//!
//! The graph is read from the source text: `mod x;` declarations are followed from the crate
//! root, and every `crate::`, `super::` and `self::` path (in `use` items and in expressions, but
//! not in comments or string literals) is an edge to the deepest module the path names. A module
//! naming its own descendants (declaring them, re-exporting from them) is no edge: that is how a
//! parent is built. A child naming its parent is an edge.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};

/// Module paths are written as in Rust (`client::config`); the crate root is `crate`.
pub type ModulePath = String;

/// Where a reference from one module to another was seen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Site {
    /// The source file, relative to the crate root's directory.
    pub file: PathBuf,
    /// 1-based line.
    pub line: usize,
    /// The path as written, e.g. `crate::cluster::LabError`.
    pub path: String,
}

impl fmt::Display for Site {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{} `{}`", self.file.display(), self.line, self.path)
    }
}

/// The modules of a crate and which module uses which.
#[derive(Debug, Clone, Default)]
pub struct ModuleGraph {
    /// Every module, including inline ones (`mod tests { ... }`).
    pub modules: BTreeSet<ModulePath>,
    /// `from -> to -> first place it was seen`.
    pub edges: BTreeMap<ModulePath, BTreeMap<ModulePath, Site>>,
}

impl ModuleGraph {
    /// Reads the crate whose root file is `root` (`src/lib.rs`), following `mod x;` declarations.
    ///
    /// Panics naming the file if a declared module's file cannot be read (a test helper).
    pub fn of_crate(root: &Path) -> ModuleGraph {
        let dir = root.parent().unwrap_or(Path::new(".")).to_path_buf();
        let file = PathBuf::from(root.file_name().expect("a crate root file"));
        Self::build(&file, |rel| std::fs::read_to_string(dir.join(rel)).ok())
    }

    /// Builds the graph from a root file name and a loader of files relative to its directory.
    pub fn build(root: &Path, load: impl Fn(&Path) -> Option<String>) -> ModuleGraph {
        let mut graph = ModuleGraph::default();
        let mut refs: Vec<(Vec<String>, Vec<String>, Site)> = Vec::new();
        let mut queue = vec![(Vec::<String>::new(), root.to_path_buf())];
        while let Some((module, file)) = queue.pop() {
            let source = load(&file).unwrap_or_else(|| {
                panic!(
                    "cannot read {} (module `{}`)",
                    file.display(),
                    show(&module)
                )
            });
            let scan = scan(&source);
            for inline in scan.inline_modules {
                let mut m = module.clone();
                m.extend(inline);
                graph.modules.insert(show(&m));
            }
            graph.modules.insert(show(&module));
            for (inside, child) in scan.file_modules {
                let mut m = module.clone();
                m.extend(inside.iter().cloned());
                m.push(child.clone());
                let base = child_dir(&file, &inside);
                let flat = base.join(format!("{child}.rs"));
                let nested = base.join(&child).join("mod.rs");
                let path = if load(&flat).is_some() { flat } else { nested };
                queue.push((m, path));
            }
            for r in scan.refs {
                let mut from = module.clone();
                from.extend(r.inside.iter().cloned());
                let Some(target) = absolute(&from, &r.segments) else {
                    continue;
                };
                let site = Site {
                    file: file.clone(),
                    line: r.line,
                    path: r.segments.join("::"),
                };
                refs.push((from, target, site));
            }
        }
        for (from, target, site) in refs {
            // The deepest module the path names: `crate::a::b::Item` -> `a::b` if that is a module.
            let to = (0..=target.len())
                .rev()
                .map(|n| &target[..n])
                .find(|p| graph.modules.contains(&show(p)))
                .unwrap_or(&[]);
            if to.starts_with(&from) {
                continue; // itself or a descendant
            }
            graph
                .edges
                .entry(show(&from))
                .or_default()
                .entry(show(to))
                .or_insert(site);
        }
        graph
    }

    /// The circles: each group of two or more modules that reach one another, sorted.
    pub fn cycles(&self) -> Vec<Vec<ModulePath>> {
        let nodes: Vec<&ModulePath> = self.modules.iter().collect();
        let index: BTreeMap<&ModulePath, usize> =
            nodes.iter().enumerate().map(|(i, m)| (*m, i)).collect();
        let succ: Vec<Vec<usize>> = nodes
            .iter()
            .map(|m| {
                self.edges
                    .get(*m)
                    .map(|to| to.keys().filter_map(|t| index.get(t).copied()).collect())
                    .unwrap_or_default()
            })
            .collect();
        let mut out: Vec<Vec<ModulePath>> = strongly_connected(&succ)
            .into_iter()
            .filter(|c| c.len() > 1)
            .map(|c| {
                let mut names: Vec<ModulePath> = c.into_iter().map(|i| nodes[i].clone()).collect();
                names.sort();
                names
            })
            .collect();
        out.sort();
        out
    }

    /// Panics if any modules form a circle, listing every edge inside each circle with its site.
    pub fn assert_acyclic(&self) {
        let cycles = self.cycles();
        if cycles.is_empty() {
            return;
        }
        let mut msg = String::from(
            "modules import each other (break the circle by moving the shared pieces into a module both depend on):\n",
        );
        for cycle in &cycles {
            msg.push_str(&format!("  circle: {}\n", cycle.join(", ")));
            for from in cycle {
                for (to, site) in self.edges.get(from).into_iter().flatten() {
                    if cycle.contains(to) {
                        msg.push_str(&format!("    {from} -> {to}  ({site})\n"));
                    }
                }
            }
        }
        panic!("{msg}");
    }
}

impl fmt::Display for ModuleGraph {
    /// One line per module: `from -> to, to, ...`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (from, to) in &self.edges {
            let to: Vec<&str> = to.keys().map(String::as_str).collect();
            writeln!(f, "{from} -> {}", to.join(", "))?;
        }
        Ok(())
    }
}

fn show(path: &[String]) -> ModulePath {
    if path.is_empty() {
        "crate".to_string()
    } else {
        path.join("::")
    }
}

/// The directory holding the files of `file`'s child modules (declared inside inline modules `inside`).
fn child_dir(file: &Path, inside: &[String]) -> PathBuf {
    let parent = file.parent().unwrap_or(Path::new("")).to_path_buf();
    let stem = file.file_stem().and_then(|s| s.to_str()).unwrap_or("");
    let mut dir = if matches!(stem, "lib" | "main" | "mod") {
        parent
    } else {
        parent.join(stem)
    };
    for m in inside {
        dir = dir.join(m);
    }
    dir
}

/// Resolves `crate::`/`super::`/`self::` against the module `from`; `None` for other paths.
fn absolute(from: &[String], segments: &[String]) -> Option<Vec<String>> {
    let mut rest = segments.iter().peekable();
    let mut base: Vec<String> = match rest.next()?.as_str() {
        "crate" => Vec::new(),
        "self" => from.to_vec(),
        "super" => from[..from.len().checked_sub(1)?].to_vec(),
        _ => return None,
    };
    while rest.peek().is_some_and(|s| *s == "super") {
        rest.next();
        base.pop()?;
    }
    base.extend(rest.cloned());
    Some(base)
}

/// Tarjan's algorithm, iterative enough for module graphs (recursion depth = longest path).
fn strongly_connected(succ: &[Vec<usize>]) -> Vec<Vec<usize>> {
    struct State<'a> {
        succ: &'a [Vec<usize>],
        index: Vec<Option<usize>>,
        low: Vec<usize>,
        on_stack: Vec<bool>,
        stack: Vec<usize>,
        next: usize,
        out: Vec<Vec<usize>>,
    }
    fn visit(s: &mut State<'_>, v: usize) {
        s.index[v] = Some(s.next);
        s.low[v] = s.next;
        s.next += 1;
        s.stack.push(v);
        s.on_stack[v] = true;
        for &w in &s.succ[v] {
            match s.index[w] {
                None => {
                    visit(s, w);
                    s.low[v] = s.low[v].min(s.low[w]);
                }
                Some(iw) if s.on_stack[w] => s.low[v] = s.low[v].min(iw),
                Some(_) => {}
            }
        }
        if Some(s.low[v]) == s.index[v] {
            let mut comp = Vec::new();
            while let Some(w) = s.stack.pop() {
                s.on_stack[w] = false;
                comp.push(w);
                if w == v {
                    break;
                }
            }
            s.out.push(comp);
        }
    }
    let n = succ.len();
    let mut s = State {
        succ,
        index: vec![None; n],
        low: vec![0; n],
        on_stack: vec![false; n],
        stack: Vec::new(),
        next: 0,
        out: Vec::new(),
    };
    for v in 0..n {
        if s.index[v].is_none() {
            visit(&mut s, v);
        }
    }
    s.out
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    Colons,
    Open,
    Close,
    Comma,
    Semi,
    Star,
    Other,
}

/// A path reference found in one file: which inline module it sits in, and its segments.
#[derive(Debug)]
struct Ref {
    inside: Vec<String>,
    segments: Vec<String>,
    line: usize,
}

#[derive(Debug, Default)]
struct Scan {
    /// Inline modules (`mod tests { ... }`), as paths relative to the file's module.
    inline_modules: Vec<Vec<String>>,
    /// `mod x;` declarations: (inline modules they sit in, name).
    file_modules: Vec<(Vec<String>, String)>,
    refs: Vec<Ref>,
}

fn scan(source: &str) -> Scan {
    let toks = tokenize(source);
    let mut out = Scan::default();
    // Inline modules open at a brace depth; they close when the depth returns to it.
    let mut inside: Vec<(String, usize)> = Vec::new();
    let mut depth = 0usize;
    let mut i = 0;
    while i < toks.len() {
        let (tok, line) = &toks[i];
        match tok {
            Tok::Open => depth += 1,
            Tok::Close => {
                depth = depth.saturating_sub(1);
                if inside.last().is_some_and(|(_, d)| *d == depth) {
                    inside.pop();
                }
            }
            Tok::Ident(kw) if kw == "mod" => {
                if let Some((Tok::Ident(name), _)) = toks.get(i + 1) {
                    let names: Vec<String> = inside.iter().map(|(n, _)| n.clone()).collect();
                    match toks.get(i + 2).map(|t| &t.0) {
                        Some(Tok::Semi) => out.file_modules.push((names, name.clone())),
                        Some(Tok::Open) => {
                            let mut path = names;
                            path.push(name.clone());
                            out.inline_modules.push(path);
                            inside.push((name.clone(), depth));
                            depth += 1;
                            i += 3;
                            continue;
                        }
                        _ => {}
                    }
                }
            }
            Tok::Ident(start)
                if matches!(start.as_str(), "crate" | "super" | "self")
                    && toks.get(i + 1).map(|t| &t.0) == Some(&Tok::Colons)
                    && !(i > 0 && toks[i - 1].0 == Tok::Colons) =>
            {
                let names: Vec<String> = inside.iter().map(|(n, _)| n.clone()).collect();
                let mut paths = Vec::new();
                let end = path_tree(&toks, i, Vec::new(), &mut paths);
                for segments in paths {
                    out.refs.push(Ref {
                        inside: names.clone(),
                        segments,
                        line: *line,
                    });
                }
                // Braces of a `use` group are consumed by `path_tree`, so depth stays right.
                i = end;
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    out
}

/// Parses a path (with `{a, b::c}` groups) starting at `toks[i]`; pushes every full path; returns
/// the index after it.
fn path_tree(
    toks: &[(Tok, usize)],
    mut i: usize,
    mut prefix: Vec<String>,
    out: &mut Vec<Vec<String>>,
) -> usize {
    loop {
        match toks.get(i).map(|t| &t.0) {
            Some(Tok::Ident(name)) => {
                if name == "self" && !prefix.is_empty() {
                    // `use a::{self, B}`: the prefix itself
                } else {
                    prefix.push(name.clone());
                }
                i += 1;
                if toks.get(i).map(|t| &t.0) == Some(&Tok::Colons) {
                    i += 1;
                    continue;
                }
                out.push(prefix);
                return i;
            }
            Some(Tok::Open) => {
                i += 1;
                loop {
                    match toks.get(i).map(|t| &t.0) {
                        Some(Tok::Close) => return i + 1,
                        Some(Tok::Comma) => i += 1,
                        None => return i,
                        Some(_) => i = path_tree(toks, i, prefix.clone(), out),
                    }
                }
            }
            Some(Tok::Star) => {
                out.push(prefix);
                return i + 1;
            }
            _ => {
                // `crate::a::<T>` or a dangling `::`: the path so far.
                out.push(prefix);
                return i;
            }
        }
    }
}

/// Tokens of Rust source with comments, strings and chars dropped (each token with its line).
fn tokenize(source: &str) -> Vec<(Tok, usize)> {
    let chars: Vec<char> = source.chars().collect();
    let mut toks = Vec::new();
    let mut line = 1;
    let mut i = 0;
    let at = |j: usize| chars.get(j).copied().unwrap_or('\0');
    while i < chars.len() {
        let c = chars[i];
        match c {
            '\n' => {
                line += 1;
                i += 1;
            }
            '/' if at(i + 1) == '/' => {
                while i < chars.len() && chars[i] != '\n' {
                    i += 1;
                }
            }
            '/' if at(i + 1) == '*' => {
                let mut nest = 0;
                while i < chars.len() {
                    if chars[i] == '/' && at(i + 1) == '*' {
                        nest += 1;
                        i += 2;
                    } else if chars[i] == '*' && at(i + 1) == '/' {
                        nest -= 1;
                        i += 2;
                        if nest == 0 {
                            break;
                        }
                    } else {
                        if chars[i] == '\n' {
                            line += 1;
                        }
                        i += 1;
                    }
                }
            }
            '"' => {
                i += 1;
                while i < chars.len() && chars[i] != '"' {
                    if chars[i] == '\\' {
                        i += 1;
                    }
                    if at(i) == '\n' {
                        line += 1;
                    }
                    i += 1;
                }
                i += 1;
            }
            '\'' => {
                // A char literal ('a', '\n', '\u{1F}') or a lifetime ('a).
                if at(i + 1) == '\\' {
                    i += 2;
                    while i < chars.len() && chars[i] != '\'' {
                        i += 1;
                    }
                    i += 1;
                } else if at(i + 2) == '\'' {
                    i += 3;
                } else {
                    i += 1;
                }
            }
            ':' if at(i + 1) == ':' => {
                toks.push((Tok::Colons, line));
                i += 2;
            }
            '{' => {
                toks.push((Tok::Open, line));
                i += 1;
            }
            '}' => {
                toks.push((Tok::Close, line));
                i += 1;
            }
            ',' => {
                toks.push((Tok::Comma, line));
                i += 1;
            }
            ';' => {
                toks.push((Tok::Semi, line));
                i += 1;
            }
            '*' => {
                toks.push((Tok::Star, line));
                i += 1;
            }
            c if c.is_alphabetic() || c == '_' => {
                let start = i;
                while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                    i += 1;
                }
                let word: String = chars[start..i].iter().collect();
                // Raw strings: r"..", r#".."#, br"..".
                if matches!(word.as_str(), "r" | "br") && matches!(at(i), '"' | '#') {
                    let mut hashes = 0;
                    while at(i) == '#' {
                        hashes += 1;
                        i += 1;
                    }
                    if at(i) == '"' {
                        i += 1;
                        loop {
                            if i >= chars.len() {
                                break;
                            }
                            if chars[i] == '"' && (1..=hashes).all(|k| at(i + k) == '#') {
                                i += 1 + hashes;
                                break;
                            }
                            if chars[i] == '\n' {
                                line += 1;
                            }
                            i += 1;
                        }
                    }
                    continue;
                }
                if word == "b" && at(i) == '\'' {
                    continue; // b'x': the quote is handled as a char literal
                }
                toks.push((Tok::Ident(word), line));
            }
            c if c.is_whitespace() => i += 1,
            _ => {
                toks.push((Tok::Other, line));
                i += 1;
            }
        }
    }
    toks
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn graph(files: &[(&str, &str)]) -> ModuleGraph {
        let files: HashMap<PathBuf, String> = files
            .iter()
            .map(|(p, s)| (PathBuf::from(p), s.to_string()))
            .collect();
        ModuleGraph::build(Path::new("lib.rs"), |p| files.get(p).cloned())
    }

    fn edges(g: &ModuleGraph) -> Vec<String> {
        g.edges
            .iter()
            .flat_map(|(f, to)| to.keys().map(move |t| format!("{f}->{t}")))
            .collect()
    }

    #[test]
    fn finds_a_two_module_circle() {
        let g = graph(&[
            ("lib.rs", "pub mod a;\npub mod b;\npub use a::A;"),
            ("a.rs", "use crate::b::B;\npub struct A;"),
            ("b.rs", "pub struct B;\nfn f() -> crate::a::A { todo!() }"),
        ]);
        assert_eq!(edges(&g), ["a->b", "b->a"]);
        assert_eq!(g.cycles(), vec![vec!["a".to_string(), "b".to_string()]]);
        let msg = std::panic::catch_unwind(|| g.assert_acyclic()).unwrap_err();
        let msg = msg.downcast_ref::<String>().unwrap();
        assert!(msg.contains("a -> b  (a.rs:1 `crate::b::B`)"), "{msg}");
        assert!(msg.contains("b -> a  (b.rs:2 `crate::a::A`)"), "{msg}");
    }

    #[test]
    fn one_direction_is_no_circle() {
        let g = graph(&[
            ("lib.rs", "mod a; mod b; mod c;"),
            ("a.rs", "use crate::{b::B, c::{self, C}};"),
            ("b.rs", "use crate::c::*;"),
            ("c.rs", "pub struct C;"),
        ]);
        assert_eq!(edges(&g), ["a->b", "a->c", "b->c"]);
        assert!(g.cycles().is_empty());
        g.assert_acyclic();
    }

    #[test]
    fn nested_files_super_and_three_module_circle() {
        let g = graph(&[
            ("lib.rs", "pub mod client;"),
            (
                "client/mod.rs",
                "mod config;\nmod kubeadm;\nmod select;\npub use config::X;",
            ),
            ("client/config.rs", "use super::kubeadm::{self, K};"),
            (
                "client/kubeadm.rs",
                "use super::select::S;\nuse super::Error;",
            ),
            (
                "client/select.rs",
                "fn f(x: super::super::client::config::X) {}",
            ),
        ]);
        assert_eq!(
            edges(&g),
            [
                "client::config->client::kubeadm",
                "client::kubeadm->client",
                "client::kubeadm->client::select",
                "client::select->client::config",
            ]
        );
        assert_eq!(g.cycles().len(), 1);
        assert_eq!(g.cycles()[0].len(), 3);
    }

    #[test]
    fn comments_strings_and_inline_test_modules_are_not_edges() {
        let g = graph(&[
            ("lib.rs", "mod a; mod b;"),
            (
                "a.rs",
                r####"
                //! Uses [`crate::b::B`] in docs only.
                /* crate::b::B */
                const S: &str = "crate::b::B";
                const R: &str = r#"crate::b::B"#;
                const C: char = '"';
                fn f<'a>(x: &'a str) -> &'a str { x }
                pub struct A;
                #[cfg(test)]
                mod tests {
                    use super::*;
                    #[test] fn t() { let _ = A; }
                }
                "####,
            ),
            ("b.rs", "pub struct B; fn g() { let _ = crate::a::A; }"),
        ]);
        assert_eq!(edges(&g), ["a::tests->a", "b->a"]);
        assert!(g.modules.contains("a::tests"));
    }

    #[test]
    fn file_modules_declared_in_a_file_module() {
        let g = graph(&[
            ("lib.rs", "mod wal;"),
            ("wal.rs", "mod pb;\nuse self::pb::Entry;"),
            ("wal/pb.rs", "pub struct Entry; use crate::wal::X;"),
        ]);
        assert_eq!(edges(&g), ["wal::pb->wal"]);
        assert!(g.cycles().is_empty());
    }
}
