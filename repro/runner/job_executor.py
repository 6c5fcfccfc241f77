"""Executes one job of the plan: (merge, then) evaluate, and returns its result record.

The executor is created once per worker process and reused for every job, so the expensive imports
(torch, transformers, mergekit, lm-eval) and task loading are paid once.
"""

from __future__ import annotations

import gc
import logging
import shutil
import time
from collections.abc import Sequence
from pathlib import Path

from repro.errors import InsufficientDiskError, MergeError, RunnerError
from repro.evaluate import EvaluationSession, evaluate_model
from repro.experiment_sections import GeometrySettings
from repro.facts.config import LoadedConfig
from repro.facts.suites import load_suites
from repro.job_ids import job_models
from repro.merge import SvdCache, merge_checkpoints
from repro.merge.task_vector_geometry import task_vector_geometry
from repro.plan import Job, JobKind
from repro.results import ResultRecord, ResultsStore
from repro.runner.grid_merges import GridMerges, grid_peers
from repro.runner.model_sources import ModelSources
from repro.runner.provenance import package_versions, utc_now
from repro.torch_threads import torch_threads

LOG = logging.getLogger(__name__)


def resolve_device(setting: str) -> str:
    if setting != "auto":
        return setting
    # torch: deferred so that importing this module does not load it
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def _merge_info(result, *, in_memory: bool, device: str) -> dict:
    return {
        "device": device,
        "task_vector_l2": result.task_vector_l2,
        "vocab_truncations": result.vocab_truncations,
        "out_dtype": result.out_dtype,
        "in_memory": in_memory,
        "elapsed_s": round(result.elapsed_s, 3),
        "grid_merges": int(result.timings.get("grid_merges", 1)),  # merges computed in the same pass
        **({"subspace_boosting": result.subspace_boosting} if result.subspace_boosting else {}),
    }


def _model_from_state(base_dir: Path, state_dict: dict):
    """The merged model in memory: the base's config with exactly the tensors a save would write
    (what `from_pretrained` of the saved merge would build, without the disk round trip)."""
    # transformers: deferred so that importing this module does not load it
    from transformers import AutoConfig, AutoModelForCausalLM
    from transformers.initialization import no_init_weights

    dtype = next(iter(state_dict.values())).dtype
    with no_init_weights():  # every parameter is overwritten below: skip the random initialisation
        model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(base_dir), dtype=dtype)
    missing, unexpected = model.load_state_dict(state_dict, strict=False)
    tied = set(getattr(model, "all_tied_weights_keys", None) or getattr(model, "_tied_weights_keys", None) or [])
    if unexpected or set(missing) - tied:
        raise RunnerError(f"merged tensors do not fit the architecture of {base_dir}: missing {sorted(missing)[:3]}, "
                          f"unexpected {sorted(unexpected)[:3]}")
    if missing:
        model.tie_weights()
    return model.eval()


