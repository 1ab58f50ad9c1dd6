//! The workload extension authors write: a Python function, `f(x) = x + 1`, called from
//! the workers of a rayon pool (threads Python did not create), each call attached by a
//! gilguard guard or by `pyo3`'s `Python::attach`, with the time per call.
//!
//! Each side runs in a process of its own: a thread that used a gilguard guard keeps its
//! thread state, and a later `Python::attach` on it finds that one too, so in one process
//! the second side would measure the first's state.
//!
//! `cargo bench -p gilguard-benches --bench rayon_callbacks [-- --calls N --runs N]`: by
//! default 100,000 calls, with 1 and 2 workers, 3 processes per side and worker count.

use std::process::Command;
use std::time::Instant;

use pyo3::prelude::*;
use rayon::prelude::*;

const CHILD: &str = "--one-side";

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let value = |flag: &str, default: usize| {
        args.iter()
            .position(|arg| arg == flag)
            .and_then(|at| args.get(at + 1)?.parse().ok())
            .unwrap_or(default)
    };
    let calls = value("--calls", 100_000);
    if let Some(at) = args.iter().position(|arg| arg == CHILD) {
        let side = &args[at + 1];
        let workers = value("--workers", 1);
        println!("{}", one_side(side, workers, calls));
        return;
    }
    let runs = value("--runs", 3);
    let python = gilguard_version();
    println!(
        "CPython {python}, {calls} calls of f(x) = x + 1 from a rayon pool, {runs} processes each"
    );
    println!(
        "| workers | gilguard `WithGil` + `python()` | pyo3 `Python::attach` | pyo3 / gilguard |"
    );
    println!("|---|---|---|---|");
    for workers in [1, 2] {
        let median = |side: &str| {
            let mut times: Vec<f64> = (0..runs).map(|_| child(side, workers, calls)).collect();
            times.sort_by(f64::total_cmp);
            times[times.len() / 2]
        };
        let (ours, theirs) = (median("gilguard"), median("pyo3"));
        println!(
            "| {workers} | {ours:.2} µs | {theirs:.2} µs | {:.1}x |",
            theirs / ours
        );
    }
}

/// Runs one side in a new process; the median microseconds per call it printed.
fn child(side: &str, workers: usize, calls: usize) -> f64 {
    let output = Command::new(std::env::current_exe().expect("the bench binary"))
        .args([
            CHILD,
            side,
            "--workers",
            &workers.to_string(),
            "--calls",
            &calls.to_string(),
        ])
        .output()
        .expect("the bench starts itself again");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout)
        .trim()
        .parse()
        .expect("microseconds per call")
}

/// Microseconds per call of `f` on `workers` rayon threads, attached as `side` says.
fn one_side(side: &str, workers: usize, calls: usize) -> f64 {
    gilguard::initialize().expect("Python starts");
    let f: Py<PyAny> = gilguard::with_gil(|| {
        // SAFETY: attached to the main interpreter (`with_gil`), for the closure's length.
        let py = unsafe { Python::assume_attached() };
        py.eval(c"lambda x: x + 1", None, None).expect("f").unbind()
    });
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(workers)
        .build()
        .expect("a rayon pool");
    let call = |x: usize| -> usize {
        match side {
            "gilguard" => {
                let _gil = gilguard::WithGil::acquire();
                // SAFETY: attached to the main interpreter while `_gil` lives, which the token
                // does not outlive (the `pyo3` feature's `WithGil::python` does this safely;
                // the benches build without the feature, which would change other benches).
                let py = unsafe { Python::assume_attached() };
                f.call1(py, (x,)).and_then(|y| y.extract(py)).expect("f(x)")
            }
            _ => Python::attach(|py| f.call1(py, (x,)).and_then(|y| y.extract(py)).expect("f(x)")),
        }
    };
    // A warm-up pass: rayon's threads start, and gilguard's keep their thread state.
    let check: usize = pool.install(|| (0..calls / 10).into_par_iter().map(call).sum());
    assert_eq!(check, (1..=calls / 10).sum::<usize>());
    let started = Instant::now();
    let total: usize = pool.install(|| (0..calls).into_par_iter().map(call).sum());
    let elapsed = started.elapsed();
    assert_eq!(total, (1..=calls).sum::<usize>());
    elapsed.as_secs_f64() * 1e6 / calls as f64
}

/// The CPython version the bench runs on.
fn gilguard_version() -> String {
    gilguard::initialize().expect("Python starts");
    gilguard::with_gil(|| {
        // SAFETY: attached (`with_gil`); `Py_GetVersion` returns a static C string.
        let version = unsafe { std::ffi::CStr::from_ptr(pyo3_ffi::Py_GetVersion()) };
        let version = version.to_string_lossy();
        version.split_whitespace().next().unwrap_or("?").to_owned()
    })
}
