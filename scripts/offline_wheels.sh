#!/bin/sh
# Wheels for a GPU node that cannot reach a package index but whose Python already holds a
# stock PyTorch GPU stack (torch, torchvision, pytorch-lightning, timm, torchmetrics, numpy,
# scipy, matplotlib, opencv-python-headless, pyyaml, tqdm, requests: the usual CUDA images):
# mtlbench's other dependencies, at the versions checked below, downloaded on a
# connected machine for CPython 3.12 on x86-64 Linux: 33 MB, and 26 MB more for rliable and what
# it requires (arch, statsmodels, pandas, seaborn: the leaderboards import only rliable.metrics). Left out: W&B (runs log CSV
# without it; add wandb and its own needs for W&B logging there) and SCS, a cvxpy solver that
# cvxpy lists but Nash-MTL does not use (it solves with ECOS), whose wheel alone is 43 MB.
# setuptools is in the list for the editable install, which builds this checkout (77 or newer).
# Checked 2026-12-06: a CPython 3.12 venv holding only that stack (torch 2.14.1), joblib and
# cloudpickle (which such images have) and these wheels ran `mtlbench gpu-check --device cpu`
# through, Nash-MTL included.
#
#   sh scripts/offline_wheels.sh [FOLDER]          # here, connected: FOLDER defaults to .whl
#   python3 -m pip install --no-index --no-deps .whl/*.whl && \
#   python3 -m pip install --no-index --no-deps --no-build-isolation -e . && \
#   python3 -m mtlbench.bench.cli.entry gpu-check                                  # there, in this checkout
set -eu
folder=${1:-.whl}
python=${PYTHON:-python3}
for wheel in \
    jsonargparse==4.53.0 docstring-parser==0.18.0 typeshed-client==2.15.0 \
    albumentations==2.0.8 albucore==0.0.24 simsimd==6.5.16 stringzilla==5.3.2 \
    pydantic==2.14.4 pydantic-core==2.50.5 annotated-types==0.8.0 typing-inspection==0.4.5 \
    torchjd==0.18.0 qpsolvers==4.13.0 quadprog==0.1.14 ecos==2.0.14 \
    cvxpy==1.9.3 clarabel==0.11.1 cffi==2.1.1 pycparser==3.12 highspy==1.16.0 osqp==1.1.3 \
    qdldl==0.1.9.post1 sparsediffpy==0.6.1 \
    submitit==1.5.4 setuptools==80.9.0 \
    absl-py==2.5.1 arch==7.2.0 statsmodels==0.15.0 patsy==1.0.3 formulaic==1.2.2 interface-meta==2.0.1 \
    narwhals==2.29.0 pandas==3.1.2 python-dateutil==4.0.0 tzdata==2026.6 seaborn==0.13.2 wrapt==2.5.2
do
    "$python" -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
        --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_24_x86_64 \
        --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform manylinux1_x86_64 \
        -d "$folder" "$wheel"
done
# rliable (the leaderboards' probability of improvement) is published as a source archive only:
# built into a wheel here (pure Python)
"$python" -m pip wheel --quiet --no-deps -w "$folder" rliable==1.2.0
du -sh "$folder"
