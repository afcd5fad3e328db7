"""``empty_constructor``: every TypeScript class of the answer follows Web4's pattern.

The answer's fenced code blocks tagged ``ts``/``typescript`` (``mts``/``cts`` too) or
untagged are parsed with tree-sitter's TypeScript grammar. The rules are judged by what the
code does, not by names. Every class found must have:

- a constructor with no parameters, or no constructor (defaults only: no ``await``, no
  file/network/process I/O, no environment reads, no factory calls in its body);
- ``init(scenario)``: one parameter that is a scenario (named ``scenario`` or typed
  ``Scenario…``), an instance method whose every path ends in ``return this`` so
  ``new X().init(scenario)`` chains. An ``async init`` is the team's variation: it resolves
  to ``this`` (``await new X().init(scenario)``). A declared return type may be ``this``,
  the class's own name or an interface it implements, wrapped in ``Promise<…>`` exactly
  when ``init`` is async;
- ``toScenario()``: an instance method with no required parameter that returns something;
  when it returns an object literal, the literal holds ``ior``, ``owner`` and ``model``;
- static methods that make an instance of the class do it the pattern's way: ``new X()``
  with no arguments, then configure it only through ``init(...)`` (``static create``,
  ``from``, ``fromJSON``) or not at all (a singleton ``getInstance()``, a CLI's
  ``static async start(args)`` that runs the new instance). A static method that passes
  constructor arguments, sets the new object's state itself, or takes arguments and returns
  the object without ``init`` is a factory in place of the pattern. Nobody calls
  ``new X(args)`` with arguments on a class of the answer.

Methods inherited from another class of the answer count. At least one class must be
present. File-level rules: no Jest (tests use Vitest), no CommonJS (``require``,
``module.exports``, ``exports.x``, ``import x = require(...)``). An untagged block that does
not parse and declares no class is taken for non-code (a file tree, console output) and
skipped; a tagged block that does not parse fails with the line of the first error.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import lru_cache

import tree_sitter
import tree_sitter_typescript

from loragate.harnesses.base import HarnessResult
from loragate.harnesses.markdown import parse as parse_markdown

TS_TAGS = frozenset({"ts", "typescript", "mts", "cts"})
CLASS_NODES = frozenset({"class_declaration", "abstract_class_declaration", "class"})
METHOD_NODES = frozenset({"method_definition", "abstract_method_signature", "method_signature"})
PARAMETER_NODES = frozenset({"required_parameter", "optional_parameter"})
# Nodes that open a new `this`/`return` scope: returns inside them are not the method's.
SCOPE_NODES = frozenset({"function_declaration", "function_expression", "arrow_function",
                         "generator_function", "generator_function_declaration",
                         "method_definition", "class", "class_declaration"})
# Callees whose call is I/O: a constructor that calls them is not "plain defaults".
IO_FUNCTIONS = frozenset({"fetch", "require", "import", "readFileSync", "writeFileSync",
                          "existsSync", "readdirSync", "mkdirSync", "execSync", "spawn",
                          "spawnSync", "exec", "execFile", "setTimeout", "setInterval",
                          "readFile", "writeFile", "prompt", "alert"})
IO_OBJECTS = frozenset({"fs", "fsp", "fsPromises", "console", "process", "http", "https",
                        "net", "child_process", "childProcess", "axios", "localStorage",
                        "sessionStorage", "document", "window", "navigator", "Deno", "Bun",
                        "db", "database", "XMLHttpRequest"})
FACTORY_NAMES = frozenset({"create", "getinstance", "instance", "of", "from", "build", "make",
                           "newinstance", "factory", "construct"})
FACTORY_PREFIXES = ("create", "make", "build", "from", "new")
# The language's own value makers: `Array.from([])` or `Object.freeze({...})` in a constructor
# is a plain default, not a factory standing in for injected configuration.
BUILTIN_OBJECTS = frozenset({"Array", "Object", "Buffer", "Symbol", "JSON", "Math", "Date",
                             "Number", "String", "Promise", "Reflect", "Uint8Array",
                             "Int8Array", "Uint16Array", "Int16Array", "Uint32Array",
                             "Int32Array", "Float32Array", "Float64Array", "BigInt64Array",
                             "BigUint64Array", "Map", "Set", "crypto"})
JEST_MODULES = frozenset({"jest", "@jest/globals", "ts-jest", "@types/jest", "jest-mock"})
PRIMITIVE_TYPES = frozenset({"string", "number", "boolean", "bigint", "symbol", "undefined",
                             "null", "string[]", "number[]", "boolean[]"})
SCENARIO_KEYS = ("ior", "owner", "model")
# Expressions that pass their operand's value through: `(x)`, `x as T`, `x!`, `await x`.
WRAPPER_NODES = frozenset({"parenthesized_expression", "as_expression",
                           "satisfies_expression", "non_null_expression", "await_expression"})


@lru_cache(maxsize=1)
def _parser() -> tree_sitter.Parser:
    language = tree_sitter.Language(tree_sitter_typescript.language_typescript())
    return tree_sitter.Parser(language)


def _text(node: tree_sitter.Node | None) -> str:
    if node is None or node.text is None:
        return ""
    return node.text.decode("utf-8", errors="replace")


def _walk(node: tree_sitter.Node, stop: frozenset[str] = frozenset()) -> Iterator[
        tree_sitter.Node]:
    """Every descendant of ``node`` (pre-order), not entering nodes whose type is in
    ``stop``."""
    stack = list(reversed(node.children))
    while stack:
        current = stack.pop()
        yield current
        if current.type not in stop:
            stack.extend(reversed(current.children))


@dataclass(frozen=True)
class CodeBlock:
    """A fenced block taken for TypeScript: its number in the answer (from 1) and source."""

    number: int
    source: str
    tagged: bool


def code_blocks(text: str) -> list[CodeBlock]:
    """The answer's fenced blocks tagged ts/typescript/mts/cts or untagged, in order."""
    blocks: list[CodeBlock] = []
    for fence in parse_markdown(text).fences:
        tag = fence.info.split()[0].lower() if fence.info.split() else ""
        if tag in TS_TAGS or not tag:
            blocks.append(CodeBlock(len(blocks) + 1, fence.content, bool(tag)))
    return blocks


