"""The deployment files Export offers beside the artifact, measured: their bytes, and the time to make them.

    python bench/deploy.py                 # the sample models, each under a few recipes
    python bench/deploy.py --repeats 9     # more timings per file (median)

For each model and recipe: the artifact's bytes (.cpg, what "size" means everywhere), the float safetensors file's
(every tensor as decoded: what plain PyTorch loads) and the int8 one's (quantized tensors as int8/uint8 codes with
their scale and zero point, clustered ones as uint8 indices into a codebook; docs/FORMAT.md section 10), and the
median time ce.deploy_files takes to make both from the artifact (one decode: what Export pays once per new artifact).
Every int8 file is read back (ce.read_int8) and checked equal, bit for bit, to the decoded weights before it is
counted. One torch thread. Prints one table and writes bench/results/deploy.csv.
"""

import argparse

from report import median_time, table  # also puts this checkout on sys.path

import torch  # noqa: E402

import compress_engine as ce  # noqa: E402

MODELS = ("lenet-300-100", "lenet-5", "resnet-8")
RECIPES = {  # name -> Recipe fields (every one applies without training: no data is needed to make the files)
    "prune 90 % + 4-bit per channel": dict(sparsity=0.9, bits=4, per_channel=True, symmetric=True),
    "prune 90 % + 8-bit affine": dict(sparsity=0.9, bits=8),
    "prune 90 % + 16 clusters + Huffman": dict(sparsity=0.9, clusters=16, huffman=True),
    "256 clusters": dict(clusters=256),
}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=5, help="timings of deploy_files per row (median)")
    ap.add_argument("--models", default=",".join(MODELS), help="comma-separated sample models")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    data = ce.load_dataset("fashion-mnist")
    rows = []
    for name in args.models.split(","):
        model = ce.load_model(name)
        for label, fields in RECIPES.items():
            art = ce.compress(model, ce.Recipe(**fields), data, evaluate=False).artifact
            weights, int8, why_not = ce.deploy_files(art)
            if int8 is not None:
                back, decoded = ce.read_int8(int8), ce.decode(art)
                assert back.keys() == decoded.keys() and all(torch.equal(back[k], decoded[k]) for k in back), name
            rows.append({"model": name, "recipe": label, "artifact (.cpg) bytes": len(art),
                         "float .safetensors bytes": len(weights),
                         "int8 .safetensors bytes": len(int8) if int8 is not None else f"none: {why_not}",
                         "int8 / float": round(len(int8) / len(weights), 3) if int8 is not None else "-",
                         "both files made (ms, median)": round(1000 * median_time(lambda: ce.deploy_files(art),
                                                                                  args.repeats), 1)})
    table("Deployment files beside the artifact (one torch thread; every int8 file read back bit for bit)", rows,
          "deploy")


if __name__ == "__main__":
    main()
