//! The merge request around the resend: create, read, approve, reject.

use serde_json::{Value, json};

use crate::helpers::*;

/// The code of the `n`-th SMS the gateway received for `phone`.
async fn code_of_sms(app: &TestApp, phone: &str, n: usize) -> String {
    code_in(app.sms_to(phone).await[n]["text"].as_str().unwrap())
}

async fn created_id(app: &TestApp, body: &Value) -> (String, Value) {
    let (status, _, created) = answer(app.create(body).await).await;
    assert_eq!(status, 201, "{created}");
    (
        created["data"]["id"].as_str().unwrap().to_owned(),
        created["data"].clone(),
    )
}

#[tokio::test]
async fn the_whole_story_create_resend_approve() {
    let app = TestApp::http_only().await;
    let phone = unique_phone();
    let (id, created) = created_id(&app, &new_merge_request(otp_method(&phone))).await;
    assert_eq!(created["status"], "NEW");
    assert_eq!(created["legal_entity_id"], LEGAL_ENTITY);
    assert_eq!(created["inserted_by"], USER);
    assert_eq!(created["verification"]["status"], "NEW");
    assert_eq!(created["verification"]["active"], true);
    let first_code = code_of_sms(&app, &phone, 0).await;

    let (status, _, resent) = answer(app.resend(&id).await).await;
    assert_eq!(status, 200, "{resent}");
    let second_code = code_of_sms(&app, &phone, 1).await;
    assert_ne!(first_code, second_code);

    let error = expect_error(app.approve(&id, &first_code).await, 403, "forbidden").await;
    assert_eq!(error["message"], "Invalid verification code");

    let (status, _, approved) = answer(app.approve(&id, &second_code).await).await;
    assert_eq!(status, 200, "{approved}");
    assert_eq!(approved["data"]["status"], "APPROVED");
    assert_eq!(approved["data"]["verification"]["status"], "VERIFIED");
    assert_eq!(approved["data"]["verification"]["active"], false);

    expect_incorrect_status(app.resend(&id).await).await;

    let (status, _, read) = answer(app.get(&id).await).await;
    assert_eq!(status, 200);
    assert_eq!(read["data"]["status"], "APPROVED");
    assert_eq!(app.sms_to(&phone).await.len(), 2);

    // No answer of the whole story carried a code or a hash.
    for body in [&created, &resent, &approved, &read] {
        let text = body.to_string();
        assert!(
            !text.contains(&first_code)
                && !text.contains(&second_code)
                && !text.contains("code_hash"),
            "{text}"
        );
    }
}

#[tokio::test]
async fn create_reports_every_invalid_field() {
    let Some(app) = TestApp::local().await else {
        return;
    };
    let body = json!({"merge_request": {
        "master_person_id": "not-a-uuid",
        "merge_person_id": uuid_v4(),
        "authentication_method_current": {"type": "OTP", "phone_number": "+38050"},
        "unexpected": true,
    }});
    let error = expect_error(app.create(&body).await, 422, "validation_failed").await;
    let mut entries: Vec<&str> = error["invalid"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["entry"].as_str().unwrap())
        .collect();
    entries.sort();
    assert_eq!(
        entries,
        [
            "$.merge_request.authentication_method_current.phone_number",
            "$.merge_request.master_person_id",
            "$.merge_request.unexpected",
        ]
    );
    assert_eq!(error["invalid"][0]["entry_type"], "json_data_property");
    assert!(app.sent_sms().await.is_empty());
    assert!(
        app.host().key_value().keys("default").is_empty(),
        "a refused create wrote something"
    );
}

#[tokio::test]
async fn create_without_a_body_is_422() {
    let app = TestApp::http_only().await;
    let response = app
        .call(reqwest::Method::POST, "/api/merge_requests")
        .send()
        .await
        .unwrap();
    let error = expect_error(response, 422, "validation_failed").await;
    assert_eq!(error["invalid"][0]["entry"], "$.merge_request");
}

#[tokio::test]
async fn an_offline_request_is_created_without_a_code() {
    let Some(app) = TestApp::local().await else {
        return;
    };
    let (id, created) = created_id(&app, &new_merge_request(json!({"type": "OFFLINE"}))).await;
    assert_eq!(created["verification"], Value::Null);
    assert!(app.sent_sms().await.is_empty());
    let error = expect_error(app.resend(&id).await, 422, "validation_failed").await;
    assert_eq!(
        error["invalid"][0]["entry"],
        "$.authentication_method_current"
    );
}

