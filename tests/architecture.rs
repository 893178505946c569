//! The layers of `src/`, checked from the source text (docs/ARCHITECTURE.md):
//!
//! ```text
//! wiring   startup, cli, main, lib
//! edge     web, error                (HTTP: routes, handlers, cookies, error mappings)
//! core     authn, session, policy, tokens, oauth, oidc, admin
//! state    state                     (the service container, caches, key ring)
//! storage  storage                   (entities, repositories returning parsed aggregates)
//! base     domain, crypto, clock, config, telemetry
//! ```
//!
//! The rules this test enforces — each fails the build of the suite when broken:
//!
//! 1. **No import runs up a layer**: a module names (`crate::x`) only modules of
//!    its own layer or below. Adding `use crate::web::…` to anything in `oauth/`
//!    fails `no_import_runs_up_a_layer`, naming the file and the import.
//! 2. **No loop between modules**: among the top-level modules, the "imports"
//!    relation has no cycle (so `oauth → admin → oauth` fails
//!    `no_two_modules_import_each_other_through_any_path`).
//! 3. **Below the edge, no HTTP**: no file under the core, state, storage or
//!    base layers mentions `actix_web`, `HttpRequest` or `HttpResponse`; core
//!    services take values (`Origin`, the session, parameters), never a request.
//! 4. **No source file over 600 lines.**
//!
//! `the_checker_reports_an_upward_import_and_a_loop` feeds the checker a
//! made-up tree with one upward import and one loop, so the rules above
//! cannot pass by checking nothing. `verify` (the library relying services
//! link) stands alone: it imports nothing from the server and is exempt from
//! rule 3 (it is an actix extractor by design).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// The layer of each top-level module (higher = nearer the outside).
fn layer(module: &str) -> Option<u8> {
    Some(match module {
        "domain" | "crypto" | "clock" | "config" | "telemetry" | "mail" => 0,
        "storage" => 1,
        "state" => 2,
        "authn" | "session" | "policy" | "tokens" | "oauth" | "oidc" | "admin" | "lifecycle" | "federation"
        | "audit" | "provision" => 3,
        "web" | "error" => 4,
        "startup" | "cli" | "main" | "lib" => 5,
        "verify" => 0,
        _ => return None,
    })
}

const LAYER_NAMES: [&str; 6] = ["base", "storage", "state", "core", "edge", "wiring"];

/// One source file: its path (relative to `src/`) and text.
struct File {
    path: String,
    text: String,
}

fn top_module(path: &str) -> String {
    let first = path.split('/').next().unwrap_or(path);
    first.trim_end_matches(".rs").to_owned()
}

/// The top-level modules a file names through `crate::` (also inside
/// `use crate::{a, b::c}` groups), with the line each is first seen on.
fn imports(text: &str) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for (n, line) in text.lines().enumerate() {
        let code = line.split("//").next().unwrap_or_default();
        let mut rest = code;
        while let Some(i) = rest.find("crate::") {
            rest = &rest[i + "crate::".len()..];
            if let Some(group) = rest.strip_prefix('{') {
                let end = group.find('}').unwrap_or(group.len());
                for item in group[..end].split(',') {
                    let name: String = item.trim().chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
                    if !name.is_empty() {
                        out.entry(name).or_insert(n + 1);
                    }
                }
            } else {
                let name: String = rest.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
                if !name.is_empty() {
                    out.entry(name).or_insert(n + 1);
                }
            }
        }
    }
    out
}

/// Imports that run up a layer: `(file:line, from, to)`.
fn upward(files: &[File]) -> Vec<String> {
    let mut bad = Vec::new();
    for f in files {
        let from = top_module(&f.path);
        let Some(lf) = layer(&from) else {
            bad.push(format!("{}: module {from:?} has no layer (add it to tests/architecture.rs)", f.path));
            continue;
        };
        for (to, line) in imports(&f.text) {
            if to == from {
                continue;
            }
            let Some(lt) = layer(&to) else { continue };
            // `verify` imports nothing from the server.
            if lt > lf || from == "verify" {
                bad.push(format!(
                    "{}:{line}: {from} ({}) imports crate::{to} ({})",
                    f.path, LAYER_NAMES[lf as usize], LAYER_NAMES[lt as usize]
                ));
            }
        }
    }
    bad
}

/// A cycle among top-level modules, if there is one (as `a -> b -> a`).
fn cycle(files: &[File]) -> Option<String> {
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for f in files {
        let from = top_module(&f.path);
        let entry = graph.entry(from.clone()).or_default();
        for to in imports(&f.text).into_keys() {
            if to != from {
                entry.insert(to);
            }
        }
    }
    fn visit(
        n: &str,
        g: &BTreeMap<String, BTreeSet<String>>,
        state: &mut BTreeMap<String, u8>,
        path: &mut Vec<String>,
    ) -> Option<String> {
        match state.get(n) {
            Some(2) => return None,
            Some(1) => {
                let start = path.iter().position(|p| p == n).unwrap_or(0);
                let mut c = path[start..].to_vec();
                c.push(n.to_owned());
                return Some(c.join(" -> "));
            }
            _ => {}
        }
        state.insert(n.to_owned(), 1);
        path.push(n.to_owned());
        for m in g.get(n).into_iter().flatten() {
            if let Some(c) = visit(m, g, state, path) {
                return Some(c);
            }
        }
        path.pop();
        state.insert(n.to_owned(), 2);
        None
    }
    let mut state = BTreeMap::new();
    let names: Vec<String> = graph.keys().cloned().collect();
    names.iter().find_map(|n| visit(n, &graph, &mut state, &mut Vec::new()))
}

