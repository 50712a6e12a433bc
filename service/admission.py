"""What a spec goes through before it is stored as a job (the API's ``POST /v1/jobs`` and ``moralscope run``).

1. the operator's policy: server paths and URIs it names (:mod:`service.access`);
2. its benchmarks resolve: plugins installed, their settings valid (``evals.benchmarks.job_benchmarks``);
3. its custom benchmarks' data files are read and validated — a bad file is refused here, naming the file,
   row and column — and each file's sha256 and row count are pinned into the spec that is stored, so the
   job later runs exactly the data that was checked (``evals.custom.pin_custom_data``);
4. the size limits (:mod:`service.limits`).
"""

from __future__ import annotations

from evals.benchmarks import job_benchmarks
from evals.custom import pin_custom_data
from schemas.spec import JobSpec
from service.access import AccessPolicy, data_access
from service.limits import check_submission
from service.settings import Settings


def admit_job(spec: JobSpec, *, settings: Settings, owner: str) -> JobSpec:
    """The spec to store, with its custom data pinned; raises a MoralscopeError (422) naming what is wrong."""
    AccessPolicy.from_settings(settings).check_spec(spec)
    job_benchmarks(spec)
    pinned = pin_custom_data(spec, data_access(settings, owner))
    check_submission(pinned, settings=settings)
    return pinned
