//! `Idempotency-Key`: a retried create or resend gets its first answer again,
//! with no second SMS and no second change.

use futures::future::join_all;
use serde_json::json;

use crate::helpers::*;

async fn resend_with_key(app: &TestApp, id: &str, key: &str) -> reqwest::Response {
    app.resend_request(id)
        .header("Idempotency-Key", key)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_repeated_resend_replays_the_first_answer() {
    let Some(app) = TestApp::local().await else {
        return;
    };
    let seeded = app.seed(Seed::default());
    let (status, headers, first) = answer(resend_with_key(&app, &seeded.id, "retry-1").await).await;
    assert_eq!(status, 200);
    assert!(headers.get("idempotent-replayed").is_none());
    let after_first = app.record(&seeded.id);

    let (status, headers, again) = answer(resend_with_key(&app, &seeded.id, "retry-1").await).await;
    assert_eq!(status, 200);
    assert_eq!(again, first, "the replay is the first answer");
    assert_eq!(headers["idempotent-replayed"], "true");
    assert_eq!(headers["x-otp-sends-remaining"], "3");
    assert_eq!(app.sent_sms().await.len(), 1);
    assert_eq!(
        app.record(&seeded.id),
        after_first,
        "the replay changed the merge request"
    );

    // Without the key the same resend is a new request, refused by the cooldown.
    assert_eq!(app.resend(&seeded.id).await.status(), 429);
}

#[tokio::test]
async fn a_repeated_create_creates_once() {
    let app = TestApp::http_only().await;
    let phone = unique_phone();
    let body = new_merge_request(otp_method(&phone));
    let create = || async {
        let response = app
            .call(reqwest::Method::POST, "/api/merge_requests")
            .header("Idempotency-Key", "create-1")
            .json(&body);
        answer(response.send().await.unwrap()).await
    };
    let (status, _, first) = create().await;
    assert_eq!(status, 201, "{first}");
    let (status, headers, again) = create().await;
    assert_eq!(status, 201);
    assert_eq!(headers["idempotent-replayed"], "true");
    assert_eq!(again["data"]["id"], first["data"]["id"]);
    assert_eq!(app.sms_to(&phone).await.len(), 1);
}

#[tokio::test]
async fn a_key_reused_for_another_request_is_422() {
    let app = TestApp::http_only().await;
    let key = format!("reused-{}", uuid_v4());
    let first = app
        .call(reqwest::Method::POST, "/api/merge_requests")
        .header("Idempotency-Key", &key)
        .json(&new_merge_request(json!({"type": "OFFLINE"})))
        .send()
        .await
        .unwrap();
    assert_eq!(first.status(), 201);
    let other = app
        .call(reqwest::Method::POST, "/api/merge_requests")
        .header("Idempotency-Key", &key)
        .json(&new_merge_request(json!({"type": "OFFLINE"})))
        .send()
        .await
        .unwrap();
    let error = expect_error(other, 422, "validation_failed").await;
    assert_eq!(
        error["message"],
        "Idempotency-Key was already used with another request"
    );
}

#[tokio::test]
async fn keys_belong_to_one_legal_entity() {
    let Some(app) = TestApp::local().await else {
        return;
    };
    let ours = app.seed(Seed::default());
    let theirs = app.seed(Seed {
        legal_entity_id: OTHER_LEGAL_ENTITY,
        ..Seed::default()
    });
    assert_eq!(
        resend_with_key(&app, &ours.id, "shared-key").await.status(),
        200
    );
    let claims = testhost::tokens::claims(ISSUER, OTHER_LEGAL_ENTITY, USER, WRITE_SCOPE, 600);
    let response = app
        .client()
        .post(app.resend_url(&theirs.id))
        .bearer_auth(app.token_with(&keys().es256, &claims))
        .header("Api-Key", API_KEY)
        .header("Idempotency-Key", "shared-key")
        .send()
        .await
        .unwrap();
    let (status, headers, _) = answer(response).await;
    assert_eq!(status, 200);
    assert!(headers.get("idempotent-replayed").is_none());
    assert_eq!(app.sent_sms().await.len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn parallel_retries_with_one_key_send_one_sms() {
    let Some(app) = TestApp::local_with(&[("otp_resend_cooldown_seconds", "0")]).await else {
        return;
    };
    for round in 0..5 {
        let seeded = app.seed(Seed::default());
        let key = format!("parallel-{round}");
        let responses = join_all((0..50).map(|_| resend_with_key(&app, &seeded.id, &key))).await;
        let mut bodies = Vec::new();
        for response in responses {
            let (status, _, body) = answer(response).await;
            match status {
                200 => bodies.push(body),
                409 => assert_eq!(body["error"]["type"], "request_conflict"),
                other => panic!("unexpected {other}: {body}"),
            }
        }
        assert!(!bodies.is_empty());
        assert!(
            bodies.iter().all(|b| *b == bodies[0]),
            "replays differ from the first answer"
        );
        assert_eq!(app.sent_sms().await.len(), round + 1);
        assert_eq!(app.record(&seeded.id)["otp"]["sends"], 2);
    }
}

#[tokio::test]
async fn a_server_error_is_not_kept_so_the_retry_runs() {
    let Some(app) = TestApp::local().await else {
        return;
    };
    app.gateway_fails_with(500).await;
    let seeded = app.seed(Seed::default());
    assert_eq!(
        resend_with_key(&app, &seeded.id, "after-outage")
            .await
            .status(),
        503
    );
    // The gateway recovers.
    app.gateway_recovers().await;
    let (status, headers, _) =
        answer(resend_with_key(&app, &seeded.id, "after-outage").await).await;
    assert_eq!(status, 200);
    assert!(headers.get("idempotent-replayed").is_none());
}

#[tokio::test]
async fn a_malformed_key_is_400() {
    let app = TestApp::http_only().await;
    let response = app
        .call(reqwest::Method::POST, "/api/merge_requests")
        .header("Idempotency-Key", "")
        .json(&new_merge_request(json!({"type": "OFFLINE"})))
        .send()
        .await
        .unwrap();
    expect_error(response, 400, "request_malformed").await;
}
