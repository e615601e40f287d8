//! Black-box tests: the built component behind real HTTP, table row by table
//! row of the contract (`POST /api/merge_requests/{id}/actions/resend_otp`).

mod authentication;
mod contract;
mod deploy;
mod envelope;
mod faults;
mod gateway;
mod helpers;
mod hostile;
mod idempotency;
mod lifecycle;
mod logs;
mod races;
mod resend;
