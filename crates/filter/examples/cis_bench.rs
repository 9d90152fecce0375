//! What the CIS AWS Foundations CloudTrail metric filters cost, next to the
//! JSON parse of the events they look at, measured side by side in one run.
//!
//! ```text
//! cargo build --release -p cairn-filter --example cis_bench
//! cis_bench [EVENTS.jsonl] [--json] [--chunk N] [--block N] [--set monitoring/cis-aws-foundations.json]
//! ```
//!
//! Reads JSON Lines events (CloudTrail records) from the file, or from stdin
//! without one, in chunks of `--chunk` lines (50 000 by default, so memory
//! stays bounded whatever the input), and for each chunk measures:
//!
//! * **parse**: `serde_json::from_str::<serde_json::Value>` on every line,
//!   once, the cost every JSON pattern shares;
//! * **each filter alone**: the pattern matched against every event, the
//!   events pre-parsed into [`LogEvent`]s outside the timed region
//!   ([`LogEvent::with_json`] with the values the parse produced), so the
//!   timed region is matching only;
//! * **all filters**: every pattern against each event in turn, as a log
//!   group with the whole set attached runs them.
//!
//! Matching is timed on blocks of `--block` events (16 by default) touched
//! once untimed just before, so the events are in the cache as they are
//! right after their parse in a real pipeline; without that, a filter pass
//! over a chunk of 50 000 parsed events measures mostly memory latency.
//! All filters are also timed in one pass over the whole chunk ("events not
//! cached"), the worst case.
//!
//! Timings are summed over the chunks; the figures are ns per event and the
//! ratio all-filters / parse. `--json` prints one JSON object instead of
//! the table.

use std::error::Error;
use std::hint::black_box;
use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use cairn_filter::{FilterPattern, LogEvent};
use serde_json::Value;

/// One filter of the set and what it cost.
struct Filter {
    id: String,
    name: String,
    pattern: FilterPattern,
    time: Duration,
    matches: u64,
}

/// Command-line options.
struct Options {
    input: Option<PathBuf>,
    json: bool,
    chunk: usize,
    block: usize,
    set: PathBuf,
}

fn options() -> Result<Options, Box<dyn Error>> {
    let mut opts = Options {
        input: None,
        json: false,
        chunk: 50_000,
        block: 16,
        set: PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../../monitoring/cis-aws-foundations.json"),
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--json" => opts.json = true,
            "--chunk" => {
                opts.chunk = args.next().ok_or("--chunk needs a number")?.parse()?;
                if opts.chunk == 0 {
                    return Err("--chunk must be at least 1".into());
                }
            }
            "--block" => {
                opts.block = args.next().ok_or("--block needs a number")?.parse()?;
                if opts.block == 0 {
                    return Err("--block must be at least 1".into());
                }
            }
            "--set" => opts.set = PathBuf::from(args.next().ok_or("--set needs a path")?),
            "-h" | "--help" => {
                println!(
                    "usage: cis_bench [EVENTS.jsonl] [--json] [--chunk N] [--block N] [--set SET.json]\n\
                     reads stdin without EVENTS.jsonl"
                );
                std::process::exit(0);
            }
            _ if arg.starts_with('-') => return Err(format!("unknown option {arg}").into()),
            _ => opts.input = Some(PathBuf::from(arg)),
        }
    }
    Ok(opts)
}

/// The filters of a monitoring set document (`controls[].filterPattern`).
fn load_set(path: &PathBuf) -> Result<Vec<Filter>, Box<dyn Error>> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let doc: Value = serde_json::from_str(&text)?;
    let controls = doc["controls"]
        .as_array()
        .ok_or("the set has no controls array")?;
    controls
        .iter()
        .map(|c| {
            let id = c["id"].as_str().ok_or("a control without id")?.to_owned();
            let text = c["filterPattern"]
                .as_str()
                .ok_or_else(|| format!("{id}: no filterPattern"))?;
            let pattern = FilterPattern::parse(text).map_err(|e| format!("{id}: {e}"))?;
            let name = c["filterName"].as_str().unwrap_or(&id).to_owned();
            Ok(Filter {
                id,
                name,
                pattern,
                time: Duration::ZERO,
                matches: 0,
            })
        })
        .collect()
}

/// Running totals over the chunks.
#[derive(Default)]
struct Totals {
    events: u64,
    bytes: u64,
    parse: Duration,
    all: Duration,
    all_cold: Duration,
    all_matches: u64,
}

