"""TrustTrace: how a language model comes to represent trustworthiness during pre-training.

Grid: checkpoint x layer x trust dimension. Data -> (pre-training) -> activation shards -> probes, mutual
information, steering -> tables, figures, report.
"""

from snakemake.utils import min_version

min_version("9.0")


configfile: "config.yaml"


report: "report/workflow.rst"


include: "rules/common.smk"
include: "rules/data.smk"
include: "rules/pretrain.smk"
include: "rules/extract.smk"
include: "rules/cells.smk"
include: "rules/steering.smk"
include: "rules/tables.smk"
include: "rules/figures.smk"


rule all:
    """Every cell's metrics, then the tables, figures, summary and report built from them."""
    default_target: True
    input:
        all_targets(),
        aggregate_targets(),
