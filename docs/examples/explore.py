"""Explore a finished TrustTrace run from Python: fit a probe of your own on stored activations, compare it with
the run's findings, and draw a figure. Usage: python docs/examples/explore.py [results_dir] [output.png]"""

import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402
from trusttrace import results  # noqa: E402

results_dir = sys.argv[1] if len(sys.argv) > 1 else "results"
figure_path = sys.argv[2] if len(sys.argv) > 2 else "explore.png"

cells = results.cells(results_dir)
model, dimension = cells["model"].iloc[0], cells["dimension"].iloc[0]
chosen = cells[(cells["model"] == model) & (cells["dimension"] == dimension)]
layer = max(chosen["layers"].iloc[0])  # the last block's output
accuracies = []
for checkpoint in chosen["checkpoint"]:
    X, rows = results.activations(model, checkpoint, dimension, layer, results_dir)
    train, test = (rows["split"] == "train").to_numpy(), (rows["split"] == "test").to_numpy()
    X = (X - X[train].mean(0)) / (X[train].std(0) + 1e-6)
    probe = LogisticRegression(max_iter=2000).fit(X[train], rows["label"][train])
    accuracies.append(float(probe.score(X[test], rows["label"][test])))
    print(f"{model} {checkpoint} {dimension} layer {layer}: own probe test accuracy {accuracies[-1]:.3f}")

metrics = results.metrics(results_dir)
stored = metrics[
    (metrics["model"] == model)
    & (metrics["dimension"] == dimension)
    & (metrics["layer"] == layer)
    & (metrics["metric"] == "accuracy")
].sort_values("checkpoint_index")
vector, info = results.steering_vector(model, chosen["checkpoint"].iloc[-1], dimension, layer, results_dir)
print(f"steering vector norm {np.linalg.norm(vector):.3f} (projection spread {info['projection_std']:.3f})")

figure, ax = plt.subplots(figsize=(5, 3.2))
ax.plot(range(len(accuracies)), accuracies, marker="o", label="own probe (sklearn defaults)")
ax.plot(range(len(stored)), stored["value"], marker="s", linestyle="--", label="TrustTrace probe")
ax.set_xticks(range(len(accuracies)), list(chosen["checkpoint"]), rotation=30)
ax.set_ylabel("test accuracy")
ax.set_title(f"{dimension}, layer {layer}")
ax.legend(fontsize=8)
figure.tight_layout()
figure.savefig(figure_path)
print(f"wrote {figure_path}")
