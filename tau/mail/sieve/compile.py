"""Sieve source → tau's compiled form (RFC 5228 §8 grammar, parsed by ``sievelib``).

``sievelib`` checks the grammar and the arguments of each command; this module turns its tree into
plain tuples the interpreter walks (``interpret.py``), unquotes strings (RFC 5228 §2.4.2), checks
``require`` against what tau implements (§3.2: an unknown extension is an error) and turns every
failure into ``ScriptError`` with the line and column. Compiled scripts are cached by their text,
so delivery parses a script once per process.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import Any

from sievelib import commands as sieve_commands
from sievelib.parser import Parser

from tau.mail.compose import valid_address

#: the extensions tau runs (SIEVE capability of ManageSieve, RFC 5804 §1.7)
EXTENSIONS = ("fileinto", "reject", "ereject", "envelope", "body", "imap4flags", "variables", "vacation",
              "date", "relational", "comparator-i;ascii-numeric", "copy")
MAX_SCRIPT_BYTES = 64 * 1024


class ScriptError(Exception):
    """A script tau will not run; ``line``/``column`` are 1-based (0 when not known). ``near``:
    the text the error is about, to find its position when the parser did not give one."""

    def __init__(self, message: str, line: int = 0, column: int = 0, near: str = "") -> None:
        where = f"line {line}, column {column}: " if line else ""
        super().__init__(where + message)
        self.line, self.column, self.text, self.message, self.near = line, column, where + message, message, near


def _located(error: ScriptError, source: str) -> ScriptError:
    """``error`` with the line and column of the first place ``error.near`` appears in ``source``."""
    at = source.find(error.near) if error.near else -1
    if at < 0 or error.line:
        return error
    line = source.count("\n", 0, at) + 1
    return ScriptError(error.message, line, at - (source.rfind("\n", 0, at) + 1) + 1)


class ErejectCommand(sieve_commands.RejectCommand):
    """RFC 5429 ``ereject``: sievelib knows ``reject`` only."""

    extension = "ereject"


sieve_commands.add_commands(ErejectCommand)
if '"i;ascii-numeric"' not in sieve_commands.comparator["extra_arg"]["values"]:   # RFC 4790 §9.1
    sieve_commands.comparator["extra_arg"]["values"].append('"i;ascii-numeric"')


@dataclass(frozen=True)
class Compiled:
    """A script ready to run: its commands, and whether ``${...}`` expands (``variables``)."""

    block: tuple[Any, ...]
    variables: bool
    requires: frozenset[str]


_ESCAPE = re.compile(r"\\(.)", re.S)


def unquote(token: str) -> str:
    """A quoted string or a ``text:`` multi-line string as its value (RFC 5228 §2.4.2)."""
    if token.startswith('"'):
        return _ESCAPE.sub(r"\1", token[1:-1])
    body = token.split("\n", 1)[1] if "\n" in token else ""
    body = re.sub(r"\r?\n\.\r?$", "", body)
    lines = [line[1:] if line.startswith("..") else line for line in body.split("\n")]
    return "\n".join(lines) + ("\n" if body else "")


def strings(value: Any) -> tuple[str, ...]:
    if isinstance(value, list):
        return tuple(unquote(v) for v in value)
    return (unquote(value),)


def _match(cmd: Any) -> tuple[str, str | None, str]:
    """(match type, relational operator, comparator) of a test; defaults ``:is`` and ascii-casemap."""
    match = cmd.arguments.get("match-type", ":is")
    relation = cmd.extra_arguments.get("match-type")
    comparator = cmd.extra_arguments.get("comparator")
    return (match.lower(), unquote(relation).lower() if relation else None,
            unquote(comparator).lower() if comparator else "i;ascii-casemap")


def _test(cmd: Any) -> tuple[Any, ...]:
    name, args = cmd.name, cmd.arguments
    if name in ("true", "false"):
        return (name,)
    if name == "not":
        return ("not", _test(args["test"]))
    if name in ("anyof", "allof"):
        return (name, tuple(_test(t) for t in args["tests"]))
    if name == "exists":
        return ("exists", strings(args["header-names"]))
    if name == "size":
        return ("size", args["comparator"].lower(), _number(args["limit"]))
    if name == "header":
        return ("header", _match(cmd), strings(args["header-names"]), strings(args["key-list"]))
    if name in ("address", "envelope"):
        part = args.get("address-part", ":all").lower()
        return (name, _match(cmd), part, strings(args["header-list"]), strings(args["key-list"]))
    if name == "body":
        return ("body", _match(cmd), strings(args["key-list"]))
    if name == "hasflag":
        return ("hasflag", _match(cmd), strings(args["list-of-flags"]))
    if name in ("date", "currentdate"):
        zone = cmd.extra_arguments.get("zone")
        headers = strings(args["header-name"]) if name == "date" else ()
        return (name, _match(cmd), headers, unquote(args["date-part"]).lower(), strings(args["key-list"]),
                unquote(zone) if zone else None)
    raise ScriptError(f"test {name!r} is not supported")


def _number(token: str) -> int:
    scale = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30}.get(token[-1:].lower(), 1)
    return int(token.rstrip("KMGkmg")) * scale


def _flags(cmd: Any) -> tuple[str, ...] | None:
    value = cmd.arguments.get("flags")
    return None if value is None else strings(cmd.extra_arguments.get("flags", value))


def _action(cmd: Any) -> tuple[Any, ...]:
    name, args = cmd.name, cmd.arguments
    if name in ("stop", "discard"):
        return (name,)
    if name == "keep":
        return ("keep", _flags(cmd))
    if name == "fileinto":
        return ("fileinto", unquote(args["mailbox"]), _flags(cmd), "copy" in args)
    if name == "redirect":
        address = unquote(args["address"])
        if "${" not in address and valid_address(address) != address:
            raise ScriptError(f"redirect: {address!r} is not an email address", near=args["address"])
        return ("redirect", address, "copy" in args)
    if name in ("reject", "ereject"):
        return (name, unquote(args["text"]))
    if name in ("addflag", "setflag", "removeflag"):
        variable = args.get("variable-name")
        return (name, unquote(variable) if variable else None, strings(args["list-of-flags"]))
    if name == "set":
        modifiers = tuple(args[k].lower() for k in ("case", "first-case", "quotewildcard", "length") if k in args)
        return ("set", unquote(args["name"]).lower(), unquote(args["value"]), modifiers)
    if name == "vacation":
        return ("vacation", _vacation(cmd))
    raise ScriptError(f"action {name!r} is not supported")


def _vacation(cmd: Any) -> dict[str, Any]:
    args, extra = cmd.arguments, cmd.extra_arguments

    def value(name: str) -> Any:
        return extra.get(name, args.get(name))

    days = value("days")
    return {"reason": unquote(args["reason"]), "days": _number(days) if days is not None else None,
            "subject": unquote(value("subject")) if value("subject") is not None else None,
            "from": unquote(value("from")) if value("from") is not None else None,
            "addresses": strings(value("addresses")) if value("addresses") is not None else (),
            "handle": unquote(value("handle")) if value("handle") is not None else None,
            "mime": "mime" in args}


def _block(cmds: list[Any]) -> tuple[Any, ...]:
    out: list[Any] = []
    for cmd in cmds:
        if cmd.name == "require":
            continue
        if cmd.name == "if":
            out.append(["if", [(_test(cmd.arguments["test"]), _block(cmd.children))], None])
        elif cmd.name in ("elsif", "else"):
            branch = out[-1]           # sievelib enforces: elsif/else follow an if
            if cmd.name == "elsif":
                branch[1].append((_test(cmd.arguments["test"]), _block(cmd.children)))
            else:
                branch[2] = _block(cmd.children)
        else:
            out.append(_action(cmd))
    return tuple(tuple(node) if isinstance(node, list) else node for node in out)


def _requires(cmds: list[Any]) -> frozenset[str]:
    found: set[str] = set()
    for cmd in cmds:
        if cmd.name == "require":
            for ext in strings(cmd.arguments["capabilities"]):
                if ext.lower() not in EXTENSIONS:
                    raise ScriptError(f"require: extension {ext!r} is not supported", near=f'"{ext}"')
                found.add(ext.lower())
    return frozenset(found)


def compile_script(source: str, max_bytes: int = MAX_SCRIPT_BYTES) -> Compiled:
    """Parse and check ``source``; ``ScriptError`` names what is wrong and where."""
    data = source.encode("utf-8")
    if len(data) > max_bytes:
        raise ScriptError(f"script is {len(data)} bytes, over the limit of {max_bytes}")
    parser = Parser()
    try:
        ok = parser.parse(data)
    except Exception as exc:          # sievelib raises on a few inputs instead of reporting them
        raise ScriptError(f"cannot parse: {exc}") from None
    if not ok:
        line, column, _ = parser.error_pos
        message = str(parser.error).split(": ", 1)[-1].replace("parsing error: ", "")
        raise ScriptError(message, line, column)
    try:
        requires = _requires(parser.result)
        block = _block(parser.result)
    except ScriptError as exc:
        raise _located(exc, source) from None
    except (KeyError, ValueError, IndexError) as exc:
        raise ScriptError(f"malformed command: {exc}") from None
    return Compiled(block, "variables" in requires, requires)


@functools.lru_cache(maxsize=4096)
def cached(source: str) -> Compiled:
    """``compile_script`` once per distinct text (scripts change rarely; delivery runs them often)."""
    return compile_script(source)