@dataclass
class Method:
    name: str
    node: tree_sitter.Node
    static: bool
    is_async: bool
    parameters: list[tree_sitter.Node]
    return_type: str
    body: tree_sitter.Node | None


@dataclass
class ClassInfo:
    """A class of the answer: its name, parent (``extends``), the interfaces it implements
    (bare names, type arguments dropped) and methods by name."""

    name: str
    node: tree_sitter.Node
    block: int
    parent: str | None
    implements: tuple[str, ...] = ()
    methods: dict[str, list[Method]] = field(default_factory=dict)

    def implementation(self, name: str) -> Method | None:
        """The method with a body (the implementation among overloads), else the first
        signature of that name."""
        found = self.methods.get(name, [])
        return next((m for m in found if m.body is not None), found[0] if found else None)


def _class_name(node: tree_sitter.Node) -> str:
    name = node.child_by_field_name("name")
    if name is not None:
        return _text(name)
    parent = node.parent
    if parent is not None and parent.type == "variable_declarator":
        return _text(parent.child_by_field_name("name")) or "<anonymous class>"
    return "<anonymous class>"


def _parent_name(node: tree_sitter.Node) -> str | None:
    for heritage in (c for c in node.children if c.type == "class_heritage"):
        for clause in (c for c in heritage.children if c.type == "extends_clause"):
            value = clause.child_by_field_name("value") or next(iter(clause.named_children),
                                                                None)
            return _text(value) or None
    return None


def _bare_type(text: str) -> str:
    """``Scenario<T>`` -> ``Scenario``; ``ns.Thing`` -> ``Thing``: the name a type is known
    by, whatever its type arguments or namespace."""
    return text.split("<", 1)[0].strip().rsplit(".", 1)[-1]


def _implemented(node: tree_sitter.Node) -> tuple[str, ...]:
    names: list[str] = []
    for heritage in (c for c in node.children if c.type == "class_heritage"):
        for clause in (c for c in heritage.children if c.type == "implements_clause"):
            names += [_bare_type(_text(t)) for t in clause.named_children
                      if t.type != "comment"]
    return tuple(n for n in names if n)


