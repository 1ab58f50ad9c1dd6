//! The cases of `guards.rs`, timed in interleaved blocks, for machines whose neighbours
//! make criterion's ratios unreliable.
//!
//! Criterion times one case for seconds, then the next: a virtual machine that is slowed
//! down for a second slows one case and not the other, and the ratio of two medians moved
//! by up to 1.7x between runs on a 2-vCPU VM (docs/performance-log.md). Here every round times
//! each case of a group once, for a block of about 100 µs, in an order that rotates from
//! round to round; the ratio of a case to the group's raw case is taken within each round,
//! and a run reports the median over its rounds. A slow-down longer than a round touches
//! all cases alike and cancels; a shorter one spoils a few rounds, which the median
//! ignores. Each run is a process of its own (the binary starts itself again), since a
//! process can land in a slower state for its whole life; the table gives the median of
//! the runs and the lowest and highest run.
//!
//! `cargo bench -p gilguard-benches --bench paired [-- [--runs N] [--rounds N] [GROUP ...]]`:
//! by default 5 runs of 1000 rounds of every group, about 30 s; a group is picked by any part
//! of its name.

use std::collections::BTreeMap;
use std::process::Command;
use std::time::Duration;

mod cases;

use cases::{Group, Runner};

/// How long one case runs in each round.
const BLOCK: Duration = Duration::from_micros(100);
/// Rounds run and discarded before the measured ones.
const WARM_UP_ROUNDS: usize = 50;
/// Makes the process one run that prints raw figures, a line per case: how the parent
/// process starts its runs, and how `benches/compare.py --paired` reads one.
const CHILD: &str = "--one-run";

struct Options {
    runs: usize,
    rounds: usize,
    child: bool,
    groups: Vec<String>,
}

impl Options {
    fn parse() -> Options {
        let mut options = Options {
            runs: 5,
            rounds: 1000,
            child: false,
            groups: Vec::new(),
        };
        let mut args = std::env::args().skip(1);
        let positive = |value: Option<String>, flag: &str| {
            value
                .and_then(|n| n.parse().ok())
                .filter(|&n: &usize| n > 0)
                .unwrap_or_else(|| panic!("{flag} takes a positive number"))
        };
        while let Some(arg) = args.next() {
            match arg.as_str() {
                "--runs" => options.runs = positive(args.next(), "--runs"),
                "--rounds" => options.rounds = positive(args.next(), "--rounds"),
                CHILD => options.child = true,
                "--bench" => {} // added by `cargo bench`
                group => options.groups.push(group.to_owned()),
            }
        }
        options
    }

    fn wants(&self, group: &Group) -> bool {
        self.groups.is_empty() || self.groups.iter().any(|part| group.name.contains(part))
    }
}

fn main() {
    let options = Options::parse();
    if options.child {
        one_run(&options);
    } else {
        report(&options);
    }
}

/// One run, in a process of its own: prints a line per case, `group case ns/op
/// ratio-to-raw ratio-to-pyo3` (NaN for a group without a `pyo3` case).
fn one_run(options: &Options) {
    cases::setup();
    for group in cases::groups().iter().filter(|group| options.wants(group)) {
        let per_step = measure(group, options.rounds);
        let ratio_to = |index: usize, baseline: Option<&str>| match baseline {
            Some(name) => median_ratio(&per_step[index], &per_step[case_index(group, name)]),
            None => f64::NAN,
        };
        for (index, (name, _)) in group.cases.iter().enumerate() {
            println!(
                "{} {name} {} {} {}",
                group.name,
                median(per_step[index].clone()),
                ratio_to(index, Some(group.raw)),
                ratio_to(index, group.pyo3),
            );
        }
    }
}

fn case_index(group: &Group, name: &str) -> usize {
    group
        .cases
        .iter()
        .position(|&(case, _)| case == name)
        .expect("the group has the case")
}

