//! Races between requests on one merge request or one person: each test
//! fires its requests at once on a multi-threaded runtime, so the component
//! instances run in parallel against one store.

use futures::future::join_all;
use serde_json::json;

use crate::helpers::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn parallel_approvals_with_the_right_code_approve_once() {
    let Some(app) = TestApp::local().await else {
        return;
    };
    let seeded = app.seed(Seed::default());
    let responses = join_all((0..20).map(|_| app.approve(&seeded.id, SEEDED_CODE))).await;
    let statuses: Vec<u16> = responses.iter().map(|r| r.status().as_u16()).collect();
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        1,
        "{statuses:?}"
    );
    // The losers see the request approved (422) or the code used (403).
    assert!(
        statuses.iter().all(|s| [200, 403, 422].contains(s)),
        "{statuses:?}"
    );
    let record = app.record(&seeded.id);
    assert_eq!(record["merge_request"]["status"], "APPROVED");
    assert_eq!(record["otp"]["verifications"][0]["status"], "VERIFIED");
    assert_eq!(record["otp"]["verifications"][0]["attempts"], 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn parallel_creates_on_one_person_leave_one_live_request() {
    let app = TestApp::http_only().await;
    let body = new_merge_request(json!({"type": "OFFLINE"}));
    let responses = join_all((0..10).map(|_| app.create(&body))).await;
    let mut ids = Vec::new();
    for response in responses {
        let (status, _, created) = answer(response).await;
        assert_eq!(status, 201, "{created}");
        ids.push(created["data"]["id"].as_str().unwrap().to_owned());
    }
    let mut live = 0;
    for id in &ids {
        match answer(app.get(id).await).await.2["data"]["status"]
            .as_str()
            .unwrap()
        {
            "NEW" => live += 1,
            "REJECTED" => {}
            other => panic!("unexpected status {other}"),
        }
    }
    assert_eq!(live, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_resend_racing_an_approval_never_lets_a_cancelled_code_approve() {
    let (mut approval_first, mut resend_first) = (0, 0);
    for _ in 0..10 {
        let Some(app) = TestApp::local_with(&[("otp_resend_cooldown_seconds", "0")]).await else {
            return;
        };
        let seeded = app.seed(Seed::default());
        let (resend, approve) =
            tokio::join!(app.resend(&seeded.id), app.approve(&seeded.id, SEEDED_CODE));
        let (resend, approve) = (resend.status().as_u16(), approve.status().as_u16());
        let record = app.record(&seeded.id);
        let verifications = record["otp"]["verifications"].as_array().unwrap();
        let active = verifications.iter().filter(|v| v["active"] == true).count();
        match (approve, record["merge_request"]["status"].as_str().unwrap()) {
            // The approval came first: the old code verified, and a resend that
            // went out afterwards left no active code behind.
            (200, "APPROVED") => {
                assert_eq!(verifications[0]["status"], "VERIFIED");
                assert_eq!(active, 0);
                approval_first += 1;
            }
            // The resend came first: the old code was cancelled and refused.
            (403, "NEW") => {
                assert_eq!(resend, 200);
                assert_eq!(verifications[0]["status"], "CANCELED");
                assert_eq!(active, 1);
                resend_first += 1;
            }
            other => panic!("inconsistent outcome {other:?}, resend {resend}: {record}"),
        }
        assert!(app.sent_sms().await.len() <= 1);
    }
    eprintln!("interleavings: approval first {approval_first}, resend first {resend_first}");
}