#[tokio::test]
async fn a_failed_first_sms_leaves_a_new_request_whose_code_can_be_resent() {
    let Some(app) = TestApp::local().await else {
        return;
    };
    app.gateway_fails_with(500).await;
    let (id, created) = created_id(&app, &new_merge_request(otp_method(PHONE))).await;
    assert_eq!(created["status"], "NEW");
    assert_eq!(created["verification"], Value::Null);
    assert_eq!(
        app.record(&id)["otp"]["sends"],
        0,
        "a failed send is not charged"
    );

    app.gateway_recovers().await;
    let (status, _, resent) = answer(app.resend(&id).await).await;
    assert_eq!(status, 200, "{resent}");
    let (_, _, read) = answer(app.get(&id).await).await;
    assert_eq!(read["data"]["verification"]["id"], resent["data"]["id"]);
}

#[tokio::test]
async fn a_new_request_on_the_same_person_rejects_the_live_one() {
    let app = TestApp::http_only().await;
    let body = new_merge_request(json!({"type": "OFFLINE"}));
    let (older, _) = created_id(&app, &body).await;
    let (newer, _) = created_id(&app, &body).await;
    assert_eq!(
        answer(app.get(&older).await).await.2["data"]["status"],
        "REJECTED"
    );
    assert_eq!(
        answer(app.get(&newer).await).await.2["data"]["status"],
        "NEW"
    );
    expect_incorrect_status(app.approve(&older, "123456").await).await;
}

#[tokio::test]
async fn read_needs_the_read_scope_and_the_same_legal_entity() {
    let Some(app) = TestApp::local().await else {
        return;
    };
    let seeded = app.seed(Seed::default());
    let response = app
        .client()
        .get(format!("{}/api/merge_requests/{}", app.base_url, seeded.id))
        .bearer_auth(app.token(WRITE_SCOPE))
        .header("Api-Key", API_KEY)
        .send()
        .await
        .unwrap();
    let error = expect_error(response, 403, "forbidden").await;
    assert_eq!(
        error["message"],
        "Your scope does not allow to access this resource. Missing allowances: merge_request:read"
    );
    let foreign = app.seed(Seed {
        legal_entity_id: OTHER_LEGAL_ENTITY,
        ..Seed::default()
    });
    expect_error(app.get(&foreign.id).await, 404, "not_found").await;
    expect_error(app.get(&uuid_v4()).await, 404, "not_found").await;
    expect_error(app.get("not-a-uuid").await, 404, "not_found").await;
}

#[tokio::test]
async fn another_legal_entity_sees_404_on_every_route() {
    let Some(app) = TestApp::local().await else {
        return;
    };
    let foreign = app.seed(Seed {
        legal_entity_id: OTHER_LEGAL_ENTITY,
        ..Seed::default()
    });
    let before = app.record(&foreign.id);
    expect_error(app.get(&foreign.id).await, 404, "not_found").await;
    expect_error(app.resend(&foreign.id).await, 404, "not_found").await;
    expect_error(
        app.approve(&foreign.id, SEEDED_CODE).await,
        404,
        "not_found",
    )
    .await;
    expect_error(app.reject(&foreign.id).await, 404, "not_found").await;
    assert_eq!(app.record(&foreign.id), before);
}

#[tokio::test]
async fn an_expired_code_shows_expired_and_is_refused_but_can_be_resent() {
    let Some(app) = TestApp::local().await else {
        return;
    };
    let seeded = app.seed(Seed {
        last_sent_seconds_ago: Some(700),
        ..Seed::default()
    });
    let (_, _, read) = answer(app.get(&seeded.id).await).await;
    assert_eq!(read["data"]["status"], "NEW");
    assert_eq!(read["data"]["verification"]["status"], "EXPIRED");
    let error = expect_error(app.approve(&seeded.id, SEEDED_CODE).await, 403, "forbidden").await;
    assert_eq!(error["message"], "Verification code expired");
    assert_eq!(app.resend(&seeded.id).await.status(), 200);
}

#[tokio::test]
async fn an_old_merge_request_expires() {
    let Some(app) = TestApp::local_with(&[("merge_request_ttl_hours", "1")]).await else {
        return;
    };
    let seeded = app.seed(Seed {
        age_seconds: 3_601,
        last_sent_seconds_ago: Some(120),
        ..Seed::default()
    });
    assert_eq!(
        answer(app.get(&seeded.id).await).await.2["data"]["status"],
        "EXPIRED"
    );
    expect_incorrect_status(app.resend(&seeded.id).await).await;
    expect_incorrect_status(app.approve(&seeded.id, SEEDED_CODE).await).await;
    assert!(app.sent_sms().await.is_empty());
}

#[tokio::test]
async fn only_the_creator_may_approve() {
    let Some(app) = TestApp::local().await else {
        return;
    };
    let seeded = app.seed(Seed::default());
    let response = app
        .call_as(
            reqwest::Method::PATCH,
            &format!("/api/merge_requests/{}/actions/approve", seeded.id),
            &uuid_v4(),
        )
        .json(&json!({"verification_code": SEEDED_CODE}))
        .send()
        .await
        .unwrap();
    let error = expect_error(response, 422, "validation_failed").await;
    assert_eq!(
        error["message"],
        "User doesn't belong to legal entity where the merge request was created"
    );
    assert_eq!(app.approve(&seeded.id, SEEDED_CODE).await.status(), 200);
}

