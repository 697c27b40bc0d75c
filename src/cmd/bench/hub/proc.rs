//! What a process used, from `/proc`: peak resident memory and CPU time (user plus system,
//! every thread, finished ones included).

use std::time::Duration;

/// Peak resident set (VmHWM) of `pid`, or of this process, in MiB.
pub(super) fn peak_rss_mib(pid: Option<u32>) -> Option<f64> {
    let status = std::fs::read_to_string(proc_file(pid, "status")).ok()?;
    let kb: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kb / 1024.0)
}

fn proc_file(pid: Option<u32>, name: &str) -> String {
    match pid {
        Some(pid) => format!("/proc/{pid}/{name}"),
        None => format!("/proc/self/{name}"),
    }
}

/// CPU time a process has used so far.
#[derive(Debug, Clone, Copy)]
pub(super) struct CpuTime(Duration);

impl CpuTime {
    /// `pid`'s (or this process's) user plus system time; `None` if it is gone.
    pub(super) fn of(pid: Option<u32>) -> Option<CpuTime> {
        let stat = std::fs::read_to_string(proc_file(pid, "stat")).ok()?;
        // The command name may hold spaces and parentheses: fields are counted after its end.
        let rest = &stat[stat.rfind(')')? + 1..];
        let fields: Vec<&str> = rest.split_whitespace().collect();
        // utime and stime are fields 14 and 15 of stat(5); `rest` starts at field 3.
        let ticks: u64 =
            fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
        let per_sec = rustix::param::clock_ticks_per_second().max(1);
        Some(CpuTime(Duration::from_nanos(
            ticks.saturating_mul(1_000_000_000) / per_sec,
        )))
    }
}

/// The CPU time used between two readings (`None` if either is missing).
pub(super) fn cpu_used(before: Option<CpuTime>, after: Option<CpuTime>) -> Option<Duration> {
    Some(after?.0.saturating_sub(before?.0))
}
