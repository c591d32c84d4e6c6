# Training and evaluation: one job per (dataset, experiment, modality set, algorithm, seed).
# `train` resumes from the run's checkpoint.pt when restarted; train_done.json is written last.


rule train:
    input:
        splits="data/splits/{dataset}",
        caches=lambda w: cache_dirs(w.dataset, w.modalities),
    output:
        RUN_PATTERN + "/train_done.json",
    params:
        run=run_dir,
        config=algorithm_section,
    log:
        RUN_PATTERN + "/snakemake.log",
    threads: 1
    resources:
        gpu=1 if P["train"]["device"] == "cuda" else 0,
    shell:
        "mbcd train --params {PARAMS} --dataset {wildcards.dataset} --experiment {wildcards.experiment} "
        "--algorithm {wildcards.algorithm} --modalities {wildcards.modalities} --seed {wildcards.seed} "
        "--splits {input.splits}/{wildcards.experiment} --caches data/cache/{wildcards.dataset} "
        "--out {params.run} > {log} 2>&1"


rule evaluate:
    input:
        done=RUN_PATTERN + "/train_done.json",
        splits="data/splits/{dataset}",
    output:
        RUN_PATTERN + "/result.json",
    params:
        run=run_dir,
        eval=P["eval"],
    log:
        RUN_PATTERN + "/evaluate.log",
    threads: 1
    shell:
        "mbcd evaluate --params {PARAMS} --run {params.run} --splits {input.splits}/{wildcards.experiment} "
        "--caches data/cache/{wildcards.dataset} > {log} 2>&1"
