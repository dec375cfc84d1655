//! Imports go only downwards: every module of `src/` imports from its own
//! floor or below, as README's Development section and `src/lib.rs` map
//! them. A new module must be given its floor here.

use std::path::Path;

/// The floors, bottom first.
const FLOORS: &[&[&str]] = &[
    &[
        "sys",
        "limits",
        "time",
        "wire",
        "negotiation",
        "device",
        "buf",
        "counters",
        "close",
        "filter",
        "busstate",
        "pace",
        "coalesce",
        "peer",
        "notices",
        "framelog",
    ],
    &["protocol", "session", "socketcand"],
    &["can", "net", "link"],
    &["daemon", "cli", "error", "main", "lib"],
];

fn floor(module: &str) -> usize {
    FLOORS
        .iter()
        .position(|f| f.contains(&module))
        .unwrap_or_else(|| panic!("module {module} has no floor in tests/floors.rs"))
}

/// The crate modules a file names in its code (comments and tests left out).
fn imports(text: &str) -> Vec<String> {
    let code = text.split("#[cfg(test)]").next().unwrap_or("");
    let mut found = Vec::new();
    for line in code.lines().filter(|l| !l.trim_start().starts_with("//")) {
        for (i, _) in line.match_indices("crate::") {
            let name: String = line[i + 7..]
                .chars()
                .take_while(|c| c.is_ascii_lowercase() || *c == '_')
                .collect();
            // `crate::VERSION` and the like: the crate root's constants.
            if !name.is_empty() {
                found.push(name);
            }
        }
    }
    found
}

fn visit(dir: &Path, seen: &mut Vec<(String, String)>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            visit(&path, seen);
        } else if path.extension().is_some_and(|e| e == "rs") {
            let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
            let rel = path.strip_prefix(&src).unwrap();
            let top = rel.iter().next().unwrap().to_string_lossy();
            let module = top.trim_end_matches(".rs").to_string();
            for dep in imports(&std::fs::read_to_string(&path).unwrap()) {
                seen.push((format!("{} ({module})", rel.display()), dep));
            }
        }
    }
}

#[test]
fn every_import_goes_to_the_same_floor_or_below() {
    let mut seen = Vec::new();
    visit(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
        &mut seen,
    );
    assert!(seen.len() > 50, "too few imports found: the scan is broken");
    let upwards: Vec<_> = seen
        .iter()
        .filter(|(file, dep)| {
            let module = file.rsplit_once('(').unwrap().1.trim_end_matches(')');
            floor(dep) > floor(module)
        })
        .collect();
    assert!(
        upwards.is_empty(),
        "imports from a higher floor: {upwards:?}"
    );
}