#[tokio::test]
async fn approve_needs_a_verification_code() {
    let Some(app) = TestApp::local().await else {
        return;
    };
    let seeded = app.seed(Seed::default());
    let path = format!("/api/merge_requests/{}/actions/approve", seeded.id);
    for body in [
        json!({}),
        json!({"verification_code": 424242}),
        json!({"verification_code": "1", "extra": 1}),
    ] {
        let response = app
            .call(reqwest::Method::PATCH, &path)
            .json(&body)
            .send()
            .await
            .unwrap();
        let error = expect_error(response, 422, "validation_failed").await;
        assert!(!error["invalid"].as_array().unwrap().is_empty(), "{body}");
    }
    assert_eq!(
        app.record(&seeded.id)["otp"]["verifications"][0]["attempts"],
        0
    );
}

#[tokio::test]
async fn three_wrong_codes_exhaust_the_verification_until_a_resend() {
    let Some(app) = TestApp::local_with(&[("otp_resend_cooldown_seconds", "0")]).await else {
        return;
    };
    let seeded = app.seed(Seed::default());
    for _ in 0..3 {
        let error = expect_error(app.approve(&seeded.id, "000000").await, 403, "forbidden").await;
        assert_eq!(error["message"], "Invalid verification code");
    }
    let error = expect_error(app.approve(&seeded.id, SEEDED_CODE).await, 403, "forbidden").await;
    assert_eq!(error["message"], "Maximum attempts exceed");
    let record = app.record(&seeded.id);
    assert_eq!(record["otp"]["verifications"][0]["status"], "UNVERIFIED");
    assert_eq!(record["otp"]["verifications"][0]["active"], false);

    // A resend brings a fresh code with its own three attempts; the spent one stays spent.
    assert_eq!(app.resend(&seeded.id).await.status(), 200);
    let fresh = code_of_sms(&app, PHONE, 0).await;
    expect_error(app.approve(&seeded.id, "000000").await, 403, "forbidden").await;
    assert_eq!(app.approve(&seeded.id, &fresh).await.status(), 200);
    let record = app.record(&seeded.id);
    assert_eq!(record["otp"]["verifications"][0]["status"], "UNVERIFIED");
    assert_eq!(record["otp"]["verifications"][1]["attempts"], 1);
}

#[tokio::test]
async fn reject_ends_the_request_and_cancels_its_code() {
    let Some(app) = TestApp::local().await else {
        return;
    };
    let seeded = app.seed(Seed::default());
    let (status, _, rejected) = answer(app.reject(&seeded.id).await).await;
    assert_eq!(status, 200, "{rejected}");
    assert_eq!(rejected["data"]["status"], "REJECTED");
    assert_eq!(rejected["data"]["verification"]["status"], "CANCELED");
    let error = expect_error(app.reject(&seeded.id).await, 422, "validation_failed").await;
    assert_eq!(error["message"], "Incorrect status to reject merge request");
    expect_incorrect_status(app.approve(&seeded.id, SEEDED_CODE).await).await;
}

#[tokio::test]
async fn an_approved_request_can_still_be_rejected() {
    let Some(app) = TestApp::local().await else {
        return;
    };
    let seeded = app.seed(Seed::default());
    assert_eq!(app.approve(&seeded.id, SEEDED_CODE).await.status(), 200);
    let (status, _, rejected) = answer(app.reject(&seeded.id).await).await;
    assert_eq!(status, 200);
    assert_eq!(rejected["data"]["status"], "REJECTED");
    for status in ["EXPIRED", "SIGNED"] {
        let ended = app.seed(Seed {
            status,
            ..Seed::default()
        });
        let error = expect_error(app.reject(&ended.id).await, 422, "validation_failed").await;
        assert_eq!(error["message"], "Incorrect status to reject merge request");
    }
}

#[tokio::test]
async fn routes_answer_405_with_their_method() {
    let app = TestApp::http_only().await;
    let id = uuid_v4();
    for (path, allowed) in [
        ("/api/merge_requests".to_owned(), "POST"),
        (format!("/api/merge_requests/{id}"), "GET"),
        (format!("/api/merge_requests/{id}/actions/approve"), "PATCH"),
        (format!("/api/merge_requests/{id}/actions/reject"), "PATCH"),
    ] {
        let response = app
            .client()
            .delete(format!("{}{path}", app.base_url))
            .send()
            .await
            .unwrap();
        assert_eq!(response.headers()["allow"], allowed);
        expect_error(response, 405, "method_not_allowed").await;
    }
}
