use serde::{Deserialize, Serialize};

use super::{CodeHash, Timestamp, VerificationId};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum VerificationStatus {
    New,
    Verified,
    Unverified,
    Canceled,
    Expired,
}

/// One issued code.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verification {
    pub id: VerificationId,
    pub status: VerificationStatus,
    pub code_hash: CodeHash,
    pub code_expired_at: Timestamp,
    pub active: bool,
    pub attempts: u32,
    pub inserted_at: Timestamp,
    /// The SMS gateway's id for the message that carried the code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway_message_id: Option<String>,
}

impl Verification {
    /// The status as of `now`: an unused code past its expiry shows as expired.
    pub fn status_at(&self, now: Timestamp) -> VerificationStatus {
        if self.status == VerificationStatus::New && now >= self.code_expired_at {
            VerificationStatus::Expired
        } else {
            self.status
        }
    }
}

/// Why a code read out by the patient does not approve the merge request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CodeRefused {
    /// No code is waiting for approval (none was sent, or it was cancelled).
    NoActiveCode,
    Invalid,
    Expired,
    MaxAttempts,
}

impl CodeRefused {
    /// Whether the refusal changed the ledger (an attempt was counted), so
    /// that it must be written even though the approval failed.
    pub fn is_counted(self) -> bool {
        self == Self::Invalid
    }
}

/// A send that has been reserved but not yet confirmed by the gateway. While
/// it stands, no other send for the merge request may start.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingSend {
    pub verification_id: VerificationId,
    pub reserved_at: Timestamp,
    /// Restored if the gateway refuses, so a failed send costs the patient nothing.
    pub previous_sent_at: Option<Timestamp>,
}

/// Every code a merge request has had, and what its send budget has left.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OtpLedger {
    /// Sends accepted by the gateway or in flight, the first SMS included.
    pub sends: u32,
    pub last_sent_at: Option<Timestamp>,
    pub pending: Option<PendingSend>,
    pub verifications: Vec<Verification>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SendLimits {
    pub cooldown_seconds: u64,
    pub max_sends: u32,
    pub max_sends_per_phone_per_day: u64,
    /// How long a reservation blocks other sends when its request never came
    /// back (a crash between reserving and confirming): a crash can only delay
    /// the next send, never allow two at once.
    pub pending_timeout_seconds: u64,
}

/// A send limit that refuses the request, with when a send may be tried again
/// (`None`: not for this merge request).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitReached {
    MaxSends,
    Cooldown { retry_after_seconds: u64 },
    PhoneDaily { retry_after_seconds: u64 },
}

impl LimitReached {
    pub fn retry_after_seconds(self) -> Option<u64> {
        match self {
            Self::MaxSends => None,
            Self::Cooldown {
                retry_after_seconds,
            }
            | Self::PhoneDaily {
                retry_after_seconds,
            } => Some(retry_after_seconds),
        }
    }
}

/// The ledger no longer holds the reservation a request made: another
/// request took over a reservation that looked abandoned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReservationLost;

impl OtpLedger {
    pub fn active(&self) -> Option<&Verification> {
        self.verifications.iter().find(|v| v.active)
    }

    /// The limits kept on the merge request itself, in the order a client can
    /// do something about them: a spent budget first, then the wait.
    pub fn check_limits(&self, now: Timestamp, limits: &SendLimits) -> Result<(), LimitReached> {
        if self.sends >= limits.max_sends {
            return Err(LimitReached::MaxSends);
        }
        let cooldown_ends = self
            .last_sent_at
            .map(|t| t.plus_seconds(limits.cooldown_seconds));
        let pending_ends = self
            .pending
            .as_ref()
            .map(|p| p.reserved_at.plus_seconds(limits.pending_timeout_seconds));
        match cooldown_ends.max(pending_ends) {
            Some(ends) if ends > now => Err(LimitReached::Cooldown {
                retry_after_seconds: now.seconds_until(ends).max(1),
            }),
            _ => Ok(()),
        }
    }

    /// Claims the next send for `verification_id`. Written with a
    /// compare-and-swap, this is what lets exactly one of several parallel
    /// resends go through.
    pub fn reserve(
        &mut self,
        verification_id: VerificationId,
        now: Timestamp,
        limits: &SendLimits,
    ) -> Result<PendingSend, LimitReached> {
        self.check_limits(now, limits)?;
        if let Some(abandoned) = self.pending.take() {
            self.sends = self.sends.saturating_sub(1);
            self.last_sent_at = abandoned.previous_sent_at;
        }
        let pending = PendingSend {
            verification_id,
            reserved_at: now,
            previous_sent_at: self.last_sent_at,
        };
        self.sends += 1;
        self.last_sent_at = Some(now);
        self.pending = Some(pending.clone());
        Ok(pending)
    }

    /// The gateway refused: give back the send as if it had never been tried.
    pub fn release(&mut self, reservation: &PendingSend) -> Result<(), ReservationLost> {
        self.take_pending(reservation)?;
        self.sends = self.sends.saturating_sub(1);
        self.last_sent_at = reservation.previous_sent_at;
        Ok(())
    }