/// Measures one chunk of lines, adding to the totals.
fn measure_chunk(lines: &[String], block: usize, filters: &mut [Filter], totals: &mut Totals) {
    // (a) The parse alone. The values are kept (not dropped inside the
    // timed region) to build the events below.
    let mut values: Vec<Option<Value>> = Vec::with_capacity(lines.len());
    let start = Instant::now();
    for line in lines {
        values.push(black_box(serde_json::from_str::<Value>(line).ok()));
    }
    totals.parse += start.elapsed();

    let events: Vec<LogEvent<'_>> = lines
        .iter()
        .zip(values)
        .map(|(line, value)| match value {
            Some(v) => LogEvent::with_json(line, v),
            None => LogEvent::new(line),
        })
        .collect();

    // (c, cold) All filters on each event, one pass over the whole chunk:
    // every event is read back from memory, as when matching runs long
    // after the parse.
    let mut matches = 0u64;
    let start = Instant::now();
    for event in &events {
        let event = black_box(event);
        for f in filters.iter() {
            matches += u64::from(f.pattern.matches(event));
        }
    }
    totals.all_cold += start.elapsed();
    totals.all_matches += matches;

    // (b) and (c, warm), block by block: a block small enough to stay in
    // the cache is touched once untimed (as the parse just did in a real
    // pipeline), then matched by all filters together and by each filter
    // alone.
    for block in events.chunks(block) {
        for event in block {
            for f in filters.iter() {
                black_box(f.pattern.matches(black_box(event)));
            }
        }
        let start = Instant::now();
        for event in block {
            let event = black_box(event);
            for f in filters.iter() {
                black_box(f.pattern.matches(event));
            }
        }
        totals.all += start.elapsed();
        for f in filters.iter_mut() {
            let mut matches = 0u64;
            let start = Instant::now();
            for event in block {
                matches += u64::from(f.pattern.matches(black_box(event)));
            }
            f.time += start.elapsed();
            f.matches += matches;
        }
    }
    totals.events += lines.len() as u64;
    totals.bytes += lines.iter().map(|l| l.len() as u64 + 1).sum::<u64>();
}

fn ns_per_event(d: Duration, events: u64) -> f64 {
    if events == 0 {
        return 0.0;
    }
    d.as_nanos() as f64 / events as f64
}

fn main() -> Result<(), Box<dyn Error>> {
    let opts = options()?;
    let mut filters = load_set(&opts.set)?;
    let input: Box<dyn Read> = match &opts.input {
        Some(path) => Box::new(
            std::fs::File::open(path)
                .map_err(|e| format!("cannot open {}: {e}", path.display()))?,
        ),
        None => Box::new(std::io::stdin().lock()),
    };
    let reader = BufReader::with_capacity(1 << 20, input);

    let mut totals = Totals::default();
    let mut chunk: Vec<String> = Vec::with_capacity(opts.chunk);
    let mut chunks = 0u64;
    for line in reader.lines() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        chunk.push(line);
        if chunk.len() == opts.chunk {
            measure_chunk(&chunk, opts.block, &mut filters, &mut totals);
            chunk.clear();
            chunks += 1;
        }
    }
    if !chunk.is_empty() {
        measure_chunk(&chunk, opts.block, &mut filters, &mut totals);
        chunks += 1;
    }

    let n = totals.events;
    let parse_ns = ns_per_event(totals.parse, n);
    let all_ns = ns_per_event(totals.all, n);
    let sum_alone: Duration = filters.iter().map(|f| f.time).sum();
    let all_cold_ns = ns_per_event(totals.all_cold, n);
    let ratio_to_parse = |ns: f64| if parse_ns > 0.0 { ns / parse_ns } else { 0.0 };
    let ratio = ratio_to_parse(all_ns);
    let ratio_cold = ratio_to_parse(all_cold_ns);

    if opts.json {
        let out = serde_json::json!({
            "events": n,
            "bytes": totals.bytes,
            "chunks": chunks,
            "chunk_size": opts.chunk,
            "block_size": opts.block,
            "parse_ns_per_event": parse_ns,
            "all_filters_ns_per_event": all_ns,
            "sum_of_filters_alone_ns_per_event": ns_per_event(sum_alone, n),
            "all_filters_matches": totals.all_matches,
            "ratio_all_filters_to_parse": ratio,
            "all_filters_cold_ns_per_event": all_cold_ns,
            "ratio_all_filters_cold_to_parse": ratio_cold,
            "filters": filters.iter().map(|f| serde_json::json!({
                "id": f.id,
                "name": f.name,
                "ns_per_event": ns_per_event(f.time, n),
                "matches": f.matches,
            })).collect::<Vec<_>>(),
        });
        println!("{out}");
        return Ok(());
    }

    println!(
        "{n} events ({:.1} MB), {chunks} chunk(s) of at most {}",
        totals.bytes as f64 / 1e6,
        opts.chunk
    );
    println!(
        "{:<15} {:<30} {:>10} {:>10}",
        "id", "filter", "ns/event", "matches"
    );
    for f in &filters {
        println!(
            "{:<15} {:<30} {:>10.1} {:>10}",
            f.id,
            f.name,
            ns_per_event(f.time, n),
            f.matches
        );
    }
    println!(
        "{:<15} {:<30} {:>10.1}",
        "",
        "sum of filters alone",
        ns_per_event(sum_alone, n)
    );
    println!(
        "{:<15} {:<30} {:>10.1} {:>10}",
        "", "all filters on each event", all_ns, totals.all_matches
    );
    println!(
        "{:<15} {:<30} {:>10.1}",
        "", "JSON parse (serde_json::Value)", parse_ns
    );
    println!(
        "{:<15} {:<30} {:>10.1}",
        "", "all filters, events not cached", all_cold_ns
    );
    println!("all filters / parse: {ratio:.3}x (events not cached: {ratio_cold:.3}x)");
    Ok(())
}
