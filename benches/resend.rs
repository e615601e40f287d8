//! What a resend costs per request, side by side with what any component
//! costs on the same host. `cargo bench --bench resend`; the table it prints
//! is the one in BENCHMARKS.md.
//!
//! Every variant runs in this one process, on one test host, against one mock
//! gateway. Criterion gives each its own estimate; then a second pass runs the
//! variants in turn, request by request, so that the medians and the p99s in
//! the table and the ratios between them come from the same minutes of the
//! machine's life.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::Criterion;
use resend_otp::adapters::settings::Settings;
use resend_otp::adapters::store::{MergeRequestRecord, merge_request_key, phone_sends_key};
use resend_otp::api::{auth, views};
use resend_otp::domain::{
    MergeRequestId, OtpCode, StatusContext, Timestamp, VerificationId, check_phone_daily, hex,
    keyed_digest,
};
use serde_json::{Value, json};
use testhost::tokens::{Signer, claims};
use testhost::{App, AppOptions, Runtime};
use tokio::runtime::Runtime as Tokio;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const LEGAL_ENTITY: &str = "11111111-1111-4111-8111-111111111111";
const USER: &str = "22222222-2222-4222-8222-222222222222";
/// The development MIS key of `spin.toml`'s defaults.
const API_KEY: &str = "dev-api-key";
const DEVELOPMENT_ISSUER: &str = "https://auth.ehealth.localhost";
/// Requests per variant in the side-by-side pass.
const ROUNDS: usize = 2000;
/// Requests of one variant in a row in that pass.
const BLOCK: usize = 50;

fn workspace_file(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(relative)
}

/// One component loaded on the host, and how long that took.
struct Loaded {
    app: App,
    runtime: Runtime,
    wasm_bytes: u64,
    compile: Duration,
    pre_instantiate: Duration,
}

fn load(package: &str, manifest: &str, variables: &[(&str, &str)]) -> Loaded {
    let wasm = testhost::build::component(package).expect("the component builds");
    let started = Instant::now();
    let runtime = Runtime::compile(&wasm).expect("the component compiles");
    let compile = started.elapsed();
    let started = Instant::now();
    let app = link(&runtime, manifest, variables);
    Loaded {
        app,
        runtime,
        wasm_bytes: std::fs::metadata(&wasm).map_or(0, |m| m.len()),
        compile,
        pre_instantiate: started.elapsed(),
    }
}

/// An app of an already compiled component.
fn link(runtime: &Runtime, manifest: &str, variables: &[(&str, &str)]) -> App {
    App::new(
        runtime,
        AppOptions {
            manifest: workspace_file(manifest),
            variables: variables
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            echo_logs: false,
            key_value: testhost::Backing::Memory,
            record_exchanges: false,
        },
    )
    .expect("the app links")
}

struct Bench {
    tokio: Tokio,
    _gateway: MockServer,
    floor: Loaded,
    floor_io: Loaded,
    resend: Loaded,
    /// The same component with the default cooldown: every resend after the
    /// first is refused.
    refused: App,
    refused_id: String,
    authorization: String,
    native: NativeCore,
}

impl Bench {
    fn new() -> Self {
        let tokio = Tokio::new().expect("a runtime");
        let gateway = tokio.block_on(async {
            let gateway = MockServer::builder()
                .disable_request_recording()
                .start()
                .await;
            Mock::given(method("POST"))
                .and(path("/messages"))
                .respond_with(
                    ResponseTemplate::new(202).set_body_json(json!({"id": "bench-message"})),
                )
                .mount(&gateway)
                .await;
            gateway
        });
        let origin = gateway.uri();
        let url = format!("{origin}/messages");
        let gateway_variables = [
            ("sms_gateway_url", url.as_str()),
            ("sms_gateway_origin", origin.as_str()),
        ];
        let floor = load("bench-floor", "tests/components/floor/spin.toml", &[]);
        let floor_io = load(
            "bench-floor-io",
            "tests/components/floor-io/spin.toml",
            &gateway_variables,
        );
        let mut product = vec![
            ("sms_provider", "http"),
            ("sms_gateway_token", "bench-gateway-token"),
            ("otp_hash_key", "bench-otp-hash-key"),
            ("otp_max_sends_per_phone_per_day", "100000"),
        ];
        product.extend(gateway_variables);
        let refused_variables = product.clone();
        product.push(("otp_resend_cooldown_seconds", "0"));
        let resend = load("resend-otp", "spin.toml", &product);
        let refused = link(&resend.runtime, "spin.toml", &refused_variables);

        let token = Signer::development()
            .and_then(|signer| {
                signer.sign(&claims(
                    DEVELOPMENT_ISSUER,
                    LEGAL_ENTITY,
                    USER,
                    "merge_request:write merge_request:read",
                    24 * 3600,
                ))
            })
            .expect("the development key signs");
        let authorization = format!("Bearer {token}");
        let refused_id = tokio.block_on(create(&refused, &authorization, 0));
        let native_id = tokio.block_on(create(&resend.app, &authorization, 1));
        let native = NativeCore::new(&resend.app, &native_id, &authorization);
        Self {
            tokio,
            _gateway: gateway,
            floor,
            floor_io,
            resend,
            refused,
            refused_id,
            authorization,
            native,
        }
    }

