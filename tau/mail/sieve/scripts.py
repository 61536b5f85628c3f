"""A user's Sieve scripts, as ManageSieve and the REST API change them (checks, then the store).

A script is compiled before it is stored (PUTSCRIPT refuses what CHECKSCRIPT would); names are
1-128 characters without control characters (RFC 5804 §1.6); a user has at most ``MAX_SCRIPTS``
scripts of at most ``MAX_SCRIPT_BYTES`` each.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tau.mail.sieve import store
from tau.mail.sieve.compile import MAX_SCRIPT_BYTES, ScriptError, compile_script
from tau.mail.sieve.store import Script, SieveStoreError

if TYPE_CHECKING:
    from tau.registry import Registry

MAX_SCRIPTS = 32
MAX_NAME = 128


def check_name(name: str) -> None:
    if not name or len(name) > MAX_NAME or any(ord(c) < 0x20 or 0x7F <= ord(c) < 0xA0 for c in name):
        raise SieveStoreError("badname", "a script name is 1-128 characters without control characters")


class Scripts:
    """The operations on ``user``'s scripts; each raises ScriptError or SieveStoreError."""

    def __init__(self, registry: Registry) -> None:
        self._registry = registry
        self._db = registry.db

    def check(self, content: str) -> None:
        compile_script(content)

    async def space_error(self, user: str, name: str, size: int) -> str | None:
        """Why ``size`` more bytes under ``name`` would not fit (HAVESPACE, PUTSCRIPT), or None."""
        if size > MAX_SCRIPT_BYTES:
            return f"a script may have at most {MAX_SCRIPT_BYTES} bytes"
        count, _ = await self._db.run("sieve_space", store.space_used, user, name, readonly=True)
        if count >= MAX_SCRIPTS:
            return f"at most {MAX_SCRIPTS} scripts per user"
        return None

    async def put(self, user: str, name: str, content: str, activate: bool = False) -> None:
        check_name(name)
        problem = await self.space_error(user, name, len(content.encode("utf-8")))
        if problem is not None:
            raise SieveStoreError("quota", problem)
        await self._registry.run_in_thread(compile_script, content)
        await self._db.run("sieve_put", store.put_script, self._registry.keyring, user, name, content, activate)

    async def list(self, user: str) -> list[tuple[str, bool]]:
        return await self._db.run("sieve_list", store.list_scripts, user, readonly=True)

    async def get(self, user: str, name: str) -> Script:
        script = await self._db.run("sieve_get", store.get_script, self._registry.keyring, user, name, readonly=True)
        if script is None:
            raise SieveStoreError("nonexistent", f"no script named {name}")
        return script

    async def active(self, user: str) -> Script | None:
        return await self._db.run("sieve_active", store.active_script, self._registry.keyring, user, readonly=True)

    async def set_active(self, user: str, name: str) -> None:
        await self._db.run("sieve_setactive", store.set_active, user, name)

    async def delete(self, user: str, name: str) -> None:
        await self._db.run("sieve_delete", store.delete_script, user, name)

    async def rename(self, user: str, old: str, new: str) -> None:
        check_name(new)
        await self._db.run("sieve_rename", store.rename_script, user, old, new)


__all__ = ["Scripts", "ScriptError", "SieveStoreError", "check_name"]
