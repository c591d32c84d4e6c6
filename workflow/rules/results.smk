# Results: collect every run's result.json into the paper's tables, plots and results/<study>/metrics.json.


rule collect:
    input:
        [f"runs/{r.path}/result.json" for r in RUNS],
    output:
        f"results/{P['study']}/metrics.json",
    params:
        file=PARAMS,
        experiments=P["experiments"],
        out=lambda w, output: os.path.dirname(output[0]),
    conda:
        ENV
    log:
        f"logs/collect/{P['study']}.log",
    shell:
        "mbcd collect --params {params.file} --runs runs --out {params.out} > {log} 2>&1"