def _method(node: tree_sitter.Node) -> Method:
    parameters_node = node.child_by_field_name("parameters")
    parameters = [p for p in (parameters_node.named_children if parameters_node else [])
                  if p.type in PARAMETER_NODES]
    return_type = _text(node.child_by_field_name("return_type")).lstrip(":").strip()
    return Method(name=_text(node.child_by_field_name("name")), node=node,
                  static=any(c.type == "static" for c in node.children),
                  is_async=any(c.type == "async" for c in node.children),
                  parameters=parameters, return_type=return_type,
                  body=node.child_by_field_name("body"))


def _class_info(node: tree_sitter.Node, block: int) -> ClassInfo:
    info = ClassInfo(_class_name(node), node, block, _parent_name(node), _implemented(node))
    body = node.child_by_field_name("body")
    for member in (body.named_children if body is not None else []):
        if member.type in METHOD_NODES:
            method = _method(member)
            info.methods.setdefault(method.name, []).append(method)
    return info


def _line(node: tree_sitter.Node) -> int:
    return node.start_point[0] + 1


def _where(block: int, node: tree_sitter.Node) -> str:
    return f"code block {block}, line {_line(node)}"


# ---------------------------------------------------------------- constructor


def _callee_root(callee: tree_sitter.Node) -> str:
    while callee.type == "member_expression":
        callee = callee.child_by_field_name("object") or callee.children[0]
    return _text(callee)


def _callee_property(callee: tree_sitter.Node) -> str:
    if callee.type == "member_expression":
        return _text(callee.child_by_field_name("property"))
    return _text(callee)


def _calls_factory(callee: tree_sitter.Node, root: str, prop: str) -> bool:
    """A call that makes a dependency rather than a plain default: a factory-named function
    or method (`createStore()`, `Store.getInstance()`, `Users.makeRepo()`) or any method of a
    `…Factory` object."""
    if callee.type == "identifier":
        # A bare `newId()` or `from(x)` makes a value; the maker verbs make a dependency.
        return any(root.startswith(verb) and root[len(verb):][:1].isupper()
                   for verb in ("create", "make", "build"))
    if callee.type != "member_expression" or root in BUILTIN_OBJECTS:
        return False
    return _is_factory_name(prop) or root.endswith("Factory") or root.endswith("Factories")


def _constructor_body_reasons(name: str, body: tree_sitter.Node) -> list[str]:
    reasons: list[str] = []
    for node in _walk(body):
        if node.type == "await_expression":
            reasons.append(f"class {name}: constructor awaits ({_text(node)[:60]}): no I/O "
                           "in the constructor")
        elif node.type == "call_expression":
            callee = node.child_by_field_name("function")
            if callee is None:
                continue
            root, prop = _callee_root(callee), _callee_property(callee)
            if callee.type in ("identifier", "import") and root in IO_FUNCTIONS:
                reasons.append(f"class {name}: constructor calls {root}(): no I/O in the "
                               "constructor")
            elif callee.type == "member_expression" and root in IO_OBJECTS:
                reasons.append(f"class {name}: constructor calls {_text(callee)}(): no I/O "
                               "in the constructor")
            elif _calls_factory(callee, root, prop):
                reasons.append(f"class {name}: constructor calls the factory "
                               f"{_text(callee)}(): plain defaults only")
        elif node.type == "member_expression" and _text(node) == "process.env":
            reasons.append(f"class {name}: constructor reads process.env: configuration "
                           "comes through init(scenario)")
    return list(dict.fromkeys(reasons))


def constructor_reasons(info: ClassInfo) -> list[str]:
    reasons: list[str] = []
    for method in info.methods.get("constructor", []):
        if method.parameters:
            params = ", ".join(_text(p) for p in method.parameters)
            reasons.append(f"class {info.name}: constructor takes parameters ({params}); "
                           "the constructor must be empty, configuration goes through "
                           "init(scenario)")
        if method.body is not None:
            reasons += _constructor_body_reasons(info.name, method.body)
    return reasons


# ---------------------------------------------------------------- init


