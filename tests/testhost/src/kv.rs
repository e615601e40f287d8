//! `wasi:keyvalue` (store, atomics, batch) over one in-memory store that all
//! requests share, so that concurrent requests really race on it.
//!
//! Compare-and-swap follows Spin's built-in SQLite store: the expected value
//! is what `cas.current` read, and a swap whose expected value was "absent"
//! is a plain upsert. A component that races on absent keys therefore fails
//! here as it would on Spin.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

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
    fault: Mutex<Option<Fault>>,
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

    pub fn get(&self, label: &str, key: &str) -> Option<Vec<u8>> {
        self.lock()
            .get(&(label.to_owned(), key.to_owned()))
            .cloned()
    }

    pub fn set(&self, label: &str, key: &str, value: Vec<u8>) {
        self.lock()
            .insert((label.to_owned(), key.to_owned()), value);
    }

    pub fn keys(&self, label: &str) -> Vec<String> {
        let mut keys: Vec<String> = self
            .lock()
            .keys()
            .filter(|(l, _)| l == label)
            .map(|(_, k)| k.clone())
            .collect();
        keys.sort();
        keys
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(String, String), Vec<u8>>> {
        self.entries
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
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

    fn entry_key(
        &self,
        bucket: &Resource<Bucket>,
        key: String,
    ) -> Result<(String, String), store::Error> {
        Ok((self.label(bucket)?, key))
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
        let entry = self.entry_key(&bucket, key)?;
        Ok(self.data.lock().get(&entry).cloned())
    }

    fn set(
        &mut self,
        bucket: Resource<Bucket>,
        key: String,
        value: Vec<u8>,
    ) -> Result<(), store::Error> {
        self.data.check(Operation::Set, &key)?;
        let entry = self.entry_key(&bucket, key)?;
        self.data.lock().insert(entry, value);
        Ok(())
    }

    fn delete(&mut self, bucket: Resource<Bucket>, key: String) -> Result<(), store::Error> {
        self.data.check(Operation::Delete, &key)?;
        let entry = self.entry_key(&bucket, key)?;
        self.data.lock().remove(&entry);
        Ok(())
    }

    fn exists(&mut self, bucket: Resource<Bucket>, key: String) -> Result<bool, store::Error> {
        self.data.check(Operation::Exists, &key)?;
        let entry = self.entry_key(&bucket, key)?;
        Ok(self.data.lock().contains_key(&entry))
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
        let entry = self.entry_key(&bucket, key)?;
        let mut entries = self.data.lock();
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

    fn swap(&mut self, cas: Resource<CasHandle>, value: Vec<u8>) -> Result<(), atomics::CasError> {
        let handle = self
            .table
            .delete(cas)
            .map_err(|e| atomics::CasError::StoreError(other(e)))?;
        self.data
            .check(Operation::Swap, &handle.key)
            .map_err(atomics::CasError::StoreError)?;
        let entry = (handle.label.clone(), handle.key.clone());
        let mut entries = self.data.lock();
        match &handle.expected {
            Some(expected) if entries.get(&entry) != Some(expected) => {
                drop(entries);
                let retry = CasHandle {
                    expected: None,
                    ..handle
                };
                let retry = self
                    .table
                    .push(retry)
                    .map_err(|e| atomics::CasError::StoreError(other(e)))?;
                Err(atomics::CasError::CasFailed(retry))
            }
            _ => {
                entries.insert(entry, value);
                Ok(())
            }
        }
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
            })
            .map_err(other)
    }

    fn current(&mut self, cas: Resource<CasHandle>) -> Result<Option<Vec<u8>>, store::Error> {
        let handle = self.table.get(&cas).map_err(other)?;
        self.data.check(Operation::CasCurrent, &handle.key)?;
        let value = self.data.get(&handle.label, &handle.key);
        self.table.get_mut(&cas).map_err(other)?.expected = value.clone();
        Ok(value)
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
        let entries = self.data.lock();
        Ok(keys
            .into_iter()
            .map(|key| {
                let value = entries.get(&(label.clone(), key.clone())).cloned();
                (key, value)
            })
            .collect())
    }

    fn set_many(
        &mut self,
        bucket: Resource<Bucket>,
        pairs: Vec<(String, Vec<u8>)>,
    ) -> Result<(), store::Error> {
        self.data.check(Operation::Batch, "")?;
        let label = self.label(&bucket)?;
        let mut entries = self.data.lock();
        for (key, value) in pairs {
            entries.insert((label.clone(), key), value);
        }
        Ok(())
    }

    fn delete_many(
        &mut self,
        bucket: Resource<Bucket>,
        keys: Vec<String>,
    ) -> Result<(), store::Error> {
        self.data.check(Operation::Batch, "")?;
        let label = self.label(&bucket)?;
        let mut entries = self.data.lock();
        for key in keys {
            entries.remove(&(label.clone(), key));
        }
        Ok(())
    }
}

/// Shared between all instances of one app.
pub type SharedKeyValue = Arc<KeyValue>;
