"""The bundled Web4 data: seven training files, the hold-out set, the harness prompt sets and
the canaries, generated deterministically from a seed.

Every answer is rendered by the same builders the harness tests use
(:mod:`loragate.harnesses.examples`, :mod:`loragate.harnesses.code_examples`), so the data
teaches exactly what the gates check. Training and held-out prompts draw their names and
topics from disjoint halves of the vocabulary, so no prompt set leaks into training.
"""

from __future__ import annotations

import json
import os
import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from loragate.data import vocab
from loragate.harnesses import code_examples as ce
from loragate.harnesses import examples as ex

TRAINING_FILES = ("style_core", "domain_patterns", "process_framework", "domain_representatives",
                  "style_refactor", "guardrails", "tool_awareness")
HARNESSES = ("pdca_schema", "pdca_template", "tron_format", "empty_constructor", "tool_success",
             "refusal")
# Samples per training file for each scale; "plan" is the plan's 37K in total.
SCALES: dict[str, dict[str, int]] = {
    "tiny": {"style_core": 60, "domain_patterns": 90, "process_framework": 110,
             "domain_representatives": 110, "style_refactor": 50, "guardrails": 160,
             "tool_awareness": 120},
    "plan": {"style_core": 5300, "domain_patterns": 5300, "process_framework": 5300,
             "domain_representatives": 5300, "style_refactor": 5300, "guardrails": 5200,
             "tool_awareness": 5300},
}
PROMPTS_PER_HARNESS = 100
EVAL_SAMPLES = 40


@dataclass(frozen=True)
class Pool:
    """One half of the vocabulary: training draws from ``train``, held-out sets from
    ``heldout``."""

    components: tuple[str, ...]
    topics: tuple[str, ...]
    agents: tuple[str, ...]
    paths: tuple[str, ...]


def split_pools() -> tuple[Pool, Pool]:
    def halves(items: tuple[str, ...]) -> tuple[tuple[str, ...], tuple[str, ...]]:
        return items[0::2], items[1::2]

    comps, topics = halves(vocab.COMPONENTS), halves(vocab.TOPICS)
    agents, paths = halves(vocab.AGENT_ROLES), halves(vocab.DOC_PATHS)
    return (Pool(comps[0], topics[0], agents[0], paths[0]),
            Pool(comps[1], topics[1], agents[1], paths[1]))


def _date(rng: random.Random) -> str:
    return (f"2025-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}-UTC-"
            f"{rng.randint(0, 23):02d}{rng.choice(('00', '15', '30', '45'))}")


def _slug(text: str) -> str:
    return "-".join(w.lower() for w in text.replace("/", " ").split() if w.isalnum())[:40]


# ------------------------------------------------------------------------- PDCA documents


def pdca_spec(rng: random.Random, pool: Pool) -> ex.PdcaSpec:
    topic = rng.choice(pool.topics)
    component = rng.choice(pool.components)
    date, prev = _date(rng), _date(rng)
    session = f"{date}-session"
    title = f"{component} {topic.split()[0].title()}"
    description = f"{topic} for {component}"
    role = rng.choice(pool.agents)
    branch = f"dev/{date}"
    folder = f"scrum.pmo/project.journal/{session}"
    return ex.PdcaSpec(
        title=title, description=description, date=date,
        objective=f"{topic.capitalize()} in the {component} component",
        cmm_badge="CMM3 (awaiting TRON review)",
        agent_name=f"{role.split()[0]} Agent", agent_role=role,
        branch=f"{branch} → Session branch", sync=f"origin/{branch} → Push after each PDCA",
        session=f"{session} → {topic}", sprint=f"Sprint {rng.randint(1, 40)}",
        task=f"{topic.capitalize()} ({component})", issues=rng.choice(vocab.ISSUES),
        previous_commit=f"{rng.getrandbits(28):07x} - {rng.choice(vocab.COMMITS)}",
        pdca_path=f"{folder}/{date}-{_slug(title)}.pdca.md",
        previous_pdca_path=f"{folder}/{prev}-session-start.pdca.md",
        git_ref=branch,
        artifacts=(("Changed Files",
                    f"components/{component}/0.1.0.0/src/ts/layer2/Default{component}.ts"),),
        decisions=_decisions(rng),
        tron_feedback=f"{topic} for {component.lower()}\npdca",
        feedback_timestamp=prev,
        answer=f"Working on {topic} for {component} now.",
        learning=rng.choice(vocab.LEARNINGS),
        plan=(f"**Objective:** {topic.capitalize()}",),
        do=(f"**1. {rng.choice(vocab.DO_STEPS)}**",),
        check=("**Verification Results:**", f"Tests {rng.randint(3, 40)} passed"),
        act=(f"**Success Achieved:** {topic} done for {component}",),
        emotional_headline=rng.choice(vocab.HEADLINES),
        emotional=((rng.choice(vocab.FEELINGS), "The step is documented."),),
        process_learning=("**PDCA Protocol:** document every significant step",),
        quality_impact=f"{component} follows the Web4 standard.",
        next_focus=f"Review {component} with TRON.",
    )


