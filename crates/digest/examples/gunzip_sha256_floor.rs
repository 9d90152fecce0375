//! The floor of log-file validation: one pass of gunzip + SHA-256 over the
//! given files, on one thread, with the same gzip and SHA-256 code the
//! validator uses, and nothing else (no digests, no signatures, no HTTP).
//!
//! `gunzip_sha256_floor <file-with-one-path-per-line>` prints a JSON summary.

use std::io::{BufReader, Read};
use std::time::Instant;

use flate2::bufread::GzDecoder;
use sha2::{Digest, Sha256};

fn cpu_seconds() -> f64 {
    // utime + stime of this process, from /proc (Linux only; 0 elsewhere).
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return 0.0;
    };
    let Some((_, rest)) = stat.rsplit_once(')') else {
        return 0.0;
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = fields
        .get(11..13)
        .map(|f| f.iter().filter_map(|v| v.parse::<f64>().ok()).sum())
        .unwrap_or(0.0);
    ticks / 100.0
}

fn main() -> std::io::Result<()> {
    let list = std::env::args().nth(1).ok_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "usage: gunzip_sha256_floor LIST",
        )
    })?;
    let paths: Vec<String> = std::fs::read_to_string(list)?
        .lines()
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect();
    let cpu0 = cpu_seconds();
    let start = Instant::now();
    let (mut bytes_in, mut bytes_out) = (0u64, 0u64);
    let mut buffer = vec![0u8; 128 * 1024];
    let mut digests = 0u64;
    for path in &paths {
        let file = std::fs::File::open(path)?;
        bytes_in += file.metadata()?.len();
        let mut decoder = GzDecoder::new(BufReader::with_capacity(256 * 1024, file));
        let mut hasher = Sha256::new();
        loop {
            let n = decoder.read(&mut buffer)?;
            if n == 0 {
                break;
            }
            bytes_out += n as u64;
            hasher.update(&buffer[..n]);
        }
        digests ^= u64::from(hasher.finalize()[0]);
    }
    let wall = start.elapsed().as_secs_f64();
    println!(
        "{{\"files\":{},\"compressed_bytes\":{bytes_in},\"uncompressed_bytes\":{bytes_out},\"wall_seconds\":{wall:.4},\"cpu_seconds\":{:.3},\"checksum\":{digests}}}",
        paths.len(),
        cpu_seconds() - cpu0
    );
    Ok(())
}
