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
    """Add a source checkpoint's vectors to the target's residual stream; score validation and test statements."""
    input:
        vectors=cells_of("steering_vectors"),
        data=DATA,
        target=steering_target_record,
        target_gate=steering_target_gate,
        target_files=steering_target_files,
    output:
        directory(cells_of("steering")),
    log:
        "logs/steering_effect/{model}/{checkpoint}/{dimension}.log",
    benchmark:
        "results/benchmarks/steering_effect/{model}/{checkpoint}/{dimension}.tsv"
    conda:
        "../envs/trusttrace.yaml"
    threads: 2
    resources:
        mem_mb=8000,
    params:
        cell=cell_params,
        target_spec=steering_target_spec,
        target=lambda wildcards: tt_config.steering_target(config, wildcards.model),
        steering=STEERING_CELL_SETTINGS,
        trustworthy_label=lambda wildcards: config["dimensions"][wildcards.dimension][
            "trustworthy_label"
        ],
        prompt=lambda wildcards: tt_config.steering_prompt(config, wildcards.dimension),
        encoding=STEERING_ENCODING,
    script:
        "../workflow_scripts/steering_effect.py"
