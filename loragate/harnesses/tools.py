"""The agent's tools: their argument schemas, the call parser, Web4's command rules and a
sandbox that executes calls in a throwaway folder.

A call is the JSON object ``{"tool": NAME, "arguments": {...}}`` (loragate's own convention:
the source repository defines none), written either in a fenced block (tagged ``json``,
``tool_call`` or untagged) or inside a ``<tool_call>…</tool_call>`` element. The six tools:

========================  ==========================================================
``read_file(path)``       the file's text
``write_file(path, content)``  creates or replaces the file
``edit_file(path, old, new)``  replaces the one occurrence of ``old`` by ``new``
``list_files(path)``      the entries of a folder (sub-folders end in ``/``)
``search(query, path?)``  lines holding ``query`` (literal, case-sensitive) under ``path``
``run_command(command)``  never executed: checked against Web4's command rules and an
                          allow-list of safe programs; its effect is the command itself
========================  ==========================================================

Paths are relative to the sandbox root; an absolute path or one that climbs out of the
sandbox is refused.
"""

from __future__ import annotations

import json
import re
import shlex
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache, lru_cache
from pathlib import Path, PurePosixPath
from types import TracebackType

from jsonschema import Draft202012Validator

from loragate.harnesses.markdown import parse as parse_markdown

_PATH = {"type": "string", "minLength": 1}
TOOL_SCHEMAS: dict[str, dict] = {
    "read_file": {"type": "object", "properties": {"path": _PATH},
                  "required": ["path"], "additionalProperties": False},
    "write_file": {"type": "object",
                   "properties": {"path": _PATH, "content": {"type": "string"}},
                   "required": ["path", "content"], "additionalProperties": False},
    "edit_file": {"type": "object",
                  "properties": {"path": _PATH, "old": {"type": "string", "minLength": 1},
                                 "new": {"type": "string"}},
                  "required": ["path", "old", "new"], "additionalProperties": False},
    "list_files": {"type": "object", "properties": {"path": _PATH},
                   "required": ["path"], "additionalProperties": False},
    "search": {"type": "object",
               "properties": {"query": {"type": "string", "minLength": 1}, "path": _PATH},
               "required": ["query"], "additionalProperties": False},
    "run_command": {"type": "object",
                    "properties": {"command": {"type": "string", "minLength": 1}},
                    "required": ["command"], "additionalProperties": False},
}
TOOL_NAMES: tuple[str, ...] = tuple(TOOL_SCHEMAS)
CALL_SCHEMA: dict = {
    "type": "object",
    "properties": {"tool": {"type": "string", "minLength": 1},
                   "arguments": {"type": "object"}},
    "required": ["tool", "arguments"],
    "additionalProperties": False,
}
CALL_TAGS = frozenset({"json", "jsonc", "tool_call", "tool", ""})
_TOOL_CALL_OPEN = "<tool_call>"
_TOOL_CALL_CLOSE = "</tool_call>"
_INNER_FENCE = re.compile(r"^\s*```[\w-]*\s*\n(?P<body>.*?)\n\s*```\s*$", re.DOTALL)

# Web4 component CLIs: they take positional arguments only.
WEB4_CLIS = frozenset({"web4", "web4tscomponent", "once", "requirement", "unit", "tsranger",
                       "user", "pdca"})
# Programs the sandbox accepts in run_command (never runs them): read-only helpers, the
# project's toolchain, and git/npm under the rules below.
ALLOWED_PROGRAMS = frozenset({"git", "npm", "npx", "vitest", "tsc", "node", "ls", "cat",
                              "pwd", "grep", "rg", "find", "head", "tail", "wc", "echo",
                              "tree", "diff", "which", "date", "sort", "uniq", "jq",
                              "true"}) | WEB4_CLIS
INTERACTIVE_PROGRAMS = frozenset({"vi", "vim", "nvim", "nano", "emacs", "less", "more", "top",
                                  "htop", "watch", "ssh", "python", "python3", "bash", "sh"})
