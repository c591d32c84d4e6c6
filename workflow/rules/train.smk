# Training and evaluation: one job per (dataset, experiment, modality set, algorithm, seed).
# `train` resumes from the run's checkpoint.pt when restarted; train_done.json is written last.


rule train:
    input:
        splits="data/splits/{dataset}",
        caches=lambda w: cache_dirs(w.dataset, w.modalities),
    output:
        "runs/{dataset}/{experiment}/{modalities}/{algorithm}/seed{seed}/train_done.json",
    params:
        file=PARAMS,
        run=lambda w, output: os.path.dirname(output[0]),
        config=algorithm_section,
    conda:
        ENV
    log:
        "runs/{dataset}/{experiment}/{modalities}/{algorithm}/seed{seed}/snakemake.log",
    threads: 1
    resources:
        gpu=TRAIN_GPUS,
    shell:
        "mbcd train --params {params.file} --dataset {wildcards.dataset} --experiment {wildcards.experiment} "
        "--algorithm {wildcards.algorithm} --modalities {wildcards.modalities} --seed {wildcards.seed} "
        "--splits {input.splits}/{wildcards.experiment} --caches data/cache/{wildcards.dataset} "
        "--out {params.run} > {log} 2>&1"


rule evaluate:
    input:
        done="runs/{dataset}/{experiment}/{modalities}/{algorithm}/seed{seed}/train_done.json",
        splits="data/splits/{dataset}",
    output:
        "runs/{dataset}/{experiment}/{modalities}/{algorithm}/seed{seed}/result.json",
    params:
        file=PARAMS,
        run=lambda w, output: os.path.dirname(output[0]),
        eval=P["eval"],
    conda:
        ENV
    log:
        "runs/{dataset}/{experiment}/{modalities}/{algorithm}/seed{seed}/evaluate.log",
    threads: 1
    shell:
        "mbcd evaluate --params {params.file} --run {params.run} --splits {input.splits}/{wildcards.experiment} "
        "--caches data/cache/{wildcards.dataset} > {log} 2>&1"
