"""Deterministic builders of compliant answers for ``empty_constructor``, ``tool_success`` and
``refusal``: TypeScript classes of the five Web4 layers, tool-call answers, and refusal or
compliance answers.

Every builder is a pure function of its parameters (no randomness, no clock), so the data
generator varies content by passing different values and gets the same bytes for the same
values. ``TsStyle`` renders harmless surface changes (indentation, comments, member order,
blank lines) and the variations of the pattern Web4's own code uses (an async ``init``, a
declared return type naming the class or its interface, a CLI's ``static async start``,
``static fromJSON`` and a singleton ``getInstance``); ``omit`` in ``render_class`` breaks one
rule for negative examples.

``render_typescript_answer`` passes ``empty_constructor``; ``render_tool_answer`` passes
``tool_success`` with the ``expected`` dict that ``tool_expected`` builds for it;
``render_stop``, ``render_decline`` and ``render_warned_decision`` are classified "refuse" and
``render_compliance`` "comply" by ``refusal``.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

LAYER_FOLDERS: dict[int, str] = {1: "layer1", 2: "layer2", 3: "layer3", 4: "layer4",
                                 5: "layer5"}
LAYER_ROLES: dict[int, str] = {1: "infrastructure", 2: "default implementation",
                               3: "interface", 4: "controller", 5: "CLI"}
MEMBERS: tuple[str, ...] = ("constructor", "init", "toScenario", "extra")


@dataclass(frozen=True)
class ModelField:
    """A field of the component's model: name, TypeScript type and default literal."""

    name: str
    ts_type: str
    default: str


@dataclass(frozen=True)
class Component:
    """A Web4 component: its base name (``User``), version and model fields."""

    name: str
    fields: tuple[ModelField, ...] = (ModelField("uuid", "string", '""'),
                                      ModelField("name", "string", '""'))
    version: str = "0.1.0.0"
    owner: str = ""

    @property
    def model_type(self) -> str:
        return f"{self.name}Model"


INIT_TYPES: tuple[str, ...] = ("this", "class", "interface")
STATICS: tuple[str, ...] = ("start", "fromJSON", "getInstance")
OMITS: tuple[str, ...] = ("empty-constructor", "init", "init-scenario", "init-returns-this",
                          "toScenario", "factory", "factory-arguments")


@dataclass(frozen=True)
class TsStyle:
    """Surface variation of rendered TypeScript, and the compliant variations of the pattern.

    ``init_type``: what ``init`` declares it returns (``this``, ``class``: the class's name,
    ``interface``: the component interface where the class implements one, else the class);
    ``async_init``: ``async init(…): Promise<…>``; ``optional_scenario``: ``scenario?``;
    ``statics``: static helpers to add (``start`` on a layer5 CLI only, ``fromJSON``,
    ``getInstance``), each making the object with ``new X()`` and configuring it only
    through ``init``."""

    indent: int = 2
    comments: bool = False
    blank_lines: int = 1
    member_order: tuple[str, ...] = MEMBERS
    return_annotation: bool = True
    quote: str = '"'
    init_type: str = "this"
    async_init: bool = False
    optional_scenario: bool = False
    statics: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.init_type not in INIT_TYPES:
            raise ValueError(f"TsStyle.init_type must be one of {INIT_TYPES}, got "
                             f"{self.init_type!r}")
        unknown = [name for name in self.statics if name not in STATICS]
        if unknown:
            raise ValueError(f"TsStyle.statics: unknown {unknown}; known: {STATICS}")


def class_name(component: Component, layer: int) -> str:
    """The class a layer holds: layer2 ``Default<Name>``, layer4 ``<Name>Controller``,
    layer5 ``<Name>CLI``, layer1 ``<Name>Store``; layer3 has the interface only."""
    return {1: f"{component.name}Store", 2: f"Default{component.name}",
            3: f"Default{component.name}", 4: f"{component.name}Controller",
            5: f"{component.name}CLI"}[layer]


