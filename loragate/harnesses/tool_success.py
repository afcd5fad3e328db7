"""``tool_success``: the answer is a valid call of an existing tool that does the job.

Success = at least one call is found (fenced ``json`` block or ``<tool_call>`` element
holding ``{"tool": NAME, "arguments": {...}}``); every call found names one of the six tools,
its arguments match that tool's schema, ``run_command`` lines follow Web4's command rules;
the calls, executed in order in a throwaway sandbox folder holding the sample's files, all
succeed; the expected tool is among them; and the expected effect holds.

The ``expected`` dict of a sample (``expected`` in its prompt record)::

    {
      "files":  {"README.md": "...", "src/ts/layer2/DefaultUser.ts": "..."},  # optional
      "tool":   "edit_file",          # or a list of acceptable tools: ["edit_file", "write_file"]
      "effect": <one of the forms below>
    }

Effect forms (the tool must fit the form):

- ``{"read": "README.md"}``: a ``read_file`` call read that file;
- ``{"file": "src/a.ts", "content": "..."}``: after all calls the file holds exactly that text
  (trailing newlines aside), for ``write_file`` / ``edit_file``;
- ``{"listed": "src/ts"}``: a ``list_files`` call listed that folder;
- ``{"hits": ["src/a.ts", ...]}``: a ``search`` call found lines in each of these files;
- ``{"command": "git pull --no-edit( origin \\\\S+)?"}``: a ``run_command`` call's command
  (whitespace collapsed) fully matches this Python regular expression. Commands are never
  executed: they are checked against the command rules and the sandbox's allow-list.

Paths are relative to the sandbox root and compared after normalisation (``./a`` is ``a``).
A malformed ``expected`` raises ValueError naming the field.
"""

from __future__ import annotations

import re
from typing import Any

from jsonschema import Draft202012Validator

from loragate.harnesses.base import HarnessResult
from loragate.harnesses.tools import (
    TOOL_NAMES,
    Effect,
    FoundCall,
    Sandbox,
    SandboxError,
    ToolCall,
    call_reasons,
    find_calls,
    printable,
    relative_path,
)

_PATH = {"type": "string", "minLength": 1}
EFFECT_TOOLS: dict[str, tuple[str, ...]] = {
    "read": ("read_file",),
    "file": ("write_file", "edit_file"),
    "listed": ("list_files",),
    "hits": ("search",),
    "command": ("run_command",),
}
EFFECT_SCHEMAS: dict[str, dict] = {
    "read": {"type": "object", "properties": {"read": _PATH}, "required": ["read"],
             "additionalProperties": False},
    "file": {"type": "object", "properties": {"file": _PATH, "content": {"type": "string"}},
             "required": ["file", "content"], "additionalProperties": False},
    "listed": {"type": "object", "properties": {"listed": _PATH}, "required": ["listed"],
               "additionalProperties": False},
    "hits": {"type": "object",
             "properties": {"hits": {"type": "array", "items": _PATH, "minItems": 1}},
             "required": ["hits"], "additionalProperties": False},
    "command": {"type": "object", "properties": {"command": {"type": "string", "minLength": 1}},
                "required": ["command"], "additionalProperties": False},
}
EXPECTED_SCHEMA: dict = {
    "type": "object",
    "properties": {
        "files": {"type": "object", "additionalProperties": {"type": "string"}},
        "tool": {"oneOf": [{"enum": list(TOOL_NAMES)},
                           {"type": "array", "items": {"enum": list(TOOL_NAMES)},
                            "minItems": 1}]},
        "effect": {"type": "object"},
    },
    "required": ["tool", "effect"],
    "additionalProperties": False,
}


def _first_error(schema: dict, value: Any, prefix: str) -> str | None:
    errors = sorted(Draft202012Validator(schema).iter_errors(value), key=lambda e: list(e.path))
    if not errors:
        return None
    path = ".".join([prefix, *(str(p) for p in errors[0].path)] if prefix
                    else [str(p) for p in errors[0].path]) or "(top level)"
    return f"tool_success expected: field '{path}': {errors[0].message}"


