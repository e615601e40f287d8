use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use std::fmt;
use subtle::ConstantTimeEq;

use super::{MergeRequestId, VerificationId};

/// How many digits a code has: 4 to 8 (6 by default, the NIST/ASVS floor).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CodeLength(usize);

impl CodeLength {
    pub const DEFAULT: Self = Self(6);

    pub fn parse(digits: u64) -> Option<Self> {
        (4..=8).contains(&digits).then_some(Self(digits as usize))
    }

    pub fn get(self) -> usize {
        self.0
    }
}

/// A one-time code in clear text. It exists only between drawing it and
/// handing it to the SMS gateway: it is never stored, logged or returned.
pub struct OtpCode(String);

/// The largest multiple of ten a byte can hold: bytes at or above it are
/// redrawn so that every digit is equally likely.
const UNBIASED_BYTE_LIMIT: u8 = 250;

impl OtpCode {
    /// Draws a code uniformly over all digit strings of `length`, with
    /// `fill_random` as the random source (the host's CSPRNG in production).
    pub fn generate(length: CodeLength, mut fill_random: impl FnMut(&mut [u8])) -> Self {
        let mut code = String::with_capacity(length.get());
        let mut pool = [0u8; 16];
        while code.len() < length.get() {
            fill_random(&mut pool);
            for byte in pool.iter().copied().filter(|b| *b < UNBIASED_BYTE_LIMIT) {
                if code.len() == length.get() {
                    break;
                }
                code.push(char::from(b'0' + byte % 10));
            }
        }
        Self(code)
    }

    /// What a patient read out, to be hashed and compared with the stored hash.
    pub fn from_guess(guess: &str) -> Self {
        Self(guess.to_owned())
    }

    /// Only for the SMS text.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// HMAC-SHA-256 keyed with the deployment's secret over the merge request,
    /// the verification and the code, so a stolen store reveals no code and a
    /// hash cannot be replayed onto another verification.
    pub fn keyed_hash(
        &self,
        key: &[u8],
        merge_request: MergeRequestId,
        verification: VerificationId,
    ) -> CodeHash {
        let context = format!("{merge_request}:{verification}:");
        CodeHash(hex(&keyed_digest(
            key,
            &[context.as_bytes(), self.0.as_bytes()],
        )))
    }
}

/// HMAC-SHA-256 of `parts`, one after the other, under the deployment's key:
/// the one keyed digest behind stored code hashes and phone-derived key names.
pub fn keyed_digest(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes keys of any length");
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().into()
}

impl fmt::Debug for OtpCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("OtpCode(<redacted>)")
    }
}

/// The stored form of a code.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct CodeHash(String);

impl CodeHash {
    /// Constant-time, so that timing tells nothing about how close a guess was.
    pub fn matches(&self, other: &CodeHash) -> bool {
        self.0.as_bytes().ct_eq(other.0.as_bytes()).into()
    }
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ids() -> (MergeRequestId, VerificationId) {
        (
            MergeRequestId::parse("7d23a6b0-46f2-4b52-9a5e-2c4f7e0c1a11").unwrap(),
            VerificationId::from_random_bytes([7; 16]),
        )
    }

    #[test]
    fn code_length_is_bounded() {
        assert!(CodeLength::parse(3).is_none());
        assert!(CodeLength::parse(9).is_none());
        assert_eq!(CodeLength::parse(4).unwrap().get(), 4);
        assert_eq!(CodeLength::parse(8).unwrap().get(), 8);
    }

    #[test]
    fn biased_bytes_are_redrawn() {
        // A source that first yields only bytes >= 250 must not produce digits from them.
        let mut calls = 0;
        let code = OtpCode::generate(CodeLength::DEFAULT, |buf| {
            calls += 1;
            buf.fill(if calls == 1 { 255 } else { 13 });
        });
        assert_eq!(code.expose(), "333333");
        assert_eq!(calls, 2);
    }

    #[test]
    fn hash_depends_on_key_ids_and_code() {
        let (mr, ver) = ids();
        let code = OtpCode("123456".into());
        let base = code.keyed_hash(b"key", mr, ver);
        assert!(base.matches(&OtpCode("123456".into()).keyed_hash(b"key", mr, ver)));
        assert!(!base.matches(&OtpCode("123457".into()).keyed_hash(b"key", mr, ver)));
        assert!(!base.matches(&code.keyed_hash(b"other", mr, ver)));
        assert!(!base.matches(&code.keyed_hash(
            b"key",
            mr,
            VerificationId::from_random_bytes([8; 16])
        )));
        assert!(!format!("{base:?}").contains("123456"));
    }

    #[test]
    fn debug_never_shows_the_code() {
        assert_eq!(
            format!("{:?}", OtpCode("123456".into())),
            "OtpCode(<redacted>)"
        );
    }

    #[test]
    fn digits_are_uniform_within_sampling_noise() {
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        let mut counts = [0u32; 10];
        for _ in 0..10_000 {
            let code = OtpCode::generate(CodeLength::DEFAULT, |buf| {
                for b in buf.iter_mut() {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    *b = state as u8;
                }
            });
            for d in code.expose().bytes() {
                counts[usize::from(d - b'0')] += 1;
            }
        }
        // 60,000 digits: 6,000 expected per digit; a chi-square over 9 degrees of
        // freedom above 27.9 would happen by chance once in a thousand runs.
        let chi_square: f64 = counts
            .iter()
            .map(|&c| (f64::from(c) - 6000.0).powi(2) / 6000.0)
            .sum();
        assert!(
            chi_square < 27.9,
            "digit counts {counts:?}, chi-square {chi_square}"
        );
    }

    proptest! {
        #[test]
        fn codes_have_the_configured_length_and_only_digits(length in 4u64..=8, seed in any::<[u8; 32]>()) {
            let mut offset = 0;
            let code = OtpCode::generate(CodeLength::parse(length).unwrap(), |buf| {
                for b in buf.iter_mut() {
                    *b = seed[offset % 32].wrapping_add(offset as u8);
                    offset += 1;
                }
            });
            prop_assert_eq!(code.expose().len() as u64, length);
            prop_assert!(code.expose().bytes().all(|b| b.is_ascii_digit()));
        }
    }
}
