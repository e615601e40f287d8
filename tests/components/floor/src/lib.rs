//! What any spin-sdk 6 component costs on a host: it answers 200 with a fixed
//! body, and does nothing else.

#[cfg(target_arch = "wasm32")]
#[spin_sdk::http_service]
async fn handle(_request: spin_sdk::http::Request) -> impl spin_sdk::http::IntoResponse {
    "ok"
}
