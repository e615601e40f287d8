//! The rules of merge requests and their codes: plain Rust, no host calls,
//! so every rule is testable natively.

mod ids;
mod merge_request;
mod otp_code;
mod phone_number;
mod request_bodies;
mod time;
mod verification;

pub use ids::{MergeRequestId, VerificationId};
pub use merge_request::{
    AuthenticationMethod, MergeRequest, MergeRequestStatus, NotRejectable, NotResendable,
    StatusContext,
};
pub use otp_code::{CodeHash, CodeLength, OtpCode, hex, keyed_digest};
pub use phone_number::PhoneNumber;
pub use request_bodies::{FieldError, NewMergeRequest, parse_verification_code};
pub use time::Timestamp;
pub use verification::{
    CodeRefused, LimitReached, OtpLedger, PendingSend, ReservationLost, SendLimits, Verification,
    VerificationStatus, check_phone_daily,
};
