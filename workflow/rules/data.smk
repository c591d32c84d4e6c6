# Data: generate the bundled benchmark, turn any dataset layout into manifests, write experiment splits.


rule generate:
    output:
        card="{root}/data_card.json",
        labels="{root}/labels.tsv",
    params:
        generator=P.get("generator"),
        dataset=lambda w: SYNTH_ROOTS[w.root],
    log:
        "logs/generate/{root}.log",
    threads: workflow.cores
    wildcard_constraints:
        root="|".join(map(re.escape, SYNTH_ROOTS)) or "^$",
    shell:
        "mbcd generate --params {PARAMS} --dataset {params.dataset} --out {wildcards.root} --threads {threads} > {log} 2>&1"


rule manifest:
    input:
        lambda w: dataset_source(w.dataset),
    output:
        directory("data/manifests/{dataset}"),
    params:
        dataset=lambda w: P["datasets"][w.dataset],
        split=P["split"],
    log:
        "logs/manifest/{dataset}.log",
    shell:
        "mbcd manifest --params {PARAMS} --dataset {wildcards.dataset} --out {output} > {log} 2>&1"


rule split:
    input:
        manifests="data/manifests/{dataset}",
        caches=lambda w: cache_dirs(w.dataset),
    output:
        directory("data/splits/{dataset}"),
    params:
        split=P["split"],
        protocols=P["experiments"]["protocols"],
        domains=lambda w: P["datasets"][w.dataset]["domains"],
    log:
        "logs/split/{dataset}.log",
    shell:
        "mbcd split --params {PARAMS} --dataset {wildcards.dataset} --manifests {input.manifests} "
        "--caches data/cache/{wildcards.dataset} --out {output} > {log} 2>&1"
