//! [`InterpreterConfig`]: the settings of a new sub-interpreter (`PyInterpreterConfig`).

use crate::error::GilError;
#[cfg(Py_3_12)]
use crate::raw::ffi;

/// How a new [`SubInterpreter`](crate::SubInterpreter) is set up: CPython's
/// `PyInterpreterConfig` (3.12+), checked before CPython sees it.
///
/// Two starting points cover the common cases:
///
/// * [`InterpreterConfig::legacy`]: what `Py_NewInterpreter` has always created. It shares
///   the main interpreter's GIL and memory allocator and allows everything. Available on
///   every supported CPython version.
/// * [`InterpreterConfig::isolated`]: an interpreter with **its own GIL** (PEP 684), its
///   own allocator, and only extension modules that declare support for that. Python code
///   in two such interpreters runs truly in parallel. CPython 3.12+.
///
/// Every setting can then be changed with the builder methods; the rules CPython documents
/// between them are checked when the interpreter is created.
///
/// It is a small `Copy` value, passed and returned by value: the builder methods are
/// `const fn`s that take `self`, so a configuration can be a `const`, and
/// [`SubInterpreter::with_config`](crate::SubInterpreter::with_config) takes it by value,
/// keeping nothing of the caller's. Its fields are private, so settings CPython adds later
/// can arrive as new builder methods without breaking code that uses it.
///
/// # Examples
///
/// ```
/// use gilguard::InterpreterConfig;
///
/// let config = InterpreterConfig::isolated().allow_threads(false);
/// assert!(config.has_own_gil());
/// // Sharing the main allocator while owning a GIL is refused before CPython sees it.
/// assert!(config.use_main_obmalloc(true).check().is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct InterpreterConfig {
    pub(crate) own_gil: bool,
    pub(crate) use_main_obmalloc: bool,
    pub(crate) allow_fork: bool,
    pub(crate) allow_exec: bool,
    pub(crate) allow_threads: bool,
    pub(crate) allow_daemon_threads: bool,
    pub(crate) check_multi_interp_extensions: bool,
}

impl InterpreterConfig {
    /// The settings of `Py_NewInterpreter` (`_PyInterpreterConfig_LEGACY_INIT`): shared GIL,
    /// shared allocator, fork, exec, threads and daemon threads allowed, single-phase
    /// extension modules allowed (except on free-threaded builds, which refuse them in every
    /// sub-interpreter).
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(!gilguard::InterpreterConfig::legacy().has_own_gil());
    /// ```
    pub const fn legacy() -> InterpreterConfig {
        InterpreterConfig {
            own_gil: false,
            use_main_obmalloc: true,
            allow_fork: true,
            allow_exec: true,
            allow_threads: true,
            allow_daemon_threads: true,
            // Free-threaded builds refuse single-phase modules in every sub-interpreter.
            check_multi_interp_extensions: cfg!(Py_GIL_DISABLED),
        }
    }

    /// The settings of `_PyInterpreterConfig_INIT`: own GIL, own allocator, threads allowed
    /// but no daemon threads, no fork and no exec, and only extension modules that declare
    /// per-interpreter GIL support. Creating it needs CPython 3.12+.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(gilguard::InterpreterConfig::isolated().has_own_gil());
    /// ```
    pub const fn isolated() -> InterpreterConfig {
        InterpreterConfig {
            own_gil: true,
            use_main_obmalloc: false,
            allow_fork: false,
            allow_exec: false,
            allow_threads: true,
            allow_daemon_threads: false,
            check_multi_interp_extensions: true,
        }
    }

    /// Whether the interpreter gets its own GIL (`PyInterpreterConfig_OWN_GIL`) instead of
    /// sharing the main interpreter's.
    ///
    /// # Examples
    ///
    /// ```
    /// let shared = gilguard::InterpreterConfig::isolated()
    ///     .own_gil(false)
    ///     .use_main_obmalloc(true);
    /// assert!(shared.check().is_ok());
    /// ```
    #[must_use]
    pub const fn own_gil(mut self, own: bool) -> InterpreterConfig {
        self.own_gil = own;
        self
    }

    /// Whether the interpreter shares the main interpreter's object allocator. Must be
    /// `false` with an own GIL; when `false`, `check_multi_interp_extensions` must be `true`.
    ///
    /// # Examples
    ///
    /// ```
    /// let config = gilguard::InterpreterConfig::legacy().use_main_obmalloc(false);
    /// // Own allocator, but single-phase extension modules still allowed: refused.
    /// assert!(config.check().is_err());
    /// ```
    #[must_use]
    pub const fn use_main_obmalloc(mut self, share: bool) -> InterpreterConfig {
        self.use_main_obmalloc = share;
        self
    }

