"""The ``empty_constructor`` rules as Web4's own code follows them: an async ``init``, a declared
return type naming the class or its interface, a CLI's ``static async start``, static helpers
that make the object with ``new X()`` and configure it only through ``init``, singletons. The
violations stay violations: constructor arguments, a static method that sets the new object's
state itself or takes arguments and skips ``init``, a wrongly declared ``init`` type.

The classes below are written for these tests in the style of Web4's layer2/layer5 code."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from loragate.harnesses import empty_constructor as ec

PROPERTY = settings(max_examples=60, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])

TO_SCENARIO = """
  toScenario(): Scenario {
    return { ior: { uuid: this.model.uuid }, owner: "", model: { ...this.model } };
  }"""


def ts(source: str) -> str:
    return f"```typescript\n{source.strip()}\n```\n"


def reasons(source: str) -> list[str]:
    return ec.validate(ts(source)).reasons


# ---------------------------------------------------------------- accepted variations

ASYNC_KERNEL = """
import { Kernel } from "../layer3/Kernel.interface.js";
import { Scenario } from "../layer3/Scenario.interface.js";

export class DefaultKernel implements Kernel {
  private ready = false;
  model = { uuid: "", started: 0 };

  constructor() {}

  /** Loads the kernel from its scenario; resolves to this. */
  async init(scenario?: Scenario): Promise<Kernel> {
    if (this.ready) {
      return this;
    }
    try {
      if (scenario) {
        this.model = { ...this.model, ...scenario.model };
      }
      await this.announce();
      this.ready = true;
      return this;
    } catch (error) {
      this.ready = false;
      throw error;
    }
  }

  private async announce(): Promise<void> {
    await Promise.resolve(this.model.uuid);
  }
""" + TO_SCENARIO + "\n}"

INTERFACE_TYPED = """
export class DefaultCheckRun implements CheckRun, Hibernatable {
  private scenario: CheckScenario | null = null;

  constructor() {}

  init(scenario: CheckScenario): CheckRun {
    this.scenario = scenario;
    return this;
  }

  toScenario(): CheckScenario {
    if (!this.scenario) {
      throw new Error("CheckRun not initialised: call init(scenario) first");
    }
    return this.scenario;
  }
}"""

CLI_START = """
#!/usr/bin/env node
import { DefaultLedger } from "../layer2/DefaultLedger.js";

export class LedgerCLI {
  model = { uuid: "", command: "" };

  constructor() {}

  /** Web4 entry point: no free main function. */
  static async start(args: string[]): Promise<void> {
    const cli = new LedgerCLI().init({ ior: { uuid: "cli" }, owner: "", model: {} });
    await cli.execute(args);
  }

  init(scenario: Scenario): this {
    this.model = { ...this.model, ...scenario.model };
    return this;
  }

  async execute(args: string[]): Promise<void> {
    const [command = "help"] = args;
    this.model.command = command;
    await Promise.resolve(new DefaultLedger());
  }
""" + TO_SCENARIO + """
}

if (import.meta.url === `file://${process.argv[1]}`) {
  LedgerCLI.start(process.argv.slice(2));
}"""

STATIC_HELPERS = """
export class DefaultInvoice implements Invoice {
  private static current: DefaultInvoice | undefined;
  model = { uuid: "", total: 0 };

  constructor() {}

  static from(data: InvoiceModel): DefaultInvoice {
    return new DefaultInvoice().init({ ior: { uuid: data.uuid }, owner: "", model: data });
  }

  static fromJSON(json: string): DefaultInvoice {
    const invoice = new DefaultInvoice();
    invoice.init(JSON.parse(json) as Scenario);
    return invoice;
  }

  static create(uuid: string, total: number): DefaultInvoice {
    const scenario = new DefaultScenario().init({
      ior: { uuid, component: "Invoice", version: "0.1.0.0" },
      owner: "",
      model: { uuid, total },
    });
    return new DefaultInvoice().init(scenario);
  }

  static getInstance(): DefaultInvoice {
    if (!DefaultInvoice.current) {
      DefaultInvoice.current = new DefaultInvoice();
    }
    return DefaultInvoice.current;
  }

  init(scenario: Scenario): DefaultInvoice {
    this.model = { ...this.model, ...scenario.model };
    return this;
  }
""" + TO_SCENARIO + "\n}"

ASYNC_HELPER = """
export class DefaultArchive {
  model = { uuid: "" };
  constructor() {}

