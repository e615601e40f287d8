//! Rows 1–5: who may call.

use serde_json::json;
use testhost::tokens::claims;

use crate::helpers::*;

async fn with_token(app: &TestApp, token: &str) -> reqwest::Response {
    let seeded = app.seed(Seed::default());
    app.client()
        .post(app.resend_url(&seeded.id))
        .bearer_auth(token)
        .header("Api-Key", API_KEY)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn row1_missing_or_non_bearer_authorization_is_401() {
    let Some(app) = TestApp::local().await else {
        return;
    };
    let seeded = app.seed(Seed::default());
    let url = app.resend_url(&seeded.id);
    for authorization in [
        None,
        Some("Basic dXNlcjpwYXNz"),
        Some("Bearer "),
        Some("Bearer"),
    ] {
        let mut request = app.client().post(&url).header("Api-Key", API_KEY);
        if let Some(value) = authorization {
            request = request.header("Authorization", value);
        }
        let error = expect_error(request.send().await.unwrap(), 401, "access_denied").await;
        assert_eq!(
            error["message"],
            "Authorization header is not set or doesn't contain Bearer token"
        );
    }
    assert!(app.sent_sms().await.is_empty());
}

#[tokio::test]
async fn row2_invalid_tokens_are_401() {
    let Some(app) = TestApp::local().await else {
        return;
    };
    let keys = keys();
    let valid = || claims(ISSUER, LEGAL_ENTITY, USER, WRITE_SCOPE, 600);
    let mut expired = valid();
    expired["exp"] = json!(expired["iat"].as_i64().unwrap() - 3600);
    let mut not_yet_valid = valid();
    not_yet_valid["nbf"] = json!(not_yet_valid["iat"].as_i64().unwrap() + 3600);
    let mut issued_in_future = valid();
    issued_in_future["iat"] = json!(issued_in_future["iat"].as_i64().unwrap() + 3600);
    let mut no_expiry = valid();
    no_expiry.as_object_mut().unwrap().remove("exp");
    let wrong_issuer = claims(
        "https://elsewhere.example",
        LEGAL_ENTITY,
        USER,
        WRITE_SCOPE,
        600,
    );
    let es256 = app.token_with(&keys.es256, &valid());
    let mut tampered = es256.clone();
    tampered.pop();
    tampered.push(if es256.ends_with('A') { 'B' } else { 'A' });
    // `alg: none` with the claims of a valid token and no signature.
    let unsigned = {
        use base64::Engine as _;
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        format!(
            "{}.{}.",
            b64.encode(r#"{"alg":"none","typ":"JWT","kid":"es"}"#),
            es256.split('.').nth(1).unwrap()
        )
    };
    let cases = [
        (
            "signed by a key outside the set",
            app.token_with(&keys.impostor, &valid()),
        ),
        ("expired", app.token_with(&keys.es256, &expired)),
        ("not yet valid", app.token_with(&keys.es256, &not_yet_valid)),
        (
            "issued in the future",
            app.token_with(&keys.es256, &issued_in_future),
        ),
        ("without exp", app.token_with(&keys.es256, &no_expiry)),
        ("wrong issuer", app.token_with(&keys.es256, &wrong_issuer)),
        (
            "HS256 while not allowed",
            app.token_with(&keys.hs256, &valid()),
        ),
        ("tampered signature", tampered),
        ("alg none", unsigned),
        ("malformed", "not.a.jwt".to_owned()),
        ("oversized", "a".repeat(20_000)),
    ];
    for (case, token) in cases {
        let error = expect_error(with_token(&app, &token).await, 401, "access_denied").await;
        assert_eq!(error["message"], "Invalid access token", "{case}");
    }
    assert!(app.sent_sms().await.is_empty());
}

#[tokio::test]
async fn es256_eddsa_and_allowed_hs256_tokens_are_accepted() {
    let Some(app) = TestApp::local_with(&[("auth_allow_hs256", "true")]).await else {
        return;
    };
    let keys = keys();
    for signer in [&keys.es256, &keys.eddsa, &keys.hs256] {
        let token = app.token_with(
            signer,
            &claims(ISSUER, LEGAL_ENTITY, USER, WRITE_SCOPE, 600),
        );
        assert_eq!(with_token(&app, &token).await.status(), 200);
    }
}

#[tokio::test]
async fn a_token_within_leeway_is_accepted() {
    let Some(app) = TestApp::local().await else {
        return;
    };
    let mut just_expired = claims(ISSUER, LEGAL_ENTITY, USER, WRITE_SCOPE, 600);
    just_expired["exp"] = json!(just_expired["iat"].as_i64().unwrap() - 5);
    let token = app.token_with(&keys().es256, &just_expired);
    assert_eq!(with_token(&app, &token).await.status(), 200);
}

#[tokio::test]
async fn row3_missing_api_key_is_401() {
    let Some(app) = TestApp::local().await else {
        return;
    };
    let seeded = app.seed(Seed::default());
    let response = app
        .client()
        .post(app.resend_url(&seeded.id))
        .bearer_auth(app.token(WRITE_SCOPE))
        .send()
        .await
        .unwrap();
    let error = expect_error(response, 401, "access_denied").await;
    assert_eq!(error["message"], "Api key is not set");
}

#[tokio::test]
async fn row4_unknown_api_key_or_another_mis_is_401() {
    let Some(app) = TestApp::local_with(&[(
        "mis_api_keys",
        &format!(
            "{},{}",
            api_key_entry(MIS_ID, API_KEY),
            api_key_entry("other-mis", "other-key")
        ),
    )])
    .await
    else {
        return;
    };
    let seeded = app.seed(Seed::default());
    let url = app.resend_url(&seeded.id);
    let unknown_key = app
        .client()
        .post(&url)
        .bearer_auth(app.token(WRITE_SCOPE))
        .header("Api-Key", "not-registered")
        .send()
        .await
        .unwrap();
    assert_eq!(
        expect_error(unknown_key, 401, "access_denied").await["message"],
        "Invalid api key"
    );
    let two_keys = app
        .resend_request(&seeded.id)
        .header("Api-Key", "not-registered")
        .send()
        .await
        .unwrap();
    assert_eq!(
        expect_error(two_keys, 401, "access_denied").await["message"],
        "Invalid api key"
    );

    let mut other_mis = claims(ISSUER, LEGAL_ENTITY, USER, WRITE_SCOPE, 600);
    other_mis["azp"] = json!("other-mis");
    let token = app.token_with(&keys().es256, &other_mis);
    let response = with_token(&app, &token).await;
    assert_eq!(
        expect_error(response, 401, "access_denied").await["message"],
        "Invalid api key"
    );

    let mut same_mis = claims(ISSUER, LEGAL_ENTITY, USER, WRITE_SCOPE, 600);
    same_mis["azp"] = json!(MIS_ID);
    let token = app.token_with(&keys().es256, &same_mis);
    assert_eq!(with_token(&app, &token).await.status(), 200);
}

#[tokio::test]
async fn api_key_header_name_is_case_insensitive() {
    let Some(app) = TestApp::local().await else {
        return;
    };
    let seeded = app.seed(Seed::default());
    let response = app
        .client()
        .post(app.resend_url(&seeded.id))
        .header(
            "AUTHORIZATION",
            format!("Bearer {}", app.token(WRITE_SCOPE)),
        )
        .header("API-KEY", API_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn row5_scope_without_merge_request_write_is_403() {
    let Some(app) = TestApp::local().await else {
        return;
    };
    let token = app.token("merge_request:read person:read");
    let error = expect_error(with_token(&app, &token).await, 403, "forbidden").await;
    assert_eq!(
        error["message"],
        "Your scope does not allow to access this resource. Missing allowances: merge_request:write"
    );
    assert!(app.sent_sms().await.is_empty());
}

#[tokio::test]
async fn checks_run_in_the_contract_order() {
    let Some(app) = TestApp::local().await else {
        return;
    };
    // No token and no api key: row 1 decides, not row 3.
    let response = app
        .client()
        .post(app.resend_url("not-a-uuid"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        expect_error(response, 401, "access_denied").await["message"],
        "Authorization header is not set or doesn't contain Bearer token"
    );
    // Bad scope and a malformed id: row 5 decides, not row 6.
    let response = app
        .client()
        .post(app.resend_url("not-a-uuid"))
        .bearer_auth(app.token("merge_request:read"))
        .header("Api-Key", API_KEY)
        .send()
        .await
        .unwrap();
    expect_error(response, 403, "forbidden").await;
}
