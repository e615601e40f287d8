//! `wasi:config/store` at the version Spin links (`0.2.0-draft-2024-09-27`;
//! the `wasmtime-wasi-config` crate implements a later draft that a Spin
//! component cannot link against).

use std::collections::HashMap;
use std::sync::Arc;

use wasmtime::component::{HasData, Linker};

mod bindings {
    wasmtime::component::bindgen!({
        path: "../../wit/deps/config",
        world: "wasi:config/imports",
    });
}

use bindings::wasi::config::store;

/// A component's resolved variables, as `spin.toml` maps them.
pub struct Variables(pub Arc<HashMap<String, String>>);

impl store::Host for Variables {
    fn get(&mut self, key: String) -> Result<Option<String>, store::Error> {
        Ok(self.0.get(&key).cloned())
    }

    fn get_all(&mut self) -> Result<Vec<(String, String)>, store::Error> {
        Ok(self.0.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
    }
}

struct HasVariables;

impl HasData for HasVariables {
    type Data<'a> = &'a mut Variables;
}

pub fn add_to_linker<T: 'static>(
    linker: &mut Linker<T>,
    get: fn(&mut T) -> &mut Variables,
) -> wasmtime::Result<()> {
    store::add_to_linker::<T, HasVariables>(linker, get)
}
