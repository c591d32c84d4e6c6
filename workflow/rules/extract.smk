# Extraction: one job per (dataset, domain, modality), a worker pool of `threads` inside.


rule extract:
    input:
        "data/manifests/{dataset}",
    output:
        directory("data/cache/{dataset}/{domain}/{modality}"),
    params:
        file=PARAMS,
        extract=lambda w: {"strict": P["extract"]["strict"], w.modality: P["extract"][w.modality]},
    conda:
        ENV
    log:
        "logs/extract/{dataset}/{domain}/{modality}.log",
    threads: 2
    shell:
        "mbcd extract --params {params.file} --dataset {wildcards.dataset} --domain {wildcards.domain} "
        "--modality {wildcards.modality} --manifest {input}/{wildcards.domain}.tsv --out {output} "
        "--threads {threads} > {log} 2>&1"
