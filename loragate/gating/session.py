"""The state of one gate session: its config and harnesses, its opened models (resources),
and what it recorded (:class:`~loragate.gating.outcomes.SessionRecords`).

One :class:`GateSession` lives on the pytest config (``config.stash``); nothing is global.
It is *active* when the session gates something (``--model``, ``--baseline``,
``--loragate-config``, ``--verdict-json`` or ``--verdict-html`` given); an inactive session
reads no config and writes no verdict, so the installed plugin leaves plain test runs alone.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from loragate.config import ConfigError, LoragateConfig, load_config, resolve_paths
from loragate.gating.outcomes import SessionRecords
from loragate.gating.prompts import (
    PromptFileError,
    PromptSource,
    template_variables,
)
from loragate.harnesses.base import HarnessResult
from loragate.harnesses.registry import GateRule, Harness

if TYPE_CHECKING:
    from loragate.backends.cache import CachedBackend, ResponseCache
    from loragate.gating.candidates import CandidatesDocument
    from loragate.gating.document import VerdictDocument

STASH_KEY = pytest.StashKey["GateSession"]()


def session_of(config: pytest.Config) -> GateSession:
    """The gate session of a pytest run (kept in its stash by the plugin)."""
    return config.stash[STASH_KEY]
ACTIVATING_OPTIONS = ("model", "baseline", "loragate_config", "verdict_json", "verdict_html")
INI_CONFIG = "loragate_config"
MODEL_ROLE = "model"
# A candidate's name when given as NAME=SPEC: a word (no ':' or '/', so a spec is never read
# as one).
_NAMED_SPEC = re.compile(r"^([A-Za-z0-9_.-]+)=(.+)$")


@dataclass(frozen=True)
class Candidate:
    """A model the session judges (one per ``--model``), under its name and backend role:
    ``model`` when it is the only one, ``model[NAME]`` beside others."""

    name: str
    spec: str
    role: str = MODEL_ROLE


def candidate_name(spec: str) -> str:
    """The name a candidate is shown under: the GGUF/folder stem, the served model's name."""
    kind, _, rest = spec.partition(":")
    rest = rest.split("#", 1)[1] if "#" in rest else rest
    rest = rest.split("@", 1)[0].rstrip("/")
    name = Path(rest).stem if kind in ("gguf", "hf") else rest.rsplit("/", 1)[-1]
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-") or kind or "model"


def candidates_of(texts: list[str] | str | None) -> list[Candidate]:
    """The candidates of the ``--model`` values: named ``NAME=SPEC`` or after their spec,
    with a number added where two names derived from specs would be the same. A name the user
    gave identifies one candidate: given twice, it is a ``ValueError``."""
    if not texts:
        return []
    texts = [texts] if isinstance(texts, str) else list(texts)
    named: list[tuple[str, str, bool]] = []
    for text in texts:
        match = _NAMED_SPEC.match(text)
        named.append((match[1], match[2], True) if match else (candidate_name(text), text, False))
    given = [name for name, _, explicit in named if explicit]
    twice = sorted({name for name in given if given.count(name) > 1})
    if twice:
        raise ValueError(f"--model: the name(s) {twice} are given to more than one model; "
                         "each NAME= must name one candidate")
    if len(named) == 1:
        return [Candidate(named[0][0], named[0][1])]
    out: list[Candidate] = []
    taken = set(given)
    for name, spec, explicit in named:
        unique, n = name, 2
        while not explicit and (unique in taken or any(c.name == unique for c in out)):
            unique, n = f"{name}-{n}", n + 1
        out.append(Candidate(unique, spec, f"{MODEL_ROLE}[{unique}]"))
    return out


@dataclass(frozen=True)
class GateHarness:
    """A harness's spec made ready to score: its validator imported (with the time limit)
    and its prompt source bound to the session's template variables."""

    spec: Harness
    validate: Callable[[str, Mapping[str, Any]], HarnessResult]
    source: PromptSource

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def rule(self) -> GateRule:
        return self.spec.rule

    @property
    def samples(self) -> int:
        return self.spec.samples

    @property
    def prompts(self) -> Path:
        return self.source.path


