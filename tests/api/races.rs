//! Races between requests on one merge request or one person: each test
//! fires its requests at once on a multi-threaded runtime, so the component
//! instances run in parallel against one store, round after round.

use futures::future::join_all;
use serde_json::json;

use crate::helpers::*;

/// Requests fired at once in each race.
const PARALLEL: usize = 50;
/// Fresh merge requests raced on, one after another.
const ROUNDS: usize = 5;

fn statuses(responses: &[reqwest::Response]) -> Vec<u16> {
    responses.iter().map(|r| r.status().as_u16()).collect()
}

fn count(statuses: &[u16], status: u16) -> usize {
    statuses.iter().filter(|s| **s == status).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn parallel_resends_send_exactly_one_sms() {
    let Some(app) = TestApp::local().await else {
        return;
    };
    for round in 0..ROUNDS {
        let seeded = app.seed(Seed::default());
        let statuses = statuses(&join_all((0..PARALLEL).map(|_| app.resend(&seeded.id))).await);
        assert_eq!(count(&statuses, 200), 1, "{statuses:?}");
        // The losers are told to wait out the cooldown of the winner's send.
        assert_eq!(count(&statuses, 429), PARALLEL - 1, "{statuses:?}");
        assert_eq!(app.sent_sms().await.len(), round + 1);
        let record = app.record(&seeded.id);
        assert_eq!(record["otp"]["sends"], 2);
        assert_eq!(record["otp"]["pending"], json!(null));
        let verifications = record["otp"]["verifications"].as_array().unwrap();
        assert_eq!(
            verifications.iter().filter(|v| v["active"] == true).count(),
            1
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn parallel_approvals_with_the_right_code_approve_once() {
    let Some(app) = TestApp::local().await else {
        return;
    };
    for _ in 0..ROUNDS {
        let seeded = app.seed(Seed::default());
        let statuses =
            statuses(&join_all((0..PARALLEL).map(|_| app.approve(&seeded.id, SEEDED_CODE))).await);
        assert_eq!(count(&statuses, 200), 1, "{statuses:?}");
        // The losers see the request approved (422) or the code used (403).
        assert_eq!(
            count(&statuses, 403) + count(&statuses, 422),
            PARALLEL - 1,
            "{statuses:?}"
        );
        let record = app.record(&seeded.id);
        assert_eq!(record["merge_request"]["status"], "APPROVED");
        assert_eq!(record["otp"]["verifications"][0]["status"], "VERIFIED");
        assert_eq!(record["otp"]["verifications"][0]["attempts"], 0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn parallel_creates_on_one_person_leave_one_live_request() {
    let app = TestApp::http_only().await;
    for _ in 0..ROUNDS {
        let body = new_merge_request(json!({"type": "OFFLINE"}));
        let mut ids = Vec::new();
        for response in join_all((0..PARALLEL).map(|_| app.create(&body))).await {
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
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_resend_racing_an_approval_never_lets_a_cancelled_code_approve() {
    let Some(app) = TestApp::local_with(&[("otp_resend_cooldown_seconds", "0")]).await else {
        return;
    };
    let (mut approval_first, mut resend_first) = (0, 0);
    for _ in 0..ROUNDS * 4 {
        let seeded = app.seed(Seed::default());
        let sent_before = app.sent_sms().await.len();
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
        assert!(app.sent_sms().await.len() - sent_before <= 1);
    }
    eprintln!("interleavings: approval first {approval_first}, resend first {resend_first}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn resends_and_approvals_at_once_leave_a_consistent_request() {
    let Some(app) = TestApp::local_with(&[
        ("otp_resend_cooldown_seconds", "0"),
        ("otp_max_sends", "100"),
    ])
    .await
    else {
        return;
    };
    for _ in 0..ROUNDS {
        let seeded = app.seed(Seed::default());
        let sent_before = app.sent_sms().await.len();
        let resends = join_all((0..PARALLEL / 2).map(|_| app.resend(&seeded.id)));
        let approvals = join_all((0..PARALLEL / 2).map(|_| app.approve(&seeded.id, SEEDED_CODE)));
        let (resends, approvals) = tokio::join!(resends, approvals);
        let (resends, approvals) = (statuses(&resends), statuses(&approvals));
        let record = app.record(&seeded.id);
        let verifications = record["otp"]["verifications"].as_array().unwrap();

        // Every resend that answered 200 sent exactly one SMS and added one verification.
        assert_eq!(
            app.sent_sms().await.len() - sent_before,
            count(&resends, 200)
        );
        assert_eq!(verifications.len(), 1 + count(&resends, 200));
        assert_eq!(record["otp"]["sends"], 1 + count(&resends, 200) as u64);
        assert!(verifications.iter().filter(|v| v["active"] == true).count() <= 1);
        assert_eq!(record["otp"]["pending"], json!(null));
        // At most one approval, and only with the seeded code while it was active.
        assert!(count(&approvals, 200) <= 1, "{approvals:?}");
        if count(&approvals, 200) == 1 {
            assert_eq!(record["merge_request"]["status"], "APPROVED");
            assert_eq!(verifications[0]["status"], "VERIFIED");
            assert!(
                verifications[1..].iter().all(|v| v["status"] == "CANCELED"),
                "{record}"
            );
        } else {
            assert_eq!(record["merge_request"]["status"], "NEW");
            assert_eq!(verifications[0]["status"], "CANCELED");
        }
    }
}
