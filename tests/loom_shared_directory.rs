//! Loom models of the shared registry's directory and process table:
//! concurrent registration of one key, takeover of a dead process's claim
//! racing a new registration, and process slots claimed over a dead owner.
//! Run with:
//! `RUSTFLAGS="--cfg ringstat_loom" LOOM_MAX_PREEMPTIONS=2 CARGO_TARGET_DIR=target/loom cargo test --release --test loom_shared_directory`
#![cfg(ringstat_loom)]

use loom::sync::Arc;
use loom::thread;
use ringstat::stats::shared::model::Model;

/// Where each key sits: every published entry, by key.
fn published(m: &Model) -> Vec<(usize, Vec<u8>)> {
    (0..m.entries())
        .filter_map(|i| m.key(i).map(|k| (i, k)))
        .collect()
}

/// Two processes register the same key at once: one creates it, the other
/// finds it (waiting for the creator's publication if needed); one entry.
#[test]
fn same_key_registered_once() {
    loom::model(|| {
        let m = Arc::new(Model::new(2, 1));
        let m1 = Arc::clone(&m);
        let t = thread::spawn(move || m1.get_or_insert(b"a", 1, &[]).unwrap());
        let mine = m.get_or_insert(b"a", 2, &[]).unwrap();
        let theirs = t.join().unwrap();
        assert_eq!(mine.0, theirs.0);
        assert!(mine.1 ^ theirs.1, "exactly one created it");
        assert_eq!(published(&m), vec![(mine.0, b"a".to_vec())]);
    });
}

/// A process died after claiming key `a`'s entry. Two live processes then
/// register `a` and `b` at once: the dead claim is taken over exactly once,
/// never blocks them, and each key ends in exactly one entry.
#[test]
fn dead_claim_is_taken_over() {
    loom::model(|| {
        let m = Arc::new(Model::new(2, 1));
        assert!(m.claim_and_die(b"a", 9));
        let m1 = Arc::clone(&m);
        let t = thread::spawn(move || m1.get_or_insert(b"b", 1, &[9]).unwrap());
        let a = m.get_or_insert(b"a", 2, &[9]).unwrap();
        let b = t.join().unwrap();
        assert_ne!(a.0, b.0);
        assert!(a.1 && b.1);
        assert!(a.2 || b.2, "someone took the dead claim over");
        let mut keys: Vec<Vec<u8>> = published(&m).into_iter().map(|(_, k)| k).collect();
        keys.sort();
        assert_eq!(keys, vec![b"a".to_vec(), b"b".to_vec()]);
    });
}

/// Two processes attach while one slot belongs to a dead process and one
/// is free: each gets its own slot.
#[test]
fn process_slots_over_a_dead_owner() {
    loom::model(|| {
        let m = Arc::new(Model::new(1, 2));
        assert_eq!(m.attach(9, &[]), Some((0, true)));
        let m1 = Arc::clone(&m);
        let t = thread::spawn(move || m1.attach(1, &[9]));
        let mine = m.attach(2, &[9]).expect("a slot");
        let theirs = t.join().unwrap().expect("a slot");
        assert_ne!(mine.0, theirs.0);
        let mut owners = vec![m.owner(0), m.owner(1)];
        owners.sort();
        assert_eq!(owners, vec![Some(1), Some(2)]);
    });
}
