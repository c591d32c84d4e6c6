"""Loading and validating ``params.yaml``.

One JSON schema (``workflow/schemas/params.schema.yaml``) is used here and by Snakemake's
``validate(config, schema)``, so a run started by DVC, Snakemake or by hand is checked the same way.
On top of the schema, :func:`validate_params` checks the cross references a schema cannot express
(an experiment naming a dataset that has no block, an ablation of an unknown algorithm, ...).
Every failure raises :class:`ParamsError` with one message naming the key path and what was expected.
"""

from __future__ import annotations

import copy
import functools
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from mbcd.modality import MODALITIES, parse_modality_set

SCHEMA_PATH = Path(__file__).resolve().parent.parent / "workflow" / "schemas" / "params.schema.yaml"


class ParamsError(ValueError):
    """A params file that fails validation; the message names the file, the key path and the reason."""


@functools.lru_cache(maxsize=1)
def load_schema() -> dict[str, Any]:
    with open(SCHEMA_PATH) as fh:
        return yaml.safe_load(fh)


def _key_path(path: Any) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def _describe(err: jsonschema.ValidationError) -> str:
    """Turn a jsonschema error into 'key.path: what was expected'."""
    path = _key_path(err.absolute_path)
    if err.validator == "additionalProperties":
        allowed = sorted(err.schema.get("properties", {}))
        extra = sorted(set(err.instance) - set(allowed))
        where = f"{path}." if err.absolute_path else ""
        expected = f"expected one of: {', '.join(allowed)}" if allowed else "this section takes no keys"
        return f"{where}{extra[0]}: unknown key; {expected}"
    if err.validator == "enum":
        return f"{path}: {err.instance!r} is not allowed; expected one of: {', '.join(map(str, err.validator_value))}"
    if err.validator == "required":
        return f"{path}: {err.message}"
    if err.validator == "type":
        return f"{path}: {err.instance!r} is not of type {err.validator_value}"
    return f"{path}: {err.message}"


def check_schema(params: dict[str, Any], schema: dict[str, Any] | None = None) -> None:
    """Validate against the schema (or a sub-schema); raise ParamsError on the first error by path."""
    schema = schema or load_schema()
    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(params), key=lambda e: (len(e.absolute_path), list(map(str, e.absolute_path))))
    if errors:
        first = jsonschema.exceptions.best_match(errors) if len(errors) > 1 else errors[0]
        more = f" (and {len(errors) - 1} more error(s))" if len(errors) > 1 else ""
        raise ParamsError(_describe(first) + more)


