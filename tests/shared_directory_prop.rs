//! Property test of the shared registry's directory against a model (a map
//! from key to entry): any sequence of registrations by several processes,
//! some killed between claiming an entry and publishing it.

use std::collections::HashMap;

use proptest::prelude::*;
use ringstat::stats::shared::model::Model;

const ENTRIES: usize = 8;

#[derive(Debug, Clone)]
enum Op {
    /// Process `p` registers key `k`.
    Insert(u8, usize),
    /// Process `p` claims key `k`'s entry and is killed; it restarts with a
    /// new token.
    Die(u8, usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0u8..12, 0usize..3).prop_map(|(k, p)| Op::Insert(k, p)),
        1 => (0u8..12, 0usize..3).prop_map(|(k, p)| Op::Die(k, p)),
    ]
}

proptest! {
    #[test]
    fn directory_matches_a_map(ops in prop::collection::vec(op(), 1..60)) {
        let m = Model::new(ENTRIES, 1);
        let mut model: HashMap<Vec<u8>, usize> = HashMap::new();
        let mut tokens = [1u64, 2, 3];
        let mut next = 4u64;
        let mut dead: Vec<u64> = Vec::new();
        for op in ops {
            match op {
                Op::Insert(k, p) => {
                    let key = vec![b'k', k];
                    let got = m.get_or_insert(&key, tokens[p], &dead);
                    match model.get(&key) {
                        Some(&i) => prop_assert_eq!(got, Ok((i, false, false))),
                        None if model.len() == ENTRIES => prop_assert_eq!(got, Err("full")),
                        None => {
                            let (i, created, _) = got.expect("room left");
                            prop_assert!(created);
                            prop_assert!(!model.values().any(|&j| j == i));
                            model.insert(key, i);
                        }
                    }
                }
                Op::Die(k, p) => {
                    let _ = m.claim_and_die(&[b'k', k], tokens[p]);
                    dead.push(tokens[p]);
                    tokens[p] = next;
                    next += 1;
                }
            }
            let published: HashMap<Vec<u8>, usize> =
                (0..ENTRIES).filter_map(|i| m.key(i).map(|key| (key, i))).collect();
            prop_assert_eq!(&published, &model);
        }
    }
}
