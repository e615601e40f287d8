//! A failing key-value store: every route answers 503 in the envelope and
//! leaves the stored state as it was, or fully changed — never half.

use std::collections::BTreeMap;

use resend_otp::adapters::store::decode_counter;
use serde_json::Value;
use testhost::{Fault, Operation};

use crate::helpers::*;

const OPERATIONS: [Operation; 7] = [
    Operation::Open,
    Operation::Get,
    Operation::Set,
    Operation::Increment,
    Operation::CasNew,
    Operation::CasCurrent,
    Operation::Swap,
];

/// The merge requests and person counters as stored, records as JSON values
/// (so that key order does not count). The phones' daily counts are left out:
/// they follow the SMS that really left, which
/// [`assert_daily_count_matches_sms`] checks.
fn state(app: &TestApp) -> BTreeMap<String, Value> {
    let store = app.host().key_value();
    store
        .keys("default")
        .into_iter()
        .filter(|key| !key.starts_with("sends_per_phone:"))
        .filter_map(|key| {
            let bytes = store.get("default", &key)?;
            // A counter at zero is no count at all.
            if decode_counter(&bytes) == Some(0) {
                return None;
            }
            let value = serde_json::from_slice(&bytes).unwrap_or_else(|_| Value::from(bytes));
            Some((key, without_write_marks(value)))
        })
        .collect()
}

/// Whatever failed, the phones' counts for the day add up to the SMS that
/// reached the gateway: never more (a patient loses a send) nor fewer (the
/// daily limit leaks).
async fn assert_daily_count_matches_sms(app: &TestApp) {
    let store = app.host().key_value();
    let counted: i64 = store
        .keys("default")
        .into_iter()
        .filter(|key| key.starts_with("sends_per_phone:"))
        .filter_map(|key| store.get("default", &key))
        .map(|bytes| decode_counter(&bytes).expect("a counter"))
        .sum();
    assert_eq!(counted, app.sent_sms().await.len() as i64);
}

fn merge_request_keys(app: &TestApp) -> Vec<String> {
    let keys = app.host().key_value().keys("default");
    keys.into_iter()
        .filter(|key| key.starts_with("merge_request:"))
        .collect()
}

fn differing_keys(
    before: &BTreeMap<String, Value>,
    after: &BTreeMap<String, Value>,
) -> Vec<String> {
    let mut keys: Vec<String> = before
        .keys()
        .chain(after.keys())
        .filter(|key| before.get(*key) != after.get(*key))
        .cloned()
        .collect();
    keys.dedup();
    keys
}

/// Runs `request` with `fault` injected; the answer must be the success it
/// would have been, or 503 with the store unchanged.
async fn assert_all_or_nothing<F, Fut>(app: &TestApp, fault: Fault, success: u16, request: F)
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = reqwest::Response>,
{
    let before = state(app);
    let description = format!("{fault:?}");
    app.host().key_value().inject(Some(fault));
    let response = request().await;
    app.host().key_value().inject(None);
    let status = response.status().as_u16();
    assert_daily_count_matches_sms(app).await;
    if status == success {
        assert_ne!(
            state(app),
            before,
            "{description}: success without a change"
        );
        return;
    }
    let error = expect_error(response, 503, "service_unavailable").await;
    assert_eq!(error["message"], "Storage is unavailable", "{description}");
    let changed = differing_keys(&before, &state(app));
    assert!(
        changed.is_empty(),
        "{description}: a failed request changed {changed:?}"
    );
}

#[tokio::test]
async fn a_resend_on_a_failing_store_is_all_or_nothing() {
    let Some(app) = TestApp::local_with(&[("otp_max_sends_per_phone_per_day", "100000")]).await
    else {
        return;
    };
    for operation in OPERATIONS {
        // Each call of the operation fails, then only the second, then only the third.
        for every in 1..=3 {
            let seeded = app.seed(Seed::default());
            let fault = Fault::new(Some(operation), None, every);
            assert_all_or_nothing(&app, fault, 200, || app.resend(&seeded.id)).await;
        }
    }
}

#[tokio::test]
async fn approve_and_reject_on_a_failing_store_are_all_or_nothing() {
    let Some(app) = TestApp::local().await else {
        return;
    };
    for operation in OPERATIONS {
        let seeded = app.seed(Seed::default());
        assert_all_or_nothing(&app, Fault::new(Some(operation), None, 1), 200, || {
            app.approve(&seeded.id, SEEDED_CODE)
        })
        .await;
        // A wrong code is counted or not at all.
        let seeded = app.seed(Seed::default());
        let before = state(&app);
        app.host()
            .key_value()
            .inject(Some(Fault::new(Some(operation), None, 1)));
        let status = app.approve(&seeded.id, "000000").await.status().as_u16();
        app.host().key_value().inject(None);
        assert!(
            status == 403 || (status == 503 && differing_keys(&before, &state(&app)).is_empty()),
            "{operation:?}: {status}"
        );

        let seeded = app.seed(Seed::default());
        assert_all_or_nothing(&app, Fault::new(Some(operation), None, 1), 200, || {
            app.reject(&seeded.id)
        })
        .await;
    }
}

#[tokio::test]
async fn read_on_a_failing_store_is_503() {
    let Some(app) = TestApp::local().await else {
        return;
    };
    let seeded = app.seed(Seed::default());
    for operation in [Operation::Open, Operation::Get] {
        app.host()
            .key_value()
            .inject(Some(Fault::new(Some(operation), None, 1)));
        let response = app.get(&seeded.id).await;
        app.host().key_value().inject(None);
        let error = expect_error(response, 503, "service_unavailable").await;
        assert_eq!(error["message"], "Storage is unavailable");
    }
}

#[tokio::test]
async fn a_create_on_a_failing_store_stores_no_request() {
    let Some(app) = TestApp::local().await else {
        return;
    };
    for operation in [
        Operation::Open,
        Operation::Get,
        Operation::Increment,
        Operation::Set,
    ] {
        let before = merge_request_keys(&app);
        app.host()
            .key_value()
            .inject(Some(Fault::new(Some(operation), None, 1)));
        let response = app
            .create(&new_merge_request(otp_method(&unique_phone())))
            .await;
        app.host().key_value().inject(None);
        let error = expect_error(response, 503, "service_unavailable").await;
        assert_eq!(error["message"], "Storage is unavailable", "{operation:?}");
        let after = merge_request_keys(&app);
        assert_eq!(after, before, "{operation:?}");
    }
}
