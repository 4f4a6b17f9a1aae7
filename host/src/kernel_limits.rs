//! What the kernel lets the process hold, and the caps fitted to it.
//!
//! Two kernel limits bound how much the host can serve at once, and past
//! either the failure is no answer at all:
//!
//! - **Open files** (`RLIMIT_NOFILE`, `ulimit -n`): every connection is a
//!   descriptor. Past the limit the kernel refuses the accept (EMFILE) and a
//!   new connection waits, unanswered, in the listen backlog.
//! - **Memory mappings** (`vm.max_map_count`, 65,530 by default): the
//!   instance pool maps each of its stacks with a guard page (two mappings
//!   a stack, all from the start), and each linear memory in use splits its
//!   slot's reservation (two more). Past the limit every `mmap` fails with
//!   ENOMEM: instantiation first, then the heap allocator, which aborts the
//!   process.
//!
//! So before anything listens the soft open-files limit is raised to the
//! hard one, `http.max_connections` is fitted below it and
//! `http.max_in_flight` below the mappings the pool's stacks leave: each
//! lowered with a warning naming the setting and the limit, so what stops
//! more load is a 503 from a cap, never an error inside. A pool whose
//! stacks alone do not fit is refused.

use std::io;

use wasmtime::{Result, bail};

use crate::config::Config;
use crate::engine::MEMORIES_PER_COMPONENT;

/// Descriptors kept for everything but the public listener's clients: the
/// listeners, the runtime, the probes-and-metrics connections, admin
/// connections, the compile cache and registry files, a refused connection
/// being answered.
pub const RESERVED_FILES: u64 = 320;

/// Mappings kept for everything but the instances: the heap's arenas,
/// thread stacks (each with its guard), libraries, compiled components.
pub const RESERVED_MAPPINGS: u64 = 4096;

/// Mappings each pooled stack takes from the start: the stack and its guard.
pub const MAPPINGS_PER_STACK: u64 = 2;

/// Mappings one instance in flight may add: each of its linear memories
/// (at most [`MEMORIES_PER_COMPONENT`]) splits its slot in two more.
pub const MAPPINGS_PER_INSTANCE: u64 = 2 * MEMORIES_PER_COMPONENT as u64;

/// The kernel's default `vm.max_map_count`, assumed when it cannot be read.
const DEFAULT_MAX_MAP_COUNT: u64 = 65_530;

/// The connection cap to serve with: `wanted`, or fewer when the process
/// may open only `limit` files. Never below half the limit (a limit below
/// the reserve still serves) nor below one.
pub fn connection_cap(wanted: usize, limit: u64) -> usize {
    let fits = limit
        .saturating_sub(RESERVED_FILES)
        .max(limit / 2)
        .max(1);
    wanted.min(usize::try_from(fits).unwrap_or(usize::MAX))
}

/// The in-flight cap to serve with: `wanted`, or fewer when a pool of
/// `instances` leaves too few of the kernel's `max_map_count` mappings;
/// an error when its stacks alone would not fit.
pub fn in_flight_cap(wanted: usize, instances: u32, max_map_count: u64) -> Result<usize> {
    let stacks = u64::from(instances) * MAPPINGS_PER_STACK;
    let left = max_map_count.saturating_sub(stacks + RESERVED_MAPPINGS);
    if left < MAPPINGS_PER_INSTANCE {
        bail!(
            "pool.max_instances {instances} needs {stacks} memory mappings for its stacks, and the \
             kernel allows {max_map_count} in all (vm.max_map_count), {RESERVED_MAPPINGS} of them \
             kept for the rest: lower pool.max_instances (--max-instances) or raise vm.max_map_count"
        );
    }
    let fits = left / MAPPINGS_PER_INSTANCE;
    Ok(wanted.min(usize::try_from(fits).unwrap_or(usize::MAX)))
}