def _decisions(rng: random.Random) -> ex.Decisions:
    kind = rng.random()
    if kind < 0.4:
        return ex.AllClear(rng.choice(vocab.ALL_CLEAR_REASONS))
    count = rng.randint(1, 2)
    chosen = rng.sample(vocab.DECISIONS, count)
    if kind < 0.75:
        return tuple(ex.PendingDecision(title, options) for title, options in chosen)
    return tuple(ex.TakenDecision(title, options[0]) for title, options in chosen)


def pdca_request(spec: ex.PdcaSpec, rng: random.Random) -> str:
    ask = rng.choice(vocab.PDCA_ASKS)
    return (f"{ask} Title: {spec.title} - {spec.description}. Date: {spec.date}. "
            f"Role: {spec.agent_role}. Branch: {spec.git_ref}. "
            f"Previous commit: {spec.previous_commit}. Previous PDCA: {spec.previous_pdca_path}. "
            f"File: {spec.pdca_path}.")


def pdca_sample(rng: random.Random, pool: Pool) -> tuple[str, str, dict]:
    spec = pdca_spec(rng, pool)
    return pdca_request(spec, rng), ex.render_pdca(spec), {}


# ------------------------------------------------------------------------- TRON decisions


def tron_sample(rng: random.Random, pool: Pool) -> tuple[str, str, dict]:
    topic, component = rng.choice(pool.topics), rng.choice(pool.components)
    decisions = _decisions(rng)
    context: dict = {}
    if isinstance(decisions, ex.AllClear):
        request = f"Report to TRON on {topic} for {component}: nothing is open."
    elif isinstance(decisions[0], ex.TakenDecision):
        taken = "; ".join(f"{d.title}: {d.description}" for d in decisions)
        request = f"Record TRON's decisions on {topic} for {component}: {taken}."
    else:
        listed = "; ".join(f"{d.title} ({' / '.join(d.options)})" for d in decisions)
        request = f"Put the open choices on {topic} for {component} to TRON: {listed}."
    feedback = None
    if rng.random() < 0.35:
        feedback = f"{rng.choice(vocab.TRON_SAYINGS)} {component.lower()}"
        context["tron_feedback"] = feedback
        request += f' TRON wrote: "{feedback}". Quote it and answer.'
    answer = ex.render_tron_answer(decisions, feedback, timestamp=_date(rng),
                                   answer=f"Understood, continuing with {component}.")
    return request, answer, context


# ------------------------------------------------------------------------- TypeScript


def _component(rng: random.Random, pool: Pool) -> ce.Component:
    name = rng.choice(pool.components)
    fields = tuple(ce.ModelField(*f) for f in rng.sample(vocab.MODEL_FIELDS, rng.randint(1, 3)))
    return ce.Component(name=name, fields=(ce.ModelField("uuid", "string", '""'), *fields))


def typescript_sample(rng: random.Random, pool: Pool) -> tuple[str, str, dict]:
    component, layer = _component(rng, pool), rng.randint(1, 5)
    fields = ", ".join(f"{f.name}: {f.ts_type}" for f in component.fields)
    role = ce.LAYER_ROLES[layer]
    request = (f"{rng.choice(vocab.CODE_ASKS)} the layer{layer} {role} of the {component.name} "
               f"component (model fields: {fields}).")
    return request, ce.render_typescript_answer(component, layer), {}


