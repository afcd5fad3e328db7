"""The bundled Web4 data: seven training files, the hold-out set, the harness prompt sets, the
canaries and the forgetting probe, generated deterministically from a seed.

Every answer is rendered by the builders the harness tests use
(:mod:`loragate.data.examples`, :mod:`loragate.data.code_examples`), so the data
teaches exactly what the gates check; :func:`sample_failures` re-checks a sample with its
harnesses. Training and held-out prompts draw names and topics from disjoint halves of the
vocabulary (:func:`split_pools`), so no prompt set leaks into training; the canaries' and the
forgetting probe's prompts are fixed texts training never generates (:func:`generate_samples`
reserves them), while the Web4 facts the canaries ask about are taught in other words
(:func:`make_knowledge`). Answers are kept as
short as their format allows: a 135M model learns short, regular outputs far better.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import random
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from loragate.artifacts import file_digest, write_text_durably
from loragate.data import code_examples as ce
from loragate.data import examples as ex
from loragate.data import vocab
from loragate.harnesses.registry import HARNESS_NAMES

TRAINING_FILES = ("style_core", "domain_patterns", "process_framework", "domain_representatives",
                  "style_refactor", "guardrails", "tool_awareness")
# The prompt sets are written for the built-in harnesses, each by its maker below.
HARNESSES = HARNESS_NAMES
PROMPTS_PER_HARNESS = 100
EVAL_SAMPLES = 60
KEYWORDS = "keywords"  # the check of general-ability samples: canary-style keywords
TOOL_RULES = "tool_rules"  # a call inside another answer: well formed, schema and command rules
CANARY_CHECK = "canary"  # a knowledge answer: passes the check of the canary it teaches


@dataclass(frozen=True)
class Sample:
    """One request and its answer, with the checks the answer must pass: harness names (and
    ``"keywords"``) and the context they need (``tron_feedback``, ``expected``,
    ``keywords``)."""

    instruction: str
    answer: str
    checks: tuple[str, ...]
    context: dict[str, Any] = field(default_factory=dict)
    input: str = ""

    @property
    def prompt(self) -> str:
        """The user turn as training renders it (instruction, then input)."""
        return f"{self.instruction}\n\n{self.input}" if self.input.strip() else self.instruction

    def as_tuple(self) -> tuple[str, str, dict[str, Any]]:
        return self.prompt, self.answer, self.context

    def record(self) -> dict[str, str]:
        return {"instruction": self.instruction, "input": self.input, "output": self.answer}


@dataclass(frozen=True)
class Pool:
    """One half of the split vocabulary: training draws from one, held-out sets from the
    other."""

    components: tuple[str, ...]
    topics: tuple[tuple[str, str], ...]
    agents: tuple[str, ...]
    words: tuple[str, ...]


def split_pools() -> tuple[Pool, Pool]:
    """(training pool, held-out pool): even and odd indices of every split list."""
    def half(items: tuple, index: int) -> tuple:
        return items[index::2]

    return tuple(Pool(half(vocab.COMPONENTS, i), half(vocab.TOPICS, i),
                      half(vocab.AGENT_NAMES, i), half(vocab.GENERAL_WORDS, i))
                 for i in (0, 1))  # type: ignore[return-value]


# ------------------------------------------------------------------------- small helpers

_EPOCH = dt.datetime(2025, 1, 1, tzinfo=dt.timezone.utc)


def _moment(rng: random.Random) -> dt.datetime:
    return _EPOCH + dt.timedelta(minutes=rng.randrange(0, 365 * 24 * 60, 5))


def _stamp(moment: dt.datetime) -> str:
    """Web4's ``YYYY-MM-DD-UTC-HHMM``."""
    return moment.strftime("%Y-%m-%d-UTC-%H%M")


def _slug(text: str) -> str:
    return "-".join(re.findall(r"[a-z0-9]+", text.lower()))[:48].strip("-")


def _sha(rng: random.Random) -> str:
    return f"{rng.getrandbits(28):07x}"


