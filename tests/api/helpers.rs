//! One way into the app for every test: the real component, built from this
//! repository, served by the test host over real HTTP, with a mock SMS
//! gateway on 127.0.0.1.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, OnceLock};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use testhost::tokens::{Signer, claims};
use testhost::{App, AppOptions, Backing, Runtime};
use wiremock::matchers::{method, path};
use wiremock::{Match, Mock, MockServer, Request, ResponseTemplate};

pub const LEGAL_ENTITY: &str = "11111111-1111-4111-8111-111111111111";
pub const OTHER_LEGAL_ENTITY: &str = "99999999-9999-4999-8999-999999999999";
pub const USER: &str = "22222222-2222-4222-8222-222222222222";
pub const PHONE: &str = "+380501234567";
pub const MIS_ID: &str = "test-mis";
pub const API_KEY: &str = "test-mis-api-key-0123456789";
pub const ISSUER: &str = "https://auth.test.localhost";
pub const HASH_KEY: &str = "test-otp-hash-key";
pub const GATEWAY_TOKEN: &str = "test-gateway-token";
pub const WRITE_SCOPE: &str = "merge_request:write";
/// The code every seeded verification was issued with.
pub const SEEDED_CODE: &str = "424242";

/// The repository's root: where `spin.toml`, `openapi.yaml` and `deploy/` are.
pub fn project_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn runtime() -> &'static Runtime {
    static RUNTIME: OnceLock<Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        Runtime::compile(&testhost::build::component("resend-otp").expect("the component builds"))
            .expect("the component compiles")
    })
}

/// The key set tokens are checked against: ES256, EdDSA and an HS256 secret.
pub struct TestKeys {
    pub es256: Signer,
    pub eddsa: Signer,
    pub hs256: Signer,
    /// Not in the key set, but claims the ES256 key's `kid`.
    pub impostor: Signer,
    pub jwks: String,
}

pub fn keys() -> &'static TestKeys {
    static KEYS: OnceLock<TestKeys> = OnceLock::new();
    KEYS.get_or_init(|| {
        use ed25519_dalek::pkcs8::EncodePrivateKey as _;
        let ec = p256::ecdsa::SigningKey::from_slice(&[0x11; 32]).unwrap();
        let impostor = p256::ecdsa::SigningKey::from_slice(&[0x22; 32]).unwrap();
        let ed = ed25519_dalek::SigningKey::from_bytes(&[0x33; 32]);
        let point = ec.verifying_key().to_encoded_point(false);
        let hs_secret = b"hs256-development-secret-0123456789";
        let jwks = json!({"keys": [
            {"kty": "EC", "crv": "P-256", "kid": "es", "use": "sig",
             "x": URL_SAFE_NO_PAD.encode(point.x().unwrap()), "y": URL_SAFE_NO_PAD.encode(point.y().unwrap())},
            {"kty": "OKP", "crv": "Ed25519", "kid": "ed", "use": "sig",
             "x": URL_SAFE_NO_PAD.encode(ed.verifying_key().as_bytes())},
            {"kty": "oct", "kid": "hs", "k": URL_SAFE_NO_PAD.encode(hs_secret)},
        ]});
        TestKeys {
            es256: Signer::es256("es", ec.to_pkcs8_der().unwrap().as_bytes()),
            eddsa: Signer::ed25519("ed", ed.to_pkcs8_der().unwrap().as_bytes()),
            hs256: Signer::hs256("hs", hs_secret),
            impostor: Signer::es256("es", impostor.to_pkcs8_der().unwrap().as_bytes()),
            jwks: jwks.to_string(),
        }
    })
}

/// The mock gateway refuses bodies sent without a length (chunked), as many
/// real gateways do.
struct HasContentLength;

impl Match for HasContentLength {
    fn matches(&self, request: &Request) -> bool {
        request.headers.contains_key("content-length")
    }
}