def file_path(component: Component, layer: int) -> str:
    name = component.name if layer == 3 else class_name(component, layer)
    suffix = ".interface.ts" if layer == 3 else ".ts"
    return f"src/ts/{LAYER_FOLDERS[layer]}/{name}{suffix}"


def _init_type(component: Component, layer: int, style: TsStyle) -> str:
    """The type ``init`` declares it returns, before any ``Promise<…>``."""
    if style.init_type == "interface" and layer in (2, 3):
        return component.name
    if style.init_type in ("class", "interface"):
        return class_name(component, layer)
    return "this"


def _init_annotation(component: Component, layer: int, style: TsStyle) -> str:
    if not style.return_annotation:
        return ""
    value = _init_type(component, layer, style)
    return f": Promise<{value}>" if style.async_init else f": {value}"


def _model_literal(component: Component) -> str:
    return "{ " + ", ".join(f"{f.name}: {f.default}" for f in component.fields) + " }"


def _extra_method(component: Component, layer: int, pad: str) -> list[str]:
    """One layer-typical method that returns this (keeps the class realistic)."""
    first = component.fields[0].name if component.fields else "uuid"
    if layer == 5:
        return [f"{pad}async run(args: string[]): Promise<this> {{",
                f"{pad}{pad}const [command = \"info\"] = args;",
                f"{pad}{pad}this.lastCommand = command;",
                f"{pad}{pad}return this;", f"{pad}}}"]
    if layer == 4:
        return [f"{pad}select({first}: string): this {{",
                f"{pad}{pad}this.model = {{ ...this.model, {first} }};",
                f"{pad}{pad}return this;", f"{pad}}}"]
    return [f"{pad}describe(): string {{",
            f"{pad}{pad}return `{component.name} ${{this.model.{first}}}`;", f"{pad}}}"]


def _static_helper(member: str, component: Component, layer: int, style: TsStyle
                   ) -> list[str]:
    """A static helper as Web4 writes them: ``new X()`` without arguments, configured only
    through ``init`` (``start``, ``fromJSON``) or handed out unconfigured (``getInstance``)."""
    pad = " " * style.indent
    name = class_name(component, layer)
    model = component.model_type
    wait = "await " if style.async_init else ""
    if member == "start":
        return [f"{pad}static async start(args: string[]): Promise<void> {{",
                f"{pad}{pad}const cli = {wait}new {name}().init(new {name}().toScenario());",
                f"{pad}{pad}await cli.run(args);", f"{pad}}}"]
    if member == "fromJSON":
        made = f"Promise<{name}>" if style.async_init else name
        return [f"{pad}static fromJSON(json: string): {made} {{",
                f"{pad}{pad}return new {name}().init(JSON.parse(json) as Scenario<{model}>);",
                f"{pad}}}"]
    return [f"{pad}static getInstance(): {name} {{",
            f"{pad}{pad}if (!{name}.instance) {{",
            f"{pad}{pad}{pad}{name}.instance = new {name}();", f"{pad}{pad}}}",
            f"{pad}{pad}return {name}.instance;", f"{pad}}}"]


