"""Tests of the ``empty_constructor`` validator: hand-written TypeScript answers that pass and
that break each rule, and property tests over the builders' harmless variations."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from loragate.data import code_examples as ce
from loragate.harnesses import empty_constructor as ec

PROPERTY = settings(max_examples=40, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])

GOOD = """The layer2 implementation:

```typescript
import { Scenario } from "../layer3/Scenario.interface.js";
import { Project } from "../layer3/Project.interface.js";
import { ProjectModel } from "../layer3/ProjectModel.interface.js";

export class DefaultProject implements Project {
  model: ProjectModel;

  constructor() {
    this.model = { uuid: "", root: "", components: [] };
  }

  init(scenario: Scenario<ProjectModel>): this {
    if (!scenario.model) {
      return this;
    }
    this.model = { ...this.model, ...scenario.model };
    return this;
  }

  async toScenario(): Promise<Scenario<ProjectModel>> {
    return {
      ior: { uuid: this.model.uuid, component: "Project", version: "0.3.0.0" },
      owner: "",
      model: { ...this.model },
    };
  }

  async build(): Promise<this> {
    const done = await Promise.resolve(this.model.components.length);
    this.model.components = this.model.components.slice(0, done);
    return this;
  }
}
```

And its Vitest test:

```ts
import { describe, expect, it } from "vitest";
import { DefaultProject } from "../src/ts/layer2/DefaultProject.js";

describe("DefaultProject", () => {
  it("chains init", () => {
    const project = new DefaultProject().init({ ior: { uuid: "1" }, owner: "", model: {} });
    expect(project).toBeInstanceOf(DefaultProject);
  });
});
```
"""

CONSTRUCTOR_PARAMS = """```ts
export class ProjectLoader {
  constructor(private readonly root: string) {}
  init(scenario: Scenario<LoaderModel>): this { return this; }
  toScenario(): Scenario<LoaderModel> { return { ior: {}, owner: "", model: {} }; }
}
```"""

INIT_PLAIN_VALUE = """```typescript
export class ProjectLoader {
  root = "";
  constructor() {}
  init(projectRoot: string): this {
    this.root = projectRoot;
    return this;
  }
  toScenario() { return { ior: {}, owner: "", model: { root: this.root } }; }
}
```"""

INIT_NOT_THIS = """```typescript
export class DefaultUnit {
  model = { name: "" };
  constructor() {}
  init(scenario: Scenario<UnitModel>): void {
    this.model = scenario.model;
  }
  toScenario() { return { ior: {}, owner: "", model: this.model }; }
}
```"""

STATIC_CREATE = """```typescript
export class DefaultUnit {
  model = { name: "" };
  private constructor() {}
  static create(name: string): DefaultUnit {
    const unit = new DefaultUnit();
    unit.model.name = name;
    return unit;
  }
  init(scenario: Scenario<UnitModel>): this { this.model = scenario.model; return this; }
  toScenario() { return { ior: {}, owner: "", model: this.model }; }
}
```"""


def test_a_compliant_answer_with_class_and_vitest_test_passes():
    assert ec.validate(GOOD).reasons == []


@pytest.mark.parametrize("layer", [1, 2, 3, 4, 5])
def test_the_builders_render_compliant_classes_for_every_layer(layer):
    component = ce.Component("Requirement")
    answer = ce.render_typescript_answer(component, layer, with_test=True)
    assert ec.validate(answer).reasons == []


@pytest.mark.parametrize("text, expected", [
    (CONSTRUCTOR_PARAMS, "class ProjectLoader: constructor takes parameters "
                         "(private readonly root: string)"),
    (INIT_PLAIN_VALUE, "class ProjectLoader: init(projectRoot: string) takes a plain value"),
    (INIT_NOT_THIS, "class DefaultUnit: init declares return type void, not this"),
    (INIT_NOT_THIS, "class DefaultUnit: init does not return this"),
    (STATIC_CREATE, "class DefaultUnit: static factory create() in place of "
                    "new DefaultUnit().init(scenario)"),
], ids=["constructor-params", "init-plain-value", "init-void", "init-no-return",
        "static-create"])
def test_each_failing_form_of_the_spec_fails_naming_class_and_rule(text, expected):
    result = ec.validate(text)
    assert not result.passed
    assert any(reason.startswith(expected) for reason in result.reasons), result.reasons


@pytest.mark.parametrize("body, expected", [
    ("this.data = fs.readFileSync('a.json', 'utf8');", "constructor calls fs.readFileSync()"),
    ("this.data = await fetch('/x');", "constructor awaits"),
    ("this.home = process.env.HOME ?? '';", "constructor reads process.env"),
    ("this.store = Store.getInstance();", "constructor calls the factory Store.getInstance()"),
    ("console.log('made');", "constructor calls console.log()"),
    ("this.store = createStore();", "constructor calls the factory createStore()"),
    ("this.repo = Users.makeRepository('x');",
     "constructor calls the factory Users.makeRepository()"),
    ("this.model = ModelFactory.defaults();",
     "constructor calls the factory ModelFactory.defaults()"),
    ("this.log = new LoggerFactory().build();",
     "constructor calls the factory new LoggerFactory().build()"),
])
def test_io_and_factories_in_the_constructor_fail(body, expected):
    text = f"""```ts
export class DefaultCache {{
  model = {{}};
  constructor() {{ {body} }}
  init(scenario: Scenario<CacheModel>): this {{ return this; }}
  toScenario() {{ return {{ ior: {{}}, owner: "", model: this.model }}; }}
}}
```"""
    reasons = ec.validate(text).reasons
    assert any(r.startswith(f"class DefaultCache: {expected}") for r in reasons), reasons


@pytest.mark.parametrize("body", [
    "this.model = { items: Array.from([]), tags: new Set<string>() };",
    "this.model = Object.freeze({ name: '', createdAt: Date.now() });",
    "this.model = { uuid: crypto.randomUUID(), created: new Date().toISOString() };",
    "this.model = { id: Symbol.for('unit'), raw: Buffer.from('') };",
    "this.model = { name: defaultName };",
])
def test_plain_defaults_made_by_the_language_pass(body):
    text = f"""```ts
export class DefaultCache {{
  model: CacheModel;
  constructor() {{ {body} }}
  init(scenario: Scenario<CacheModel>): this {{ return this; }}
  toScenario() {{ return {{ ior: {{}}, owner: "", model: this.model }}; }}
}}
```"""
    assert ec.validate(text).reasons == []


def test_optional_scenario_generic_class_and_class_typed_init_pass():
    text = """```typescript
export class DefaultUnit<T extends UnitModel = UnitModel> implements Unit {
  private model!: T;
  constructor() {}
  init(scenario?: Scenario<T>): DefaultUnit<T> {
    if (scenario) { this.model = scenario.model; }
    return this;
  }
  async toScenario(name?: string): Promise<Scenario<T>> {
    const owner = name ?? "";
    return { ior: { uuid: "1" }, owner, model: this.model };
  }
}
```"""
    assert ec.validate(text).reasons == []


def test_init_returning_something_else_is_named():
    text = INIT_NOT_THIS.replace("): void {", ") {").replace(
        "this.model = scenario.model;", "this.model = scenario.model;\n    return this.model;")
    assert "class DefaultUnit: init returns this.model instead of this" in \
        ec.validate(text).reasons


def test_async_init_declaring_this_without_a_promise_fails():
    # An async init resolves to this (`await new X().init(scenario)` chains), so it declares
    # Promise<this>; `: this` on an async method is a type its body cannot have.
    text = GOOD.replace("  init(scenario", "  async init(scenario")
    assert any(r.startswith("class DefaultProject: init declares return type this, not this: "
                            "an async init resolves to this")
               for r in ec.validate(text).reasons), ec.validate(text).reasons
    promised = text.replace("ProjectModel>): this {", "ProjectModel>): Promise<this> {")
    assert ec.validate(promised).reasons == []


def test_init_with_if_else_returning_this_on_both_paths_passes():
    text = GOOD.replace("""    if (!scenario.model) {
      return this;
    }
    this.model = { ...this.model, ...scenario.model };
    return this;""", """    if (scenario.model) {
      this.model = { ...this.model, ...scenario.model };
      return this;
    } else {
      return this;
    }""")
    assert ec.validate(text).reasons == []


def test_init_with_only_a_conditional_return_fails():
    text = GOOD.replace("""    this.model = { ...this.model, ...scenario.model };
    return this;
  }""", """    this.model = { ...this.model, ...scenario.model };
  }""", 1)
    assert "class DefaultProject: init does not return this (its body must end in " \
           "'return this;')" in ec.validate(text).reasons


def test_to_scenario_object_without_ior_owner_model_fails():
    text = GOOD.replace("      owner: \"\",\n", "")
    assert any("toScenario returns an object without owner" in r
               for r in ec.validate(text).reasons)


def test_a_returned_this_inside_a_nested_callback_does_not_count_for_init():
    text = INIT_NOT_THIS.replace("): void {", ") {").replace(
        "this.model = scenario.model;", "[1].forEach(() => { return this; });")
    assert "class DefaultUnit: init does not return this (its body must end in " \
           "'return this;')" in ec.validate(text).reasons


def test_every_class_must_comply_not_just_one():
    text = GOOD + "\n" + CONSTRUCTOR_PARAMS
    reasons = ec.validate(text).reasons
    assert any(r.startswith("class ProjectLoader: constructor takes parameters") for r in reasons)
    assert not any(r.startswith("class DefaultProject") for r in reasons)


def test_inherited_init_and_to_scenario_count():
    text = GOOD + """
