//! `wasi:keyvalue` (store, atomics, batch) over one store that all requests
//! share, so that concurrent requests really race on it: in memory, or on a
//! Redis server that several hosts can share.
//!
//! In memory, the atomics follow Spin's built-in SQLite store: counters are
//! little-endian `i64`, the expected value of a compare-and-swap is what
//! `cas.current` read, and a swap whose expected value was "absent" is a plain
//! upsert, so a component that races on absent keys fails here as it would on
//! Spin. On Redis they follow Spin's Redis store: counters are `INCRBY`'s
//! decimal text, and `cas.current` is `WATCH` + `GET` on a connection of the
//! handle's own, the swap `MULTI`/`SET`/`EXEC` on it — and, as there, a swap
//! whose `EXEC` was aborted because another writer came first is reported as
//! done, with nothing written (README, "Deploying"). A component that trusts
//! the swap's word loses races here as it would on Spin with Redis.

use std::collections::HashMap;
use std::sync::Mutex;

use redis::Commands as _;

use wasmtime::component::{HasData, Linker, Resource, ResourceTable};

mod bindings {
    wasmtime::component::bindgen!({
        path: "../../wit/deps/keyvalue",
        inline: "package testhost:kv; world host { include wasi:keyvalue/imports@0.2.0-draft2; }",
        with: {
            "wasi:keyvalue/store.bucket": super::Bucket,
            "wasi:keyvalue/atomics.cas": super::CasHandle,
        },
    });
}

use bindings::wasi::keyvalue::{atomics, batch, store};

/// All key-value stores of one running app, by label.
#[derive(Default)]
pub struct KeyValue {
    entries: Mutex<HashMap<(String, String), Vec<u8>>>,
    backend: Backend,
    fault: Mutex<Option<Fault>>,
}

#[derive(Default)]
enum Backend {
    #[default]
    Memory,
    Redis(Box<Redis>),
}

/// Where an app keeps its key-value data.
#[derive(Debug, Clone, Default)]
pub enum Backing {
    #[default]
    Memory,
    /// A Redis server; every key is stored under `key_prefix` (empty: the
    /// component's own key names, as Spin's Redis store keeps them).
    Redis { url: String, key_prefix: String },
}

/// A store operation, as the component calls it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    Open,
    Get,
    Set,
    Delete,
    Exists,
    ListKeys,
    Increment,
    CasNew,
    CasCurrent,
    Swap,
    Batch,
}

/// Which store calls fail: those of `operation` (any, when `None`) on keys
/// containing `key_contains`, every `every`-th of them (1: all).
#[derive(Debug, Clone)]
pub struct Fault {
    pub operation: Option<Operation>,
    pub key_contains: Option<String>,
    pub every: u64,
    matched: u64,
}

impl Fault {
    pub fn new(operation: Option<Operation>, key_contains: Option<&str>, every: u64) -> Self {
        Self {
            operation,
            key_contains: key_contains.map(str::to_owned),
            every: every.max(1),
            matched: 0,
        }
    }
}

impl KeyValue {
    /// From now on, the calls `fault` names fail with a store error, as a
    /// broken database would; `None` heals the store.
    pub fn inject(&self, fault: Option<Fault>) {
        *self.fault.lock().unwrap_or_else(|p| p.into_inner()) = fault;
    }

    fn check(&self, operation: Operation, key: &str) -> Result<(), store::Error> {
        let mut fault = self.fault.lock().unwrap_or_else(|p| p.into_inner());
        let Some(fault) = fault.as_mut() else {
            return Ok(());
        };
        let applies = fault.operation.is_none_or(|op| op == operation)
            && fault
                .key_contains
                .as_deref()
                .is_none_or(|part| key.contains(part));
        if !applies {
            return Ok(());
        }
        fault.matched += 1;
        if fault.matched % fault.every == 0 {
            return Err(store::Error::Other(format!(
                "injected fault: {operation:?} {key}"
            )));
        }
        Ok(())
    }

    pub fn new(backing: &Backing) -> anyhow::Result<Self> {
        let backend = match backing {
            Backing::Memory => Backend::Memory,
            Backing::Redis { url, key_prefix } => {
                Backend::Redis(Box::new(Redis::open(url, key_prefix)?))
            }
        };
        Ok(Self {
            backend,
            ..Self::default()
        })
    }

    /// What `key` holds in the store `label`, read past any injected fault.
    pub fn get(&self, label: &str, key: &str) -> Option<Vec<u8>> {
        self.read(label, key).expect("the key-value store answers")
    }

