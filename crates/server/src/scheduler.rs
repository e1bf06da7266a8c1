//! One scheduler for every capability's background jobs: each job runs on its own interval,
//! one run at a time; every run is counted in `/metrics` (`tsunagu_job_runs_total` by job and
//! outcome, `tsunagu_job_duration_seconds`), a run that did something is logged, and a run
//! that failed is logged as an error with the job's name. Nothing is dropped silently.

use std::time::Instant;
use tsunagu_capability::Job;

/// The running jobs; dropping it stops them.
pub struct Scheduler {
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for Scheduler {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// Starts every job.
pub fn start(jobs: Vec<Job>) -> Scheduler {
    let tasks = jobs
        .into_iter()
        .map(|job| {
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(job.every);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    tick.tick().await;
                    run_once(&job).await;
                }
            })
        })
        .collect();
    Scheduler { tasks }
}

async fn run_once(job: &Job) {
    let started = Instant::now();
    // On a task of its own, so that a run that panics is an error like any other and the
    // job runs again at its next tick.
    let outcome = match tokio::spawn(job.run()).await {
        Ok(outcome) => outcome,
        Err(e) => Err(anyhow::anyhow!("the run panicked: {e}")),
    };
    metrics::histogram!("tsunagu_job_duration_seconds", "job" => job.name)
        .record(started.elapsed().as_secs_f64());
    match outcome {
        Ok(0) => {
            metrics::counter!("tsunagu_job_runs_total", "job" => job.name, "outcome" => "ok")
                .increment(1);
        }
        Ok(n) => {
            metrics::counter!("tsunagu_job_runs_total", "job" => job.name, "outcome" => "ok")
                .increment(1);
            metrics::counter!("tsunagu_job_items_total", "job" => job.name).increment(n);
            tracing::info!(job = job.name, items = n, "background job did work");
        }
        Err(e) => {
            metrics::counter!("tsunagu_job_runs_total", "job" => job.name, "outcome" => "error")
                .increment(1);
            tracing::error!(job = job.name, error = %format!("{e:#}"), "background job failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::time::Duration;

    #[tokio::test(start_paused = true)]
    async fn every_job_runs_on_its_interval_and_a_failing_or_panicking_one_keeps_running() {
        let ok = Arc::new(AtomicU64::new(0));
        let failing = Arc::new(AtomicU64::new(0));
        let panicking = Arc::new(AtomicU64::new(0));
        let (a, b, c) = (ok.clone(), failing.clone(), panicking.clone());
        let scheduler = start(vec![
            Job::new("test.ok", Duration::from_secs(10), move || {
                let a = a.clone();
                async move { Ok(a.fetch_add(1, Ordering::SeqCst)) }
            }),
            Job::new("test.failing", Duration::from_secs(10), move || {
                let b = b.clone();
                async move {
                    b.fetch_add(1, Ordering::SeqCst);
                    anyhow::bail!("the database is away")
                }
            }),
            Job::new("test.panicking", Duration::from_secs(10), move || {
                let c = c.clone();
                async move {
                    if c.fetch_add(1, Ordering::SeqCst) < 10 {
                        panic!("a bug in a job");
                    }
                    Ok(0)
                }
            }),
        ]);
        tokio::time::sleep(Duration::from_secs(25)).await;
        assert_eq!(ok.load(Ordering::SeqCst), 3, "at 0, 10 and 20 s");
        assert_eq!(
            failing.load(Ordering::SeqCst),
            3,
            "an error does not stop the job"
        );
        drop(scheduler);
        tokio::time::sleep(Duration::from_secs(30)).await;
        assert_eq!(
            ok.load(Ordering::SeqCst),
            3,
            "dropping the scheduler stops its jobs"
        );
    }
}