@dataclass
class GateSession:
    config: pytest.Config
    active: bool = False
    started: float = field(default_factory=time.time)
    _settings: LoragateConfig | None = None
    _harnesses: dict[str, GateHarness] | None = None
    # Resources, opened on first use and closed by close(): the models by role, and the one
    # response cache they share.
    backends: dict[str, CachedBackend] = field(default_factory=dict)
    cache: ResponseCache | None = None
    records: SessionRecords = field(default_factory=SessionRecords)
    judge_failures: dict[str, GateCannotRun] = field(default_factory=dict)  # by judge role
    usage_errors: list[str] = field(default_factory=list)  # found while parametrizing
    document: VerdictDocument | None = None  # made once, at the end of the session
    # With several --model: what each candidate's items recorded (by role); ``records`` then
    # keeps what belongs to no candidate (other tests, session-wide errors).
    by_candidate: dict[str, SessionRecords] = field(default_factory=dict)
    documents: dict[str, VerdictDocument] = field(default_factory=dict)  # by candidate name
    table: CandidatesDocument | None = None  # the candidates side by side

    @classmethod
    def for_config(cls, config: pytest.Config) -> GateSession:
        active = any(config.getoption(name, None) for name in ACTIVATING_OPTIONS)
        return cls(config=config, active=active)

    @cached_property
    def candidates(self) -> list[Candidate]:
        """The models judged in this session, one per ``--model`` (parsed once: every item's
        report asks which records it belongs to)."""
        return candidates_of(self.config.getoption("model", None))

    @property
    def several(self) -> bool:
        return len(self.candidates) > 1

    def records_for(self, role: str | None) -> SessionRecords:
        """Where an item of candidate ``role`` records: its own records beside other
        candidates, the session's otherwise."""
        if role is None or not self.several:
            return self.records
        return self.by_candidate.setdefault(role, SessionRecords())

    # -- config ------------------------------------------------------------------------------

    @property
    def settings(self) -> LoragateConfig:
        """The loragate config of this session, read on first use."""
        if self._settings is None:
            self._settings = load_session_settings(self.config)
        return self._settings

    @property
    def harnesses(self) -> dict[str, GateHarness]:
        if self._harnesses is None:
            self._harnesses = resolve_harnesses(self.settings, open_judge=self.judge_backend)
        return self._harnesses

    def judge_backend(self, spec: str) -> CachedBackend:
        """A judge model, opened once per spec and cached like the model's answers. One that
        cannot be opened is tried once: every later judgement gets the same error at once,
        not another round of connection retries (the sample that meets it names it as the
        gate's error, which crosses xdist workers: :meth:`SampleRecorder.gate_error`)."""
        role = f"judge {spec}"
        if role in self.judge_failures:
            raise self.judge_failures[role]
        if role not in self.backends:
            try:
                self.backends[role] = open_judge_backend(self, spec)
            except GateCannotRun as exc:
                self.judge_failures[role] = exc
                raise
        return self.backends[role]

    @property
    def rules(self) -> dict[str, GateRule]:
        return {name: h.rule for name, h in self.harnesses.items()}

    def backend(self, role: str) -> CachedBackend:
        """The opened backend for ``role`` ("model" or "baseline"), opened on first use."""
        if role not in self.backends:
            self.backends[role] = open_backend_for(self, role)
        return self.backends[role]

    def close(self) -> None:
        for backend in self.backends.values():
            backend.close()
        self.backends.clear()
        if self.cache is not None:
            self.cache.close()
            self.cache = None

    def data_files(self) -> list[Path]:
        """The prompt sets and the canary file the verdict was judged on (for its data hash)."""
        gates = self.settings.gates
        files = [gates.prompts_dir]
        files += [h.prompts for h in self.harnesses.values()
                  if not _is_within(h.prompts, gates.prompts_dir)]
        canaries = self.settings.canaries
        files += [path for path in (canaries.file, canaries.forgetting_file) if path is not None]
        return files


def _is_within(path: Path, folder: Path) -> bool:
    try:
        path.resolve().relative_to(folder.resolve())
    except ValueError:
        return False
    return True


def config_path_for(config: pytest.Config) -> Path | None:
    """``--loragate-config``, else the ini option ``loragate_config`` (relative to the ini
    file), else none."""
    given = config.getoption("loragate_config", None)
    if given:
        return Path(given)
    ini_value = config.getini(INI_CONFIG)
    if ini_value:
        base = config.inipath.parent if config.inipath else config.rootpath
        return base / ini_value
    return None


def load_session_settings(config: pytest.Config) -> LoragateConfig:
    """The session's config (see :func:`config_path_for`), or the built-in defaults with
    paths relative to the rootdir. A config that cannot be used is a usage error."""
    path = config_path_for(config)
    try:
        if path is not None:
            return load_config(path, check_paths=False, gating_only=True)
        return resolve_paths(LoragateConfig(), Path(config.rootpath))
    except ConfigError as exc:
        raise pytest.UsageError(f"loragate config: {exc}") from None


def resolve_harnesses(settings: LoragateConfig,
                      open_judge: Callable[[str], Any] | None = None) -> dict[str, GateHarness]:
    """Each configured harness with its validator imported (a user's from the project root).

    A validator that does not import or has the wrong signature is a usage error naming the
    config field.
    """
    from loragate.harnesses.registry import HarnessError, load_validator, run_with_time_limit

    gates = settings.gates
    try:
        variables = template_variables(settings)
    except PromptFileError as exc:
        raise pytest.UsageError(f"loragate config: {exc}") from None
    resolved: dict[str, GateHarness] = {}
    for name, spec in gates.specs().items():
        try:
            function = (judge_validator(spec, open_judge) if spec.judge is not None
                        else load_validator(spec.validator, root=settings.root))
        except HarnessError as exc:
            where = f" in {settings.source_path}" if settings.source_path else ""
            raise pytest.UsageError(
                f"loragate config{where}: field 'gates.harnesses.{name}.validator': {exc}"
            ) from None

        def validate(text: str, record: Mapping[str, Any], _function=function) -> HarnessResult:
            return run_with_time_limit(_function, text, record, gates.validator_timeout_s)

        resolved[name] = GateHarness(spec=spec, validate=validate,
                                     source=PromptSource.of(spec, variables))
    return resolved