    pub fn set(&self, label: &str, key: &str, value: Vec<u8>) {
        self.write(label, key, value)
            .expect("the key-value store answers");
    }

    pub fn keys(&self, label: &str) -> Vec<String> {
        let mut keys = match &self.backend {
            Backend::Memory => self
                .lock()
                .keys()
                .filter(|(l, _)| l == label)
                .map(|(_, k)| k.clone())
                .collect(),
            Backend::Redis(redis) => redis.keys(label).expect("the key-value store answers"),
        };
        keys.sort();
        keys
    }

    fn read(&self, label: &str, key: &str) -> Result<Option<Vec<u8>>, store::Error> {
        match &self.backend {
            Backend::Memory => Ok(self
                .lock()
                .get(&(label.to_owned(), key.to_owned()))
                .cloned()),
            Backend::Redis(redis) => redis.with(|c| c.get(redis.key(label, key))),
        }
    }

    fn write(&self, label: &str, key: &str, value: Vec<u8>) -> Result<(), store::Error> {
        match &self.backend {
            Backend::Memory => {
                self.lock()
                    .insert((label.to_owned(), key.to_owned()), value);
                Ok(())
            }
            Backend::Redis(redis) => redis.with(|c| c.set(redis.key(label, key), value)),
        }
    }

    fn remove(&self, label: &str, key: &str) -> Result<(), store::Error> {
        match &self.backend {
            Backend::Memory => {
                self.lock().remove(&(label.to_owned(), key.to_owned()));
                Ok(())
            }
            Backend::Redis(redis) => redis.with(|c| c.del(redis.key(label, key))),
        }
    }

    fn increment(&self, label: &str, key: &str, delta: i64) -> Result<i64, store::Error> {
        match &self.backend {
            Backend::Memory => {
                let entry = (label.to_owned(), key.to_owned());
                let mut entries = self.lock();
                let current = match entries.get(&entry) {
                    None => 0,
                    Some(bytes) => i64::from_le_bytes(
                        bytes
                            .as_slice()
                            .try_into()
                            .map_err(|_| other("value is not a counter"))?,
                    ),
                };
                let updated = current
                    .checked_add(delta)
                    .ok_or_else(|| other("counter overflow"))?;
                entries.insert(entry, updated.to_le_bytes().to_vec());
                Ok(updated)
            }
            Backend::Redis(redis) => redis.with(|c| c.incr(redis.key(label, key), delta)),
        }
    }

    /// Starts a compare-and-swap on `key`: what it holds now, and what the
    /// swap will need to know that nothing changed since.
    fn watch(&self, handle: &mut CasHandle) -> Result<Option<Vec<u8>>, store::Error> {
        match &self.backend {
            Backend::Memory => {
                let value = self.read(&handle.label, &handle.key)?;
                handle.expected = value.clone();
                Ok(value)
            }
            Backend::Redis(redis) => {
                let mut connection = redis.connect()?;
                let key = redis.key(&handle.label, &handle.key);
                redis::cmd("WATCH")
                    .arg(&key)
                    .exec(&mut connection)
                    .map_err(other)?;
                let value = connection.get(&key).map_err(other)?;
                handle.watch = Some(connection);
                Ok(value)
            }
        }
    }

