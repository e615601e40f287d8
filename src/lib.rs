//! Resend Authorization OTP on Merge Request, as a Spin HTTP component.

pub mod adapters;
pub mod api;
pub mod app;
pub mod domain;

mod bindings {
    wit_bindgen::generate!({
        world: "resend-otp",
        path: "wit",
        generate_all,
    });
}

/// The component's entry point. Native builds (the unit tests of the domain)
/// leave it out: its export names are for a wasm host, not a native linker.
#[cfg(target_arch = "wasm32")]
#[spin_sdk::http_service]
async fn handle(request: spin_sdk::http::Request) -> impl spin_sdk::http::IntoResponse {
    api::serve(request).await
}