/// Raises the soft limit on open files to the hard one; returns the limit
/// now in force.
pub fn raise_open_files() -> io::Result<u64> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit only read and write `limit`.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return Err(io::Error::last_os_error());
        }
        if limit.rlim_cur < limit.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: limit.rlim_max,
                rlim_max: limit.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                limit = raised;
            }
        }
    }
    Ok(limit.rlim_cur)
}

/// The kernel's limit on one process's memory mappings.
fn max_map_count() -> u64 {
    std::fs::read_to_string("/proc/sys/vm/max_map_count")
        .ok()
        .and_then(|text| text.trim().parse().ok())
        .unwrap_or(DEFAULT_MAX_MAP_COUNT)
}

/// Fits `config`'s connection and in-flight caps to what the kernel lets
/// this process hold (raising its open-files limit first); a cap lowered is
/// logged, naming the setting and the limit.
pub fn fit(config: &mut Config) -> Result<()> {
    let http = &mut config.http;
    match raise_open_files() {
        Ok(limit) => {
            let cap = connection_cap(http.max_connections, limit);
            if cap < http.max_connections {
                tracing::warn!(
                    "http.max_connections is {}, but the process may open only {limit} files \
                     (`ulimit -n`): serving at most {cap} connections at once, the rest get 503; \
                     raise the limit to hold more",
                    http.max_connections
                );
                http.max_connections = cap;
            }
        }
        Err(e) => tracing::warn!(
            "cannot read the limit on open files ({e}): http.max_connections stays {}",
            http.max_connections
        ),
    }
    let max_map_count = max_map_count();
    let cap = in_flight_cap(http.max_in_flight, config.pool.max_instances, max_map_count)?;
    if cap < http.max_in_flight {
        tracing::warn!(
            "http.max_in_flight is {}, but with pool.max_instances {} the kernel's {max_map_count} \
             memory mappings (vm.max_map_count) hold only {cap} instances at once: the rest get 503; \
             raise vm.max_map_count or lower pool.max_instances to hold more",
            http.max_in_flight,
            config.pool.max_instances
        );
        http.max_in_flight = cap;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_connection_cap_leaves_the_reserve_below_the_limit() {
        assert_eq!(connection_cap(10_000, 1_048_576), 10_000);
        assert_eq!(connection_cap(20_000, 20_000), 20_000 - RESERVED_FILES as usize);
        assert_eq!(connection_cap(10_000, 1024), 1024 - RESERVED_FILES as usize);
    }

    #[test]
    fn an_open_files_limit_below_the_reserve_still_serves() {
        assert_eq!(connection_cap(10_000, 400), 200);
        assert_eq!(connection_cap(10_000, 1), 1);
        assert_eq!(connection_cap(10_000, 0), 1);
        assert_eq!(connection_cap(3, 400), 3);
    }

    #[test]
    fn the_soft_open_files_limit_is_raised_to_the_hard_one() {
        let limit = raise_open_files().unwrap();
        let mut now = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit only writes `now`.
        assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut now) }, 0);
        assert_eq!(limit, now.rlim_cur);
        assert_eq!(now.rlim_cur, now.rlim_max);
    }

    #[test]
    fn the_in_flight_cap_fits_the_mappings_the_stacks_leave() {
        // The default pool (1,000) on the default kernel: no change.
        assert_eq!(in_flight_cap(1000, 1000, 65_530).unwrap(), 1000);
        // 24,000 stacks take 48,000 of 65,530: (65,530 - 48,000 - 4,096) / 4.
        assert_eq!(in_flight_cap(24_000, 24_000, 65_530).unwrap(), 3358);
        // With the kernel's limit raised, all of them.
        assert_eq!(in_flight_cap(24_000, 24_000, 262_144).unwrap(), 24_000);
    }

    #[test]
    fn a_pool_whose_stacks_do_not_fit_is_refused_naming_the_settings() {
        let e = in_flight_cap(40_000, 40_000, 65_530).unwrap_err().to_string();
        assert!(e.contains("pool.max_instances 40000") && e.contains("vm.max_map_count"), "{e}");
    }
}