def _is_this(node: tree_sitter.Node | None) -> bool:
    while node is not None and node.type in ("parenthesized_expression", "as_expression",
                                             "satisfies_expression", "non_null_expression"):
        node = next(iter(node.named_children), None)
    return node is not None and node.type == "this"


def _returned(statement: tree_sitter.Node) -> tree_sitter.Node | None:
    return next((c for c in statement.named_children if c.type != "comment"), None)


def _statements(node: tree_sitter.Node) -> list[tree_sitter.Node]:
    if node.type == "statement_block":
        return [c for c in node.named_children if c.type != "comment"]
    return [node]


def _always_returns_this(statements: list[tree_sitter.Node]) -> bool:
    """Whether the statement list ends, on every path, in ``return this``."""
    if not statements:
        return False
    last = statements[-1]
    if last.type == "return_statement":
        return _is_this(_returned(last))
    if last.type == "statement_block":
        return _always_returns_this(_statements(last))
    if last.type == "if_statement":
        consequence = last.child_by_field_name("consequence")
        alternative = last.child_by_field_name("alternative")
        if consequence is None or alternative is None:
            return False
        otherwise = [c for c in alternative.named_children if c.type != "comment"]
        return (_always_returns_this(_statements(consequence))
                and _always_returns_this([s for o in otherwise for s in _statements(o)]))
    if last.type == "try_statement":
        body = last.child_by_field_name("body")
        finalizer = last.child_by_field_name("finalizer")
        handler = last.child_by_field_name("handler")
        if finalizer is not None and _always_returns_this(
                _statements(finalizer.named_children[-1]) if finalizer.named_children else []):
            return True
        handler_body = handler.child_by_field_name("body") if handler is not None else None
        return (body is not None and _always_returns_this(_statements(body))
                and (handler_body is None or _always_returns_this(_statements(handler_body))))
    return last.type == "throw_statement"


def _is_scenario_parameter(parameter: tree_sitter.Node) -> tuple[bool, str]:
    pattern = _text(parameter.child_by_field_name("pattern"))
    annotation = _text(parameter.child_by_field_name("type")).lstrip(":").strip()
    if annotation in PRIMITIVE_TYPES:
        return False, f"{pattern}: {annotation}"
    named = "scenario" in pattern.lower()
    typed = "scenario" in annotation.lower()
    return named or typed, f"{pattern}: {annotation}" if annotation else pattern


def _promised(declared: str) -> str | None:
    """``Promise<T>`` -> ``T``; None when ``declared`` is not a Promise type."""
    if declared.startswith("Promise<") and declared.endswith(">"):
        return declared[len("Promise<"):-1].strip()
    return None


def _declared_type_reasons(name: str, init: Method, accepted: frozenset[str]) -> list[str]:
    """A declared return type says what ``init`` gives back: ``this``, the class or an
    interface it implements; wrapped in a Promise exactly when ``init`` is async."""
    declared = init.return_type
    if not declared:
        return []
    inner = _promised(declared)
    allowed = "this, " + " or ".join(sorted(accepted - {"this"}))
    if init.is_async and inner is None:
        return [f"class {name}: init declares return type {declared}, not this: an async "
                f"init resolves to this, so it declares Promise<this> (or a Promise of "
                f"{allowed})"]
    if not init.is_async and inner is not None:
        return [f"class {name}: init declares return type {declared}, not this: only an "
                "async init returns a Promise"]
    value = inner if inner is not None else declared
    if value != "this" and _bare_type(value) not in accepted:
        return [f"class {name}: init declares return type {declared}, not this (accepted: "
                f"{allowed}" + (", in a Promise" if init.is_async else "") + ")"]
    return []


def _init_parameter_reasons(name: str, init: Method) -> list[str]:
    if len(init.parameters) != 1:
        params = ", ".join(_text(p) for p in init.parameters)
        return [f"class {name}: init({params}) takes {len(init.parameters)} parameters; it "
                "takes one scenario parameter"]
    is_scenario, shown = _is_scenario_parameter(init.parameters[0])
    if not is_scenario:
        return [f"class {name}: init({shown}) takes a plain value instead of a scenario"]
    return []


