"""The RAG corpus in ``data/rag/``, generated deterministically from the tables in this module.

Files written by :func:`write_corpus` (JSON lines, sorted keys, stable order):

- ``tool_examples.jsonl``: one tool call example per line: ``key``, ``tool_ecosystem``,
  ``request`` (what a user asks), ``tool`` and ``arguments`` (the call that does it);
- ``pdca.jsonl``: PDCA summaries with their ``precedes``/``follows`` breadcrumbs;
- ``retrieval_queries.jsonl``: paraphrased requests with the ``key`` of the example that must be
  retrieved for them (the retrieval tests' labels);
- ``tool_need_train.jsonl``: the tool-need classifier's training prompts, ``prompt`` and
  ``needs_tool``: requests that act on the workspace and requests answered from knowledge alone
  (the tool example requests are further positives);
- ``tool_need_labelled.jsonl``: the held-out evaluation set, ``prompt`` and ``needs_tool``; no
  prompt in it appears in the training files.

A request *needs a tool* when answering it means acting on the workspace: reading, writing,
listing or searching its files, or running a command. Questions about tools, commands and
files, and requests to write text or code into the answer, do not.

Run ``python -m loragate.rag.corpus [OUT_DIR]`` to regenerate the files.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from loragate.textfiles import InputFileError, jsonl_lines

TOOL_ECOSYSTEMS: tuple[str, ...] = ("file_ops", "search", "git", "npm", "web4_cli")
TOOL_NAMES: tuple[str, ...] = (
    "read_file", "write_file", "edit_file", "list_files", "search", "run_command",
)

TOOL_EXAMPLES_FILE = "tool_examples.jsonl"
PDCA_FILE = "pdca.jsonl"
RETRIEVAL_QUERIES_FILE = "retrieval_queries.jsonl"
TOOL_NEED_TRAIN_FILE = "tool_need_train.jsonl"
LABELLED_FILE = "tool_need_labelled.jsonl"


def content_id(*parts: Any) -> str:
    """A stable id for a record: the SHA-256 of its canonical JSON (first 32 hex digits)."""
    payload = json.dumps(parts, sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()[:32]


@dataclass(frozen=True)
class ToolExample:
    key: str
    tool_ecosystem: str
    request: str
    tool: str
    arguments: dict[str, str] = field(hash=False)

    @property
    def id(self) -> str:
        return content_id("tool_example", self.tool_ecosystem, self.request, self.tool,
                          self.arguments)

    @property
    def call_json(self) -> str:
        return json.dumps({"tool": self.tool, "arguments": self.arguments}, ensure_ascii=False)

    def to_record(self) -> dict[str, Any]:
        return {"key": self.key, "tool_ecosystem": self.tool_ecosystem, "request": self.request,
                "tool": self.tool, "arguments": self.arguments}


@dataclass(frozen=True)
class PdcaSummary:
    pdca_id: str
    title: str
    topic: str
    date: str
    summary: str
    precedes: str | None = None
    follows: str | None = None

    @property
    def id(self) -> str:
        return content_id("pdca", self.pdca_id, self.title, self.topic, self.date, self.summary,
                          self.precedes, self.follows)

    @property
    def document(self) -> str:
        return f"{self.title}. {self.summary}"

    def to_record(self) -> dict[str, Any]:
        return {"pdca_id": self.pdca_id, "title": self.title, "topic": self.topic,
                "date": self.date, "summary": self.summary, "precedes": self.precedes,
                "follows": self.follows}


def _run(key: str, ecosystem: str, request: str, command: str) -> ToolExample:
    return ToolExample(key, ecosystem, request, "run_command", {"command": command})


_FILE_OPS: tuple[ToolExample, ...] = (
    ToolExample("read_default_user", "file_ops",
                "Open src/ts/layer2/DefaultUser.ts and show me its contents",
                "read_file", {"path": "src/ts/layer2/DefaultUser.ts"}),
    ToolExample("read_package_json", "file_ops", "Read the package.json of this project",
                "read_file", {"path": "package.json"}),
    ToolExample("read_tsconfig", "file_ops", "Show me what is in tsconfig.json",
                "read_file", {"path": "tsconfig.json"}),
    ToolExample("list_layer3", "file_ops", "What files are in src/ts/layer3?",
                "list_files", {"path": "src/ts/layer3"}),
    ToolExample("list_unit_component", "file_ops",
                "List everything under components/Unit/0.3.0.5",
                "list_files", {"path": "components/Unit/0.3.0.5"}),
    ToolExample("list_test_folder", "file_ops", "Which files does the test folder contain?",
                "list_files", {"path": "test"}),
    ToolExample("write_sprint_notes", "file_ops",
                "Create docs/notes.md with the heading 'Sprint notes'",
                "write_file", {"path": "docs/notes.md", "content": "# Sprint notes\n"}),
    ToolExample("write_vitest_config", "file_ops",
                "Write a minimal vitest config to vitest.config.ts",
                "write_file", {"path": "vitest.config.ts",
                               "content": "import { defineConfig } from 'vitest/config';\n"
                                          "export default defineConfig({});\n"}),
    ToolExample("write_scenario_json", "file_ops",
                "Save an empty user scenario into scenarios/user.json",
                "write_file", {"path": "scenarios/user.json",
                               "content": '{"ior": {}, "owner": "", "model": {}}\n'}),
    ToolExample("edit_rename_method", "file_ops",
                "In src/ts/layer2/DefaultUser.ts rename the method getName to name",
                "edit_file", {"path": "src/ts/layer2/DefaultUser.ts",
                              "old": "getName(", "new": "name("}),
    ToolExample("edit_bump_version", "file_ops",
                "Change the version in package.json from 0.1.0 to 0.2.0",
                "edit_file", {"path": "package.json",
                              "old": '"version": "0.1.0"', "new": '"version": "0.2.0"'}),
    ToolExample("edit_fix_typo", "file_ops", "Fix the typo 'recieve' in README.md",
                "edit_file", {"path": "README.md", "old": "recieve", "new": "receive"}),
)

_SEARCH: tuple[ToolExample, ...] = (
    ToolExample("search_default_user_class", "search",
                "Find where the class DefaultUser is defined",
                "search", {"query": "class DefaultUser", "path": "src"}),
    ToolExample("search_vitest_imports", "search", "Which files import from vitest?",
                "search", {"query": "from 'vitest'"}),
    ToolExample("search_todo", "search", "Look for every TODO comment in the source tree",
                "search", {"query": "TODO", "path": "src"}),
    ToolExample("search_to_scenario", "search", "Where is toScenario implemented?",
                "search", {"query": "toScenario(", "path": "src"}),
    ToolExample("search_journal_redis", "search",
                "Search the project journal for PDCAs about the Redis cache",
                "search", {"query": "Redis cache", "path": "scrum.pmo/project.journal"}),
    ToolExample("search_constructor_params", "search",
                "Find constructors that take parameters in layer2",
                "search", {"query": "constructor(", "path": "src/ts/layer2"}),
    ToolExample("search_init_test", "search", "Locate the test that covers init(scenario) for Unit",
                "search", {"query": "init(scenario", "path": "test"}),
    ToolExample("search_module_exports", "search",
                "Find any leftover module.exports in the codebase",
                "search", {"query": "module.exports"}),
    ToolExample("search_save_start", "search", "Grep the scripts folder for save/start",
                "search", {"query": "save/start", "path": "scripts"}),
    ToolExample("search_cmm_badge", "search", "Where do the docs mention the CMM badge?",
                "search", {"query": "CMM Badge", "path": "docs"}),
    ToolExample("search_template_version", "search",
                "Which PDCAs still use template version 3.1.4.2?",
                "search", {"query": "Template Version:** 3.1.4.2",
                           "path": "scrum.pmo/project.journal"}),
    ToolExample("search_scenario_interface", "search", "Find the definition of interface Scenario",
                "search", {"query": "interface Scenario", "path": "src/ts/layer3"}),
)

_GIT: tuple[ToolExample, ...] = (
    _run("git_status", "git", "Show the git status of the working tree", "git status --short"),
    _run("git_commit", "git", "Commit the staged changes with the message 'Add DefaultUser'",
         "git commit -m 'Add DefaultUser'"),
    _run("git_push", "git", "Push the current branch to origin", "git push origin HEAD"),
    _run("git_pull", "git", "Pull the latest changes from origin into this branch",
         "git pull --no-edit"),
    _run("git_log", "git", "Show the last five commits", "git log --oneline -5"),
    _run("git_mv", "git", "Move src/old.ts to src/ts/layer2/DefaultOld.ts keeping its history",
         "git mv src/old.ts src/ts/layer2/DefaultOld.ts"),
    _run("git_add_journal", "git", "Stage all changes in the project journal",
         "git add scrum.pmo/project.journal"),
    _run("git_branch", "git", "Create the branch dev/redis-cache and switch to it",
         "git switch -c dev/redis-cache"),
    _run("git_diff_file", "git", "Show what changed in DefaultUser.ts since the last commit",
         "git diff -- src/ts/layer2/DefaultUser.ts"),
    _run("git_merge_main", "git", "Merge main into my branch without opening an editor",
         "git merge main --no-edit"),
    _run("git_fetch", "git", "Fetch the remote branches from origin", "git fetch origin"),
    _run("git_last_touch", "git", "Which commit last touched package.json?",
         "git log -1 --format=%H -- package.json"),
)

_NPM: tuple[ToolExample, ...] = (
    _run("npm_install", "npm", "Install the project dependencies", "npm install --yes"),
    _run("npm_test", "npm", "Run the test suite", "npm test"),
    _run("npm_vitest_unit", "npm", "Run the vitest tests of the Unit component",
         "npx vitest run test/unit"),
    _run("npm_add_zod", "npm", "Add zod as a dependency", "npm install zod --yes"),
    _run("npm_build", "npm", "Build the TypeScript sources", "npm run build"),
    _run("npm_add_vitest", "npm", "Add vitest as a dev dependency",
         "npm install --save-dev vitest --yes"),
    _run("npm_outdated", "npm", "Check which packages are outdated", "npm outdated"),
    _run("npm_start", "npm", "Start the project", "npm start"),
    _run("npm_lint", "npm", "Run the linter over the sources", "npm run lint"),
    _run("npm_ls_typescript", "npm", "Show the installed version of typescript",
         "npm ls typescript"),
    _run("npm_typecheck", "npm", "Type-check the project without emitting files",
         "npx tsc --noEmit"),
    _run("npm_uninstall_lodash", "npm", "Remove the unused lodash package", "npm uninstall lodash"),
)

_WEB4_CLI: tuple[ToolExample, ...] = (
    _run("web4_tree_unit", "web4_cli",
         "Show the file tree of the Unit component version 0.3.0.5, two levels deep",
         "web4tscomponent on Unit 0.3.0.5 tree 2"),
    _run("web4_test_user", "web4_cli", "Run the tests of component User 0.1.0.0",
         "web4tscomponent on User 0.1.0.0 test"),
    _run("web4_next_build", "web4_cli", "Create the next build of Unit 0.3.0.5",
         "web4tscomponent on Unit 0.3.0.5 upgrade nextBuild"),
    _run("web4_next_patch", "web4_cli", "Bump the PDCA component 0.1.0.0 to its next patch",
         "web4tscomponent on PDCA 0.1.0.0 upgrade nextPatch"),
    _run("web4_build_pdca", "web4_cli", "Build the PDCA component 0.1.0.0",
         "web4tscomponent on PDCA 0.1.0.0 build"),
    _run("web4_create_invoice", "web4_cli", "Create a new component Invoice at version 0.1.0.0",
         "web4tscomponent create Invoice 0.1.0.0"),
    _run("web4_links_user", "web4_cli", "Show the semantic version links of the User component",
         "web4tscomponent on User 0.1.0.0 links"),
    _run("web4_compare_unit", "web4_cli", "Compare the Unit versions 0.3.0.4 and 0.3.0.5",
         "web4tscomponent compare Unit 0.3.0.4,0.3.0.5"),
    _run("web4_verify_fix", "web4_cli", "Verify and repair the component Unit 0.3.0.5",
         "web4tscomponent on Unit 0.3.0.5 verifyAndFix"),
    _run("web4_pdca_links", "web4_cli",
         "Update the PDCA links after moving pdca-old.md to pdca-new.md",
         "pdca updateLinksToFile pdca-old.md pdca-new.md"),
    _run("web4_requirement", "web4_cli",
         "Record the requirement 'Cache embeddings in Redis'",
         "requirement create 'Cache embeddings in Redis' 'Store embeddings by content hash'"),
    _run("web4_remove_version", "web4_cli",
         "Remove the accidental version 0.3.5.1 of Web4TSComponent",
         "web4tscomponent on Web4TSComponent 0.3.5.1 removeVersion"),
)

TOOL_EXAMPLES: tuple[ToolExample, ...] = _FILE_OPS + _SEARCH + _GIT + _NPM + _WEB4_CLI

_J = "scrum.pmo/project.journal"
PDCA_SUMMARIES: tuple[PdcaSummary, ...] = (
    PdcaSummary("2025-09-18-UTC-0900-redis-cache-plan", "Plan a Redis cache for embeddings",
                "redis-cache", "2025-09-18-UTC-0900",
                "Embedding every query again made retrieval slow. Decided to cache embeddings "
                "and retrieval results in Redis keyed by content hash, and to keep working "
                "uncached when Redis is down.",
                precedes="2025-09-18-UTC-1400-redis-cache-build"),
    PdcaSummary("2025-09-18-UTC-1400-redis-cache-build", "Build the Redis embedding cache",
                "redis-cache", "2025-09-18-UTC-1400",
                "Implemented the cache with redis-py, float32 vectors stored as bytes, one "
                "warning when the server is unreachable.",
                precedes="2025-09-19-UTC-1000-redis-cache-check",
                follows="2025-09-18-UTC-0900-redis-cache-plan"),
    PdcaSummary("2025-09-19-UTC-1000-redis-cache-check", "Check the Redis cache under failure",
                "redis-cache", "2025-09-19-UTC-1000",
                "Killed the Redis server in the middle of a run: queries kept answering from "
                "ChromaDB, a single warning was logged. Cache hit rate on the second run was "
                "100 percent.",
                follows="2025-09-18-UTC-1400-redis-cache-build"),
    PdcaSummary("2025-09-20-UTC-0830-empty-constructor-audit",
                "Audit constructors for the empty-constructor rule", "empty-constructor",
                "2025-09-20-UTC-0830",
                "Found three layer2 classes whose constructors took a project root. Planned to "
                "move the configuration into init(scenario).",
                precedes="2025-09-20-UTC-1300-empty-constructor-refactor"),
    PdcaSummary("2025-09-20-UTC-1300-empty-constructor-refactor",
                "Refactor layer2 classes to init(scenario)", "empty-constructor",
                "2025-09-20-UTC-1300",
                "Constructors now take nothing and set a default model; init(scenario) returns "
                "this; toScenario returns ior, owner and model.",
                precedes="2025-09-21-UTC-0915-empty-constructor-tests",
                follows="2025-09-20-UTC-0830-empty-constructor-audit"),
    PdcaSummary("2025-09-21-UTC-0915-empty-constructor-tests",
                "Vitest coverage for scenario round trips", "empty-constructor",
                "2025-09-21-UTC-0915",
                "Added Vitest tests that build each class with new X().init(scenario) and "
                "compare toScenario with the input scenario.",
                follows="2025-09-20-UTC-1300-empty-constructor-refactor"),
    PdcaSummary("2025-09-22-UTC-1100-tool-call-format", "Fix the tool call JSON format",
                "tool-calls", "2025-09-22-UTC-1100",
                "Agreed on tool calls as a JSON object with tool and arguments; run_command "
                "uses non-interactive git and npm forms.",
                precedes="2025-09-23-UTC-1000-tool-call-sandbox"),
    PdcaSummary("2025-09-23-UTC-1000-tool-call-sandbox", "Execute tool calls in a sandbox",
                "tool-calls", "2025-09-23-UTC-1000",
                "Each tool call runs in a throwaway folder prepared for the sample; success "
                "means the expected file content afterwards.",
                follows="2025-09-22-UTC-1100-tool-call-format"),
    PdcaSummary("2025-09-24-UTC-1500-template-upgrade", "Upgrade PDCAs to template 3.2.4.2",
                "pdca-template", "2025-09-24-UTC-1500",
                f"Moved the header fields into the order of the current template and made "
                f"every link dual; the old documents stay under {_J}."),
)

# (query, key of the example that must come back first)
RETRIEVAL_QUERIES: tuple[tuple[str, str], ...] = (
    ("display the source of DefaultUser.ts in layer2", "read_default_user"),
    ("what does our tsconfig say", "read_tsconfig"),
    ("list the contents of the layer3 directory", "list_layer3"),
    ("rename getName to name inside DefaultUser", "edit_rename_method"),
    ("correct the misspelled word recieve in the readme", "edit_fix_typo"),
    ("in which file is DefaultUser declared", "search_default_user_class"),
    ("find all the TODO markers in src", "search_todo"),
    ("any files still using module.exports", "search_module_exports"),
    ("check out a new branch named dev/redis-cache", "git_branch"),
    ("get the newest commits from the remote into my branch", "git_pull"),
    ("rename a file with git so its history is kept", "git_mv"),
    ("print the recent commit history", "git_log"),
    ("add the zod library to the dependencies", "npm_add_zod"),
    ("compile the TypeScript project", "npm_build"),
    ("which typescript version is installed", "npm_ls_typescript"),
    ("make a next build version of Unit 0.3.0.5", "web4_next_build"),
    ("execute the User component tests at 0.1.0.0", "web4_test_user"),
    ("scaffold a component named Invoice", "web4_create_invoice"),
)

# Training prompts beyond the tool examples: workspace requests phrased as questions about the
# state of this project, and knowledge requests that name files, tools and commands.
TOOL_PROMPTS: tuple[str, ...] = (
    "Is there a LICENSE file in this repository?",
    "Do we already have a test for DefaultOrder?",
    "What does our README say about installation?",
    "Where in our code do we call init(scenario)?",
    "Are any of my files staged right now?",
    "How many PDCAs did we write this week?",
    "Who last edited src/ts/layer2/DefaultUser.ts?",
    "What version is the Unit component at in this repo?",
    "Save the plan above to docs/plan.md.",
    "Put the scenario you just wrote into scenarios/order.json.",
    "Append a line 'node_modules/' to our .gitignore.",
    "Tell me which branch I am on.",
    "Does the project build cleanly right now?",
    "Do the tests pass at the moment?",
    "Check what our vitest config contains.",
    "Which packages does this project depend on?",
    "Show me yesterday's PDCA.",
    "Find where we log the Redis warning.",
    "What changed in the last three commits?",
    "Get me the contents of the scripts folder.",
    "Let me see the DefaultOrder class.",
    "Update my branch from origin without an editor prompt.",
    "Throw the lodash dependency out.",
    "Prepare a next patch version of the User component.",
    "Is the PDCA component's build up to date? Build it.",
    "Where is the first PDCA of this sprint stored?",
    "Which files reference the old template version?",
    "What's in the layer1 folder?",
    "Note down 'review on Friday' in docs/todo.md.",
    "Correct 'teh' to 'the' in docs/intro.md.",
    "How big is our test folder? List it.",
    "Run the type checker and tell me about errors.",
    "Do we still have any CommonJS require calls?",
    "Record the current branch's commits since Monday.",
    "Show the dependencies tree for vitest.",
    "Look into the journal and find the latest PDCA.",
    "Have a look at package.json and tell me the scripts.",
    "Are there merge conflicts in the working tree?",
    "Commit this with the message 'Dual links'.",
    "Make the release build.",
)

NO_TOOL_PROMPTS: tuple[str, ...] = (
    "What does a LICENSE file usually say in an MIT project?",
    "In general, where do tests live in a TypeScript project?",
    "What would happen if I ran npm install without --yes?",
    "What does `git log -1` print?",
    "Write a .editorconfig for me and paste it in your answer.",
    "Give me a command that lists staged files, but do not run it.",
    "What does the tsconfig option noEmit do?",
    "Which compiler options does a strict TypeScript setup usually enable?",
    "Write a commit message for adding a CHANGELOG.",
    "What is usually in a vitest.config.ts?",
    "What does `web4tscomponent on User 0.1.0.0 test` mean word by word?",
    "Explain what a package.json scripts section is for.",
    "What is the typical folder structure of a Node project?",
    "How would I find a string in files with grep? Just explain.",
    "Show an example of a git mv command in your answer.",
    "What does a .gitignore entry like node_modules/ do?",
    "Write a bash function that prints the current branch; don't execute it.",
    "What is the difference between git fetch and git pull?",
    "Explain what the layer1 folder is for in Web4.",
    "What is a staged file in git?",
    "What is the difference between git merge and git rebase?",
    "Why does Web4 use empty constructors?",
    "Explain what a TRON decision block is.",
    "What does the --yes flag change for npm install?",
    "How do PRECEDES and FOLLOWS links work in a PDCA?",
    "What is a dual link in a Web4 document?",
    "Describe the five layers of a Web4 component.",
    "When should I prefer git mv over a plain mv?",
    "What is the purpose of init(scenario)?",
    "Why is Jest not used in Web4 projects?",
    "Write a TypeScript class DefaultOrder with an empty constructor and init(scenario).",
    "Draft a PDCA for today's refactoring session.",
    "Give me an example of a tool call JSON that reads a file.",
    "Suggest a commit message for a change that adds Redis caching.",
    "Summarise the PDCA method in three sentences.",
    "What is a vector embedding?",
    "Thanks, that looks good.",
    "Which arguments does the edit_file tool take?",
    "Is it safe to run git reset --hard on a shared branch?",
    "Explain what toScenario should return.",
    "What does the CMM badge mean and who awards it?",
    "How should a PDCA file be named?",
    "What is the role of layer4 controllers?",
    "Compare Vitest and Jest in two sentences.",
    "Why are CommonJS modules not allowed in Web4?",
    "Write a Vitest test for a class Counter with increment().",
    "What does ChromaDB store for each document?",
    "Explain semantic versioning with four parts like 0.3.0.5.",
    "What's the template version of the current PDCA template?",
    "How do I answer TRON's decisions, for example 1a, 2b?",
    "Rewrite this sentence so it is clearer: the build it fails sometimes.",
    "What is a force push and why is it dangerous?",
    "Translate 'commit early, commit often' into German.",
    "What happens when a git pull needs a merge commit?",
    "Give me three names for a component that sends invoices.",
    "Explain the difference between read_file and search.",
    "What should the Emotional Reflection section of a PDCA contain?",
    "Why does a test need to be deterministic?",
    "What is the point of a save/start branch?",
    "How would you structure a scenario object for a User?",
    "Write the JSON schema of a tool call with tool and arguments.",
    "What is Redis used for in a RAG system?",
    "Explain what a content hash is.",
    "Write a short motivational note for the team after the release.",
    "List the sections of a PDCA in order.",
    "What does npm outdated report, in general terms?",
    "Explain what a semantic link such as latest points to.",
    "Why should a constructor not perform I/O?",
    "What does 'git status --short' print, roughly?",
    "Tell me a good practice for writing commit messages.",
    "Describe what a vitest config file usually contains.",
    "Design an interface for a cache with get and set.",
    "What is the difference between a dependency and a dev dependency?",
    "Give an example of a TRON feedback quote block.",
    "How long should a PDCA summary be?",
    "Convert this list into a Markdown table: a, b, c.",
    "Explain why interactive commands hang in an agent's shell.",
    "What is the purpose of the project journal?",
    "Outline a plan for migrating tests from Jest to Vitest.",
    "Which layer do Default* implementations live in?",
)

# (prompt, needs_tool): the held-out evaluation set. Many negatives talk about files, git, npm
# and the tools themselves; many positives name none of them.
LABELLED_PROMPTS: tuple[tuple[str, bool], ...] = (
    # positives, plain
    ("Open the README and tell me what it says.", True),
    ("Print the contents of src/ts/layer4/UserController.ts.", True),
    ("Show me the files inside src/ts/layer5.", True),
    ("Create CHANGELOG.md with a first entry for version 0.1.0.", True),
    ("Replace the string 'jest' with 'vitest' in package.json.", True),
    ("Search the code for 'static create('.", True),
    ("Find every file that mentions DefaultOrder.", True),
    ("Run git status for me.", True),
    ("Commit everything in the journal folder with the message 'PDCA update'.", True),
    ("Push my commits to the remote.", True),
    ("Run npm install with --yes.", True),
    ("Execute the vitest suite now.", True),
    ("Run the build script.", True),
    ("Upgrade the User component 0.1.0.0 to the next minor version.", True),
    ("Show the tree of PDCA 0.1.0.0.", True),
    ("Run the tests of Unit 0.3.0.5 through the component CLI.", True),
    ("List the directories under components.", True),
    ("Grep for 'console.log' in the layer2 sources.", True),
    ("Show the diff of the working tree.", True),
    ("Delete the line 'TODO remove' from src/index.ts.", True),
    # positives, without tool words
    ("What's currently in the readme at the root?", True),
    ("Is there anything in the layer4 folder yet?", True),
    ("Where did we define the Scenario type?", True),
    ("Bring my branch up to date with the remote.", True),
    ("Make the test suite run and tell me what fails.", True),
    ("Bump the Unit component to its next build.", True),
    ("Put a .gitignore at the root that ignores node_modules.", True),
    ("How many commits are on this branch that are not on main?", True),
    ("Which version of vitest do we have installed right now?", True),
    ("Does DefaultUser.ts already have a toScenario method?", True),
    ("Check whether the project compiles.", True),
    ("Add the line 'export * from \"./DefaultUser\";' to src/index.ts.", True),
    ("Who changed the tsconfig last?", True),
    ("Show me today's PDCA in the journal.", True),
    ("Which of our classes still take constructor arguments?", True),
    ("Save this answer as docs/decisions.md.", True),
    ("Get the dependencies installed.", True),
    ("Are there uncommitted changes?", True),
    ("Tell me which components exist in this repo.", True),
    ("Look up where the Redis URL is read in our code.", True),
    ("Make a new component named Payment, version 0.1.0.0.", True),
    ("Fetch the latest branches and list them.", True),
    ("What's the current version field in our package.json?", True),
    ("Stage the two files I just edited and commit them as 'Fix links'.", True),
    ("Count the tests in the test directory.", True),
    ("Show the last commit's message.", True),
    ("Find the PDCA where we decided on the tool call format.", True),
    ("Lint the sources and report the warnings.", True),
    ("Verify the Web4TSComponent 0.3.5.0 and fix what is broken.", True),
    ("Move docs/old.md to docs/archive/old.md with history kept.", True),
    ("Add typescript as a dev dependency.", True),
    ("Type-check everything.", True),
    ("Open vitest.config.ts.", True),
    ("Write 'hello' into tmp/greeting.txt.", True),
    ("What does our tsconfig set as the target?", True),
    ("Which files changed in the last commit?", True),
    ("Start the dev server.", True),
    ("Look in the scripts folder for anything that deletes branches.", True),
    ("Update the PDCA links after I renamed pdca-a.md to pdca-b.md.", True),
    ("Record a requirement called 'Offline embeddings'.", True),
    # negatives, plain
    ("What is a PDCA?", False),
    ("Explain the empty constructor pattern.", False),
    ("Who is TRON in Web4?", False),
    ("Write a haiku about code review.", False),
    ("What is the capital of France?", False),
    ("Give me a TypeScript interface for a User with a name and an email.", False),
    ("Summarise what a ship gate is.", False),
    ("How many sections does the current PDCA template have?", False),
    ("Describe the Check phase of PDCA.", False),
    ("What is LoRA fine-tuning?", False),
    ("Explain cosine similarity.", False),
    ("What is the difference between a unit test and an integration test?", False),
    ("Write a TypeScript function that adds two numbers.", False),
    ("Good morning!", False),
    ("What should go in the Act section?", False),
    ("What does an Agent Role header field describe?", False),
    ("Explain the Wilson score interval in plain words.", False),
    ("Write a regex that matches a UTC timestamp like 2025-09-21-UTC-2225.", False),
    ("What is the difference between precision and recall?", False),
    ("Give me feedback on this plan: cache first, then measure.", False),
    # negatives, with tool and workspace words
    ("What does `git pull --no-edit` do?", False),
    ("Explain the arguments of the read_file tool.", False),
    ("Is npm install --yes safe to run in CI? Explain.", False),
    ("Why should files be moved with git mv?", False),
    ("Describe how search differs from list_files.", False),
    ("Show me what a git commit command with a message looks like.", False),
    ("Where does a vitest config file usually live in a project?", False),
    ("What is the naming convention for PDCA files in the journal?", False),
    ("Write an example write_file call that creates notes.md.", False),
    ("What would `web4tscomponent on Unit 0.3.0.5 upgrade nextBuild` do?", False),
    ("Why is a bare git pull forbidden for agents?", False),
    ("Explain what npm test runs by default.", False),
    ("What is the package.json version field for?", False),
    ("How do I read a file in Node.js with fs/promises? Show the code.", False),
    ("Explain what a README file should contain.", False),
    ("When is git rebase better than git merge?", False),
    ("What does the edit_file tool do if the old text is not found?", False),
    ("Write a .gitignore for a TypeScript project and show it here.", False),
    ("What does the tsconfig option strict enable?", False),
    ("Explain the run_command tool's rules for git and npm.", False),
    ("What is the difference between npm ci and npm install?", False),
    ("Give me a shell one-liner that counts lines in all .ts files, don't run it.", False),
    ("Why do Web4 CLI tools take positional arguments instead of flags?", False),
    ("What does a search tool call need as arguments?", False),
    ("Explain what git log --oneline shows.", False),
    ("Describe the folder layout of a Web4 component version.", False),
    ("What is the purpose of the src/ts/layer3 folder?", False),
    ("How should I name a dev branch?", False),
    ("What is a merge conflict?", False),
    ("Explain how semantic version links like dev and latest are used.", False),
    ("What does npx do?", False),
    ("Write a commit message for a typo fix in README.md.", False),
    ("What does list_files return for an empty folder?", False),
    ("What is the risk of git push --force?", False),
    ("How do I structure tests for a component in Vitest? Explain.", False),
    ("What is a lockfile and why commit it?", False),
    ("Explain what the PDCA component's build step produces.", False),
    ("What is the difference between write_file and edit_file?", False),
    ("What does a Redis URL look like?", False),
    ("Explain why generated files must not be edited by hand.", False),
)


def _jsonl_lines(records: Iterable[dict[str, Any]]) -> str:
    return "".join(json.dumps(r, sort_keys=True, ensure_ascii=False) + "\n" for r in records)


def corpus_files() -> dict[str, str]:
    """The corpus as ``{file name: text}``, exactly what :func:`write_corpus` writes."""
    return {
        TOOL_EXAMPLES_FILE: _jsonl_lines(e.to_record() for e in TOOL_EXAMPLES),
        PDCA_FILE: _jsonl_lines(p.to_record() for p in PDCA_SUMMARIES),
        RETRIEVAL_QUERIES_FILE: _jsonl_lines(
            {"query": q, "expected_key": k} for q, k in RETRIEVAL_QUERIES
        ),
        TOOL_NEED_TRAIN_FILE: _jsonl_lines(
            [{"prompt": p, "needs_tool": True} for p in TOOL_PROMPTS]
            + [{"prompt": p, "needs_tool": False} for p in NO_TOOL_PROMPTS]
        ),
        LABELLED_FILE: _jsonl_lines(
            {"prompt": p, "needs_tool": label} for p, label in LABELLED_PROMPTS
        ),
    }


def write_corpus(out_dir: Path) -> list[Path]:
    """Write the corpus files into ``out_dir``; returns the paths written."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in corpus_files().items():
        path = out_dir / name
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written


