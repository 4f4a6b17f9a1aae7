//! The per-request store data: what one guest instance may see and use.
//!
//! Each request gets a fresh `Store` holding one of these, so nothing leaks
//! from one request to the next. The guest gets no files, no environment and
//! no network beyond wasi:http; its stderr goes to the host's stderr so a
//! panicking guest's message is not lost. Its linear memory is capped by
//! [`MemoryLimit`], per route.

use std::sync::Arc;

use wasmtime::component::ResourceTable;
use wasmtime::{ResourceLimiter, Result};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use crate::usage::GuestUsage;

pub struct RequestState {
    wasi: WasiCtx,
    http: WasiHttpCtx,
    table: ResourceTable,
    pub memory: MemoryLimit,
}

impl RequestState {
    /// `usage`, when given, is told of every memory growth.
    pub fn new(max_memory_bytes: u64, usage: Option<Arc<GuestUsage>>) -> Self {
        Self {
            wasi: WasiCtx::builder().inherit_stderr().build(),
            http: WasiHttpCtx::new(),
            table: ResourceTable::new(),
            memory: MemoryLimit {
                max_bytes: usize::try_from(max_memory_bytes).unwrap_or(usize::MAX),
                usage,
            },
        }
    }
}

impl WasiView for RequestState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for RequestState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: Default::default(),
        }
    }
}

/// Caps each linear memory of an instance. Growing past the cap traps with
/// [`MemoryLimitExceeded`] rather than failing `memory.grow`, so the
/// failure is recognisable (Rust guests would otherwise abort on a failed
/// allocation with an anonymous `unreachable`).
pub struct MemoryLimit {
    max_bytes: usize,
    /// Where the instance's memory growth is recorded, if anywhere.
    usage: Option<Arc<GuestUsage>>,
}

/// The trap raised when a guest outgrows its memory limit.
#[derive(Debug)]
pub struct MemoryLimitExceeded {
    pub limit: usize,
    pub desired: usize,
}

impl std::fmt::Display for MemoryLimitExceeded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "linear memory limit exceeded: wanted {} bytes, limit {}",
            self.desired, self.limit
        )
    }
}

impl std::error::Error for MemoryLimitExceeded {}

impl ResourceLimiter for MemoryLimit {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> Result<bool> {
        if desired > self.max_bytes {
            return Err(wasmtime::Error::new(MemoryLimitExceeded {
                limit: self.max_bytes,
                desired,
            }));
        }
        if let Some(usage) = &self.usage {
            usage.memory_grew(current, desired);
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        _desired: usize,
        _maximum: Option<usize>,
    ) -> Result<bool> {
        // Tables are bounded by the pooling allocator's slots.
        Ok(true)
    }
}