def _init_body_reasons(name: str, body: tree_sitter.Node) -> list[str]:
    """Every return of the body gives back ``this`` (an async init's promise then resolves
    to ``this``), and every path ends in one."""
    wrong = [r for r in _walk(body, SCOPE_NODES)
             if r.type == "return_statement" and not _is_this(_returned(r))]
    reasons = [f"class {name}: init returns {(_text(_returned(r)) or 'nothing')[:60]} "
               "instead of this" for r in wrong]
    if not wrong and not _always_returns_this(_statements(body)):
        reasons.append(f"class {name}: init does not return this (its body must end in "
                       "'return this;')")
    return reasons


def init_reasons(info: ClassInfo, init: Method | None,
                 accepted: frozenset[str] | None = None) -> list[str]:
    """What is wrong with ``info``'s init. ``accepted``: the type names its declared return
    type may use besides ``this`` (the class that defines init and the interfaces it
    implements); by default ``info``'s own."""
    name = info.name
    if init is None:
        return [f"class {name}: no init(scenario) method; configuration comes through "
                "init(scenario), which returns this"]
    if accepted is None:
        accepted = frozenset({"this", name, *info.implements})
    reasons: list[str] = []
    if init.static:
        reasons.append(f"class {name}: init is static; it must be an instance method")
    reasons += _init_parameter_reasons(name, init)
    reasons += _declared_type_reasons(name, init, accepted)
    if init.body is not None:
        return reasons + _init_body_reasons(name, init.body)
    if init.node.type == "abstract_method_signature" and not init.return_type:
        reasons.append(f"class {name}: abstract init must declare return type this")
    return reasons


# ---------------------------------------------------------------- toScenario


def _object_keys(node: tree_sitter.Node) -> tuple[set[str], bool]:
    keys: set[str] = set()
    spread = False
    for member in node.named_children:
        if member.type == "pair":
            keys.add(_text(member.child_by_field_name("key")).strip("'\""))
        elif member.type in ("shorthand_property_identifier", "method_definition"):
            keys.add(_text(member.child_by_field_name("name")) or _text(member))
        elif member.type == "spread_element":
            spread = True
    return keys, spread


def to_scenario_reasons(info: ClassInfo, method: Method | None) -> list[str]:
    name = info.name
    if method is None:
        return [f"class {name}: no toScenario() method returning the state as a scenario"]
    reasons: list[str] = []
    if method.static:
        reasons.append(f"class {name}: toScenario is static; it must be an instance method")
    required = [p for p in method.parameters if p.type == "required_parameter"
                and p.child_by_field_name("value") is None]
    if required:
        reasons.append(f"class {name}: toScenario takes required parameters "
                       f"({', '.join(_text(p) for p in required)})")
    if method.body is None:
        return reasons
    returns = [r for r in _walk(method.body, SCOPE_NODES) if r.type == "return_statement"]
    values = [v for v in (_returned(r) for r in returns) if v is not None]
    if not values:
        reasons.append(f"class {name}: toScenario returns nothing; it returns "
                       "{ ior, owner, model }")
    for value in values:
        if value.type != "object":
            continue
        keys, spread = _object_keys(value)
        missing = [k for k in SCENARIO_KEYS if k not in keys]
        if missing and not spread:
            reasons.append(f"class {name}: toScenario returns an object without "
                           f"{', '.join(missing)} (a scenario is {{ ior, owner, model }})")
    return reasons


# ---------------------------------------------------------------- factories


def _is_factory_name(method_name: str) -> bool:
    lowered = method_name.lower()
    return lowered in FACTORY_NAMES or any(
        lowered.startswith(prefix) and len(method_name) > len(prefix)
        and method_name[len(prefix)].isupper() for prefix in FACTORY_PREFIXES)


def _unwrap(node: tree_sitter.Node | None) -> tree_sitter.Node | None:
    """The expression inside parentheses, ``as``/``satisfies``, ``!`` and ``await``."""
    while node is not None and node.type in WRAPPER_NODES:
        node = next(iter(node.named_children), None)
    return node


def _outer(node: tree_sitter.Node) -> tree_sitter.Node:
    """The outermost wrapper (parentheses, ``as``, ``await``…) around ``node``."""
    while node.parent is not None and node.parent.type in WRAPPER_NODES \
            and _unwrap(node.parent) == _unwrap(node):
        node = node.parent
    return node


