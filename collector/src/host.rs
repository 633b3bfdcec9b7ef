//! The edge box's load for heartbeats: CPU and memory from `/proc`, disk
//! from `statvfs` on the spool's filesystem. A figure that cannot be read
//! (not Linux, no `/proc`) is left out of the heartbeat, never invented.

use std::path::Path;

/// CPU time counters of `/proc/stat`'s `cpu` line: (busy, total) jiffies.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CpuTimes {
    pub busy: u64,
    pub total: u64,
}

/// Reads the box's CPU counters.
pub fn cpu_times() -> Option<CpuTimes> {
    parse_cpu_times(&std::fs::read_to_string("/proc/stat").ok()?)
}

/// The `cpu` line of `/proc/stat`: user nice system idle iowait irq
/// softirq steal …; idle and iowait are not busy.
pub fn parse_cpu_times(stat: &str) -> Option<CpuTimes> {
    let line = stat.lines().find(|l| l.starts_with("cpu "))?;
    let fields: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .map(|f| f.parse().ok())
        .collect::<Option<_>>()?;
    if fields.len() < 4 {
        return None;
    }
    // guest and guest_nice (fields 9, 10) are already inside user and nice.
    let total: u64 = fields.iter().take(8).sum();
    let idle = fields[3] + fields.get(4).copied().unwrap_or(0);
    Some(CpuTimes {
        busy: total - idle,
        total,
    })
}

/// Percent of CPU time busy between two readings.
pub fn cpu_percent(before: CpuTimes, after: CpuTimes) -> Option<f32> {
    let total = after.total.checked_sub(before.total)?;
    let busy = after.busy.checked_sub(before.busy)?;
    (total > 0).then(|| (busy as f64 * 100.0 / total as f64).clamp(0.0, 100.0) as f32)
}

/// Percent of memory in use: (MemTotal − MemAvailable) / MemTotal.
pub fn memory_percent() -> Option<f32> {
    parse_memory_percent(&std::fs::read_to_string("/proc/meminfo").ok()?)
}

pub fn parse_memory_percent(meminfo: &str) -> Option<f32> {
    let field = |name: &str| -> Option<u64> {
        let line = meminfo.lines().find(|l| l.starts_with(name))?;
        line[name.len()..]
            .trim_start_matches(':')
            .split_whitespace()
            .next()?
            .parse()
            .ok()
    };
    let total = field("MemTotal")?;
    let available = field("MemAvailable")?;
    (total > 0).then(|| {
        (total.saturating_sub(available) as f64 * 100.0 / total as f64).clamp(0.0, 100.0) as f32
    })
}

/// Percent of the filesystem holding `path` in use, as `df` counts it:
/// used / (used + available to unprivileged users).
pub fn disk_percent(path: &Path) -> Option<f32> {
    use std::os::unix::ffi::OsStrExt;
    let c_path = std::ffi::CString::new(path.as_os_str().as_bytes()).ok()?;
    // SAFETY: `c_path` is a valid NUL-terminated string and `st` a properly
    // sized, writable statvfs that the call fills in.
    let st = unsafe {
        let mut st: libc::statvfs = std::mem::zeroed();
        if libc::statvfs(c_path.as_ptr(), &mut st) != 0 {
            return None;
        }
        st
    };
    let used = (st.f_blocks as u64).saturating_sub(st.f_bfree as u64);
    let denominator = used + st.f_bavail as u64;
    (denominator > 0).then(|| (used as f64 * 100.0 / denominator as f64).clamp(0.0, 100.0) as f32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_busy_share_between_two_readings() {
        let a = parse_cpu_times("cpu  100 0 100 700 100 0 0 0 0 0\ncpu0 1 2 3 4\n").unwrap();
        assert_eq!(
            a,
            CpuTimes {
                busy: 200,
                total: 1000
            }
        );
        let b = parse_cpu_times("cpu  250 0 150 850 150 0 0 0 0 0\n").unwrap();
        // 200 busy of 400 jiffies.
        assert_eq!(cpu_percent(a, b), Some(50.0));
        assert_eq!(cpu_percent(a, a), None);
        assert!(parse_cpu_times("intr 1 2 3").is_none());
    }

    #[test]
    fn memory_in_use_is_total_minus_available() {
        let m = "MemTotal:       8000000 kB\nMemFree:  100 kB\nMemAvailable:   6000000 kB\n";
        assert_eq!(parse_memory_percent(m), Some(25.0));
        assert_eq!(parse_memory_percent("MemTotal: 10 kB\n"), None);
    }

    #[test]
    fn this_box_reports_its_figures() {
        let dir = std::env::temp_dir();
        let disk = disk_percent(&dir).expect("statvfs on the temp dir");
        assert!((0.0..=100.0).contains(&disk));
        assert!(disk_percent(Path::new("/no/such/dir/at/all")).is_none());
        let m = memory_percent().expect("/proc/meminfo");
        assert!((0.0..=100.0).contains(&m));
        assert!(cpu_times().is_some());
    }
}
