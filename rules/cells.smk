rule probe:
    """Linear and mass-mean probes per layer of one checkpoint x dimension (one metrics file per cell)."""
    input:
        ACTIVATIONS,
    output:
        directory(cells_of("probe")),
    log:
        "logs/probe/{model}/{checkpoint}/{dimension}.log",
    benchmark:
        "results/benchmarks/probe/{model}/{checkpoint}/{dimension}.tsv"
    conda:
        "../envs/analysis.yaml"
    threads: 1
    resources:
        mem_mb=2000,
    params:
        cell=cell_params,
        settings=config["probe"],
    script:
        "../workflow_scripts/probe.py"


rule mutual_information:
    """Normalized HSIC I(X;T), I(Y;T) (and CKA) per layer, reusing the X and Y operators across layers."""
    input:
        shards=ACTIVATIONS,
        reference=mi_reference_activations,
    output:
        directory(cells_of("mi")),
    log:
        "logs/mutual_information/{model}/{checkpoint}/{dimension}.log",
    benchmark:
        "results/benchmarks/mutual_information/{model}/{checkpoint}/{dimension}.tsv"
    conda:
        "../envs/analysis.yaml"
    threads: 1
    resources:
        mem_mb=4000,
    params:
        cell=cell_params,
        settings=config["mi"],
    script:
        "../workflow_scripts/mutual_information.py"
