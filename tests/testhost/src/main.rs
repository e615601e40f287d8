//! `testhost serve [--listen ADDR] [--manifest PATH] [--wasm PATH]`: serves the
//! app of `spin.toml` where Spin is not installed.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{Context, Result, bail};

#[tokio::main]
async fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    match args.next().as_deref() {
        Some("serve") => {}
        _ => bail!("usage: testhost serve [--listen 127.0.0.1:3000] [--manifest spin.toml] [--wasm PATH]"),
    }
    let mut listen: SocketAddr = "127.0.0.1:3000".parse()?;
    let mut manifest = PathBuf::from("spin.toml");
    let mut wasm = None;
    while let Some(flag) = args.next() {
        let value = args.next().with_context(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--listen" => listen = value.parse().context("--listen takes ADDRESS:PORT")?,
            "--manifest" => manifest = value.into(),
            "--wasm" => wasm = Some(value.into()),
            _ => bail!("unknown option {flag}"),
        }
    }
    testhost::run(&manifest, wasm, listen).await
}
