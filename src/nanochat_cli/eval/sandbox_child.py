"""The first code that runs inside the HumanEval sandbox, before the candidate's: lock the process down,
run the program as `__main__`, and report on a socket the caller made whether it reached its end.

Started by `eval/sandbox.py` as `python -I -B -c <this file>`, never imported: standard library only,
settings from argv (the environment is scrubbed). Each step asked for is fatal when impossible (exit 125,
one line on stderr), so no candidate runs with less protection than the caller believes:
  --private-tmp  (own mount namespace) every mount read-only, then a private 64 MiB tmpfs on /tmp
  --drop-caps    (root of an own user namespace) no capabilities, bounding set empty
  --as-nobody    (real root) bounding set empty, then uid/gid 65534
  always         no_new_privs; rlimits on address space, CPU, file size, processes, core files
The success marker: the caller writes a random nonce into the socket before we start; this file sends
"R" once set up, and reads the nonce and writes it back only after the program *returned*. `os._exit(0)`,
`sys.exit(0)` or a crash never get there. The nonce is never in this process while the program runs, so
no output can fake it; a program that deliberately reads the socket itself could (any code here can do
what this file does): the marker stops programs that end early, it does not stop impostors.
Costs ~3 ms (importing ctypes) over a bare interpreter.
"""

import os
import sys

SETUP_FAILED = 125  # like env(1)/timeout(1): the tool failed, not the program

# <linux/mount.h>, <linux/prctl.h>, <linux/capability.h>: stable kernel ABI values.
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC, MS_REMOUNT, MS_BIND = 1, 2, 4, 8, 32, 4096
MS_NOATIME, MS_NODIRATIME, MS_RELATIME, MS_STRICTATIME = 1024, 2048, 1 << 21, 1 << 24
MOUNT_ATTR_RDONLY, AT_FDCWD, AT_RECURSIVE, SYS_MOUNT_SETATTR = 1, -100, 0x8000, 442  # 442 on every arch
PR_CAPBSET_DROP, PR_SET_NO_NEW_PRIVS = 24, 38
CAPABILITY_VERSION_3 = 0x20080522
TMP_BYTES = 64 << 20
NOBODY = 65534


def fail(what: str) -> None:
    sys.stderr.write(f"nanochat-sandbox: setup failed: {what}\n")
    sys.stderr.flush()
    os._exit(SETUP_FAILED)


def parse(argv: list[str]) -> dict:
    opts = {"private_tmp": False, "drop_caps": False, "as_nobody": False}
    it = iter(argv)
    for arg in it:
        if arg in ("--private-tmp", "--drop-caps", "--as-nobody"):
            opts[arg[2:].replace("-", "_")] = True
        elif arg in ("--marker-fd", "--cpu-seconds", "--nproc"):
            opts[arg[2:].replace("-", "_")] = int(next(it))
        elif arg == "--workdir":
            opts["workdir"] = next(it)
        else:
            fail(f"unknown argument {arg!r}")
    return opts


def libc():
    import ctypes

    lib = ctypes.CDLL(None, use_errno=True)
    lib.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p]
    lib.syscall.restype = ctypes.c_long
    lib.prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
    return ctypes, lib


def _errno(ctypes) -> str:
    return os.strerror(ctypes.get_errno())


def read_only_everywhere(ctypes, lib) -> None:
    """Make every mount of this (private) mount namespace read-only: one mount_setattr(2) on kernels
    ≥ 5.12; older kernels remount each mount, keeping the flags a user namespace may not clear."""

    class MountAttr(ctypes.Structure):
        _fields_ = [("attr_set", ctypes.c_uint64), ("attr_clr", ctypes.c_uint64),
                    ("propagation", ctypes.c_uint64), ("userns_fd", ctypes.c_uint64)]

    attr = MountAttr(MOUNT_ATTR_RDONLY, 0, 0, 0)
    long = ctypes.c_long  # syscall(2) is variadic: pass full-width integers, not C ints
    if lib.syscall(long(SYS_MOUNT_SETATTR), long(AT_FDCWD), b"/", long(AT_RECURSIVE), ctypes.byref(attr),
                   long(ctypes.sizeof(attr))) == 0:
        return
    if ctypes.get_errno() != 38:  # ENOSYS: an old kernel, remount one by one below
        fail(f"mount_setattr(/, read-only): {_errno(ctypes)}")
    flags = {"nosuid": MS_NOSUID, "nodev": MS_NODEV, "noexec": MS_NOEXEC, "noatime": MS_NOATIME,
             "nodiratime": MS_NODIRATIME, "relatime": MS_RELATIME, "strictatime": MS_STRICTATIME}
    with open("/proc/self/mountinfo", encoding="utf-8") as f:
        mounts = [line.split() for line in f]
    for fields in mounts:  # mountinfo(5): field 4 is the mount point (octal escapes), 5 its options
        target = fields[4].encode().decode("unicode_escape").encode("latin-1")
        keep = sum(flags.get(o, 0) for o in fields[5].split(","))
        if lib.mount(None, target, None, MS_REMOUNT | MS_BIND | MS_RDONLY | keep, None) != 0:
            if ctypes.get_errno() in (2, 13):  # ENOENT, EACCES: a path this process cannot reach at all
                continue
            fail(f"remount {target.decode(errors='replace')} read-only: {_errno(ctypes)}")


