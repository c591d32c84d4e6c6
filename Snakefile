# MBCD study workflow: data -> manifests -> extraction -> splits -> training -> evaluation -> results.
# Run: `snakemake --cores all` (params.yaml) or `snakemake --cores all --config params=configs/hac.yaml`.
# Analyses (not in `all`): `snakemake --cores all analysis` (workflow/rules/analysis.smk).
# Every rule calls one `mbcd <stage>` command; the rules live in workflow/rules/ by stage.
from snakemake.utils import min_version, validate

min_version("9.0")


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/extract.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/results.smk"
include: "workflow/rules/analysis.smk"


rule all:
    input:
        f"results/{P['study']}/metrics.json",
    default_target: True
