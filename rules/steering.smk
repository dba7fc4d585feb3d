rule steering_vectors:
    """Difference-of-means steering vector per layer, scaled by the spread of projections (safetensors)."""
    input:
        ACTIVATIONS,
    output:
        directory(cells_of("steering_vectors")),
    log:
        "logs/steering_vectors/{model}/{checkpoint}/{dimension}.log",
    benchmark:
        "results/benchmarks/steering_vectors/{model}/{checkpoint}/{dimension}.tsv"
    conda:
        "../envs/analysis.yaml"
    threads: 1
    params:
        cell=cell_params,
        trustworthy_label=lambda wildcards: config["dimensions"][wildcards.dimension][
            "trustworthy_label"
        ],
    script:
        "../workflow_scripts/steering_vectors.py"


rule steering_effect:
    """Add one source checkpoint's vectors (every dimension) to the target, loaded once; score the statements."""
    input:
        vectors=expand(
            cells_of("steering_vectors"), dimension=DIMENSIONS, allow_missing=True
        ),
        data=expand(DATA, dimension=DIMENSIONS),
        target=steering_target_record,
        target_gate=steering_target_gate,
        target_files=steering_target_files,
        target_copy=steering_target_local_copy,
    output:
        directory(
            expand(cells_of("steering"), dimension=DIMENSIONS, allow_missing=True)
        ),
    log:
        "logs/steering_effect/{model}/{checkpoint}.log",
    benchmark:
        "results/benchmarks/steering_effect/{model}/{checkpoint}.tsv"
    conda:
        "../envs/trusttrace.yaml"
    threads: steering_target_threads
    resources:
        mem_mb=8000,
    params:
        dimensions=steering_dimensions,
        target_spec=steering_target_spec,
        steering=STEERING_CELL_SETTINGS,
        encoding=STEERING_ENCODING,
    script:
        "../workflow_scripts/steering_effect.py"
