//! Python code that this crate runs itself (a new sub-interpreter's `site` import, the
//! finalizers a thread state's clearing runs, an import hook met while a hook is installed)
//! may call straight back into Rust on the same thread. The callback must find the thread
//! attached (`is_attached`), may nest guards and switch interpreters with `with_gil`, and
//! nothing may wait for itself. Before the fix each case hung on 3.9–3.11 (or, for the
//! import hook, on every version), so each runs in a child process with a time limit.
//!
//! The callbacks are a built-in module, `_gilguard_callbacks`, added with
//! `PyImport_AppendInittab` before the child starts Python, so that every interpreter can
//! import it.

mod common;

use std::ptr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use gilguard::{GilError, Interpreter, SubInterpreter, WithGil, is_attached, with_gil};

/// What `_gilguard_callbacks.callback()` runs; set by each child test.
static CALLBACK: Mutex<fn()> = Mutex::new(|| {});
/// How many callbacks ran to their end.
static COMPLETED: AtomicUsize = AtomicUsize::new(0);

unsafe extern "C" fn callback(
    _module: *mut pyo3_ffi::PyObject,
    _args: *mut pyo3_ffi::PyObject,
) -> *mut pyo3_ffi::PyObject {
    let run = *CALLBACK.lock().unwrap();
    // A panic must not cross the C frame: report it and abort the child, which fails it.
    if std::panic::catch_unwind(run).is_err() {
        std::process::abort();
    }
    COMPLETED.fetch_add(1, Ordering::SeqCst);
    common::none()
}

static mut METHODS: [pyo3_ffi::PyMethodDef; 2] = [
    pyo3_ffi::PyMethodDef {
        ml_name: c"callback".as_ptr(),
        ml_meth: pyo3_ffi::PyMethodDefPointer {
            PyCFunction: callback,
        },
        ml_flags: pyo3_ffi::METH_NOARGS,
        ml_doc: ptr::null(),
    },
    pyo3_ffi::PyMethodDef::zeroed(),
];

static mut MODULE: pyo3_ffi::PyModuleDef = pyo3_ffi::PyModuleDef {
    m_base: pyo3_ffi::PyModuleDef_HEAD_INIT,
    m_name: c"_gilguard_callbacks".as_ptr(),
    m_doc: ptr::null(),
    m_size: -1,
    m_methods: ptr::null_mut(),
    m_slots: ptr::null_mut(),
    m_traverse: None,
    m_clear: None,
    m_free: None,
};

unsafe extern "C" fn init_module() -> *mut pyo3_ffi::PyObject {
    // SAFETY: called by CPython's import, attached; the definitions are statics that live
    // as long as the process.
    unsafe {
        MODULE.m_methods = (&raw mut METHODS).cast();
        pyo3_ffi::PyModule_Create(&raw mut MODULE)
    }
}