/// The suite's mock SMS gateway: one per app in the test host, or one shared by
/// every test when the suite targets an already-running server.
pub enum Gateway {
    Own(MockServer),
    Shared(&'static MockServer),
}

impl std::ops::Deref for Gateway {
    type Target = MockServer;

    fn deref(&self) -> &MockServer {
        match self {
            Self::Own(server) => server,
            Self::Shared(server) => server,
        }
    }
}

pub struct TestApp {
    pub base_url: String,
    pub gateway: Gateway,
    /// The in-process host; `None` when the suite targets a running server.
    host: Option<Arc<App>>,
    client: reqwest::Client,
    /// Every token handed out, so that the log check on drop can look for them.
    tokens: std::sync::Mutex<Vec<String>>,
}

/// The variables a running server must have for the suite to target it
/// (`RESEND_OTP_BASE_URL`): the suite's keys and gateway, and no resend cooldown.
/// `cargo test --test api external_profile -- --ignored --nocapture` prints them
/// as `SPIN_VARIABLE_*` lines.
pub fn external_profile(gateway_origin: &str) -> Vec<(&'static str, String)> {
    vec![
        ("sms_provider", "http".to_owned()),
        ("sms_gateway_url", format!("{gateway_origin}/messages")),
        ("sms_gateway_origin", gateway_origin.to_owned()),
        ("sms_gateway_token", GATEWAY_TOKEN.to_owned()),
        ("otp_hash_key", HASH_KEY.to_owned()),
        ("auth_jwks", keys().jwks.clone()),
        ("auth_issuer", ISSUER.to_owned()),
        ("mis_api_keys", api_key_entry(MIS_ID, API_KEY)),
        ("otp_resend_cooldown_seconds", "0".to_owned()),
    ]
}

/// Each app's own store: in memory, or, when `RESEND_OTP_TEST_REDIS` names a
/// Redis server, its own key prefix there, so that the suite also runs on
/// the store many Spin instances share.
fn test_store() -> Backing {
    static APPS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    match std::env::var("RESEND_OTP_TEST_REDIS") {
        Ok(url) if !url.is_empty() => Backing::Redis {
            url,
            key_prefix: format!(
                "test:{}:{}:",
                std::process::id(),
                APPS.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            ),
        },
        _ => Backing::Memory,
    }
}

/// Where the shared gateway listens when the suite targets a running server.
const EXTERNAL_GATEWAY_DEFAULT: &str = "127.0.0.1:4999";

fn external_base_url() -> Option<String> {
    std::env::var("RESEND_OTP_BASE_URL")
        .ok()
        .filter(|url| !url.is_empty())
}

async fn shared_gateway() -> &'static MockServer {
    static GATEWAY: tokio::sync::OnceCell<MockServer> = tokio::sync::OnceCell::const_new();
    GATEWAY
        .get_or_init(|| async {
            let address = std::env::var("RESEND_OTP_GATEWAY_ADDR")
                .unwrap_or_else(|_| EXTERNAL_GATEWAY_DEFAULT.into());
            let listener =
                std::net::TcpListener::bind(&address).expect("the shared gateway address is free");
            let gateway = MockServer::builder().listener(listener).start().await;
            accept_sms(&gateway).await;
            gateway
        })
        .await
}

async fn accept_sms(gateway: &MockServer) {
    Mock::given(method("POST"))
        .and(path("/messages"))
        .and(HasContentLength)
        .respond_with(ResponseTemplate::new(202).set_body_json(json!({"id": "gateway-message-1"})))
        .with_priority(5)
        .mount(gateway)
        .await;
}

/// A merge request put into the store the way the component keeps it.
pub struct Seed {
    pub legal_entity_id: &'static str,
    pub status: &'static str,
    pub method: Value,
    /// How long ago its current code was sent; `None`: no code yet.
    pub last_sent_seconds_ago: Option<i64>,
    pub sends: u32,
    /// How long ago the merge request was created.
    pub age_seconds: i64,
}