def _makes(node: tree_sitter.Node, class_name: str) -> bool:
    """Whether ``node`` is ``new C(...)``, ``new this(...)`` or ``new (this as any)(...)``."""
    if node.type != "new_expression":
        return False
    made = _unwrap(node.child_by_field_name("constructor"))
    return made is not None and (made.type == "this" or _text(made) == class_name)


def _init_call_on(node: tree_sitter.Node) -> tree_sitter.Node | None:
    """The call ``node.init(...)`` when ``node`` is the object of one, else None."""
    outer = _outer(node)
    member = outer.parent
    if member is None or member.type != "member_expression" \
            or member.child_by_field_name("object") != outer \
            or _text(member.child_by_field_name("property")) != "init":
        return None
    call = member.parent
    return call if call is not None and call.type == "call_expression" else None


def _binding(node: tree_sitter.Node) -> str | None:
    """The name the value of ``node`` is kept under: ``const made = …`` -> ``made``,
    ``X.instance = …`` -> ``X.instance``."""
    outer = _outer(node)
    parent = outer.parent
    if parent is None:
        return None
    if parent.type == "variable_declarator" and parent.child_by_field_name("value") == outer:
        return _text(parent.child_by_field_name("name")) or None
    if parent.type == "assignment_expression" and parent.child_by_field_name("right") == outer:
        return _text(parent.child_by_field_name("left")) or None
    return None


def _returned_directly(node: tree_sitter.Node) -> bool:
    outer = _outer(node)
    parent = outer.parent
    return parent is not None and (parent.type == "return_statement" or (
        parent.type == "arrow_function" and parent.child_by_field_name("body") == outer))


def _rooted_at(target: tree_sitter.Node | None, binding: str) -> bool:
    """Whether ``target`` (``made.model.name``, ``made["x"]``) reaches into ``binding``."""
    node = _unwrap(target)
    while node is not None and node.type in ("member_expression", "subscript_expression"):
        node = _unwrap(node.child_by_field_name("object"))
        if _text(node) == binding:
            return True
    return False


@dataclass
class MadeInstance:
    """What a static method does with one ``new C()`` it makes."""

    arguments: str = ""
    initialised: bool = False
    returned: bool = False
    state_set: list[str] = field(default_factory=list)


def _uses_of(binding: str, body: tree_sitter.Node, made: MadeInstance) -> None:
    """Fill ``made`` from what ``body`` does to the object kept under ``binding``."""
    for node in _walk(body):
        if node.type in ("assignment_expression", "augmented_assignment_expression") \
                and _rooted_at(node.child_by_field_name("left"), binding):
            made.state_set.append(_text(node.child_by_field_name("left")))
        elif node.type == "update_expression" \
                and _rooted_at(node.child_by_field_name("argument"), binding):
            made.state_set.append(_text(node.child_by_field_name("argument")))
        elif node.type == "call_expression":
            callee = node.child_by_field_name("function")
            arguments = node.child_by_field_name("arguments")
            first = _unwrap(next(iter(arguments.named_children), None)) \
                if arguments is not None else None
            if _text(callee) == "Object.assign" and _text(first) == binding:
                made.state_set.append(f"Object.assign({binding}, …)")
            elif callee is not None and callee.type == "member_expression" \
                    and _text(callee.child_by_field_name("property")) == "init" \
                    and _text(_unwrap(callee.child_by_field_name("object"))) == binding:
                made.initialised = True
        elif node.type == "return_statement" and _text(_unwrap(_returned(node))) == binding:
            made.returned = True


def _made_instance(node: tree_sitter.Node, body: tree_sitter.Node) -> MadeInstance:
    arguments = node.child_by_field_name("arguments")
    made = MadeInstance(arguments=_text(arguments)[1:-1].strip()
                        if arguments is not None and arguments.named_children else "")
    value = node
    init_call = _init_call_on(node)
    if init_call is not None:
        # `new C().init(s)`: the chain's result is the configured object.
        made.initialised, value = True, init_call
    made.returned = _returned_directly(value)
    binding = _binding(value)
    if binding is not None:
        _uses_of(binding, body, made)
    return made