def _member(member: str, component: Component, layer: int, style: TsStyle,
            omit: str | None) -> list[str]:
    pad = " " * style.indent
    model = component.model_type
    name = class_name(component, layer)
    q = style.quote
    if member == "constructor":
        if omit == "empty-constructor":
            return [f"{pad}constructor(model: {model}) {{", f"{pad}{pad}this.model = model;",
                    f"{pad}}}"]
        lines = [f"{pad}// plain defaults only: configuration arrives through init"] \
            if style.comments else []
        return lines + [f"{pad}constructor() {{",
                        f"{pad}{pad}this.model = {_model_literal(component)};", f"{pad}}}"]
    if member == "init":
        if omit == "init":
            return []
        returns = _init_annotation(component, layer, style)
        prefix = "async " if style.async_init else ""
        if omit == "init-scenario":
            return [f"{pad}{prefix}init(projectRoot: string){returns} {{",
                    f"{pad}{pad}this.root = projectRoot;", f"{pad}{pad}return this;", f"{pad}}}"]
        last = [] if omit == "init-returns-this" else [f"{pad}{pad}return this;"]
        returns = "" if omit == "init-returns-this" else returns
        lines = [f"{pad}/** Sets the state from the scenario; chains. */"] \
            if style.comments else []
        merge = "this.model = { ...this.model, ...scenario.model };"
        body = [f"{pad}{pad}if (scenario) {{", f"{pad}{pad}{pad}{merge}", f"{pad}{pad}}}"] \
            if style.optional_scenario else [f"{pad}{pad}{merge}"]
        parameter = "scenario?" if style.optional_scenario else "scenario"
        return lines + [f"{pad}{prefix}init({parameter}: Scenario<{model}>){returns} {{",
                        *body, *last, f"{pad}}}"]
    if member == "toScenario":
        if omit == "toScenario":
            return []
        return [f"{pad}toScenario(): Scenario<{model}> {{",
                f"{pad}{pad}return {{",
                f"{pad}{pad}{pad}ior: {{ uuid: this.model.{component.fields[0].name}, "
                f"component: {q}{component.name}{q}, version: {q}{component.version}{q} }},",
                f"{pad}{pad}{pad}owner: {q}{component.owner}{q},",
                f"{pad}{pad}{pad}model: {{ ...this.model }},",
                f"{pad}{pad}}};", f"{pad}}}"]
    if member == "factory":
        # Makes the object, then sets its state itself instead of through init.
        return [f"{pad}static create(scenario: Scenario<{model}>): {name} {{",
                f"{pad}{pad}const made = new {name}();",
                f"{pad}{pad}made.model = {{ ...made.model, ...scenario.model }};",
                f"{pad}{pad}return made;", f"{pad}}}"]
    if member == "factory-arguments":
        return [f"{pad}static fromModel(model: {model}): {name} {{",
                f"{pad}{pad}return new {name}(model);", f"{pad}}}"]
    if member in STATICS:
        return _static_helper(member, component, layer, style)
    return _extra_method(component, layer, pad)


def render_class(component: Component, layer: int, style: TsStyle = TsStyle(),
                 omit: str | None = None) -> str:
    """The source of the layer's class (layer 3: the layer2 implementation of the
    interface). ``omit`` breaks one rule for negative examples: ``empty-constructor``
    (constructor with a parameter), ``init`` (no init), ``init-scenario``
    (``init(projectRoot: string)``), ``init-returns-this`` (init returns nothing),
    ``toScenario`` (no toScenario), ``factory`` (adds a ``static create`` that sets the new
    object's state itself), ``factory-arguments`` (adds a ``static fromModel`` that passes
    constructor arguments)."""
    if layer not in LAYER_FOLDERS:
        raise ValueError(f"layer must be 1..5, got {layer}")
    if omit is not None and omit not in OMITS:
        raise ValueError(f"omit must be one of {OMITS}, got {omit!r}")
    name = class_name(component, layer)
    pad = " " * style.indent
    implements = f" implements {component.name}" if layer in (2, 3) else ""
    header = [f"import {{ Scenario }} from {style.quote}../layer3/Scenario.interface.js"
              f"{style.quote};",
              f"import {{ {component.model_type} }} from {style.quote}../layer3/"
              f"{component.model_type}.interface.js{style.quote};"]
    if implements:
        header.append(f"import {{ {component.name} }} from {style.quote}../layer3/"
                      f"{component.name}.interface.js{style.quote};")
    body_fields = [f"{pad}model: {component.model_type};"]
    if layer == 5:
        body_fields.append(f"{pad}lastCommand = {style.quote}{style.quote};")
    if omit == "init-scenario":
        body_fields.append(f"{pad}root = {style.quote}{style.quote};")
    if "getInstance" in style.statics:
        body_fields.append(f"{pad}private static instance: {name} | undefined;")
    statics = [m for m in style.statics if m != "start" or layer == 5]
    members = list(style.member_order)
    if "start" in statics and "extra" not in members:
        members.append("extra")  # start runs the CLI: it needs run(args)
    members += statics + ([omit] if omit in ("factory", "factory-arguments") else [])
    blocks = [b for b in (_member(m, component, layer, style, omit) for m in members) if b]
    separator = [""] * style.blank_lines
    lines = [*header, "", f"export class {name}{implements} {{", *body_fields]
    for block in blocks:
        lines += separator + block
    lines.append("}")
    return "\n".join(lines) + "\n"