    /// Writes `value` if `key` still holds what [`KeyValue::watch`] saw;
    /// `Ok(false)` when another writer came first — in memory; on Redis, as on
    /// Spin, a lost race comes back as `Ok(true)`.
    fn swap(&self, handle: &mut CasHandle, value: Vec<u8>) -> Result<bool, store::Error> {
        match &self.backend {
            Backend::Memory => {
                let entry = (handle.label.clone(), handle.key.clone());
                let mut entries = self.lock();
                match &handle.expected {
                    Some(expected) if entries.get(&entry) != Some(expected) => Ok(false),
                    _ => {
                        entries.insert(entry, value);
                        Ok(true)
                    }
                }
            }
            Backend::Redis(redis) => {
                let key = redis.key(&handle.label, &handle.key);
                let Some(mut connection) = handle.watch.take() else {
                    // No `current` first: nothing is watched, so the swap is
                    // a plain write, as on Spin.
                    return redis.with(|c| c.set(key, value)).map(|()| true);
                };
                // Spin reads `EXEC`'s answer as `()`, which takes an aborted
                // transaction's nil as well as a committed one's array.
                redis::pipe()
                    .atomic()
                    .set(&key, value)
                    .query::<()>(&mut connection)
                    .map_err(other)?;
                Ok(true)
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(String, String), Vec<u8>>> {
        self.entries
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// A Redis server as an app's store: commands share a few open connections;
/// each compare-and-swap has a connection of its own, since `WATCH` belongs
/// to a connection.
struct Redis {
    client: redis::Client,
    idle: Mutex<Vec<redis::Connection>>,
    key_prefix: String,
}

impl Redis {
    fn open(url: &str, key_prefix: &str) -> anyhow::Result<Self> {
        let client = redis::Client::open(url)?;
        let mut connection = client.get_connection()?;
        redis::cmd("PING").exec(&mut connection)?;
        Ok(Self {
            client,
            idle: Mutex::new(vec![connection]),
            key_prefix: key_prefix.to_owned(),
        })
    }

    /// Spin gives each store label its own Redis server; the test host keeps
    /// labels other than `default` apart by name instead.
    fn key(&self, label: &str, key: &str) -> String {
        if label == "default" {
            format!("{}{key}", self.key_prefix)
        } else {
            format!("{}{label}:{key}", self.key_prefix)
        }
    }

    fn keys(&self, label: &str) -> Result<Vec<String>, store::Error> {
        let pattern = format!("{}*", self.key(label, ""));
        let keys: Vec<String> = self.with(|c| c.keys(pattern))?;
        let own = self.key(label, "");
        Ok(keys
            .into_iter()
            .filter_map(|key| key.strip_prefix(&own).map(str::to_owned))
            .collect())
    }

    fn connect(&self) -> Result<redis::Connection, store::Error> {
        self.client.get_connection().map_err(other)
    }

    fn with<T>(
        &self,
        command: impl FnOnce(&mut redis::Connection) -> redis::RedisResult<T>,
    ) -> Result<T, store::Error> {
        let idle = self.idle.lock().unwrap_or_else(|p| p.into_inner()).pop();
        let mut connection = match idle {
            Some(connection) => connection,
            None => self.connect()?,
        };
        let outcome = command(&mut connection).map_err(other)?;
        self.idle
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(connection);
        Ok(outcome)
    }
}

pub struct Bucket {
    label: String,
}

pub struct CasHandle {
    label: String,
    key: String,
    /// What `current` read; `None` until it is called.
    expected: Option<Vec<u8>>,
    /// On Redis, the connection that `WATCH`es the key.
    watch: Option<redis::Connection>,
}

/// What one component instance sees: the shared store and the labels its
/// manifest entry declares.
pub struct KeyValueView<'a> {
    pub table: &'a mut ResourceTable,
    pub data: &'a KeyValue,
    pub allowed_labels: &'a [String],
}

pub fn add_to_linker<T: 'static>(
    linker: &mut Linker<T>,
    get: fn(&mut T) -> KeyValueView<'_>,
) -> wasmtime::Result<()> {
    store::add_to_linker::<T, HasKeyValue>(linker, get)?;
    atomics::add_to_linker::<T, HasKeyValue>(linker, get)?;
    batch::add_to_linker::<T, HasKeyValue>(linker, get)?;
    Ok(())
}

struct HasKeyValue;

impl HasData for HasKeyValue {
    type Data<'a> = KeyValueView<'a>;
}

fn other(error: impl std::fmt::Display) -> store::Error {
    store::Error::Other(error.to_string())
}

impl KeyValueView<'_> {
    fn label(&self, bucket: &Resource<Bucket>) -> Result<String, store::Error> {
        Ok(self.table.get(bucket).map_err(other)?.label.clone())
    }
}

impl store::Host for KeyValueView<'_> {
    fn open(&mut self, identifier: String) -> Result<Resource<Bucket>, store::Error> {
        // Spin answers a label the component did not declare with access-denied.
        self.data.check(Operation::Open, &identifier)?;
        if !self.allowed_labels.contains(&identifier) {
            return Err(store::Error::AccessDenied);
        }
        self.table.push(Bucket { label: identifier }).map_err(other)
    }
}

impl store::HostBucket for KeyValueView<'_> {
    fn get(
        &mut self,
        bucket: Resource<Bucket>,
        key: String,
    ) -> Result<Option<Vec<u8>>, store::Error> {
        self.data.check(Operation::Get, &key)?;
        self.data.read(&self.label(&bucket)?, &key)
    }

    fn set(
        &mut self,
        bucket: Resource<Bucket>,
        key: String,
        value: Vec<u8>,
    ) -> Result<(), store::Error> {
        self.data.check(Operation::Set, &key)?;
        self.data.write(&self.label(&bucket)?, &key, value)
    }

