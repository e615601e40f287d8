//! The request log: one JSON line per request, never a secret.

use serde_json::Value;

use crate::helpers::*;

#[tokio::test]
async fn logs_carry_no_code_token_key_or_full_phone() {
    let Some(app) = TestApp::local().await else {
        return;
    };
    let seeded = app.seed(Seed::default());
    let token = app.token(WRITE_SCOPE);
    assert_eq!(app.resend(&seeded.id).await.status(), 200);
    assert_eq!(app.resend(&seeded.id).await.status(), 429);
    let foreign = app.seed(Seed {
        legal_entity_id: OTHER_LEGAL_ENTITY,
        ..Seed::default()
    });
    assert_eq!(app.resend(&foreign.id).await.status(), 404);
    let code = code_in(app.sent_sms().await[0]["text"].as_str().unwrap());

    let lines = app.log_lines();
    assert_eq!(lines.len(), 3, "{lines:#?}");
    let record = app.record(&seeded.id).to_string();
    for line in &lines {
        for secret in [
            code.as_str(),
            token.as_str(),
            API_KEY,
            PHONE,
            HASH_KEY,
            GATEWAY_TOKEN,
            SEEDED_CODE,
        ] {
            assert!(!line.contains(secret), "log line leaks {secret}: {line}");
        }
        let hash_prefix = &record[record.find("code_hash").unwrap() + 12..][..16];
        assert!(
            !line.contains(hash_prefix),
            "log line leaks a code hash: {line}"
        );
    }
    let sent: Value = serde_json::from_str(&lines[0]).unwrap();
    assert_eq!(sent["status"], 200);
    assert_eq!(sent["outcome"], "sent");
    assert_eq!(sent["phone"], "+380*****4567");
    assert_eq!(sent["merge_request_id"], seeded.id);
    assert_eq!(sent["legal_entity_id"], LEGAL_ENTITY);
    assert!(sent["verification_id"].is_string());
    assert!(sent["gateway_latency_ms"].is_number());
    assert!(sent["request_id"].is_string());
    let refused: Value = serde_json::from_str(&lines[1]).unwrap();
    assert_eq!(refused["status"], 429);
    assert_eq!(refused["outcome"], "refused");
}

#[tokio::test]
async fn the_log_provider_prints_the_sms_marked_dev() {
    let Some(app) = TestApp::local_with(&[("sms_provider", "log")]).await else {
        return;
    };
    let seeded = app.seed(Seed::default());
    assert_eq!(app.resend(&seeded.id).await.status(), 200);
    assert!(app.gateway.received_requests().await.unwrap().is_empty());
    let dev_lines: Vec<String> = app
        .log_lines()
        .into_iter()
        .filter(|l| l.contains(PHONE))
        .collect();
    assert_eq!(dev_lines.len(), 1);
    assert!(
        dev_lines[0].starts_with(&format!("DEV SMS to {PHONE}: Код авторизації")),
        "{}",
        dev_lines[0]
    );
}

#[tokio::test]
async fn the_lifecycle_routes_log_no_secret_either() {
    let Some(app) = TestApp::local().await else {
        return;
    };
    let (status, _, created) =
        answer(app.create(&new_merge_request(otp_method(PHONE))).await).await;
    assert_eq!(status, 201);
    let id = created["data"]["id"].as_str().unwrap();
    let code = code_in(app.sent_sms().await[0]["text"].as_str().unwrap());
    assert_eq!(app.approve(id, "000000").await.status(), 403);
    assert_eq!(app.approve(id, &code).await.status(), 200);
    assert_eq!(app.get(id).await.status(), 200);
    assert_eq!(app.reject(id).await.status(), 200);

    let lines = app.log_lines();
    let routes: Vec<String> = lines
        .iter()
        .map(|line| {
            serde_json::from_str::<Value>(line).unwrap()["route"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(routes, ["create", "approve", "approve", "read", "reject"]);
    let stored_hash = app.record(id)["otp"]["verifications"][0]["code_hash"]
        .as_str()
        .unwrap()
        .to_owned();
    for line in &lines {
        for secret in [
            code.as_str(),
            "000000",
            API_KEY,
            PHONE,
            HASH_KEY,
            GATEWAY_TOKEN,
            &stored_hash[..16],
        ] {
            assert!(!line.contains(secret), "log line leaks {secret}: {line}");
        }
    }
}
