//! Progress of long commands on stderr: a bar (indicatif) when stderr is a
//! terminal, plain lines otherwise. Never on stdout, so a command's report
//! there (`--json` included) stays clean.

use std::io::IsTerminal;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use hvs::storage::{BackupProgress, Store};
use indicatif::{ProgressBar, ProgressStyle};

/// How often a plain line is printed when stderr is not a terminal.
const PLAIN_EVERY: Duration = Duration::from_secs(2);
/// How often a bar is updated on a terminal.
const BAR_EVERY: Duration = Duration::from_millis(100);

fn bar_style(template: &str) -> ProgressStyle {
    ProgressStyle::with_template(template)
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ")
}

/// A backup's progress (`hvs export`, `hvs import`): a bar on a terminal,
/// else one line per table. Either way each finished table gets a line.
pub(crate) struct TableProgress {
    verb: &'static str,
    bar: Option<ProgressBar>,
    table: String,
}

impl TableProgress {
    pub(crate) fn new(verb: &'static str) -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            ProgressBar::new(0).with_style(bar_style(
                "{msg:>12} [{bar:40.cyan/blue}] {pos}/{len} rows ({elapsed})",
            ))
        });
        Self {
            verb,
            bar,
            table: String::new(),
        }
    }

    pub(crate) fn update(&mut self, p: BackupProgress) {
        if let Some(bar) = &self.bar {
            if p.table != self.table {
                bar.set_message(p.table.clone());
                bar.set_length(p.rows_total);
                bar.set_position(0);
                self.table.clone_from(&p.table);
            }
            bar.set_position(p.rows_done);
        }
        if p.rows_done == p.rows_total {
            let line = format!("{} {}: {} rows", self.verb, p.table, p.rows_total);
            match &self.bar {
                Some(bar) => bar.println(line),
                None => eprintln!("{line}"),
            }
        }
    }

    pub(crate) fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

/// Watches a count grow towards a total while other work runs: a thread
/// polls `(done, total)` and updates a bar every 100 ms on a terminal, or
/// prints `label: done/total unit (…%, … s)` every 2 s otherwise (and once
/// more when finished). The work itself only has to bump a counter.
///
/// [`Counter::finish`] (or dropping it) stops the thread and clears the
/// bar, so a report printed next is not mixed with it.
pub(crate) struct Counter {
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Counter {
    pub(crate) fn start(
        label: impl Into<String>,
        unit: &'static str,
        poll: impl Fn() -> (u64, u64) + Send + 'static,
    ) -> Self {
        let label = label.into();
        let (stop, stopped) = mpsc::channel::<()>();
        let bar = std::io::stderr().is_terminal().then(|| {
            ProgressBar::new(0)
                .with_style(bar_style(&format!(
                    "{{msg}} [{{bar:40.cyan/blue}}] {{human_pos}}/{{human_len}} {unit} \
                     ({{elapsed}}, eta {{eta}})"
                )))
                .with_message(label.clone())
        });
        let thread = std::thread::Builder::new()
            .name("hvs-progress".into())
            .spawn(move || {
                let started = Instant::now();
                let every = if bar.is_some() {
                    BAR_EVERY
                } else {
                    PLAIN_EVERY
                };
                loop {
                    // Woken early by `finish` (the sender sends or is dropped).
                    let last = !matches!(
                        stopped.recv_timeout(every),
                        Err(mpsc::RecvTimeoutError::Timeout)
                    );
                    let (done, total) = poll();
                    match &bar {
                        Some(bar) => {
                            bar.set_length(total);
                            bar.set_position(done);
                        }
                        None => {
                            let pct = if total > 0 {
                                done as f64 * 100.0 / total as f64
                            } else {
                                100.0
                            };
                            eprintln!(
                                "{label}: {done}/{total} {unit} ({pct:.0}%, {:.1} s)",
                                started.elapsed().as_secs_f64()
                            );
                        }
                    }
                    if last {
                        if let Some(bar) = &bar {
                            bar.finish_and_clear();
                        }
                        return;
                    }
                }
            })
            .ok();
        Self {
            stop: Some(stop),
            thread,
        }
    }

    /// Stops watching: clears the bar, or prints the last plain line.
    pub(crate) fn finish(mut self) {
        self.stop_now();
    }

    fn stop_now(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Counter {
    fn drop(&mut self) {
        self.stop_now();
    }
}

/// Work whose progress cannot be measured: a spinner with the elapsed time
/// on a terminal, else the message once. Cleared when finished or dropped.
pub(crate) struct Spinner {
    bar: Option<ProgressBar>,
}

impl Spinner {
    pub(crate) fn start(message: impl Into<String>) -> Self {
        let message = message.into();
        let bar = if std::io::stderr().is_terminal() {
            let bar = ProgressBar::new_spinner()
                .with_style(
                    ProgressStyle::with_template("{spinner} {msg} ({elapsed})")
                        .unwrap_or_else(|_| ProgressStyle::default_spinner()),
                )
                .with_message(message);
            bar.enable_steady_tick(BAR_EVERY);
            Some(bar)
        } else {
            eprintln!("{message} ...");
            None
        };
        Self { bar }
    }

    pub(crate) fn finish(self) {}
}

impl Drop for Spinner {
    fn drop(&mut self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

/// Vectors in graphs and vectors in all, over every namespace of `store`:
/// a [`Counter`]'s poll for work that fills graphs.
pub(crate) fn in_graphs(store: &Store) -> (u64, u64) {
    store.get_stats().map_or((0, 0), |s| {
        s.namespaces.values().fold((0, 0), |(g, v), n| {
            (g + n.in_graph as u64, v + n.vectors as u64)
        })
    })
}
