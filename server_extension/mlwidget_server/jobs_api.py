"""The jobs part of the MLHandler API: ``?_job``, ``?_job=ID&_result``, ``?_jobs``, ``DELETE
?_job``, and the answer of a request that started a job (202, or its result when it waits).

A prediction job's answer is kept on disk (mlwidget/jobs/results.py) and streamed from there a
piece at a time; ``?_job`` shows its size and URL, ``?_jobs`` no answers at all. The answer is
the caller's who started the job, and the server owner's.
"""

from __future__ import annotations

import asyncio
import os
from typing import TYPE_CHECKING, Any

from mlwidget import BadRequest, Conflict
from mlwidget.api import CACHE_FORMATS
from mlwidget.jobs.results import READ_BYTES, StoredResult, stored_table

from . import answers
from .bodies import last

if TYPE_CHECKING:
    from mlwidget import MLModel


class JobsMixin:
    """For ``ModelHandler``: its jobs' requests and answers."""

    def caller(self: Any) -> str | None:
        """Who sends this request, by name (a job records it: its result is theirs)."""
        user = self.current_user
        name = user.get("name") if isinstance(user, dict) else getattr(user, "username", None)
        return str(name) if name else None

    def owns_server(self: Any) -> bool:
        """Whether the caller is this server's owner (who may read every job's result): on
        JupyterHub the user the server runs for, elsewhere whoever holds its token."""
        owner = os.environ.get("JUPYTERHUB_USER")
        return not owner or self.caller() == owner

    async def send_jobs(self: Any, m: MLModel, args: dict[str, list[str]]) -> None:
        """``GET ?_job=ID`` (with ``&_result``: its answer), or ``GET ?_jobs``."""
        fmt = last(args, "_format")
        if "_job" in args and "_result" in args:
            job = m.job(last(args, "_job") or "")
            stored = job.stored_result(None if self.owns_server() else self.caller() or "")
            await self.send_stored(stored, fmt or job.answer_format, f"{m.name}-{job.id}")
        elif "_job" in args:
            job = m.job(last(args, "_job") or "")
            await self.send_json(job.to_dict(self.job_url(m, job)))
        else:  # the jobs, not their answers (?_job=ID&_result has those)
            jobs = [job.to_dict(self.job_url(m, job), result=False) for job in m.jobs()]
            await self.send_json(jobs)

    async def cancel_job(self: Any, m: MLModel, args: dict[str, list[str]]) -> None:
        """``DELETE ?_job=ID``."""
        job = m.job(last(args, "_job") or "")
        if not await self.registry.run(job.cancel):  # a Dask cancel waits on the cluster
            raise Conflict(
                f"Job {job.id} is {job.status}: only a queued or running job can be "
                "cancelled (a job that is storing its result finishes)."
            )
        await self.send_json(job.to_dict(self.job_url(m, job)))

    async def answer_job(self: Any, m: MLModel, job: Any, wait: bool) -> None:
        """``wait``: the job's answer when it ends (Gramex's behaviour; the event loop keeps
        serving meanwhile); else 202 with the job and its URL in ``Location``."""
        if wait:
            answer = await asyncio.wrap_future(job.future)
            if isinstance(answer, StoredResult):
                await self.send_stored(job.stored_result(), job.answer_format, m.name)
            else:
                await self.send_json(answer)
            return
        url = self.job_url(m, job)
        self.set_status(202)
        self.set_header("Location", url)
        await self.send_json(job.to_dict(url))

    def job_url(self: Any, m: MLModel, job: Any) -> str:
        return f"{self.api_url(m.name)}?_job={job.id}"

    async def send_stored(self: Any, stored: StoredResult, fmt: str | None, stem: str) -> None:
        """A job's answer kept on disk: its JSON streamed from the file a piece at a time
        (never whole in this process), or in another ``_format`` as a table."""
        if fmt not in (None, "", "json"):
            if fmt not in CACHE_FORMATS:
                raise BadRequest(f"Unknown _format {fmt!r}. Use {', '.join(CACHE_FORMATS)}.")
            table = await self.registry.run(stored_table, stored)
            await answers.send_table(self, table, fmt, stem)
            return
        self.set_header("Content-Type", "application/json; charset=UTF-8")
        with stored.open() as handle:
            while piece := await self.registry.run(handle.read, READ_BYTES):
                self.write(piece)
                await self.flush()
        self.finish()
