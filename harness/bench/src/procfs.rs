//! What the kernel says about a process: on-CPU time of all its threads, resident memory, and
//! the CPU and scheduling-priority settings that keep the measurement honest.

use harness_runner::{Error, Result};
use std::path::Path;

/// Nanoseconds on CPU from one `/proc/<pid>/task/<tid>/schedstat` (its first field).
pub fn parse_schedstat(text: &str) -> Option<u64> {
    text.split_whitespace().next()?.parse().ok()
}

/// On-CPU nanoseconds of every thread of `pid`, summed. Exact to the nanosecond, unlike
/// `utime`+`stime` in `/proc/<pid>/stat`, which count whole clock ticks.
pub fn process_cpu_ns(pid: u32) -> Result<u64> {
    let tasks = Path::new("/proc").join(pid.to_string()).join("task");
    let mut total = 0;
    for task in std::fs::read_dir(&tasks)
        .map_err(|e| Error(format!("cannot list {}: {e}", tasks.display())))?
        .flatten()
    {
        // A thread that ended between listing and reading is simply not counted.
        if let Ok(text) = std::fs::read_to_string(task.path().join("schedstat")) {
            total += parse_schedstat(&text).unwrap_or(0);
        }
    }
    Ok(total)
}

/// `VmRSS` in KiB from the text of `/proc/<pid>/status`.
pub fn parse_vm_rss_kib(status: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|kib| kib.parse().ok())
}

/// Resident memory of `pid`, in KiB.
pub fn rss_kib(pid: u32) -> Result<u64> {
    let path = Path::new("/proc").join(pid.to_string()).join("status");
    let status = std::fs::read_to_string(&path)
        .map_err(|e| Error(format!("cannot read {}: {e}", path.display())))?;
    parse_vm_rss_kib(&status).ok_or_else(|| Error(format!("no VmRSS in {}", path.display())))
}

/// CPUs the kernel has online.
pub fn online_cpus() -> usize {
    // SAFETY: sysconf only reads a system setting.
    let n = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) };
    usize::try_from(n).unwrap_or(1).max(1)
}

/// Restricts the calling thread (and so every process it starts later) to one CPU; the same
/// system call `taskset` makes. Safe to call between fork and exec.
pub fn pin_current_to_cpu(cpu: usize) -> std::io::Result<()> {
    // SAFETY: cpu_set_t is plain data, zeroed then filled by CPU_SET; pid 0 is the caller.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Restricts every thread of a running process to one CPU (`taskset -a -p`).
pub fn pin_process_to_cpu(pid: u32, cpu: usize) -> Result<()> {
    let tasks = Path::new("/proc").join(pid.to_string()).join("task");
    for task in std::fs::read_dir(&tasks)
        .map_err(|e| Error(format!("cannot list {}: {e}", tasks.display())))?
        .flatten()
    {
        let Some(tid) = task
            .file_name()
            .to_str()
            .and_then(|t| t.parse::<i32>().ok())
        else {
            continue;
        };
        // SAFETY: cpu_set_t is plain data, zeroed then filled by CPU_SET.
        let failed = unsafe {
            let mut set: libc::cpu_set_t = std::mem::zeroed();
            libc::CPU_SET(cpu, &mut set);
            libc::sched_setaffinity(tid, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0
        };
        if failed {
            return Err(Error(format!(
                "cannot pin thread {tid} of {pid} to CPU {cpu}: {}",
                std::io::Error::last_os_error()
            )));
        }
    }
    Ok(())
}

/// Gives this session's autogroup the highest priority (nice -19). With
/// `sched_autogroup_enabled=1` a plain `nice` only ranks processes within their own session,
/// so against other sessions' compile jobs Envoy got 0.66-0.80 of a CPU; with the autogroup
/// nice, 0.91-0.98 (perf-baseline.md §4). Needs root; the caller reports a refusal.
pub fn raise_session_priority() -> Result<()> {
    std::fs::write("/proc/self/autogroup", "-19")
        .map_err(|e| Error(format!("cannot raise the autogroup priority: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedstat_first_field_is_nanoseconds_on_cpu() {
        assert_eq!(parse_schedstat("1234567890 4567 89\n"), Some(1_234_567_890));
        assert_eq!(parse_schedstat(""), None);
        assert_eq!(parse_schedstat("x 1 2"), None);
    }

    #[test]
    fn vm_rss_is_read_in_kib() {
        let status = "Name:\tenvoy\nVmPeak:\t  200000 kB\nVmRSS:\t   67452 kB\nRssAnon:\t 1 kB\n";
        assert_eq!(parse_vm_rss_kib(status), Some(67_452));
        assert_eq!(parse_vm_rss_kib("Name:\tkthreadd\n"), None);
    }

    #[test]
    fn a_running_process_is_pinned_to_one_cpu() {
        let mut child = std::process::Command::new("sleep")
            .arg("5")
            .spawn()
            .unwrap();
        let pinned = pin_process_to_cpu(child.id(), 0);
        let status = std::fs::read_to_string(format!("/proc/{}/status", child.id())).unwrap();
        child.kill().unwrap();
        child.wait().unwrap();
        pinned.unwrap();
        assert!(
            status.lines().any(|l| l == "Cpus_allowed_list:\t0"),
            "{status}"
        );
    }

    #[test]
    fn own_process_has_cpu_time_and_memory() {
        let pid = std::process::id();
        let spin: u64 = (0..2_000_000u64).fold(0, |a, b| a.wrapping_add(b * b));
        assert_ne!(spin, 1);
        assert!(process_cpu_ns(pid).unwrap() > 0);
        assert!(rss_kib(pid).unwrap() > 0);
        assert!(online_cpus() >= 1);
    }
}
