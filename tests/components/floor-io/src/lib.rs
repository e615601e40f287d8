//! The physical limit of a resend on a host: the same kinds of host calls —
//! a key-value read, a compare-and-swap, an outbound POST to the SMS gateway —
//! with no rules, no parsing and no authentication around them.

#[cfg(target_arch = "wasm32")]
mod bindings {
    wit_bindgen::generate!({
        world: "resend-otp",
        path: "../../../wit",
        generate_all,
    });
}

#[cfg(target_arch = "wasm32")]
#[spin_sdk::http_service]
async fn handle(
    _request: spin_sdk::http::Request,
) -> http::Response<spin_sdk::http::FullBody<bytes::Bytes>> {
    use bindings::wasi::config::store as config;
    use bindings::wasi::keyvalue::{atomics, store};
    use bytes::Bytes;
    use spin_sdk::http::FullBody;

    let status = |code: u16| {
        let mut response = http::Response::new(FullBody::new(Bytes::new()));
        *response.status_mut() = http::StatusCode::from_u16(code).unwrap_or_default();
        response
    };
    let Ok(bucket) = store::open("default") else {
        return status(503);
    };
    let Ok(cas) = atomics::Cas::new(&bucket, "floor-io") else {
        return status(503);
    };
    let Ok(current) = cas.current() else {
        return status(503);
    };
    let next = current.map_or(1, |bytes| bytes.len() % 64 + 1);
    if atomics::swap(cas, &vec![b'x'; next]).is_err() {
        return status(503);
    }
    let Ok(Some(url)) = config::get("sms_gateway_url") else {
        return status(503);
    };
    let body = Bytes::from_static(br#"{"to":"+380501234567","text":"floor","reference":"floor"}"#);
    let Ok(request) = http::Request::post(url)
        .header(http::header::CONTENT_TYPE, "application/json")
        .header(http::header::CONTENT_LENGTH, body.len())
        .body(FullBody::new(body))
    else {
        return status(503);
    };
    match spin_sdk::http::send(request).await {
        Ok(response) if response.status().is_success() => status(200),
        _ => status(502),
    }
}