@dataclass(frozen=True)
class Context:
    """The names one sample is about."""

    component: str
    topic: tuple[str, str]
    agent: str
    sprint: int
    branch: str

    @property
    def title(self) -> str:
        return f"{self.component} {self.topic[0]}"

    @property
    def doing(self) -> str:
        return self.topic[1].format(c=self.component)


def _context(rng: random.Random, pool: Pool) -> Context:
    component, topic, agent = (rng.choice(pool.components), rng.choice(pool.topics),
                               rng.choice(pool.agents))
    sprint = rng.randint(1, 40)
    branch = rng.choice(vocab.BRANCH_FORMS).format(a=agent.lower(), n=sprint,
                                                   cl=component.lower())
    return Context(component, topic, agent, sprint, branch)


def _fill(template: str, ctx: Context, rng: random.Random) -> str:
    return template.format(c=ctx.component, cl=ctx.component.lower(), t=ctx.topic[0].lower(),
                           b=ctx.branch, n=rng.randint(3, 40))


# ------------------------------------------------------------------------- TRON decisions


def _decisions(rng: random.Random) -> ex.Decisions:
    kind = rng.random()
    if kind < 0.35:
        return ex.AllClear(rng.choice(vocab.ALL_CLEAR_REASONS))
    chosen = rng.sample(vocab.DECISIONS, rng.choice((1, 1, 2)))
    if kind < 0.75:
        return tuple(ex.PendingDecision(title, options) for title, options in chosen)
    return tuple(ex.TakenDecision(title, rng.choice(options)) for title, options in chosen)


def _feedback(rng: random.Random, ctx: Context) -> str:
    return f"{rng.choice(vocab.TRON_SAYINGS)} {ctx.component.lower()}"


def make_tron(rng: random.Random, pool: Pool) -> Sample:
    ctx = _context(rng, pool)
    decisions = _decisions(rng)
    about = f"{ctx.topic[0].lower()} for {ctx.component}"
    if isinstance(decisions, ex.AllClear):
        request = rng.choice((f"Report to TRON on {about}: nothing is open.",
                              f"Tell TRON there is nothing to decide on {about}.",
                              f"Any decisions for TRON on {about}? None are open."))
    elif isinstance(decisions[0], ex.TakenDecision):
        taken = "; ".join(f"{d.title}: {d.description}" for d in decisions)
        request = rng.choice((f"Record TRON's decisions on {about}: {taken}.",
                              f"TRON decided on {about}: {taken}. Write the decision block."))
    else:
        listed = "; ".join(f"{d.title} ({' / '.join(d.options)})" for d in decisions)
        request = rng.choice((f"Put the open choices on {about} to TRON: {listed}.",
                              f"Ask TRON to decide on {about}: {listed}.",
                              f"I need TRON's decision on {about}: {listed}."))
    context: dict[str, Any] = {}
    feedback = None
    if rng.random() < 0.35:
        feedback = _feedback(rng, ctx)
        context["tron_feedback"] = feedback
        request += f' TRON wrote: "{feedback}". Quote it and answer.'
    answer = ex.render_tron_answer(decisions, feedback, timestamp=_stamp(_moment(rng)),
                                   answer=f"Understood, continuing with {ctx.component}.")
    return Sample(request, answer, ("tron_format",), context)


# ------------------------------------------------------------------------- PDCA documents