impl Default for Seed {
    fn default() -> Self {
        Self {
            legal_entity_id: LEGAL_ENTITY,
            status: "NEW",
            method: json!({"type": "OTP", "phone_number": PHONE}),
            last_sent_seconds_ago: Some(300),
            sends: 1,
            age_seconds: 300,
        }
    }
}

pub struct Seeded {
    pub id: String,
    /// The verification issued before the test, when there is one.
    pub verification_id: Option<String>,
}

/// A fresh id; std's per-instance hasher keys are random enough for ids that
/// only need to differ.
pub fn uuid_v4() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut bytes = [0u8; 16];
    for chunk in bytes.chunks_mut(8) {
        let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
        hasher.write_i64(now_micros());
        chunk.copy_from_slice(&hasher.finish().to_le_bytes());
    }
    uuid::Builder::from_random_bytes(bytes)
        .into_uuid()
        .to_string()
}

pub fn now_micros() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_micros() as i64
}

/// The stored form of a code: HMAC-SHA-256 over merge request, verification and code.
pub fn code_hash(merge_request_id: &str, verification_id: &str, code: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(HASH_KEY.as_bytes()).unwrap();
    mac.update(format!("{merge_request_id}:{verification_id}:{code}").as_bytes());
    mac.finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

pub fn api_key_entry(mis_id: &str, api_key: &str) -> String {
    let digest: String = Sha256::digest(api_key.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("{mis_id}:{digest}")
}

impl TestApp {
    /// An app that only HTTP reaches: the test host with the external profile,
    /// or the running server of `RESEND_OTP_BASE_URL`. Tests on it use
    /// [`unique_phone`] and [`TestApp::sms_to`], since a running server and its
    /// gateway are shared by every test.
    pub async fn http_only() -> Self {
        let Some(base_url) = external_base_url() else {
            return Self::try_spawn(
                &[("otp_resend_cooldown_seconds", "0")],
                &project_root().join("spin.toml"),
            )
            .await
            .expect("the app starts");
        };
        Self {
            base_url: base_url.trim_end_matches('/').to_owned(),
            gateway: Gateway::Shared(shared_gateway().await),
            host: None,
            client: reqwest::Client::new(),
            tokens: Default::default(),
        }
    }

    /// The app in the in-process test host, for tests that seed or inspect its
    /// store, read its log or change its variables. `None` (the test is
    /// skipped) when the suite targets a running server.
    pub async fn local() -> Option<Self> {
        Self::local_with(&[]).await
    }

    /// As [`TestApp::local`], with `overrides` on top of the suite's variables
    /// (as `SPIN_VARIABLE_*` would be).
    pub async fn local_with(overrides: &[(&str, &str)]) -> Option<Self> {
        if external_base_url().is_some() {
            eprintln!("skipped: needs the in-process test host");
            return None;
        }
        Some(
            Self::try_spawn(overrides, &project_root().join("spin.toml"))
                .await
                .expect("the app starts"),
        )
    }

    pub async fn try_spawn(overrides: &[(&str, &str)], manifest: &Path) -> anyhow::Result<Self> {
        let gateway = MockServer::start().await;
        accept_sms(&gateway).await;
        // The external profile, but with the default resend cooldown.
        let mut variables: HashMap<String, String> = external_profile(&gateway.uri())
            .into_iter()
            .filter(|(name, _)| *name != "otp_resend_cooldown_seconds")
            .map(|(name, value)| (name.to_owned(), value))
            .collect();
        for (name, value) in overrides {
            variables.insert((*name).to_owned(), (*value).to_owned());
        }
        let app = Arc::new(App::new(
            runtime(),
            AppOptions {
                manifest: manifest.to_owned(),
                variables,
                echo_logs: false,
                key_value: test_store(),
                record_exchanges: true,
            },
        )?);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let base_url = format!("http://{}", listener.local_addr()?);
        tokio::spawn(app.clone().serve(listener));
        Ok(Self {
            base_url,
            gateway: Gateway::Own(gateway),
            host: Some(app),
            client: reqwest::Client::new(),
            tokens: Default::default(),
        })
    }

    pub fn token_with(&self, signer: &Signer, claims: &Value) -> String {
        let token = signer.sign(claims).unwrap();
        self.tokens.lock().unwrap().push(token.clone());
        token
    }

    /// A valid token of the suite's legal entity, with `scope`.
    pub fn token(&self, scope: &str) -> String {
        self.token_with(
            &keys().es256,
            &claims(ISSUER, LEGAL_ENTITY, USER, scope, 600),
        )
    }

    pub fn resend_url(&self, id: &str) -> String {
        format!(
            "{}/api/merge_requests/{id}/actions/resend_otp",
            self.base_url
        )
    }

    /// A resend request with valid credentials, to adjust before sending.
    pub fn resend_request(&self, id: &str) -> reqwest::RequestBuilder {
        self.client
            .post(self.resend_url(id))
            .bearer_auth(self.token(WRITE_SCOPE))
            .header("Api-Key", API_KEY)
    }

    pub async fn resend_with_body(
        &self,
        id: &str,
        content_type: &str,
        body: &str,
    ) -> reqwest::Response {
        self.resend_request(id)
            .header("Content-Type", content_type)
            .body(body.to_owned())
            .send()
            .await
            .expect("the app answers")
    }

    /// A request to `path` with valid credentials and both scopes, as `user`.
    pub fn call_as(
        &self,
        method: reqwest::Method,
        path: &str,
        user: &str,
    ) -> reqwest::RequestBuilder {
        let claims = claims(
            ISSUER,
            LEGAL_ENTITY,
            user,
            "merge_request:write merge_request:read",
            600,
        );
        self.client
            .request(method, format!("{}{path}", self.base_url))
            .bearer_auth(self.token_with(&keys().es256, &claims))
            .header("Api-Key", API_KEY)
    }

    pub fn call(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.call_as(method, path, USER)
    }

    pub async fn create(&self, body: &Value) -> reqwest::Response {
        self.call(reqwest::Method::POST, "/api/merge_requests")
            .json(body)
            .send()
            .await
            .expect("the app answers")
    }

    pub async fn get(&self, id: &str) -> reqwest::Response {
        self.call(reqwest::Method::GET, &format!("/api/merge_requests/{id}"))
            .send()
            .await
            .expect("the app answers")
    }

    pub async fn approve(&self, id: &str, code: &str) -> reqwest::Response {
        self.call(
            reqwest::Method::PATCH,
            &format!("/api/merge_requests/{id}/actions/approve"),
        )
        .json(&json!({"verification_code": code}))
        .send()
        .await
        .expect("the app answers")
    }

    pub async fn reject(&self, id: &str) -> reqwest::Response {
        self.call(
            reqwest::Method::PATCH,
            &format!("/api/merge_requests/{id}/actions/reject"),
        )
        .send()
        .await
        .expect("the app answers")
    }

    pub async fn resend(&self, id: &str) -> reqwest::Response {
        self.resend_request(id)
            .send()
            .await
            .expect("the app answers")
    }

    pub fn client(&self) -> &reqwest::Client {
        &self.client
    }

    pub fn seed(&self, seed: Seed) -> Seeded {
        let id = uuid_v4();
        let now = now_micros();
        let (verifications, last_sent_at, verification_id) = match seed.last_sent_seconds_ago {
            None => (json!([]), Value::Null, None),
            Some(ago) => {
                let sent_at = now - ago * 1_000_000;
                let verification_id = uuid_v4();
                let verification = json!({
                    "id": verification_id,
                    "status": "NEW",
                    "code_hash": code_hash(&id, &verification_id, SEEDED_CODE),
                    "code_expired_at": sent_at + 600_000_000,
                    "active": true,
                    "attempts": 0,
                    "inserted_at": sent_at,
                });
                (json!([verification]), json!(sent_at), Some(verification_id))
            }
        };
        let record = json!({
            "version": 1,
            "merge_request": {
                "id": id,
                "status": seed.status,
                "legal_entity_id": seed.legal_entity_id,
                "inserted_by": USER,
                "master_person_id": uuid_v4(),
                "merge_person_id": uuid_v4(),
                "authentication_method_current": seed.method,
                "inserted_at": now - seed.age_seconds * 1_000_000,
                "updated_at": now - seed.age_seconds * 1_000_000,
                "generation": 0,
            },
            "otp": {"sends": seed.sends, "last_sent_at": last_sent_at, "pending": null, "verifications": verifications},
        });
        self.host().key_value().set(
            "default",
            &format!("merge_request:{id}"),
            record.to_string().into_bytes(),
        );
        Seeded {
            id,
            verification_id,
        }
    }

    /// The stored record of a merge request, as the component wrote it, but
    /// for its write marks.
    pub fn record(&self, id: &str) -> Value {
        let bytes = self
            .host()
            .key_value()
            .get("default", &format!("merge_request:{id}"))
            .expect("record exists");
        without_write_marks(serde_json::from_slice(&bytes).unwrap())
    }

    /// Every message the gateway received, as JSON bodies.
    pub async fn sent_sms(&self) -> Vec<Value> {
        self.gateway
            .received_requests()
            .await
            .unwrap_or_default()
            .iter()
            .map(|r| serde_json::from_slice(&r.body).expect("the gateway got JSON"))
            .collect()
    }

    pub fn log_lines(&self) -> Vec<String> {
        self.host().logs().lines()
    }

    /// The in-process host; only tests started with [`TestApp::local`] have one.
    pub fn host(&self) -> &App {
        self.host
            .as_deref()
            .expect("a test that uses the host starts with TestApp::local")
    }

    /// From now on the gateway answers every message with `status`.
    pub async fn gateway_fails_with(&self, status: u16) {
        Mock::given(method("POST"))
            .respond_with(ResponseTemplate::new(status))
            .with_priority(1)
            .mount(&self.gateway)
            .await;
    }

    /// The gateway accepts messages again (and forgets what it received).
    pub async fn gateway_recovers(&self) {
        self.gateway.reset().await;
        accept_sms(&self.gateway).await;
    }

    /// The messages the gateway received for `phone`.
    pub async fn sms_to(&self, phone: &str) -> Vec<Value> {
        self.sent_sms()
            .await
            .into_iter()
            .filter(|sms| sms["to"] == phone)
            .collect()
    }
}

/// A stored value without the marks every write of a record appends (they
/// let a writer confirm its swap landed): store bookkeeping, not state, so a
/// write given back leaves the state as it was although its marks remain.
pub fn without_write_marks(mut value: Value) -> Value {
    if let Some(record) = value.as_object_mut() {
        record.remove("writes");
    }
    value
}

/// A valid create body for a new pair of persons.
pub fn new_merge_request(method: Value) -> Value {
    json!({"merge_request": {
        "master_person_id": uuid_v4(),
        "merge_person_id": uuid_v4(),
        "authentication_method_current": method,
    }})
}

/// A phone number no other test uses, so that a shared server's per-phone
/// limits and a shared gateway's messages stay apart.
pub fn unique_phone() -> String {
    let digits: String = uuid_v4()
        .bytes()
        .filter(u8::is_ascii_digit)
        .take(9)
        .map(char::from)
        .collect();
    format!("+380{digits:0<9}")
}

pub fn otp_method(phone: &str) -> Value {
    json!({"type": "OTP", "phone_number": phone})
}

/// The code in an SMS text: the run of digits.
pub fn code_in(text: &str) -> String {
    text.chars().filter(char::is_ascii_digit).collect()
}

/// Status, headers and JSON body of an answer.
pub async fn answer(response: reqwest::Response) -> (u16, reqwest::header::HeaderMap, Value) {
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response.bytes().await.unwrap();
    let json = serde_json::from_slice(&body).unwrap_or_else(|_| {
        panic!(
            "status {status}: body is not JSON: {}",
            String::from_utf8_lossy(&body)
        )
    });
    (status, headers, json)
}

/// Asserts an error envelope and returns its `error` object.
pub async fn expect_error(response: reqwest::Response, status: u16, kind: &str) -> Value {
    let (actual, headers, body) = answer(response).await;
    assert_eq!(actual, status, "{body}");
    assert_eq!(headers["content-type"], "application/json; charset=utf-8");
    assert_eq!(body["meta"]["code"], status);
    assert_eq!(body["meta"]["type"], "object");
    assert_eq!(body["error"]["type"], kind, "{body}");
    assert!(body.get("data").is_none());
    body["error"].clone()
}

/// Asserts the row 2 answer: 401 `Invalid access token`.
pub async fn expect_invalid_token(response: reqwest::Response) {
    let error = expect_error(response, 401, "access_denied").await;
    assert_eq!(error["message"], "Invalid access token");
}

/// Asserts the answer for a merge request not in the status an action needs:
/// 422 with the one `$.status` entry of the contract.
pub async fn expect_incorrect_status(response: reqwest::Response) {
    let error = expect_error(response, 422, "validation_failed").await;
    assert_eq!(
        error["invalid"],
        json!([{"entry_type": "json_data_property", "entry": "$.status",
                "rules": [{"rule": "invalid", "description": "incorrect status", "params": []}]}])
    );
}

/// Every test that ran the in-process host ends with a check of its log: no
/// issued code, token, key or full phone number in any line, except the
/// `DEV SMS` lines of the development provider, whose job is to print them.
impl Drop for TestApp {
    fn drop(&mut self) {
        let Some(host) = &self.host else {
            return;
        };
        if std::thread::panicking() {
            return;
        }
        let outside_the_contract: Vec<String> = host
            .exchanges()
            .iter()
            .filter_map(|exchange| crate::contract::contract().check(exchange).err())
            .collect();
        assert!(
            outside_the_contract.is_empty(),
            "answers that openapi.yaml does not describe:\n{}",
            outside_the_contract.join("\n")
        );
        let gateway: &MockServer = &self.gateway;
        // The gateway's record is async; read it on a runtime of its own, as
        // drop may run inside the test's runtime.
        let requests = std::thread::scope(|scope| {
            scope
                .spawn(|| {
                    let runtime = tokio::runtime::Builder::new_current_thread()
                        .build()
                        .unwrap();
                    runtime
                        .block_on(gateway.received_requests())
                        .unwrap_or_default()
                })
                .join()
                .unwrap()
        });
        let codes: Vec<String> = requests
            .iter()
            .filter_map(|r| serde_json::from_slice::<Value>(&r.body).ok())
            .filter_map(|sms| sms["text"].as_str().map(code_in))
            .chain([SEEDED_CODE.to_owned()])
            .collect();
        let secrets: Vec<String> = self
            .tokens
            .lock()
            .unwrap()
            .iter()
            .cloned()
            .chain([API_KEY, HASH_KEY, GATEWAY_TOKEN, PHONE].map(str::to_owned))
            .collect();
        for line in host
            .logs()
            .lines()
            .iter()
            .filter(|line| !line.starts_with("DEV SMS"))
        {
            for secret in &secrets {
                assert!(
                    !line.contains(secret.as_str()),
                    "a log line leaks a secret: {line}"
                );
            }
            for code in &codes {
                // A code stands alone; the same digits inside an id or a time do not count.
                let alone =
                    regex::Regex::new(&format!(r"(^|[^0-9a-f.-]){code}([^0-9a-fZ-]|$)")).unwrap();
                assert!(
                    !alone.is_match(line),
                    "a log line leaks code {code}: {line}"
                );
            }
        }
    }
}
