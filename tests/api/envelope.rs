//! The envelope around every answer, the body rules, routing, and row 12.

use crate::helpers::*;

#[tokio::test]
async fn other_methods_on_the_route_are_405_with_allow() {
    let Some(app) = TestApp::local().await else {
        return;
    };
    let seeded = app.seed(Seed::default());
    for method in [
        reqwest::Method::GET,
        reqwest::Method::PUT,
        reqwest::Method::PATCH,
        reqwest::Method::DELETE,
    ] {
        let response = app
            .client()
            .request(method.clone(), app.resend_url(&seeded.id))
            .send()
            .await
            .unwrap();
        assert_eq!(response.headers()["allow"], "POST");
        expect_error(response, 405, "method_not_allowed").await;
    }
}

#[tokio::test]
async fn unknown_routes_are_404_in_the_envelope() {
    let app = TestApp::http_only().await;
    for path in [
        "/",
        "/api",
        "/api/merge_requests/x/actions/approve_otp",
        "/api/merge_requests/x/actions/resend_otp/extra",
    ] {
        let response = app
            .client()
            .post(format!("{}{path}", app.base_url))
            .send()
            .await
            .unwrap();
        expect_error(response, 404, "not_found").await;
    }
}

#[tokio::test]
async fn a_json_body_is_accepted_and_ignored() {
    let Some(app) = TestApp::local().await else {
        return;
    };
    let seeded = app.seed(Seed::default());
    let response = app
        .resend_with_body(
            &seeded.id,
            "application/json",
            r#"{"anything": ["is", "ignored"]}"#,
        )
        .await;
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn a_body_over_the_limit_is_413() {
    let Some(app) = TestApp::local_with(&[("max_body_bytes", "64")]).await else {
        return;
    };
    let seeded = app.seed(Seed::default());
    let body = format!(r#"{{"padding": "{}"}}"#, "x".repeat(100));
    let response = app
        .resend_with_body(&seeded.id, "application/json", &body)
        .await;
    expect_error(response, 413, "request_too_large").await;
    assert!(app.sent_sms().await.is_empty());
}

#[tokio::test]
async fn a_body_that_is_not_json_is_400() {
    let Some(app) = TestApp::local().await else {
        return;
    };
    let seeded = app.seed(Seed::default());
    for body in ["{not json", "\u{0}\u{1}", "{\"a\": 1} trailing"] {
        let response = app
            .resend_with_body(&seeded.id, "application/json", body)
            .await;
        expect_error(response, 400, "request_malformed").await;
    }
    assert!(app.sent_sms().await.is_empty());
}

#[tokio::test]
async fn a_body_of_another_media_type_is_415() {
    let Some(app) = TestApp::local().await else {
        return;
    };
    let seeded = app.seed(Seed::default());
    let response = app
        .resend_with_body(&seeded.id, "text/plain", "hello")
        .await;
    expect_error(response, 415, "content_type_invalid").await;
}

#[tokio::test]
async fn request_ids_are_echoed_only_when_well_formed() {
    let app = TestApp::http_only().await;
    let uuid =
        regex::Regex::new(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
            .unwrap();
    for (sent, kept) in [
        ("short", false),
        ("x".repeat(201).as_str(), false),
        ("a-good-request-id-1234567", true),
    ] {
        let response = app
            .client()
            .post(app.resend_url("x"))
            .header("X-Request-ID", sent)
            .send()
            .await
            .unwrap();
        let (_, headers, body) = answer(response).await;
        let id = body["meta"]["request_id"].as_str().unwrap().to_owned();
        assert_eq!(headers["x-request-id"], id.as_str());
        if kept {
            assert_eq!(id, sent);
        } else {
            assert!(uuid.is_match(&id), "{id}");
        }
    }
}

#[tokio::test]
async fn row12_an_unavailable_store_is_503() {
    // A manifest that grants no key-value store: Spin answers `open` with
    // access-denied, and so does the test host.
    let manifest = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/spin.toml"))
        .unwrap()
        .replace(r#"key_value_stores = ["default"]"#, "key_value_stores = []");
    let dir = std::env::temp_dir().join(format!("resend-otp-{}", uuid_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("spin.toml"), manifest).unwrap();
    let app = TestApp::try_spawn(&[], &dir.join("spin.toml"))
        .await
        .unwrap();
    let seeded = app.seed(Seed::default());
    let error = expect_error(app.resend(&seeded.id).await, 503, "service_unavailable").await;
    assert_eq!(error["message"], "Storage is unavailable");
    assert!(app.sent_sms().await.is_empty());
}

#[tokio::test]
async fn row12_an_unreadable_record_is_503_not_a_crash() {
    let Some(app) = TestApp::local().await else {
        return;
    };
    let id = uuid_v4();
    app.host().key_value().set(
        "default",
        &format!("merge_request:{id}"),
        b"{\"version\": 1, \"merge".to_vec(),
    );
    let error = expect_error(app.resend(&id).await, 503, "service_unavailable").await;
    assert_eq!(error["message"], "Storage is unavailable");
}

#[tokio::test]
async fn an_undeclared_variable_fails_to_start_as_on_spin() {
    let result = TestApp::try_spawn(
        &[("not_in_the_manifest", "1")],
        concat!(env!("CARGO_MANIFEST_DIR"), "/spin.toml").as_ref(),
    )
    .await;
    assert!(result.is_err());
}

#[tokio::test]
async fn a_real_provider_without_a_hash_key_refuses_to_serve() {
    let Some(app) = TestApp::local_with(&[("otp_hash_key", "")]).await else {
        return;
    };
    let seeded = app.seed(Seed::default());
    let error = expect_error(app.resend(&seeded.id).await, 503, "service_unavailable").await;
    assert_eq!(error["message"], "Service is not configured");
    assert!(app.sent_sms().await.is_empty());
}