def pdca_spec(rng: random.Random, pool: Pool) -> tuple[ex.PdcaSpec, Context]:
    """A complete PDCA in template 3.2.4.2, one line per field and section."""
    ctx = _context(rng, pool)
    moment = _moment(rng)
    folder = rng.choice(vocab.JOURNAL_FOLDERS).format(a=ctx.agent.lower(), n=ctx.sprint)
    previous_topic = rng.choice([t for t in pool.topics if t != ctx.topic])
    path = f"{folder}/{_slug(ctx.title)}.pdca.md"
    previous = f"{folder}/{_slug(ctx.component + ' ' + previous_topic[0])}.pdca.md"
    role = f"{rng.choice(vocab.ROLES)} → {rng.choice(vocab.ROLE_FOCUS)}"
    artifacts: tuple[tuple[str, str], ...] = ()
    if rng.random() < 0.2:
        artifacts = (("Changed Files",
                      f"components/{ctx.component}/src/ts/layer2/Default{ctx.component}.ts"),)
    feeling, feeling_text = rng.choice(vocab.FEELINGS)
    spec = ex.PdcaSpec(
        title=ctx.title, description=ctx.doing, date=_stamp(moment),
        objective=ctx.doing[0].upper() + ctx.doing[1:], cmm_badge=rng.choice(vocab.CMM_BADGES),
        agent_name=ctx.agent, agent_role=role, branch=ctx.branch,
        sync=f"origin/{ctx.branch} → push after each PDCA",
        session=f"{ctx.topic[0]} session", sprint=f"Sprint {ctx.sprint}",
        task=f"{ctx.topic[0]} for {ctx.component}", issues=rng.choice(vocab.ISSUES),
        previous_commit=f"{_sha(rng)} - {rng.choice(vocab.COMMIT_MESSAGES)}",
        pdca_path=path, previous_pdca_path=previous, git_ref=ctx.branch, artifacts=artifacts,
        decisions=_decisions(rng), tron_feedback=_feedback(rng, ctx),
        # TRON's words arrive with the request, so they carry the request's time.
        feedback_timestamp=_stamp(moment),
        answer=_fill(rng.choice(vocab.ANSWERS), ctx, rng),
        learning=rng.choice(vocab.LEARNINGS),
        plan=(_fill(rng.choice(vocab.PLAN_LINES), ctx, rng),),
        do=(_fill(rng.choice(vocab.DO_LINES), ctx, rng),),
        check=(_fill(rng.choice(vocab.CHECK_LINES), ctx, rng),),
        act=(_fill(rng.choice(vocab.ACT_LINES), ctx, rng),),
        emotional_headline=rng.choice(vocab.HEADLINES),
        emotional=((feeling, _fill(feeling_text, ctx, rng)),),
        process_learning=(rng.choice(vocab.PROCESS_LEARNINGS),),
        quality_impact=_fill(rng.choice(vocab.QUALITY_IMPACTS), ctx, rng),
        next_focus=f"{previous_topic[0]} for {ctx.component}.",
    )
    return spec, ctx


def pdca_request(spec: ex.PdcaSpec, rng: random.Random) -> str:
    """What the author tells the agent: everything the header needs, TRON's words verbatim."""
    return (f"{rng.choice(vocab.PDCA_ASKS)} Title: {spec.title} - {spec.description}. "
            f"Date: {spec.date}. Agent: {spec.agent_name}, {spec.agent_role}, branch "
            f"{spec.git_ref}. Previous commit: {spec.previous_commit}. Previous PDCA: "
            f"{spec.previous_pdca_path}. File: {spec.pdca_path}. "
            f'TRON: "{spec.tron_feedback}".')


def make_pdca(rng: random.Random, pool: Pool) -> Sample:
    spec, _ = pdca_spec(rng, pool)
    return Sample(pdca_request(spec, rng), ex.render_pdca(spec),
                  ("pdca_schema", "pdca_template", "tron_format"),
                  {"tron_feedback": spec.tron_feedback})


# ------------------------------------------------------------------------- TypeScript


def _component(rng: random.Random, pool: Pool) -> ce.Component:
    name = rng.choice(pool.components)
    fields = tuple(ce.ModelField(*f) for f in rng.sample(vocab.MODEL_FIELDS, rng.randint(1, 3)))
    return ce.Component(name=name, fields=(ce.ModelField("uuid", "string", '""'), *fields),
                        owner=rng.choice(("", "", "web4")))


def _fields_text(component: ce.Component) -> str:
    return ", ".join(f"{f.name}: {f.ts_type}" for f in component.fields)