    /// The gateway accepted the new code: it becomes the one active
    /// verification and the one before it is cancelled.
    pub fn commit(
        &mut self,
        reservation: &PendingSend,
        code_hash: CodeHash,
        code_expired_at: Timestamp,
        gateway_message_id: Option<String>,
    ) -> Result<&Verification, ReservationLost> {
        self.take_pending(reservation)?;
        self.cancel_active();
        self.verifications.push(Verification {
            id: reservation.verification_id,
            status: VerificationStatus::New,
            code_hash,
            code_expired_at,
            active: true,
            attempts: 0,
            inserted_at: reservation.reserved_at,
            gateway_message_id,
        });
        Ok(self.verifications.last().expect("just pushed"))
    }

    /// Checks a code against the active verification. `hash_of` hashes the
    /// guess for a given verification; the comparison is constant-time. A wrong
    /// guess counts an attempt, and the last allowed one makes the verification
    /// `UNVERIFIED`: only a resend brings a new code.
    pub fn check_code(
        &mut self,
        hash_of: impl Fn(VerificationId) -> CodeHash,
        now: Timestamp,
        max_attempts: u32,
    ) -> Result<(), CodeRefused> {
        let Some(latest) = self.verifications.last_mut() else {
            return Err(CodeRefused::NoActiveCode);
        };
        if latest.status == VerificationStatus::Unverified {
            return Err(CodeRefused::MaxAttempts);
        }
        if !latest.active {
            return Err(CodeRefused::NoActiveCode);
        }
        if now >= latest.code_expired_at {
            return Err(CodeRefused::Expired);
        }
        if latest.code_hash.matches(&hash_of(latest.id)) {
            latest.status = VerificationStatus::Verified;
            latest.active = false;
            return Ok(());
        }
        latest.attempts += 1;
        if latest.attempts >= max_attempts {
            latest.status = VerificationStatus::Unverified;
            latest.active = false;
        }
        Err(CodeRefused::Invalid)
    }

    /// The merge request ended: its code can no longer approve it.
    pub fn cancel_active(&mut self) {
        for verification in self.verifications.iter_mut().filter(|v| v.active) {
            verification.active = false;
            verification.status = VerificationStatus::Canceled;
        }
    }

    fn take_pending(&mut self, reservation: &PendingSend) -> Result<(), ReservationLost> {
        match &self.pending {
            Some(p) if p.verification_id == reservation.verification_id => {
                self.pending = None;
                Ok(())
            }
            _ => Err(ReservationLost),
        }
    }
}