    fn request(&self, method: http::Method, path: &str, body: &str) -> http::Request<Bytes> {
        http::Request::builder()
            .method(method)
            .uri(path)
            .header("authorization", &self.authorization)
            .header("api-key", API_KEY)
            .header("content-type", "application/json")
            .body(Bytes::from(body.to_owned()))
            .expect("a valid request")
    }

    /// One request through `app`, timed; `expected` is the only acceptable
    /// status, so a benchmark never times a failure.
    fn time(&self, app: &App, request: http::Request<Bytes>, expected: u16) -> Duration {
        let url = format!("http://localhost{}", request.uri());
        let started = Instant::now();
        let response = self
            .tokio
            .block_on(app.handle(request, url))
            .expect("the component answers");
        let elapsed = started.elapsed();
        assert_eq!(response.status().as_u16(), expected, "{response:?}");
        elapsed
    }

    fn floor(&self) -> Duration {
        self.time(
            &self.floor.app,
            self.request(http::Method::GET, "/", ""),
            200,
        )
    }

    fn floor_io(&self) -> Duration {
        self.time(
            &self.floor_io.app,
            self.request(http::Method::POST, "/", ""),
            200,
        )
    }

    /// A fresh merge request (its first SMS outside the timing), then the
    /// timed resend.
    fn resend(&self, round: u64) -> Duration {
        let id = self
            .tokio
            .block_on(create(&self.resend.app, &self.authorization, round + 2));
        self.time(&self.resend.app, self.resend_request(&id), 200)
    }

    fn refused(&self) -> Duration {
        self.time(&self.refused, self.resend_request(&self.refused_id), 429)
    }

    /// The resend route refused at each of its stages in turn: the
    /// differences between these are what each stage costs inside the
    /// component.
    fn stage(&self, stage: Stage) -> Duration {
        let mut request = self.resend_request(&self.refused_id);
        let expected = match stage {
            Stage::Routing => {
                *request.uri_mut() = http::Uri::from_static("/api/unknown");
                404
            }
            Stage::Variables => {
                request.headers_mut().remove("authorization");
                401
            }
            Stage::Token => {
                request
                    .headers_mut()
                    .insert("api-key", http::HeaderValue::from_static("not-a-key"));
                401
            }
        };
        self.time(&self.refused, request, expected)
    }

    fn resend_request(&self, id: &str) -> http::Request<Bytes> {
        self.request(
            http::Method::POST,
            &format!("/api/merge_requests/{id}/actions/resend_otp"),
            "",
        )
    }
}

#[derive(Clone, Copy)]
enum Stage {
    /// Unknown route: instance, envelope and log line only.
    Routing,
    /// No token: the variables are read and parsed, then the caller refused.
    Variables,
    /// A valid token but an unknown `Api-Key`: the token's signature is
    /// verified, then the caller refused.
    Token,
}

/// Creates a merge request on a phone of its own through the API.
async fn create(app: &App, authorization: &str, serial: u64) -> String {
    let body = json!({"merge_request": {
        "master_person_id": uuid(serial, 1),
        "merge_person_id": uuid(serial, 2),
        "authentication_method_current": {"type": "OTP", "phone_number": format!("+380{:09}", serial % 1_000_000_000)},
    }});
    let request = http::Request::post("/api/merge_requests")
        .header("authorization", authorization)
        .header("api-key", API_KEY)
        .header("content-type", "application/json")
        .body(Bytes::from(body.to_string()))
        .expect("a valid request");
    let response = app
        .handle(request, "http://localhost/api/merge_requests".into())
        .await
        .expect("the component answers");
    assert_eq!(
        response.status(),
        201,
        "{response:?} {:?}",
        app.logs().lines()
    );
    let body: Value = serde_json::from_slice(response.body()).expect("JSON");
    body["data"]["id"].as_str().expect("the new id").to_owned()
}

fn uuid(serial: u64, person: u8) -> String {
    let started = std::process::id();
    format!("{started:08x}-{person:04x}-4000-8000-{serial:012x}")
}

