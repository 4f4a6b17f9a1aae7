//! Process metrics, with the names of the Prometheus client libraries.
//!
//! Written here rather than taken from the `prometheus` crate's `process`
//! feature because that one exports `process_cpu_seconds_total` in whole
//! seconds, which makes `rate(...[2m])` a step function on a lightly loaded
//! server. Values are read from /proc when a scrape asks for them.

use std::sync::Mutex;

use prometheus::{Counter, Gauge, Opts, Registry};
use wasmtime::Result;

pub struct ProcessMetrics {
    cpu_seconds: Counter,
    resident_memory: Gauge,
    virtual_memory: Gauge,
    open_fds: Gauge,
    max_fds: Gauge,
    start_time: Gauge,
    threads: Gauge,
    /// Serialises refreshes: the CPU counter is advanced by a delta, and two
    /// scrapes at once must not both add it.
    refresh: Mutex<()>,
}

impl ProcessMetrics {
    pub fn register(registry: &Registry) -> Result<Self> {
        let gauge = |name: &str, help: &str| -> Result<Gauge> {
            let g = Gauge::with_opts(Opts::new(name, help))?;
            registry.register(Box::new(g.clone()))?;
            Ok(g)
        };
        let cpu_seconds = Counter::with_opts(Opts::new(
            "process_cpu_seconds_total",
            "Total user and system CPU time spent in seconds.",
        ))?;
        registry.register(Box::new(cpu_seconds.clone()))?;
        Ok(Self {
            cpu_seconds,
            resident_memory: gauge(
                "process_resident_memory_bytes",
                "Resident memory size in bytes.",
            )?,
            virtual_memory: gauge(
                "process_virtual_memory_bytes",
                "Virtual memory size in bytes.",
            )?,
            open_fds: gauge("process_open_fds", "Number of open file descriptors.")?,
            max_fds: gauge(
                "process_max_fds",
                "Maximum number of open file descriptors.",
            )?,
            start_time: gauge(
                "process_start_time_seconds",
                "Start time of the process since unix epoch in seconds.",
            )?,
            threads: gauge("process_threads", "Number of OS threads in the process.")?,
            refresh: Mutex::new(()),
        })
    }

    /// Reads /proc/self and updates every value. A failed read leaves the
    /// previous values in place (and is logged) rather than failing the scrape.
    pub fn refresh(&self) {
        let _serialised = self.refresh.lock().unwrap_or_else(|e| e.into_inner());
        if let Err(e) = self.try_refresh() {
            tracing::warn!("cannot read process metrics from /proc: {e}");
        }
    }

    fn try_refresh(&self) -> procfs::ProcResult<()> {
        let me = procfs::process::Process::myself()?;
        let stat = me.stat()?;
        let ticks = procfs::ticks_per_second() as f64;
        let cpu = (stat.utime + stat.stime) as f64 / ticks;
        let delta = cpu - self.cpu_seconds.get();
        if delta > 0.0 {
            self.cpu_seconds.inc_by(delta);
        }
        self.resident_memory
            .set((stat.rss * procfs::page_size()) as f64);
        self.virtual_memory.set(stat.vsize as f64);
        self.threads.set(stat.num_threads as f64);
        let boot = procfs::boot_time_secs()? as f64;
        self.start_time.set(boot + stat.starttime as f64 / ticks);
        self.open_fds.set(me.fd_count()? as f64);
        if let procfs::process::LimitValue::Value(max) = me.limits()?.max_open_files.soft_limit {
            self.max_fds.set(max as f64);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(registry: &Registry, name: &str) -> f64 {
        let family = registry
            .gather()
            .into_iter()
            .find(|f| f.name() == name)
            .unwrap_or_else(|| panic!("{name} missing"));
        let m = &family.get_metric()[0];
        if m.get_counter().has_value() {
            m.get_counter().value()
        } else {
            m.get_gauge().value()
        }
    }

    #[test]
    fn values_describe_this_process() {
        let registry = Registry::new();
        let p = ProcessMetrics::register(&registry).unwrap();
        p.refresh();
        assert!(value(&registry, "process_resident_memory_bytes") > 1e6);
        assert!(
            value(&registry, "process_virtual_memory_bytes")
                >= value(&registry, "process_resident_memory_bytes")
        );
        assert!(value(&registry, "process_open_fds") >= 3.0);
        assert!(value(&registry, "process_max_fds") >= value(&registry, "process_open_fds"));
        assert!(value(&registry, "process_threads") >= 1.0);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        let start = value(&registry, "process_start_time_seconds");
        assert!(
            start <= now + 1.0 && start > now - 3600.0,
            "{start} vs {now}"
        );
    }

    #[test]
    fn cpu_time_counts_in_fractions_of_a_second() {
        let registry = Registry::new();
        let p = ProcessMetrics::register(&registry).unwrap();
        p.refresh();
        let before = value(&registry, "process_cpu_seconds_total");
        // Burn CPU until the kernel's tick counter moves (a few 10 ms ticks).
        let start = std::time::Instant::now();
        let mut x = 0u64;
        while start.elapsed() < std::time::Duration::from_millis(150) {
            x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(7));
        }
        p.refresh();
        let delta = value(&registry, "process_cpu_seconds_total") - before;
        assert!(delta > 0.0 && delta < 1.0, "cpu moved by {delta}");
    }
}