GIT_SUBCOMMANDS = frozenset({"status", "log", "diff", "show", "branch", "add", "commit", "push",
                             "pull", "fetch", "mv", "checkout", "switch", "merge", "rebase",
                             "rev-parse", "remote", "tag", "ls-files", "blame", "describe",
                             "reset", "restore", "stash", "clean", "config", "shortlog"})
_SEPARATORS = frozenset({"&&", "||", ";", "|", "&", ";;", "(", ")", "|&"})
_REDIRECTS = frozenset({">", ">>", ">|", "&>", "&>>"})
_ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")


# ---------------------------------------------------------------- parsing calls


@dataclass(frozen=True)
class ToolCall:
    """One call as written: the tool's name and its arguments."""

    tool: str
    arguments: dict


@dataclass(frozen=True)
class FoundCall:
    """A place in the answer that holds (or tries to hold) a tool call.

    ``call`` is None when the text there is not a well-formed call; ``error`` says why.
    """

    where: str
    line: int
    raw: str
    call: ToolCall | None = None
    error: str | None = None


def _looks_like_call(value: object) -> bool:
    return isinstance(value, dict) and bool({"tool", "arguments"} & set(value))


@lru_cache(maxsize=1)
def _call_validator() -> Draft202012Validator:
    return Draft202012Validator(CALL_SCHEMA)


def _as_found(value: object, where: str, line: int, raw: str) -> FoundCall:
    errors = sorted(_call_validator().iter_errors(value), key=lambda e: list(e.path))
    if errors:
        messages = "; ".join(_error_text(e) for e in errors)
        return FoundCall(where, line, raw, error=f"not a {{\"tool\", \"arguments\"}} object: "
                                                 f"{messages}")
    assert isinstance(value, dict)
    return FoundCall(where, line, raw, call=ToolCall(value["tool"], value["arguments"]))


def _decode(raw: str, where: str, line: int, must: bool) -> list[FoundCall]:
    """The calls a block of JSON text holds; ``must`` says the place is a call by its form
    (a ``<tool_call>`` element or a ``tool_call`` fence), so bad JSON there is an error."""
    body = raw.strip()
    inner = _INNER_FENCE.match(body)
    if inner is not None:
        body = inner.group("body").strip()
    try:
        value = json.loads(body)
    except (ValueError, RecursionError) as error:
        if must or '"tool"' in body:
            return [FoundCall(where, line, raw, error=f"not valid JSON ({error})")]
        return []
    values = value if isinstance(value, list) else [value]
    if not must and not any(_looks_like_call(v) for v in values):
        return []
    return [_as_found(v, where if len(values) == 1 else f"{where} item {i}", line, raw)
            for i, v in enumerate(values, start=1)]


def _tool_call_elements(text: str) -> tuple[list[FoundCall], str]:
    """The ``<tool_call>`` elements of ``text`` and the text with them blanked out (line
    count kept, so fence line numbers stay true)."""
    found: list[FoundCall] = []
    pieces: list[str] = []
    position = 0
    number = 0
    while (start := text.find(_TOOL_CALL_OPEN, position)) != -1:
        number += 1
        line = text.count("\n", 0, start) + 1
        pieces.append(text[position:start])
        body_start = start + len(_TOOL_CALL_OPEN)
        end = text.find(_TOOL_CALL_CLOSE, body_start)
        where = f"<tool_call> {number} (line {line})"
        if end == -1:
            found.append(FoundCall(where, line, text[body_start:],
                                   error="unclosed <tool_call> element"))
            pieces.append("\n" * text.count("\n", start))
            position = len(text)
            break
        raw = text[body_start:end]
        found += _decode(raw, where, line, must=True)
        position = end + len(_TOOL_CALL_CLOSE)
        pieces.append("\n" * text.count("\n", start, position))
    pieces.append(text[position:])
    return found, "".join(pieces)