def deep_merge(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """Recursive dict merge; values in ``overrides`` win. Inputs are not modified."""
    out = copy.deepcopy(base)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _names(kind: str) -> list[str]:
    """Registered names of one registry (imports the package's registries lazily)."""
    from mbcd import registries

    return registries.names(kind)


def _fail(path: str, msg: str) -> None:
    raise ParamsError(f"{path}: {msg}")


def validate_params(params: dict[str, Any], check_registries: bool = True) -> None:
    """Schema check, then the cross references. Raises ParamsError naming the key path."""
    check_schema(params)
    exp = params["experiments"]
    for i, name in enumerate(exp["datasets"]):
        if name not in params["datasets"]:
            _fail(f"experiments.datasets[{i}]", f"unknown dataset {name!r}; datasets defined: {', '.join(params['datasets'])}")
    for i, text in enumerate(exp["modality_sets"]):
        try:
            parse_modality_set(text)
        except ValueError as err:
            _fail(f"experiments.modality_sets[{i}]", str(err))
    for name, block in params["datasets"].items():
        if block["adapter"] == "synth":
            gen = params.get("generator")
            if gen is None:
                _fail(f"datasets.{name}.adapter", "adapter 'synth' needs a 'generator' section")
            if gen["size"] not in gen["sizes"]:
                _fail("generator.size", f"{gen['size']!r} is not a key of generator.sizes ({', '.join(gen['sizes'])})")
        if "multi_source" in exp["protocols"] and len(block["domains"]) < 2 and name in exp["datasets"]:
            _fail(f"datasets.{name}.domains", "multi_source needs at least 2 domains")
    algo_names = set(params["algorithms"])
    ablations = params.get("ablations", {})
    for name, abl in ablations.items():
        if abl["algorithm"] not in params["algorithms"]:
            _fail(f"ablations.{name}.algorithm", f"unknown algorithm {abl['algorithm']!r}; expected one of: {', '.join(sorted(algo_names))}")
    for i, name in enumerate(exp["algorithms"]):
        if name not in algo_names and name not in ablations:
            known = sorted(algo_names | set(ablations))
            _fail(f"experiments.algorithms[{i}]", f"unknown algorithm {name!r}; expected one of: {', '.join(known)}")
    for name in ablations:
        resolve_algorithm(params, name)  # validates the merged section
    for mod in params["model"]["encoders"]:
        if mod not in MODALITIES:
            _fail(f"model.encoders.{mod}", f"unknown modality; expected {'/'.join(MODALITIES)}")
    used = {m for text in exp["modality_sets"] for m in parse_modality_set(text)}
    for mod in sorted(used - set(params["model"]["encoders"]), key=MODALITIES.index):
        _fail("model.encoders", f"no encoder configured for modality {mod!r}, which experiments.modality_sets uses")
    if check_registries:
        _check_registries(params)


def _check_registries(params: dict[str, Any]) -> None:
    for mod, enc in params["model"]["encoders"].items():
        if enc not in _names("encoder"):
            _fail(f"model.encoders.{mod}", f"unknown encoder {enc!r}; expected one of: {', '.join(_names('encoder'))}")
    for name in params["algorithms"]:
        if name not in _names("algorithm"):
            _fail(f"algorithms.{name}", f"no registered algorithm {name!r}; registered: {', '.join(_names('algorithm'))}")
    from mbcd.registries import load

    for name, block in params["datasets"].items():
        if block["adapter"] not in _names("adapter"):
            _fail(f"datasets.{name}.adapter", f"unknown adapter {block['adapter']!r}; expected one of: {', '.join(_names('adapter'))}")
        known = getattr(load("adapter").get(block["adapter"]), "known_domains", None)
        for i, domain in enumerate(block["domains"]):
            if known and domain not in known:
                _fail(f"datasets.{name}.domains[{i}]", f"unknown domain {domain!r} for adapter {block['adapter']!r}; expected one of: {', '.join(known)}")


def resolve_algorithm(params: dict[str, Any], name: str) -> tuple[str, dict[str, Any]]:
    """``name`` (an algorithm or an ablation) -> (registered algorithm name, its merged, validated section)."""
    if name in params["algorithms"]:
        return name, copy.deepcopy(params["algorithms"][name])
    abl = params.get("ablations", {}).get(name)
    if abl is None:
        raise ParamsError(f"experiments.algorithms: unknown algorithm {name!r}")
    base = abl["algorithm"]
    merged = deep_merge(params["algorithms"][base], abl["overrides"])
    sub = load_schema()["properties"]["algorithms"]["properties"][base]
    sub = {**sub, "$defs": load_schema()["$defs"]}
    try:
        check_schema(merged, sub)
    except ParamsError as err:
        raise ParamsError(f"ablations.{name}.overrides.{err}") from None
    return base, merged


def load_params(path: str | Path, check_registries: bool = True) -> dict[str, Any]:
    """Read and validate a params file; errors name the file and the key path."""
    path = Path(path)
    try:
        with open(path) as fh:
            params = yaml.safe_load(fh)
    except FileNotFoundError:
        raise ParamsError(f"{path}: params file not found") from None
    except yaml.YAMLError as err:
        raise ParamsError(f"{path}: not valid YAML: {err}") from None
    if not isinstance(params, dict):
        raise ParamsError(f"{path}: expected a mapping at the top level")
    try:
        validate_params(params, check_registries=check_registries)
    except ParamsError as err:
        raise ParamsError(f"{path}: {err}") from None
    return params
