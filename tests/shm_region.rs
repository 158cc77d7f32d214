//! Named shared regions: validation of real objects in `/dev/shm` (every
//! header byte corrupted, every length truncated, arbitrary contents), the
//! creation race across processes, abandoned creators, modes and lifetime.
#![cfg(all(target_os = "linux", not(ringstat_loom)))]

use std::fs::{self, OpenOptions};
use std::os::unix::fs::{FileExt, PermissionsExt};
use std::process::{Command, Stdio};
use std::sync::atomic::Ordering;
use std::time::Duration;

use proptest::prelude::*;
use ringstat::shm::{self, Kind, Options, Region, ShmError, HEADER_LEN};

const K: Kind = Kind::new(*b"TEST", 1);

/// A unique name per test and process, removed when dropped.
struct Name(String);

impl Name {
    fn new(tag: &str) -> Self {
        let n = format!("ringstat-test-{tag}-{}", std::process::id());
        let _ = shm::cleanup(&n);
        Name(n)
    }
    fn path(&self) -> String {
        format!("/dev/shm/{}", self.0)
    }
}

impl Drop for Name {
    fn drop(&mut self) {
        let _ = shm::cleanup(&self.0);
    }
}

fn quick() -> Options {
    Options {
        wait: Duration::from_millis(20),
        ..Options::default()
    }
}

#[test]
fn create_attach_cleanup() {
    let name = Name::new("basic");
    let a = Region::create(&name.0, K, 128, &quick(), |r| {
        r.u64_at(0).store(0xfeed, Ordering::Relaxed);
    })
    .unwrap();
    let b = Region::attach(&name.0, K, &quick()).unwrap();
    assert_eq!(b.u64_at(0).load(Ordering::Relaxed), 0xfeed);
    b.u64_at(8).fetch_add(3, Ordering::Relaxed);
    assert_eq!(a.u64_at(8).load(Ordering::Relaxed), 3);
    assert_eq!(b.name(), Some(format!("/{}", name.0).as_str()));
    assert_eq!(b.kind(), K);
    assert!(matches!(
        Region::create(&name.0, K, 128, &quick(), |_| {}),
        Err(ShmError::AlreadyExists { .. })
    ));
    let e = Region::attach(&name.0, Kind::new(*b"TEST", 2), &quick()).unwrap_err();
    assert!(matches!(e, ShmError::WrongKind { .. }), "{e}");
    assert!(e.to_string().contains("TEST v1"), "{e}");
    // Unlink: attached mappings keep working, new attaches fail.
    assert!(a.unlink().unwrap());
    assert!(!shm::cleanup(&name.0).unwrap());
    assert!(matches!(
        Region::attach(&name.0, K, &quick()),
        Err(ShmError::NotFound { .. })
    ));
    b.u64_at(8).fetch_add(1, Ordering::Relaxed);
    assert_eq!(a.u64_at(8).load(Ordering::Relaxed), 4);
}

#[test]
fn bad_arguments() {
    assert!(matches!(
        Region::create("a/b", K, 8, &quick(), |_| {}),
        Err(ShmError::InvalidName { .. })
    ));
    let name = Name::new("size");
    assert!(matches!(
        Region::create(&name.0, K, 0, &quick(), |_| {}),
        Err(ShmError::BadSize { .. })
    ));
    assert!(matches!(
        Region::attach(&name.0, K, &quick()),
        Err(ShmError::NotFound { .. })
    ));
}

#[test]
fn mode_is_0600_unless_asked() {
    let name = Name::new("mode");
    let _r = Region::create(&name.0, K, 8, &quick(), |_| {}).unwrap();
    let mode = fs::metadata(name.path()).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let name2 = Name::new("mode2");
    let opts = Options {
        mode: 0o640,
        ..quick()
    };
    let _r2 = Region::create(&name2.0, K, 8, &opts, |_| {}).unwrap();
    let mode = fs::metadata(name2.path()).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o640);
}