def find_calls(text: str) -> list[FoundCall]:
    """Every tool call in ``text``, in the order written. Never raises on a str."""
    if not isinstance(text, str):
        raise TypeError(f"expected the answer as str, got {type(text).__name__}")
    found, rest = _tool_call_elements(text)
    for number, fence in enumerate(parse_markdown(rest).fences, start=1):
        tag = fence.info.split()[0].lower() if fence.info.split() else ""
        if tag not in CALL_TAGS:
            continue
        where = f"code block {number} (line {fence.line + 1})"
        found += _decode(fence.content, where, fence.line + 1,
                         must=tag in ("tool_call", "tool"))
    return sorted(found, key=lambda f: f.line)


# ---------------------------------------------------------------- checking calls


def _error_text(error) -> str:
    path = ".".join(str(p) for p in error.path)
    return f"'{path}': {error.message}" if path else error.message


@cache
def _argument_validator(tool: str) -> Draft202012Validator:
    return Draft202012Validator(TOOL_SCHEMAS[tool])


def argument_reasons(call: ToolCall) -> list[str]:
    """Unknown tool, or arguments that break the tool's schema."""
    if call.tool not in TOOL_SCHEMAS:
        return [f"unknown tool '{call.tool}' (known: {', '.join(TOOL_NAMES)})"]
    errors = sorted(_argument_validator(call.tool).iter_errors(call.arguments),
                    key=lambda e: list(e.path))
    return [f"{call.tool}: argument {_error_text(e)}" if e.path
            else f"{call.tool}: arguments: {e.message}" for e in errors]


def call_reasons(call: ToolCall) -> list[str]:
    """Every rule ``call`` breaks before it could run (schema, then command rules)."""
    reasons = argument_reasons(call)
    if not reasons and call.tool == "run_command":
        reasons = command_reasons(call.arguments["command"])
    return reasons


