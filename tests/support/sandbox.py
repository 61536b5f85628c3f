"""Run a command under what tau.service's sandbox does in the kernel, for machines where systemd
cannot start the unit (a container without systemd as PID 1): ``python -m tests.support.sandbox
CMD...`` sets no_new_privs, MemoryDenyWriteExecute (prctl PR_SET_MDWE, Linux 6.3+) and the unit's
SystemCallFilter (``@system-service`` minus ``@privileged @resources``, refused with EPERM; the
groups as this machine's ``systemd-analyze syscall-filter`` lists them), then execs CMD.

The file-system part (ProtectSystem=strict, PrivateTmp, ProtectHome, ProtectProc/ProcSubset) and the
user and capabilities are set up around it by the test with ``unshare``, ``mount`` and ``setpriv``.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import subprocess
import sys

PR_SET_NO_NEW_PRIVS = 38
PR_SET_MDWE = 65
PR_MDWE_REFUSE_EXEC_GAIN = 1
SCMP_ACT_ALLOW = 0x7FFF0000
EPERM = 1


def syscall_groups() -> dict[str, list[str]]:
    """``@group`` -> its entries (syscall names and nested ``@groups``)."""
    text = subprocess.run(["systemd-analyze", "syscall-filter", "--no-pager"], capture_output=True, text=True,
                          check=True).stdout
    groups: dict[str, list[str]] = {}
    current = ""
    for line in text.splitlines():
        if line.startswith("@"):
            current = line.strip()
            groups[current] = []
        elif line.strip() and not line.strip().startswith("#") and current:
            groups[current].append(line.strip())
    return groups


def expand(name: str, groups: dict[str, list[str]]) -> set[str]:
    if not name.startswith("@"):
        return {name}
    out: set[str] = set()
    for entry in groups.get(name, []):
        out |= expand(entry, groups)
    return out


def allowed_syscalls(allow: list[str], deny: list[str]) -> set[str]:
    groups = syscall_groups()
    names = set().union(*(expand(g, groups) for g in allow))
    return names - set().union(*(expand(g, groups) for g in deny))


def apply(allow: list[str], deny: list[str]) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "PR_SET_NO_NEW_PRIVS")
    if libc.prctl(PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "PR_SET_MDWE (MemoryDenyWriteExecute needs Linux 6.3)")
    seccomp = ctypes.CDLL(ctypes.util.find_library("seccomp") or "libseccomp.so.2", use_errno=True)
    seccomp.seccomp_init.restype = ctypes.c_void_p
    seccomp.seccomp_rule_add.argtypes = [ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int, ctypes.c_uint]
    seccomp.seccomp_load.argtypes = [ctypes.c_void_p]
    ctx = seccomp.seccomp_init(0x00050000 | EPERM)  # SCMP_ACT_ERRNO(EPERM): SystemCallErrorNumber=EPERM
    for name in sorted(allowed_syscalls(allow, deny)):
        number = seccomp.seccomp_syscall_resolve_name(name.encode())
        if number >= 0:  # names this architecture does not have are skipped, as systemd does
            seccomp.seccomp_rule_add(ctx, SCMP_ACT_ALLOW, number, 0)
    if seccomp.seccomp_load(ctx) != 0:
        raise OSError(ctypes.get_errno(), "seccomp_load")


def main(argv: list[str]) -> None:
    apply(["@system-service"], ["@privileged", "@resources"])
    os.execv(argv[0], argv)


if __name__ == "__main__":
    main(sys.argv[1:])
