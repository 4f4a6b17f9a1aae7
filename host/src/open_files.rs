//! How many client connections the process can hold open.
//!
//! Every connection is a file descriptor, and past `RLIMIT_NOFILE` the
//! kernel refuses an accept (EMFILE): a connection then waits in the listen
//! backlog, unanswered, until one closes. So the connection cap
//! (`http.max_connections`) is fitted to the limit at start, which is first
//! raised from its soft value to the hard one (what `ulimit -n` would allow
//! anyway): past the cap a client gets a 503 and a close at once, as with
//! any cap, and the process keeps descriptors for everything else.

use std::io;

/// Descriptors kept for everything but the public listener's clients: the
/// listeners, the runtime, the probes-and-metrics connections, admin
/// connections, the compile cache and registry files, a refused connection
/// being answered.
pub const RESERVED: u64 = 320;

/// The connection cap to serve with: `wanted`, or fewer when the process
/// may open only `limit` files. Never below half the limit (a limit below
/// the reserve still serves) nor below one.
pub fn connection_cap(wanted: usize, limit: u64) -> usize {
    let fits = limit.saturating_sub(RESERVED).max(limit / 2).max(1);
    wanted.min(usize::try_from(fits).unwrap_or(usize::MAX))
}

/// Raises the soft limit on open files to the hard one; returns the limit
/// now in force.
pub fn raise_limit() -> io::Result<u64> {
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

/// The connection cap for `wanted`, with the limit raised first; a cap
/// below `wanted` is logged, naming the setting and the limit.
pub fn fit_connections(wanted: usize) -> usize {
    let limit = match raise_limit() {
        Ok(limit) => limit,
        Err(e) => {
            tracing::warn!(
                "cannot read the limit on open files ({e}): http.max_connections stays {wanted}"
            );
            return wanted;
        }
    };
    let cap = connection_cap(wanted, limit);
    if cap < wanted {
        tracing::warn!(
            "http.max_connections is {wanted}, but the process may open only {limit} files \
             (`ulimit -n`): serving at most {cap} connections at once, the rest get 503; \
             raise the limit to hold more"
        );
    }
    cap
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cap_leaves_the_reserve_below_the_limit() {
        assert_eq!(connection_cap(10_000, 1_048_576), 10_000);
        assert_eq!(connection_cap(20_000, 20_000), 20_000 - RESERVED as usize);
        assert_eq!(connection_cap(10_000, 1024), 1024 - RESERVED as usize);
    }

    #[test]
    fn a_limit_below_the_reserve_still_serves() {
        assert_eq!(connection_cap(10_000, 400), 200);
        assert_eq!(connection_cap(10_000, 1), 1);
        assert_eq!(connection_cap(10_000, 0), 1);
        assert_eq!(connection_cap(3, 400), 3);
    }

    #[test]
    fn the_soft_limit_is_raised_to_the_hard_one() {
        let limit = raise_limit().unwrap();
        let mut now = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit only writes `now`.
        assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut now) }, 0);
        assert_eq!(limit, now.rlim_cur);
        assert_eq!(now.rlim_cur, now.rlim_max);
    }
}
