"""Engine benchmark: post-training recipe speed, clustering vs scikit-learn, artifact sizes.

    python bench/engine.py            # prints three tables, writes bench/results/engine_*.csv

Times are medians of repeated runs in one process, after one warm-up run.
"""

import torch

from report import median_time, table  # noqa: F401  (also puts the repo on sys.path)
import compress_engine as ce  # noqa: E402
from compress_engine import cluster  # noqa: E402
from compress_engine.prune import compressible, magnitude_mask  # noqa: E402


def main():
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    data = ce.load_dataset("fashion-mnist")
    models = {name: ce.load_model(name) for name in ("lenet-300-100", "lenet-5")}

    # 1. post-training recipe applied + evaluated on all 10k test images
    recipe = ce.Recipe(sparsity=0.9, clusters=16)
    rows = []
    for name, model in models.items():
        target = {"lenet-300-100": 0.15, "lenet-5": 0.6}[name]
        ce.compress(model, recipe, data)  # warm-up + dense reference cached
        res = None

        def run():
            nonlocal res
            res = ce.compress(model, recipe, data)
        sec = median_time(run, 9)
        stages = {k: round(v * 1000, 1) for k, v in res.timings.items() if k != "total"}
        rows.append({"model": name, "recipe": "prune 90% + 16 clusters", "median_s": sec, "target_s": target,
                     "met": "yes" if sec <= target else "NO", "stages_ms": " ".join(f"{k}={v}" for k, v in stages.items()),
                     "accuracy": res.metrics["accuracy"]})
    table("Post-training recipe, applied and evaluated on 10,000 test images", rows, "engine_speed")

    # 2. clustering vs scikit-learn KMeans on the same values. sklearn's default is one k-means++
    #    run (n_init=1); n_init=10 is what it needs to come near our inertia, so both are shown.
    from sklearn.cluster import KMeans
    w = torch.cat([p.detach().flatten() for p in compressible(models["lenet-300-100"]).values()])
    kept = w[magnitude_mask(w, 0.9)]
    rows = []
    for label, values in (("all 266,200 weights", w), ("26,620 kept after 90% pruning", kept)):
        x = values.double().numpy().reshape(-1, 1)
        for k in (4, 16, 64, 256):
            ours = {}

            def run_ours():
                ours["c"], ours["l"] = cluster.kmeans_1d(values, k, "kmeans++", seed=0)
            t_ours = median_time(run_ours, 5)
            row = {"values": label, "k": k, "ours_ms": t_ours * 1000,
                   "ours_inertia": cluster.inertia(values, ours["c"], ours["l"])}
            for n_init in (1, 10):
                km = {}

                def run_sk():
                    km["m"] = KMeans(n_clusters=k, n_init=n_init, init="k-means++", random_state=0).fit(x)
                t_sk = median_time(run_sk, 1 if n_init == 10 else 3)
                row[f"sk{n_init}_ms"] = t_sk * 1000
                row[f"sk{n_init}_inertia/ours"] = float(km["m"].inertia_) / row["ours_inertia"]
                row[f"speedup_vs_sk{n_init}"] = t_sk / t_ours
            rows.append(row)
    table("Weight clustering: ours (k-means++ init, refined) vs scikit-learn KMeans "
          "(inertia/ours > 1 means sklearn's clustering is worse)", rows, "engine_cluster")

    # 3. artifact bytes and accuracy
    rows = []
    for name, model in models.items():
        for label, r in (("dense float32", ce.Recipe()),
                         ("prune 90%", ce.Recipe(sparsity=0.9)),
                         ("prune 90% + 16 clusters", ce.Recipe(sparsity=0.9, clusters=16)),
                         ("prune 90% + 16 clusters + Huffman", ce.Recipe(sparsity=0.9, clusters=16, huffman=True)),
                         ("prune 90% global + 16 clusters + Huffman", ce.Recipe(sparsity=0.9, prune_scope="global", clusters=16, huffman=True))):
            m = ce.compress(model, r, data).metrics
            rows.append({"model": name, "recipe": label, "artifact_bytes": m["artifact_bytes"],
                         "ratio": m["ratio"], "accuracy": m["accuracy"], "dense_accuracy": m["dense_accuracy"]})
    table("Artifact size (len of the bytes that decode to the exact weights) and test accuracy, no fine-tuning",
          rows, "engine_sizes")


if __name__ == "__main__":
    main()