class JobExecutor:
    def __init__(self, loaded: LoadedConfig, runs_dir: Path, store: ResultsStore, upcoming: Sequence[Job] = ()):
        self.loaded = loaded
        self.runs_dir = runs_dir
        self.store = store
        self.sources = ModelSources(loaded, runs_dir.parent)
        cfg = loaded.config
        self.suites = load_suites(loaded.resolve(cfg.evaluation.suites_file))
        self.suite = self.suites[cfg.evaluation.suite]
        self.eval_device = resolve_device(cfg.evaluation.device)
        self.merge_device = resolve_device(cfg.merge.device)
        self.scratch_dir = runs_dir / ("merged" if cfg.merge.keep_merged else "scratch")
        self.versions = package_versions()
        self._svd_cache = None
        self._tokenizers: dict = {}  # base -> tokenizer, for in-memory evaluation
        self._jobs_started = 0
        self.upcoming = list(upcoming)  # this worker's jobs, in order: in-memory merges of a group share a pass
        self._grid = GridMerges(int(cfg.merge.grid_memory_gb * 2**30))
        # torch threads while a job runs (None: torch's default); tiny CPU models: one thread avoids
        # spin-waiting on busy cores. Set for each job by `run` and put back after it, never left behind.
        self.threads = cfg.evaluation.threads
        self.eval_session = EvaluationSession()  # tasks and tokenized requests built once per worker
        self.status = None  # the worker's progress display: status(text) says what the job is doing now
        self._status_shown = 0.0

    def _input_dirs(self, job: Job) -> list[Path]:
        if job.checkpoints:
            return [self.sources.repo_dir(repo_id) for repo_id in job.checkpoints]
        return [self.sources.checkpoint_dir(job.base, i) for i in job.subset]

    def _merge(self, job: Job, out_dir: Path | None):
        """Merge into `out_dir`, or in memory (`out_dir=None`: the result carries the state dict)."""
        if out_dir is not None:
            self._check_disk()
        base_dir, input_dirs = self.sources.base_dir(job.base), self._input_dirs(job)
        self._register_revisions(job, base_dir, input_dirs)
        return merge_checkpoints(
            base_dir, input_dirs, job.method, job.params, out_dir=out_dir, **self._merge_options(),
        )

    def _merge_options(self) -> dict:
        cfg = self.loaded.config.merge
        return {"device": self.merge_device, "vocab_mismatch": cfg.vocab_mismatch, "out_dtype": cfg.out_dtype,
                "svd_cache": self._get_svd_cache(), "progress": self._tensor_progress}

    def _show(self, text: str, force: bool = False) -> None:
        """Tell the progress display what the job is doing (at most twice a second)."""
        now = time.monotonic()
        if self.status is not None and (force or now - self._status_shown >= 0.5):
            self._status_shown = now
            self.status(text)

    def _tensor_progress(self, done: int, total: int) -> None:
        self._show(f"merging: tensor {done}/{total}", force=done == total)

    def _register_revisions(self, job: Job, base_dir: Path, input_dirs: list[Path]) -> None:
        if self.loaded.lock is not None:
            # Pinned revisions identify checkpoint content: the SVD cache need not hash the weight files.
            models = job_models(self.loaded, job)
            for entry, path in zip([models["base"], *models["checkpoints"]], [base_dir, *input_dirs], strict=True):
                if entry["revision"]:
                    self._get_svd_cache().register_checkpoint(path, f"{entry['repo_id']}@{entry['revision']}")

    def _merge_in_memory(self, job: Job):
        """The job's merge in memory: computed ahead by a grid pass, or now, with the next jobs of its
        group (repro.runner.grid_merges) when more than one fits in `merge.grid_memory_gb`."""
        ready = self._grid.take(job.id)
        if ready is not None:
            return ready
        base_dir = self.sources.base_dir(job.base)
        limit = self._grid.capacity(base_dir, self.loaded.config.merge.out_dtype) if self.upcoming else 1
        peers = grid_peers(job, self.upcoming, self.store.finished_ids(), limit) if limit > 1 else [job]
        if len(peers) > 1:
            inputs = [self._input_dirs(peer) for peer in peers]
            for peer, dirs in zip(peers, inputs, strict=True):
                self._register_revisions(peer, base_dir, dirs)
            try:
                return self._grid.compute(peers, base_dir, inputs, self._merge_options())
            except MergeError as error:
                # A merge the inputs make impossible (e.g. one checkpoint with NaN, mismatched tensors) fails
                # the whole pass: merge this job alone, so each job gets its own error (or its result).
                # Anything else is a bug of the kit and is raised as such.
                LOG.warning("grid merge of %d jobs failed (%s); merging job %s alone", len(peers), error, job.id)
        return self._merge(job, None)

    @staticmethod
    def _torch_threads() -> int:
        # torch: deferred so that importing this module does not load it
        import torch

        return torch.get_num_threads()

    def _tokenizer(self, base: str):
        """The base's tokenizer, loaded once per process (every in-memory merge of that base reuses it)."""
        if base not in self._tokenizers:
            # transformers: deferred so that importing this module does not load it
            from transformers import AutoTokenizer

            self._tokenizers[base] = AutoTokenizer.from_pretrained(str(self.sources.base_dir(base)))
        return self._tokenizers[base]

    def _get_svd_cache(self):
        if self._svd_cache is None:
            # In memory only: TSV-M factors of real checkpoints are as large as the checkpoints.
            self._svd_cache = SvdCache()
        return self._svd_cache

    def _check_disk(self) -> None:
        need = self.loaded.config.merge.min_free_disk_gb
        if need <= 0:
            return
        self.scratch_dir.mkdir(parents=True, exist_ok=True)
        free_gb = shutil.disk_usage(self.scratch_dir).free / 2**30
        if free_gb < need:
            raise InsufficientDiskError(
                f"only {free_gb:.1f} GiB free in {self.scratch_dir}, the config asks for {need:g} GiB "
                "(merge.min_free_disk_gb) before merging; free disk space or point runs/ elsewhere"
            )

    def _tasks(self, job: Job):
        """The suite a job is evaluated on: the config's, or the union of the job's suites (Appendix E)."""
        if not job.suites:
            return self.suite
        suites = [self.suites[name] for name in job.suites]
        if len(suites) == 1:
            return suites[0]
        return suites[0].model_copy(
            update={"name": "+".join(job.suites), "tasks": [t for s in suites for t in s.tasks]}
        )

    def _evaluate(self, job: Job, model, identity: dict, tokenizer=None):
        cfg = self.loaded.config.evaluation
        tasks = self._tasks(job)
        self._show(f"evaluating: {len(tasks.tasks)} tasks", force=True)
        return evaluate_model(
            model,
            tasks,
            tokenizer=tokenizer,
            show_progress=False,
            limit=cfg.limit,
            item_sample=cfg.item_sample.model_dump() if cfg.item_sample is not None else None,
            dtype=cfg.dtype,
            batch_size=cfg.batch_size,
            device=self.eval_device,
            identity=identity,
            backend=cfg.backend,
            session=self.eval_session,
            status=lambda text: self._show(f"evaluating: {text}", force=True),
        )

    def _suite_averages(self, job: Job, outcome) -> dict[str, float]:
        """Per suite of the job: unweighted mean of its tasks' primary scores."""
        scores = outcome.primary_scores()
        out = {}
        for name in job.suites or (self.suite.name,):
            values = [scores[t.name] for t in self.suites[name].tasks if t.name in scores]
            if values:
                out[name] = sum(values) / len(values)
        return out

    def _config_facts(self) -> dict:
        return {"name": self.loaded.name, "hash": self.loaded.config_hash, "path": str(self.loaded.path)}

    def _geometry_record(self, job: Job, started: float) -> ResultRecord:
        """Appendix D: Gram matrices of the pool's task vectors (no merge, no evaluation)."""
        settings = self.loaded.config.geometry
        pattern = settings.layer_pattern if settings is not None else GeometrySettings().layer_pattern
        geometry = task_vector_geometry(
            self.sources.base_dir(job.base), self._input_dirs(job), layer_pattern=pattern,
            labels=[str(i) for i in job.subset],
        )
        return ResultRecord(
            job=job,
            config=self._config_facts(),
            models=job_models(self.loaded, job),
            geometry=geometry.to_json(),
            packages=self.versions,
            finished_at=utc_now(),
            elapsed_s=round(time.monotonic() - started, 3),
        )

    def _freeze_long_lived_objects(self) -> None:
        """Before the second job: move what the first job left alive (imported modules, lm-eval tasks,
        tokenized requests, caches: ~0.5M objects) out of the garbage collector's reach (`gc.freeze`).
        The harness runs a full `gc.collect()` after every evaluated model to free it; without this, each
        collection traverses all of them again (measured 2.3 s per model on the loaded 2-core machine, vs
        0.02 s after freezing; demo world). Objects freed by reference counting are unaffected."""
        self._jobs_started += 1
        if self._jobs_started == 2:
            gc.collect()
            gc.freeze()

    def run(self, job: Job) -> ResultRecord:
        """The job's result record, computed with the configured torch threads (put back afterwards)."""
        with torch_threads(self.threads):
            return self._run(job)

    def _run(self, job: Job) -> ResultRecord:
        self._freeze_long_lived_objects()
        started = time.monotonic()
        if job.kind is JobKind.GEOMETRY:
            return self._geometry_record(job, started)
        identity = {
            "job_id": job.id,
            "kind": job.kind,
            "base": job.base,
            "method": job.method,
            "params": job.params,
            "subset": list(job.subset),
            "models": job_models(self.loaded, job),
        }
        merge_info = None
        cfg = self.loaded.config
        if job.merges and cfg.evaluation.in_memory and not cfg.merge.keep_merged:
            result = self._merge_in_memory(job)
            merge_info = _merge_info(result, in_memory=True, device=self.merge_device)
            model = _model_from_state(self.sources.base_dir(job.base), result.state_dict)
            outcome = self._evaluate(job, model, identity, tokenizer=self._tokenizer(job.base))
        elif job.merges:
            out_dir = self.scratch_dir / job.id
            result = self._merge(job, out_dir)
            merge_info = _merge_info(result, in_memory=False, device=self.merge_device)
            try:
                outcome = self._evaluate(job, out_dir, identity)
            finally:
                if not cfg.merge.keep_merged:
                    shutil.rmtree(out_dir, ignore_errors=True)
        else:
            model_dir = self.sources.base_dir(job.base) if job.kind is JobKind.BASE else self.sources.checkpoint_dir(
                job.base, job.subset[0]
            )
            outcome = self._evaluate(job, model_dir, identity)

        items_path = outcome.write_items(self.store.items_path(job.id))  # atomic
        evaluation = outcome.to_json()
        return ResultRecord(
            job=job,
            config=self._config_facts(),
            models=identity["models"],
            merge=merge_info,
            evaluation={
                "suite": self._tasks(job).name,
                "dtype": self.loaded.config.evaluation.dtype,
                "batch_size": self.loaded.config.evaluation.batch_size,
                "limit": self.loaded.config.evaluation.limit,
                "item_sample": (self.loaded.config.evaluation.item_sample.model_dump()
                                if self.loaded.config.evaluation.item_sample is not None else None),
                "device": self.eval_device,
                # what lm-eval actually used (its own record's fields): seeds set, batch size after `auto`,
                # the device the model ran on, the tokenizer (name, special tokens, content fingerprint)
                "seeds": evaluation.get("run", {}).get("seeds"),
                "batch_size_used": evaluation.get("run", {}).get("batch_size_used"),
                "model_device": evaluation.get("run", {}).get("device"),
                "tokenizer": evaluation.get("run", {}).get("tokenizer"),
                "threads": self._torch_threads(),
                "backend": self.loaded.config.evaluation.backend,
                "lm_eval_version": evaluation.get("lm_eval_version"),
                "task_hashes": evaluation.get("task_hashes", {}),
            },
            scores=evaluation["rows"],
            average=outcome.average,
            suite_averages=self._suite_averages(job, outcome),
            items_file=str(items_path.relative_to(self.runs_dir)),
            packages=self.versions,
            finished_at=utc_now(),
            elapsed_s=round(time.monotonic() - started, 3),
        )
