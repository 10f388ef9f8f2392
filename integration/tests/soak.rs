//! The short soak `make test` runs (`make soak` runs 1,000,000 requests): tens of thousands
//! of requests over keep-alive and new connections, every one accounted for exactly on both
//! sidecars (metrics, histogram count, JSON log lines) and no failed log write.

use meshstats_integration::soak::{self, SoakOptions};
use std::time::Duration;

const REQUESTS: u64 = 20_000;

#[test]
fn twenty_thousand_requests_counted_and_logged_exactly_once_on_each_side() {
    let options = SoakOptions {
        requests: REQUESTS,
        connections: 4,
        budget: Duration::from_secs(120),
    };
    let report = soak::run(&options).unwrap();
    eprint!("{report}");
    assert_eq!(report.problems(REQUESTS), Vec::<String>::new(), "{report}");
    // Both halves really ran: the soak is about both kinds of connection.
    assert_eq!(report.keep_alive.ok(), REQUESTS / 2);
    assert_eq!(report.new_connections.ok(), REQUESTS / 2);
    assert_eq!(report.sides.len(), 2);
    for side in &report.sides {
        assert_eq!(
            (side.requests_total, side.duration_count, side.log_lines),
            (REQUESTS, REQUESTS, REQUESTS),
            "{}",
            side.name
        );
    }
}
