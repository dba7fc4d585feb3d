rule resolve_checkpoint:
    """Resolve a checkpoint (hub revision -> commit, or a directory), record its weight hash and layer count."""
    input:
        checkpoint_files,
    output:
        "results/models/{model}/{checkpoint}.json",
    log:
        "logs/resolve_checkpoint/{model}/{checkpoint}.log",
    benchmark:
        "benchmarks/out/resolve_checkpoint/{model}/{checkpoint}.tsv"
    conda:
        "../envs/trusttrace.yaml"
    threads: 1
    params:
        spec=model_spec,
        cell=lambda wildcards: tt_config.checkpoint_entry(
            config, wildcards.model, wildcards.checkpoint
        ),
        layers=config["layers"],
        mi_input_layer=config["mi"]["input_layer"],
    script:
        "../workflow_scripts/resolve_checkpoint.py"


rule check_checkpoint_integrity:
    """Fail (or warn) when two checkpoints of one model hold identical weights."""
    input:
        lambda wildcards: expand(
            "results/models/{{model}}/{checkpoint}.json",
            checkpoint=tt_config.checkpoint_names(config, wildcards.model),
        ),
    output:
        "results/models/{model}/_integrity.json",
    log:
        "logs/resolve_checkpoint/{model}/integrity.log",
    benchmark:
        "benchmarks/out/resolve_checkpoint/{model}/integrity.tsv"
    conda:
        "../envs/analysis.yaml"
    threads: 1
    params:
        on_duplicate=lambda wildcards: config["models"][wildcards.model][
            "duplicate_weights"
        ],
    script:
        "../workflow_scripts/check_checkpoint_integrity.py"


rule extract_activations:
    """Run a checkpoint over a dimension's statements and write one Parquet shard per layer."""
    input:
        data="results/data/{dimension}.parquet",
        record="results/models/{model}/{checkpoint}.json",
        files=checkpoint_files,
    output:
        directory("results/activations/{model}/{checkpoint}/{dimension}"),
    log:
        "logs/extract_activations/{model}/{checkpoint}/{dimension}.log",
    benchmark:
        "benchmarks/out/extract_activations/{model}/{checkpoint}/{dimension}.tsv"
    conda:
        "../envs/trusttrace.yaml"
    threads: 2
    resources:
        mem_mb=8000,
        runtime=60,
    params:
        spec=model_spec,
        cell=cell_params,
        layers=config["layers"],
        extraction=config["extraction"],
    script:
        "../workflow_scripts/extract_activations.py"
