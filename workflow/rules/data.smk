# Data: generate the bundled benchmark, turn any dataset layout into manifests, write experiment splits.


rule generate:
    output:
        card="{root}/data_card.json",
        labels="{root}/labels.tsv",
    params:
        file=PARAMS,
        generator=P.get("generator"),
        dataset=lambda w: SYNTH_ROOTS[w.root],
    conda:
        ENV
    log:
        "logs/generate/{root}.log",
    threads: workflow.cores
    wildcard_constraints:
        root="|".join(map(re.escape, SYNTH_ROOTS)) or "^$",
    shell:
        "mbcd generate --params {params.file} --dataset {params.dataset} --out {wildcards.root} --threads {threads} > {log} 2>&1"


rule manifest:
    input:
        lambda w: dataset_source(w.dataset),
    output:
        directory("data/manifests/{dataset}"),
    params:
        file=PARAMS,
        dataset=lambda w: P["datasets"][w.dataset],
        split=P["split"],
    conda:
        ENV
    log:
        "logs/manifest/{dataset}.log",
    shell:
        "mbcd manifest --params {params.file} --dataset {wildcards.dataset} --out {output} > {log} 2>&1"


rule split:
    input:
        manifests="data/manifests/{dataset}",
        caches=lambda w: cache_dirs(w.dataset),
    output:
        directory("data/splits/{dataset}"),
    params:
        file=PARAMS,
        split=P["split"],
        protocols=P["experiments"]["protocols"],
        domains=lambda w: P["datasets"][w.dataset]["domains"],
    conda:
        ENV
    log:
        "logs/split/{dataset}.log",
    shell:
        "mbcd split --params {params.file} --dataset {wildcards.dataset} --manifests {input.manifests} "
        "--caches data/cache/{wildcards.dataset} --out {output} > {log} 2>&1"