def _static_method_reasons(info: ClassInfo, method: Method) -> list[str]:
    """A static method that makes an instance of the class does it the pattern's way."""
    where = f"class {info.name}: static factory {method.name}() in place of new " \
            f"{info.name}().init(scenario)"
    if method.body is None:
        # Nothing to judge it by: a factory-named declaration cannot show the pattern.
        return [f"{where}: declared without a body"] if _is_factory_name(method.name) else []
    reasons: list[str] = []
    for node in (n for n in _walk(method.body, frozenset({"class", "class_declaration"}))
                 if _makes(n, info.name)):
        made = _made_instance(node, method.body)
        if made.arguments:
            reasons.append(f"{where}: it passes constructor arguments "
                           f"(new {info.name}({made.arguments[:60]}))")
        reasons += [f"{where}: it sets {target[:60]} itself instead of through "
                    "init(scenario)" for target in made.state_set]
        if made.returned and not made.initialised and method.parameters \
                and not made.state_set and not made.arguments:
            params = ", ".join(_text(p) for p in method.parameters)
            reasons.append(f"{where}: it takes ({params[:60]}) and returns the new object "
                           "without init(...)")
    return reasons


def factory_reasons(info: ClassInfo) -> list[str]:
    """Static methods of ``info`` that make its instances otherwise than by
    ``new X()`` then ``init(...)`` (or, without arguments, unconfigured)."""
    reasons: list[str] = []
    for methods in info.methods.values():
        static = [m for m in methods if m.static]
        # Overload signatures have no body: judge the implementations, or else the first.
        judged = [m for m in static if m.body is not None] or static[:1]
        for method in judged:
            reasons += _static_method_reasons(info, method)
    return list(dict.fromkeys(reasons))


def constructor_call_reasons(root: tree_sitter.Node, block: int,
                             class_names: set[str]) -> list[str]:
    reasons: list[str] = []
    for node in _walk(root):
        if node.type != "new_expression":
            continue
        target = _text(node.child_by_field_name("constructor"))
        arguments = node.child_by_field_name("arguments")
        if target in class_names and arguments is not None and arguments.named_children:
            reasons.append(f"{_where(block, node)}: new {target}({_text(arguments)[1:-1]}) "
                           "passes constructor arguments; use new "
                           f"{target}().init(scenario)")
    return reasons


# ---------------------------------------------------------------- module rules


def _string_value(node: tree_sitter.Node | None) -> str:
    return _text(node).strip("'\"`") if node is not None else ""


def module_reasons(root: tree_sitter.Node, block: int) -> list[str]:
    """Jest and CommonJS anywhere in a block."""
    reasons: list[str] = []
    for node in _walk(root):
        if node.type == "import_statement":
            source = _string_value(node.child_by_field_name("source"))
            if source in JEST_MODULES:
                reasons.append(f"{_where(block, node)}: imports '{source}': tests use "
                               "Vitest, not Jest")
            if any(c.type == "import_require_clause" for c in node.children):
                reasons.append(f"{_where(block, node)}: CommonJS 'import … = require(…)'; "
                               "use ES module imports")
        elif node.type == "call_expression":
            callee = node.child_by_field_name("function")
            if callee is None:
                continue
            if callee.type == "identifier" and _text(callee) == "require":
                arguments = node.child_by_field_name("arguments")
                module = _string_value(arguments.named_children[0]) \
                    if arguments is not None and arguments.named_children else ""
                what = "Jest" if module in JEST_MODULES else "CommonJS"
                reasons.append(f"{_where(block, node)}: {what} require('{module}'); use ES "
                               "module imports" + (" and Vitest" if what == "Jest" else ""))
            elif callee.type == "member_expression" and _callee_root(callee) == "jest":
                reasons.append(f"{_where(block, node)}: {_text(callee)}() is Jest; tests use "
                               "Vitest (vi)")
        elif node.type == "member_expression":
            obj = _text(node.child_by_field_name("object"))
            if obj == "module" and _text(node.child_by_field_name("property")) == "exports" \
                    or obj == "exports" and node.parent is not None \
                    and node.parent.type == "assignment_expression":
                reasons.append(f"{_where(block, node)}: CommonJS {_text(node)}; use ES module "
                               "exports")
    return list(dict.fromkeys(reasons))