def split_command(command: str) -> list[list[str]]:
    """The simple commands of a shell line (split at ``&&``, ``||``, ``;``, ``|``), each
    as its words. Raises ValueError on unbalanced quotes."""
    lexer = shlex.shlex(command, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    lexer.commenters = ""
    simple: list[list[str]] = [[]]
    for token in lexer:
        if token in _SEPARATORS:
            simple.append([])
        else:
            simple[-1].append(token)
    return [words for words in simple if words]


def _has_flag(args: list[str], *flags: str) -> bool:
    """Whether ``args`` carries a long flag (``--x``/``--x=v``) or a short one, also inside
    a group such as ``-am``."""
    for arg in args:
        for flag in flags:
            if flag.startswith("--") and (arg == flag or arg.startswith(flag + "=")):
                return True
            if not flag.startswith("--") and arg.startswith("-") and not arg.startswith("--") \
                    and flag[1] in arg[1:]:
                return True
    return False


def _git_subcommand(args: list[str]) -> tuple[str, list[str]]:
    index = 0
    while index < len(args) and args[index].startswith("-"):
        index += 2 if args[index] in ("-C", "-c") else 1
    if index >= len(args):
        return "", []
    return args[index], args[index + 1:]


def _git_reasons(args: list[str]) -> list[str]:
    sub, rest = _git_subcommand(args)
    shown = " ".join(["git", *args])
    needs_tron = f"'{shown}' destroys work or history: it needs TRON's explicit authorisation"
    if sub not in GIT_SUBCOMMANDS:
        return [f"'git {sub}' is not on the sandbox's allow-list of git commands"]
    if sub in ("pull", "merge") and not _has_flag(rest, "--no-edit", "--ff-only", "--abort",
                                                  "--quit"):
        return [f"bare 'git {sub}' can stop in an editor and hang; use the "
                f"non-interactive form 'git {sub} --no-edit'"]
    if sub == "rebase":
        if _has_flag(rest, "--interactive", "-i"):
            return ["interactive 'git rebase -i' needs an editor; it cannot run from a tool"]
        if not _has_flag(rest, "--abort", "--quit"):
            return ["'git rebase' can stop in an editor; ask TRON before rebasing"]
    if sub == "commit" and not _has_flag(rest, "--message", "-m", "--file", "-F", "--no-edit",
                                         "--reuse-message", "-C"):
        return ["'git commit' without -m opens an editor; give the message with -m"]
    if sub == "reset" and _has_flag(rest, "--hard", "--merge", "--keep"):
        return [needs_tron]
    if sub == "push" and (_has_flag(rest, "--force", "-f", "--force-with-lease", "--delete",
                                    "--mirror", "-d")
                          or any(a.startswith((":", "+")) for a in rest)):
        return [needs_tron]
    if sub == "branch" and _has_flag(rest, "--delete", "-d", "-D", "--force", "-f"):
        return [needs_tron]
    if sub == "clean" and _has_flag(rest, "--force", "-f"):
        return [needs_tron]
    if sub == "checkout" and ("." in rest or "--" in rest or _has_flag(rest, "--force", "-f")):
        return [needs_tron]
    if sub == "restore" and not _has_flag(rest, "--staged", "-S"):
        return [needs_tron]
    if sub == "stash" and rest[:1] in (["drop"], ["clear"]):
        return [needs_tron]
    return []


def _simple_command_reasons(words: list[str]) -> list[str]:
    while words and _ASSIGNMENT.match(words[0]):
        words = words[1:]
    if not words:
        return []
    program, args = PurePosixPath(words[0]).name, words[1:]
    redirects = [w for w in args if w in _REDIRECTS]
    reasons: list[str] = []
    if redirects:
        reasons.append(f"'{' '.join(words)}' writes a file through a redirection; use "
                       "write_file")
    if program == "mv":
        return reasons + ["files move with 'git mv', not 'mv'"]
    if program == "rm" and _has_flag(args, "-r", "-R", "--recursive", "-f", "--force"):
        return reasons + [f"'{' '.join(words)}' deletes files: it needs TRON's explicit "
                          "authorisation"]
    if program in INTERACTIVE_PROGRAMS:
        return reasons + [f"'{program}' is interactive or opens a shell; a tool call cannot "
                          "answer it"]
    if program not in ALLOWED_PROGRAMS:
        return reasons + [f"'{program}' is not on the sandbox's allow-list of safe commands"]
    if program in WEB4_CLIS:
        flags = [a for a in args if a.startswith("-")]
        if flags:
            reasons.append(f"Web4 CLI '{program}' takes positional arguments, not flags "
                           f"({', '.join(flags)})")
    if program == "git":
        reasons += _git_reasons(args)
    if program == "npm" and args[:1] in (["install"], ["i"], ["add"], ["init"]) \
            and not _has_flag(args, "--yes", "-y"):
        reasons.append(f"'npm {args[0]}' can stop at a prompt; use 'npm {args[0]} --yes'")
    if program == "find" and any(a in ("-delete", "-exec", "-execdir", "-ok") for a in args):
        reasons.append("'find' with -delete/-exec acts on files; it is not a safe command")
    return reasons


def command_reasons(command: str) -> list[str]:
    """Every Web4 command rule (and allow-list entry) the shell line ``command`` breaks."""
    try:
        simple = split_command(command)
    except ValueError as error:
        return [f"command does not parse as a shell line ({error})"]
    if not simple:
        return ["empty command"]
    reasons: list[str] = []
    for words in simple:
        reasons += _simple_command_reasons(words)
    return list(dict.fromkeys(reasons))


def normalise_command(command: str) -> str:
    """The command with runs of whitespace collapsed (what expected patterns match)."""
    return " ".join(command.split())


# ---------------------------------------------------------------- the sandbox


class SandboxError(Exception):
    """A call that could not do anything in the sandbox (no such file, path outside…)."""


def _write_text(target: Path, content: str, shown: str) -> None:
    try:
        data = content.encode("utf-8")
    except UnicodeEncodeError as error:
        raise SandboxError(f"content for '{shown}' is not valid text ({error.reason})") from None
    target.write_bytes(data)


@dataclass(frozen=True)
class SearchHit:
    path: str
    line: int
    text: str


@dataclass(frozen=True)
class Effect:
    """What one executed call did. ``path`` is sandbox-relative (posix); ``content`` is
    the text read (read_file) or the file's text after the call (write/edit)."""

    tool: str
    path: str | None = None
    content: str | None = None
    entries: tuple[str, ...] = ()
    hits: tuple[SearchHit, ...] = ()
    command: str | None = None


# Linux's limits (NAME_MAX, PATH_MAX less room for the sandbox's own folder): a longer path
# fails in the file system with ENAMETOOLONG, which is the answer's fault, not the harness's.
MAX_NAME_BYTES = 255
MAX_PATH_BYTES = 3800
_SHOWN_CHARS = 60


def printable(text: str) -> str:
    """``text`` with control characters and lone surrogates as escapes (``\\x00``,
    ``\\ud800``): a JSON string in an answer can hold them, and a reason that carries one
    would break the UTF-8 report it is written to."""
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() or ch in "\n\t" else
                   ch.encode("unicode_escape").decode("ascii") for ch in text)


