//! The wasmtime side that lives as long as the process.
//!
//! One engine (slim features, pooling allocator sized from config), one
//! linker with full WASI plus wasi:http (guests built with Rust std import
//! `wasi:cli/*` beyond the proxy world), one epoch ticker thread, and the
//! compile cache. Loading a component compiles it (or finds it compiled)
//! and links it against the linker, so a file that is not a wasi:http proxy
//! component, or whose imports cannot be satisfied, is rejected at load time
//! rather than on its first request.

use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, SystemTime};

use wasmtime::component::Linker;
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, Result};
use wasmtime_wasi_http::p2::bindings::ProxyPre;

use crate::cache::{self, CompileCache, Origin};
use crate::config::PoolConfig;
use crate::state::RequestState;

/// How often the epoch advances. A running guest yields to the async
/// executor at every tick, so spinning guests cannot starve the others (a
/// sleeping request waits at most a tick per busy guest ahead of it on its
/// thread), and the request deadline (a tokio timeout) can stop it.
pub const EPOCH_TICK: Duration = Duration::from_millis(1);

/// A Rust std component has a handful of core instances, memories and tables
/// (its own, plus the WASI adapter's); these bound one component's share of
/// the pool.
const CORE_INSTANCES_PER_COMPONENT: u32 = 8;
const MEMORIES_PER_COMPONENT: u32 = 2;
const TABLES_PER_COMPONENT: u32 = 4;

pub struct WasmEngine {
    engine: Engine,
    linker: Linker<RequestState>,
    cache: CompileCache,
}

/// A component ready to serve: pre-instantiated, with what identifies it.
pub struct LoadedComponent {
    pub pre: ProxyPre<RequestState>,
    /// SHA-256 of the component's bytes, hex.
    pub digest: String,
    pub loaded_at: SystemTime,
    /// Whether it was compiled now or found compiled.
    pub origin: Origin,
}

impl WasmEngine {
    /// `fuel`: whether any route has a fuel budget. Fuel metering costs
    /// every guest some speed, so it is only switched on when asked for.
    pub fn new(pool: &PoolConfig, fuel: bool, cache_dir: Option<PathBuf>) -> Result<Self> {
        let mut pooling = PoolingAllocationConfig::new();
        let n = pool.max_instances;
        pooling
            .total_component_instances(n)
            .total_stacks(n)
            .total_core_instances(n.saturating_mul(CORE_INSTANCES_PER_COMPONENT))
            .max_core_instances_per_component(CORE_INSTANCES_PER_COMPONENT)
            .total_memories(n.saturating_mul(MEMORIES_PER_COMPONENT))
            .max_memories_per_component(MEMORIES_PER_COMPONENT)
            .total_tables(n.saturating_mul(TABLES_PER_COMPONENT))
            .max_tables_per_component(TABLES_PER_COMPONENT)
            .max_memory_size(usize::try_from(pool.max_memory_bytes)?);

        let mut config = Config::new();
        config
            .allocation_strategy(InstanceAllocationStrategy::Pooling(pooling))
            .epoch_interruption(true)
            .consume_fuel(fuel);
        let engine = Engine::new(&config)?;

        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
        wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)?;

        start_epoch_ticker(&engine);
        let cache = CompileCache::new(&engine, cache_dir);
        Ok(Self {
            engine,
            linker,
            cache,
        })
    }

    /// Compiles (or finds compiled) and links the component at `path`.
    /// Blocking and CPU-heavy when compiling (tens to hundreds of
    /// milliseconds): call it off the async threads.
    pub fn load(&self, path: &Path) -> Result<LoadedComponent> {
        let bytes = std::fs::read(path)
            .map_err(|e| wasmtime::format_err!("cannot read `{}`: {e}", path.display()))?;
        self.load_bytes(&bytes)
    }

    /// Like [`WasmEngine::load`], from bytes.
    pub fn load_bytes(&self, bytes: &[u8]) -> Result<LoadedComponent> {
        let digest = cache::digest(bytes);
        let (component, origin) = self.cache.get_or_compile(&self.engine, bytes, &digest)?;
        let pre = ProxyPre::new(self.linker.instantiate_pre(&component)?)?;
        Ok(LoadedComponent {
            pre,
            digest,
            loaded_at: SystemTime::now(),
            origin,
        })
    }
}

/// One ticker per engine: a ticker per request costs orders of magnitude in
/// throughput (wasmtime issue #11814). It stops when the engine is dropped.
fn start_epoch_ticker(engine: &Engine) {
    let weak = engine.weak();
    thread::Builder::new()
        .name("epoch-ticker".into())
        .spawn(move || {
            while let Some(engine) = weak.upgrade() {
                engine.increment_epoch();
                drop(engine);
                thread::sleep(EPOCH_TICK);
            }
        })
        .expect("spawning the epoch ticker thread");
}