  static async restore(scenario: Scenario): Promise<DefaultArchive> {
    const archive = await new DefaultArchive().init(scenario);
    return archive;
  }

  async init(scenario: Scenario): Promise<DefaultArchive> {
    this.model = { ...this.model, ...scenario.model };
    return this;
  }
""" + TO_SCENARIO + "\n}"

BASE_CLI_START = """
export abstract class BaseCLI {
  model = { uuid: "" };
  constructor() {}

  static async start(args: string[]): Promise<void> {
    const cli = new (this as any)();
    await cli.execute(args);
  }

  init(scenario: Scenario): BaseCLI {
    this.model = { ...this.model, ...scenario.model };
    return this;
  }

  abstract execute(args: string[]): Promise<void>;
""" + TO_SCENARIO + """
}

export class ShelfCLI extends BaseCLI {
  constructor() {
    super();
  }

  async execute(args: string[]): Promise<void> {
    this.model.uuid = args[0] ?? "";
  }
}"""


@pytest.mark.parametrize("source", [ASYNC_KERNEL, INTERFACE_TYPED, CLI_START, STATIC_HELPERS,
                                    ASYNC_HELPER, BASE_CLI_START],
                         ids=["async-init-promise-of-interface", "init-typed-as-interface",
                              "cli-static-start", "static-from-fromJSON-create-getInstance",
                              "async-static-helper", "inherited-init-and-base-start"])
def test_the_variations_web4_uses_pass(source):
    assert reasons(source) == []


def test_a_cli_start_that_runs_the_new_instance_without_init_passes():
    # Web4's CLIs: `const cli = new XCLI(); await cli.execute(args);` configures nothing itself.
    source = CLI_START.replace(
        'new LedgerCLI().init({ ior: { uuid: "cli" }, owner: "", model: {} });',
        "new LedgerCLI();")
    assert reasons(source) == []


def test_parentheses_casts_and_await_around_the_chain_do_not_hide_init():
    source = ASYNC_HELPER.replace(
        "    const archive = await new DefaultArchive().init(scenario);\n    return archive;",
        "    return (await (new DefaultArchive() as DefaultArchive).init(scenario))!;")
    assert "(new DefaultArchive() as DefaultArchive).init" in source
    assert reasons(source) == []


def test_an_interface_implemented_by_an_ancestor_is_accepted():
    source = INTERFACE_TYPED + """

export class DefaultNightlyRun extends DefaultCheckRun {
  constructor() { super(); }
  init(scenario: CheckScenario): Hibernatable {
    super.init(scenario);
    return this;
  }
}"""
    assert reasons(source) == []


# ---------------------------------------------------------------- violations


@pytest.mark.parametrize("source, expected", [
    (ASYNC_KERNEL.replace("Promise<Kernel>", "Kernel"),
     "class DefaultKernel: init declares return type Kernel, not this: an async init"),
    (ASYNC_KERNEL.replace("async init(", "init(").replace("await this.announce();", ""),
     "class DefaultKernel: init declares return type Promise<Kernel>, not this: only an "
     "async init"),
    (ASYNC_KERNEL.replace("Promise<Kernel>", "Promise<Scenario>"),
     "class DefaultKernel: init declares return type Promise<Scenario>, not this"),
    (INTERFACE_TYPED.replace("init(scenario: CheckScenario): CheckRun",
                             "init(scenario: CheckScenario): CheckScenario"),
     "class DefaultCheckRun: init declares return type CheckScenario, not this"),
    (ASYNC_KERNEL.replace("      this.ready = true;\n      return this;",
                          "      this.ready = true;\n      return this.model;"),
     "class DefaultKernel: init returns this.model instead of this"),
    (ASYNC_KERNEL.replace("      this.ready = true;\n      return this;\n",
                          "      this.ready = true;\n"),
     "class DefaultKernel: init does not return this"),
    (ASYNC_HELPER.replace("async init(scenario: Scenario)", "async init(uuid: string)"),
     "class DefaultArchive: init(uuid: string) takes a plain value instead of a scenario"),
], ids=["async-not-promise", "promise-not-async", "promise-of-other", "other-type",
        "async-returns-model", "async-falls-off-the-end", "async-plain-value"])
def test_wrong_init_variations_fail(source, expected):
    found = reasons(source)
    assert any(r.startswith(expected) for r in found), found


STATIC_PREFIX = "class DefaultInvoice: static factory {name}() in place of new " \
                "DefaultInvoice().init(scenario): "


@pytest.mark.parametrize("method, name, expected", [
    ("""static fromJSON(json: string): DefaultInvoice {
    return new DefaultInvoice(JSON.parse(json));
  }""", "fromJSON", "it passes constructor arguments (new DefaultInvoice(JSON.parse(json)))"),
    ("""static of(total: number): DefaultInvoice {
    const invoice = new DefaultInvoice();
    invoice.model.total = total;
    return invoice;
  }""", "of", "it sets invoice.model.total itself instead of through init(scenario)"),
    ("""static fromScenario(scenario: any): DefaultInvoice {
    const invoice = new DefaultInvoice();
    if (scenario?.model?.uuid) {
      invoice.model = scenario.model;
    }
    return invoice;
  }""", "fromScenario", "it sets invoice.model itself"),
    ("""static merge(data: InvoiceModel): DefaultInvoice {
    const invoice = new DefaultInvoice();
    Object.assign(invoice, data);
    return invoice;
  }""", "merge", "it sets Object.assign(invoice, …) itself"),
    ("""static counted(): DefaultInvoice {
    const invoice = new DefaultInvoice().init(EMPTY);
    invoice.model.total++;
    return invoice;
  }""", "counted", "it sets invoice.model.total itself"),
    ("""static load(path: string): DefaultInvoice {
    const invoice = new DefaultInvoice();
    invoice.open(path);
    return invoice;
  }""", "load", "it takes (path: string) and returns the new object without init(...)"),
    ("""static make(total: number) {
    return new this({ total });
  }""", "make", "it passes constructor arguments (new DefaultInvoice({ total }))"),
    ("""static shared(): DefaultInvoice {
    DefaultInvoice.current = new DefaultInvoice();
    DefaultInvoice.current.model.uuid = "shared";
    return DefaultInvoice.current;
  }""", "shared", "it sets DefaultInvoice.current.model.uuid itself"),
    ("""static async open(path: string): Promise<DefaultInvoice> {
    return await (new DefaultInvoice() as DefaultInvoice);
  }""", "open", "it takes (path: string) and returns the new object without init(...)"),
], ids=["constructor-arguments", "sets-nested-state", "sets-state-in-a-branch",
        "object-assign", "update-after-init", "arguments-without-init", "new-this-arguments",
        "singleton-sets-state", "awaited-cast-without-init"])
def test_static_methods_that_build_the_object_otherwise_fail(method, name, expected):
    source = STATIC_HELPERS.replace("  static getInstance()",
                                    f"  {method}\n\n  static getInstance()")
    found = reasons(source)
    wanted = STATIC_PREFIX.format(name=name) + expected
    assert any(r.startswith(wanted) for r in found), found


def test_constructor_arguments_in_a_static_method_also_fail_as_a_call():
    source = STATIC_HELPERS.replace("return new DefaultInvoice().init({ ior",
                                    "return new DefaultInvoice(data).init({ ior")
    found = reasons(source)
    assert any("new DefaultInvoice(data) passes constructor arguments" in r for r in found)
    assert any(r.startswith(STATIC_PREFIX.format(name="from") + "it passes constructor "
                            "arguments") for r in found)


def test_a_factory_declared_without_a_body_cannot_show_the_pattern():
    source = """
export declare class DefaultVault {
  constructor();
  static create(name: string): DefaultVault;
  init(scenario: Scenario): this;
  toScenario(): Scenario;
}"""
    assert "class DefaultVault: static factory create() in place of new " \
           "DefaultVault().init(scenario): declared without a body" in reasons(source)


def test_parameter_properties_and_defaulted_parameters_are_constructor_parameters():
    for constructor in ("constructor(private readonly root: string) {}",
                        "constructor(public name = \"\") {}",
                        "constructor(projectRoot?: string) {}"):
        source = ASYNC_HELPER.replace("constructor() {}", constructor)
        assert any(r.startswith("class DefaultArchive: constructor takes parameters")
                   for r in reasons(source)), constructor


def test_the_interface_of_another_class_is_not_accepted():
    source = INTERFACE_TYPED + """

export class DefaultLedger implements Ledger {
  model = { uuid: "" };
  constructor() {}
  init(scenario: Scenario): CheckRun {
    this.model = { ...this.model, ...scenario.model };
    return this;
  }
""" + TO_SCENARIO + "\n}"
    assert any(r.startswith("class DefaultLedger: init declares return type CheckRun, not this")
               for r in reasons(source))


def test_commonjs_in_a_cli_file_still_fails():
    source = CLI_START.replace('import { DefaultLedger } from "../layer2/DefaultLedger.js";',
                               'const { DefaultLedger } = require("../layer2/DefaultLedger.js");')
    assert any("CommonJS require('../layer2/DefaultLedger.js')" in r for r in reasons(source))


# ---------------------------------------------------------------- properties


@st.composite
def static_methods(draw):
    """A static method of ``DefaultParcel`` built from choices, and whether the rules allow
    it: ``new DefaultParcel()`` with or without arguments, chained or kept in a variable or
    a static field, configured through init or not, its state set directly or not, returned
    or run, with or without parameters."""
    name = draw(st.sampled_from(["create", "from", "fromJSON", "start", "getInstance",
                                 "restore", "load", "of", "shared"]))
    params = draw(st.booleans())
    arguments = draw(st.booleans())
    keep = draw(st.sampled_from(["chain", "const", "field"]))
    init = draw(st.booleans())
    state = draw(st.sampled_from([None, "made.model = {}", "made.model.uuid = 'x'",
                                  "made.count += 1", "made.count++",
                                  "Object.assign(made, {})", "made['model'] = {}"]))
    returns = draw(st.booleans())
    is_async = draw(st.booleans())
    wait = "await " if is_async else ""
    make = f"new DefaultParcel({'{ uuid: 1 }' if arguments else ''})"
    body: list[str] = []
    if keep == "chain":
        state = None  # nothing holds the object to set its state on
        value = f"{wait}{make}.init(SCENARIO)" if init else f"{make}"
        if returns:
            body.append(f"return {value};")
        else:
            body.append(f"{wait}{value if init else make + '.run()'};")
    else:
        holder = "made" if keep == "const" else "DefaultParcel.slot"
        body.append(f"const made = {make};" if keep == "const" else f"{holder} = {make};")
        if init:
            body.append(f"{wait}{holder}.init(SCENARIO);")
        if state is not None:
            body.append(state.replace("made", holder) + ";")
        body.append(f"return {holder};" if returns else f"{wait}{holder}.run();")
    signature = f"static {'async ' if is_async else ''}{name}({'input: string' if params else ''})"
    method = signature + " {\n    " + "\n    ".join(body) + "\n  }"
    allowed = not arguments and state is None and not (returns and params and not init)
    return method, allowed


@PROPERTY
@given(static_methods())
def test_a_static_method_fails_exactly_when_it_builds_the_object_otherwise(case):
    method, allowed = case
    source = f"""
export class DefaultParcel {{
  static slot: DefaultParcel | undefined;
  model = {{ uuid: "" }};
  count = 0;
  constructor() {{}}
  {method}
  init(scenario: Scenario): this {{
    this.model = {{ ...this.model, ...scenario.model }};
    return this;
  }}
  async run(): Promise<this> {{ return this; }}
""" + TO_SCENARIO + "\n}"
    found = [r for r in reasons(source) if "static factory" in r]
    assert (found == []) is allowed, (method, found)


DECLARED = ["this", "DefaultDepot", "DefaultDepot<T>", "Depot", "Depot<T>", "Storable",
            "void", "string", "Scenario<DepotModel>", "DepotModel", "any", "this | undefined"]
ACCEPTED = {"this", "DefaultDepot", "DefaultDepot<T>", "Depot", "Depot<T>", "Storable"}


@PROPERTY
@given(st.sampled_from(DECLARED), st.booleans(), st.booleans(), st.booleans())
def test_a_declared_init_type_passes_exactly_when_it_names_this_class_or_interface(
        declared, is_async, promised, optional):
    returns = f"Promise<{declared}>" if promised else declared
    source = f"""
export class DefaultDepot<T extends DepotModel = DepotModel> implements Depot<T>, Storable {{
  model = {{ uuid: "" }};
  constructor() {{}}
  {'async ' if is_async else ''}init(scenario{'?' if optional else ''}: Scenario<T>): {returns} {{
    if (scenario) {{
      this.model = {{ ...this.model, ...scenario.model }};
    }}
    return this;
  }}
""" + TO_SCENARIO + "\n}"
    allowed = declared in ACCEPTED and promised == is_async
    assert (reasons(source) == []) is allowed, (declared, is_async, promised, reasons(source))
