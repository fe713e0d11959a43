//! The widget's app shell: which files make one build of the widget, the
//! build's version, the service worker that keeps them in the browser, and
//! how long browsers may keep each file.
//!
//! trunk names the files of a build by their content's hash
//! (`natter-client-4f1c…_bg.wasm`), so those are immutable; the page
//! (`index.html`), the loader (`widget.js`) and the service worker are
//! not. The version is a hash of every file of the build, computed again
//! whenever `index.html` changes on disk (a new build deployed).

use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::SystemTime;

/// The service worker's source; `{{…}}` are filled per build.
const TEMPLATE: &str = include_str!("sw.js");

/// Where the widget is served: the service worker's scope.
const PREFIX: &str = "/widget/";

/// Files of the widget directory that are not part of the app shell: the
/// host page's loader and the service worker itself.
const NOT_SHELL: [&str; 2] = ["widget.js", "sw.js"];

/// One build of the widget, as found on disk.
#[derive(Debug)]
pub struct Build {
    /// `index.html`'s modification time and length when this was read.
    stamp: Option<(SystemTime, u64)>,
    /// The build's version, or `None` when there is no built widget.
    pub version: Option<String>,
    /// The service worker for this build.
    pub script: Option<String>,
    /// `'sha256-…'` of each inline script of `index.html` (trunk's
    /// bootstrap), for the page's `script-src`.
    pub inline_scripts: Vec<String>,
}

/// The current build of the widget in one directory.
pub struct Shell {
    dir: PathBuf,
    patience_ms: u64,
    current: RwLock<Arc<Build>>,
}

impl Shell {
    /// Reads the build in `dir`; `patience_ms` is how long the service
    /// worker waits for the server before it answers from its cache.
    pub fn new(dir: PathBuf, patience_ms: u64) -> Shell {
        let build = scan(&dir, patience_ms);
        if build.version.is_none() {
            tracing::warn!(dir = %dir.display(), "no widget build (index.html) here");
        }
        Shell {
            dir,
            patience_ms,
            current: RwLock::new(Arc::new(build)),
        }
    }

    /// The build on disk now: read again if `index.html` changed.
    pub async fn build(self: &Arc<Self>) -> Arc<Build> {
        let stamp = stamp(&self.dir.join("index.html")).await;
        let known = self.current.read().ok().map(|b| Arc::clone(&b));
        match known {
            Some(build) if build.stamp == stamp => build,
            _ => {
                let shell = self.clone();
                let fresh = tokio::task::spawn_blocking(move || {
                    Arc::new(scan(&shell.dir, shell.patience_ms))
                })
                .await
                .unwrap_or_else(|err| {
                    tracing::error!(error = %err, "reading the widget build failed");
                    Arc::new(Build::none())
                });
                if let Ok(mut current) = self.current.write() {
                    *current = fresh.clone();
                }
                tracing::info!(version = ?fresh.version, "widget build");
                fresh
            }
        }
    }
}

impl Build {
    fn none() -> Build {
        Build {
            stamp: None,
            version: None,
            script: None,
            inline_scripts: Vec::new(),
        }
    }
}

async fn stamp(index: &Path) -> Option<(SystemTime, u64)> {
    let meta = tokio::fs::metadata(index).await.ok()?;
    Some((meta.modified().ok()?, meta.len()))
}

/// Reads every file of the build; nothing but `index.html` is required.
fn scan(dir: &Path, patience_ms: u64) -> Build {
    let index = dir.join("index.html");
    let Ok(meta) = std::fs::metadata(&index) else {
        return Build::none();
    };
    let stamp = meta.modified().ok().map(|m| (m, meta.len()));
    let mut files = Vec::new();
    collect(dir, "", &mut files);
    files.sort();
    let inline_scripts = std::fs::read_to_string(&index)
        .map(|page| inline_script_hashes(&page))
        .unwrap_or_default();
    let mut hash = Sha256::new();
    let mut urls = Vec::new();
    for path in &files {
        let Ok(bytes) = std::fs::read(dir.join(path)) else {
            continue;
        };
        hash.update(path.as_bytes());
        hash.update((bytes.len() as u64).to_le_bytes());
        hash.update(&bytes);
        if path != "index.html" {
            urls.push(format!("{PREFIX}{path}"));
        }
    }
    let digest = hash.finalize();
    let version: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
    let files_json = serde_json::to_string(&urls).unwrap_or_else(|_| "[]".into());
    let script = TEMPLATE
        .replace("{{VERSION}}", &version)
        .replace("{{FILES}}", &files_json)
        .replace("{{PATIENCE_MS}}", &patience_ms.to_string());
    Build {
        stamp,
        version: Some(version),
        script: Some(script),
        inline_scripts,
    }
}