def make_typescript(rng: random.Random, pool: Pool) -> Sample:
    component, layer = _component(rng, pool), rng.randint(1, 5)
    what = f"the layer{layer} {ce.LAYER_ROLES[layer]} of the {component.name} component"
    if layer == 3:
        # An interface alone holds no class, and the harness needs one to judge (spec: at least
        # one class present): the request names the implementation its answer carries.
        what += " and its layer2 implementation"
    # The interface layer answers with two blocks already; a test or an extra method would
    # make the answer long without teaching more of the pattern.
    with_test = layer != 3 and rng.random() < 0.2
    request = (rng.choice(vocab.CODE_ASKS).format(what=what)
               + f" Model fields: {_fields_text(component)}."
               + (" Add a Vitest test." if with_test else ""))
    extra = layer != 3 and not with_test and rng.random() < 0.3
    order = ce.MEMBERS if extra else ce.MEMBERS[:3]
    answer = ce.render_typescript_answer(component, layer, ce.TsStyle(member_order=order),
                                         with_test=with_test)
    return Sample(request, answer, ("empty_constructor",))


REFACTOR_FAULTS: dict[str, str] = {
    "empty-constructor": "The constructor took parameters; configuration now goes through "
                         "`init(scenario)`.",
    "init-scenario": "`init` took a plain value; it now takes the scenario and returns `this`.",
    "init-returns-this": "`init` returned nothing; it now returns `this` so calls chain.",
    "factory": "The static factory is gone: build it with `new {name}().init(scenario)`.",
    "toScenario": "It had no `toScenario()`; it now returns its state as a scenario.",
}


def make_refactor(rng: random.Random, pool: Pool) -> Sample:
    component, layer = _component(rng, pool), rng.choice((1, 2, 4, 5))
    fault = rng.choice(sorted(REFACTOR_FAULTS))
    broken = ce.render_class(component, layer, ce.TsStyle(member_order=ce.MEMBERS[:3]),
                             omit=fault)
    instruction = rng.choice(("Refactor this class to the Web4 empty-constructor pattern.",
                              "Fix this class so it follows the Web4 rules.",
                              "Make this class Web4 compliant."))
    name = ce.class_name(component, layer)
    intro = REFACTOR_FAULTS[fault].format(name=name) + f" Here is {name}:"
    answer = ce.render_typescript_answer(component, layer,
                                         ce.TsStyle(member_order=ce.MEMBERS[:3]), intro=intro)
    return Sample(instruction, answer, ("empty_constructor",),
                  input=f"```typescript\n{broken.rstrip()}\n```")


# ------------------------------------------------------------------------- tool calls


def sandbox_files(component: str, version: str) -> dict[str, str]:
    """The files a tool sample's sandbox holds: a small Web4 component."""
    base = f"components/{component}/{version}"
    return {
        f"{base}/README.md": f"# {component}\n\nThe {component} component.\n",
        f"{base}/package.json": (f'{{\n  "name": "@web4/{component.lower()}",\n'
                                 f'  "version": "{version}",\n  "type": "module"\n}}\n'),
        f"{base}/src/ts/layer2/Default{component}.ts":
            f"export class Default{component} {{\n  constructor() {{}}\n}}\n",
        f"{base}/src/ts/layer3/{component}.interface.ts":
            f"export interface {component} {{\n  toScenario(): object;\n}}\n",
        f"{base}/test/{component}.test.ts":
            f'import {{ describe, it }} from "jest";\n\ndescribe("{component}", () => {{}});\n',
    }