    /// Whether `os.fork()` is allowed in the interpreter.
    ///
    /// # Examples
    ///
    /// ```
    /// let config = gilguard::InterpreterConfig::legacy().allow_fork(false);
    /// assert!(config.check().is_ok());
    /// ```
    #[must_use]
    pub const fn allow_fork(mut self, allow: bool) -> InterpreterConfig {
        self.allow_fork = allow;
        self
    }

    /// Whether the `exec` family (`os.execv`, ...) is allowed in the interpreter.
    ///
    /// # Examples
    ///
    /// ```
    /// let config = gilguard::InterpreterConfig::legacy().allow_exec(false);
    /// assert!(config.check().is_ok());
    /// ```
    #[must_use]
    pub const fn allow_exec(mut self, allow: bool) -> InterpreterConfig {
        self.allow_exec = allow;
        self
    }

    /// Whether the interpreter may start threads with `threading`.
    ///
    /// # Examples
    ///
    /// ```
    /// let config = gilguard::InterpreterConfig::isolated().allow_threads(false);
    /// assert!(config.check().is_ok());
    /// ```
    #[must_use]
    pub const fn allow_threads(mut self, allow: bool) -> InterpreterConfig {
        self.allow_threads = allow;
        self
    }

    /// Whether the interpreter may start daemon threads.
    ///
    /// # Examples
    ///
    /// ```
    /// let config = gilguard::InterpreterConfig::legacy().allow_daemon_threads(false);
    /// assert!(config.check().is_ok());
    /// ```
    #[must_use]
    pub const fn allow_daemon_threads(mut self, allow: bool) -> InterpreterConfig {
        self.allow_daemon_threads = allow;
        self
    }

    /// Whether importing an extension module that does not declare multi-interpreter support
    /// fails (instead of loading a single-phase module that would share state with other
    /// interpreters).
    ///
    /// # Examples
    ///
    /// ```
    /// let config = gilguard::InterpreterConfig::legacy().check_multi_interp_extensions(true);
    /// assert!(config.check().is_ok());
    /// ```
    #[must_use]
    pub const fn check_multi_interp_extensions(mut self, check: bool) -> InterpreterConfig {
        self.check_multi_interp_extensions = check;
        self
    }

    /// Whether this configuration gives the interpreter its own GIL.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(gilguard::InterpreterConfig::isolated().has_own_gil());
    /// ```
    #[must_use]
    pub const fn has_own_gil(&self) -> bool {
        self.own_gil
    }

    /// Checks the rules CPython documents between the settings.
    ///
    /// # Errors
    ///
    /// [`GilError::InvalidConfig`] naming the rule: an own GIL needs its own allocator, and
    /// an own allocator needs `check_multi_interp_extensions`.
    ///
    /// # Examples
    ///
    /// ```
    /// use gilguard::{GilError, InterpreterConfig};
    ///
    /// let config = InterpreterConfig::isolated().check_multi_interp_extensions(false);
    /// assert!(matches!(config.check(), Err(GilError::InvalidConfig(_))));
    /// ```
    pub const fn check(&self) -> Result<(), GilError> {
        if self.own_gil && self.use_main_obmalloc {
            return Err(GilError::InvalidConfig(
                "an interpreter with its own GIL cannot share the main object allocator \
                 (use_main_obmalloc must be false)",
            ));
        }
        if !self.use_main_obmalloc && !self.check_multi_interp_extensions {
            return Err(GilError::InvalidConfig(
                "an interpreter with its own object allocator cannot load single-phase \
                 extension modules (check_multi_interp_extensions must be true)",
            ));
        }
        Ok(())
    }

    /// Whether this is what `Py_NewInterpreter` creates, the only configuration CPython
    /// before 3.12 can create.
    pub(crate) fn is_legacy(&self) -> bool {
        *self == InterpreterConfig::legacy()
    }

    #[cfg(Py_3_12)]
    pub(crate) fn to_ffi(self) -> ffi::PyInterpreterConfig {
        ffi::PyInterpreterConfig {
            use_main_obmalloc: self.use_main_obmalloc.into(),
            allow_fork: self.allow_fork.into(),
            allow_exec: self.allow_exec.into(),
            allow_threads: self.allow_threads.into(),
            allow_daemon_threads: self.allow_daemon_threads.into(),
            check_multi_interp_extensions: self.check_multi_interp_extensions.into(),
            gil: if self.own_gil {
                ffi::PyInterpreterConfig_OWN_GIL
            } else {
                ffi::PyInterpreterConfig_SHARED_GIL
            },
        }
    }
}

impl Default for InterpreterConfig {
    /// [`InterpreterConfig::legacy`], the one configuration every version can create.
    fn default() -> Self {
        InterpreterConfig::legacy()
    }
}

static_assertions::assert_impl_all!(InterpreterConfig: Send, Sync, Copy, Eq, core::hash::Hash);