/// Every header byte of a real region, changed: attach is refused with a
/// clear error each time, and accepted again once the byte is restored.
#[test]
fn corrupt_every_header_byte() {
    let name = Name::new("corrupt");
    let r = Region::create(&name.0, K, 64, &quick(), |_| {}).unwrap();
    drop(r);
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(name.path())
        .unwrap();
    for at in 0..HEADER_LEN as u64 {
        let mut b = [0u8];
        file.read_exact_at(&mut b, at).unwrap();
        for flip in [0xff_u8, 0x01] {
            file.write_all_at(&[b[0] ^ flip], at).unwrap();
            let e = Region::attach(&name.0, K, &quick()).unwrap_err();
            let ok = matches!(
                e,
                ShmError::Foreign { .. }
                    | ShmError::WrongVersion { .. }
                    | ShmError::Corrupted { .. }
            );
            assert!(ok, "byte {at} ^ {flip:#x}: {e}");
            assert!(!e.to_string().is_empty());
        }
        file.write_all_at(&b, at).unwrap();
        Region::attach(&name.0, K, &quick()).unwrap();
    }
}

/// Every length shorter than header + payload: refused, never a fault.
#[test]
fn truncate_at_every_length() {
    let name = Name::new("trunc");
    let payload = 64usize;
    for len in 0..(HEADER_LEN + payload) as u64 {
        let _ = shm::cleanup(&name.0);
        drop(Region::create(&name.0, K, payload, &quick(), |_| {}).unwrap());
        OpenOptions::new()
            .write(true)
            .open(name.path())
            .unwrap()
            .set_len(len)
            .unwrap();
        let e = Region::attach(&name.0, K, &quick()).unwrap_err();
        let ok = match len {
            // Empty: indistinguishable from a creator that has not sized it
            // yet; it is young, so we wait and give up.
            0 => matches!(e, ShmError::Unpublished { .. }),
            _ => matches!(e, ShmError::Truncated { .. }),
        };
        assert!(ok, "len {len}: {e}");
    }
}

/// An unpublished object: while a (live) creator holds the lock, attach
/// waits and gives up; once the lock is free and the object is stale, it is
/// `Abandoned`, and `create_or_attach` takes it over.
#[test]
fn abandoned_creator_is_detected_and_taken_over() {
    let name = Name::new("abandon");
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(name.path())
        .unwrap();
    file.set_len(4096).unwrap();
    rustix::fs::flock(&file, rustix::fs::FlockOperation::LockExclusive).unwrap();
    let stale_now = Options {
        wait: Duration::from_millis(20),
        stale_after: Duration::ZERO,
        ..Options::default()
    };
    let e = Region::attach(&name.0, K, &stale_now).unwrap_err();
    assert!(matches!(e, ShmError::Unpublished { .. }), "{e}");
    drop(file); // the "creator" dies: the kernel drops its lock
    let e = Region::attach(&name.0, K, &stale_now).unwrap_err();
    assert!(matches!(e, ShmError::Abandoned { .. }), "{e}");
    assert!(e.to_string().contains("cleanup"), "{e}");
    // Young and unlocked: not yet abandoned (the creator may be between its
    // open and its lock).
    let e = Region::attach(&name.0, K, &quick()).unwrap_err();
    assert!(matches!(e, ShmError::Unpublished { .. }), "{e}");
    let (r, created) = Region::create_or_attach(&name.0, K, 32, &stale_now, |r| {
        r.u64_at(0).store(9, Ordering::Relaxed)
    })
    .unwrap();
    assert!(created);
    assert_eq!(r.payload_len(), 32);
    let b = Region::attach(&name.0, K, &quick()).unwrap();
    assert_eq!(b.u64_at(0).load(Ordering::Relaxed), 9);
}

