//! The host key-value store (`wasi:keyvalue`), and the layout of what this
//! component keeps in it. See the README's "Key layout".

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::random;
use crate::bindings::wasi::keyvalue::atomics::{self, Cas, CasError};
use crate::bindings::wasi::keyvalue::store::{self, Bucket};
use crate::domain::{MergeRequest, MergeRequestId, OtpLedger};

/// The store label declared in `spin.toml`.
const STORE_LABEL: &str = "default";
/// Writers that lose a compare-and-swap re-read and re-decide; past this many
/// losses in a row the store is treated as unavailable rather than spun on.
const MAX_CAS_ROUNDS: usize = 8;
/// The format of [`MergeRequestRecord`]; bumped when its shape changes.
pub const RECORD_VERSION: u32 = 1;
/// How many of a record's latest writes it remembers: enough for a writer to
/// find its own write under those that came right after it.
const REMEMBERED_WRITES: usize = 8;

/// Everything about one merge request under one key, so that every change to
/// it, codes and counters included, is a single compare-and-swap on a key
/// that already exists (Spin's SQLite store cannot race on absent keys).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MergeRequestRecord {
    pub version: u32,
    pub merge_request: MergeRequest,
    #[serde(default)]
    pub otp: OtpLedger,
    /// Random marks of the latest writes, newest last: how a writer tells
    /// that its swap really landed (see [`Store::update`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub writes: Vec<u64>,
}

#[derive(Debug)]
pub struct StorageUnavailable;

/// Why [`Store::update`] did not write.
#[derive(Debug)]
pub enum UpdateError<E> {
    NotFound,
    Refused(E),
    Storage,
}

impl<E> From<StorageUnavailable> for UpdateError<E> {
    fn from(_: StorageUnavailable) -> Self {
        Self::Storage
    }
}

pub struct Store {
    bucket: Bucket,
}

pub fn merge_request_key(id: MergeRequestId) -> String {
    format!("merge_request:{id}")
}

fn generation_key(merge_person_id: &str) -> String {
    format!("merge_person_generation:{merge_person_id}")
}

pub fn phone_sends_key(phone_digest: &str, utc_date: &str) -> String {
    format!("sends_per_phone:{phone_digest}:{utc_date}")
}

impl Store {
    pub fn open() -> Result<Self, StorageUnavailable> {
        let bucket = store::open(STORE_LABEL).map_err(log_error)?;
        Ok(Self { bucket })
    }

    /// Reads a merge request's record, lets `change` decide on it, and writes
    /// the result with compare-and-swap. When another request wrote in
    /// between, `change` runs again on what that request wrote, so it never
    /// decides on stale state. `change` refusing means nothing is written.
    ///
    /// A swap the store calls done is confirmed by reading the record back:
    /// Spin's Redis store answers a swap that lost its race (an aborted
    /// `EXEC`) as done, with nothing written. The write's random mark, kept
    /// in the record, shows whether it landed, even under later writes.
    pub fn update<T, E>(
        &self,
        id: MergeRequestId,
        mut change: impl FnMut(&mut MergeRequestRecord) -> Result<T, E>,
    ) -> Result<T, UpdateError<E>> {
        let key = merge_request_key(id);
        let mut cas = Cas::new(&self.bucket, &key).map_err(log_error)?;
        for _ in 0..MAX_CAS_ROUNDS {
            let Some(bytes) = cas.current().map_err(log_error)? else {
                return Err(UpdateError::NotFound);
            };
            let mut record = decode(&key, &bytes)?;
            let outcome = change(&mut record).map_err(UpdateError::Refused)?;
            let mark = u64::from_le_bytes(random::bytes());
            record.writes.push(mark);
            let excess = record.writes.len().saturating_sub(REMEMBERED_WRITES);
            record.writes.drain(..excess);
            let updated = serde_json::to_vec(&record).map_err(|_| StorageUnavailable)?;
            match atomics::swap(cas, &updated) {
                Ok(()) if self.landed(&key, &updated, mark) => return Ok(outcome),
                Ok(()) => cas = Cas::new(&self.bucket, &key).map_err(log_error)?,
                Err(CasError::CasFailed(newer)) => cas = newer,
                Err(CasError::StoreError(e)) => return Err(log_error(e).into()),
            }
        }
        Err(UpdateError::Storage)
    }

    /// Whether the write marked `mark` is in the record now: it is the
    /// record, or one of the writes since was made on top of it. A record
    /// that cannot be read back leaves the store's word standing.
    fn landed(&self, key: &str, written: &[u8], mark: u64) -> bool {
        let Ok(Some(now)) = self.bucket.get(key) else {
            return true;
        };
        now == written
            || serde_json::from_slice::<MergeRequestRecord>(&now)
                .map_or(true, |record| record.writes.contains(&mark))
    }

    /// Reads a merge request's record without writing.
    pub fn read(
        &self,
        id: MergeRequestId,
    ) -> Result<Option<MergeRequestRecord>, StorageUnavailable> {
        let key = merge_request_key(id);
        match self.bucket.get(&key).map_err(log_error)? {
            None => Ok(None),
            Some(bytes) => decode(&key, &bytes).map(Some),
        }
    }