def judge_validator(spec: Harness, open_judge: Callable[[str], Any] | None) -> Any:
    """The harness's judge; its spec is checked now (a usage error), its model opened at the
    first judgement (a server that does not answer then fails samples as errors: the gate
    could not run, never a verdict on the model)."""
    from loragate.harnesses.model_judge import ModelJudge

    if open_judge is None or spec.judge is None:
        raise pytest.UsageError(f"harness {spec.name!r}: a judge needs a gate session")
    from loragate.backends.spec import SpecError, parse_spec

    model = spec.judge.model
    try:
        parse_spec(model)
    except (SpecError, OSError) as exc:
        raise pytest.UsageError(f"loragate config: field 'gates.harnesses.{spec.name}.judge."
                                f"model': {exc}") from None
    return ModelJudge(spec.judge, lambda: open_judge(model))


# ---------------------------------------------------------------------------------------------
# Opening the models: before the first test, so a bad spec or a dead server stops the session
# with its own status instead of failing every sample.

def option_of(role: str) -> str:
    """The command-line option a backend role comes from."""
    return "baseline" if role == "baseline" else "model"


class GateCannotRun(RuntimeError):
    """The model, the baseline or the response cache cannot be used for a reason that is not
    the user's input (a server that does not answer, a cache that cannot be opened)."""


def spec_for(state: GateSession, role: str) -> str | None:
    """The spec of a role: a candidate's (``model`` or ``model[NAME]``) or the baseline's
    (``--baseline``, else the config's ``canaries.baseline``)."""
    if role == "baseline":
        return state.config.getoption("baseline", None) or state.settings.canaries.baseline
    for candidate in state.candidates:
        if candidate.role == role:
            return candidate.spec
    return None


def check_spec(text: str, option: str) -> None:
    """A malformed spec, a missing, truncated or non-GGUF file: a one-line usage error."""
    from loragate.backends.spec import SpecError, parse_spec

    try:
        parse_spec(text)
    except (SpecError, OSError) as exc:
        raise pytest.UsageError(f"--{option} {text}: {exc}") from None


def open_backend_for(state: GateSession, role: str) -> CachedBackend:
    """Open ``role``'s backend, wrapped in the response cache (disabled by ``--no-cache``).

    A spec or file the backend cannot load is a usage error; a server that cannot be reached
    raises :class:`GateCannotRun`.
    """
    from loragate.backends.faults import BackendError, BackendUnavailable
    from loragate.backends.spec import SpecError, open_backend

    spec = spec_for(state, role)
    option = option_of(role)
    if not spec:
        hint = ("the gates need a model, e.g. --model gguf:PATH" if option == "model" else
                "the canaries compare the model with a baseline")
        pytest.skip(f"no --{option} given: {hint}")
    try:
        backend = open_backend(spec, state.settings.backend)
        backend.digest  # noqa: B018 - a server is asked here, once, before any sample
    except BackendUnavailable as exc:
        raise GateCannotRun(f"--{option} {spec}: {exc}") from None
    except (SpecError, OSError) as exc:
        raise pytest.UsageError(f"--{option} {spec}: {exc}") from None
    except BackendError as exc:
        raise GateCannotRun(f"--{option} {spec}: {exc}") from None
    from loragate.backends.cache import CachedBackend

    # Under --no-cache the cache is disabled (nothing read or stored) but the wrapper stays:
    # it holds the answers generated ahead for their items, so batching works either way.
    return CachedBackend(backend, response_cache(state))


def open_judge_backend(state: GateSession, spec: str) -> CachedBackend:
    """A judge's backend, opened at its first judgement (its spec was checked when the
    harness was resolved): a model that cannot be opened or a server that does not answer is
    a gate that cannot run, raised into the sample being judged."""
    from loragate.backends.cache import CachedBackend
    from loragate.backends.faults import BackendError, BackendUnavailable
    from loragate.backends.spec import SpecError, open_backend

    try:
        backend = open_backend(spec, state.settings.backend)
        backend.digest  # noqa: B018 - asked once, before its first judgement
    except (SpecError, OSError, BackendUnavailable, BackendError) as exc:
        raise GateCannotRun(f"judge {spec}: {exc}") from None
    return CachedBackend(backend, response_cache(state))


def response_cache(state: GateSession) -> ResponseCache:
    import sqlite3

    from loragate.backends.cache import ResponseCache

    if state.cache is None:
        path = state.settings.backend.cache_path
        try:
            state.cache = ResponseCache(path, enabled=not state.config.getoption("no_cache"))
        except (sqlite3.Error, OSError) as exc:
            raise GateCannotRun(f"response cache {path}: {exc}") from None
    return state.cache