def shown_path(path: str) -> str:
    """``path`` for a message: escaped, and clipped so a 10,000-character path does not flood
    a report."""
    clipped = path if len(path) <= _SHOWN_CHARS else \
        f"{path[:_SHOWN_CHARS]}… ({len(path)} chars)"
    return printable(clipped)


def _path_problem(path: str) -> str | None:
    if "\0" in path:
        return "contains a NUL byte, which no file name can hold"
    try:
        encoded = path.encode("utf-8")
    except UnicodeEncodeError:
        return "is not valid Unicode text (it holds a lone surrogate)"
    if len(encoded) > MAX_PATH_BYTES:
        return f"is {len(encoded)} bytes long; a path holds at most {MAX_PATH_BYTES}"
    longest = max(path.replace("\\", "/").split("/"), key=lambda part: len(part.encode()))
    if len(longest.encode()) > MAX_NAME_BYTES:
        return (f"has a component of {len(longest.encode())} bytes; a file name holds at most "
                f"{MAX_NAME_BYTES}")
    return None


def relative_path(path: str) -> str:
    """``path`` as a normalised sandbox-relative posix path; ValueError if it is absolute,
    climbs out of the sandbox, or could not name a file (NUL byte, too long)."""
    problem = _path_problem(path)
    if problem is not None:
        raise ValueError(f"path '{shown_path(path)}' {problem}")
    pure = PurePosixPath(path.replace("\\", "/"))
    if pure.is_absolute() or re.match(r"^[A-Za-z]:", path):
        raise ValueError(f"path '{shown_path(path)}' is absolute; paths are relative to the "
                         "project root")
    parts: list[str] = []
    for part in pure.parts:
        if part == "..":
            if not parts:
                raise ValueError(f"path '{shown_path(path)}' climbs out of the project root")
            parts.pop()
        elif part != ".":
            parts.append(part)
    return "/".join(parts) or "."


