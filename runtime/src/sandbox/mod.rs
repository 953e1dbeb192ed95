//! The sandbox: one engine, one linker, a fresh store per call, hard limits.
//!
//! Every call instantiates the provider anew from its `InstancePre`, so nothing
//! survives between calls and a trap poisons nothing. A background thread
//! advances the engine's epoch; a call's deadline is a number of ticks, so a
//! guest spinning in `loop {}` is interrupted, not asked to yield.

mod cache;
mod error;
mod limits;
mod wasi;

pub use cache::ComponentCache;
pub use error::{ProviderError, human_bytes, human_duration};
pub use limits::SandboxLimits;

use crate::bindings::{MiningProvider, MiningProviderPre};
use crate::host::log::GuestLog;
use error::CallEvidence;
use limits::Limiter;
use std::path::PathBuf;
use std::time::Duration;
use wasmtime::component::{Component, HasSelf, Linker, ResourceTable};
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, Store};
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

/// How often the epoch advances; deadlines are rounded up to whole ticks.
const EPOCH_TICK: Duration = Duration::from_millis(10);

/// Provider instances that may be live at once (pool slots).
const POOL_INSTANCES: u32 = 64;

/// Per-call state owned by the store.
pub struct CallState {
    limiter: Limiter,
    table: ResourceTable,
    wasi: WasiCtx,
    stdout: MemoryOutputPipe,
    stderr: MemoryOutputPipe,
    pub(crate) log: GuestLog,
}

impl WasiView for CallState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl crate::bindings::openjarvis::mining::types::Host for CallState {}

pub struct Sandbox {
    engine: Engine,
    linker: Linker<CallState>,
    limits: SandboxLimits,
    cache: Option<ComponentCache>,
}

impl Sandbox {
    /// An engine configured for `limits`, caching compiled components in `cache_dir`.
    pub fn new(limits: SandboxLimits, cache_dir: Option<PathBuf>) -> anyhow::Result<Self> {
        let engine = Engine::new(&engine_config(&limits)).map_err(anyhow::Error::from)?;
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker).map_err(anyhow::Error::from)?;
        MiningProvider::add_to_linker::<CallState, HasSelf<CallState>>(&mut linker, |state| state)
            .map_err(anyhow::Error::from)?;
        spawn_epoch_ticker(&engine);
        let cache = cache_dir.map(|dir| ComponentCache::new(dir, &engine));
        Ok(Sandbox {
            engine,
            linker,
            limits,
            cache,
        })
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

    /// Links a component against the host; fails when it is not a `mining-provider`.
    pub fn prepare(&self, component: &Component) -> anyhow::Result<MiningProviderPre<CallState>> {
        let pre = self
            .linker
            .instantiate_pre(component)
            .map_err(anyhow::Error::from)?;
        MiningProviderPre::new(pre).map_err(anyhow::Error::from)
    }

    /// Runs `call` against a fresh instance under the per-call limits.
    pub fn call<R>(
        &self,
        pre: &MiningProviderPre<CallState>,
        provider: &str,
        call: impl FnOnce(&MiningProvider, &mut Store<CallState>) -> wasmtime::Result<R>,
    ) -> Result<R, ProviderError> {
        let stdio_cap = self.limits.log_bytes;
        let stdout = MemoryOutputPipe::new(stdio_cap);
        let stderr = MemoryOutputPipe::new(stdio_cap);
        let state = CallState {
            limiter: Limiter::new(self.limits),
            table: ResourceTable::new(),
            wasi: wasi::pure_context(stdout.clone(), stderr.clone()),
            stdout,
            stderr,
            log: GuestLog::new(provider, self.limits.log_bytes),
        };
        let mut store = Store::new(&self.engine, state);
        store.limiter(|state| &mut state.limiter);
        store.set_epoch_deadline(deadline_ticks(self.limits.call_timeout));
        store.epoch_deadline_trap();
        let result = pre
            .instantiate(&mut store)
            .and_then(|instance| call(&instance, &mut store));
        let state = store.data_mut();
        let stdio_overflowed = forward_stdio(state, stdio_cap);
        result.map_err(|err| {
            ProviderError::classify(
                &err,
                CallEvidence {
                    tripped: state.limiter.tripped,
                    panic_message: state.log.panic_message(),
                    stdio_overflowed,
                },
                &self.limits,
            )
        })
    }
}

fn engine_config(limits: &SandboxLimits) -> Config {
    let mut pool = PoolingAllocationConfig::new();
    pool.total_component_instances(POOL_INSTANCES)
        .total_core_instances(POOL_INSTANCES * 4)
        .total_memories(POOL_INSTANCES * 2)
        .total_tables(POOL_INSTANCES * 4)
        .max_memory_size(limits.memory_bytes)
        .table_elements(limits.table_elements);
    let mut config = Config::new();
    config
        .wasm_component_model(true)
        .epoch_interruption(true)
        .memory_init_cow(true)
        .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    config
}

fn deadline_ticks(timeout: Duration) -> u64 {
    (timeout.as_nanos().div_ceil(EPOCH_TICK.as_nanos()) as u64).max(1)
}

/// Advances the epoch until the engine is dropped.
fn spawn_epoch_ticker(engine: &Engine) {
    let weak = engine.weak();
    std::thread::Builder::new()
        .name("epoch-ticker".into())
        .spawn(move || {
            while let Some(engine) = weak.upgrade() {
                engine.increment_epoch();
                drop(engine);
                std::thread::sleep(EPOCH_TICK);
            }
        })
        .expect("spawning the epoch ticker thread");
}

/// Sends what the guest printed to the log; true when it filled a pipe.
fn forward_stdio(state: &mut CallState, cap: usize) -> bool {
    use crate::bindings::openjarvis::mining::log::Level;
    let outputs = [
        ("stdout", state.stdout.contents(), Level::Info),
        ("stderr", state.stderr.contents(), Level::Warn),
    ];
    let mut filled = false;
    for (stream, bytes, level) in outputs {
        filled |= bytes.len() >= cap;
        if !bytes.is_empty() {
            state
                .log
                .emit(level, stream, String::from_utf8_lossy(&bytes).trim_end());
        }
    }
    filled
}
