rule demo_dataset:
    """Generate a built-in demo dimension (templates written for TrustTrace) as a statement,label CSV."""
    output:
        "results/demo/{demo}-n{n}.csv",
    log:
        "logs/demo_dataset/{demo}-n{n}.log",
    benchmark:
        "benchmarks/out/demo_dataset/{demo}-n{n}.tsv"
    conda:
        "../envs/analysis.yaml"
    threads: 1
    params:
        seed=config["split"]["seed"],
    script:
        "../workflow_scripts/make_demo_dataset.py"


rule prepare_dimension:
    """Check, group, subsample and split one dimension's labelled statements; write their counts beside them."""
    input:
        dimension_csv,
    output:
        data="results/data/{dimension}.parquet",
        report="results/data/{dimension}.json",
    log:
        "logs/prepare_dimension/{dimension}.log",
    benchmark:
        "benchmarks/out/prepare_dimension/{dimension}.tsv"
    conda:
        "../envs/analysis.yaml"
    threads: 1
    params:
        spec=lambda wildcards: config["dimensions"][wildcards.dimension],
        split=config["split"],
    script:
        "../workflow_scripts/prepare_dimension.py"
