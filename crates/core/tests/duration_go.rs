//! Differential test: our duration parser and printer against the real Go `time` package
//! (the one kubectl and etcdctl are built with), on Go's own table and on generated inputs.
//!
//! Needs the Go toolchain (`go` on PATH, installed by `scripts/install-deps.sh` for the lab);
//! fails, naming it, when it is missing.

use std::io::Write;
use std::process::{Command, Stdio};

use kubemaint_core::duration::{DurationError, format_signed, parse_signed};

const PROGRAM: &str = r#"package main

import (
	"bufio"
	"fmt"
	"os"
	"time"
)

func main() {
	in := bufio.NewScanner(os.Stdin)
	out := bufio.NewWriter(os.Stdout)
	defer out.Flush()
	for in.Scan() {
		d, err := time.ParseDuration(in.Text())
		if err != nil {
			fmt.Fprintf(out, "err %s\n", err)
		} else {
			fmt.Fprintf(out, "ok %d %s\n", int64(d), d)
		}
	}
}
"#;

/// A small deterministic generator (xorshift64*), so failures reproduce.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn corpus() -> Vec<String> {
    let mut inputs: Vec<String> = [
        "0",
        "-0",
        "+0",
        "00",
        "0s",
        "1.5m",
        "1h30m",
        "500ms",
        "300us",
        "300\u{b5}s",
        "300\u{3bc}s",
        "2s",
        "90s",
        "5m",
        "-5s",
        "1d",
        "5",
        "",
        "-",
        ".",
        ".s",
        "5.s",
        "1h1h",
        "1m90s",
        "0.3333333333333333333h",
        "9223372036854775807ns",
        "9223372036854775808ns",
        "-9223372036854775808ns",
        "3000000h",
        "2562047h47m16.854775807s",
        "1e3s",
        "1_000s",
        "5 s",
        " 5s",
        "5s ",
        "1S",
        "2sec",
        "1.2.3s",
        "..5s",
        "+-5s",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    // Printed forms of random values: the round trip through Go's printer.
    for _ in 0..2000 {
        let nanos = rng.next() as i64 >> rng.below(63);
        inputs.push(format_signed(nanos));
    }
    // Random strings over the characters of the grammar and a few outside it.
    let alphabet: Vec<char> = "0123456789..smhnu\u{b5}\u{3bc}+-d x".chars().collect();
    for _ in 0..5000 {
        let len = rng.below(12) as usize;
        let s: String = (0..len)
            .map(|_| alphabet[rng.below(alphabet.len() as u64) as usize])
            .collect();
        inputs.push(s);
    }
    // Well-formed compositions with fractions, some long.
    let units = ["ns", "us", "\u{b5}s", "ms", "s", "m", "h"];
    for _ in 0..2000 {
        let mut s = String::new();
        if rng.below(4) == 0 {
            s.push('-');
        }
        for _ in 0..=rng.below(4) {
            let digits = rng.below(12) as u32 + 1;
            s.push_str(&rng.below(10u64.pow(digits)).to_string());
            if rng.below(2) == 0 {
                let width = rng.below(22) as usize;
                s.push('.');
                s.push_str(&format!("{:0width$}", rng.below(1_000_000)));
            }
            s.push_str(units[rng.below(units.len() as u64) as usize]);
        }
        inputs.push(s);
    }
    inputs
}

fn run_go(inputs: &[String]) -> Vec<String> {
    let dir = tempfile::tempdir().expect("temp dir");
    let main = dir.path().join("main.go");
    std::fs::write(&main, PROGRAM).expect("write main.go");
    let mut child = Command::new("go")
        .arg("run")
        .arg(&main)
        .env("GO111MODULE", "off")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("cannot run `go` ({e}): install Go (golang-go, see scripts/install-deps.sh)")
        });
    let mut stdin = child.stdin.take().expect("stdin");
    let text: String = inputs.iter().map(|s| format!("{s}\n")).collect();
    let writer = std::thread::spawn(move || stdin.write_all(text.as_bytes()));
    let out = child.wait_with_output().expect("go run");
    writer.join().expect("writer").expect("write to go");
    assert!(
        out.status.success(),
        "go run failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .expect("utf-8 from go")
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn parse_and_print_match_go() {
    let inputs = corpus();
    let answers = run_go(&inputs);
    assert_eq!(answers.len(), inputs.len(), "one answer per input");
    let mut oks = 0;
    for (input, go) in inputs.iter().zip(&answers) {
        let ours = parse_signed(input);
        if let Some(rest) = go.strip_prefix("ok ") {
            let (nanos, printed) = rest.split_once(' ').expect("ok NANOS STRING");
            let nanos: i64 = nanos.parse().expect("nanos");
            assert_eq!(ours, Ok(nanos), "parse {input:?}: Go says {go}");
            assert_eq!(format_signed(nanos), printed, "print {nanos}ns");
            oks += 1;
        } else {
            let kind_matches = match &ours {
                Ok(_) => false,
                Err(DurationError::Invalid { .. } | DurationError::TooLarge { .. }) => {
                    go.starts_with("err time: invalid duration")
                }
                Err(DurationError::MissingUnit { .. }) => go.starts_with("err time: missing unit"),
                Err(DurationError::UnknownUnit { .. }) => go.starts_with("err time: unknown unit"),
                Err(DurationError::Negative { .. }) => false,
            };
            assert!(kind_matches, "{input:?}: Go says {go:?}, we say {ours:?}");
        }
    }
    // The generated corpus must exercise both sides, or this test proves little.
    assert!(
        oks > 2000 && oks < inputs.len() - 1000,
        "{oks} accepted of {}",
        inputs.len()
    );
}
