// SPDX-License-Identifier: MPL-2.0
//! The layering of the source, read from the `use` lines and paths of every
//! file: the engine's modules form layers (error/limits, then geometry,
//! planner, scheduler, pixels, compose, scene, then runtime/manifest, model, window,
//! clip, stream) and no reference points up; no two sibling modules of the
//! engine or of the element refer to each other (directly or around a cycle);
//! the engine names no GStreamer type; the element's task and generator do not
//! reach into `imp.rs`. A module's own submodules (`window/context.rs`) count
//! as the module. The parent `mod.rs` declaring its children and the children
//! using what the parent defines (the debug category, the property enums) is
//! the shape of every Rust module and is not an edge here.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

const ENGINE_LAYERS: &[&[&str]] = &[
    &["error", "limits", "cancel", "model_dirs"],
    &[
        "geometry",
        "planner",
        "scheduler",
        "pixels",
        "compose",
        "scene",
    ],
    &["runtime", "manifest"],
    &["model"],
    &["window"],
    &["clip"],
    &["stream", "stream_stats"],
    &["twopass", "calibration"],
];

fn source_dir(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src").join(name)
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The top-level module a file belongs to (`window/context.rs` → `window`),
/// and whether `super::` in it names a sibling of that module.
fn module_of(root: &Path, file: &Path) -> (String, bool) {
    let relative = file.strip_prefix(root).unwrap();
    let mut parts = relative.iter().map(|p| p.to_string_lossy().into_owned());
    let first = parts.next().unwrap();
    let nested = relative.components().count() > 1;
    let name = first.trim_end_matches(".rs").to_owned();
    // `x/mod.rs` is module x itself: its `super::` is the layer.
    let super_is_layer = !nested || relative.ends_with("mod.rs");
    (name, super_is_layer)
}

/// The first path segments named after each occurrence of `prefix`:
/// `prefix::name` or `prefix::{a, b::c}`.
fn names_after(code: &str, prefix: &str) -> Vec<String> {
    let mut out = Vec::new();
    for (at, _) in code.match_indices(prefix) {
        let before = code[..at].chars().next_back();
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':') {
            continue;
        }
        let rest = &code[at + prefix.len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let mut depth = 0;
            let mut item = String::new();
            let mut items = Vec::new();
            for c in group.chars() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => items.push(std::mem::take(&mut item)),
                    _ => item.push(c),
                }
            }
            items.push(item);
            for item in items {
                let head: String = item
                    .trim()
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                if !head.is_empty() {
                    out.push(head);
                }
            }
        } else {
            let head: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            if !head.is_empty() {
                out.push(head);
            }
        }
    }
    out
}

/// The code of a file without its comments and its `#[cfg(test)]` module.
fn code_of(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap();
    let text = match text.find("#[cfg(test)]\nmod tests {") {
        Some(at) => &text[..at],
        None => &text,
    };
    text.lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Edges between the sibling modules of `layer` (`engine` or `m3ddmoutpaint`).
fn edges(layer: &str) -> BTreeMap<String, BTreeSet<String>> {
    let root = source_dir(layer);
    let mut files = Vec::new();
    rust_files(&root, &mut files);
    let siblings: BTreeSet<String> = files
        .iter()
        .map(|f| module_of(&root, f).0)
        .filter(|m| m != "mod")
        .collect();
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in &files {
        // Test files (`tests.rs`, `stride_tests.rs`) and the test helpers.
        let name = file.file_name().unwrap().to_string_lossy();
        if name.ends_with("tests.rs") || name == "test_support.rs" {
            continue;
        }
        let (module, super_is_layer) = module_of(&root, file);
        if module == "mod" {
            continue;
        }
        let code = code_of(file);
        let mut targets = names_after(&code, &format!("crate::{layer}::"));
        if super_is_layer {
            targets.extend(names_after(&code, "super::"));
        } else {
            targets.extend(names_after(&code, "super::super::"));
        }
        for target in targets {
            if target != module && siblings.contains(&target) {
                graph.entry(module.clone()).or_default().insert(target);
            }
        }
    }
    graph
}

/// A cycle of the graph, if any (depth-first search).
fn find_cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|n| n == node) {
            let mut cycle = path[at..].to_vec();
            cycle.push(node.to_owned());
            return Some(cycle);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_owned());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(cycle) = visit(next, graph, path, done) {
                return Some(cycle);
            }
        }
        path.pop();
        done.insert(node.to_owned());
        None
    }
    let mut done = BTreeSet::new();
    for node in graph.keys() {
        if let Some(cycle) = visit(node, graph, &mut Vec::new(), &mut done) {
            return Some(cycle);
        }
    }
    None
}

fn rank(module: &str) -> usize {
    ENGINE_LAYERS
        .iter()
        .position(|layer| layer.contains(&module))
        .unwrap_or_else(|| panic!("engine module `{module}` is in no layer of this test"))
}

#[test]
fn engine_references_point_down_the_layers() {
    let graph = edges("engine");
    assert!(
        graph.contains_key("stream") && graph.contains_key("model"),
        "{graph:?}"
    );
    for (from, targets) in &graph {
        for to in targets {
            assert!(
                rank(to) <= rank(from),
                "engine::{from} uses engine::{to}, a higher layer"
            );
        }
    }
    assert_eq!(find_cycle(&graph), None);
}

#[test]
fn element_modules_form_no_cycle() {
    let graph = edges("m3ddmoutpaint");
    assert!(graph.contains_key("imp"), "{graph:?}");
    assert_eq!(find_cycle(&graph), None, "{graph:?}");
    for worker in ["task", "generator", "state"] {
        assert!(
            !graph.get(worker).is_some_and(|t| t.contains("imp")),
            "{worker} reaches into imp: {graph:?}"
        );
    }
}

#[test]
fn the_engine_names_no_gstreamer_type() {
    let mut files = Vec::new();
    rust_files(&source_dir("engine"), &mut files);
    for file in files {
        let code = code_of(&file);
        for word in ["gst::", "glib::", "gst_video::", "gstreamer"] {
            assert!(!code.contains(word), "{} names {word}", file.display());
        }
    }
}

#[test]
fn the_reader_finds_grouped_and_plain_paths() {
    let code = "use super::{clip::{self, X}, error::Result};\nuse super::model::Model;\nlet a = crate::engine::stream::S;";
    assert_eq!(names_after(code, "super::"), ["clip", "error", "model"]);
    assert_eq!(names_after(code, "crate::engine::"), ["stream"]);
    let mut graph = BTreeMap::new();
    graph.insert("a".to_owned(), BTreeSet::from(["b".to_owned()]));
    graph.insert("b".to_owned(), BTreeSet::from(["a".to_owned()]));
    assert!(find_cycle(&graph).is_some());
}
