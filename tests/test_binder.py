"""binder/ follows repo2docker conventions, checked by repo2docker itself.

``jupyter-repo2docker --no-build --debug`` detects the buildpack and prints
the Dockerfile it would build, without a Docker engine (none runs here), so
the files are judged by the tool Binder uses rather than by our reading of
its docs.
"""

from __future__ import annotations

import shutil
import subprocess

import pytest

from tests.conftest import ROOT


@pytest.fixture(scope="module")
def dockerfile() -> str:
    exe = shutil.which("jupyter-repo2docker")
    assert exe, "jupyter-repo2docker is a test dependency: pip install -e '.[test]'"
    done = subprocess.run(
        [exe, "--no-build", "--debug", str(ROOT)], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout + done.stderr


def test_python_version_is_pinned_by_runtime_txt(dockerfile: str) -> None:
    assert (ROOT / "binder" / "runtime.txt").read_text().strip() == "python-3.11"
    assert "python=3.11" in dockerfile


def test_nearnb_is_installed_with_the_embedded_model(dockerfile: str) -> None:
    post_build = (ROOT / "binder" / "postBuild").read_text()
    assert post_build.splitlines()[0].startswith("#!")
    assert "set -e" in post_build  # repo2docker ignores postBuild errors otherwise
    assert '".[local]"' in post_build and "GGML_NATIVE=OFF" in post_build
    assert "./binder/postBuild" in dockerfile
    assert "build-essential cmake" in dockerfile  # from binder/apt.txt, to compile llama.cpp


def test_the_ui_is_not_pinned_or_downgraded() -> None:
    for path in (ROOT / "binder").iterdir():
        text = path.read_text().lower()
        assert "jupyterlab" not in text and "notebook==" not in text, path


def test_readme_has_a_binder_badge_opening_the_quickstart_in_lab() -> None:
    readme = (ROOT / "README.md").read_text()
    assert "mybinder.org/badge_logo.svg" in readme
    assert "urlpath=lab/tree/notebooks/01-quickstart.ipynb" in readme
