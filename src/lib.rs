//! Resend Authorization OTP on Merge Request, as a Spin HTTP component.

mod adapters;
mod api;
pub mod domain;
mod resend;

use spin_sdk::http::{IntoResponse, Request};
use spin_sdk::http_service;

mod bindings {
    wit_bindgen::generate!({
        world: "resend-otp",
        path: "wit",
        generate_all,
    });
}

#[http_service]
async fn handle(request: Request) -> impl IntoResponse {
    api::serve(request).await
}
