# Figures from the tables only: a changed figure never reruns a cell. The four per-dimension figures share one
# job (plotting imports cost more than drawing).


rule plot_dimension:
    """Probe accuracy heatmap and curves, I(X;T)/I(Y;T) curves and information plane of one model x dimension."""
    input:
        metrics=f"{TABLES}/metrics.parquet",
        phases=f"{TABLES}/phases.parquet",
        degenerate=f"{TABLES}/degenerate_cells.parquet",
    output:
        heatmap=report_figure(
            f"{FIGURES}/{{dimension}}/probe_accuracy_heatmap.png",
            "probe_accuracy_heatmap",
            "1 probe accuracy heatmap",
        ),
        heatmap_svg=f"{FIGURES}/{{dimension}}/probe_accuracy_heatmap.svg",
        curves=report_figure(
            f"{FIGURES}/{{dimension}}/probe_accuracy_curves.png",
            "probe_accuracy_curves",
            "2 probe accuracy vs step",
        ),
        curves_svg=f"{FIGURES}/{{dimension}}/probe_accuracy_curves.svg",
        information=report_figure(
            f"{FIGURES}/{{dimension}}/information_curves.png",
            "information_curves",
            "3 I(X;T), I(Y;T) vs step",
        ),
        information_svg=f"{FIGURES}/{{dimension}}/information_curves.svg",
        plane=report_figure(
            f"{FIGURES}/{{dimension}}/information_plane.png",
            "information_plane",
            "4 information plane",
        ),
        plane_svg=f"{FIGURES}/{{dimension}}/information_plane.svg",
    log:
        "logs/plot_dimension/{model}/{dimension}.log",
    benchmark:
        "results/benchmarks/plot_dimension/{model}/{dimension}.tsv"
    conda:
        "../envs/analysis.yaml"
    threads: 1
    script:
        "../workflow_scripts/plot_dimension.py"


rule plot_steering:
    """Change of the likelihood margin vs the vector's source checkpoint, one line per alpha."""
    input:
        metrics=f"{TABLES}/metrics.parquet",
    output:
        png=report_figure(
            f"{FIGURES}/{{dimension}}/steering.png", "steering", "5 steering effect"
        ),
        svg=f"{FIGURES}/{{dimension}}/steering.svg",
    log:
        "logs/plot_steering/{model}/{dimension}.log",
    benchmark:
        "results/benchmarks/plot_steering/{model}/{dimension}.tsv"
    conda:
        "../envs/analysis.yaml"
    threads: 1
    params:
        target=lambda wildcards: "@".join(
            tt_config.steering_target(config, wildcards.model)
        ),
    script:
        "../workflow_scripts/plot_steering.py"


rule plot_overview:
    """All dimensions of one model on one page: accuracy, I(X;T), I(Y;T) and steering vs step."""
    input:
        metrics=f"{TABLES}/metrics.parquet",
        phases=f"{TABLES}/phases.parquet",
    output:
        png=report_figure(
            f"{FIGURES}/overview.png", "overview", "overview", category="Overview"
        ),
        svg=f"{FIGURES}/overview.svg",
    log:
        "logs/plot_overview/{model}.log",
    benchmark:
        "results/benchmarks/plot_overview/{model}.tsv"
    conda:
        "../envs/analysis.yaml"
    threads: 1
    params:
        dimensions=DIMENSIONS,
    script:
        "../workflow_scripts/plot_overview.py"


rule plot_pretrain_loss:
    """Pre-training loss vs step of one pre-trained model, the analysed checkpoints marked."""
    input:
        loss=f"{TABLES}/pretrain_loss.parquet",
    output:
        png=report_figure(
            f"{FIGURES}/pretrain_loss.png",
            "pretrain_loss",
            "pre-training loss",
            category="Overview",
        ),
        svg=f"{FIGURES}/pretrain_loss.svg",
    log:
        "logs/plot_pretrain_loss/{model}.log",
    benchmark:
        "results/benchmarks/plot_pretrain_loss/{model}.tsv"
    conda:
        "../envs/analysis.yaml"
    threads: 1
    params:
        checkpoint_steps=lambda wildcards: [
            entry["step"] for entry in config["models"][wildcards.model]["checkpoints"]
        ],
    script:
        "../workflow_scripts/plot_pretrain_loss.py"
