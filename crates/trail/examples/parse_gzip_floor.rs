//! The cost floor of delivery: parse every record (the fields selectors read)
//! and gzip it into log files, nothing else. Benchmarks print Cairn's
//! end-to-end cost next to this.
//!
//! `cargo run --release -p cairn-trail --example parse_gzip_floor -- FILE.jsonl [gzip-level] [trails]`
//! prints one JSON line: records, bytes, wall and CPU seconds. With `trails`
//! above 1 each record is parsed once and gzipped into that many independent
//! sets of log files: the floor of delivering every record to several trails.

use std::io::BufRead;
use std::time::Instant;

use cairn_model::RecordView;
use cairn_trail::LogBatches;

fn cpu_seconds() -> f64 {
    // utime + stime of this process from /proc (Linux); 0 elsewhere.
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return 0.0;
    };
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / 100.0
}

fn main() {
    let mut args = std::env::args().skip(1);
    let Some(path) = args.next() else {
        eprintln!("usage: parse_gzip_floor FILE.jsonl [gzip-level] [trails]");
        std::process::exit(2);
    };
    let level: u32 = args.next().and_then(|l| l.parse().ok()).unwrap_or(6);
    let trails: usize = args.next().and_then(|t| t.parse().ok()).unwrap_or(1).max(1);
    let file = std::fs::File::open(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let lines: Vec<String> = std::io::BufReader::new(file)
        .lines()
        .map(|l| l.expect("readable line"))
        .collect();
    let bytes: usize = lines.iter().map(String::len).sum();
    let cpu0 = cpu_seconds();
    let t0 = Instant::now();
    // Parse each record once, keeping what batching needs (as the router
    // does), then gzip every trail's copy in a pass of its own (as each
    // trail's sink does on its own thread): interleaving the trails record by
    // record would thrash the cache with every gzip state at once and make
    // the floor slower than the work it stands for.
    let parsed: Vec<(String, String)> = lines
        .iter()
        .map(|line| {
            let view = RecordView::parse(line).expect("valid record");
            (
                view.recipient_account_id
                    .as_deref()
                    .unwrap_or("123456789012")
                    .to_owned(),
                view.aws_region.as_deref().unwrap_or("us-east-1").to_owned(),
            )
        })
        .collect();
    let mut files = 0usize;
    let mut compressed = 0usize;
    for _ in 0..trails {
        let mut batches = LogBatches::new(level);
        for (line, (account, region)) in lines.iter().zip(&parsed) {
            batches.push(account, region, line.as_bytes(), None);
            if batches.uncompressed_bytes() >= 64 * 1024 * 1024 {
                for (_, f) in batches.finish() {
                    files += 1;
                    compressed += f.gzip.len();
                }
            }
        }
        for (_, f) in batches.finish() {
            files += 1;
            compressed += f.gzip.len();
        }
    }
    let wall = t0.elapsed().as_secs_f64();
    let cpu = cpu_seconds() - cpu0;
    println!(
        "{{\"records\":{},\"bytes\":{bytes},\"files\":{files},\"compressed_bytes\":{compressed},\"wall_seconds\":{wall:.4},\"cpu_seconds\":{cpu:.4}}}",
        lines.len()
    );
}
