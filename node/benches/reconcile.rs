//! Set reconciliation (negentropy, through `cailloux_node::sync`, the code the node runs) between
//! two sets of 100,000 records that differ by 1, 10 and 1,000 records: round trips and bytes
//! each way, beside the naive exchange of every id (32 bytes each) in the same run.
//!
//! Run: `cargo bench -p cailloux-node --bench reconcile`

use cailloux_node::sync::{Session, SyncIndex, respond};
use cailloux_protocol::RecordId;
use std::time::Instant;

const SET: u32 = 100_000;

fn id(n: u32) -> RecordId {
    RecordId(*blake3::hash(&n.to_le_bytes()).as_bytes())
}

fn main() {
    println!("two sets of {SET} records; the second lacks `diff` records of the first");
    println!(
        "{:>13}  {:>11}  {:>14}  {:>14}  {:>13}  {:>9}  {:>10}",
        "diff", "round trips", "bytes A->B", "bytes B->A", "naive (ids)", "ratio", "time"
    );
    // Created over a year, one record every ~5 minutes.
    let full = SyncIndex::default();
    full.insert((0..SET).map(|n| (1_700_000_000_000 + u64::from(n) * 315_000, id(n))));
    let cases = [
        (1u32, "spread"),
        (10, "spread"),
        (1_000, "spread"),
        (1_000, "newest"),
    ];
    for (diff, how) in cases {
        let partial = SyncIndex::default();
        let step = SET / diff;
        let missing = |n: u32| match how {
            // Spread evenly across the whole time range: the worst case for range-based reconciliation.
            "spread" => n % step == step / 2,
            // The newest ones: a node that was offline for a while.
            _ => n >= SET - diff,
        };
        partial.insert(
            (0..SET)
                .filter(|n| !missing(*n))
                .map(|n| (1_700_000_000_000 + u64::from(n) * 315_000, id(n))),
        );
        assert_eq!(full.len() - partial.len(), diff as usize);

        let started = Instant::now();
        let (mut session, mut message) =
            Session::start(partial.snapshot()).unwrap_or_else(|e| panic!("{e}"));
        let (mut up, mut down) = (0usize, 0usize);
        loop {
            up += message.len();
            let reply = respond(full.snapshot(), &message).unwrap_or_else(|e| panic!("{e}"));
            down += reply.len();
            match session.step(&reply).unwrap_or_else(|e| panic!("{e}")) {
                Some(next) => message = next,
                None => break,
            }
        }
        let elapsed = started.elapsed();
        assert_eq!(
            session.need.len(),
            diff as usize,
            "found exactly the missing records"
        );
        let naive = SET as usize * 32;
        println!(
            "{:>13}  {:>11}  {up:>14}  {down:>14}  {naive:>13}  {:>8.4}x  {:>8.1}ms",
            format!("{diff} {how}"),
            session.round_trips,
            (up + down) as f64 / naive as f64,
            elapsed.as_secs_f64() * 1e3
        );
    }
    println!("ratio = (bytes both ways) / (naive: one side sends all its ids);");
    println!("afterwards the `diff` missing records are fetched by id");
}
