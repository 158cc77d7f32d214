//! Owner liveness: which process holds something, and is it still running.
//!
//! A pid alone is reused by the kernel, so an [`Owner`] pairs it with the
//! process start time (clock ticks since boot, field 22 of
//! `/proc/<pid>/stat`). A pid that now belongs to a different process has a
//! different start time and is reported dead.

use std::fs;
use std::io;

/// A process identity that survives pid reuse: pid plus start time.
///
/// `start_time` is in clock ticks since boot; comparisons use its low 32
/// bits only (what [`pack`](Owner::pack) keeps), which at 100 ticks per
/// second distinguishes processes for 497 days of uptime.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Owner {
    /// The process id.
    pub pid: u32,
    /// The process start time, in clock ticks since boot.
    pub start_time: u64,
}

/// What a liveness check found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Liveness {
    /// The process runs (or could not be inspected: we assume it runs).
    Alive,
    /// No such process, a zombie, or the pid now names another process.
    Dead,
}

impl Owner {
    /// The calling process. Reads `/proc/self/stat` once per process (the
    /// cache is keyed by pid, so a forked child gets its own identity).
    ///
    /// # Examples
    ///
    /// ```
    /// use ringstat::shm::{Liveness, Owner};
    ///
    /// let me = Owner::current();
    /// assert_eq!(me.pid, std::process::id());
    /// assert_eq!(me.liveness(), Liveness::Alive);
    /// ```
    pub fn current() -> Owner {
        use std::sync::OnceLock;
        // (pid, start) of the last process that asked; a fork changes the pid.
        static CACHE: OnceLock<std::sync::Mutex<(u32, u64)>> = OnceLock::new();
        let pid = std::process::id();
        let cache = CACHE.get_or_init(|| std::sync::Mutex::new((0, 0)));
        let mut guard = cache
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if guard.0 != pid {
            let start = read_stat(pid).map_or(0, |s| s.start_time);
            *guard = (pid, start);
        }
        Owner {
            pid,
            start_time: guard.1,
        }
    }

    /// The process `pid` as it is now, or `None` if there is none (or it is
    /// a zombie).
    pub fn of_pid(pid: u32) -> Option<Owner> {
        match read_stat(pid) {
            Ok(s) if !s.zombie => Some(Owner {
                pid,
                start_time: s.start_time,
            }),
            _ => None,
        }
    }

    /// Whether this owner still runs: the pid exists, is not a zombie and
    /// has the same start time. When the process exists but `/proc` does not
    /// show it (another user under `hidepid`), it is assumed alive: a live
    /// owner is never declared dead.
    pub fn liveness(&self) -> Liveness {
        if self.pid == 0 {
            return Liveness::Dead;
        }
        let Ok(pid_i32) = i32::try_from(self.pid) else {
            return Liveness::Dead;
        };
        let Some(pid) = rustix::process::Pid::from_raw(pid_i32) else {
            return Liveness::Dead;
        };
        if let Err(rustix::io::Errno::SRCH) = rustix::process::test_kill_process(pid) {
            return Liveness::Dead;
        }
        match read_stat(self.pid) {
            Ok(s) if s.zombie => Liveness::Dead,
            Ok(s) if (s.start_time as u32) != (self.start_time as u32) => Liveness::Dead,
            Ok(_) => Liveness::Alive,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                // Gone between the two checks, or hidden by `hidepid`: ask again.
                match rustix::process::test_kill_process(pid) {
                    Err(rustix::io::Errno::SRCH) => Liveness::Dead,
                    _ => Liveness::Alive,
                }
            }
            Err(_) => Liveness::Alive,
        }
    }

    /// `true` if [`liveness`](Owner::liveness) is `Alive`.
    pub fn is_alive(&self) -> bool {
        self.liveness() == Liveness::Alive
    }

    /// One word for an atomic owner field: pid in the high 32 bits, the low
    /// 32 bits of the start time below. Never 0 for a real process (pid 0
    /// is not one), so 0 can mean "no owner".
    pub fn pack(self) -> u64 {
        (u64::from(self.pid) << 32) | (self.start_time & 0xffff_ffff)
    }

    /// The inverse of [`pack`](Owner::pack) (the start time keeps its low 32
    /// bits); `None` for 0.
    pub fn unpack(word: u64) -> Option<Owner> {
        if word == 0 {
            return None;
        }
        Some(Owner {
            pid: (word >> 32) as u32,
            start_time: word & 0xffff_ffff,
        })
    }
}

struct Stat {
    zombie: bool,
    start_time: u64,
}

/// Parses `/proc/<pid>/stat`: the command name (field 2) is in parentheses
/// and may itself contain spaces and parentheses, so fields are counted from
/// the last `)`.
fn read_stat(pid: u32) -> io::Result<Stat> {
    let text = fs::read_to_string(format!("/proc/{pid}/stat"))?;
    parse_stat(&text).ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "bad stat"))
}

fn parse_stat(text: &str) -> Option<Stat> {
    let rest = &text[text.rfind(')')? + 1..];
    let mut fields = rest.split_ascii_whitespace();
    // Field 3 is the state; field 22 the start time (19 fields later).
    let state = fields.next()?;
    let start_time = fields.nth(18)?.parse().ok()?;
    Some(Stat {
        zombie: matches!(state, "Z" | "X" | "x"),
        start_time,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_stat_with_odd_command_names() {
        let line = "42 (a) b (c)) S 1 42 42 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 12345 1000 10";
        let s = parse_stat(line).unwrap();
        assert!(!s.zombie);
        assert_eq!(s.start_time, 12345);
        let z = parse_stat("7 (x) Z 1 7 7 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 99 0 0").unwrap();
        assert!(z.zombie);
        assert_eq!(z.start_time, 99);
        assert!(parse_stat("7 (x) S 1").is_none());
        assert!(parse_stat("garbage").is_none());
    }

    #[test]
    fn pack_round_trip_and_liveness() {
        let me = Owner::current();
        assert_eq!(Owner::unpack(me.pack()).unwrap().pack(), me.pack());
        assert!(me.is_alive());
        assert_eq!(Owner::unpack(0), None);
        // Same pid, another start time: a reused pid is not us.
        let other = Owner {
            pid: me.pid,
            start_time: me.start_time.wrapping_add(1),
        };
        assert_eq!(other.liveness(), Liveness::Dead);
        assert_eq!(Owner::of_pid(me.pid), Some(me));
    }

    #[test]
    fn dead_child_is_dead() {
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let owner = Owner::of_pid(child.id());
        child.wait().unwrap();
        // It may have exited before we looked; either way it is dead now.
        if let Some(owner) = owner {
            assert_eq!(owner.liveness(), Liveness::Dead);
        }
        assert_eq!(Owner::of_pid(child.id()), None);
    }
}