/// The per-phone limit, over all merge requests, counted per UTC day.
pub fn check_phone_daily(
    sent_today: u64,
    now: Timestamp,
    limits: &SendLimits,
) -> Result<(), LimitReached> {
    if sent_today >= limits.max_sends_per_phone_per_day {
        return Err(LimitReached::PhoneDaily {
            retry_after_seconds: now.seconds_until(now.next_utc_midnight()).max(1),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: SendLimits = SendLimits {
        cooldown_seconds: 60,
        max_sends: 5,
        max_sends_per_phone_per_day: 10,
        pending_timeout_seconds: 20,
    };

    fn at(seconds: i64) -> Timestamp {
        Timestamp::from_unix_micros(seconds * 1_000_000)
    }

    fn id(n: u8) -> VerificationId {
        VerificationId::from_random_bytes([n; 16])
    }

    fn hash(s: &str) -> CodeHash {
        serde_json::from_value(serde_json::json!(s)).unwrap()
    }

    fn ledger_with_one_code(sent_at: i64) -> OtpLedger {
        let mut ledger = OtpLedger::default();
        let r = ledger.reserve(id(1), at(sent_at), &LIMITS).unwrap();
        ledger
            .commit(&r, hash("h1"), at(sent_at + 600), None)
            .unwrap();
        ledger
    }

    #[test]
    fn commit_cancels_the_previous_code() {
        let mut ledger = ledger_with_one_code(0);
        let r = ledger.reserve(id(2), at(100), &LIMITS).unwrap();
        ledger.commit(&r, hash("h2"), at(700), None).unwrap();
        assert_eq!(ledger.sends, 2);
        assert_eq!(ledger.active().unwrap().id, id(2));
        assert_eq!(ledger.verifications[0].status, VerificationStatus::Canceled);
        assert!(!ledger.verifications[0].active);
        assert_eq!(ledger.verifications.iter().filter(|v| v.active).count(), 1);
    }

    #[test]
    fn cooldown_counts_from_the_last_send() {
        let mut ledger = ledger_with_one_code(0);
        assert_eq!(
            ledger.reserve(id(2), at(45), &LIMITS),
            Err(LimitReached::Cooldown {
                retry_after_seconds: 15
            })
        );
        assert!(ledger.reserve(id(2), at(60), &LIMITS).is_ok());
    }

    #[test]
    fn a_reservation_blocks_a_second_one() {
        let mut ledger = ledger_with_one_code(0);
        ledger.reserve(id(2), at(100), &LIMITS).unwrap();
        assert!(matches!(
            ledger.reserve(id(3), at(100), &LIMITS),
            Err(LimitReached::Cooldown { .. })
        ));
    }

    #[test]
    fn an_abandoned_reservation_only_delays() {
        let limits = SendLimits {
            cooldown_seconds: 0,
            ..LIMITS
        };
        let mut ledger = ledger_with_one_code(0);
        ledger.reserve(id(2), at(100), &limits).unwrap();
        assert!(ledger.reserve(id(3), at(110), &limits).is_err());
        let r = ledger.reserve(id(3), at(120), &limits).unwrap();
        assert_eq!(ledger.sends, 2, "the abandoned send is not charged");
        assert_eq!(r.previous_sent_at, Some(at(0)));
    }

    #[test]
    fn release_gives_the_send_back_and_keeps_the_old_code() {
        let mut ledger = ledger_with_one_code(0);
        let before = ledger.clone();
        let r = ledger.reserve(id(2), at(100), &LIMITS).unwrap();
        ledger.release(&r).unwrap();
        assert_eq!(ledger, before);
    }

    #[test]
    fn the_send_budget_includes_the_first_sms() {
        let mut ledger = OtpLedger::default();
        for n in 0..5 {
            let r = ledger
                .reserve(id(n), at(i64::from(n) * 100), &LIMITS)
                .unwrap();
            ledger.commit(&r, hash("h"), at(1_000), None).unwrap();
        }
        assert_eq!(
            ledger.reserve(id(9), at(10_000), &LIMITS),
            Err(LimitReached::MaxSends)
        );
        assert_eq!(LimitReached::MaxSends.retry_after_seconds(), None);
    }

    #[test]
    fn a_lost_reservation_cannot_be_committed_or_released() {
        let mut ledger = ledger_with_one_code(0);
        let stale = PendingSend {
            verification_id: id(7),
            reserved_at: at(1),
            previous_sent_at: None,
        };
        assert_eq!(
            ledger.commit(&stale, hash("x"), at(2), None).err(),
            Some(ReservationLost)
        );
        assert_eq!(ledger.release(&stale), Err(ReservationLost));
    }

    fn guess(code: &'static str) -> impl Fn(VerificationId) -> CodeHash {
        move |_| hash(code)
    }

    #[test]
    fn the_right_code_verifies_the_active_verification() {
        let mut ledger = ledger_with_one_code(0);
        assert_eq!(ledger.check_code(guess("h1"), at(10), 3), Ok(()));
        assert_eq!(ledger.verifications[0].status, VerificationStatus::Verified);
        assert!(ledger.active().is_none());
        assert_eq!(
            ledger.check_code(guess("h1"), at(11), 3),
            Err(CodeRefused::NoActiveCode)
        );
    }

    #[test]
    fn wrong_codes_are_counted_until_the_verification_is_spent() {
        let mut ledger = ledger_with_one_code(0);
        for attempt in 1..=3 {
            let refused = ledger.check_code(guess("nope"), at(10), 3).unwrap_err();
            assert_eq!(refused, CodeRefused::Invalid);
            assert!(refused.is_counted());
            assert_eq!(ledger.verifications[0].attempts, attempt);
        }
        assert_eq!(
            ledger.verifications[0].status,
            VerificationStatus::Unverified
        );
        assert_eq!(
            ledger.check_code(guess("h1"), at(10), 3),
            Err(CodeRefused::MaxAttempts)
        );
        assert!(!CodeRefused::MaxAttempts.is_counted());
        // A resend brings a fresh verification with its own attempts.
        let r = ledger.reserve(id(2), at(100), &LIMITS).unwrap();
        ledger.commit(&r, hash("h2"), at(700), None).unwrap();
        assert_eq!(ledger.check_code(guess("h2"), at(101), 3), Ok(()));
    }

    #[test]
    fn an_expired_code_is_refused_and_shown_expired() {
        let mut ledger = ledger_with_one_code(0);
        assert_eq!(
            ledger.check_code(guess("h1"), at(600), 3),
            Err(CodeRefused::Expired)
        );
        assert_eq!(
            ledger.verifications[0].status_at(at(600)),
            VerificationStatus::Expired
        );
        assert_eq!(
            ledger.verifications[0].status_at(at(599)),
            VerificationStatus::New
        );
        assert_eq!(ledger.verifications[0].attempts, 0);
    }

    #[test]
    fn a_cancelled_code_no_longer_approves() {
        let mut ledger = ledger_with_one_code(0);
        ledger.cancel_active();
        assert_eq!(ledger.verifications[0].status, VerificationStatus::Canceled);
        assert_eq!(
            ledger.check_code(guess("h1"), at(10), 3),
            Err(CodeRefused::NoActiveCode)
        );
        assert_eq!(
            OtpLedger::default().check_code(guess("h1"), at(10), 3),
            Err(CodeRefused::NoActiveCode)
        );
    }

    #[test]
    fn phone_limit_resets_at_utc_midnight() {
        let now = at(86_400 * 3 + 3_600);
        assert!(check_phone_daily(9, now, &LIMITS).is_ok());
        assert_eq!(
            check_phone_daily(10, now, &LIMITS),
            Err(LimitReached::PhoneDaily {
                retry_after_seconds: 82_800
            })
        );
    }
}