def refactor_sample(rng: random.Random, pool: Pool) -> tuple[str, str, dict]:
    component, layer = _component(rng, pool), rng.choice((2, 4))
    broken = ce.render_class(component, layer).replace(
        "constructor() {", "constructor(private model: any) {", 1)
    request = ("Refactor this class to the Web4 empty-constructor pattern:\n\n```typescript\n"
               f"{broken.rstrip()}\n```")
    intro = (f"The constructor took parameters; configuration now goes through "
             f"`init(scenario)`. Here is {ce.class_name(component, layer)}:")
    return request, ce.render_typescript_answer(component, layer, intro=intro), {}


# ------------------------------------------------------------------------- tool calls


def tool_sample(rng: random.Random, pool: Pool) -> tuple[str, str, dict]:
    component = rng.choice(pool.components)
    base = f"components/{component}/0.1.0.0"
    src = f"{base}/src/ts/layer2/Default{component}.ts"
    files = {src: f"export class Default{component} {{\n  constructor() {{}}\n}}\n",
             f"{base}/README.md": f"# {component}\n\nThe {component} component.\n"}
    kind = rng.choice(("read", "list", "write", "edit", "search", "run"))
    if kind == "read":
        path = rng.choice(sorted(files))
        tool, args, request = "read_file", {"path": path}, f"Show me the file {path}."
    elif kind == "list":
        path = f"{base}/src/ts/layer2"
        tool, args, request = "list_files", {"path": path}, f"Which files are in {path}?"
    elif kind == "write":
        path = f"{base}/NOTES.md"
        content = f"# Notes on {component}\n"
        tool, args = "write_file", {"path": path, "content": content}
        request = f"Create {path} containing the line '# Notes on {component}'."
    elif kind == "edit":
        tool, args = "edit_file", {"path": src, "old": "constructor() {}",
                                   "new": "constructor() {\n    this.model = {};\n  }"}
        request = f"In {src}, make the constructor set this.model to an empty object."
    elif kind == "search":
        query = f"class Default{component}"
        tool, args = "search", {"query": query, "path": base}
        request = f"Find where '{query}' is defined under {base}."
    else:
        command = rng.choice(vocab.SAFE_COMMANDS)
        tool, args = "run_command", {"command": command}
        request = f"Run `{command}` for me."
    answer = ce.render_tool_answer(f"I'll use `{tool}` for that.", tool, args)
    return request, answer, {"expected": ce.tool_expected(files, tool, args)}


# ------------------------------------------------------------------------- refusals


def refusal_sample(rng: random.Random, pool: Pool) -> tuple[str, str, dict]:
    component = rng.choice(pool.components)
    if rng.random() < 0.5:
        kind, request, action, reason, alternative = rng.choice(vocab.REFUSALS)
        request = request.format(c=component)
        if kind == "stop":
            answer = ce.render_stop(detail=f"Nothing further is done on {component}.")
        elif kind == "warn":
            answer = ce.render_warned_decision(
                f"This would {action.format(c=component)}.", reason.capitalize(),
                action.format(c=component), (alternative.format(c=component),))
        else:
            answer = ce.render_decline(action.format(c=component), reason.format(c=component),
                                       alternative.format(c=component))
        return request, answer, {"expected": "refuse"}
    request, intro, tool, args = rng.choice(vocab.COMPLIANT)
    args = {k: v.format(c=component) for k, v in args.items()} if args else None
    answer = ce.render_compliance(intro.format(c=component), tool, args)
    return request.format(c=component), answer, {"expected": "comply"}


# ------------------------------------------------------------------------- assembly

Maker = Callable[[random.Random, Pool], tuple[str, str, dict]]
FILE_MAKERS: dict[str, tuple[Maker, ...]] = {
    "style_core": (typescript_sample, pdca_sample),
    "domain_patterns": (tron_sample,),
    "process_framework": (pdca_sample,),
    "domain_representatives": (typescript_sample,),
    "style_refactor": (refactor_sample,),
    "guardrails": (refusal_sample,),
    "tool_awareness": (tool_sample,),
}
HARNESS_MAKERS: dict[str, Maker] = {
    "pdca_schema": pdca_sample, "pdca_template": pdca_sample, "tron_format": tron_sample,
    "empty_constructor": typescript_sample, "tool_success": tool_sample,
    "refusal": refusal_sample,
}


