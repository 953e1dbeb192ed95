//! The sandbox: one engine, one linker, a fresh store per call, hard limits.
//!
//! Every call instantiates the provider anew from its `InstancePre`, so nothing
//! survives between calls and a trap poisons nothing. A background thread
//! advances the engine's epoch while a call runs (`epoch.rs`); a call's
//! deadline is a number of ticks, so a guest spinning in `loop {}` is
//! interrupted, not asked to yield.

mod cache;
mod contract;
mod epoch;
mod error;
mod limits;
mod v0_1;
mod wasi;

pub use cache::ComponentCache;
pub use contract::{ProviderExports, ProviderPre};
pub use error::{ProviderError, human_bytes, human_duration};
pub use limits::SandboxLimits;

use crate::audit::{AuditLog, CallAudit};
use crate::host::{CallHost, HostContext};
use epoch::{EpochTicker, deadline_ticks};
use error::CallEvidence;
use limits::Limiter;
use std::sync::Arc;
use std::time::{Duration, Instant};
use wasmtime::component::{Component, Linker, ResourceTable};
use wasmtime::{
    CallHook, Config, Enabled, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, Store,
};
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

/// Provider instances that may be live at once (pool slots).
const POOL_INSTANCES: u32 = 64;

/// WASI resources (streams, pollables, ...) one call may hold at once.
const MAX_RESOURCES: usize = 1024;

/// Memory kept resident between calls when the kernel cannot scan for
/// touched pages (see `engine_config`).
const FALLBACK_KEEP_RESIDENT: usize = 64 << 10;

/// Per-call state owned by the store: the sandbox's own (limits, WASI) and
/// the host's, which the sandbox only carries ([`CallHost`] is opaque here:
/// the sandbox knows no host interface).
pub struct CallState {
    limiter: Limiter,
    table: ResourceTable,
    /// Built on the first WASI call: most providers (the built-ins among them)
    /// import no WASI at all, and a call should not pay for what it never uses.
    wasi: Option<WasiState>,
    stdio_cap: usize,
    host: CallHost,
}

/// The provider a call is for and the limits it runs under (the sandbox's,
/// narrowed by the policy).
#[derive(Debug, Clone)]
pub struct Caller {
    pub provider: String,
    /// sha256 of the component.
    pub component: String,
    pub limits: SandboxLimits,
    /// `info()` at load: `provider` is a file name for messages, and the
    /// call's records wait for the id `info()` returns (`CallAudit::loading`).
    pub loading: bool,
}

struct WasiState {
    ctx: WasiCtx,
    stdout: MemoryOutputPipe,
    stderr: MemoryOutputPipe,
}

impl CallState {
    /// `info()` named the provider: the call's audit records take its id.
    pub fn identify(&mut self, id: &str) {
        self.host.identify(id);
    }
}

impl WasiView for CallState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        let cap = self.stdio_cap;
        let wasi = self.wasi.get_or_insert_with(|| {
            let stdout = MemoryOutputPipe::new(cap);
            let stderr = MemoryOutputPipe::new(cap);
            WasiState {
                ctx: wasi::pure_context(stdout.clone(), stderr.clone()),
                stdout,
                stderr,
            }
        });
        WasiCtxView {
            ctx: &mut wasi.ctx,
            table: &mut self.table,
        }
    }
}

pub struct Sandbox {
    engine: Engine,
    linker: Linker<CallState>,
    ticker: Arc<EpochTicker>,
    limits: SandboxLimits,
    cache: Option<ComponentCache>,
    audit_log: Option<Arc<AuditLog>>,
}

