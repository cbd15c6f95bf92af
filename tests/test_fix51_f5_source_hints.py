"""Two data errors pointed at fixes that do not work. Without Pillow, an image folder's error said
`pip install 'compression-playground[images]'`, but the package is not on PyPI: it now says the extra installs from
the checkout (`pip install -e '.[images]'`). With COMPRESS_DATA_DIR set to a folder of broken files, the error said to
install the Debian package, which changes nothing while the variable is set (it is the only place looked in): it now
says to mend the files there or unset the variable."""

import sys

import pytest

from compress_engine import DatasetError, load_dataset
from compress_engine.playground import sources


@pytest.fixture(autouse=True)
def _fresh():
    load_dataset.cache_clear()
    yield
    load_dataset.cache_clear()


def test_an_image_folder_without_pillow_says_how_to_install_it_from_the_checkout(tmp_path, monkeypatch):
    (tmp_path / "train" / "cat").mkdir(parents=True)
    monkeypatch.setitem(sys.modules, "PIL.Image", None)  # `import PIL.Image` raises ImportError: Pillow is missing
    with pytest.raises(DatasetError) as e:
        load_dataset(f"images:{tmp_path}")
    msg = str(e.value)
    assert "`pip install pillow`" in msg and "`pip install -e '.[images]'`" in msg
    assert "compression-playground[images]" not in msg  # not on PyPI: that install fails


@pytest.mark.parametrize("load", [load_dataset, lambda name: sources.first_test_images(name, 12)])
def test_broken_files_in_compress_data_dir_say_to_mend_them_or_unset_it(tmp_path, monkeypatch, load):
    for stem in sources.FILES.values():
        (tmp_path / stem).write_bytes(b"not an IDX file at all")
    monkeypatch.setenv("COMPRESS_DATA_DIR", str(tmp_path))
    with pytest.raises(DatasetError) as e:
        load("fashion-mnist")
    msg = str(e.value)
    assert msg.startswith("COMPRESS_DATA_DIR:") and "unset COMPRESS_DATA_DIR" in msg
    assert "point COMPRESS_DATA_DIR at" not in msg  # it already points somewhere: that is what is wrong
    assert "install it with" not in msg  # installing the package alone changes nothing while the variable is set


def test_without_compress_data_dir_the_hint_is_to_install_the_data(tmp_path, monkeypatch):
    monkeypatch.delenv("COMPRESS_DATA_DIR", raising=False)
    monkeypatch.setattr(sources, "search_dirs", lambda: [tmp_path / "nowhere"])
    with pytest.raises(DatasetError) as e:
        load_dataset("fashion-mnist")
    assert "install it with `sudo apt-get install dataset-fashion-mnist`" in str(e.value)
    assert "unset COMPRESS_DATA_DIR" not in str(e.value)