/// The component's own work on a resend, natively and with no host: the
/// variables parsed, the caller authenticated, the record decoded, checked,
/// reserved, the code drawn and hashed, the SMS body and the answer written,
/// the record encoded twice. The store is a map; the gateway is not called.
struct NativeCore {
    variables: HashMap<String, String>,
    headers: http::HeaderMap,
    key: String,
    record: Vec<u8>,
    id: MergeRequestId,
}

impl NativeCore {
    fn new(app: &App, id: &str, authorization: &str) -> Self {
        let id = MergeRequestId::parse(id).expect("an id");
        let key = merge_request_key(id);
        let record = app
            .key_value()
            .get("default", &key)
            .expect("the record the API stored");
        let mut headers = http::HeaderMap::new();
        headers.insert(
            "authorization",
            authorization.parse().expect("a header value"),
        );
        headers.insert("api-key", API_KEY.parse().expect("a header value"));
        Self {
            variables: app.spec().variables.clone(),
            headers,
            key,
            record,
            id,
        }
    }

    fn resend(&self, round: u64) -> Duration {
        let mut store: HashMap<String, Vec<u8>> = HashMap::new();
        store.insert(self.key.clone(), self.record.clone());
        let now_micros = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_micros() as i64);
        let started = Instant::now();
        let answer = std::hint::black_box(self.run(&mut store, round, now_micros));
        let elapsed = started.elapsed();
        assert!(answer.len() > 100, "a whole answer");
        elapsed
    }

    // Kept out of line so that a profiler can count this work alone.
    #[inline(never)]
    fn run(&self, store: &mut HashMap<String, Vec<u8>>, round: u64, now_micros: i64) -> Vec<u8> {
        let settings = Settings::parse(&self.variables).expect("valid variables");
        let caller = auth::authenticate(
            &self.headers,
            &settings.auth,
            (now_micros / 1_000_000) as u64,
        )
        .expect("a valid caller");
        let now = Timestamp::from_unix_micros(now_micros);
        let mut record: MergeRequestRecord =
            serde_json::from_slice(&store[&self.key]).expect("a record");
        assert!(record.merge_request.is_owned_by(&caller.legal_entity_id));
        let context = StatusContext {
            now,
            ttl_seconds: settings.merge_request_ttl_seconds,
            live_generation: 1,
        };
        let phone = record
            .merge_request
            .otp_recipient(&context)
            .expect("resendable")
            .clone();
        let limits = settings.limits;
        let digest = keyed_digest(
            &settings.otp_hash_key,
            &[b"phone:", phone.as_str().as_bytes()],
        );
        let daily_key = phone_sends_key(&hex(&digest[..16]), &now.utc_date());
        let sent_today = store.get(&daily_key).map_or(0, |_| 1);
        check_phone_daily(sent_today, now, &limits).expect("under the daily limit");
        let verification_id = VerificationId::from_random_bytes(random_bytes(round));
        let reservation = record
            .otp
            .reserve(verification_id, now, &limits)
            .expect("no cooldown");
        store.insert(self.key.clone(), serde_json::to_vec(&record).expect("JSON"));
        store.insert(daily_key, 1i64.to_le_bytes().to_vec());
        let code = OtpCode::generate(settings.code_length, |buf| {
            buf.copy_from_slice(&random_bytes::<64>(round)[..buf.len()]);
        });
        let sms = json!({
            "to": phone.as_str(),
            "text": settings.sms_template.replace("{code}", code.expose()),
            "reference": verification_id.to_string(),
        })
        .to_string();
        std::hint::black_box(sms);
        let mut record: MergeRequestRecord =
            serde_json::from_slice(&store[&self.key]).expect("a record");
        let hash = code.keyed_hash(&settings.otp_hash_key, self.id, verification_id);
        let verification = record
            .otp
            .commit(
                &reservation,
                hash,
                now.plus_seconds(settings.code_ttl_seconds),
                None,
            )
            .expect("the reservation holds")
            .clone();
        store.insert(self.key.clone(), serde_json::to_vec(&record).expect("JSON"));
        serde_json::to_vec(&json!({
            "meta": {"code": 200, "url": "http://localhost/", "type": "object", "request_id": verification_id},
            "data": views::verification(&verification),
        }))
        .expect("JSON")
    }
}

/// Bytes that differ every round; the component takes them from the host's
/// CSPRNG, which is not what is measured here.
fn random_bytes<const N: usize>(round: u64) -> [u8; N] {
    let mut bytes = [0u8; N];
    let mut state = round.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    for byte in &mut bytes {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        *byte = state as u8;
    }
    bytes
}