impl Sandbox {
    /// An engine configured for `limits`, caching compiled components in `cache_dir`.
    pub fn new(
        limits: SandboxLimits,
        cache_dir: Option<crate::home::HomePath>,
    ) -> anyhow::Result<Self> {
        let engine = Engine::new(&engine_config(&limits)).map_err(anyhow::Error::from)?;
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker).map_err(anyhow::Error::from)?;
        wasi::freeze_timers(&mut linker)?;
        crate::host::add_to_linker(&mut linker, |state: &mut CallState| &mut state.host)
            .map_err(anyhow::Error::from)?;
        let weak = engine.weak();
        let ticker = EpochTicker::spawn(move || {
            weak.upgrade()
                .map(|engine| engine.increment_epoch())
                .is_some()
        });
        let cache = cache_dir.map(|dir| ComponentCache::new(dir, &engine));
        Ok(Sandbox {
            engine,
            linker,
            ticker,
            limits,
            cache,
            audit_log: None,
        })
    }

    /// Records every privileged call in `log`.
    pub fn with_audit(mut self, log: Arc<AuditLog>) -> Self {
        self.audit_log = Some(log);
        self
    }

    pub fn audit_log(&self) -> Option<&Arc<AuditLog>> {
        self.audit_log.as_ref()
    }

    /// The caller of `info()` at load, named `label` until it names
    /// itself, with the sandbox's own limits.
    pub fn loading_caller(&self, label: &str, component: &str) -> Caller {
        Caller {
            provider: label.to_owned(),
            component: component.to_owned(),
            limits: self.limits,
            loading: true,
        }
    }

    pub fn limits(&self) -> &SandboxLimits {
        &self.limits
    }

    /// Compiles (or loads from the cache) a component whose sha256 is known.
    pub fn compile(&self, bytes: &[u8], sha256: &str) -> anyhow::Result<Component> {
        if let Some(component) = self
            .cache
            .as_ref()
            .and_then(|c| c.load(&self.engine, sha256))
        {
            return Ok(component);
        }
        let component = Component::from_binary(&self.engine, bytes).map_err(anyhow::Error::from)?;
        if let Some(cache) = &self.cache {
            cache.store(sha256, &component);
        }
        Ok(component)
    }

    /// Links a component against the host as the contract version whose
    /// `provider` it exports; fails when it is not a `mining-provider` of a
    /// version this host serves.
    pub fn prepare(&self, component: &Component) -> anyhow::Result<ProviderPre> {
        let contract = contract::contract_of(component).map_err(anyhow::Error::msg)?;
        let pre = self
            .linker
            .instantiate_pre(component)
            .map_err(anyhow::Error::from)?;
        ProviderPre::new(contract, pre).map_err(anyhow::Error::from)
    }

    /// Runs `call` against a fresh instance under the per-call limits.
    ///
    /// `host` is `None` for the pure calls (`info`, `detect`): every
    /// privileged import is then denied. Lifecycle calls pass the host
    /// context; their deadline counts time spent in guest code only, since
    /// host calls (an image pull, a container stop) carry their own timeouts.
    pub fn call<R>(
        &self,
        pre: &ProviderPre,
        caller: &Caller,
        host: Option<HostContext>,
        call: impl FnOnce(&dyn ProviderExports, &mut Store<CallState>) -> wasmtime::Result<R>,
    ) -> Result<R, ProviderError> {
        let lifecycle = host.is_some();
        let limits = caller.limits;
        let mut table = ResourceTable::new();
        table.set_max_capacity(MAX_RESOURCES);
        let mut audit = CallAudit::new(self.audit_log.clone(), &caller.provider, &caller.component)
            .contract(pre.contract().package());
        if caller.loading {
            audit = audit.loading();
        }
        let state = CallState {
            limiter: Limiter::new(limits),
            table,
            wasi: None,
            stdio_cap: limits.log_bytes,
            host: CallHost::new(
                &caller.provider,
                &caller.component,
                limits.log_bytes,
                limits.host_time,
                host,
                audit,
            ),
        };
        let mut store = Store::new(&self.engine, state);
        store.limiter(|state| &mut state.limiter);
        // Guest code runs from here until the result: the epoch advances.
        let _ticking = self.ticker.call();
        store.set_epoch_deadline(deadline_ticks(limits.call_timeout));
        store.epoch_deadline_trap();
        if lifecycle {
            store.call_hook(guest_time_budget(limits.call_timeout));
        }
        let result = match pre {
            ProviderPre::V0_1(pre) => pre
                .instantiate(&mut store)
                .and_then(|instance| call(&instance, &mut store)),
            ProviderPre::V0_2(pre) => pre
                .instantiate(&mut store)
                .and_then(|instance| call(&instance, &mut store)),
        };
        let state = store.data_mut();
        // The call is over, however it ended: its records are written now.
        state.host.finish_audit();
        let stdio_overflowed = forward_stdio(state);
        result.map_err(|err| {
            ProviderError::classify(
                &err,
                CallEvidence {
                    tripped: state.limiter.tripped,
                    panic_message: state.host.log().panic_message(),
                    stdio_overflowed,
                },
                &limits,
            )
        })
    }
}

