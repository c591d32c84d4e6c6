# Analyses (method.md §9): imbalance, robustness, flatness, embeddings of the trained multi-source runs.
# One job per (analysis, dataset, modality set) for each analysis in params `analysis.enabled`. Not part of
# `rule all` (the default study's time budget): run `snakemake --cores all analysis`. Requesting the runs'
# result.json builds them, the Unimodal runs the imbalance analysis compares with included.
from mbcd.modality import format_modality_set
from mbcd.stages.analyse import analysis_runs

ANALYSIS_DIR = f"results/{P['study']}/analysis"
ANALYSIS_SETS = sorted({format_modality_set(parse_modality_set(s)) for s in P["experiments"]["modality_sets"]})
ANALYSES_ON = P["analysis"]["enabled"] if "multi_source" in P["experiments"]["protocols"] else []


rule analysis:
    input:
        [
            f"{ANALYSIS_DIR}/{a}/{d}/{m}/{a}.{ext}"
            for a in ANALYSES_ON
            for d in DATASETS
            for m in ANALYSIS_SETS
            for ext in ("json", "png")
        ],


rule analyse:
    input:
        # every run the analysis reads (the same list the stage checks)
        runs=lambda w: [f"runs/{r.path}/result.json" for r, _ in analysis_runs(P, w.analysis, w.dataset, w.modalities)],
        splits="data/splits/{dataset}",
        caches=lambda w: cache_dirs(w.dataset, w.modalities),
    output:
        json=f"{ANALYSIS_DIR}/{{analysis}}/{{dataset}}/{{modalities}}/{{analysis}}.json",
        png=f"{ANALYSIS_DIR}/{{analysis}}/{{dataset}}/{{modalities}}/{{analysis}}.png",
    wildcard_constraints:
        analysis="[a-z]+",
    params:
        file=PARAMS,
        settings=lambda w: P["analysis"].get(w.analysis, {}),
        config={"eval": P["eval"], "experiments": P["experiments"]},
        out=lambda w, output: os.path.dirname(output.json),
    conda:
        ENV
    log:
        f"logs/analysis/{P['study']}/{{analysis}}-{{dataset}}-{{modalities}}.log",
    threads: 2
    shell:
        "mbcd analyse --params {params.file} --analysis {wildcards.analysis} --dataset {wildcards.dataset} "
        "--modalities {wildcards.modalities} --runs runs --caches data/cache/{wildcards.dataset} "
        "--splits {input.splits} --out {params.out} --threads {threads} > {log} 2>&1"
