//! `testhost serve [--listen ADDR] [--manifest PATH] [--wasm PATH] [--kv redis://HOST:PORT] [--key-value KEY=VALUE]...`:
//! serves the app of `spin.toml` where Spin is not installed; `--kv` keeps the
//! `default` store on a Redis server (shared by every host pointed at it, as
//! Spin's `redis` store type is) instead of in memory; `--key-value` seeds the
//! `default` store, as `spin up --key-value` does.
//!
//! `testhost token [--client-id ID] [--sub ID] [--scope SCOPES] [--ttl SECONDS]`:
//! prints an access token signed with the development key.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

#[tokio::main]
async fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    match args.next().as_deref() {
        Some("serve") => serve(args).await,
        Some("token") => token(args),
        _ => bail!(
            "usage: testhost serve [--listen 127.0.0.1:3000] [--manifest spin.toml] [--wasm PATH] [--kv redis://127.0.0.1:6379] [--key-value KEY=VALUE]...\n       \
             testhost token [--client-id ID] [--sub ID] [--scope SCOPES] [--ttl SECONDS]"
        ),
    }
}

async fn serve(mut args: impl Iterator<Item = String>) -> Result<()> {
    let mut listen: SocketAddr = "127.0.0.1:3000".parse()?;
    let mut manifest = PathBuf::from("spin.toml");
    let mut wasm = None;
    let mut seed = Vec::new();
    let mut key_value = testhost::Backing::Memory;
    while let Some(flag) = args.next() {
        let value = args
            .next()
            .with_context(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--listen" => listen = value.parse().context("--listen takes ADDRESS:PORT")?,
            "--manifest" => manifest = value.into(),
            "--wasm" => wasm = Some(value.into()),
            "--kv" if value.starts_with("redis://") => {
                key_value = testhost::Backing::Redis {
                    url: value,
                    key_prefix: String::new(),
                }
            }
            "--kv" => bail!("--kv takes a redis:// URL"),
            "--key-value" => {
                let (key, value) = value
                    .split_once('=')
                    .context("--key-value takes KEY=VALUE")?;
                seed.push((key.to_owned(), value.to_owned()));
            }
            _ => bail!("unknown option {flag}"),
        }
    }
    testhost::run(&manifest, wasm, listen, seed, key_value).await
}

fn token(mut args: impl Iterator<Item = String>) -> Result<()> {
    let mut client_id = "11111111-1111-4111-8111-111111111111".to_owned();
    let mut user_id = "22222222-2222-4222-8222-222222222222".to_owned();
    let mut scope = "merge_request:write merge_request:read".to_owned();
    let mut ttl: i64 = 3600;
    while let Some(flag) = args.next() {
        let value = args
            .next()
            .with_context(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--client-id" => client_id = value,
            "--sub" => user_id = value,
            "--scope" => scope = value,
            "--ttl" => ttl = value.parse().context("--ttl takes seconds")?,
            _ => bail!("unknown option {flag}"),
        }
    }
    let spec =
        testhost::ComponentSpec::load(Path::new("spin.toml"), &testhost::variables_from_env())?;
    let issuer = spec
        .variables
        .get("auth_issuer")
        .context("spin.toml maps no auth_issuer")?;
    let claims = testhost::tokens::claims(issuer, &client_id, &user_id, &scope, ttl);
    println!(
        "{}",
        testhost::tokens::Signer::development()?.sign(&claims)?
    );
    Ok(())
}
