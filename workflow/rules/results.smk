# Results: collect every run's result.json into the paper's tables, plots and results/<study>/metrics.json.


rule collect:
    input:
        [f"runs/{r.path}/result.json" for r in RUNS],
    output:
        f"results/{P['study']}/metrics.json",
    params:
        experiments=P["experiments"],
    log:
        f"logs/collect/{P['study']}.log",
    shell:
        "mbcd collect --params {PARAMS} --runs runs --out results/{P[study]} > {log} 2>&1"