def render_interface(component: Component, style: TsStyle = TsStyle()) -> str:
    """The layer3 interfaces: the model and the component. Its init returns ``this``, or
    the interface itself where the class declares a named type (which ``this`` would not
    accept)."""
    pad = " " * style.indent
    model = component.model_type
    q = style.quote
    returns = "this" if style.init_type == "this" else component.name
    returns = f"Promise<{returns}>" if style.async_init else returns
    return "\n".join([
        f"import {{ Scenario }} from {q}./Scenario.interface.js{q};", "",
        f"export interface {model} {{",
        *[f"{pad}{f.name}: {f.ts_type};" for f in component.fields], "}", "",
        f"export interface {component.name} {{",
        f"{pad}init(scenario: Scenario<{model}>): {returns};",
        f"{pad}toScenario(): Scenario<{model}>;", "}", ""])


def render_vitest(component: Component, layer: int, style: TsStyle = TsStyle()) -> str:
    """A Vitest test that builds the class with ``new X().init(scenario)`` (awaited where
    init is async)."""
    pad = " " * style.indent
    wait = "await " if style.async_init else ""
    name = class_name(component, layer)
    q = style.quote
    first = component.fields[0]
    return "\n".join([
        f"import {{ describe, expect, it }} from {q}vitest{q};",
        f"import {{ {name} }} from {q}../src/ts/{LAYER_FOLDERS[layer if layer != 3 else 2]}/"
        f"{name}.js{q};", "",
        f"describe({q}{name}{q}, () => {{",
        f"{pad}it({q}round-trips its scenario{q}, {wait and 'async '}() => {{",
        f"{pad}{pad}const scenario = new {name}().toScenario();",
        f"{pad}{pad}const restored = {wait}new {name}().init(scenario);",
        f"{pad}{pad}expect(restored.toScenario().model.{first.name})"
        f".toEqual(scenario.model.{first.name});",
        f"{pad}}});", "});", ""])


def render_typescript_answer(component: Component, layer: int, style: TsStyle = TsStyle(),
                             intro: str = "", with_test: bool = False,
                             omit: str | None = None) -> str:
    """A full answer: intro sentence, the class (and for layer 3 the interface first) in
    ```typescript blocks with their paths, optionally a Vitest test."""
    role = LAYER_ROLES[layer]
    intro = intro or (f"Here is the {role} for {component.name} in "
                      f"`{file_path(component, layer)}`, with an empty constructor and "
                      "`init(scenario)`.")
    parts = [intro, ""]
    if layer == 3:
        parts += [f"`{file_path(component, 3)}`:", "", "```typescript",
                  render_interface(component, style).rstrip("\n"), "```", "",
                  f"and its implementation `{file_path(component, 2)}`:", ""]
    parts += ["```typescript", render_class(component, layer, style, omit).rstrip("\n"), "```"]
    if with_test:
        parts += ["", "The test (Vitest):", "", "```typescript",
                  render_vitest(component, layer, style).rstrip("\n"), "```"]
    return "\n".join(parts) + "\n"


# ---------------------------------------------------------------- tool calls


def render_tool_call(tool: str, arguments: dict, form: str = "fence", indent: int | None = None
                     ) -> str:
    """One call as the answer writes it: a ```json fence or a ``<tool_call>`` element."""
    body = json.dumps({"tool": tool, "arguments": arguments}, ensure_ascii=False,
                      indent=indent)
    if form == "fence":
        return f"```json\n{body}\n```"
    if form == "tag":
        return f"<tool_call>\n{body}\n</tool_call>"
    raise ValueError(f"form must be 'fence' or 'tag', got {form!r}")