class CorpusError(ValueError):
    """A corpus file that cannot be used; the message names the file, line and field."""


def read_jsonl(path: Path, required: Sequence[str]) -> list[dict[str, Any]]:
    """Read a JSON-lines file; each record must be an object holding the ``required`` keys."""
    try:
        lines = list(jsonl_lines(path, "corpus file"))
    except InputFileError as exc:
        raise CorpusError(str(exc)) from None
    records = []
    for line in lines:
        if line.error is not None:
            raise CorpusError(f"{line.where}: {line.error}")
        if not isinstance(line.value, dict):
            raise CorpusError(f"{line.where}: expected a JSON object")
        missing = [k for k in required if k not in line.value]
        if missing:
            raise CorpusError(f"{line.where}: missing field(s) {missing}")
        records.append(line.value)
    return records


def load_tool_examples(path: Path) -> list[ToolExample]:
    examples = []
    fields = ("key", "tool_ecosystem", "request", "tool", "arguments")
    for lineno, r in enumerate(read_jsonl(path, fields), start=1):
        if r["tool_ecosystem"] not in TOOL_ECOSYSTEMS:
            raise CorpusError(f"{path}: record {lineno}: field 'tool_ecosystem': unknown "
                              f"ecosystem {r['tool_ecosystem']!r}; known: {list(TOOL_ECOSYSTEMS)}")
        if r["tool"] not in TOOL_NAMES:
            raise CorpusError(f"{path}: record {lineno}: field 'tool': unknown tool "
                              f"{r['tool']!r}; known: {list(TOOL_NAMES)}")
        if not isinstance(r["arguments"], dict):
            raise CorpusError(f"{path}: record {lineno}: field 'arguments': expected an object")
        examples.append(ToolExample(r["key"], r["tool_ecosystem"], r["request"], r["tool"],
                                    r["arguments"]))
    return examples


def load_pdca_summaries(path: Path) -> list[PdcaSummary]:
    fields = ("pdca_id", "title", "topic", "date", "summary")
    return [
        PdcaSummary(r["pdca_id"], r["title"], r["topic"], r["date"], r["summary"],
                    r.get("precedes"), r.get("follows"))
        for r in read_jsonl(path, fields)
    ]


def load_labelled_prompts(path: Path) -> list[tuple[str, bool]]:
    rows = []
    for lineno, r in enumerate(read_jsonl(path, ("prompt", "needs_tool")), start=1):
        if not isinstance(r["needs_tool"], bool):
            raise CorpusError(f"{path}: record {lineno}: field 'needs_tool': expected true/false")
        rows.append((r["prompt"], r["needs_tool"]))
    return rows




def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Write the RAG corpus files.")
    parser.add_argument("out_dir", nargs="?", default="data/rag", type=Path)
    args = parser.parse_args(argv)
    for path in write_corpus(args.out_dir):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