fn engine_config(limits: &SandboxLimits) -> Config {
    // Reusing a slot's memory is the bulk of a call's cost. With PAGEMAP_SCAN
    // (Linux 6.7+) wasmtime resets only the pages a call touched and keeps them
    // resident, so the next call takes no page faults; without it, keeping much
    // resident means zeroing it all, so keep just a little.
    let keep_resident = if PoolingAllocationConfig::is_pagemap_scan_available() {
        limits.memory_bytes
    } else {
        FALLBACK_KEEP_RESIDENT
    };
    let mut pool = PoolingAllocationConfig::new();
    pool.total_component_instances(POOL_INSTANCES)
        .total_core_instances(POOL_INSTANCES * 4)
        .total_memories(POOL_INSTANCES * 2)
        .total_tables(POOL_INSTANCES * 4)
        // Calls are synchronous: no fiber stacks to pre-allocate.
        .total_stacks(0)
        .max_memory_size(limits.memory_bytes)
        .table_elements(limits.table_elements)
        .pagemap_scan(Enabled::Auto)
        .linear_memory_keep_resident(keep_resident)
        .table_keep_resident(keep_resident.min(FALLBACK_KEEP_RESIDENT));
    let mut config = Config::new();
    config
        .wasm_component_model(true)
        .epoch_interruption(true)
        .memory_init_cow(true)
        .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    config
}

/// Keeps the epoch deadline on the call's own time: everything since the call
/// began except admitted privileged host calls (charged to the host-time
/// budget instead). Cheap imports called in a loop (log, clock, denied
/// requests) therefore count against the guest like any other work.
fn guest_time_budget(
    budget: Duration,
) -> impl FnMut(wasmtime::StoreContextMut<'_, CallState>, CallHook) -> wasmtime::Result<()>
+ Send
+ Sync
+ 'static {
    let started = Instant::now();
    move |mut store, hook| {
        if matches!(hook, CallHook::ReturningFromHost | CallHook::CallingWasm) {
            let charged = started
                .elapsed()
                .saturating_sub(store.data().host.privileged_time());
            store.set_epoch_deadline(deadline_ticks(budget.saturating_sub(charged)));
        }
        Ok(())
    }
}

/// Sends what a WASI guest printed to the log; true when it filled a pipe.
fn forward_stdio(state: &mut CallState) -> bool {
    use crate::bindings::openjarvis::mining::log::Level;
    let Some(wasi) = &state.wasi else {
        return false;
    };
    let outputs = [
        ("stdout", wasi.stdout.contents(), Level::Info),
        ("stderr", wasi.stderr.contents(), Level::Warn),
    ];
    let mut filled = false;
    for (stream, bytes, level) in outputs {
        filled |= bytes.len() >= state.stdio_cap;
        if !bytes.is_empty() {
            state
                .host
                .log()
                .emit(level, stream, String::from_utf8_lossy(&bytes).trim_end());
        }
    }
    filled
}