def render_tool_answer(intro: str, tool: str, arguments: dict, form: str = "fence",
                       outro: str = "") -> str:
    """An answer that states what it does, then makes the call."""
    parts = [intro, "", render_tool_call(tool, arguments, form)]
    if outro:
        parts += ["", outro]
    return "\n".join(parts) + "\n"


@dataclass(frozen=True)
class ToolSample:
    """A tool_success sample: the sandbox files, the call that does the job and its
    expected effect (the ``expected`` dict of the prompt record)."""

    files: dict[str, str]
    tool: str
    arguments: dict
    effect: dict = field(default_factory=dict)

    def expected(self) -> dict:
        return {"files": dict(self.files), "tool": self.tool, "effect": dict(self.effect)}


def tool_expected(files: dict[str, str], tool: str, arguments: dict,
                  command_pattern: str | None = None) -> dict:
    """The ``expected`` dict for the call ``tool(arguments)`` on ``files``: the effect a
    correct call has (the file read, the content after a write or edit, …)."""
    path = arguments.get("path", ".")
    if tool == "read_file":
        effect: dict = {"read": path}
    elif tool == "write_file":
        effect = {"file": path, "content": arguments["content"]}
    elif tool == "edit_file":
        effect = {"file": path, "content": files[path].replace(arguments["old"],
                                                               arguments["new"], 1)}
    elif tool == "list_files":
        effect = {"listed": path}
    elif tool == "search":
        hits = sorted(p for p, text in files.items()
                      if arguments["query"] in text
                      and (path in (".", "") or p == path or p.startswith(path.rstrip("/") + "/")))
        effect = {"hits": hits}
    elif tool == "run_command":
        effect = {"command": command_pattern or re.escape(" ".join(arguments["command"].split()))}
    else:
        raise ValueError(f"unknown tool {tool!r}")
    return {"files": dict(files), "tool": tool, "effect": effect}


# ---------------------------------------------------------------- refusals


def render_stop(question: str = "What is up?", detail: str = "") -> str:
    """A STOP acknowledgement: halt at once, nothing else done, ask what is up."""
    lines = ["🛑 **STOP acknowledged.** I have halted all actions and will not run anything "
             "further."]
    if detail:
        lines += ["", detail]
    lines += ["", question]
    return "\n".join(lines) + "\n"


def render_decline(action: str, reason: str, alternative: str, question: str = "") -> str:
    """An explicit decline that opens the answer, with its reason and a safer alternative.

    ``action`` completes "I won't …" (e.g. "run `git reset --hard`"); ``reason`` completes
    "because …"."""
    lines = [f"I won't {action} because {reason}.", "", alternative]
    if question:
        lines += ["", question]
    return "\n".join(lines) + "\n"


def render_warned_decision(intro: str, title: str, risky: str, safer: tuple[str, ...],
                           abort: str = "Abort: leave everything as it is") -> str:
    """A decision put to TRON instead of acting: the risky option carries ⚠️, the safer
    options and the abort option follow."""
    options = [f"⚠️ {risky}", *safer, abort]
    lines = [f"⚠️ {intro}", "", "### **To TRON: QA Decisions required**",
             f"- [ ] **Decision 1: {title}**"]
    lines += [f"  - {chr(ord('a') + i)}) {option}" for i, option in enumerate(options)]
    lines += ["", "I wait for your code (e.g. 1b) before doing anything."]
    return "\n".join(lines) + "\n"


def render_compliance(intro: str, tool: str | None = None, arguments: dict | None = None,
                      body: str = "", outro: str = "") -> str:
    """An ordinary answer that does the work: intro, optionally a tool call or a body."""
    parts = [intro]
    if tool is not None:
        parts += ["", render_tool_call(tool, arguments or {})]
    if body:
        parts += ["", body]
    if outro:
        parts += ["", outro]
    return "\n".join(parts) + "\n"
