//! Row 11 and the SMS itself: what reaches the gateway, and what a failed
//! send leaves behind (nothing).

use std::time::Duration;

use serde_json::Value;
use wiremock::matchers::method;
use wiremock::{Mock, ResponseTemplate};

use crate::helpers::*;

#[tokio::test]
async fn the_sms_carries_a_fresh_code_of_the_configured_length_in_the_template() {
    let Some(app) = TestApp::local_with(&[
        ("otp_code_length", "8"),
        (
            "sms_template",
            "Your eHealth code: {code}. Do not share it.",
        ),
    ])
    .await
    else {
        return;
    };
    let seeded = app.seed(Seed::default());
    let (status, _, body) = answer(app.resend(&seeded.id).await).await;
    assert_eq!(status, 200);

    let requests = app.gateway.received_requests().await.unwrap();
    assert_eq!(requests.len(), 1);
    let request = &requests[0];
    assert_eq!(
        request.headers["authorization"],
        format!("Bearer {GATEWAY_TOKEN}").as_str()
    );
    assert_eq!(
        request.headers["idempotency-key"],
        body["data"]["id"].as_str().unwrap()
    );
    assert_eq!(
        request.headers["content-length"],
        request.body.len().to_string().as_str()
    );
    let sms: Value = serde_json::from_slice(&request.body).unwrap();
    assert_eq!(sms["to"], PHONE);
    assert_eq!(sms["reference"], body["data"]["id"]);
    let text = sms["text"].as_str().unwrap();
    let code = code_in(text);
    assert_eq!(code.len(), 8);
    assert_eq!(text, format!("Your eHealth code: {code}. Do not share it."));
    assert_ne!(code, SEEDED_CODE);
}

#[tokio::test]
async fn the_default_template_is_the_ehealth_text() {
    let Some(app) = TestApp::local().await else {
        return;
    };
    let seeded = app.seed(Seed::default());
    assert_eq!(app.resend(&seeded.id).await.status(), 200);
    let text = app.sent_sms().await[0]["text"].as_str().unwrap().to_owned();
    let code = code_in(&text);
    assert_eq!(code.len(), 6);
    assert_eq!(
        text,
        format!("Код авторизації дій в системі eHealth: {code}")
    );
}

/// A resend the gateway does not take: 503 with `Retry-After`, and the old
/// code is still the one: same record, nothing counted.
async fn assert_send_fails_and_changes_nothing(app: &TestApp) -> Seeded {
    let seeded = app.seed(Seed::default());
    let before = app.record(&seeded.id);
    let response = app.resend(&seeded.id).await;
    assert!(response.headers().contains_key("retry-after"));
    let error = expect_error(response, 503, "service_unavailable").await;
    assert_eq!(error["message"], "SMS gateway is unavailable");
    assert_eq!(app.record(&seeded.id), before);
    let active = &before["otp"]["verifications"][0];
    assert_eq!(active["active"], true);
    assert_eq!(
        active["code_hash"],
        code_hash(
            &seeded.id,
            seeded.verification_id.as_deref().unwrap(),
            SEEDED_CODE
        )
    );
    seeded
}

#[tokio::test]
async fn row11_a_gateway_error_is_503_and_the_old_code_stays_valid() {
    let Some(app) = TestApp::local().await else {
        return;
    };
    app.gateway_fails_with(500).await;
    let seeded = assert_send_fails_and_changes_nothing(&app).await;

    // The gateway recovers: the patient may retry at once, and the budget was not spent.
    app.gateway_recovers().await;
    let (status, headers, _) = answer(app.resend(&seeded.id).await).await;
    assert_eq!(status, 200);
    assert_eq!(headers["x-otp-sends-remaining"], "3");
}

#[tokio::test]
async fn row11_a_gateway_timeout_is_503_and_the_old_code_stays_valid() {
    let Some(app) = TestApp::local_with(&[("sms_timeout_ms", "200")]).await else {
        return;
    };
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_delay(Duration::from_secs(5)))
        .with_priority(1)
        .mount(&app.gateway)
        .await;
    assert_send_fails_and_changes_nothing(&app).await;
}

#[tokio::test]
async fn row11_a_refused_connection_is_503_and_the_old_code_stays_valid() {
    let closed_port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let origin = format!("http://127.0.0.1:{closed_port}");
    let Some(app) = TestApp::local_with(&[
        ("sms_gateway_url", &format!("{origin}/messages")),
        ("sms_gateway_origin", &origin),
    ])
    .await
    else {
        return;
    };
    assert_send_fails_and_changes_nothing(&app).await;
}