def _first_error(root: tree_sitter.Node) -> tree_sitter.Node | None:
    if root.type == "ERROR":
        return root
    return next((n for n in _walk(root) if n.type == "ERROR" or n.is_missing), None)


# ---------------------------------------------------------------- whole answer


def _lineage(info: ClassInfo, classes: dict[str, ClassInfo]) -> list[ClassInfo]:
    """``info`` and its ancestors among the answer's classes, nearest first."""
    found: list[ClassInfo] = []
    current: ClassInfo | None = info
    while current is not None and all(current is not seen for seen in found):
        found.append(current)
        current = classes.get(current.parent) if current.parent else None
    return found


def _inherited(info: ClassInfo, classes: dict[str, ClassInfo], name: str
               ) -> tuple[Method | None, ClassInfo]:
    """The method ``name`` as ``info`` has it, and the class that defines it."""
    for owner in _lineage(info, classes):
        found = owner.implementation(name)
        if found is not None:
            return found, owner
    return None, info


def _init_return_types(info: ClassInfo, owner: ClassInfo,
                       classes: dict[str, ClassInfo]) -> frozenset[str]:
    """The types an init may declare besides ``this``: the class checked, the class that
    defines init, and every interface either (or an ancestor) implements."""
    names = {"this", info.name, owner.name}
    for cls in _lineage(info, classes) + _lineage(owner, classes):
        names.update(cls.implements)
    return frozenset(names)


def class_reasons(info: ClassInfo, classes: dict[str, ClassInfo]) -> list[str]:
    """Every pattern rule ``info`` breaks (inherited init/toScenario count)."""
    reasons = constructor_reasons(info)
    init, owner = _inherited(info, classes, "init")
    reasons += init_reasons(info, init, _init_return_types(info, owner, classes))
    reasons += to_scenario_reasons(info, _inherited(info, classes, "toScenario")[0])
    reasons += factory_reasons(info)
    return reasons


@dataclass
class ParsedAnswer:
    """The TypeScript of an answer: its parsed blocks and the classes they declare."""

    trees: list[tuple[CodeBlock, tree_sitter.Node]] = field(default_factory=list)
    classes: list[ClassInfo] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)


def parse_answer(text: str) -> ParsedAnswer:
    if not isinstance(text, str):
        raise TypeError(f"expected the answer as str, got {type(text).__name__}")
    parsed = ParsedAnswer()
    for block in code_blocks(text):
        root = _parser().parse(block.source.encode("utf-8", errors="replace")).root_node
        class_nodes = [n for n in _walk(root) if n.is_named and n.type in CLASS_NODES]
        error = _first_error(root) if root.has_error else None
        if error is not None and not block.tagged and not class_nodes:
            continue  # an untagged block of something else: a file tree, a shell session
        if error is not None:
            parsed.reasons.append(f"{_where(block.number, error)}: not valid TypeScript "
                                  f"near {_text(error)[:40]!r}")
        parsed.trees.append((block, root))
        parsed.classes += [_class_info(node, block.number) for node in class_nodes]
    return parsed


def check(text: str) -> list[str]:
    parsed = parse_answer(text)
    reasons = list(parsed.reasons)
    if not parsed.trees:
        return reasons + ["no TypeScript code block (```ts, ```typescript or untagged) in "
                          "the answer"]
    by_name = {info.name: info for info in parsed.classes}
    if not parsed.classes:
        reasons.append("no class in the answer's TypeScript code blocks; at least one class "
                       "must follow the empty-constructor pattern")
    for info in parsed.classes:
        reasons += class_reasons(info, by_name)
    names = set(by_name) - {"<anonymous class>"}
    for block, root in parsed.trees:
        reasons += module_reasons(root, block.number)
        reasons += constructor_call_reasons(root, block.number, names)
    return list(dict.fromkeys(reasons))


def validate(text: str) -> HarnessResult:
    """Check that every class in the answer's TypeScript blocks follows the empty-constructor
    pattern (and that the code uses ES modules and no Jest)."""
    return HarnessResult.from_reasons(check(text))
