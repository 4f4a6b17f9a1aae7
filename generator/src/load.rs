//! Sending the traffic: closed-loop workers or an open-loop schedule.
//!
//! Closed loop (the original generator's way): each worker owns one
//! connection and sends its next request as soon as the previous one is
//! answered. Open loop (`--rate`): requests leave on a fixed schedule
//! whatever the latency, each on an idle pooled connection or a new one, and
//! latency counts from the scheduled time, so a slow server cannot hide
//! behind a generator that slowed down with it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::client::conn::http1::SendRequest;
use hyper::header::HOST;
use hyper::{Request, Uri};
use rand::SeedableRng;
use rand::rngs::StdRng;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::backoff::{Backoff, Health};
use crate::mix::Mix;
use crate::stats::{ErrorKind, Progress, Stats};
use crate::target::Target;

type Connection = SendRequest<Empty<Bytes>>;
type Outcome = Result<u16, (ErrorKind, String)>;

/// What to send, how, and when to stop: parsed once from the command line.
#[derive(Debug, Clone)]
pub struct Plan {
    pub target: Target,
    pub mix: Mix,
    pub workers: usize,
    /// Requests per second for the open loop; `None` is closed loop.
    pub rate: Option<f64>,
    pub max_in_flight: usize,
    pub duration: Option<Duration>,
    pub requests: Option<u64>,
    pub timeout: Duration,
    pub seed: Option<u64>,
}

/// Runs the plan until a limit is reached or `stop` is cancelled, and
/// returns the merged results and how long the run took.
pub async fn run(
    plan: Plan,
    stop: CancellationToken,
    progress: Arc<Progress>,
) -> (Stats, Duration) {
    let started = Instant::now();
    let uris = plan
        .mix
        .paths()
        .iter()
        .map(|p| format!("{}{p}", plan.target.base_path).parse())
        .collect::<Result<Vec<Uri>, _>>()
        .expect("paths were checked when parsed");
    if let Some(duration) = plan.duration {
        // The deadline ends the run like a signal does: workers then check
        // one flag per request instead of reading the clock.
        let stop = stop.clone();
        tokio::spawn(async move {
            tokio::time::sleep(duration).await;
            stop.cancel();
        });
    }
    let run = Arc::new(Run {
        deadline: plan.duration.map(|d| started + d),
        plan,
        uris,
        stop,
        issued: AtomicU64::new(0),
        health: Health::default(),
        progress,
    });
    match run.plan.rate {
        Some(rate) => open_loop(run, rate, started).await,
        None => {
            let stats = tokio::task::spawn_blocking(move || closed_loop(run))
                .await
                .expect("the closed loop does not panic");
            (stats, started.elapsed())
        }
    }
}

/// One current-thread runtime per core, each driving its share of the
/// workers: a worker and its connection's driver task then always wake each
/// other on the same thread, which is what keeps a loopback benchmark within
/// reach of wrk (a multi-thread runtime bounces them between cores).
fn closed_loop(run: Arc<Run>) -> Stats {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let threads = cores.min(run.plan.workers);
    let handles: Vec<_> = (0..threads)
        .map(|thread| {
            let run = run.clone();
            std::thread::Builder::new()
                .name(format!("load-{thread}"))
                .spawn(move || {
                    let runtime = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .expect("a tokio runtime");
                    runtime.block_on(async move {
                        let mut workers = JoinSet::new();
                        for id in (thread..run.plan.workers).step_by(threads) {
                            workers.spawn(closed_worker(run.clone(), id as u64));
                        }
                        let mut stats = Stats::new(run.plan.mix.paths().len());
                        while let Some(worker) = workers.join_next().await {
                            stats.merge(&worker.expect("workers do not panic"));
                        }
                        stats
                    })
                })
                .expect("spawning a load thread")
        })
        .collect();
    let mut stats = Stats::new(run.plan.mix.paths().len());
    for handle in handles {
        stats.merge(&handle.join().expect("load threads do not panic"));
    }
    stats
}

struct Run {
    plan: Plan,
    /// Request URIs, indexed like the mix's paths.
    uris: Vec<Uri>,
    stop: CancellationToken,
    deadline: Option<Instant>,
    /// Requests started so far, against `plan.requests`.
    issued: AtomicU64,
    health: Health,
    progress: Arc<Progress>,
}

impl Run {
    /// Whether one more request may start; each `true` uses one of the budget.
    fn next_ticket(&self) -> bool {
        if self.stop.is_cancelled() {
            return false;
        }
        match self.plan.requests {
            Some(limit) => self.issued.fetch_add(1, Ordering::Relaxed) < limit,
            None => true,
        }
    }

    fn rng(&self, stream: u64) -> StdRng {
        match self.plan.seed {
            Some(seed) => StdRng::seed_from_u64(seed.wrapping_add(stream)),
            None => StdRng::from_os_rng(),
        }
    }

    /// Waits until `when`, or less if the run is stopped or over; returns
    /// whether the run goes on.
    async fn wait_until(&self, when: Instant) -> bool {
        let when = self.deadline.map_or(when, |d| when.min(d));
        tokio::select! {
            () = tokio::time::sleep_until(when) => !self.stop.is_cancelled(),
            () = self.stop.cancelled() => false,
        }
    }

