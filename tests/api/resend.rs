//! Rows 6–10 and the success answer.

use regex::Regex;
use serde_json::json;

use crate::helpers::*;

#[tokio::test]
async fn success_answers_the_new_verification_in_the_envelope() {
    let Some(app) = TestApp::local().await else {
        return;
    };
    let seeded = app.seed(Seed::default());
    let response = app
        .resend_request(&seeded.id)
        .header("X-Request-ID", "clinic-request-0001-abcdef")
        .send()
        .await
        .unwrap();
    let (status, headers, body) = answer(response).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(headers["content-type"], "application/json; charset=utf-8");
    assert_eq!(headers["x-request-id"], "clinic-request-0001-abcdef");
    assert_eq!(headers["x-otp-sends-remaining"], "3");
    assert_eq!(headers["x-otp-resend-after"], "60");

    let meta = body["meta"].as_object().unwrap();
    assert_eq!(meta.len(), 4, "{body}");
    assert_eq!(meta["code"], 200);
    assert_eq!(meta["type"], "object");
    assert_eq!(meta["request_id"], "clinic-request-0001-abcdef");
    assert_eq!(meta["url"], app.resend_url(&seeded.id));

    let data = body["data"].as_object().unwrap();
    let keys: Vec<&str> = data.keys().map(String::as_str).collect();
    assert_eq!(keys, ["active", "code_expired_at", "id", "status"]);
    assert_eq!(data["status"], "NEW");
    assert_eq!(data["active"], true);
    let id = data["id"].as_str().unwrap();
    assert!(
        Regex::new(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
            .unwrap()
            .is_match(id)
    );
    assert_ne!(Some(id.to_owned()), seeded.verification_id);
    let expiry = data["code_expired_at"].as_str().unwrap();
    assert!(
        Regex::new(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$")
            .unwrap()
            .is_match(expiry),
        "{expiry}"
    );

    // The expiry is the stored one, ten minutes after issue.
    let record = app.record(&seeded.id);
    let stored = &record["otp"]["verifications"][1];
    assert_eq!(stored["id"], id);
    assert_eq!(
        stored["code_expired_at"].as_i64().unwrap() - stored["inserted_at"].as_i64().unwrap(),
        600_000_000
    );
    assert!(body.get("error").is_none());
}

#[tokio::test]
async fn resend_cancels_the_previous_verification_and_stores_only_a_keyed_hash() {
    let Some(app) = TestApp::local().await else {
        return;
    };
    let seeded = app.seed(Seed::default());
    let (status, _, body) = answer(app.resend(&seeded.id).await).await;
    assert_eq!(status, 200, "{body}");
    let new_id = body["data"]["id"].as_str().unwrap();

    let record = app.record(&seeded.id);
    let verifications = record["otp"]["verifications"].as_array().unwrap();
    assert_eq!(verifications.len(), 2);
    assert_eq!(
        verifications[0]["id"].as_str(),
        seeded.verification_id.as_deref()
    );
    assert_eq!(verifications[0]["status"], "CANCELED");
    assert_eq!(verifications[0]["active"], false);
    assert_eq!(verifications[1]["id"], new_id);
    assert_eq!(verifications[1]["status"], "NEW");
    assert_eq!(verifications[1]["active"], true);
    assert_eq!(record["otp"]["sends"], 2);
    assert_eq!(record["otp"]["pending"], json!(null));
    // The gateway's id for the message is kept with the verification.
    assert_eq!(verifications[1]["gateway_message_id"], "gateway-message-1");

    let sms = app.sent_sms().await;
    assert_eq!(sms.len(), 1);
    let code = code_in(sms[0]["text"].as_str().unwrap());
    let stored = verifications[1]["code_hash"].as_str().unwrap();
    assert_eq!(stored, code_hash(&seeded.id, new_id, &code));
    assert!(
        !record.to_string().contains(&code),
        "the code is stored in clear"
    );
    assert!(!body.to_string().contains(&code), "the code is returned");
    // The method used is kept on the merge request.
    assert_eq!(
        record["merge_request"]["authentication_method_current"]["phone_number"],
        PHONE
    );
}

#[tokio::test]
async fn a_merge_request_without_any_code_yet_gets_its_first() {
    let Some(app) = TestApp::local().await else {
        return;
    };
    let seeded = app.seed(Seed {
        last_sent_seconds_ago: None,
        sends: 0,
        ..Seed::default()
    });
    let (status, headers, _) = answer(app.resend(&seeded.id).await).await;
    assert_eq!(status, 200);
    assert_eq!(headers["x-otp-sends-remaining"], "4");
    assert_eq!(
        app.record(&seeded.id)["otp"]["verifications"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

#[tokio::test]
async fn row6_a_malformed_id_is_not_found() {
    let Some(app) = TestApp::local().await else {
        return;
    };
    for id in [
        "not-a-uuid",
        "7d23a6b046f24b529a5e2c4f7e0c1a11",
        "%7B7d23a6b0-46f2-4b52-9a5e-2c4f7e0c1a11%7D",
        "..%2F..%2Fetc",
    ] {
        let error = expect_error(app.resend(id).await, 404, "not_found").await;
        assert_eq!(error["message"], "Merge request not found", "{id}");
    }
}

#[tokio::test]
async fn row7_unknown_or_foreign_merge_requests_are_not_found() {
    let Some(app) = TestApp::local().await else {
        return;
    };
    let error = expect_error(app.resend(&uuid_v4()).await, 404, "not_found").await;
    assert_eq!(error["message"], "Merge request not found");

    let foreign = app.seed(Seed {
        legal_entity_id: OTHER_LEGAL_ENTITY,
        ..Seed::default()
    });
    let before = app.record(&foreign.id);
    let error = expect_error(app.resend(&foreign.id).await, 404, "not_found").await;
    assert_eq!(error["message"], "Merge request not found");
    assert_eq!(app.record(&foreign.id), before);
    assert!(app.sent_sms().await.is_empty());
}

#[tokio::test]
async fn row8_a_merge_request_not_in_status_new_is_422() {
    let Some(app) = TestApp::local().await else {
        return;
    };
    for status in ["APPROVED", "SIGNED", "REJECTED", "EXPIRED"] {
        // An OFFLINE method too: the status is checked first.
        let seeded = app.seed(Seed {
            status,
            method: json!({"type": "OFFLINE"}),
            ..Seed::default()
        });
        expect_incorrect_status(app.resend(&seeded.id).await).await;
    }
    assert!(app.sent_sms().await.is_empty());
}

#[tokio::test]
async fn row9_a_method_without_otp_is_422() {
    let Some(app) = TestApp::local().await else {
        return;
    };
    for method in [
        json!({"type": "OFFLINE"}),
        json!({"type": "THIRD_PERSON", "value": uuid_v4()}),
    ] {
        let seeded = app.seed(Seed {
            method,
            ..Seed::default()
        });
        let before = app.record(&seeded.id);
        let error = expect_error(app.resend(&seeded.id).await, 422, "validation_failed").await;
        assert_eq!(
            error["invalid"],
            json!([{"entry_type": "json_data_property", "entry": "$.authentication_method_current",
                    "rules": [{"rule": "invalid", "description": "Auth method is not OTP", "params": []}]}])
        );
        assert_eq!(
            app.record(&seeded.id),
            before,
            "a refused request changed the record"
        );
    }
    assert!(app.sent_sms().await.is_empty());
}

#[tokio::test]
async fn a_third_person_with_a_phone_gets_the_code() {
    let Some(app) = TestApp::local().await else {
        return;
    };
    let confidant_phone = "+380671112233";
    let seeded = app.seed(Seed {
        method: json!({"type": "THIRD_PERSON", "value": uuid_v4(), "phone_number": confidant_phone}),
        ..Seed::default()
    });
    assert_eq!(app.resend(&seeded.id).await.status(), 200);
    let sms = app.sent_sms().await;
    assert_eq!(sms.len(), 1);
    assert_eq!(sms[0]["to"], confidant_phone);
}

#[tokio::test]
async fn row10_cooldown_is_429_with_retry_after_and_changes_nothing() {
    let Some(app) = TestApp::local().await else {
        return;
    };
    let seeded = app.seed(Seed {
        last_sent_seconds_ago: Some(15),
        ..Seed::default()
    });
    let before = app.record(&seeded.id);
    let response = app.resend(&seeded.id).await;
    let retry_after: u64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((44..=46).contains(&retry_after), "{retry_after}");
    let error = expect_error(response, 429, "too_many_requests").await;
    assert!(
        error["message"].as_str().unwrap().contains("sent recently"),
        "{error}"
    );
    assert_eq!(app.record(&seeded.id), before);
    assert!(app.sent_sms().await.is_empty());
}

#[tokio::test]
async fn row10_the_send_budget_includes_the_first_sms() {
    let Some(app) = TestApp::local_with(&[("otp_max_sends", "2")]).await else {
        return;
    };
    let seeded = app.seed(Seed::default());
    let (status, headers, _) = answer(app.resend(&seeded.id).await).await;
    assert_eq!(status, 200);
    assert_eq!(headers["x-otp-sends-remaining"], "0");
    assert!(
        headers.get("x-otp-resend-after").is_none(),
        "no resend will be allowed"
    );

    let response = app.resend(&seeded.id).await;
    assert!(response.headers().get("retry-after").is_none());
    let error = expect_error(response, 429, "too_many_requests").await;
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .contains("Maximum number of OTP sends"),
        "{error}"
    );
    assert_eq!(app.sent_sms().await.len(), 1);
}

#[tokio::test]
async fn row10_the_daily_limit_counts_every_merge_request_of_a_phone() {
    let Some(app) = TestApp::local_with(&[("otp_max_sends_per_phone_per_day", "2")]).await else {
        return;
    };
    let first = app.seed(Seed::default());
    let second = app.seed(Seed::default());
    let third = app.seed(Seed::default());
    let other_phone = app.seed(Seed {
        method: json!({"type": "OTP", "phone_number": "+380931234567"}),
        ..Seed::default()
    });
    assert_eq!(app.resend(&first.id).await.status(), 200);
    assert_eq!(app.resend(&second.id).await.status(), 200);
    let response = app.resend(&third.id).await;
    let retry_after: u64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=86_400).contains(&retry_after));
    let error = expect_error(response, 429, "too_many_requests").await;
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .contains("Daily OTP limit"),
        "{error}"
    );
    assert_eq!(app.resend(&other_phone.id).await.status(), 200);
    assert_eq!(app.sent_sms().await.len(), 3);
    // The store keeps no phone number, not even in key names.
    let keys = app.host().key_value().keys("default").join(" ");
    assert!(!keys.contains(&PHONE[4..]), "{keys}");
    assert!(!keys.contains("931234567"), "{keys}");
}