def _unique(make: Maker, rng: random.Random, pool: Pool, count: int, seen: set[str],
            ) -> list[tuple[str, str, dict]]:
    out = []
    attempts = 0
    while len(out) < count:
        attempts += 1
        if attempts > count * 50:
            raise RuntimeError(f"{make.__name__}: cannot find {count} distinct samples")
        request, answer, context = make(rng, pool)
        key = " ".join(request.lower().split())
        if key in seen:
            continue
        seen.add(key)
        out.append((request, answer, context))
    return out


def _training_record(request: str, answer: str) -> dict[str, str]:
    return {"instruction": request, "input": "", "output": answer}


def generate(seed: int = 42, scale: str = "tiny") -> dict[str, list[dict[str, Any]]]:
    """Every file's records, keyed by path relative to ``data/``."""
    if scale not in SCALES:
        raise ValueError(f"scale must be one of {sorted(SCALES)}, got {scale!r}")
    train_pool, heldout_pool = split_pools()
    seen: set[str] = set()
    files: dict[str, list[dict[str, Any]]] = {}
    for name, makers in FILE_MAKERS.items():
        rng = random.Random(f"{seed}:{name}")
        count = SCALES[scale][name]
        records = []
        for index, make in enumerate(makers):
            share = count // len(makers) + (index < count % len(makers))
            records += [_training_record(r, a) for r, a, _ in
                        _unique(make, rng, train_pool, share, seen)]
        files[f"{name}.jsonl"] = records
    rng = random.Random(f"{seed}:eval")
    makers = list(HARNESS_MAKERS.values())
    files["eval.jsonl"] = [_training_record(r, a) for i in range(EVAL_SAMPLES)
                           for r, a, _ in _unique(makers[i % len(makers)], rng, heldout_pool,
                                                  1, seen)]
    for harness, make in HARNESS_MAKERS.items():
        rng = random.Random(f"{seed}:prompts:{harness}")
        records = []
        if harness == "refusal":
            samples = _balanced_refusals(rng, heldout_pool, seen)
        else:
            samples = _unique(make, rng, heldout_pool, PROMPTS_PER_HARNESS, seen)
        for number, (request, _, context) in enumerate(samples, start=1):
            records.append({"id": f"{harness}-{number:03d}",
                            "messages": [{"role": "user", "content": request}], **context})
        files[f"prompts/{harness}.jsonl"] = records
    files["canaries.jsonl"] = canaries()
    return files


def _balanced_refusals(rng: random.Random, pool: Pool, seen: set[str]
                       ) -> list[tuple[str, str, dict]]:
    wanted = {"refuse": PROMPTS_PER_HARNESS // 2, "comply": PROMPTS_PER_HARNESS // 2}
    out: list[tuple[str, str, dict]] = []
    while any(wanted.values()):
        for request, answer, context in _unique(refusal_sample, rng, pool, 1, seen):
            if wanted[context["expected"]]:
                wanted[context["expected"]] -= 1
                out.append((request, answer, context))
    return out


def canaries() -> list[dict[str, Any]]:
    """The 20 must-not-regress tasks: basic abilities and a few Web4 formats."""
    return [
        {"id": f"c{i:02d}", "task": task,
         "messages": [{"role": "user", "content": prompt}], "check": check}
        for i, (task, prompt, check) in enumerate(vocab.CANARIES, start=1)
    ]


def write_all(out_dir: Path, seed: int = 42, scale: str = "tiny") -> dict[str, int]:
    """Write every file under ``out_dir`` (each atomically); returns records per file."""
    counts = {}
    for relative, records in generate(seed, scale).items():
        path = out_dir / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
        partial = path.with_name(f".{path.name}.partial-{os.getpid()}")
        partial.write_text(text, encoding="utf-8")
        os.replace(partial, path)
        counts[relative] = len(records)
    return counts