    fn delete(&mut self, bucket: Resource<Bucket>, key: String) -> Result<(), store::Error> {
        self.data.check(Operation::Delete, &key)?;
        self.data.remove(&self.label(&bucket)?, &key)
    }

    fn exists(&mut self, bucket: Resource<Bucket>, key: String) -> Result<bool, store::Error> {
        self.data.check(Operation::Exists, &key)?;
        Ok(self.data.read(&self.label(&bucket)?, &key)?.is_some())
    }

    fn list_keys(
        &mut self,
        bucket: Resource<Bucket>,
        _cursor: Option<String>,
    ) -> Result<store::KeyResponse, store::Error> {
        self.data.check(Operation::ListKeys, "")?;
        let label = self.label(&bucket)?;
        Ok(store::KeyResponse {
            keys: self.data.keys(&label),
            cursor: None,
        })
    }

    fn drop(&mut self, bucket: Resource<Bucket>) -> wasmtime::Result<()> {
        self.table.delete(bucket)?;
        Ok(())
    }
}

impl atomics::Host for KeyValueView<'_> {
    fn increment(
        &mut self,
        bucket: Resource<Bucket>,
        key: String,
        delta: i64,
    ) -> Result<i64, store::Error> {
        self.data.check(Operation::Increment, &key)?;
        self.data.increment(&self.label(&bucket)?, &key, delta)
    }

    fn swap(&mut self, cas: Resource<CasHandle>, value: Vec<u8>) -> Result<(), atomics::CasError> {
        let handle = self
            .table
            .delete(cas)
            .map_err(|e| atomics::CasError::StoreError(other(e)))?;
        self.data
            .check(Operation::Swap, &handle.key)
            .map_err(atomics::CasError::StoreError)?;
        let mut handle = handle;
        if self
            .data
            .swap(&mut handle, value)
            .map_err(atomics::CasError::StoreError)?
        {
            return Ok(());
        }
        // The component may read the newer value through the returned handle
        // and try again.
        let retry = CasHandle {
            expected: None,
            watch: None,
            ..handle
        };
        let retry = self
            .table
            .push(retry)
            .map_err(|e| atomics::CasError::StoreError(other(e)))?;
        Err(atomics::CasError::CasFailed(retry))
    }
}

impl atomics::HostCas for KeyValueView<'_> {
    fn new(
        &mut self,
        bucket: Resource<Bucket>,
        key: String,
    ) -> Result<Resource<CasHandle>, store::Error> {
        self.data.check(Operation::CasNew, &key)?;
        let label = self.label(&bucket)?;
        self.table
            .push(CasHandle {
                label,
                key,
                expected: None,
                watch: None,
            })
            .map_err(other)
    }

    fn current(&mut self, cas: Resource<CasHandle>) -> Result<Option<Vec<u8>>, store::Error> {
        let handle = self.table.get_mut(&cas).map_err(other)?;
        self.data.check(Operation::CasCurrent, &handle.key)?;
        self.data.watch(handle)
    }

    fn drop(&mut self, cas: Resource<CasHandle>) -> wasmtime::Result<()> {
        self.table.delete(cas)?;
        Ok(())
    }
}

impl batch::Host for KeyValueView<'_> {
    fn get_many(
        &mut self,
        bucket: Resource<Bucket>,
        keys: Vec<String>,
    ) -> Result<Vec<(String, Option<Vec<u8>>)>, store::Error> {
        self.data.check(Operation::Batch, "")?;
        let label = self.label(&bucket)?;
        keys.into_iter()
            .map(|key| Ok((key.clone(), self.data.read(&label, &key)?)))
            .collect()
    }

    fn set_many(
        &mut self,
        bucket: Resource<Bucket>,
        pairs: Vec<(String, Vec<u8>)>,
    ) -> Result<(), store::Error> {
        self.data.check(Operation::Batch, "")?;
        let label = self.label(&bucket)?;
        pairs
            .into_iter()
            .try_for_each(|(key, value)| self.data.write(&label, &key, value))
    }

    fn delete_many(
        &mut self,
        bucket: Resource<Bucket>,
        keys: Vec<String>,
    ) -> Result<(), store::Error> {
        self.data.check(Operation::Batch, "")?;
        let label = self.label(&bucket)?;
        keys.iter()
            .try_for_each(|key| self.data.remove(&label, key))
    }
}
