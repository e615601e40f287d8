//! A small Spin-compatible host for this project's component: it reads
//! `spin.toml`, then serves the built `.wasm` over HTTP with what Spin gives a
//! component — `wasi:http` in and out (outbound only to the manifest's
//! `allowed_outbound_hosts`), a key-value store shared by all requests with
//! working atomics, and variables through `wasi:config`.

pub mod build;
pub mod kv;
pub mod manifest;
mod outbound;
pub mod tokens;
mod variables;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use anyhow::{Result, anyhow};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use wasmtime::component::{Component, Linker, ResourceTable};
use wasmtime::{Config, Engine, ResourceLimiter, Store};
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};
use wasmtime_wasi_http::WasiHttpCtx;
use wasmtime_wasi_http::p3::bindings::ServicePre;
use wasmtime_wasi_http::p3::{WasiHttpCtxView, WasiHttpView};

pub use kv::{Backing, Fault, KeyValue, Operation};
pub use manifest::ComponentSpec;
use outbound::OutboundPolicy;

/// What one request's component instance owns.
struct InstanceState {
    table: ResourceTable,
    wasi: WasiCtx,
    http: WasiHttpCtx,
    outbound: OutboundPolicy,
    variables: variables::Variables,
    key_value: Arc<KeyValue>,
    key_value_labels: Arc<[String]>,
    memory: MemoryWatch,
}

/// Records the largest linear memory any instance asked for: what one
/// request costs in memory, which a host multiplies by its concurrency.
#[derive(Clone, Default)]
struct MemoryWatch(Arc<AtomicUsize>);

impl ResourceLimiter for MemoryWatch {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        self.0.fetch_max(desired, Ordering::Relaxed);
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        _desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(true)
    }
}

impl WasiView for InstanceState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for InstanceState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            hooks: &mut self.outbound,
            table: &mut self.table,
            ctx: &mut self.http,
        }
    }
}

/// Where the component's log lines go: kept for tests to read, and echoed to
/// the host's own stdout when serving for people.
#[derive(Default)]
pub struct Logs {
    lines: Mutex<Vec<String>>,
    echo: bool,
}

impl Logs {
    pub fn lines(&self) -> Vec<String> {
        self.lines.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn append(&self, output: &[u8]) {
        let text = String::from_utf8_lossy(output);
        let mut lines = self.lines.lock().unwrap_or_else(|p| p.into_inner());
        for line in text.lines() {
            if self.echo {
                println!("{line}");
            }
            lines.push(line.to_owned());
        }
    }
}

/// A compiled component, ready to be linked into any number of apps.
#[derive(Clone)]
pub struct Runtime {
    engine: Engine,
    component: Component,
}

impl Runtime {
    pub fn compile(wasm: &Path) -> Result<Self> {
        let mut config = Config::new();
        config.wasm_component_model_async(true);
        let engine = Engine::new(&config)?;
        let component = Component::from_file(&engine, wasm)
            .map_err(|e| anyhow!("loading the component {}: {e:?}", wasm.display()))?;
        Ok(Self { engine, component })
    }
}

/// A loaded application: the compiled component and its shared state.
pub struct App {
    engine: Engine,
    pre: ServicePre<InstanceState>,
    spec: ComponentSpec,
    variables: Arc<HashMap<String, String>>,
    key_value: Arc<KeyValue>,
    key_value_labels: Arc<[String]>,
    logs: Arc<Logs>,
    memory: MemoryWatch,
    exchanges: Option<Mutex<Vec<Exchange>>>,
}

/// How to load an app.
pub struct AppOptions {
    pub manifest: PathBuf,
    /// Variable values, as Spin takes them from `SPIN_VARIABLE_<NAME>`.
    pub variables: HashMap<String, String>,
    pub echo_logs: bool,
    pub key_value: Backing,
    /// Keep every request's method and path with the answer, for a test to
    /// check them all against the API description.
    pub record_exchanges: bool,
}

/// One request and the component's answer to it.
#[derive(Debug, Clone)]
pub struct Exchange {
    pub method: http::Method,
    pub path: String,
    pub response: http::Response<Bytes>,
}

/// `SPIN_VARIABLE_<NAME>` environment variables, as Spin reads them.
pub fn variables_from_env() -> HashMap<String, String> {
    std::env::vars()
        .filter_map(|(name, value)| {
            let name = name.strip_prefix("SPIN_VARIABLE_")?;
            Some((name.to_ascii_lowercase(), value))
        })
        .collect()
}

impl App {
    /// Links `runtime`'s component as the manifest describes it.
    pub fn new(runtime: &Runtime, options: AppOptions) -> Result<Self> {
        let spec = ComponentSpec::load(&options.manifest, &options.variables)?;
        let Runtime { engine, component } = runtime.clone();
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
        wasmtime_wasi::p3::add_to_linker(&mut linker)?;
        wasmtime_wasi_http::p3::add_to_linker(&mut linker)?;
        variables::add_to_linker(&mut linker, |state: &mut InstanceState| {
            &mut state.variables
        })?;
        kv::add_to_linker(&mut linker, |state: &mut InstanceState| kv::KeyValueView {
            table: &mut state.table,
            data: &state.key_value,
            allowed_labels: &state.key_value_labels,
        })?;
        let pre = ServicePre::new(linker.instantiate_pre(&component)?)?;
        let variables = Arc::new(spec.variables.clone());
        Ok(Self {
            engine,
            pre,
            key_value_labels: spec.key_value_stores.clone().into(),
            spec,
            variables,
            key_value: Arc::new(KeyValue::new(&options.key_value)?),
            logs: Arc::new(Logs {
                echo: options.echo_logs,
                ..Logs::default()
            }),
            memory: MemoryWatch::default(),
            exchanges: options.record_exchanges.then(Mutex::default),
        })
    }