/// Makes `_gilguard_callbacks` importable in every interpreter, running `run`, and points
/// `PYTHONPATH` at a fresh directory holding `sitecustomize` (if given). Call before Python
/// starts, in a child process.
fn prepare(run: fn(), sitecustomize: Option<&str>) {
    *CALLBACK.lock().unwrap() = run;
    // SAFETY: before initialization, as `PyImport_AppendInittab` requires.
    let added = unsafe {
        pyo3_ffi::PyImport_AppendInittab(c"_gilguard_callbacks".as_ptr(), Some(init_module))
    };
    assert_eq!(added, 0);
    if let Some(code) = sitecustomize {
        let dir = std::env::temp_dir().join(format!("gilguard-site-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("sitecustomize.py"), code).unwrap();
        // SAFETY: this child process runs this one test and has not started Python, so no
        // other thread reads the environment meanwhile.
        unsafe { std::env::set_var("PYTHONPATH", &dir) };
    }
}

/// The interpreter id this thread is attached to.
fn here() -> i64 {
    Interpreter::current().expect("attached").id()
}

/// What every callback checks: the thread is attached, a guard nests on the interpreter it
/// is in, and `with_gil` reaches the main interpreter and comes back.
fn attached_and_nesting() {
    assert!(
        is_attached(),
        "a callback from Python found the thread detached"
    );
    let inside = here();
    let main = with_gil(|| {
        let _nested = WithGil::acquire();
        here()
    });
    assert_eq!(main, 0);
    assert_eq!(here(), inside, "with_gil did not put back the interpreter");
    match WithGil::try_acquire() {
        Ok(_nested) => assert_eq!(inside, 0),
        Err(error) => assert_eq!((error, inside != 0), (GilError::AttachedElsewhere, true)),
    }
}

const LIMIT: Duration = Duration::from_secs(30);

/// `SubInterpreter::new` runs the new interpreter's `site` import: a `sitecustomize`
/// calling back into Rust runs attached to a thread state that CPython made inside the call.
#[test]
fn a_new_interpreters_site_import_may_call_back() {
    common::run_child_within("child_site_import_calls_back", LIMIT);
}

#[test]
#[ignore = "runs in a child process, started by a_new_interpreters_site_import_may_call_back"]
fn child_site_import_calls_back() {
    prepare(
        attached_and_nesting,
        Some("import _gilguard_callbacks\n_gilguard_callbacks.callback()\n"),
    );
    common::python(); // the main interpreter's `site` calls back once
    assert_eq!(COMPLETED.load(Ordering::SeqCst), 1);
    std::thread::spawn(|| {
        let interpreter = SubInterpreter::new().expect("created");
        assert!(!is_attached());
        assert_eq!(COMPLETED.load(Ordering::SeqCst), 2);
        with_gil(|| drop(SubInterpreter::new().expect("created from an attached thread")));
        assert_eq!(COMPLETED.load(Ordering::SeqCst), 3);
        drop(interpreter);
    })
    .join()
    .unwrap();
}

/// Dropping a `ThreadStateHandle` clears its thread state, which runs the finalizers of
/// what it holds: here a `threading.local` value whose `__del__` calls back.
#[test]
fn a_handles_finalizers_may_call_back() {
    common::run_child_within("child_handle_finalizer_calls_back", LIMIT);
}

#[test]
#[ignore = "runs in a child process, started by a_handles_finalizers_may_call_back"]
fn child_handle_finalizer_calls_back() {
    prepare(attached_and_nesting, None);
    common::python();
    let interpreter = SubInterpreter::new().expect("created");
    let keep_a_finalizer = "
import threading, _gilguard_callbacks
class CallsBack:
    def __del__(self):
        _gilguard_callbacks.callback()
local = threading.local()
local.value = CallsBack()
";
    for attached_before in [false, true] {
        let before = COMPLETED.load(Ordering::SeqCst);
        let set_up = || {
            let handle = interpreter.thread_state().expect("a handle");
            handle.run(|| common::run(keep_a_finalizer)).unwrap();
            drop(handle); // clears the thread state: the value's `__del__` runs
        };
        std::thread::scope(|scope| {
            scope.spawn(|| {
                if attached_before {
                    with_gil(set_up);
                } else {
                    set_up();
                }
                assert!(!is_attached());
            });
        });
        assert_eq!(COMPLETED.load(Ordering::SeqCst), before + 1);
    }
}

/// Installing the crate's `atexit` hook imports `atexit`; with `site` off that import runs
/// the import machinery, and a finder of the host's calls back into Rust, which needs the
/// same hook on the same thread.
#[test]
fn an_import_hook_met_while_installing_a_hook_may_call_back() {
    common::run_child_within("child_import_hook_calls_back", LIMIT);
}

#[test]
#[ignore = "runs in a child process, started by an_import_hook_met_while_installing_a_hook_may_call_back"]
fn child_import_hook_calls_back() {
    prepare(
        || {
            attached_and_nesting();
            // Needs the runtime watched and its hooks installed: the same hook, re-entered.
            // SAFETY: the main interpreter outlives the handle.
            let handle = unsafe { Interpreter::main().unwrap().thread_state() }.unwrap();
            drop(handle);
        },
        None,
    );
    // A host that starts Python itself, without `site`, and installs an import hook.
    // SAFETY: the runtime is started once, then detached; the config is released.
    unsafe {
        let mut config = std::mem::MaybeUninit::<pyo3_ffi::PyConfig>::uninit();
        pyo3_ffi::PyConfig_InitPythonConfig(config.as_mut_ptr());
        let mut config = config.assume_init();
        config.site_import = 0;
        let status = pyo3_ffi::Py_InitializeFromConfig(&config);
        assert_eq!(pyo3_ffi::PyStatus_Exception(status), 0);
        pyo3_ffi::PyConfig_Clear(&mut config);
        let installed = pyo3_ffi::PyRun_SimpleString(
            c"
import sys
assert 'atexit' not in sys.modules, 'atexit is imported already: the hook would not run'
class CallsBack:
    def find_spec(self, name, path=None, target=None):
        if name == 'atexit':
            sys.meta_path.remove(self)
            import _gilguard_callbacks
            _gilguard_callbacks.callback()
        return None
sys.meta_path.insert(0, CallsBack())
"
            .as_ptr(),
        );
        assert_eq!(installed, 0);
        pyo3_ffi::PyEval_SaveThread();
    }
    // A thread Python did not create: its first attach installs the hooks.
    std::thread::spawn(|| with_gil(|| assert!(is_attached())))
        .join()
        .unwrap();
    assert_eq!(COMPLETED.load(Ordering::SeqCst), 1);
}
