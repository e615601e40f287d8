//! Outbound HTTP as Spin allows it: only to origins the manifest lists.

use std::future::Future;

use bytes::Bytes;
use http_body_util::BodyExt;
use http_body_util::combinators::UnsyncBoxBody;
use wasmtime_wasi_http::p3::bindings::http::types::ErrorCode;
use wasmtime_wasi_http::p3::{RequestOptions, WasiHttpHooks};

use crate::manifest::AllowedOrigin;

pub struct OutboundPolicy {
    allowed: Vec<AllowedOrigin>,
}

impl OutboundPolicy {
    pub fn new(allowed: Vec<AllowedOrigin>) -> Self {
        Self { allowed }
    }
}

type ResponseFuture = Box<
    dyn Future<
            Output = Result<
                (
                    http::Response<UnsyncBoxBody<Bytes, ErrorCode>>,
                    Box<dyn Future<Output = Result<(), ErrorCode>> + Send>,
                ),
                wasmtime_wasi::TrappableError<ErrorCode>,
            >,
        > + Send,
>;

impl WasiHttpHooks for OutboundPolicy {
    fn send_request(
        &mut self,
        request: http::Request<UnsyncBoxBody<Bytes, ErrorCode>>,
        options: Option<RequestOptions>,
        fut: Box<dyn Future<Output = Result<(), ErrorCode>> + Send>,
    ) -> ResponseFuture {
        drop(fut);
        let allowed = self
            .allowed
            .iter()
            .any(|origin| origin.allows(request.uri()));
        Box::new(async move {
            if !allowed {
                eprintln!(
                    "outbound request to {} denied: not in allowed_outbound_hosts",
                    request.uri()
                );
                return Err(ErrorCode::HttpRequestDenied.into());
            }
            let (response, io) =
                wasmtime_wasi_http::p3::default_send_request(request, options).await?;
            Ok((
                response.map(BodyExt::boxed_unsync),
                Box::new(io) as Box<dyn Future<Output = Result<(), ErrorCode>> + Send>,
            ))
        })
    }
}
