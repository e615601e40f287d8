//! Hostile input: whatever a client sends, the answer is the envelope with its
//! own status — never a trap, a panic or an empty 500.

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use serde_json::Value;

use crate::helpers::*;

/// Sends `request` and checks the answer is a well-formed envelope.
async fn assert_envelope(response: reqwest::Response) -> u16 {
    let status = response.status().as_u16();
    assert_ne!(status, 500, "the component failed");
    assert_eq!(
        response.headers()["content-type"],
        "application/json; charset=utf-8"
    );
    let body: Value =
        serde_json::from_slice(&response.bytes().await.unwrap()).expect("a JSON envelope");
    assert_eq!(body["meta"]["code"], status, "{body}");
    assert!(
        body.get("data").is_some() != body.get("error").is_some(),
        "{body}"
    );
    status
}

#[tokio::test]
async fn deeply_nested_json_is_refused_cleanly() {
    let Some(app) = TestApp::local_with(&[("max_body_bytes", "1048576")]).await else {
        return;
    };
    let seeded = app.seed(Seed::default());
    let bomb = format!("{}{}", "[".repeat(200_000), "]".repeat(200_000));
    let response = app
        .resend_with_body(&seeded.id, "application/json", &bomb)
        .await;
    expect_error(response, 400, "request_malformed").await;
    assert!(app.sent_sms().await.is_empty());
}

#[tokio::test]
async fn invalid_utf8_and_control_characters_are_refused_cleanly() {
    let Some(app) = TestApp::local().await else {
        return;
    };
    let path = "/api/merge_requests";
    for body in [
        vec![0xff, 0xfe, 0x7b],
        b"{\"merge_request\": \"\x01\x02\"}".to_vec(),
        b"\"\\ud800\"".to_vec(),
    ] {
        let response = app
            .call(reqwest::Method::POST, path)
            .header("Content-Type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        let status = assert_envelope(response).await;
        assert!([400, 422].contains(&status), "{status}");
    }
}

#[tokio::test]
async fn duplicate_keys_take_the_last_value_and_stay_validated() {
    let app = TestApp::http_only().await;
    let body = format!(
        r#"{{"merge_request": {{"master_person_id": "{}", "merge_person_id": "x", "merge_person_id": "{}",
            "authentication_method_current": {{"type": "OFFLINE"}}}}}}"#,
        uuid_v4(),
        uuid_v4()
    );
    let response = app
        .call(reqwest::Method::POST, "/api/merge_requests")
        .header("Content-Type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(assert_envelope(response).await, 201);
}

#[tokio::test]
async fn a_token_with_an_unknown_kid_is_401() {
    let app = TestApp::http_only().await;
    let claims = testhost::tokens::claims(ISSUER, LEGAL_ENTITY, USER, WRITE_SCOPE, 600);
    let mut forged = app.token_with(&keys().es256, &claims);
    // Same signature, header naming a kid that is not in the key set.
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let rest = forged.split_once('.').unwrap().1.to_owned();
    forged = format!(
        "{}.{rest}",
        b64.encode(r#"{"alg":"ES256","typ":"JWT","kid":"missing"}"#)
    );
    let response = app
        .client()
        .post(app.resend_url(&uuid_v4()))
        .bearer_auth(forged)
        .header("Api-Key", API_KEY)
        .send()
        .await
        .unwrap();
    expect_invalid_token(response).await;
}

/// Arbitrary requests, built from the pieces attackers use, through the real
/// component: every one gets an envelope. 256 cases per run; raise
/// `PROPTEST_CASES` for a longer search.
#[test]
fn arbitrary_requests_always_get_an_envelope() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let Some(app) = runtime.block_on(TestApp::local()) else {
        return;
    };
    let seeded = app.seed(Seed::default());
    let valid_token = app.token("merge_request:write merge_request:read");
    let segment = prop_oneof![
        Just(seeded.id.clone()),
        Just("..".to_owned()),
        Just("%2e%2e%2f".to_owned()),
        Just("%00".to_owned()),
        Just("actions".to_owned()),
        Just("resend_otp".to_owned()),
        Just("approve".to_owned()),
        "[a-zA-Z0-9%._~-]{0,40}",
    ];
    let path = prop::collection::vec(segment, 0..6).prop_map(|segments| {
        let mut path = "/api/merge_requests".to_owned();
        for segment in segments {
            path.push('/');
            path.push_str(&segment);
        }
        path
    });
    let method = prop_oneof![
        Just("GET"),
        Just("POST"),
        Just("PATCH"),
        Just("PUT"),
        Just("DELETE"),
        Just("OPTIONS")
    ];
    let authorization = prop_oneof![
        Just(None),
        Just(Some(format!("Bearer {valid_token}"))),
        "[ -~]{0,300}".prop_map(Some),
        "[A-Za-z0-9_-]{1,60}\\.[A-Za-z0-9_-]{0,200}\\.[A-Za-z0-9_-]{0,100}"
            .prop_map(|t| Some(format!("Bearer {t}"))),
    ];
    let api_key = prop_oneof![
        Just(None),
        Just(Some(API_KEY.to_owned())),
        "[ -~]{0,100}".prop_map(Some)
    ];
    let content_type = prop_oneof![
        Just(None),
        Just(Some("application/json".to_owned())),
        Just(Some("text/plain".to_owned())),
        "[ -~]{0,60}".prop_map(Some),
    ];
    let body = prop_oneof![
        Just(Vec::new()),
        prop::collection::vec(any::<u8>(), 0..512),
        Just(br#"{"verification_code": "424242"}"#.to_vec()),
        "[\\[\\]{}\":,0-9a-z ]{0,200}".prop_map(String::into_bytes),
    ];
    let request_id = prop_oneof![Just(None), "[ -~]{0,250}".prop_map(Some)];

    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(256);
    let mut runner = TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    });
    runner
        .run(
            &(
                method,
                path,
                authorization,
                api_key,
                content_type,
                body,
                request_id,
            ),
            |(method, path, authorization, api_key, content_type, body, request_id)| {
                runtime.block_on(async {
                    let mut request = app
                        .client()
                        .request(method.parse().unwrap(), format!("{}{path}", app.base_url))
                        .body(body);
                    for (name, value) in [
                        ("authorization", authorization),
                        ("api-key", api_key),
                        ("content-type", content_type),
                        ("x-request-id", request_id),
                    ] {
                        if let Some(value) = value {
                            request = request.header(name, value);
                        }
                    }
                    if let Ok(response) = request.send().await {
                        assert_envelope(response).await;
                    }
                });
                Ok(())
            },
        )
        .unwrap();
}

#[tokio::test]
async fn a_public_key_used_as_an_hmac_secret_is_refused() {
    let app = TestApp::http_only().await;
    // The classic confusion: sign HS256 with the bytes of the ES256 public key.
    let jwks: Value = serde_json::from_str(&keys().jwks).unwrap();
    let public_x = jwks["keys"][0]["x"].as_str().unwrap();
    let forger = testhost::tokens::Signer::hs256("es", public_x.as_bytes());
    let token = forger
        .sign(&testhost::tokens::claims(
            ISSUER,
            LEGAL_ENTITY,
            USER,
            WRITE_SCOPE,
            600,
        ))
        .unwrap();
    let response = app
        .client()
        .post(app.resend_url(&uuid_v4()))
        .bearer_auth(token)
        .header("Api-Key", API_KEY)
        .send()
        .await
        .unwrap();
    expect_invalid_token(response).await;
}