def _tool_call(rng: random.Random, ctx: Context, files: dict[str, str], base: str,
               version: str) -> tuple[str, str, dict[str, Any], str | None]:
    """(request, tool, arguments, command pattern) for one kind of tool use."""
    c = ctx.component
    kind = rng.choice(("read", "read", "list", "write", "edit", "edit", "search", "run", "run"))
    if kind == "read":
        path = rng.choice(sorted(files))
        request = rng.choice(("Show me {p}.", "Open {p}.", "What is in {p}?", "Read {p}."))
        return request.format(p=path), "read_file", {"path": path}, None
    if kind == "list":
        path = rng.choice((base, f"{base}/src/ts/layer2", f"{base}/test", f"{base}/src/ts"))
        request = rng.choice(("Which files are in {p}?", "List the folder {p}.",
                              "What does {p} contain?"))
        return request.format(p=path), "list_files", {"path": path}, None
    if kind == "write":
        name = rng.choice(("NOTES.md", "TODO.md", "docs/usage.md", "CHANGELOG.md"))
        path, line = f"{base}/{name}", f"# {ctx.topic[0]} for {c}"
        request = rng.choice(("Create {p} containing the line '{l}'.",
                              "Write a new file {p} with the text '{l}'."))
        return request.format(p=path, l=line), "write_file", {"path": path,
                                                               "content": f"{line}\n"}, None
    if kind == "edit":
        path, old, new = rng.choice((
            (f"{base}/package.json", version, _next_version(version)),
            (f"{base}/test/{c}.test.ts", 'from "jest"', 'from "vitest"'),
            (f"{base}/README.md", f"The {c} component.", f"The {c} component ({ctx.doing})."),
        ))
        request = rng.choice(("In {p}, replace '{o}' with '{n}'.",
                              "Edit {p}: change '{o}' to '{n}'."))
        return request.format(p=path, o=old, n=new), "edit_file", {"path": path, "old": old,
                                                                   "new": new}, None
    if kind == "search":
        query, path = rng.choice(((f"Default{c}", base), ("jest", base),
                                  (f"interface {c}", f"{base}/src")))
        request = rng.choice(("Find '{q}' under {p}.", "Where does '{q}' occur in {p}?",
                              "Search {p} for '{q}'."))
        return request.format(q=query, p=path), "search", {"query": query, "path": path}, None
    template, command, pattern = rng.choice(vocab.COMMANDS)
    escaped = pattern.format(c=re.escape(c), b=re.escape(ctx.branch))
    return (_fill(template, ctx, rng), "run_command", {"command": _fill(command, ctx, rng)},
            escaped)


def _next_version(version: str) -> str:
    head, last = version.rsplit(".", 1)
    return f"{head}.{int(last) + 1}"


def make_tool(rng: random.Random, pool: Pool) -> Sample:
    ctx = _context(rng, pool)
    version = f"0.{rng.randint(1, 3)}.{rng.randint(0, 5)}.{rng.randint(0, 9)}"
    base = f"components/{ctx.component}/{version}"
    files = sandbox_files(ctx.component, version)
    request, tool, arguments, pattern = _tool_call(rng, ctx, files, base, version)
    intro = rng.choice(vocab.TOOL_INTROS).format(tool=tool)
    answer = ce.render_tool_answer(intro, tool, arguments)
    expected = ce.tool_expected(files, tool, arguments, command_pattern=pattern)
    if tool == "edit_file":
        # The effect is the file's new content: rewriting the whole file does the job too.
        expected["tool"] = ["edit_file", "write_file"]
    return Sample(request, answer, ("tool_success",), {"expected": expected})


# ------------------------------------------------------------------------- refusals


def make_refusal(rng: random.Random, pool: Pool, label: str | None = None) -> Sample:
    """A refusal (stop, warned decision, decline) or an ordinary answer to a request that
    sounds risky but is allowed; ``label`` forces one side."""
    ctx = _context(rng, pool)
    label = label or rng.choice(("refuse", "comply"))
    if label == "refuse":
        kind, requests, action, reason, alternative = rng.choice(vocab.REFUSALS)
        request = _fill(rng.choice(requests), ctx, rng)
        action, reason, alternative = (_fill(t, ctx, rng) for t in (action, reason, alternative))
        if kind == "stop":
            answer = ce.render_stop(detail=f"Nothing further is done on {ctx.component}.")
        elif kind == "warn":
            answer = ce.render_warned_decision(f"This would {action}.", reason, action,
                                               (alternative,))
        else:
            answer = ce.render_decline(action, reason, alternative)
    else:
        requests, intro, tool, arguments = rng.choice(vocab.COMPLIANT)
        request = _fill(rng.choice(requests), ctx, rng)
        arguments = {k: _fill(v, ctx, rng) for k, v in arguments.items()} if arguments else None
        answer = ce.render_compliance(_fill(intro, ctx, rng), tool, arguments)
        if tool is not None:
            return Sample(request, answer, ("refusal", TOOL_RULES), {"expected": label})
    return Sample(request, answer, ("refusal",), {"expected": label})


# ------------------------------------------------------------------------- general abilities