fn criterion_estimates(criterion: &mut Criterion, bench: &Bench) {
    let mut group = criterion.benchmark_group("per_request");
    group.sample_size(30);
    group.measurement_time(Duration::from_secs(4));
    group.bench_function("floor", |b| {
        b.iter_custom(|iters| (0..iters).map(|_| bench.floor()).sum())
    });
    group.bench_function("floor_io", |b| {
        b.iter_custom(|iters| (0..iters).map(|_| bench.floor_io()).sum())
    });
    let mut round = 1_000_000u64;
    group.bench_function("resend", |b| {
        b.iter_custom(|iters| {
            (0..iters)
                .map(|_| {
                    round += 1;
                    bench.resend(round)
                })
                .sum()
        })
    });
    group.bench_function("resend_refused", |b| {
        b.iter_custom(|iters| (0..iters).map(|_| bench.refused()).sum())
    });
    group.bench_function("native_core", |b| {
        b.iter_custom(|iters| (0..iters).map(|i| bench.native.resend(i)).sum())
    });
    group.finish();
}

struct Distribution {
    median: Duration,
    p99: Duration,
}

fn distribution(mut samples: Vec<Duration>) -> Distribution {
    samples.sort_unstable();
    let at = |fraction: f64| samples[((samples.len() - 1) as f64 * fraction).round() as usize];
    Distribution {
        median: at(0.5),
        p99: at(0.99),
    }
}

fn micros(duration: Duration) -> String {
    format!("{:.0} µs", duration.as_secs_f64() * 1e6)
}

fn side_by_side(bench: &Bench) {
    let variants: [(&str, &dyn Fn(u64) -> Duration); 8] = [
        ("floor", &|_| bench.floor()),
        ("floor + I/O", &|_| bench.floor_io()),
        ("resend (200)", &|round| bench.resend(round)),
        ("resend refused (429, cooldown)", &|_| bench.refused()),
        ("native core", &|round| bench.native.resend(round)),
        ("stage: unknown route (404)", &|_| {
            bench.stage(Stage::Routing)
        }),
        ("stage: no token (401)", &|_| bench.stage(Stage::Variables)),
        ("stage: signature checked, Api-Key unknown (401)", &|_| {
            bench.stage(Stage::Token)
        }),
    ];
    // Blocks rather than single requests in turn: a request right after
    // another component's would pay for that component's cold caches.
    let mut samples: Vec<Vec<Duration>> = vec![Vec::with_capacity(ROUNDS); variants.len()];
    for block in 0..ROUNDS / BLOCK {
        for ((_, run), samples) in variants.iter().zip(&mut samples) {
            for request in 0..BLOCK {
                samples.push(run((2_000_000 + block * BLOCK + request) as u64));
            }
        }
    }
    let results: Vec<Distribution> = samples.into_iter().map(distribution).collect();
    println!(
        "\n## Per request ({ROUNDS} requests each, the variants in turn in blocks of {BLOCK})\n"
    );
    println!("| variant | median | p99 |");
    println!("|---|---:|---:|");
    for ((name, _), d) in variants.iter().zip(&results) {
        println!("| {name} | {} | {} |", micros(d.median), micros(d.p99));
    }
    let ratio =
        |a: usize, b: usize| results[a].median.as_secs_f64() / results[b].median.as_secs_f64();
    println!();
    println!("resend / (floor + I/O) = {:.2} (target ≤ 1.5)", ratio(2, 1));
    println!("refused / floor = {:.2} (target ≤ 1.5)", ratio(3, 0));
    println!("resend in wasm / native core = {:.1}", ratio(2, 4));
}

fn start_up(bench: &Bench) {
    println!("\n## Size and start-up\n");
    println!("| component | .wasm | compile | pre-instantiate | peak instance memory |");
    println!("|---|---:|---:|---:|---:|");
    for (name, loaded) in [
        ("floor", &bench.floor),
        ("floor + I/O", &bench.floor_io),
        ("resend-otp", &bench.resend),
    ] {
        println!(
            "| {name} | {} bytes | {:.0} ms | {:.1} ms | {} KiB |",
            loaded.wasm_bytes,
            loaded.compile.as_secs_f64() * 1e3,
            loaded.pre_instantiate.as_secs_f64() * 1e3,
            loaded.app.peak_instance_memory() / 1024,
        );
    }
}

fn main() {
    // A filter (`cargo bench --bench resend -- native_core`) asks for
    // criterion's estimates of some variants only, e.g. under a profiler.
    let filtered = std::env::args()
        .skip(1)
        .any(|arg| !arg.starts_with('-') && arg.parse::<f64>().is_err());
    let bench = Bench::new();
    let mut criterion = Criterion::default().configure_from_args();
    criterion_estimates(&mut criterion, &bench);
    criterion.final_summary();
    if !filtered {
        side_by_side(&bench);
        start_up(&bench);
    }
}
