//! The README's Rust code is real: every line of each ```rust block
//! appears, in order, in one of the examples (which `cargo test` builds),
//! and the facade example runs.

use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

/// The ```rust blocks of `markdown`, each as its trimmed, non-empty lines.
fn rust_blocks(markdown: &str) -> Vec<Vec<String>> {
    let mut blocks = Vec::new();
    let mut current: Option<Vec<String>> = None;
    for line in markdown.lines() {
        let fence = line.trim_start();
        match current.take() {
            None if fence.starts_with("```rust") => current = Some(Vec::new()),
            None => {}
            Some(block) if fence.starts_with("```") => blocks.push(block),
            Some(mut block) => {
                if !line.trim().is_empty() {
                    block.push(line.trim().to_string());
                }
                current = Some(block);
            }
        }
    }
    blocks
}

/// Whether `block`'s lines appear in `source`'s trimmed lines in order.
fn appears_in(block: &[String], source: &str) -> bool {
    let mut wanted = block.iter().peekable();
    for line in source.lines().map(str::trim) {
        if wanted.peek().is_some_and(|w| *w == line) {
            wanted.next();
        }
    }
    wanted.peek().is_none()
}

#[test]
fn every_readme_rust_block_is_in_an_example() {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let examples: Vec<(PathBuf, String)> = std::fs::read_dir(root().join("examples/examples"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "rs"))
        .map(|p| {
            let text = std::fs::read_to_string(&p).unwrap();
            (p, text)
        })
        .collect();
    let blocks = rust_blocks(&readme);
    assert!(blocks.len() >= 3, "the README shows its API in Rust blocks");
    for block in blocks {
        assert!(
            examples.iter().any(|(_, text)| appears_in(&block, text)),
            "this README block is in no example under examples/examples:\n{}",
            block.join("\n")
        );
    }
}

#[test]
fn the_check_notices_a_line_that_is_not_there() {
    let source = "fn main() {\n    let a = 1;\n    let b = 2;\n}\n";
    let ok = ["let a = 1;".to_string(), "let b = 2;".to_string()];
    let reordered = ["let b = 2;".to_string(), "let a = 1;".to_string()];
    let missing = ["let c = 3;".to_string()];
    assert!(appears_in(&ok, source));
    assert!(!appears_in(&reordered, source));
    assert!(!appears_in(&missing, source));
    assert_eq!(
        rust_blocks("x\n```rust\na\n\nb\n```\n```sh\nc\n```\n"),
        vec![vec!["a".to_string(), "b".to_string()]]
    );
}

#[test]
fn the_facade_example_runs_a_node_with_a_custom_child() {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    // A port pair of its own on a loopback address no other test uses.
    let ip = format!("127.{}.0.77", 200 + std::process::id() % 50);
    let port = std::net::TcpListener::bind((ip.as_str(), 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let out = Command::new(cargo)
        .args([
            "run",
            "--quiet",
            "-p",
            "drove-examples",
            "--example",
            "custom_child",
        ])
        .env("DROVE_LISTEN", format!("{ip}:{port}"))
        .env(
            "DROVE_HTTP",
            format!("{ip}:{}", port.wrapping_add(1).max(1024)),
        )
        .env("RUST_LOG", "warn")
        .current_dir(root())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("counter = 42"),
        "status {:?}\nstdout: {stdout}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}
