"""Job submission with retries, back-off and a clear final error; secrets scrubbed from messages.

    policy = RetryPolicy(attempts=4, backoff_s=2.0, timeout_s=600)
    result = run_job(lambda: sampler.run(pubs, shots=1000), backend="qiskit:ibm_kyiv", policy=policy,
                     check=lambda result: validate(result))

A job counts as failed when submitting raises, ``job.result(timeout=...)`` raises or times out, or
``check(result)`` raises (an incomplete result). Failed jobs are cancelled where possible and the
*whole* job is resubmitted, so results of different attempts are never mixed. After the last attempt
:class:`JobError` names the backend, every job id tried and the last cause.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from typing import Any, Callable

from qsim.infra import validation

__all__ = ["RetryPolicy", "JobError", "run_job", "scrub", "SECRET_ENV_VARS"]

log = logging.getLogger("qsim.backends")

#: environment variables whose values are never allowed into messages or logs
SECRET_ENV_VARS = ("QISKIT_IBM_TOKEN", "IBM_QUANTUM_TOKEN", "QISKIT_IBM_API_KEY", "IBMQ_TOKEN",
                   "PENNYLANE_TOKEN", "BRAKET_TOKEN")


def scrub(text: str) -> str:
    """``text`` with the value of every secret environment variable replaced by ``***``."""
    text = str(text)
    for var in SECRET_ENV_VARS:
        val = os.environ.get(var)
        if val and len(val) >= 4:
            text = text.replace(val, "***")
    return text


class JobError(RuntimeError):
    """A job failed after all retries: ``backend``, ``job_ids`` (one per attempt) and ``attempts``."""

    def __init__(self, message: str, backend: str, job_ids: list, attempts: int):
        super().__init__(scrub(message))
        self.backend = backend
        self.job_ids = list(job_ids)
        self.attempts = attempts


@dataclass(frozen=True)
class RetryPolicy:
    """How hard to try: ``attempts`` in total, sleeping ``backoff_s * factor**i`` (capped at
    ``max_backoff_s``) after failure ``i``; ``timeout_s`` per job result (``None``: wait)."""

    attempts: int = 3
    backoff_s: float = 1.0
    factor: float = 2.0
    max_backoff_s: float = 60.0
    timeout_s: float | None = None
    sleep: Callable[[float], None] | None = None   # None: time.sleep (tests inject a recorder)

    def __post_init__(self):
        validation.positive_int(self.attempts, "RetryPolicy.attempts")
        if self.backoff_s < 0 or self.factor < 1 or self.max_backoff_s < 0:
            raise ValueError(f"RetryPolicy back-off must be non-negative with factor >= 1, got "
                             f"backoff_s={self.backoff_s}, factor={self.factor}")
        if self.timeout_s is not None and self.timeout_s <= 0:
            raise ValueError(f"RetryPolicy.timeout_s must be positive or None, got {self.timeout_s}")

    def delay(self, failure: int) -> float:
        return min(self.backoff_s * self.factor ** failure, self.max_backoff_s)


def _job_id(job) -> str:
    try:
        jid = job.job_id() if callable(getattr(job, "job_id", None)) else getattr(job, "job_id", None)
    except Exception:  # noqa: BLE001
        jid = None
    return str(jid) if jid is not None else "<no id>"


def _result(job, timeout_s):
    if timeout_s is None:
        return job.result()
    try:
        return job.result(timeout=timeout_s)
    except TypeError as exc:  # a job type whose result() takes no timeout
        if "timeout" not in str(exc):
            raise
        return job.result()


def run_job(submit: Callable[[], Any], backend: str, policy: RetryPolicy = RetryPolicy(),
            check: Callable[[Any], Any] | None = None):
    """Submit, wait, validate; retry the whole job on failure; return ``check(result)`` or the result.

    Raises:
        JobError: after ``policy.attempts`` failures, naming ``backend`` and the job ids.
    """
    job_ids: list[str] = []
    last = None
    for attempt in range(policy.attempts):
        job = None
        jid = "<not submitted>"
        try:
            job = submit()
            jid = _job_id(job)
            job_ids.append(jid)
            log.info("backend %s: job %s submitted (attempt %d/%d)", backend, jid, attempt + 1, policy.attempts)
            result = _result(job, policy.timeout_s)
            out = check(result) if check is not None else result
            if attempt:
                log.info("backend %s: job %s succeeded after %d failed attempt(s)", backend, jid, attempt)
            return out
        except (KeyboardInterrupt, SystemExit):
            raise
        except Exception as exc:  # noqa: BLE001 - any provider error is retried
            if jid == "<not submitted>":
                job_ids.append(jid)
            last = f"{type(exc).__name__}: {scrub(exc)}"
            if job is not None and callable(getattr(job, "cancel", None)):
                try:
                    job.cancel()
                except Exception:  # noqa: BLE001
                    pass
            if attempt + 1 < policy.attempts:
                d = policy.delay(attempt)
                log.warning("backend %s: job %s failed (attempt %d/%d): %s; retrying in %.3g s", backend, jid,
                            attempt + 1, policy.attempts, last, d)
                (policy.sleep or time.sleep)(d)
            else:
                log.error("backend %s: job %s failed (attempt %d/%d): %s", backend, jid, attempt + 1,
                          policy.attempts, last)
    raise JobError(f"backend {backend!r}: job failed after {policy.attempts} attempt(s) "
                   f"(job ids: {', '.join(job_ids)}); last error: {last}", backend, job_ids, policy.attempts)