/// Times every case of `group` in `rounds` rounds; returns each case's nanoseconds per
/// step, one figure per round.
fn measure(group: &Group, rounds: usize) -> Vec<Vec<f64>> {
    let cases: Vec<(Runner, u64)> = group
        .cases
        .iter()
        .map(|&(_, work)| {
            let runner = Runner::new(group.place, work);
            let iterations = block_iterations(&runner);
            (runner, iterations)
        })
        .collect();
    let mut per_step = vec![Vec::with_capacity(rounds); cases.len()];
    for round in 0..WARM_UP_ROUNDS + rounds {
        for offset in 0..cases.len() {
            let index = (round + offset) % cases.len();
            let (runner, iterations) = &cases[index];
            let nanos = runner.time(*iterations).as_nanos() as f64 / *iterations as f64;
            if round >= WARM_UP_ROUNDS {
                per_step[index].push(nanos);
            }
        }
    }
    per_step
}

/// How many steps of the case take about [`BLOCK`], from the fastest of a few trial runs.
fn block_iterations(runner: &Runner) -> u64 {
    const TRIAL: u64 = 1000;
    let fastest = (0..5)
        .map(|_| runner.time(TRIAL))
        .min()
        .expect("five trials");
    let per_step = fastest.as_secs_f64() / TRIAL as f64;
    ((BLOCK.as_secs_f64() / per_step.max(1e-12)) as u64).max(1)
}

/// The median over the rounds of the ratio of `case` to `baseline` in each round.
fn median_ratio(case: &[f64], baseline: &[f64]) -> f64 {
    median(case.iter().zip(baseline).map(|(c, b)| c / b).collect())
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    let middle = values.len() / 2;
    if values.len() % 2 == 0 {
        (values[middle - 1] + values[middle]) / 2.0
    } else {
        values[middle]
    }
}

/// A case's figures from every run: ns/op, ratio to the raw case, ratio to `pyo3`.
type Figures = BTreeMap<(String, String), Vec<[f64; 3]>>;

/// Starts the runs one after another and prints the table of their results.
fn report(options: &Options) {
    let mut figures = Figures::new();
    for run in 0..options.runs {
        eprintln!("run {} of {}", run + 1, options.runs);
        let output = Command::new(std::env::current_exe().expect("this binary"))
            .arg(CHILD)
            .args(["--rounds", &options.rounds.to_string()])
            .args(&options.groups)
            .output()
            .expect("a run starts");
        assert!(
            output.status.success(),
            "a run failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        for line in String::from_utf8_lossy(&output.stdout).lines() {
            let fields: Vec<&str> = line.split(' ').collect();
            let [group, case, numbers @ ..] = &fields[..] else {
                panic!("unexpected line from a run: {line}");
            };
            let numbers: Vec<f64> = numbers
                .iter()
                .map(|n| n.parse().expect("a number"))
                .collect();
            figures
                .entry((group.to_string(), case.to_string()))
                .or_default()
                .push(numbers.try_into().expect("three figures"));
        }
    }
    println!(
        "{} runs of {} rounds; ratio cells: median of the runs (lowest-highest run)\n",
        options.runs, options.rounds
    );
    println!("| group | case | ns/op | vs raw | vs pyo3 |");
    println!("|---|---|---|---|---|");
    for group in cases::groups().iter().filter(|group| options.wants(group)) {
        for &(case, _) in &group.cases {
            let runs = &figures[&(group.name.to_owned(), case.to_owned())];
            let to_pyo3 = match group.pyo3 {
                Some(_) => ratio_cell(runs.iter().map(|run| run[2])),
                None => "-".to_owned(),
            };
            println!(
                "| {} | {case} | {:.1} | {} | {to_pyo3} |",
                group.name,
                median(runs.iter().map(|run| run[0]).collect()),
                ratio_cell(runs.iter().map(|run| run[1])),
            );
        }
    }
}

fn ratio_cell(ratios: impl Iterator<Item = f64>) -> String {
    let ratios: Vec<f64> = ratios.collect();
    let low = ratios.iter().copied().fold(f64::INFINITY, f64::min);
    let high = ratios.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    format!("{:.3}x ({low:.3}-{high:.3})", median(ratios))
}