    /// One request on `connection` (opened or replaced as needed) and its
    /// whole response body, within the request timeout.
    async fn exchange(&self, connection: &mut Option<Connection>, path: usize) -> Outcome {
        let attempt = async {
            let reused = connection.as_ref().is_some_and(|c| !c.is_closed());
            match self.send(connection, path, reused).await {
                // A kept-alive connection the server closed meanwhile is not
                // the server failing: try once more on a fresh one.
                Err(_) if reused => {
                    *connection = None;
                    self.send(connection, path, false).await
                }
                outcome => outcome,
            }
        };
        let outcome = match tokio::time::timeout(self.plan.timeout, attempt).await {
            Ok(outcome) => outcome,
            Err(_) => Err((ErrorKind::Timeout, "no answer in time".into())),
        };
        if outcome.is_err() {
            *connection = None;
        }
        outcome
    }

    async fn send(
        &self,
        connection: &mut Option<Connection>,
        path: usize,
        reused: bool,
    ) -> Outcome {
        if !reused {
            *connection = Some(self.plan.target.connect().await?);
        }
        let sender = connection.as_mut().expect("connected above");
        let other = |e: hyper::Error| (ErrorKind::Other, e.to_string());
        sender.ready().await.map_err(other)?;
        let request = Request::get(self.uris[path].clone())
            .header(HOST, self.plan.target.host_header.clone())
            .body(Empty::new())
            .expect("a valid request");
        let response = sender.send_request(request).await.map_err(other)?;
        let status = response.status().as_u16();
        let mut body = response.into_body();
        while let Some(frame) = body.frame().await {
            frame.map_err(other)?;
        }
        Ok(status)
    }

    /// Counts an outcome; returns how long to back off after a connection
    /// failure (timeouts mean a slow target, not a missing one: no backoff).
    fn record(
        &self,
        slot: usize,
        stats: &mut Stats,
        path: usize,
        outcome: Outcome,
        latency: Duration,
        backoff: &mut Backoff,
    ) -> Option<Duration> {
        match outcome {
            Ok(status) => {
                stats.answered(path, status, latency);
                self.progress.count(slot, true);
                self.health.answered(&self.plan.target.url);
                backoff.reset();
                None
            }
            Err((kind, message)) => {
                stats.failed(path, kind);
                self.progress.count(slot, false);
                if kind == ErrorKind::Timeout {
                    return None;
                }
                self.health.unreachable(&self.plan.target.url, &message);
                Some(backoff.next_delay())
            }
        }
    }
}

async fn closed_worker(run: Arc<Run>, id: u64) -> Stats {
    let mut stats = Stats::new(run.plan.mix.paths().len());
    let mut rng = run.rng(id);
    let mut connection = None;
    let mut backoff = Backoff::default();
    while run.next_ticket() {
        let path = run.plan.mix.pick(&mut rng);
        let started = Instant::now();
        let outcome = run.exchange(&mut connection, path).await;
        let latency = started.elapsed();
        if let Some(delay) = run.record(
            id as usize,
            &mut stats,
            path,
            outcome,
            latency,
            &mut backoff,
        ) && !run.wait_until(Instant::now() + delay).await
        {
            break;
        }
    }
    stats
}

async fn open_loop(run: Arc<Run>, rate: f64, started: Instant) -> (Stats, Duration) {
    let mut stats = Stats::new(run.plan.mix.paths().len());
    let mut rng = run.rng(0);
    let idle: Arc<Mutex<Vec<Connection>>> = Arc::default();
    let mut in_flight = JoinSet::new();
    let mut backoff = Backoff::default();
    // Tasks report their own latency; the scheduler's backoff is its own.
    let mut ignored = Backoff::default();
    let mut origin = Instant::now();
    let mut scheduled: u64 = 0;
    while run.next_ticket() {
        let mut intended = origin + Duration::from_secs_f64(scheduled as f64 / rate);
        if run.deadline.is_some_and(|d| intended >= d) || !run.wait_until(intended).await {
            break;
        }
        scheduled += 1;
        while let Some(done) = in_flight.try_join_next() {
            let (path, outcome, latency) = done.expect("request tasks do not panic");
            run.record(0, &mut stats, path, outcome, latency, &mut ignored);
        }
        if run.health.is_down() {
            // Do not fire the schedule at a dead target: one probe per
            // backoff step, then start the schedule afresh once it answers.
            if !run.wait_until(Instant::now() + backoff.next_delay()).await {
                break;
            }
            origin = Instant::now();
            intended = origin;
            scheduled = 1;
        } else {
            backoff.reset();
        }
        while in_flight.len() >= run.plan.max_in_flight {
            let (path, outcome, latency) = in_flight
                .join_next()
                .await
                .expect("not empty")
                .expect("request tasks do not panic");
            run.record(0, &mut stats, path, outcome, latency, &mut ignored);
        }
        let path = run.plan.mix.pick(&mut rng);
        let (run, idle) = (run.clone(), idle.clone());
        in_flight.spawn(async move {
            let mut connection = idle.lock().expect("pool lock").pop();
            let outcome = run.exchange(&mut connection, path).await;
            if let Some(connection) = connection {
                idle.lock().expect("pool lock").push(connection);
            }
            // From the scheduled time: waiting to be sent is latency too.
            (path, outcome, intended.elapsed())
        });
    }
    let sending = run
        .deadline
        .map_or(started.elapsed(), |d| d.min(Instant::now()) - started);
    while let Some(done) = in_flight.join_next().await {
        let (path, outcome, latency) = done.expect("request tasks do not panic");
        run.record(0, &mut stats, path, outcome, latency, &mut ignored);
    }
    (stats, sending)
}
