"""Packaging: the wheel `pip install .` builds holds every engine module and the sample models, declares
the exact torch pin, the extras and the console script, and an installed copy imports from any folder
and finds its models. Also: the README's two commands, dev.sh and CI agree."""

import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    """The wheel of a copy of the sources (building in place would leave build/ and *.egg-info in the repo)."""
    pytest.importorskip("setuptools", minversion="70.1", reason="builds without build isolation (scripts/dev.sh "
                        "installs the pinned setuptools)")
    src, out = tmp_path_factory.mktemp("src"), tmp_path_factory.mktemp("wheel")
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    for name in ("compress_engine", "sample_models"):
        shutil.copytree(ROOT / name, src / name, ignore=ignore)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "--no-index",
                    "--disable-pip-version-check", str(src), "-w", str(out)], check=True, capture_output=True)
    (path,) = out.glob("compression_playground-*.whl")
    return path


def test_wheel_holds_every_module_and_the_sample_models(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    modules = {p.relative_to(ROOT).as_posix() for p in (ROOT / "compress_engine").rglob("*.py")
               if "__pycache__" not in p.parts}
    assert modules - names == set(), "a package folder is missing from pyproject.toml's [tool.setuptools] packages"
    models = {f"compress_engine/sample_models/{p.name}" for p in (ROOT / "sample_models").iterdir()
              if p.suffix in (".json", ".safetensors")}
    assert len(models) >= 6 and models <= names
    scans = {f"compress_engine/{p.relative_to(ROOT).as_posix()}" for p in (ROOT / "sample_models" / "scans").rglob("*.json")}
    assert len(scans) >= 9 and scans <= names  # the Sensitivity page's scans of each sidebar model
    curves = {f"compress_engine/{p.relative_to(ROOT).as_posix()}" for p in (ROOT / "sample_models" / "curves").glob("*.json")}
    assert curves and curves <= names  # the one-shot runs shipped for ResNet-8's pages
    assert {n.split("/")[0] for n in names if ".dist-info/" not in n} == {"compress_engine"}  # no tests/, pages/


def test_wheel_metadata_pins_torch_and_declares_extras_and_command(wheel):
    z = zipfile.ZipFile(wheel)
    meta = z.read(next(n for n in z.namelist() if n.endswith("dist-info/METADATA"))).decode()
    assert "Requires-Dist: torch==2.13.0" in meta  # a looser pin pulls a multi-GB CUDA build
    assert {"dashboard", "images", "test", "bench"} <= set(re.findall(r"^Provides-Extra: (\S+)", meta, re.M))
    entry = z.read(next(n for n in z.namelist() if n.endswith("dist-info/entry_points.txt"))).decode()
    assert "compression-playground = compress_engine.__main__:main" in entry


def test_installed_copy_imports_anywhere_and_finds_its_models(wheel, tmp_path):
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    code = ("import compress_engine as ce, compress_engine.playground.cards as cards; "
            "print(ce.__file__); print(cards.SAMPLE_DIR); print(sorted(c['name'] for c in ce.list_models())); "
            "print(sum(p.numel() for p in ce.load_model('lenet-5').parameters()))")
    env = {**os.environ, "PYTHONPATH": str(site), "OMP_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, "-c", code], cwd="/", env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    file, sample_dir, names, params = out.stdout.splitlines()
    assert file.startswith(str(site)) and sample_dir == str(site / "compress_engine" / "sample_models")
    assert names == str(sorted(["lenet-300-100", "lenet-5", "resnet-8", "teacher-1200-1200"])) and int(params) > 400_000
    out = subprocess.run([sys.executable, "-m", "compress_engine", "--help"], cwd="/", env=env,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and all(c in out.stdout for c in ("app", "run", "sweep", "train", "eval"))


def test_readme_dev_sh_and_ci_run_the_same_test_command():
    readme = (ROOT / "README.md").read_text()
    assert "bash scripts/dev.sh app" in readme and "bash scripts/dev.sh test" in readme
    ci = [line for line in (ROOT / ".ci" / "run").read_text().splitlines()
          if line and not line.startswith(("#", "set ", "cd "))]
    assert ci == ["bash scripts/dev.sh test"]
    dev = (ROOT / "scripts" / "dev.sh").read_text()
    command = "pytest -q -rs -n 2 --dist loadfile tests"  # the README says what dev.sh runs
    assert f'OMP_NUM_THREADS=1 exec "$VPY" -m {command} ;;' in dev and "-m venv" in dev
    assert f"`{command}`" in readme and "`OMP_NUM_THREADS=1`" in readme
    subprocess.run(["bash", "-n", str(ROOT / "scripts" / "dev.sh")], check=True)
