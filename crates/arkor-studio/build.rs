//! Builds the web UI (`studio/`, Vite) and embeds its files into the crate, so `arkor dev`
//! serves Studio from the one binary.
//!
//! Needs Node.js 20+ and npm. `ARKOR_STUDIO_SKIP_UI=1` builds without the UI (Studio then
//! serves a page saying so); `ARKOR_STUDIO_ASSETS=<dir>` at run time serves another build.

// A build script is its own config module: it reads what cargo sets.
#![allow(clippy::disallowed_methods)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::{env, fs};

fn main() {
    let manifest = PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let ui = manifest.join("../../studio");
    let out = PathBuf::from(env::var("OUT_DIR").expect("set by cargo"));
    let dist = out.join("studio-dist");
    println!("cargo::rerun-if-env-changed=ARKOR_STUDIO_SKIP_UI");
    for p in ["src", "index.html", "package.json", "package-lock.json", "vite.config.ts"] {
        println!("cargo::rerun-if-changed={}", ui.join(p).display());
    }

    let skip = env::var("ARKOR_STUDIO_SKIP_UI").is_ok_and(|v| !v.is_empty() && v != "0");
    let files = if skip || !ui.join("package.json").is_file() {
        println!(
            "cargo::warning=building arkor-studio without its web UI (ARKOR_STUDIO_SKIP_UI or no studio/ folder)"
        );
        Vec::new()
    } else {
        build_ui(&ui, &dist);
        let mut files = Vec::new();
        walk(&dist, &dist, &mut files);
        files.sort();
        files
    };

    let mut code = String::from(
        "/// The built web UI: (path relative to its root, bytes).\npub static ASSETS: &[(&str, &[u8])] = &[\n",
    );
    for rel in &files {
        let abs = dist.join(rel);
        code += &format!("    ({rel:?}, include_bytes!({:?})),\n", abs.display().to_string());
    }
    code += "];\n";
    fs::write(out.join("assets.rs"), code).expect("write assets.rs");
}

fn build_ui(ui: &Path, dist: &Path) {
    let npm = if cfg!(windows) { "npm.cmd" } else { "npm" };
    if Command::new("node").arg("--version").output().is_err() {
        fail(
            "Node.js was not found on PATH. Studio's web UI is built with Node.js 20+ and npm: install them, or set ARKOR_STUDIO_SKIP_UI=1 to build arkor without the web UI.",
        );
    }
    if !ui.join("node_modules/vite/package.json").is_file() {
        let status = Command::new(npm)
            .args(["ci", "--no-audit", "--no-fund"])
            .env("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1")
            .current_dir(ui)
            .status()
            .unwrap_or_else(|e| fail(&format!("failed to run `npm ci` in {}: {e}. Install npm, or set ARKOR_STUDIO_SKIP_UI=1.", ui.display())));
        if !status.success() {
            fail(&format!(
                "`npm ci` failed in {} ({status}); run it there by hand to see why.",
                ui.display()
            ));
        }
    }
    let status = Command::new("node")
        .args(["node_modules/vite/bin/vite.js", "build", "--logLevel", "warn", "--outDir"])
        .arg(dist)
        .current_dir(ui)
        .status()
        .unwrap_or_else(|e| fail(&format!("failed to run vite in {}: {e}", ui.display())));
    if !status.success() {
        fail(&format!(
            "building Studio's web UI failed ({status}): run `npm run build` in {} to see the errors.",
            ui.display()
        ));
    }
}

fn walk(root: &Path, dir: &Path, files: &mut Vec<String>) {
    for entry in fs::read_dir(dir).expect("read the built UI") {
        let path = entry.expect("read the built UI").path();
        if path.is_dir() {
            walk(root, &path, files);
        } else {
            let rel = path.strip_prefix(root).expect("inside root");
            files.push(rel.to_string_lossy().replace('\\', "/"));
        }
    }
}

fn fail(msg: &str) -> ! {
    eprintln!("error: {msg}");
    panic!("{msg}");
}