#[tokio::test]
async fn an_undeclared_outbound_host_is_refused_as_spin_refuses_it() {
    // The URL points at the mock, but spin.toml only allows the default origin.
    let Some(app) =
        TestApp::local_with(&[("sms_gateway_origin", "https://sms-gateway.invalid")]).await
    else {
        return;
    };
    assert_send_fails_and_changes_nothing(&app).await;
    assert!(app.gateway.received_requests().await.unwrap().is_empty());
}

#[tokio::test]
async fn the_fallback_gateway_is_tried_once_when_the_primary_fails() {
    let fallback = wiremock::MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(201))
        .mount(&fallback)
        .await;
    let Some(app) = TestApp::local_with(&[
        ("sms_fallback_url", &format!("{}/fallback", fallback.uri())),
        ("sms_fallback_origin", &fallback.uri()),
    ])
    .await
    else {
        return;
    };
    app.gateway_fails_with(503).await;
    let seeded = app.seed(Seed::default());
    assert_eq!(app.resend(&seeded.id).await.status(), 200);
    assert_eq!(app.gateway.received_requests().await.unwrap().len(), 1);
    let fallback_requests = fallback.received_requests().await.unwrap();
    assert_eq!(fallback_requests.len(), 1);
    assert_eq!(fallback_requests[0].url.path(), "/fallback");
}

#[tokio::test]
async fn the_twilio_provider_posts_a_form_with_basic_auth() {
    let twilio = wiremock::MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(201))
        .mount(&twilio)
        .await;
    let Some(app) = TestApp::local_with(&[
        ("sms_provider", "twilio"),
        ("sms_gateway_url", &twilio.uri()),
        ("sms_gateway_origin", &twilio.uri()),
        ("twilio_account_sid", "AC123"),
        ("twilio_auth_token", "twilio-secret"),
        ("twilio_from", "+15005550006"),
    ])
    .await
    else {
        return;
    };
    let seeded = app.seed(Seed::default());
    assert_eq!(app.resend(&seeded.id).await.status(), 200);
    let requests = twilio.received_requests().await.unwrap();
    assert_eq!(requests.len(), 1);
    assert_eq!(
        requests[0].url.path(),
        "/2010-04-01/Accounts/AC123/Messages.json"
    );
    assert_eq!(
        requests[0].headers["authorization"],
        "Basic QUMxMjM6dHdpbGlvLXNlY3JldA=="
    );
    let form = String::from_utf8(requests[0].body.clone()).unwrap();
    assert!(
        form.starts_with("To=%2B380501234567&From=%2B15005550006&Body="),
        "{form}"
    );
}

#[tokio::test]
async fn phones_outside_the_allowed_prefixes_get_no_sms() {
    let Some(app) = TestApp::local_with(&[("sms_allowed_prefixes", "+38067,+38097")]).await else {
        return;
    };
    let seeded = app.seed(Seed::default());
    let before = app.record(&seeded.id);
    for response in [
        app.resend(&seeded.id).await,
        app.create(&new_merge_request(otp_method(PHONE))).await,
    ] {
        let error = expect_error(response, 422, "validation_failed").await;
        assert_eq!(
            error["invalid"][0]["entry"],
            "$.authentication_method_current.phone_number"
        );
    }
    assert_eq!(app.record(&seeded.id), before);
    assert!(app.sent_sms().await.is_empty());
    let allowed = app
        .create(&new_merge_request(otp_method("+380671234567")))
        .await;
    assert_eq!(allowed.status(), 201);
    assert_eq!(app.sent_sms().await.len(), 1);
}

#[tokio::test]
async fn a_2xx_answer_without_a_readable_body_is_still_a_sent_sms() {
    let Some(app) = TestApp::local().await else {
        return;
    };
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_string("<html>ok</html>"))
        .with_priority(1)
        .mount(&app.gateway)
        .await;
    let seeded = app.seed(Seed::default());
    assert_eq!(app.resend(&seeded.id).await.status(), 200);
    let record = app.record(&seeded.id);
    assert_eq!(record["otp"]["verifications"][1]["active"], true);
    assert!(
        record["otp"]["verifications"][1]
            .get("gateway_message_id")
            .is_none()
    );
}