def make_general(rng: random.Random, pool: Pool) -> Sample:
    """A plain question with a short correct answer, so tuning keeps the basics."""
    request, answer, keywords = rng.choice(vocab.GENERAL)
    x, y, word = rng.randint(2, 60), rng.randint(2, 60), rng.choice(pool.words)
    values = {"x": x, "y": y, "w": word, "W": word.capitalize(), "mx": max(x, y),
              "prod": x * y, "diff": x - y, "wlen": len(word), "wup": word.upper(), "x1": x + 1}
    keywords = [k.format(**values) for k in keywords]
    return Sample(request.format(**values), answer.format(**values), (KEYWORDS,),
                  {KEYWORDS: keywords})


# ------------------------------------------------------------------------- Web4 knowledge


def make_knowledge(rng: random.Random, pool: Pool, task: str | None = None) -> Sample:
    """A question about one Web4 fact a canary asks about (``task``: that canary's task), in
    other words than the canary's, whose answer passes that canary's check."""
    task = task or rng.choice(sorted(vocab.KNOWLEDGE))
    questions, answers = vocab.KNOWLEDGE[task]
    component = rng.choice(pool.components)
    question, answer = (rng.choice(questions).format(c=component),
                        rng.choice(answers).format(c=component))
    # The plan scale asks each fact ~400 times: leads keep those prompts distinct.
    question = rng.choice(vocab.KNOWLEDGE_LEADS) + question
    return Sample(question, answer, (CANARY_CHECK,), {CANARY_CHECK: canary_check(task)})


def canary_check(task: str) -> dict[str, Any]:
    """The check of the canary whose task is ``task``."""
    for name, _, check in vocab.CANARIES:
        if name == task:
            return check
    raise KeyError(f"no canary with task {task!r}")


def _knowledge(count: int, rng: random.Random, pool: Pool, seen: set[str]) -> list[Sample]:
    """Knowledge samples taking the facts in turn, so every fact is taught at every scale."""
    tasks = list(vocab.KNOWLEDGE)
    out: list[Sample] = []
    for index in range(count):
        task = tasks[index % len(tasks)]
        out += _unique(lambda r, p, t=task: make_knowledge(r, p, t), rng, pool, 1, seen)
    return out


# ------------------------------------------------------------------------- compatibility


def pdca_sample(rng: random.Random, pool: Pool) -> tuple[str, str, dict[str, Any]]:
    """(request, PDCA answer, context) for callers that want plain tuples."""
    return make_pdca(rng, pool).as_tuple()


def tool_sample(rng: random.Random, pool: Pool) -> tuple[str, str, dict[str, Any]]:
    """(request, tool-call answer, context with ``expected``)."""
    return make_tool(rng, pool).as_tuple()


# ------------------------------------------------------------------------- assembly

Maker = Callable[[random.Random, Pool], Sample]
MAKERS: dict[str, Maker] = {
    "pdca": make_pdca, "tron": make_tron, "typescript": make_typescript,
    "refactor": make_refactor, "tool": make_tool, "refusal": make_refusal,
    "general": make_general,
}
# Samples per training file, by maker, for each scale; "plan" is the plan's 37K in total.
FILE_PLAN: dict[str, dict[str, int]] = {
    # TRON blocks are also in every PDCA: style_core gives up 20 of its TRON samples to the
    # Web4 knowledge, so the plan scale stays at the plan's 37K.
    # The full CPU run (reports/recorded/cpu-full) failed the knowledge canaries with 5 samples
    # a fact and a general canary with a tool call: 15 a fact and more general answers now,
    # paid for with TypeScript, TRON and refactor samples, which passed with room to spare.
    "style_core": {"general": 120, "tron": 10, "tool": 30},
    "domain_patterns": {"tron": 80, "typescript": 80},
    "process_framework": {"pdca": 260, "knowledge": 165},
    "domain_representatives": {"typescript": 100, "pdca": 60},
    "style_refactor": {"refactor": 60},
    "guardrails": {"refusal": 260},
    "tool_awareness": {"tool": 180},
}
SCALES: dict[str, int] = {"tiny": 1, "plan": 27}
HARNESS_MAKERS: dict[str, Maker] = {
    "pdca_schema": make_pdca, "pdca_template": make_pdca, "tron_format": make_tron,
    "empty_constructor": make_typescript, "tool_success": make_tool, "refusal": make_refusal,
}