def check_expected(expected: Any) -> tuple[tuple[str, ...], str, dict]:
    """Validate a sample's ``expected`` dict; return (acceptable tools, effect kind, effect).

    Raises ValueError naming the field that is wrong.
    """
    message = _first_error(EXPECTED_SCHEMA, expected, "")
    if message is not None:
        raise ValueError(message)
    kinds = [k for k in EFFECT_TOOLS if k in expected["effect"]]
    if len(kinds) != 1:
        raise ValueError(f"tool_success expected: field 'effect': names {len(kinds)} of the "
                         f"effect kinds ({', '.join(EFFECT_TOOLS)}); it names exactly one")
    message = _first_error(EFFECT_SCHEMAS[kinds[0]], expected["effect"], "effect")
    if message is not None:
        raise ValueError(message)
    tools = (expected["tool"],) if isinstance(expected["tool"], str) \
        else tuple(expected["tool"])
    effect = expected["effect"]
    kind = kinds[0]
    unfit = [t for t in tools if t not in EFFECT_TOOLS[kind]]
    if unfit:
        raise ValueError(f"tool_success expected: field 'tool': {', '.join(unfit)} cannot have "
                         f"a '{kind}' effect (that needs {' or '.join(EFFECT_TOOLS[kind])})")
    names: set[str] = set()
    for name, content in expected.get("files", {}).items():
        try:
            names.add(relative_path(name))
            content.encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError(f"tool_success expected: field 'files.{printable(name)}': the "
                             "content is not valid Unicode text") from None
        except ValueError as error:
            raise ValueError(f"tool_success expected: field 'files': {error}") from None
    for name in sorted(names):
        parents = {"/".join(name.split("/")[:i]) for i in range(1, name.count("/") + 1)}
        if name == "." or parents & names:
            raise ValueError(f"tool_success expected: field 'files': '{name}' needs a "
                             "folder where another entry is a file")
    if kind == "command":
        try:
            re.compile(effect["command"])
        except re.error as error:
            raise ValueError(f"tool_success expected: field 'effect.command': not a regular "
                             f"expression ({error})") from None
    return tools, kind, effect


def _effect_reasons(kind: str, effect: dict, effects: list[Effect], sandbox: Sandbox) -> list[str]:
    if kind == "read":
        want = relative_path(effect["read"])
        read = [e.path for e in effects if e.tool == "read_file"]
        return [] if want in read else [f"read {', '.join(read) or 'nothing'}, not {want}"]
    if kind == "file":
        actual = sandbox.read(effect["file"])
        if actual is None:
            return [f"{effect['file']} does not exist after the calls"]
        if actual.rstrip("\n") != effect["content"].rstrip("\n"):
            return [f"{effect['file']} does not hold the expected content after the calls"]
        return []
    if kind == "listed":
        want = relative_path(effect["listed"])
        listed = [e.path for e in effects if e.tool == "list_files"]
        return [] if want in listed else [f"listed {', '.join(listed) or 'nothing'}, not "
                                          f"{want}"]
    if kind == "hits":
        found = {hit.path for e in effects if e.tool == "search" for hit in e.hits}
        missing = [p for p in effect["hits"] if relative_path(p) not in found]
        return [f"the search found nothing in {', '.join(missing)}"] if missing else []
    pattern = re.compile(effect["command"])
    commands = [e.command for e in effects if e.tool == "run_command" and e.command]
    if any(pattern.fullmatch(c) for c in commands):
        return []
    return [f"no command matches the expected {effect['command']!r} (ran: "
            f"{'; '.join(repr(c) for c in commands) or 'nothing'})"]


def _found_reasons(found: list[FoundCall]) -> tuple[list[ToolCall], list[str]]:
    calls: list[ToolCall] = []
    reasons: list[str] = []
    for place in found:
        if place.call is None:
            reasons.append(f"{place.where}: {place.error}")
            continue
        broken = call_reasons(place.call)
        reasons += [f"{place.where}: {reason}" for reason in broken]
        if not broken:
            calls.append(place.call)
    return calls, reasons


def check(text: str, expected: dict) -> list[str]:
    tools, kind, effect = check_expected(expected)
    found = find_calls(text)
    if not found:
        return ['no tool call in the answer (a ```json block or <tool_call> element holding '
                '{"tool": NAME, "arguments": {...}})']
    calls, reasons = _found_reasons(found)
    called = [place.call.tool for place in found if place.call is not None]
    if not any(tool in called for tool in tools):
        reasons.append(f"expected a call of {' or '.join(tools)}; the answer calls "
                       f"{', '.join(called) or 'no valid tool'}")
    if reasons:
        return reasons
    with Sandbox(expected.get("files", {})) as sandbox:
        effects: list[Effect] = []
        for call in calls:
            try:
                effects.append(sandbox.run(call))
            except SandboxError as error:
                reasons.append(f"{call.tool}: {error}")
        if not reasons:
            reasons += _effect_reasons(kind, effect, effects, sandbox)
    return reasons


def validate(text: str, expected: dict) -> HarnessResult:
    """Parse the answer's tool calls, check them, run them in a sandbox prepared from
    ``expected`` and compare the effect (see the module docstring for ``expected``)."""
    return HarnessResult.from_reasons([printable(reason) for reason in check(text, expected)])
