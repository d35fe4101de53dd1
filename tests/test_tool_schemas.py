"""Tool schemas every provider accepts: the portable subset of JSON Schema, and a strict variant.

OpenAI's function-calling validation rejects an array schema without ``items``
(pydantic writes tuples as ``prefixItems``), so a schema outside the subset
fails every ask before its first step. This walks every tool's schema.
"""

from __future__ import annotations

from typing import Any

import pytest

from vdisc.agent.toolbox import TOOLS, Toolbox

ALLOWED = {"type", "properties", "required", "items", "enum", "anyOf", "description", "default",
           "additionalProperties", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "minItems",
           "maxItems", "strict"}


def _walk(node: Any, path: str = "$"):
    if isinstance(node, dict):
        yield path, node
        for key, value in node.items():
            if key in ("properties",):
                for name, sub in value.items():
                    yield from _walk(sub, f"{path}.{name}")
            elif isinstance(value, (dict, list)):
                yield from _walk(value, f"{path}.{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _walk(value, f"{path}[{i}]")


@pytest.mark.parametrize("strict", [False, True])
def test_every_tool_schema_is_in_the_portable_subset(strict):
    schemas = Toolbox(None).schemas(strict=strict)
    assert [s["function"]["name"] for s in schemas] == list(TOOLS)
    for s in schemas:
        fn = s["function"]
        assert fn["description"] and fn["parameters"]["type"] == "object"
        for path, node in _walk(fn["parameters"]):
            where = f'{fn["name"]} {path}'
            assert set(node) <= ALLOWED, (where, set(node) - ALLOWED)  # no prefixItems, $defs, titles, ...
            if node.get("type") == "array":
                assert "items" in node, where
        for name, prop in fn["parameters"]["properties"].items():
            assert prop.get("description"), f'{fn["name"]}.{name} has no description'
        if strict:
            params = fn["parameters"]
            assert fn["strict"] is True and params["additionalProperties"] is False
            assert params["required"] == list(params["properties"])
            assert not any("default" in node for _, node in _walk(params)), fn["name"]


def test_closed_sets_are_enums():
    search = next(s for s in Toolbox(None).schemas() if s["function"]["name"] == "search")["function"]
    props = search["parameters"]["properties"]
    enums = {name: [o["enum"] for o in prop.get("anyOf", [prop]) if "enum" in o] for name, prop in props.items()}
    assert enums["order"] == [["relevance", "earliest", "latest"]]
    assert "event" in enums["level"][0] and "speech" in enums["modality"][0]
    within = next(o for o in props["within"]["anyOf"] if o.get("type") == "array")
    assert within["items"] == {"type": "number"} and within["minItems"] == within["maxItems"] == 2


def test_schemas_survive_the_sdks_strict_conversions():
    from langchain_core.utils.function_calling import convert_to_openai_tool
    from openai.lib._pydantic import to_strict_json_schema

    box = Toolbox(None)
    for name, model in box.models.items():
        strict = to_strict_json_schema(model)  # the openai SDK's own strict form of the arguments model
        assert strict["additionalProperties"] is False and set(strict["required"]) == set(strict["properties"])
        assert not any("prefixItems" in node for _, node in _walk(strict)), name
    for schema in box.schemas(strict=True):
        converted = convert_to_openai_tool(schema, strict=True)
        assert converted["function"]["parameters"] == schema["function"]["parameters"]


def test_strict_nulls_mean_the_defaults_and_bad_windows_are_observations(talk_library):
    from vdisc import Library

    home, _ = talk_library
    box = Toolbox(Library(home)._context())
    nulls = {k: None for k in box.models["search"].model_fields}
    obs = box.run(1, "search", {**nulls, "query": "heavy rain expected"})
    assert obs.error is None and obs.args.get("top_k") is None and len(obs.result["hits"]) == 10  # default top_k
    bad = box.run(2, "search", {"query": "rain", "within": [10.0]})
    assert bad.error and bad.error.startswith("bad arguments for search: within")
    ok = box.run(3, "search", {"query": "heavy rain expected", "within": [40.0, 50.0]})
    assert ok.error is None and all(h["end"] > 40.0 and h["start"] < 50.0 for h in ok.result["hits"])