```ts
export class DefaultSubProject extends DefaultProject {
  constructor() {
    super();
  }
}
```"""
    assert ec.validate(text).reasons == []


def test_extends_an_unknown_base_still_needs_init():
    text = """```ts
export class DefaultThing extends Base {
  constructor() { super(); }
}
```"""
    reasons = ec.validate(text).reasons
    assert "class DefaultThing: no init(scenario) method; configuration comes through " \
           "init(scenario), which returns this" in reasons


def test_new_with_arguments_on_a_class_of_the_answer_fails():
    text = GOOD + "\n```ts\nconst p = new DefaultProject({ root: '.' });\n```\n"
    assert any("new DefaultProject({ root: '.' }) passes constructor arguments" in r
               for r in ec.validate(text).reasons)


@pytest.mark.parametrize("extra, expected", [
    ("import { describe, it } from '@jest/globals';", "imports '@jest/globals'"),
    ("jest.mock('./x');", "jest.mock() is Jest"),
    ("const fs = require('fs');", "CommonJS require('fs')"),
    ("module.exports = { DefaultProject };", "CommonJS module.exports"),
    ("exports.project = 1;", "CommonJS exports.project"),
    ("import fs = require('fs');", "CommonJS 'import … = require(…)'"),
])
def test_jest_and_commonjs_fail(extra, expected):
    text = GOOD + f"\n```ts\n{extra}\n```\n"
    reasons = ec.validate(text).reasons
    assert any(expected in r for r in reasons), reasons


def test_no_class_fails_and_interfaces_alone_are_not_enough():
    interfaces = "```ts\n" + ce.render_interface(ce.Component("User")) + "```\n"
    assert ec.validate(interfaces).reasons == [
        "no class in the answer's TypeScript code blocks; at least one class must follow "
        "the empty-constructor pattern"]
    assert ec.validate("Just prose, no code.").reasons == [
        "no TypeScript code block (```ts, ```typescript or untagged) in the answer"]


def test_other_languages_and_untagged_non_code_are_ignored():
    text = GOOD + """