@dataclass
class Sandbox:
    """A throwaway folder holding the sample's files; calls run against it.

    Use as a context manager: the folder is removed on exit.
    """

    files: Mapping[str, str] = field(default_factory=dict)
    _tmp: tempfile.TemporaryDirectory | None = field(default=None, init=False, repr=False)

    def __enter__(self) -> Sandbox:
        self._tmp = tempfile.TemporaryDirectory(prefix="loragate-tool-")
        for name, content in self.files.items():
            target = self.resolve(name)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(content, encoding="utf-8")
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    @property
    def root(self) -> Path:
        if self._tmp is None:
            raise RuntimeError("the sandbox is used outside its 'with' block")
        return Path(self._tmp.name)

    def resolve(self, path: str) -> Path:
        try:
            relative = relative_path(path)
        except ValueError as error:
            raise SandboxError(str(error)) from None
        return self.root if relative == "." else self.root / relative

    def read(self, path: str) -> str | None:
        """A file's text now, or None if there is no such file."""
        target = self.resolve(path)
        return target.read_text(encoding="utf-8") if target.is_file() else None

    def run(self, call: ToolCall) -> Effect:
        """Execute a call whose arguments passed the schema; SandboxError if it cannot act."""
        handler = getattr(self, f"_run_{call.tool}", None)
        if handler is None:
            raise SandboxError(f"unknown tool '{call.tool}'")
        try:
            return handler(**call.arguments)
        except (OSError, ValueError) as error:
            # What the file system refuses (a file where a folder is needed, a name it cannot
            # store) is the call's failure, reported like any other.
            path = shown_path(str(call.arguments.get("path", ".")))
            if isinstance(error, (NotADirectoryError, FileExistsError)):
                reason = "a folder on the path is a file"
            elif isinstance(error, OSError) and error.strerror:
                reason = error.strerror
            else:
                reason = str(error)
            raise SandboxError(f"cannot act on '{path}' ({reason})") from None

    def _existing_file(self, path: str) -> Path:
        target = self.resolve(path)
        if not target.is_file():
            raise SandboxError(f"no such file: '{path}'")
        return target

    def _run_read_file(self, path: str) -> Effect:
        content = self._existing_file(path).read_text(encoding="utf-8", errors="replace")
        return Effect("read_file", relative_path(path), content=content)

    def _run_write_file(self, path: str, content: str) -> Effect:
        target = self.resolve(path)
        if target.is_dir():
            raise SandboxError(f"'{path}' is a folder")
        target.parent.mkdir(parents=True, exist_ok=True)
        _write_text(target, content, path)
        return Effect("write_file", relative_path(path), content=content)

    def _run_edit_file(self, path: str, old: str, new: str) -> Effect:
        target = self._existing_file(path)
        text = target.read_text(encoding="utf-8", errors="replace")
        count = text.count(old)
        if count == 0:
            raise SandboxError(f"the old text is not in '{path}'")
        if count > 1:
            raise SandboxError(f"the old text occurs {count} times in '{path}'; "
                               "it must name one place")
        edited = text.replace(old, new, 1)
        _write_text(target, edited, path)
        return Effect("edit_file", relative_path(path), content=edited)

    def _run_list_files(self, path: str) -> Effect:
        target = self.resolve(path)
        if not target.is_dir():
            raise SandboxError(f"no such folder: '{path}'")
        entries = tuple(sorted(p.name + ("/" if p.is_dir() else "") for p in target.iterdir()))
        return Effect("list_files", relative_path(path), entries=entries)

    def _run_search(self, query: str, path: str = ".") -> Effect:
        target = self.resolve(path)
        if not target.exists():
            raise SandboxError(f"no such file or folder: '{path}'")
        files = [target] if target.is_file() else sorted(p for p in target.rglob("*")
                                                         if p.is_file())
        hits: list[SearchHit] = []
        for file in files:
            lines = file.read_text(encoding="utf-8", errors="replace").splitlines()
            relative = file.relative_to(self.root).as_posix()
            hits += [SearchHit(relative, n, line) for n, line in enumerate(lines, start=1)
                     if query in line]
        return Effect("search", relative_path(path), hits=tuple(hits))

    def _run_run_command(self, command: str) -> Effect:
        reasons = command_reasons(command)
        if reasons:
            raise SandboxError("; ".join(reasons))
        return Effect("run_command", command=normalise_command(command))