def _key(sample: Sample) -> str:
    return " ".join(sample.prompt.split()).casefold()


def _unique(make: Callable[[random.Random, Pool], Sample], rng: random.Random, pool: Pool,
            count: int, seen: set[str]) -> list[Sample]:
    out: list[Sample] = []
    attempts = 0
    while len(out) < count:
        attempts += 1
        if attempts > count * 50 + 100:
            raise RuntimeError(f"{getattr(make, '__name__', make)}: cannot find {count} "
                               "distinct samples")
        sample = make(rng, pool)
        if _key(sample) not in seen:
            seen.add(_key(sample))
            out.append(sample)
    return out


def _balanced(label_count: int, rng: random.Random, pool: Pool, seen: set[str]) -> list[Sample]:
    """Refusal samples alternating refuse / comply, so every even-length prefix is balanced
    (the tiny profile gates on the first prompts only)."""
    out: list[Sample] = []
    for index in range(label_count):
        label = ("refuse", "comply")[index % 2]
        out += _unique(lambda r, p, lab=label: make_refusal(r, p, lab), rng, pool, 1, seen)
    return out


def generate_samples(seed: int = 42, scale: str = "tiny") -> dict[str, list[Sample]]:
    """The samples of every training file and of ``eval.jsonl``, with their checks."""
    if scale not in SCALES:
        raise ValueError(f"scale must be one of {sorted(SCALES)}, got {scale!r}")
    train_pool, heldout_pool = split_pools()
    # The canaries' and the forgetting probe's prompts are never generated for any set.
    seen: set[str] = {_key(Sample(prompt, "", ())) for _, prompt, _ in
                      (*vocab.CANARIES, *vocab.FORGETTING)}
    files: dict[str, list[Sample]] = {}
    for name in TRAINING_FILES:
        rng = random.Random(f"{seed}:{name}")
        samples: list[Sample] = []
        for maker, count in FILE_PLAN[name].items():
            count *= SCALES[scale]
            if maker == "refusal":
                samples += _balanced(count, rng, train_pool, seen)
            elif maker == "knowledge":
                samples += _knowledge(count, rng, train_pool, seen)
            else:
                samples += _unique(MAKERS[maker], rng, train_pool, count, seen)
        rng.shuffle(samples)
        files[f"{name}.jsonl"] = samples
    rng = random.Random(f"{seed}:eval")
    kinds = list(MAKERS)
    files["eval.jsonl"] = [
        s for i in range(EVAL_SAMPLES)
        for s in _unique(MAKERS[kinds[i % len(kinds)]], rng, heldout_pool, 1, seen)]
    files.update(_prompt_samples(seed, heldout_pool, seen))
    return files


def eval_kinds(seed: int = 42, scale: str = "tiny") -> dict[str, str]:
    """The maker (``pdca``, ``tron``, ``tool`` ...) of each sample of the generated
    ``eval.jsonl``, by its user turn: what a held-out loss per format groups by."""
    kinds = list(MAKERS)
    held_out = generate_samples(seed, scale)["eval.jsonl"]
    return {sample.prompt: kinds[i % len(kinds)] for i, sample in enumerate(held_out)}


def _prompt_samples(seed: int, pool: Pool, seen: set[str]) -> dict[str, list[Sample]]:
    out: dict[str, list[Sample]] = {}
    for harness, make in HARNESS_MAKERS.items():
        rng = random.Random(f"{seed}:prompts:{harness}")
        if harness == "refusal":
            out[f"prompts/{harness}.jsonl"] = _balanced(PROMPTS_PER_HARNESS, rng, pool, seen)
        else:
            out[f"prompts/{harness}.jsonl"] = _unique(make, rng, pool, PROMPTS_PER_HARNESS,
                                                      seen)
    return out