```bash
npx vitest run
```

```
src/ts/layer2/
  DefaultProject.ts (new)
```

```javascript
class Legacy { constructor(a) { this.a = a; } }
```
"""
    assert ec.validate(text).reasons == []


def test_a_tagged_block_with_a_syntax_error_fails_with_its_line():
    text = GOOD + "\n```ts\nexport class Broken {\n  constructor() {\n```\n"
    reasons = ec.validate(text).reasons
    assert any(r.startswith("code block 3, line") and "not valid TypeScript" in r
               for r in reasons), reasons


def test_class_expression_assigned_to_a_const_is_checked():
    text = "```ts\nexport const Thing = class { constructor(x: number) {} };\n```"
    reasons = ec.validate(text).reasons
    assert any(r.startswith("class Thing: constructor takes parameters") for r in reasons)


def test_a_class_inside_prose_outside_code_blocks_does_not_count():
    text = "Write `class A { constructor(x) {} }` like this:\n\n" + GOOD
    assert ec.validate(text).reasons == []


def test_non_text_is_a_clear_error():
    with pytest.raises(TypeError, match="expected the answer as str"):
        ec.validate(b"class A {}")  # type: ignore[arg-type]


# ---------------------------------------------------------------- properties

components = st.builds(
    ce.Component,
    name=st.sampled_from(["User", "Requirement", "Unit", "Once", "Session", "Artifact"]),
    fields=st.lists(st.builds(ce.ModelField,
                              name=st.sampled_from(["uuid", "name", "path", "state", "owner"]),
                              ts_type=st.just("string"), default=st.just('""')),
                    min_size=1, max_size=3, unique_by=lambda f: f.name).map(tuple),
    version=st.sampled_from(["0.1.0.0", "0.3.22.2", "1.0.0.0"]),
)
styles = st.builds(
    ce.TsStyle,
    indent=st.sampled_from([2, 4]),
    comments=st.booleans(),
    blank_lines=st.integers(0, 3),
    member_order=st.permutations(ce.MEMBERS).map(tuple),
    return_annotation=st.booleans(),
    quote=st.sampled_from(['"', "'"]),
    init_type=st.sampled_from(ce.INIT_TYPES),
    async_init=st.booleans(),
    optional_scenario=st.booleans(),
    statics=st.lists(st.sampled_from(ce.STATICS), unique=True).map(tuple),
)
layers = st.integers(1, 5)
intros = st.sampled_from(["", "Sure.", "Here you go — the component follows Web4's pattern.",
                          "## Component\n\nThe class below is ready to commit."])


@PROPERTY
@given(components, layers, styles, intros, st.booleans())
def test_a_valid_answer_stays_valid_under_harmless_variations(component, layer, style, intro,
                                                             with_test):
    answer = ce.render_typescript_answer(component, layer, style, intro, with_test)
    assert ec.validate(answer).reasons == []


@PROPERTY
@given(components, layers, styles, st.sampled_from(ce.OMITS))
def test_removing_or_breaking_one_required_part_fails(component, layer, style, omit):
    answer = ce.render_typescript_answer(component, layer, style, omit=omit)
    result = ec.validate(answer)
    assert not result.passed
    name = ce.class_name(component, layer)
    assert any(reason.startswith(f"class {name}:") for reason in result.reasons)
    # Constructor arguments are also named where the call is; nothing else may fail.
    assert all(reason.startswith(f"class {name}:") or omit == "factory-arguments"
               and f"passes constructor arguments; use new {name}().init(scenario)" in reason
               for reason in result.reasons), result.reasons


def test_the_negative_builders_name_the_rule_they_break():
    component = ce.Component("Ledger")
    expected = {
        "factory": "class DefaultLedger: static factory create() in place of new "
                   "DefaultLedger().init(scenario): it sets made.model itself",
        "factory-arguments": "class DefaultLedger: static factory fromModel() in place of new "
                             "DefaultLedger().init(scenario): it passes constructor arguments",
    }
    for omit, reason in expected.items():
        reasons = ec.validate(ce.render_typescript_answer(component, 2, omit=omit)).reasons
        assert any(r.startswith(reason) for r in reasons), reasons


def test_tsstyle_and_render_class_reject_unknown_values():
    with pytest.raises(ValueError, match="init_type"):
        ce.TsStyle(init_type="self")
    with pytest.raises(ValueError, match="statics"):
        ce.TsStyle(statics=("main",))
    with pytest.raises(ValueError, match="omit must be one of"):
        ce.render_class(ce.Component("Ledger"), 2, omit="everything")


@settings(max_examples=60, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("class{}()=;:`\n abinitconstructorthis<>.'\""))
               | st.characters(), max_size=300))
def test_any_text_gets_a_result_never_an_exception(text):
    result = ec.validate(text)
    assert result.passed is (not result.reasons)
    fenced = ec.validate(f"```ts\n{text}\n```")
    assert fenced.passed is (not fenced.reasons)
