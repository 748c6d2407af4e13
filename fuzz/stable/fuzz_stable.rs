//! Runs the `copy_decoder` fuzz target on a stable toolchain, where libFuzzer's
//! instrumentation is not available: it replays the committed corpus, then mutates its
//! inputs at random for a bounded time (bytes flipped and set, length words and field
//! counts set to boundary values, bytes inserted, deleted, truncated, inputs spliced).
//! Without coverage feedback it finds less than libFuzzer, but it runs in CI.
//!
//!     cargo run --manifest-path fuzz/Cargo.toml --bin fuzz_stable -- --seconds 60
//!
//! Options: `--seconds N` (default 60), `--seed N` (default: from the clock, printed),
//! `--corpus DIR` (default `fuzz/corpus/copy_decoder`). An input that panics is written to
//! `fuzz/artifacts/copy_decoder/` and the run exits 1; replay it with
//! `fuzz_stable --replay FILE`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

/// Values a length word or field count is set to: NULL's -1, the negatives around it,
/// the edges of sizes and of the 1 GiB limit.
const INTERESTING_I32: &[i32] = &[
    -1,
    -2,
    -3,
    -4,
    -8,
    -16,
    i32::MIN,
    0,
    1,
    2,
    4,
    8,
    12,
    16,
    255,
    0x7fff,
    0x1_0000,
    1 << 30,
    (1 << 30) + 1,
    i32::MAX,
];
const INTERESTING_I16: &[i16] = &[-1, -2, 0, 1, 2, 5, 9, 15, 16, i16::MAX, i16::MIN];

struct Args {
    seconds: u64,
    seed: Option<u64>,
    corpus: PathBuf,
    replay: Option<PathBuf>,
}

fn args() -> Result<Args, String> {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut out = Args {
        seconds: 60,
        seed: None,
        corpus: here.join("corpus/copy_decoder"),
        replay: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--seconds" => out.seconds = value()?.parse().map_err(|e| format!("--seconds: {e}"))?,
            "--seed" => out.seed = Some(value()?.parse().map_err(|e| format!("--seed: {e}"))?),
            "--corpus" => out.corpus = value()?.into(),
            "--replay" => out.replay = Some(value()?.into()),
            other => return Err(format!("unknown argument `{other}`")),
        }
    }
    Ok(out)
}

/// Runs one input; `false` if the target panicked.
fn run(input: &[u8]) -> bool {
    std::panic::catch_unwind(|| tributary_fuzz::copy_decoder(input)).is_ok()
}

fn mutate(rng: &mut SmallRng, input: &mut Vec<u8>, corpus: &[Vec<u8>]) {
    for _ in 0..rng.random_range(1..=4) {
        let len = input.len();
        if len < 3 {
            input.extend((0..8).map(|_| rng.random::<u8>()));
            continue;
        }
        // Past the two control bytes, mostly; sometimes the control bytes themselves.
        let at = if rng.random_ratio(1, 16) {
            rng.random_range(0..2)
        } else {
            rng.random_range(2..len)
        };
        match rng.random_range(0..10) {
            0 => input[at] ^= 1 << rng.random_range(0..8),
            1 => input[at] = rng.random(),
            2..=4 if at + 4 <= len => {
                let v = INTERESTING_I32[rng.random_range(0..INTERESTING_I32.len())];
                input[at..at + 4].copy_from_slice(&v.to_be_bytes());
            }
            5 if at + 2 <= len => {
                let v = INTERESTING_I16[rng.random_range(0..INTERESTING_I16.len())];
                input[at..at + 2].copy_from_slice(&v.to_be_bytes());
            }
            6 => {
                let n = rng.random_range(1..=8);
                let bytes: Vec<u8> = (0..n).map(|_| rng.random()).collect();
                input.splice(at..at, bytes);
            }
            7 => {
                let end = (at + rng.random_range(1..=8)).min(len);
                input.drain(at..end);
            }
            8 => input.truncate(at),
            _ => {
                // Splice in a piece of another input (rows of one stream into another).
                let other = &corpus[rng.random_range(0..corpus.len())];
                if other.len() > 2 {
                    let from = rng.random_range(2..other.len());
                    let to = rng.random_range(from..=other.len());
                    input.splice(at..at, other[from..to].iter().copied());
                }
            }
        }
    }
}

fn crashed(input: &[u8]) -> ExitCode {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("artifacts/copy_decoder");
    let name = format!("crash-{:016x}", fnv(input));
    match std::fs::create_dir_all(&dir).and_then(|_| std::fs::write(dir.join(&name), input)) {
        Ok(()) => eprintln!(
            "the decoder panicked; input written to {}",
            dir.join(name).display()
        ),
        Err(e) => eprintln!("the decoder panicked on {input:02x?}; cannot write it: {e}"),
    }
    ExitCode::FAILURE
}

/// A name for a crashing input that stays the same from run to run.
fn fnv(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3)
    })
}

fn main() -> ExitCode {
    let args = match args() {
        Ok(args) => args,
        Err(e) => {
            eprintln!("fuzz_stable: {e}");
            return ExitCode::from(2);
        }
    };
    if let Some(path) = &args.replay {
        let input = std::fs::read(path).expect("readable input");
        return if run(&input) {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        };
    }
    let mut corpus: Vec<Vec<u8>> = match std::fs::read_dir(&args.corpus) {
        Ok(dir) => dir
            .filter_map(Result::ok)
            .filter_map(|e| std::fs::read(e.path()).ok())
            .collect(),
        Err(e) => {
            eprintln!("fuzz_stable: cannot read {}: {e}", args.corpus.display());
            return ExitCode::from(2);
        }
    };
    if corpus.is_empty() {
        eprintln!("fuzz_stable: {} holds no inputs", args.corpus.display());
        return ExitCode::from(2);
    }
    // Sorted, so that a seed replays the same run.
    corpus.sort();
    for input in &corpus {
        if !run(input) {
            return crashed(input);
        }
    }
    let seed = args.seed.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64)
    });
    eprintln!(
        "fuzz_stable: {} corpus inputs replayed; mutating for {} s with --seed {seed}",
        corpus.len(),
        args.seconds
    );
    // Panics are caught and reported once, with the input; the default hook would
    // print each one as it happens.
    std::panic::set_hook(Box::new(|info| eprintln!("panic: {info}")));
    let mut rng = SmallRng::seed_from_u64(seed);
    let deadline = Instant::now() + Duration::from_secs(args.seconds);
    let mut runs: u64 = 0;
    while Instant::now() < deadline {
        for _ in 0..256 {
            let mut input = corpus[rng.random_range(0..corpus.len())].clone();
            mutate(&mut rng, &mut input, &corpus);
            runs += 1;
            if !run(&input) {
                return crashed(&input);
            }
        }
    }
    eprintln!("fuzz_stable: {runs} inputs, no panic");
    ExitCode::SUCCESS
}