def _prompt_record(harness: str, number: int, sample: Sample) -> dict[str, Any]:
    context = {k: v for k, v in sample.context.items() if k in ("tron_feedback", "expected")}
    if harness.startswith("pdca"):
        context = {}  # the PDCA harnesses take no context
    return {"id": f"{harness}-{number:03d}",
            "messages": [{"role": "user", "content": sample.prompt}], **context}


def generate(seed: int = 42, scale: str = "tiny") -> dict[str, list[dict[str, Any]]]:
    """Every file's records, keyed by path relative to ``data/``."""
    records: dict[str, list[dict[str, Any]]] = {}
    for name, samples in generate_samples(seed, scale).items():
        if name.startswith("prompts/"):
            harness = name.removeprefix("prompts/").removesuffix(".jsonl")
            records[name] = [_prompt_record(harness, i, s) for i, s in enumerate(samples, 1)]
        else:
            records[name] = [s.record() for s in samples]
    records["canaries.jsonl"] = canaries()
    records["forgetting.jsonl"] = forgetting()
    return records


def _canary_records(prefix: str, tasks: tuple[tuple[str, str, dict[str, Any]], ...]
                    ) -> list[dict[str, Any]]:
    records = []
    for i, (task, prompt, check) in enumerate(tasks, start=1):
        record = {"id": f"{prefix}{i:02d}", "task": task,
                  "messages": [{"role": "user", "content": prompt}], "check": check}
        if task in vocab.PROBES:
            record["probes"] = [{"right": right, "wrong": wrong}
                                for right, wrong in vocab.PROBES[task]]
        records.append(record)
    return records


def canaries() -> list[dict[str, Any]]:
    """The 20 must-not-regress tasks: Web4 knowledge and habits, then coding basics."""
    return _canary_records("c", vocab.CANARIES)


def forgetting() -> list[dict[str, Any]]:
    """The forgetting probe: general-knowledge prompts, compared with the baseline."""
    return _canary_records("f", vocab.FORGETTING)


def sample_failures(sample: Sample) -> list[str]:
    """Why ``sample``'s answer fails one of its own checks (empty: it passes them all)."""
    from loragate.canaries import check_canary
    from loragate.harnesses.registry import score
    from loragate.harnesses.tools import call_reasons, find_calls

    reasons: list[str] = []
    for check in sample.checks:
        if check == TOOL_RULES:
            calls = find_calls(sample.answer)
            reasons += [f"{check}: no tool call"] if not calls else []
            for found in calls:
                problems = [found.error] if found.call is None else call_reasons(found.call)
                reasons += [f"{check}: {found.where}: {p}" for p in problems if p]
            continue
        if check == KEYWORDS:
            result = check_canary({"id": "sample", "check": {KEYWORDS: sample.context[KEYWORDS]}},
                                  sample.answer)
        elif check == CANARY_CHECK:
            result = check_canary({"id": "sample", "check": sample.context[CANARY_CHECK]},
                                  sample.answer)
        elif check == "refusal":
            # The generator writes refusals in the certain forms: the form rules must read
            # them (the classifier judges other models' wording, not these templates).
            from loragate.harnesses.refusal import validate

            result = validate(sample.answer, sample.context["expected"], judge="rules")
        else:
            result = score(check, sample.answer, sample.context)
        reasons += [f"{check}: {reason}" for reason in result.reasons]
    return reasons


def _write_unless_same(path: Path, text: str) -> None:
    """Write ``text`` whole (durably) unless ``path`` already holds exactly it: an unchanged
    file keeps its mtime, so what is keyed on it (the digest memo) stays valid."""
    data = text.encode("utf-8")
    if path.is_file() and path.stat().st_size == len(data) and file_digest(path) == \
            hashlib.sha256(data).hexdigest():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text_durably(path, text)


def generate_all(out_dir: Path, seed: int = 42, scale: str = "tiny") -> dict[str, int]:
    """Write every file under ``out_dir`` (each whole, unchanged ones left alone); returns
    records per file."""
    counts: dict[str, int] = {}
    for relative, records in generate(seed, scale).items():
        text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
        _write_unless_same(Path(out_dir) / relative, text)
        counts[relative] = len(records)
    return counts


write_all = generate_all  # the earlier name
