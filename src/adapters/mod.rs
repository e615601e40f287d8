//! Everything that talks to the host: the key-value store, the SMS gateway,
//! variables, the clock and the random source.

pub mod clock;
pub mod random;
pub mod settings;
pub mod sms;
pub mod store;
