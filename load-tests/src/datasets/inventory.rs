//! `inventory`: host agents' snapshots. A site has [`HOSTS`] hosts, each
//! reporting every [`EVERY_MINUTES`] minutes (staggered, so each minute
//! carries a fifth of them); usage figures move every snapshot, while the
//! hardware, addresses and OS change rarely (a disk swap, a new DHCP
//! lease, an OS upgrade) — what makes inventory history.

use std::collections::VecDeque;

use rand::rngs::StdRng;
use rand::RngExt;
use serde_json::json;

use super::{rfc3339, uuid, Steps, MICROS_PER_MINUTE};

/// Hosts per site.
pub(super) const HOSTS: usize = 200;
/// Minutes between two snapshots of a host.
pub(super) const EVERY_MINUTES: usize = 5;
/// Chance per snapshot of each kind of change.
const CHANGE_CHANCE: f64 = 0.002;

const GIB: i64 = 1 << 30;
const PLATFORMS: &[(&str, &str, &str)] = &[
    ("ubuntu", "22.04", "5.15.0-58-generic"),
    ("ubuntu", "24.04", "6.8.0-31-generic"),
    ("debian", "12", "6.1.0-18-amd64"),
    ("centos", "9", "5.14.0-427.el9.x86_64"),
];

#[derive(Debug)]
struct Host {
    client_id: String,
    hostname: String,
    platform: usize,
    cpu_count: i64,
    memory_total: i64,
    disk_total: i64,
    ip: [u8; 2],
    mac: String,
}

#[derive(Debug)]
pub(super) struct Inventory {
    rng: StdRng,
    hosts: Vec<Host>,
    at: i64,
    minute: usize,
}

impl Inventory {
    pub(super) fn new(mut rng: StdRng, start: i64) -> Self {
        let hosts = (0..HOSTS)
            .map(|i| Host {
                client_id: uuid(&mut rng),
                hostname: format!("host-{i:03}"),
                platform: rng.random_range(0..PLATFORMS.len() - 1),
                cpu_count: [4, 8, 16, 32, 64][rng.random_range(0..5)],
                memory_total: [8, 16, 32, 64, 128][rng.random_range(0..5)] * GIB,
                disk_total: [256, 512, 1024, 2048][rng.random_range(0..4)] * GIB,
                ip: [rng.random_range(0..=255), rng.random_range(1..=254)],
                mac: format!("00:0a:95:{:02x}:{:02x}:{:02x}", i / 256, i % 256, 0x16),
            })
            .collect();
        Self {
            rng,
            hosts,
            at: start,
            minute: 0,
        }
    }
}

impl Steps for Inventory {
    fn step(&mut self, out: &mut VecDeque<String>) {
        let (at, minute) = (self.at, self.minute);
        self.at += MICROS_PER_MINUTE;
        self.minute += 1;
        for (i, h) in self.hosts.iter_mut().enumerate() {
            if i % EVERY_MINUTES != minute % EVERY_MINUTES {
                continue;
            }
            let rng = &mut self.rng;
            if rng.random_bool(CHANGE_CHANCE) {
                h.disk_total *= 2;
            }
            if rng.random_bool(CHANGE_CHANCE) {
                h.ip[1] = rng.random_range(1..=254);
            }
            if rng.random_bool(CHANGE_CHANCE) && h.platform == 0 {
                h.platform = 1;
            }
            let (platform, version, kernel) = PLATFORMS[h.platform];
            let mem_pct: f64 = rng.random_range(10.0..95.0);
            let disk_pct: f64 = rng.random_range(5.0..90.0);
            let mem_used = (h.memory_total as f64 * mem_pct / 100.0) as i64;
            let disk_used = (h.disk_total as f64 * disk_pct / 100.0) as i64;
            let ip = format!("10.{}.{}.{}", i / 200, h.ip[0], h.ip[1]);
            let row = json!({
                "client_id": h.client_id,
                "collected_at": rfc3339(at),
                "hostname": h.hostname,
                "os": "linux",
                "platform": platform,
                "arch": "amd64",
                "cpu_count": h.cpu_count,
                "cpu_model": "Intel(R) Xeon(R) CPU E5-2680 v4",
                "cpu_usage_percent": (rng.random_range(0.0..100.0f64) * 100.0).round() / 100.0,
                "memory_total": h.memory_total,
                "memory_used": mem_used,
                "memory_free": h.memory_total - mem_used,
                "memory_usage_percent": (mem_pct * 100.0).round() / 100.0,
                "disk_total": h.disk_total,
                "disk_used": disk_used,
                "disk_free": h.disk_total - disk_used,
                "disk_usage_percent": (disk_pct * 100.0).round() / 100.0,
                "ip_addresses": [ip],
                "mac_addresses": [h.mac],
                "raw_data": {
                    "host": {
                        "hostname": h.hostname,
                        "os": "linux",
                        "platform": platform,
                        "platform_version": version,
                        "kernel_version": kernel,
                        "kernel_arch": "x86_64"
                    }
                }
            });
            out.push_back(row.to_string());
        }
    }
}
