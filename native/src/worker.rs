//! One filter configuration as the main thread made it ([`Config`]), and each worker
//! thread's own [`Root`] for it.

use crate::abi::{EnvoyPtr, FilterKind};
use crate::host::{Defined, StreamClock, StreamHost};
use meshstats_filter::plugin::Root;
use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

/// A filter configuration: read-only once `config_new` returns.
pub struct Config {
    id: u64,
    pub kind: FilterKind,
    pub filter_name: String,
    pub text: String,
    pub defined: Defined,
    /// Workers hold a `Weak` of this to forget their roots of destroyed configurations.
    alive: Arc<()>,
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

impl Config {
    pub fn new(kind: FilterKind, filter_name: String, text: String, defined: Defined) -> Config {
        Config {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            kind,
            filter_name,
            text,
            defined,
            alive: Arc::new(()),
        }
    }

    pub fn host(&self, filter: EnvoyPtr, clock: Option<StreamClock>) -> StreamHost<'_> {
        StreamHost {
            kind: self.kind,
            filter,
            filter_name: &self.filter_name,
            defined: &self.defined,
            quiet: false,
            clock,
        }
    }
}

struct WorkerRoot {
    alive: Weak<()>,
    root: Root,
    next_tick: Instant,
    period: Duration,
}

thread_local! {
    static ROOTS: RefCell<hashbrown::HashMap<u64, WorkerRoot>> = RefCell::new(hashbrown::HashMap::new());
}

/// Runs `f` with this worker's root for `config` (configured now on first use) and a host
/// for `filter`. A re-entrant call (Envoy does not call a hook from inside a callback) is
/// skipped rather than a panic.
pub fn with_root<R>(
    config: &Config,
    filter: EnvoyPtr,
    clock: Option<StreamClock>,
    f: impl FnOnce(&mut Root, &StreamHost) -> R,
) -> Option<R> {
    ROOTS
        .try_with(|roots| {
            let mut roots = roots.try_borrow_mut().ok()?;
            if !roots.contains_key(&config.id) {
                // The number of live configurations bounds the map.
                roots.retain(|_, w| w.alive.strong_count() > 0);
                let quiet = StreamHost {
                    quiet: true,
                    ..config.host(filter, None)
                };
                let root = Root::configure(&quiet, &config.text);
                let period = Duration::from_millis(root.tick_period_ms().into());
                roots.insert(
                    config.id,
                    WorkerRoot {
                        alive: Arc::downgrade(&config.alive),
                        root,
                        next_tick: Instant::now() + period,
                        period,
                    },
                );
            }
            let w = roots.get_mut(&config.id)?;
            let host = config.host(filter, clock);
            // The dynamic-module ABI has no worker timer: the root's periodic work (cluster
            // metadata expiry) runs on the first hook after each period instead.
            let now = Instant::now();
            if now >= w.next_tick {
                w.next_tick = now + w.period;
                let _ = w.root.tick();
            }
            Some(f(&mut w.root, &host))
        })
        .ok()
        .flatten()
}