    /// Stores a new merge request. Its id is fresh from the random source, so
    /// no other request can be writing the same key.
    pub fn insert(&self, record: &MergeRequestRecord) -> Result<(), StorageUnavailable> {
        let bytes = serde_json::to_vec(record).map_err(|_| StorageUnavailable)?;
        self.bucket
            .set(&merge_request_key(record.merge_request.id), &bytes)
            .map_err(log_error)
    }

    /// A JSON value of this component's own (see the README's key layout);
    /// one that does not parse counts as storage trouble.
    pub fn get_json<T: DeserializeOwned>(
        &self,
        key: &str,
    ) -> Result<Option<T>, StorageUnavailable> {
        match self.bucket.get(key).map_err(log_error)? {
            None => Ok(None),
            Some(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|_| StorageUnavailable),
        }
    }

    pub fn set_json<T: Serialize>(&self, key: &str, value: &T) -> Result<(), StorageUnavailable> {
        let bytes = serde_json::to_vec(value).map_err(|_| StorageUnavailable)?;
        self.bucket.set(key, &bytes).map_err(log_error)
    }

    /// The generation of the latest merge request on a person (0: none yet).
    pub fn live_generation(&self, merge_person_id: &str) -> Result<u64, StorageUnavailable> {
        Ok(u64::try_from(self.counter(&generation_key(merge_person_id))?).unwrap_or(0))
    }

    /// Claims the next generation on a person: the request that gets it is
    /// the live one, and any older one counts as rejected from then on.
    pub fn next_generation(&self, merge_person_id: &str) -> Result<u64, StorageUnavailable> {
        Ok(u64::try_from(self.increment(&generation_key(merge_person_id), 1)?).unwrap_or(0))
    }

    /// Reads a counter kept with [`Store::increment`] without writing.
    pub fn counter(&self, key: &str) -> Result<i64, StorageUnavailable> {
        match self.bucket.get(key).map_err(log_error)? {
            None => Ok(0),
            Some(bytes) => decode_counter(&bytes).ok_or(StorageUnavailable),
        }
    }

    /// Atomic add, in whatever form the host's store keeps counters.
    pub fn increment(&self, key: &str, delta: i64) -> Result<i64, StorageUnavailable> {
        atomics::increment(&self.bucket, key, delta).map_err(log_error)
    }
}

/// A counter as the host's store keeps it: Spin's SQLite store writes
/// little-endian `i64`, its Redis store decimal text (`INCRBY`). Eight ASCII
/// digits read as text: as little-endian they would be a count above 3·10¹⁸.
pub fn decode_counter(bytes: &[u8]) -> Option<i64> {
    let digits = bytes.strip_prefix(b"-").unwrap_or(bytes);
    if !digits.is_empty() && digits.iter().all(u8::is_ascii_digit) {
        return std::str::from_utf8(bytes).ok()?.parse().ok();
    }
    <[u8; 8]>::try_from(bytes).ok().map(i64::from_le_bytes)
}

/// A stored record, refused (as storage trouble) when it does not parse or
/// has a format version this code does not know.
fn decode(key: &str, bytes: &[u8]) -> Result<MergeRequestRecord, StorageUnavailable> {
    let record: MergeRequestRecord = serde_json::from_slice(bytes).map_err(|e| {
        eprintln!(
            "{}",
            serde_json::json!({"level": "error", "message": "unreadable record", "key": key, "error": e.to_string()})
        );
        StorageUnavailable
    })?;
    if record.version != RECORD_VERSION {
        eprintln!(
            "{}",
            serde_json::json!({"level": "error", "message": "record of an unknown format version", "key": key, "version": record.version})
        );
        return Err(StorageUnavailable);
    }
    Ok(record)
}

fn log_error(error: store::Error) -> StorageUnavailable {
    let detail = match error {
        store::Error::NoSuchStore => "no such store".to_owned(),
        store::Error::AccessDenied => "access denied".to_owned(),
        store::Error::Other(detail) => detail,
    };
    eprintln!(
        "{}",
        serde_json::json!({"level": "error", "message": "key-value store failed", "error": detail})
    );
    StorageUnavailable
}

#[cfg(test)]
mod tests {
    use super::decode_counter;

    #[test]
    fn counters_read_in_the_sqlite_form() {
        for count in [0i64, 1, 9, 10, 255, 256, -1, 123_456_789] {
            assert_eq!(decode_counter(&count.to_le_bytes()), Some(count));
        }
    }

    #[test]
    fn counters_read_in_the_redis_form() {
        for count in [0i64, 1, 9, 10, 12_345_678, -3, i64::MAX] {
            assert_eq!(decode_counter(count.to_string().as_bytes()), Some(count));
        }
    }

    #[test]
    fn anything_else_is_not_a_counter() {
        for bytes in [
            &b""[..],
            b"-",
            b"12a",
            b"\x01\x02\x03",
            b"123456789a",
            b"99999999999999999999",
        ] {
            assert_eq!(decode_counter(bytes), None, "{bytes:?}");
        }
    }
}
