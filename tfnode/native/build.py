"""Compiles a kernel's C++ source into a TensorFlow op library, once per
machine, and loads it.

The library is built on first use with the C++ compiler found on the
machine (`$CXX`, else `c++`, `g++` or `clang++`) and TensorFlow's own
compile and link flags (`tf.sysconfig`), for this machine's CPU
(`-march=native` on x86-64), the way `torch.utils.cpp_extension.load` builds
PyTorch's. It is cached under `$TFNODE_CACHE_DIR` (default
`~/.cache/tfnode`), in `kernels/`, named by a hash of everything that shapes
the binary (the source, TensorFlow's version and flags, the compiler's
command, the CPU), so a new TensorFlow, compiler or CPU builds a new one.
A file lock makes concurrent processes (test workers, the replicas of a
multi-worker job on one host) build it once; the others wait and load it.

Where no library can be had (no compiler, a failed build, a platform
without `fcntl`, or `TFNODE_NATIVE_KERNELS=0`) `load` returns `None`, logs
why once, and callers fall back to their portable implementation. A failed
build is remembered in the cache, so that later processes do not spend the
build time again; deleting the cache directory retries.
"""

import functools
import hashlib
import logging
import os
import pathlib
import platform
import shutil
import subprocess
import tempfile

import tensorflow as tf

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX: no file locks
    fcntl = None

__all__ = ["cache_dir", "enabled", "library_path", "load"]

# kernel name -> the module `tf.load_op_library` gave for its library.
# TensorFlow registers ops once per process: loading the library again, or
# another build of it, gives a module without them.
_LOADED = {}

_LOG = logging.getLogger(__name__)
_SOURCES = pathlib.Path(__file__).parent
_COMPILERS = ("c++", "g++", "clang++")
# The compiler's warnings on TensorFlow's headers are not ours to fix.
_FLAGS = ("-std=c++17", "-shared", "-fPIC", "-O3", "-w")
# A build takes about 15 s on 2 cores; one that takes this long has failed.
_BUILD_TIMEOUT_S = 600


def enabled():
    """Whether native kernels may be used: `TFNODE_NATIVE_KERNELS` is not
    `0` (or `false`, `no`, `off`)."""
    value = os.environ.get("TFNODE_NATIVE_KERNELS", "1").strip().lower()
    return value not in ("0", "false", "no", "off")


def cache_dir():
    """The directory compiled libraries are kept in."""
    root = os.environ.get("TFNODE_CACHE_DIR") or os.path.join(
        os.path.expanduser("~"), ".cache", "tfnode"
    )
    return pathlib.Path(root) / "kernels"


def _compiler():
    """The C++ compiler's path, or `None`."""
    candidates = [os.environ["CXX"]] if os.environ.get("CXX") else _COMPILERS
    for name in candidates:
        path = shutil.which(name)
        if path:
            return path
    return None


def _cpu():
    """This machine's CPU model, so that `-march=native` code built on one
    CPU is never loaded on another (a cache on a shared home directory)."""
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith(("model name", "flags", "Features")):
                    return line
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _command(compiler, source, output):
    """The compiler's command line that builds `source` into `output`."""
    x86 = platform.machine() in ("x86_64", "AMD64")
    tuning = ["-march=native"] if x86 else []
    return [
        compiler,
        *_FLAGS,
        *tuning,
        str(source),
        "-o",
        str(output),
        *tf.sysconfig.get_compile_flags(),
        *tf.sysconfig.get_link_flags(),
    ]


def library_path(name, compiler):
    """Where the library built from `<name>.cc` by `compiler` is cached."""
    source = _SOURCES / f"{name}.cc"
    key = hashlib.sha256()
    key.update(source.read_bytes())
    key.update(tf.__version__.encode())
    # The command without the paths: one build serves every checkout.
    key.update(repr(_command(compiler, "SOURCE", "LIBRARY")).encode())
    key.update(_cpu().encode())
    return cache_dir() / f"{name}-{key.hexdigest()[:16]}.so"


def _build(compiler, source, library):
    """Compiles `source` into `library` (written whole, then renamed into
    place); returns the compiler's error output, or `None` on success."""
    with tempfile.TemporaryDirectory(dir=library.parent) as scratch:
        output = pathlib.Path(scratch) / library.name
        command = _command(compiler, source, output)
        try:
            done = subprocess.run(
                command,
                capture_output=True,
                text=True,
                timeout=_BUILD_TIMEOUT_S,
            )
        except subprocess.TimeoutExpired:
            return f"{' '.join(command)}\ntook over {_BUILD_TIMEOUT_S} s"
        if done.returncode:
            return f"{' '.join(command)}\n{done.stderr[-4000:]}"
        os.replace(output, library)
    return None


def _built(name, compiler):
    """The path of the library built from `<name>.cc`, building it under a
    lock if no process has yet; raises `RuntimeError` on a failed build."""
    library = library_path(name, compiler)
    failure = library.with_suffix(".failed")
    library.parent.mkdir(parents=True, exist_ok=True)
    with open(library.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not library.exists() and not failure.exists():
            _LOG.info("tfnode: compiling the native kernel %s (once)", name)
            error = _build(compiler, _SOURCES / f"{name}.cc", library)
            if error is not None:
                failure.write_text(error)
    if failure.exists():
        raise RuntimeError(
            f"building {name}.cc failed ({failure} holds the compiler's "
            f"output; delete it to retry):\n{failure.read_text()[-1500:]}"
        )
    return library


def _unavailable(name, reason):
    """Logs why the native `name` kernel cannot be had; returns `None`."""
    _LOG.warning(
        "tfnode: the native %s kernel is unavailable (%s); using the "
        "portable implementation.",
        name,
        reason,
    )


@functools.cache
def load(name):
    """The op library built from `tfnode/native/<name>.cc` (the module
    `tf.load_op_library` returns), or `None` where it cannot be had; the
    reason is logged once (unless `TFNODE_NATIVE_KERNELS` turned them off).
    """
    if not enabled():
        return None
    if fcntl is None:
        return _unavailable(name, "no file locks on this platform")
    compiler = _compiler()
    if compiler is None:
        compilers = ", ".join(_COMPILERS)
        return _unavailable(name, f"no C++ compiler: $CXX, {compilers}")
    try:
        library = _built(name, compiler)
        if name not in _LOADED:
            _LOADED[name] = tf.load_op_library(str(library))
        return _LOADED[name]
    except (OSError, RuntimeError, tf.errors.NotFoundError) as error:
        return _unavailable(name, error)
