rule demo_dataset:
    """Generate a built-in demo dimension (templates written for TrustTrace) as a statement,label[,pair] CSV."""
    output:
        "results/demo/{demo}-n{n}.csv",
    log:
        "logs/demo_dataset/{demo}-n{n}.log",
    benchmark:
        "results/benchmarks/demo_dataset/{demo}-n{n}.tsv"
    conda:
        "../envs/analysis.yaml"
    threads: 1
    params:
        seed=config["split"]["seed"],
    script:
        "../workflow_scripts/make_demo_dataset.py"


rule demo_word_order:
    """Generate the word_order positive control from the pre-training corpus as a statement,label,pair CSV."""
    input:
        corpus="results/pretrain/corpus.txt",
    output:
        "results/demo/word_order-n{n}.csv",
    log:
        "logs/demo_word_order/word_order-n{n}.log",
    benchmark:
        "results/benchmarks/demo_word_order/word_order-n{n}.tsv"
    conda:
        "../envs/analysis.yaml"
    threads: 1
    params:
        seed=config["split"]["seed"],
    script:
        "../workflow_scripts/make_word_order_dataset.py"


rule prepare_dimension:
    """Check, group, subsample and split one dimension's labelled statements; write their counts beside them."""
    input:
        dimension_csv,
    output:
        data=DATA,
        report="results/data/{dimension}.json",
    log:
        "logs/prepare_dimension/{dimension}.log",
    benchmark:
        "results/benchmarks/prepare_dimension/{dimension}.tsv"
    conda:
        "../envs/analysis.yaml"
    threads: 1
    params:
        spec=lambda wildcards: config["dimensions"][wildcards.dimension],
        split=config["split"],
        source=dimension_source,
    script:
        "../workflow_scripts/prepare_dimension.py"