/// A creator process SIGKILLed inside its initialiser leaves an abandoned
/// region that others detect and take over.
#[test]
fn creator_killed_mid_init() {
    if let Ok(name) = std::env::var("RINGSTAT_SHM_CHILD_HANG") {
        let _ = Region::create(&name, K, 64, &quick(), |_| {
            println!("initialising");
            std::thread::sleep(Duration::from_secs(60));
        });
        return;
    }
    let name = Name::new("killed");
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "creator_killed_mid_init", "--nocapture"])
        .env("RINGSTAT_SHM_CHILD_HANG", &name.0)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = child.stdout.take().unwrap();
    let mut buf = [0u8; 256];
    let mut seen = String::new();
    while !seen.contains("initialising") {
        let n = std::io::Read::read(&mut out, &mut buf).unwrap();
        assert!(n > 0, "child exited early: {seen}");
        seen.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    let stale_now = Options {
        wait: Duration::from_millis(20),
        stale_after: Duration::ZERO,
        ..Options::default()
    };
    let e = Region::attach(&name.0, K, &stale_now).unwrap_err();
    assert!(matches!(e, ShmError::Unpublished { .. }), "{e}");
    child.kill().unwrap();
    child.wait().unwrap();
    let e = Region::attach(&name.0, K, &stale_now).unwrap_err();
    assert!(matches!(e, ShmError::Abandoned { .. }), "{e}");
    let (_r, created) = Region::create_or_attach(&name.0, K, 64, &stale_now, |_| {}).unwrap();
    assert!(created);
}

/// Several processes race `create_or_attach` on one name: exactly one
/// creates, all see its initialisation, and all write to the same memory.
#[test]
fn cross_process_create_or_attach_race() {
    if let Ok(name) = std::env::var("RINGSTAT_SHM_CHILD_RACE") {
        let (r, created) = Region::create_or_attach(&name, K, 64, &Options::default(), |r| {
            r.u64_at(0).store(0xabcd, Ordering::Relaxed);
        })
        .unwrap();
        assert_eq!(r.u64_at(0).load(Ordering::Relaxed), 0xabcd);
        r.u64_at(8).fetch_add(1, Ordering::Relaxed);
        println!("created={created}");
        return;
    }
    for round in 0..5 {
        let name = Name::new(&format!("race{round}"));
        let children: Vec<_> = (0..4)
            .map(|_| {
                Command::new(std::env::current_exe().unwrap())
                    .args([
                        "--exact",
                        "cross_process_create_or_attach_race",
                        "--nocapture",
                    ])
                    .env("RINGSTAT_SHM_CHILD_RACE", &name.0)
                    .stdout(Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        let mut created = 0;
        for c in children {
            let out = c.wait_with_output().unwrap();
            assert!(out.status.success());
            created += String::from_utf8_lossy(&out.stdout)
                .matches("created=true")
                .count();
        }
        assert_eq!(created, 1, "round {round}");
        let r = Region::attach(&name.0, K, &quick()).unwrap();
        assert_eq!(r.u64_at(8).load(Ordering::Relaxed), 4);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Arbitrary contents of a real object: attach never panics and
    /// succeeds only when the bytes hold a valid header of this kind with
    /// the payload inside the object.
    #[test]
    fn attach_arbitrary_objects(
        bytes in proptest::collection::vec(any::<u8>(), 1..200),
        valid_prefix in any::<bool>(),
        payload in 1usize..200,
        mutate in proptest::option::of((0usize..HEADER_LEN, 1u8..=255)),
    ) {
        let name = Name::new("prop");
        let mut bytes = bytes;
        if valid_prefix {
            // Start from a real header, optionally with one byte changed.
            drop(Region::create(&name.0, K, payload, &quick(), |_| {}).unwrap());
            let real = fs::read(name.path()).unwrap();
            let _ = shm::cleanup(&name.0);
            let n = bytes.len().min(real.len());
            bytes[..n].copy_from_slice(&real[..n]);
            if let Some((at, x)) = mutate {
                if at < bytes.len() {
                    bytes[at] ^= x;
                }
            }
        }
        fs::write(name.path(), &bytes).unwrap();
        match Region::attach(&name.0, K, &quick()) {
            Ok(r) => {
                prop_assert!(valid_prefix);
                prop_assert!(mutate.is_none_or(|(at, _)| at >= bytes.len()));
                prop_assert!(bytes.len() >= HEADER_LEN + r.payload_len());
                prop_assert_eq!(r.payload_len(), payload);
            }
            Err(e) => prop_assert!(!e.to_string().is_empty()),
        }
    }
}