    pub fn key_value(&self) -> &KeyValue {
        &self.key_value
    }

    pub fn logs(&self) -> &Logs {
        &self.logs
    }

    pub fn spec(&self) -> &ComponentSpec {
        &self.spec
    }

    /// Every request so far with its answer, when the app records them.
    pub fn exchanges(&self) -> Vec<Exchange> {
        self.exchanges.as_ref().map_or_else(Vec::new, |exchanges| {
            exchanges.lock().unwrap_or_else(|p| p.into_inner()).clone()
        })
    }

    /// The largest linear memory, in bytes, of any instance so far.
    pub fn peak_instance_memory(&self) -> usize {
        self.memory.0.load(Ordering::Relaxed)
    }

    /// Runs one request through a fresh instance, as Spin does.
    pub async fn handle(
        &self,
        request: http::Request<Bytes>,
        full_url: String,
    ) -> Result<http::Response<Bytes>> {
        let output = MemoryOutputPipe::new(1 << 20);
        let mut store = Store::new(
            &self.engine,
            InstanceState {
                table: ResourceTable::new(),
                wasi: WasiCtxBuilder::new()
                    .stdout(output.clone())
                    .stderr(output.clone())
                    .build(),
                http: WasiHttpCtx::new(),
                outbound: OutboundPolicy::new(self.spec.allowed_outbound_hosts.clone()),
                variables: variables::Variables(self.variables.clone()),
                key_value: self.key_value.clone(),
                key_value_labels: self.key_value_labels.clone(),
                memory: self.memory.clone(),
            },
        );
        store.limiter(|state| &mut state.memory);
        let (mut parts, body) = request.into_parts();
        let asked = (parts.method.clone(), parts.uri.path().to_owned());
        parts.headers.insert("spin-full-url", full_url.parse()?);
        let request = http::Request::from_parts(parts, Full::new(body));
        let (request, request_io) = wasmtime_wasi_http::p3::Request::from_http(request);
        let service = self.pre.instantiate_async(&mut store).await?;
        let result = store
            .run_concurrent(async |accessor| {
                let response = async {
                    let response = service.handle(accessor, request).await??;
                    let response =
                        accessor.with(|access| response.into_http(access, async { Ok(()) }))?;
                    let (parts, body) = response.into_parts();
                    let body = body
                        .collect()
                        .await
                        .map_err(|e| anyhow!("response body: {e:?}"))?
                        .to_bytes();
                    anyhow::Ok(http::Response::from_parts(parts, body))
                };
                let (response, ()) = tokio::try_join!(response, async {
                    request_io.await.map_err(|e| anyhow!("request body: {e:?}"))
                })?;
                anyhow::Ok(response)
            })
            .await;
        self.logs.append(&output.contents());
        let response = result??;
        if let Some(exchanges) = &self.exchanges {
            let (method, path) = asked;
            exchanges
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(Exchange {
                    method,
                    path,
                    response: response.clone(),
                });
        }
        Ok(response)
    }

    /// Serves the app over HTTP/1.1 until the listener fails.
    pub async fn serve(self: Arc<Self>, listener: TcpListener) -> Result<()> {
        loop {
            let (stream, _) = listener.accept().await?;
            let app = self.clone();
            tokio::spawn(async move {
                let service = service_fn(move |request| {
                    let app = app.clone();
                    async move { app.answer(request).await }
                });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    }

    async fn answer(
        &self,
        request: hyper::Request<hyper::body::Incoming>,
    ) -> Result<hyper::Response<Full<Bytes>>, std::convert::Infallible> {
        let host = request
            .headers()
            .get(http::header::HOST)
            .and_then(|h| h.to_str().ok())
            .unwrap_or("localhost")
            .to_owned();
        let full_url = format!(
            "http://{host}{}",
            request.uri().path_and_query().map_or("/", |pq| pq.as_str())
        );
        let (parts, body) = request.into_parts();
        let outcome = match body.collect().await {
            Ok(body) => {
                self.handle(http::Request::from_parts(parts, body.to_bytes()), full_url)
                    .await
            }
            Err(error) => Err(anyhow!("reading the request: {error}")),
        };
        Ok(match outcome {
            Ok(response) => response.map(Full::new),
            Err(error) => {
                // What Spin does when a component traps: a bare 500, and the
                // error in the host's log. The suite treats any of these as a bug.
                eprintln!("component failed: {error:?}");
                let mut response = hyper::Response::new(Full::new(Bytes::new()));
                *response.status_mut() = http::StatusCode::INTERNAL_SERVER_ERROR;
                response
            }
        })
    }
}

/// Loads the app at `manifest` and serves it on `listen`; `wasm` replaces the
/// manifest's `source`, `seed` goes into the `default` store first.
pub async fn run(
    manifest: &Path,
    wasm: Option<PathBuf>,
    listen: SocketAddr,
    seed: Vec<(String, String)>,
    key_value: Backing,
) -> Result<()> {
    let options = AppOptions {
        manifest: manifest.to_owned(),
        variables: variables_from_env(),
        echo_logs: true,
        key_value,
        record_exchanges: false,
    };
    let wasm = match wasm {
        Some(wasm) => wasm,
        None => ComponentSpec::load(&options.manifest, &options.variables)?.source,
    };
    let app = Arc::new(App::new(&Runtime::compile(&wasm)?, options)?);
    for (key, value) in seed {
        app.key_value().set("default", &key, value.into_bytes());
    }
    let listener = TcpListener::bind(listen).await?;
    eprintln!("Serving http://{}", listener.local_addr()?);
    app.serve(listener).await
}