def private_tmp(ctypes, lib) -> None:
    read_only_everywhere(ctypes, lib)
    data = f"size={TMP_BYTES},mode=1777".encode()
    if lib.mount(b"nanochat-sandbox", b"/tmp", b"tmpfs", MS_NOSUID | MS_NODEV, data) != 0:
        fail(f"mount a tmpfs on /tmp: {_errno(ctypes)}")


def drop_bounding_set(ctypes, lib) -> None:
    """No exec (a setuid or file-capability binary) can bring back a capability outside this set."""
    with open("/proc/sys/kernel/cap_last_cap", encoding="ascii") as f:
        last = int(f.read())
    for cap in range(last + 1):
        if lib.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0:
            fail(f"drop capability {cap} from the bounding set: {_errno(ctypes)}")


def drop_capabilities(ctypes, lib) -> None:
    """Root of a user namespace holds every capability *inside* it (mount, umount the new /proc to see the
    host's, setuid): give them all up."""

    class Header(ctypes.Structure):
        _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]

    class Data(ctypes.Structure):
        _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32),
                    ("inheritable", ctypes.c_uint32)]

    if lib.capset(ctypes.byref(Header(CAPABILITY_VERSION_3, 0)), (Data * 2)()) != 0:
        fail(f"capset(none): {_errno(ctypes)}")


def become_nobody() -> None:
    """From root to uid/gid 65534 with no supplementary groups (the kernel clears every capability).
    Imports happen lazily and `nobody` may not be allowed to reach the interpreter's files (a pyenv under
    /root, mode 700), so each sys.path directory is opened first and imported through /proc/self/fd/N,
    which reaches that directory and nothing around it."""
    paths = []
    for entry in sys.path:
        try:
            paths.append(f"/proc/self/fd/{os.open(entry or '.', os.O_PATH | os.O_DIRECTORY)}")
        except OSError:
            continue
    sys.path[:] = paths
    sys.path_importer_cache.clear()
    os.setgroups([])
    os.setresgid(NOBODY, NOBODY, NOBODY)
    os.setresuid(NOBODY, NOBODY, NOBODY)


def limit(cpu_seconds: int, nproc: int) -> None:
    import resource

    for what, value in ((resource.RLIMIT_AS, 1 << 30), (resource.RLIMIT_CPU, cpu_seconds),
                        (resource.RLIMIT_FSIZE, 10 << 20), (resource.RLIMIT_NPROC, nproc),
                        (resource.RLIMIT_CORE, 0)):
        try:
            resource.setrlimit(what, (value, value))
        except (ValueError, OSError) as e:
            fail(f"setrlimit {what}: {e}")


def main() -> None:
    opts = parse(sys.argv[1:])
    ctypes, lib = libc()
    if opts["private_tmp"]:
        private_tmp(ctypes, lib)
    workdir = opts.get("workdir", "/tmp")
    source = sys.stdin.buffer.read()
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    os.chdir(workdir)
    path = os.path.join(workdir, "candidate.py")
    with open(path, "wb") as f:
        f.write(source)
    if opts["drop_caps"] or opts["as_nobody"]:
        drop_bounding_set(ctypes, lib)
    if opts["drop_caps"]:
        drop_capabilities(ctypes, lib)
    if opts["as_nobody"]:
        become_nobody()  # leaving uid 0 clears the effective and permitted sets
    if lib.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:  # no setuid binary raises privileges again
        fail(f"no_new_privs: {_errno(ctypes)}")
    limit(opts["cpu_seconds"], opts["nproc"])
    marker = opts["marker_fd"]
    os.write(marker, b"R")  # set up: from here on, whatever happens is the program's doing
    try:
        code = compile(source, path, "exec")
    except SyntaxError:
        import traceback

        traceback.print_exc(limit=0)
        sys.stderr.flush()
        os._exit(1)
    run(code, path, marker)


def run(code, path: str, marker: int) -> None:
    import types

    module = types.ModuleType("__main__")
    module.__file__ = path
    module.__builtins__ = __builtins__
    sys.modules["__main__"] = module
    sys.argv = [path]
    try:
        exec(code, module.__dict__)
    except SystemExit as e:
        flush()
        sys.stderr.write(f"nanochat-sandbox: the program called exit({e.code!r}) before its end; not a pass\n")
        flush()
        os._exit(e.code if isinstance(e.code, int) and 0 < e.code < 256 else 1)
    except BaseException as e:  # noqa: BLE001 - the program's own error, shown as Python would
        import traceback

        flush()
        traceback.print_exception(type(e), e, e.__traceback__.tb_next)  # drop this file's frame
        flush()
        os._exit(1)
    flush()
    # The program returned: hand the caller's nonce back (it was never in this process before now).
    os.set_blocking(marker, False)  # the caller sent it before we started: there or gone, never late
    try:
        os.write(marker, os.read(marker, 64))
    except OSError:
        os._exit(1)
    os._exit(0)  # skip teardown: the program's threads and atexit hooks have nothing left to decide


def flush() -> None:
    for stream in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__):
        try:
            stream.flush()
        except Exception:  # noqa: BLE001 - a stream the program closed or replaced
            pass


if __name__ == "__main__":
    main()
