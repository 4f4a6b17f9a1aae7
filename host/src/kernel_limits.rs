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
//!   a stack, all from the start), and a linear memory slot once used stays
//!   split from its reservation (two more, kept while the slot waits warm
//!   for its next instance). Past the limit every `mmap` fails with ENOMEM:
//!   instantiation first, then the heap allocator, which aborts the process.
//!
//! So before anything listens the soft open-files limit is raised to the
//! hard one and `http.max_connections` fitted below it; the pool gets only
//! as many memory slots as can all be split within the mappings its stacks
//! leave, and `http.max_in_flight` no more instances than those slots hold
//! at one memory each (every Rust component has one; an instance with two
//! takes two, and where that runs the slots out it fails to instantiate,
//! an error of the pool's, not the kernel's). Each lowered value is logged, naming the
//! setting and the limit, so what stops more load is a 503 from a cap,
//! never an error inside. A pool whose stacks alone do not fit is refused.

use std::io;

use wasmtime::{Result, bail};

use crate::config::{Config, MEMORIES_PER_COMPONENT};

/// Descriptors kept for everything but the public listener's clients: the
/// connections past the cap being refused (64 at most, `server.rs`), the
/// probes-and-metrics connections (64), the listeners, the runtime, the
/// compile cache and registry files, a few admin connections (the admin
/// API's own cap is higher: past what is left, its accept fails and is
/// retried, the public side unharmed).
pub const RESERVED_FILES: u64 = 320;

/// Mappings kept for everything but the instances: the heap's arenas,
/// thread stacks (each with its guard), libraries, compiled components.
pub const RESERVED_MAPPINGS: u64 = 4096;

/// Mappings each pooled stack takes from the start: the stack and its guard.
pub const MAPPINGS_PER_STACK: u64 = 2;

/// Mappings each linear memory slot takes once used: its accessible part
/// splits the slot's reservation, and stays so while the slot is warm.
pub const MAPPINGS_PER_MEMORY_SLOT: u64 = 2;

/// The kernel's default `vm.max_map_count`, assumed when it cannot be read.
const DEFAULT_MAX_MAP_COUNT: u64 = 65_530;

/// The connection cap to serve with: `wanted`, or fewer when the process
/// may open only `limit` files. Never below half the limit (a limit below
/// the reserve still serves) nor below one.
pub fn connection_cap(wanted: usize, limit: u64) -> usize {
    let fits = limit.saturating_sub(RESERVED_FILES).max(limit / 2).max(1);
    wanted.min(usize::try_from(fits).unwrap_or(usize::MAX))
}

/// The pool's memory slots and the in-flight cap to serve with, for a pool
/// of `instances` under the kernel's `max_map_count` mappings: `slots`
/// (two an instance) and `wanted`, or fewer where every slot could not be
/// split once (then one instance a slot); an error when the stacks alone
/// do not fit.
pub fn memory_fit(
    wanted: usize,
    instances: u32,
    slots: u32,
    max_map_count: u64,
) -> Result<(u32, usize)> {
    let stacks = u64::from(instances) * MAPPINGS_PER_STACK;
    let left = max_map_count.saturating_sub(stacks + RESERVED_MAPPINGS);
    let fitting = left / MAPPINGS_PER_MEMORY_SLOT;
    if fitting < u64::from(MEMORIES_PER_COMPONENT) {
        bail!(
            "pool.max_instances {instances} needs {stacks} memory mappings for its stacks, and the \
             kernel allows {max_map_count} in all (vm.max_map_count), {RESERVED_MAPPINGS} of them \
             kept for the rest: lower pool.max_instances (--max-instances) or raise vm.max_map_count"
        );
    }
    let slots = slots.min(u32::try_from(fitting).unwrap_or(u32::MAX));
    Ok((slots, wanted.min(slots as usize)))
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
    let pool = &mut config.pool;
    let (slots, cap) = memory_fit(
        http.max_in_flight,
        pool.max_instances,
        pool.memory_slots,
        max_map_count,
    )?;
    if slots < pool.memory_slots {
        tracing::warn!(
            "pool.max_instances is {}, but the kernel's {max_map_count} memory mappings \
             (vm.max_map_count) leave room for {slots} memory slots beside its stacks: at most \
             {cap} instances at once (http.max_in_flight was {}), the rest get 503; raise \
             vm.max_map_count or lower pool.max_instances to hold more",
            pool.max_instances,
            http.max_in_flight
        );
    }
    pool.memory_slots = slots;
    http.max_in_flight = cap;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_connection_cap_leaves_the_reserve_below_the_limit() {
        assert_eq!(connection_cap(10_000, 1_048_576), 10_000);
        assert_eq!(
            connection_cap(20_000, 20_000),
            20_000 - RESERVED_FILES as usize
        );
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
    fn the_memory_slots_and_in_flight_cap_fit_the_mappings_the_stacks_leave() {
        // The default pool (1,000) on the default kernel: no change.
        assert_eq!(memory_fit(1000, 1000, 2000, 65_530).unwrap(), (2000, 1000));
        // 24,000 stacks take 48,000 of 65,530: (65,530 - 48,000 - 4,096) / 2
        // slots, one an instance.
        assert_eq!(
            memory_fit(24_000, 24_000, 48_000, 65_530).unwrap(),
            (6717, 6717)
        );
        // 12,000 (10,000 in flight and room): every instance has its slot.
        assert_eq!(
            memory_fit(12_000, 12_000, 24_000, 65_530).unwrap(),
            (18_717, 12_000)
        );
        // With the kernel's limit raised, all of them.
        assert_eq!(
            memory_fit(24_000, 24_000, 48_000, 262_144).unwrap(),
            (48_000, 24_000)
        );
        // A lower in-flight cap stays.
        assert_eq!(memory_fit(10, 24_000, 48_000, 65_530).unwrap(), (6717, 10));
    }

    #[test]
    fn every_slot_split_and_every_stack_stay_within_the_limit() {
        for (instances, limit) in [
            (1000, 65_530),
            (10_200, 65_530),
            (30_000, 65_530),
            (5, 5000),
        ] {
            let (slots, cap) =
                memory_fit(instances as usize, instances, instances * 2, limit).unwrap();
            let mapped = u64::from(instances) * MAPPINGS_PER_STACK
                + u64::from(slots) * MAPPINGS_PER_MEMORY_SLOT;
            assert!(mapped + RESERVED_MAPPINGS <= limit, "{instances}: {mapped}");
            assert!(cap <= slots as usize && cap <= instances as usize);
        }
    }

    #[test]
    fn a_pool_whose_stacks_do_not_fit_is_refused_naming_the_settings() {
        let e = memory_fit(40_000, 40_000, 80_000, 65_530)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("pool.max_instances 40000") && e.contains("vm.max_map_count"),
            "{e}"
        );
        // At the edge: room for one instance's memories, not less.
        let edge = (65_530 - RESERVED_MAPPINGS - 4) / 2;
        assert_eq!(memory_fit(10, edge as u32, u32::MAX, 65_530).unwrap().1, 2);
        assert!(memory_fit(10, edge as u32 + 1, u32::MAX, 65_530).is_err());
    }
}
