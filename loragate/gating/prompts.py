"""Prompt records: the JSONL lines a harness (or the canaries) is judged on.

A record is a JSON object with an ``id`` and ``messages``: a non-empty list of
``{"role": "system" | "user" | "assistant", "content": STR}`` that ends with a user message.
Anything else the record holds is context for its validator (``expected``,
``tron_feedback``, ``check``, …). Every problem is a :class:`PromptFileError` naming
``path:line``, raised at collection, before any answer is generated.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from loragate.textfiles import InputFileError, decode_utf8, jsonl_lines, read_bytes, read_text

if TYPE_CHECKING:
    from loragate.harnesses.registry import Harness

ROLES = ("system", "user", "assistant")


class PromptFileError(ValueError):
    """A prompt file that cannot be used; the message starts with ``path:line``."""


def read_prompt_records(path: Path, *, what: str = "prompt file",
                        check: Callable[[dict[str, Any], str], None] | None = None,
                        prepare: Callable[[dict[str, Any], str], None] | None = None
                        ) -> list[dict[str, Any]]:
    """Every record of ``path``, checked; blank lines are skipped. ``check(record, where)``
    adds the checks of one kind of record (the canaries'), ``where`` being ``path:line``;
    ``prepare(record, where)`` completes a record before any check (its messages)."""
    try:
        lines = list(jsonl_lines(path, what))
    except InputFileError as exc:
        raise PromptFileError(str(exc)) from None

    def checked() -> Iterator[tuple[str, str, dict[str, Any]]]:
        for line in lines:
            if line.error is not None:
                raise PromptFileError(f"{line.where}: {line.error}")
            if prepare is not None and isinstance(line.value, dict):
                prepare(line.value, line.where)
            check_record(line.value, line.where)
            if check is not None:
                check(line.value, line.where)
            yield line.where, f"on line {line.number}", line.value

    return _unique_ids(checked())


def _unique_ids(checked: Iterator[tuple[str, str, dict[str, Any]]]) -> list[dict[str, Any]]:
    """The records of ``(where, first, record)`` in order; a repeated id is a
    :class:`PromptFileError` at its second place, naming the first (``first``: "on line 3",
    "at q.csv:3")."""
    records: list[dict[str, Any]] = []
    seen: dict[str, str] = {}
    for where, first, record in checked:
        if record["id"] in seen:
            raise PromptFileError(f"{where}: duplicate id {record['id']!r} "
                                  f"(first {seen[record['id']]})")
        seen[record["id"]] = first
        records.append(record)
    return records


def check_record(record: Any, where: str) -> None:
    """Raise :class:`PromptFileError` unless ``record`` is a usable prompt record."""
    if not isinstance(record, dict):
        raise PromptFileError(f"{where}: a record must be a JSON object, "
                              f"got {type(record).__name__}")
    record_id = record.get("id")
    if not isinstance(record_id, str) or not record_id.strip():
        raise PromptFileError(f"{where}: field 'id' must be a non-empty string")
    messages = record.get("messages")
    if not isinstance(messages, list) or not messages:
        raise PromptFileError(f"{where}: field 'messages' must be a non-empty list of "
                              "{role, content} objects")
    for index, message in enumerate(messages):
        field = f"{where}: field 'messages[{index}]'"
        if not isinstance(message, dict):
            raise PromptFileError(f"{field}: must be an object with 'role' and 'content'")
        role, content = message.get("role"), message.get("content")
        if role not in ROLES:
            raise PromptFileError(f"{field}.role: must be one of {list(ROLES)}, got {role!r}")
        if not isinstance(content, str):
            raise PromptFileError(f"{field}.content: must be a string, "
                                  f"got {type(content).__name__}")
        extra = sorted(set(message) - {"role", "content"})
        if extra:
            raise PromptFileError(f"{field}: unknown key(s) {extra}")
    if messages[-1]["role"] != "user":
        raise PromptFileError(f"{where}: field 'messages': the last message must be the "
                              f"user's, got {messages[-1]['role']!r}")


# -- prompt sources: JSONL, CSV or a `datasets` folder, with templates ------------------------

DEFAULT_TEMPLATE = "{{ prompt }}"


@dataclass(frozen=True)
class PromptSource:
    """Where a harness's records come from and how a row becomes one.

    ``path``: a ``.jsonl`` file, a ``.csv`` file (one row per record, the header names the
    fields), or a folder written by ``datasets``' ``save_to_disk``. ``columns`` renames source
    fields to record fields (``{"id": "qid", "prompt": "question"}``). A row without
    ``messages`` gets them from the templates (Jinja2, sandboxed, an unknown variable is an
    error): ``template`` renders the user message (default ``{{ prompt }}``), ``system`` an
    optional system message first. A template sees the row's fields and ``variables`` (the
    config's shared context: a schema, a style guide), also as ``vars.NAME``.
    """

    path: Path
    columns: Mapping[str, str] = field(default_factory=dict)
    template: str | None = None
    system: str | None = None
    variables: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def of(cls, spec: Harness, variables: Mapping[str, str]) -> PromptSource:
        """A configured harness's prompt source (its ``prompts`` resolved by the config)."""
        if spec.prompts is None:
            raise PromptFileError(f"harness {spec.name!r} has no prompt file configured")
        return cls(Path(spec.prompts), columns=dict(spec.columns), template=spec.template,
                   system=spec.system, variables=variables)


def template_variables(settings: Any) -> dict[str, str]:
    """``gates.template_vars`` and the files of ``gates.template_files`` (a loragate config's),
    read once; a file that cannot be read is a :class:`PromptFileError` naming the field."""
    variables = dict(settings.gates.template_vars)
    for name, path in settings.gates.template_files.items():
        try:
            variables[name] = read_text(path)
        except InputFileError as exc:
            raise PromptFileError(f"field 'gates.template_files.{name}': {exc}") from None
    return variables


def harness_source(settings: Any, name: str, variables: Mapping[str, str] | None = None
                   ) -> PromptSource:
    """Harness ``name``'s prompt source as a loragate config declares it (the default file
    for a harness the config does not name)."""
    gates = settings.gates
    variables = template_variables(settings) if variables is None else variables
    if name in gates.harnesses:
        return PromptSource.of(gates.spec(name), variables)
    return PromptSource(gates.prompt_file(name), variables=variables)


def read_prompt_source(source: PromptSource, *, what: str = "prompt file"
                       ) -> list[dict[str, Any]]:
    """Every record of ``source``, rendered and checked like :func:`read_prompt_records`;
    every problem is a :class:`PromptFileError` naming ``path:line`` (CSV, JSONL) or
    ``path[row N]`` (a dataset)."""
    path = Path(source.path)
    if path.suffix.lower() == ".jsonl" and not source.columns and source.template is None \
            and source.system is None:
        # A JSONL file keeps its strict ids; a record with a `prompt` and no `messages` gets
        # them from the default template, as a CSV row does.
        return read_prompt_records(path, what=what, prepare=_default_messages(source))
    user, system = _compile(source)

    def checked() -> Iterator[tuple[str, str, dict[str, Any]]]:
        for where, number, row in _rows(path, what):
            record = _renamed(row, source.columns, where)
            record.setdefault("id", f"{path.stem}-{number}")
            if not isinstance(record["id"], str):
                record["id"] = str(record["id"])
            if "messages" not in record:
                record["messages"] = _render(record, source, user, system, where)
            check_record(record, where)
            yield where, f"at {where}", record

    return _unique_ids(checked())


def _default_messages(source: PromptSource) -> Callable[[dict[str, Any], str], None]:
    compiled: list[tuple[Any, Any]] = []  # compiled on the first record that needs it

    def prepare(record: dict[str, Any], where: str) -> None:
        if "messages" in record or "prompt" not in record:
            return
        if not compiled:
            compiled.append(_compile(source))
        user, system = compiled[0]
        record["messages"] = _render(record, source, user, system, where)

    return prepare


def _compile(source: PromptSource) -> tuple[Any, Any]:
    from jinja2 import StrictUndefined, TemplateSyntaxError
    from jinja2.sandbox import SandboxedEnvironment

    env = SandboxedEnvironment(undefined=StrictUndefined, keep_trailing_newline=False)
    compiled = []
    for name, text in (("template", source.template or DEFAULT_TEMPLATE),
                       ("system", source.system)):
        try:
            compiled.append(None if text is None else env.from_string(text))
        except TemplateSyntaxError as exc:
            raise PromptFileError(f"{source.path}: the harness's {name} is not a valid "
                                  f"template: {exc.message} (template line {exc.lineno})"
                                  ) from None
    return compiled[0], compiled[1]


def _render(record: dict[str, Any], source: PromptSource, user: Any, system: Any,
            where: str) -> list[dict[str, str]]:
    from jinja2 import TemplateError

    context = {**source.variables, **record, "vars": dict(source.variables),
               "record": record}
    messages = []
    for role, template in (("system", system), ("user", user)):
        if template is None:
            continue
        try:
            content = template.render(context)
        except TemplateError as exc:
            fields = ", ".join(sorted(k for k in record if k != "messages"))
            raise PromptFileError(f"{where}: the {role} template cannot be filled: {exc} "
                                  f"(this record has: {fields})") from None
        messages.append({"role": role, "content": content})
    return messages


def _renamed(row: dict[str, Any], columns: Mapping[str, str], where: str) -> dict[str, Any]:
    missing = [column for column in columns.values() if column not in row]
    if missing:
        raise PromptFileError(f"{where}: no column {missing[0]!r} (mapped to "
                              f"{next(k for k, v in columns.items() if v == missing[0])!r}); "
                              f"the columns are {sorted(row)}")
    renamed = {name: row[column] for name, column in columns.items()}
    renamed.update({k: v for k, v in row.items() if k not in columns.values()})
    return renamed


def _rows(path: Path, what: str) -> Iterator[tuple[str, int, dict[str, Any]]]:
    """(where, number, row) per row: ``number`` counts the source's rows from 1 (a CSV's data
    rows, a JSONL's lines, a dataset's rows), so a generated id stays put when a blank row
    goes."""
    if path.is_dir():
        yield from _dataset_rows(path)
    elif path.suffix.lower() == ".csv":
        yield from _csv_rows(path, what)
    else:
        try:
            lines = list(jsonl_lines(path, what))
        except InputFileError as exc:
            raise PromptFileError(str(exc)) from None
        for line in lines:
            if line.error is not None:
                raise PromptFileError(f"{line.where}: {line.error}")
            if not isinstance(line.value, dict):
                raise PromptFileError(f"{line.where}: a record must be a JSON object, "
                                      f"got {type(line.value).__name__}")
            yield line.where, line.number, line.value


def _csv_rows(path: Path, what: str) -> Iterator[tuple[str, int, dict[str, Any]]]:
    import csv
    import io

    try:
        text = decode_utf8(read_bytes(path, f"{what} not found"), str(path), line_first=True)
    except InputFileError as exc:
        raise PromptFileError(str(exc)) from None
    reader = csv.DictReader(io.StringIO(text.lstrip("\ufeff"), newline=""), strict=True)
    if not reader.fieldnames:
        raise PromptFileError(f"{path}:1: no header row (the first row names the fields)")
    duplicated = sorted({n for n in reader.fieldnames if reader.fieldnames.count(n) > 1})
    if duplicated:
        raise PromptFileError(f"{path}:1: column(s) named twice: {duplicated}")
    start = 2
    try:
        for number, row in enumerate(reader, start=1):
            where = f"{path}:{start}"
            start = reader.line_num + 1
            if None in row or any(value is None for value in row.values()):
                raise PromptFileError(f"{where}: {len(reader.fieldnames)} columns expected "
                                      "(as many as the header names)")
            if not any(value.strip() for value in row.values()):
                continue
            yield where, number, dict(row)
    except csv.Error as exc:
        raise PromptFileError(f"{path}:{reader.line_num}: not valid CSV: {exc}") from None


def _dataset_rows(path: Path) -> Iterator[tuple[str, int, dict[str, Any]]]:
    try:
        from datasets import Dataset, load_from_disk
    except ImportError:
        raise PromptFileError(f"{path}: a datasets folder needs the 'datasets' package "
                              "(pip install 'loragate[train]')") from None
    try:
        loaded = load_from_disk(str(path))
    except (FileNotFoundError, ValueError) as exc:
        raise PromptFileError(f"{path}: not a folder written by datasets' save_to_disk "
                              f"({exc})") from None
    if not isinstance(loaded, Dataset):
        splits = ", ".join(f"{path / name}" for name in loaded)
        raise PromptFileError(f"{path}: a DatasetDict; name one split's folder: {splits}")
    for index, row in enumerate(loaded):
        yield f"{path}[row {index}]", index + 1, dict(row)
