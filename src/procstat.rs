//! CPU time and memory of another process, from Linux's `/proc` (the
//! benchmarks measure the server they start). Elsewhere every figure reads
//! as `None`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// Clock ticks per second in `/proc/<pid>/stat` (Linux's USER_HZ, 100 on
/// every architecture HVS runs on).
const TICKS_PER_SECOND: f64 = 100.0;

/// CPU seconds (user + system) the process has used so far.
pub(crate) fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces; fields resume after ')'.
    let rest = stat.get(stat.rfind(')')? + 2..)?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line: 11 and 12 here.
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / TICKS_PER_SECOND)
}

/// CPU seconds every process on the machine has used since boot (user,
/// nice, system, irq, softirq and steal time from `/proc/stat`): on a shared
/// machine, what others used during a run is this less the bench's own.
pub(crate) fn machine_cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().find(|l| l.starts_with("cpu "))?;
    let ticks: Vec<f64> = line
        .split_whitespace()
        .skip(1)
        .map(|t| t.parse().ok())
        .collect::<Option<_>>()?;
    // user nice system idle iowait irq softirq steal: all but idle and iowait.
    let busy = [0, 1, 2, 5, 6, 7]
        .iter()
        .filter_map(|&i| ticks.get(i))
        .sum::<f64>();
    Some(busy / TICKS_PER_SECOND)
}

/// Resident memory now and at its peak, in MiB.
pub(crate) fn rss_mib(pid: u32) -> Option<(f64, f64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kib = |key: &str| -> Option<f64> {
        let line = status.lines().find(|l| l.starts_with(key))?;
        line.split_whitespace().nth(1)?.parse().ok()
    };
    Some((kib("VmRSS:")? / 1024.0, kib("VmHWM:")? / 1024.0))
}

/// The server's CPU time and memory over a run: CPU counted from `start`,
/// resident memory sampled every 100 ms until `finish`.
pub(crate) struct Watch {
    pid: u32,
    cpu_before: Option<f64>,
    /// This process's CPU (the clients) at the start.
    clients_before: Option<f64>,
    /// Every process's CPU at the start.
    machine_before: Option<f64>,
    running: Arc<AtomicBool>,
    sampler: tokio::task::JoinHandle<f64>,
}

impl Watch {
    pub(crate) fn start(pid: u32) -> Self {
        let running = Arc::new(AtomicBool::new(true));
        let r = running.clone();
        let sampler = tokio::spawn(async move {
            let mut rss_max: f64 = 0.0;
            while r.load(Ordering::Relaxed) {
                if let Some((now, _)) = rss_mib(pid) {
                    rss_max = rss_max.max(now);
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            rss_max
        });
        Watch {
            pid,
            cpu_before: cpu_seconds(pid),
            clients_before: cpu_seconds(std::process::id()),
            machine_before: machine_cpu_seconds(),
            running,
            sampler,
        }
    }

    /// `server` fields of the report (as in the HVS report), less exit_clean.
    pub(crate) async fn finish(
        self,
        secs: f64,
    ) -> Result<serde_json::Map<String, serde_json::Value>, tokio::task::JoinError> {
        self.running.store(false, Ordering::Relaxed);
        let rss_max = self.sampler.await?;
        let cpu = match (self.cpu_before, cpu_seconds(self.pid)) {
            (Some(a), Some(b)) => Some(b - a),
            _ => None,
        };
        let rss_peak = rss_mib(self.pid).map(|(_, peak)| peak);
        let clients = match (self.clients_before, cpu_seconds(std::process::id())) {
            (Some(a), Some(b)) => Some(b - a),
            _ => None,
        };
        let machine = match (self.machine_before, machine_cpu_seconds()) {
            (Some(a), Some(b)) => Some(b - a),
            _ => None,
        };
        let v = serde_json::json!({"cpu_seconds": cpu, "cpu_cores_busy": cpu.map(|c| c / secs),
                       "rss_mib_max_sampled": rss_max, "rss_mib_peak": rss_peak,
                       "clients_cpu_seconds": clients,
                       "machine_cpu_seconds": machine,
                       "machine_cores_busy": machine.map(|m| m / secs)});
        Ok(v.as_object().cloned().unwrap_or_default())
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    #[test]
    fn this_process_has_used_cpu_and_memory() {
        let me = std::process::id();
        // Burn a little CPU so the count is above zero.
        let mut x = 0u64;
        for i in 0..50_000_000u64 {
            x = x.wrapping_add(i * i);
        }
        std::hint::black_box(x);
        assert!(super::cpu_seconds(me).unwrap() > 0.0);
        let (now, peak) = super::rss_mib(me).unwrap();
        assert!(now > 0.0 && peak >= now);
        assert!(super::machine_cpu_seconds().unwrap() >= super::cpu_seconds(me).unwrap());
    }
}
