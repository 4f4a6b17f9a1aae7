//! The wasmtime side that lives as long as the process.
//!
//! One engine (slim features, pooling allocator sized from config), one
//! linker with full WASI plus wasi:http (guests built with Rust std import
//! `wasi:cli/*` beyond the proxy world), one epoch ticker thread, and the
//! compile cache. Loading a component compiles it (or finds it compiled)
//! and links it against the linker, so a file that is not a wasi:http proxy
//! component, or whose imports cannot be satisfied, is rejected at load time
//! rather than on its first request.

use std::path::PathBuf;
use std::thread;
use std::time::{Duration, SystemTime};

use wasmtime::component::Linker;
use wasmtime::{
    Config, Enabled, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, Result,
};
use wasmtime_wasi_http::p2::bindings::ProxyPre;

use crate::cache::{self, CompileCache, Origin};
use crate::config::{MEMORIES_PER_COMPONENT, PoolConfig};
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
const TABLES_PER_COMPONENT: u32 = 4;

/// wasmtime reserves 4 GiB of address space per linear memory slot by
/// default (so it can elide bounds checks). Up to this much in total the
/// default stays; a bigger pool gets slots only as large as the memory
/// limit (bounds checks in guest code, but 10,000 instances fit).
const MAX_DEFAULT_RESERVATION: u64 = 16 << 40;
const DEFAULT_SLOT: u64 = (4 << 30) + (32 << 20);

/// How much of each pooled memory, table and stack is reset in place
/// rather than given back to the kernel: a hello-world Rust component
/// dirties about 1 MiB.
const KEEP_RESIDENT: usize = 2 << 20;

pub struct WasmEngine {
    engine: Engine,
    linker: Linker<RequestState>,
    cache: CompileCache,
    fuel: bool,
}

/// A component ready to serve: pre-instantiated, with what identifies it.
pub struct LoadedComponent {
    pub pre: ProxyPre<RequestState>,
    /// SHA-256 of the component's bytes, hex.
    pub digest: String,
    /// The file or registry reference it was read from; `None` for bytes
    /// uploaded through the admin API.
    pub from: Option<String>,
    /// The component's own bytes (a few hundred KiB at most for release
    /// builds): kept so a version recorded to serve instead of a held-back
    /// one can be written down (`control/store.rs`).
    pub bytes: std::sync::Arc<[u8]>,
    pub loaded_at: SystemTime,
    /// Whether it was compiled now or found compiled.
    pub origin: Origin,
}

impl WasmEngine {
    /// `fuel`: whether any route has a fuel budget. Fuel metering costs
    /// every guest some speed, so it is only switched on when asked for.
    pub fn new(
        pool: &PoolConfig,
        fuel: bool,
        cache_dir: Option<PathBuf>,
        cache_max_bytes: u64,
    ) -> Result<Self> {
        let mut pooling = PoolingAllocationConfig::new();
        let n = pool.max_instances;
        pooling
            .total_component_instances(n)
            .total_stacks(n)
            .total_core_instances(n.saturating_mul(CORE_INSTANCES_PER_COMPONENT))
            .max_core_instances_per_component(CORE_INSTANCES_PER_COMPONENT)
            .total_memories(pool.memory_slots)
            .max_memories_per_component(MEMORIES_PER_COMPONENT)
            .total_tables(n.saturating_mul(TABLES_PER_COMPONENT))
            .max_tables_per_component(TABLES_PER_COMPONENT)
            .max_memory_size(usize::try_from(pool.max_memory_bytes)?)
            // Reset a finished instance's memory, tables and stack in place
            // (only the pages it dirtied, where PAGEMAP_SCAN exists) instead
            // of madvise: unmapping pages costs a TLB shootdown on every core,
            // which profiled as the largest single cost per request.
            .linear_memory_keep_resident(KEEP_RESIDENT)
            .table_keep_resident(KEEP_RESIDENT)
            .async_stack_keep_resident(KEEP_RESIDENT)
            .pagemap_scan(Enabled::Auto);

        let mut config = Config::new();
        let slots = u64::from(pool.memory_slots);
        if slots.saturating_mul(DEFAULT_SLOT) > MAX_DEFAULT_RESERVATION {
            config.memory_reservation(pool.max_memory_bytes);
        }
        config
            .allocation_strategy(InstanceAllocationStrategy::Pooling(pooling))
            // Copy each instance's data segments into its memory instead of
            // mapping the compiled image copy-on-write: the mapping splits
            // every busy memory slot into three more kernel mappings, and at
            // ~10,000 instances in flight that passes the kernel's limit
            // (vm.max_map_count, 65,530) and instantiation fails with ENOMEM.
            // A Rust component's image is a few KiB: copying costs nothing
            // measurable.
            .memory_init_cow(false)
            .epoch_interruption(true)
            .consume_fuel(fuel);
        let engine = Engine::new(&config).map_err(|e| {
            wasmtime::format_err!(
                "cannot set up the instance pool for {n} instances of up to {} MiB: {e:#} \
                 (lower pool.max_instances or pool.max_memory_mib)",
                pool.max_memory_bytes >> 20
            )
        })?;

        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
        wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)?;

        start_epoch_ticker(&engine);
        let cache = CompileCache::new(&engine, cache_dir, cache_max_bytes);
        Ok(Self {
            engine,
            linker,
            cache,
            fuel,
        })
    }

    /// Whether guests are metered with fuel (fixed at start).
    pub fn meters_fuel(&self) -> bool {
        self.fuel
    }

    /// Like [`WasmEngine::load`], from bytes.
    pub fn load_bytes(&self, bytes: &[u8]) -> Result<LoadedComponent> {
        let digest = cache::digest(bytes);
        let (component, origin) = self.cache.get_or_compile(&self.engine, bytes, &digest)?;
        self.link(&component, digest, origin, bytes.into())
    }

    fn link(
        &self,
        component: &wasmtime::component::Component,
        digest: String,
        origin: Origin,
        bytes: std::sync::Arc<[u8]>,
    ) -> Result<LoadedComponent> {
        let pre = ProxyPre::new(self.linker.instantiate_pre(component)?)?;
        Ok(LoadedComponent {
            pre,
            digest,
            from: None,
            bytes,
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