/// The CSP source (`'sha256-BASE64'`) of each inline `<script>` of a page.
fn inline_script_hashes(page: &str) -> Vec<String> {
    use base64::Engine;
    let mut hashes = Vec::new();
    let mut rest = page;
    while let Some(start) = rest.find("<script") {
        rest = &rest[start..];
        let Some(open_end) = rest.find('>') else {
            break;
        };
        let open = &rest[..open_end];
        let body_and_more = &rest[open_end + 1..];
        let Some(close) = body_and_more.find("</script") else {
            break;
        };
        if !open.contains(" src=") {
            let digest = Sha256::digest(&body_and_more.as_bytes()[..close]);
            let b64 = base64::engine::general_purpose::STANDARD.encode(digest);
            hashes.push(format!("'sha256-{b64}'"));
        }
        rest = &body_and_more[close..];
    }
    hashes
}

/// Relative paths (with `/`) of the shell's files under `dir`.
fn collect(dir: &Path, prefix: &str, out: &mut Vec<String>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if name.starts_with('.') || (prefix.is_empty() && NOT_SHELL.contains(&name)) {
            continue;
        }
        let path = format!("{prefix}{name}");
        match entry.file_type() {
            Ok(t) if t.is_dir() => collect(&entry.path(), &format!("{path}/"), out),
            Ok(t) if t.is_file() => out.push(path),
            _ => {}
        }
    }
}

/// `Cache-Control` for a file of the widget directory, by its path under
/// `/widget/`: files named by their hash are kept for a year, the rest are
/// asked for again each time (cheaply, with their validators).
pub fn cache_control(path: &str) -> &'static str {
    if path.split('/').any(is_hashed) {
        "public, max-age=31536000, immutable"
    } else {
        "no-cache"
    }
}

/// Whether a file or directory name carries trunk's content hash: a stem
/// ending in `-` and 16 hex digits, with wasm-bindgen's `_bg` after it.
fn is_hashed(name: &str) -> bool {
    let stem = name.split_once('.').map_or(name, |(stem, _)| stem);
    let stem = stem.strip_suffix("_bg").unwrap_or(stem);
    match stem.rsplit_once('-') {
        Some((base, hash)) => {
            !base.is_empty() && hash.len() == 16 && hash.bytes().all(|b| b.is_ascii_hexdigit())
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_files_named_by_their_hash_are_immutable() {
        let year = "public, max-age=31536000, immutable";
        assert_eq!(
            cache_control("natter-client-0123456789abcdef_bg.wasm"),
            year
        );
        assert_eq!(cache_control("natter-client-0123456789abcdef.js"), year);
        assert_eq!(cache_control("style-fedcba9876543210.css"), year);
        assert_eq!(
            cache_control("snippets/natter-client-0123456789abcdef/inline0.js"),
            year
        );
        assert_eq!(cache_control(""), "no-cache");
        assert_eq!(cache_control("index.html"), "no-cache");
        assert_eq!(cache_control("style.css"), "no-cache");
        assert_eq!(cache_control("a-b.css"), "no-cache");
        assert_eq!(cache_control("-0123456789abcdef.js"), "no-cache");
        assert_eq!(cache_control("x-0123456789abcdeg.js"), "no-cache");
    }

    #[test]
    fn inline_scripts_are_hashed_and_external_ones_are_not() {
        let page = "<script type=\"module\">\nboot()\n</script><script src=\"/a.js\"></script>";
        // printf '\nboot()\n' | openssl dgst -sha256 -binary | base64
        assert_eq!(
            inline_script_hashes(page),
            ["'sha256-MsQIqUyF3n5qKLwoypQIm/cf3oaOStVZMVqfUcsezpU='"]
        );
        assert!(inline_script_hashes("<p>no scripts</p>").is_empty());
    }

    #[test]
    fn a_build_is_every_file_but_the_loader_and_a_change_is_a_new_version() {
        let dir = std::env::temp_dir().join(format!("natter-shell-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("snippets/x-0123456789abcdef")).expect("dir");
        std::fs::write(dir.join("index.html"), "<!doctype html>").expect("write");
        std::fs::write(dir.join("widget.js"), "/* loader */").expect("write");
        std::fs::write(dir.join("app-0123456789abcdef.js"), "1").expect("write");
        std::fs::write(dir.join("snippets/x-0123456789abcdef/inline0.js"), "2").expect("write");
        let first = scan(&dir, 4000);
        let script = first.script.clone().expect("a service worker");
        assert!(script.contains(
            r#"const FILES = ["/widget/app-0123456789abcdef.js","/widget/snippets/x-0123456789abcdef/inline0.js"];"#
        ));
        assert!(script.contains("const PATIENCE_MS = 4000;"));
        assert!(!script.contains("{{"), "every placeholder is filled");
        let version = first.version.clone().expect("a version");
        assert!(script.contains(&format!(r#"const VERSION = "{version}";"#)));

        // The loader is not part of the build.
        std::fs::write(dir.join("widget.js"), "/* another loader */").expect("write");
        assert_eq!(scan(&dir, 4000).version, Some(version.clone()));
        // Any file of the build is.
        std::fs::write(dir.join("index.html"), "<!doctype html><p>new").expect("write");
        assert_ne!(scan(&dir, 4000).version, Some(version));
        std::fs::remove_dir_all(&dir).ok();

        assert!(
            scan(&dir, 4000).version.is_none(),
            "no index.html, no build"
        );
    }
}