fn read_tree(dir: &Path, base: &Path, out: &mut Vec<File>) {
    for entry in std::fs::read_dir(dir).expect("read src/") {
        let p = entry.expect("entry").path();
        if p.is_dir() {
            read_tree(&p, base, out);
        } else if p.extension().is_some_and(|e| e == "rs") {
            let path = p.strip_prefix(base).expect("under src/").to_string_lossy().replace('\\', "/");
            out.push(File { path, text: std::fs::read_to_string(&p).expect("read a source file") });
        }
    }
}

fn source() -> Vec<File> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    read_tree(&src, &src, &mut files);
    assert!(files.len() > 50, "the whole source tree was read");
    files
}

#[test]
fn no_import_runs_up_a_layer() {
    let bad = upward(&source());
    assert!(bad.is_empty(), "imports that run up a layer:\n{}", bad.join("\n"));
}

#[test]
fn no_two_modules_import_each_other_through_any_path() {
    if let Some(c) = cycle(&source()) {
        panic!("an import loop between modules: {c}");
    }
}

#[test]
fn nothing_below_the_edge_sees_http() {
    let bad: Vec<String> = source()
        .into_iter()
        .filter(|f| {
            let m = top_module(&f.path);
            m != "verify" && layer(&m).is_some_and(|l| l <= 3)
        })
        .filter(|f| ["actix_web", "HttpRequest", "HttpResponse"].iter().any(|w| f.text.contains(w)))
        .map(|f| f.path)
        .collect();
    assert!(bad.is_empty(), "HTTP types below the edge: {bad:?}");
}

/// Every write transaction starts with `storage::begin_write` (an IMMEDIATE
/// transaction on SQLite, so two writers wait for each other instead of one
/// failing on the lock upgrade); only that function opens one itself.
#[test]
fn every_write_transaction_starts_with_begin_write() {
    let bad: Vec<String> = source()
        .into_iter()
        .filter(|f| f.path != "storage/mod.rs")
        .filter(|f| {
            ["TransactionTrait::begin(", ".begin().await", "begin_with_options("].iter().any(|w| f.text.contains(w))
        })
        .map(|f| f.path)
        .collect();
    assert!(bad.is_empty(), "open write transactions with storage::begin_write: {bad:?}");
}

/// A change and its audit record commit together through
/// `storage::commit_audited` (the record is the last statement of the
/// transaction and the commit cannot leave it out). `record_audit` on a
/// transaction is left to the declarative-file reconcilers, which record one
/// event per item inside the transaction `apply` commits.
#[test]
fn audited_changes_commit_through_commit_audited() {
    const RECONCILERS: [&str; 3] = ["admin/clients/declared.rs", "admin/roles.rs", "provision/users.rs"];
    let bad: Vec<String> = source()
        .into_iter()
        .filter(|f| !f.path.starts_with("storage/") && !RECONCILERS.contains(&f.path.as_str()))
        .filter(|f| {
            let flat: String = f.text.split_whitespace().collect::<Vec<_>>().join(" ");
            ["record_audit(&txn", "record_audit(txn", "record_audit( &txn", "record_audit( txn"]
                .iter()
                .any(|w| flat.contains(w))
        })
        .map(|f| f.path)
        .collect();
    assert!(bad.is_empty(), "commit the change and its record with storage::commit_audited: {bad:?}");
}

#[test]
fn no_source_file_is_over_600_lines() {
    let long: Vec<String> = source()
        .into_iter()
        .filter(|f| f.text.lines().count() > 600)
        .map(|f| format!("{} ({} lines)", f.path, f.text.lines().count()))
        .collect();
    assert!(long.is_empty(), "split these along their seams: {long:?}");
}

#[test]
fn the_checker_reports_an_upward_import_and_a_loop() {
    let tree = vec![
        File { path: "oauth/authorize.rs".into(), text: "use crate::web::login::see_other;\n".into() },
        File { path: "web/login.rs".into(), text: "use crate::{oauth, session};\n".into() },
        File { path: "admin/mod.rs".into(), text: "use crate::oidc::x;\n".into() },
        File { path: "oidc/mod.rs".into(), text: "fn f() { crate::admin::y(); }\n".into() },
    ];
    let up = upward(&tree);
    assert_eq!(up, vec!["oauth/authorize.rs:1: oauth (core) imports crate::web (edge)".to_owned()]);
    let c = cycle(&tree).expect("a loop is found");
    assert!(c.contains("admin") && c.contains("oidc"), "{c}");
    // The group form is read too.
    assert_eq!(imports("use crate::{oauth, session::Current};").into_keys().collect::<Vec<_>>(), ["oauth", "session"]);
}
