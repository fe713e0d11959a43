//! B8: what the widget ships: the gzipped size of each file of `dist/`
//! and their total (only for a release build).

use crate::report::{Report, Row};
use std::path::{Path, PathBuf};

/// B8: gzipped sizes of what the widget ships.
pub fn run(root: &Path, report: &mut Report) {
    let dist = root.join("dist");
    let Ok(entries) = std::fs::read_dir(&dist) else {
        report
            .notes
            .push("B8: no dist/ — run `cargo xtask dist`".into());
        return;
    };
    let mut files: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.extension()
                .is_some_and(|e| e == "wasm" || e == "js" || e == "css")
        })
        .collect();
    files.sort();
    // A debug build (`trunk build`, as the tests make) keeps DWARF sections
    // and is several times the size of what ships.
    let debug = files.iter().any(|p| {
        p.extension().is_some_and(|e| e == "wasm")
            && std::fs::read(p).is_ok_and(|bytes| {
                bytes
                    .windows(b".debug_info".len())
                    .any(|w| w == b".debug_info")
            })
    });
    if debug {
        report.notes.push(
            "B8: dist/ holds a debug build (`trunk build`); run `cargo xtask dist` for the sizes that ship"
                .into(),
        );
        return;
    }
    let mut total = 0usize;
    for path in files {
        let raw = std::fs::metadata(&path).map_or(0, |m| m.len());
        let gz = std::process::Command::new("gzip")
            .args(["-9", "-c"])
            .arg(&path)
            .output()
            .map_or(0, |o| o.stdout.len());
        total += gz;
        let name = path
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .to_string();
        let mut row = Row::new("B8", format!("{name} ({raw} B raw): KiB gzip -9"), "—");
        row.natter = gz as f64 / 1024.0;
        report.rows.push(row);
    }
    let mut row = Row::new("B8", "widget total: KiB gzip -9", "—");
    row.natter = total as f64 / 1024.0;
    report.rows.push(row);
}
