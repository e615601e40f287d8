//! Builds a component of this workspace exactly as `spin build` does
//! (release, wasm32-wasip2), for the tests and benchmarks that run it.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Result, bail};

fn workspace_root() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
}

/// Builds `package` and returns its `.wasm`. The build has its own target
/// directory, so it never waits on the `cargo test` or `cargo bench` that
/// asked for it.
pub fn component(package: &str) -> Result<PathBuf> {
    // rust-toolchain.toml names the target, but rustup adds targets only when
    // it installs a toolchain; on a machine that already has the toolchain,
    // this is what brings the target.
    let _ = Command::new("rustup")
        .args(["target", "add", "wasm32-wasip2"])
        .current_dir(workspace_root())
        .status();
    let target_dir = workspace_root().join("target").join("test-component");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .args([
            "build",
            "--target",
            "wasm32-wasip2",
            "--release",
            "-p",
            package,
        ])
        .arg("--target-dir")
        .arg(&target_dir)
        .current_dir(workspace_root())
        .status()?;
    if !status.success() {
        bail!("building the component {package} failed");
    }
    Ok(target_dir
        .join("wasm32-wasip2/release")
        .join(format!("{}.wasm", package.replace('-', "_"))))
}
