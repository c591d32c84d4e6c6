"""params.yaml validation: the shipped file passes; each kind of bad input fails before any work with one
message naming the key path and what was expected."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from mbcd.config import ParamsError, deep_merge, load_params, load_schema, resolve_algorithm, validate_params


def _write(tmp_path: Path, params: dict[str, Any]) -> Path:
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    return path


def test_shipped_params_are_valid(repo_root: Path) -> None:
    params = load_params(repo_root / "params.yaml")
    assert params["experiments"]["algorithms"] == ["ERM", "EMA", "SimMMDG", "CMRF", "MBCD"]


def test_shipped_presets_are_valid(repo_root: Path) -> None:
    for preset in sorted((repo_root / "configs").glob("*.yaml")):
        load_params(preset, check_registries=True)


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda p: p["train"].update(epoch=3), r"train\.epoch: unknown key; expected one of: .*epochs"),
        (lambda p: p["algorithms"]["MBCD"]["gcc"].update(alpah=1), r"algorithms\.MBCD\.gcc\.alpah: unknown key"),
        (lambda p: p.update(trian={}), r"trian: unknown key"),
        (lambda p: p["train"].update(epochs="ten"), r"train\.epochs: 'ten' is not of type integer"),
        (lambda p: p["train"].update(lr=-1), r"train\.lr: -1 is less than or equal to the minimum of 0"),
        (lambda p: p["experiments"].update(algorithms=["ERM", "Foo"]), r"experiments\.algorithms\[1\]: unknown algorithm 'Foo'"),
        (lambda p: p["experiments"].update(modality_sets=["rgb+depth"]), r"experiments\.modality_sets\[0\]: unknown modality 'depth'"),
        (lambda p: p["experiments"].update(modality_sets=["rgb+rgb"]), r"experiments\.modality_sets\[0\]: .*repeats"),
        (lambda p: p["experiments"].update(datasets=["hac"]), r"experiments\.datasets\[0\]: unknown dataset 'hac'"),
        (lambda p: p["datasets"]["synth"].update(adapter="kinetics"), r"datasets\.synth\.adapter: 'kinetics' is not allowed"),
        (lambda p: p["model"]["encoders"].update(depth="small3d"), r"model\.encoders\.depth: unknown key"),
        (lambda p: p["split"].update(validation="target"), r"split\.validation: 'target' is not allowed; expected one of: source_holdout, source_test"),
        (lambda p: p["algorithms"]["MBCD"]["amd"].update(mode="sometimes"), r"algorithms\.MBCD\.amd\.mode: 'sometimes' is not allowed"),
        (lambda p: p["generator"].update(size="huge"), r"generator\.size: 'huge' is not a key of generator\.sizes"),
        (lambda p: p["ablations"].update(X={"algorithm": "MBCDD", "overrides": {}}), r"ablations\.X\.algorithm: unknown algorithm 'MBCDD'"),
        (lambda p: p["ablations"].update(X={"algorithm": "MBCD", "overrides": {"amd": {"mode": "often"}}}), r"ablations\.X\.overrides\.amd\.mode: 'often' is not allowed"),
        (lambda p: p["datasets"]["synth"].update(domains=["studio"]), r"datasets\.synth\.domains: multi_source needs at least 2 domains"),
        (lambda p: p.pop("train"), r"'train' is a required property"),
        (lambda p: p["analysis"].update(enabled=["landscape"]), r"analysis\.enabled\[0\]: 'landscape' is not allowed"),
        (lambda p: p["analysis"].update(landscape={}), r"analysis\.landscape: unknown key"),
        (lambda p: p["analysis"]["flatness"].update(radius=[1]), r"analysis\.flatness\.radius: unknown key; expected one of: .*radii"),
        (lambda p: p["analysis"]["flatness"].update(radii=[-1.0]), r"analysis\.flatness\.radii\[0\]: -1\.0 is less than the minimum of 0"),
        (lambda p: p["analysis"]["flatness"]["hessian"].update(iters=0), r"analysis\.flatness\.hessian\.iters: 0 is less than the minimum of 1"),
        (lambda p: p["analysis"]["robustness"].update(modalities=["depth"]), r"analysis\.robustness\.modalities\[0\]: 'depth' is not allowed"),
        (lambda p: p["analysis"]["robustness"].update(noise_std=[]), r"analysis\.robustness\.noise_std: \[\] should be non-empty"),
        (lambda p: p["analysis"]["embeddings"].update(method="umap"), r"analysis\.embeddings\.method: 'umap' is not allowed; expected one of: tsne, pca"),
        (lambda p: p["analysis"]["imbalance"]["probe"].update(C=0), r"analysis\.imbalance\.probe\.C: 0 is less than or equal to the minimum of 0"),
    ],
)
def test_bad_params_fail_with_key_path(params: dict[str, Any], tmp_path: Path, mutate: Any, message: str) -> None:
    mutate(params)
    path = _write(tmp_path, params)
    with pytest.raises(ParamsError, match=message) as info:
        load_params(path, check_registries=False)
    assert str(path) in str(info.value), "the message names the file"


def test_unknown_encoder_and_domain_fail_against_registries(params: dict[str, Any], tmp_path: Path) -> None:
    params["model"]["encoders"]["rgb"] = "resnet9000"
    with pytest.raises(ParamsError, match=r"model\.encoders\.rgb: unknown encoder 'resnet9000'"):
        validate_params(params)
    params["model"]["encoders"]["rgb"] = "small3d"
    params["datasets"]["epic"] = {"adapter": "epic_kitchens", "root": "x", "domains": ["D1", "D9"]}
    with pytest.raises(ParamsError, match=r"datasets\.epic\.domains\[1\]: unknown domain 'D9'"):
        validate_params(params)


def test_missing_and_malformed_files(tmp_path: Path) -> None:
    with pytest.raises(ParamsError, match="params file not found"):
        load_params(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("train: [unclosed\n")
    with pytest.raises(ParamsError, match="not valid YAML"):
        load_params(bad)


def test_ablation_resolves_to_merged_section(params: dict[str, Any]) -> None:
    base, cfg = resolve_algorithm(params, "MBCD_fixed_dropout")
    assert base == "MBCD" and cfg["amd"] == {**params["algorithms"]["MBCD"]["amd"], "mode": "fixed", "p": 0.5}
    assert cfg["gcc"] == params["algorithms"]["MBCD"]["gcc"]
    assert deep_merge({"a": {"b": 1, "c": 2}}, {"a": {"b": 3}}) == {"a": {"b": 3, "c": 2}}


def test_snakemake_validates_with_the_same_schema(params: dict[str, Any], repo_root: Path) -> None:
    from snakemake.exceptions import WorkflowError
    from snakemake.utils import validate

    schema = str(repo_root / "workflow" / "schemas" / "params.schema.yaml")
    validate(params, schema)
    params["train"]["epoch"] = 3
    with pytest.raises(WorkflowError, match="epoch"):
        validate(params, schema)
    assert load_schema()["additionalProperties"] is False


def test_schema_enums_match_registries() -> None:
    from mbcd import registries

    schema = load_schema()
    assert sorted(schema["properties"]["algorithms"]["properties"]) == registries.names("algorithm")
    adapters = schema["properties"]["datasets"]["additionalProperties"]["properties"]["adapter"]["enum"]
    assert sorted(adapters) == registries.names("adapter")
    analysis = schema["properties"]["analysis"]["properties"]
    assert sorted(analysis["enabled"]["items"]["enum"]) == registries.names("analysis")
    assert sorted(set(analysis) - {"enabled"}) == registries.names("analysis"), "one settings block per analysis"
