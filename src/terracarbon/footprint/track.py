"""Energy and CO2e tracking of terracarbon runs (and of any user code or command).

The tracker is codecarbon's :class:`~codecarbon.OfflineEmissionsTracker`: no network access, the
carbon intensity comes from codecarbon's bundled per-country (and, for some countries, per-region)
energy-mix tables. Each run writes two files into its run folder:

``emissions.csv``
    codecarbon's own CSV, one row appended per tracked run (all of codecarbon's columns).
``emissions.json``
    the :attr:`EmissionsTracking.result` dict of the *latest* run in that folder.

Measurement method. codecarbon measures CPU power with Intel RAPL where ``/sys/class/powercap`` is
readable; elsewhere (containers, AMD without RAPL access, VMs, this project's CI machine) it estimates
it from the CPU load and the CPU model's TDP. GPUs are read through NVML, RAM power is estimated from
the installed memory. The method codecarbon actually used is read back from the tracker's hardware
objects and reported in ``result["method"]`` (CPU) and ``result["methods"]`` (per component), so a
reader always knows whether a figure is measured or estimated.

Start-up cost. Two things made a tracked short command slow (profiled with cProfile on
``terracarbon footprint track -- true``): codecarbon's hardware probe at ``start()`` (py-cpuinfo,
the fuzzy match of the CPU model in its TDP table, RAM/GPU detection: 1-5 s) and the import of
pandas and requests by codecarbon's CSV/HTTP output methods (1-4 s). The probe's outcome — the
``_HardwarePlan`` that codecarbon itself keeps per process (``codecarbon.core.hardware_cache``) —
is stored per machine in ``$TERRACARBON_CACHE/footprint/codecarbon-probe.json`` (default
``~/.cache/terracarbon``; ``TERRACARBON_PROBE_CACHE=off`` disables it), keyed by a fingerprint
of the machine (CPU model from ``/proc/cpuinfo``, logical CPU count, total RAM, architecture,
GPU device nodes, RAPL readability, codecarbon version) and by the tracker settings; later
trackers install it into codecarbon's cache before ``start()``, so codecarbon skips the probe.
The CSV row is written by :func:`append_emissions_csv` (codecarbon's columns and append rule,
without pandas). ``result["probe"]`` says ``"cached"``, ``"probed"`` or ``"unavailable"``.

Example::

    from terracarbon.footprint import track_emissions

    with track_emissions("runs/exp1", "train", country_iso_code="DEU") as t:
        train()
    print(t.result["emissions_g"], t.result["method"])

    @track_emissions("runs/exp1", "predict")
    def predict(): ...
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import functools
import hashlib
import json
import logging
import math
import os
import platform
import re
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, TypeVar

from ._compat import ConfigError, InputError, write_json_atomic

log = logging.getLogger(__name__)

F = TypeVar("F", bound=Callable[..., Any])

#: Human-readable names of codecarbon's CPU power modes.
CPU_METHODS: dict[str, str] = {
    "intel_rapl": "RAPL",
    "cpu_load": "estimated from CPU load (TDP)",
    "constant": "estimated from TDP (constant, no load data)",
    "intel_power_gadget": "Intel Power Gadget",
    "apple_powermetrics": "Apple powermetrics",
    "windows_emi": "Windows EMI",
}

#: Keys every result dict carries (values may be ``None`` when tracking failed).
RESULT_KEYS = (
    "task_name",
    "energy_kwh",
    "cpu_energy_kwh",
    "gpu_energy_kwh",
    "ram_energy_kwh",
    "emissions_kg",
    "emissions_g",
    "duration_s",
    "method",
    "methods",
    "country_iso_code",
    "region",
    "hardware",
    "carbon_intensity_g_per_kwh",
    "cpu_power_w",
    "gpu_power_w",
    "ram_power_w",
    "cpu_model",
    "gpu_model",
    "cpu_count",
    "gpu_count",
    "codecarbon_version",
    "started_at",
    "probe",
    "error",
)

_ISO3 = re.compile(r"^[A-Za-z]{3}$")


def _quiet_codecarbon() -> None:
    # codecarbon logs "offline tracker init" at INFO before applying its own log_level.
    logging.getLogger("codecarbon").setLevel(logging.ERROR)


def _num(value: Any) -> float | None:
    try:
        f = float(value)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def detect_methods(tracker: Any) -> dict[str, str]:
    """Return how codecarbon measures each hardware component of a started ``tracker``.

    Keys are ``cpu``, ``gpu``, ``ram`` (only those present); values are readable labels such as
    ``"RAPL"``, ``"estimated from CPU load (TDP)"``, ``"NVML"``.
    """
    methods: dict[str, str] = {}
    for hw in getattr(tracker, "_hardware", []) or []:
        kind = type(hw).__name__
        if kind == "CPU":
            mode = str(getattr(hw, "_mode", "unknown"))
            methods["cpu"] = CPU_METHODS.get(mode, mode)
        elif kind in ("GPU", "AMDGPU", "NvidiaGPU"):
            methods["gpu"] = "NVML" if kind != "AMDGPU" else "AMD SMI"
        elif kind == "RAM":
            methods["ram"] = "estimated from installed memory"
        elif kind == "AppleSiliconChip":
            methods.setdefault("cpu", "Apple powermetrics")
    return methods


def _hardware_string(data: dict[str, Any]) -> str:
    parts = []
    cpu_model = data.get("cpu_model") or "unknown CPU"
    cpu_count = data.get("cpu_count")
    parts.append(f"{cpu_count} x {cpu_model}" if cpu_count else str(cpu_model))
    gpu_count = data.get("gpu_count") or 0
    try:
        gpu_count = int(gpu_count)
    except (TypeError, ValueError):
        gpu_count = 0
    if gpu_count > 0:
        parts.append(f"{gpu_count} x {data.get('gpu_model') or 'GPU'}")
    ram = _num(data.get("ram_total_size"))
    if ram:
        parts.append(f"{ram:.0f} GB RAM")
    return ", ".join(parts)


# --------------------------------------------------------------------------------------------
# per-machine cache of codecarbon's hardware probe
# --------------------------------------------------------------------------------------------
PROBE_CACHE_VERSION = 1
_PROBE_OFF = ("0", "off", "no", "false", "disable", "disabled")


def probe_cache_path() -> Path | None:
    """Where the probe cache lives; ``None`` when ``TERRACARBON_PROBE_CACHE`` disables it.

    ``TERRACARBON_PROBE_CACHE`` may also name the file itself; otherwise
    ``$TERRACARBON_CACHE/footprint/codecarbon-probe.json`` with ``TERRACARBON_CACHE`` defaulting
    to ``$XDG_CACHE_HOME/terracarbon`` (``~/.cache/terracarbon``), as the other terracarbon caches.
    """
    env = os.environ.get("TERRACARBON_PROBE_CACHE")
    if env is not None and env.strip().lower() in _PROBE_OFF:
        return None
    if env:
        return Path(env).expanduser()
    base = os.environ.get("TERRACARBON_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "terracarbon"
    )
    return Path(base) / "footprint" / "codecarbon-probe.json"


def _cpuinfo_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() in ("model name", "Hardware", "Processor", "cpu model"):
                    return value.strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _total_ram_bytes() -> int | None:
    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):
        return None


def machine_fingerprint() -> dict[str, Any]:
    """What identifies this machine's hardware for codecarbon, read cheaply (no subprocess).

    CPU model (``/proc/cpuinfo``), logical CPUs, total RAM, OS/architecture, GPU device nodes
    (``/dev/nvidia<N>``, ``/dev/kfd``), whether Intel RAPL is readable, and codecarbon's version.
    """
    try:
        from codecarbon import __version__ as cc_version
    except Exception:  # noqa: BLE001 - codecarbon missing or broken
        cc_version = None
    try:
        gpus = sorted(n for n in os.listdir("/dev") if re.fullmatch(r"nvidia\d+|kfd", n))
    except OSError:
        gpus = []
    rapl = "/sys/class/powercap/intel-rapl/subsystem"
    return {
        "cpu_model": _cpuinfo_model(),
        "cpu_count": os.cpu_count(),
        "ram_bytes": _total_ram_bytes(),
        "system": platform.system(),
        "machine": platform.machine(),
        "gpu_devices": gpus,
        "rapl_readable": os.access(rapl, os.R_OK),
        "codecarbon_version": cc_version,
        "cache_version": PROBE_CACHE_VERSION,
    }


def _fingerprint_hash(fp: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(fp, sort_keys=True, default=str).encode()).hexdigest()[:20]


def _plan_key(tracker: Any) -> tuple[Any, str] | None:
    """codecarbon's cache key of ``tracker`` and its JSON form; ``None`` if the API is missing."""
    try:
        from codecarbon.core import hardware_cache as hc

        key = hc.make_key(tracker)
        return key, json.dumps(dataclasses.asdict(key), sort_keys=True, default=str)
    except Exception:  # noqa: BLE001 - other codecarbon versions: no cache
        return None


def _read_probe_cache(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def install_cached_probe(tracker: Any) -> bool:
    """Give ``tracker`` the stored probe of this machine (before ``start()``); ``True`` if installed.

    Also ``True`` when codecarbon already holds a probe for these settings in this process.
    """
    path = probe_cache_path()
    k = _plan_key(tracker)
    if k is None:
        return False
    key, key_s = k
    from codecarbon.core import hardware_cache as hc

    if key in hc._plans:
        return True
    if path is None or not path.is_file():
        return False
    data = _read_probe_cache(path)
    if data.get("fingerprint") != _fingerprint_hash(machine_fingerprint()):
        return False
    plan = (data.get("plans") or {}).get(key_s)
    if not isinstance(plan, dict):
        return False
    try:
        hc._plans[key] = hc._HardwarePlan(**plan)
    except TypeError:
        return False
    return True


def store_probe(tracker: Any) -> Path | None:
    """Store the probe codecarbon made for a started ``tracker`` (atomic write); the cache path."""
    path = probe_cache_path()
    k = _plan_key(tracker)
    if path is None or k is None:
        return None
    key, key_s = k
    from codecarbon.core import hardware_cache as hc

    plan = hc._plans.get(key)
    if plan is None:
        return None
    fp = machine_fingerprint()
    fp_hash = _fingerprint_hash(fp)
    data = _read_probe_cache(path)
    if data.get("fingerprint") != fp_hash:
        data = {"fingerprint": fp_hash, "machine": fp, "plans": {}}
    data.setdefault("plans", {})[key_s] = dataclasses.asdict(plan)
    data["written_at"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    try:
        write_json_atomic(path, data)
    except OSError as exc:  # read-only home: tracking still works, only slower next time
        log.info("could not write the codecarbon probe cache %s: %s", path, exc)
        return None
    return path


class _LazyFrame:
    """A codecarbon reference CSV that is read with pandas only when something uses it."""

    def __init__(self, path: Any) -> None:
        self._path = path
        self._frame: Any = None

    def _df(self) -> Any:
        if self._frame is None:
            import pandas as pd

            self._frame = pd.read_csv(self._path)
        return self._frame

    def __getattr__(self, name: str) -> Any:
        return getattr(self._df(), name)

    def __getitem__(self, key: Any) -> Any:
        return self._df()[key]

    def __len__(self) -> int:
        return len(self._df())


def _lazy_static_data() -> bool:
    """Load codecarbon's static reference data without pandas (JSON now, CSVs on first use).

    codecarbon 3.x reads all of it on first use (``codecarbon.input._load_static_data``),
    importing pandas for two CSVs (cloud regions, CPU TDP table) that an offline tracker with a
    cached probe never reads. Only done when codecarbon's loader looks as expected.
    """
    try:
        from codecarbon import input as cc_input

        if getattr(cc_input, "_STATIC_DATA_LOADED", True) or not hasattr(cc_input, "_get_resource_path"):
            return False
        cache = cc_input._CACHE
        for key, rel in (
            ("global_energy_mix", "data/private_infra/global_energy_mix.json"),
            ("carbon_intensity_per_source", "data/private_infra/carbon_intensity_per_source.json"),
            ("nordic_country_energy_mix", "data/private_infra/nordic_emissions.json"),
            ("china_provincial_emissions", "data/private_infra/2023/china_provincial_emissions.json"),
        ):
            with open(cc_input._get_resource_path(rel), encoding="utf-8") as f:
                cache[key] = json.load(f)
        cache["cloud_emissions"] = _LazyFrame(cc_input._get_resource_path("data/cloud/impact.csv"))
        cache["cpu_power"] = _LazyFrame(cc_input._get_resource_path("data/hardware/cpu_power.csv"))
        cc_input._STATIC_DATA_LOADED = True
        return True
    except Exception:  # noqa: BLE001 - any surprise: let codecarbon load its data itself
        return False


def append_emissions_csv(path: str | Path, values: dict[str, Any]) -> Path:
    """Append one run to codecarbon's ``emissions.csv`` as its ``FileOutput`` does (``append`` mode).

    Same columns (``EmissionsData.values``). A file whose header has other columns is kept as
    ``<name>.bak`` and a new file is started, as codecarbon does.
    """
    path = Path(path)
    cols = list(values)
    header: list[str] | None = None
    if path.is_file() and path.stat().st_size > 0:
        with path.open(newline="", encoding="utf-8") as f:
            header = next(csv.reader(f), None)
        if header is None or set(header) != set(cols):
            os.replace(path, path.with_name(path.name + ".bak"))
            header = None

    def _cell(v: Any) -> Any:
        return "" if v is None else v

    if header is None:
        with path.open("w", newline="", encoding="utf-8") as f:
            w = csv.writer(f)
            w.writerow(cols)
            w.writerow([_cell(values[c]) for c in cols])
    else:
        with path.open("a", newline="", encoding="utf-8") as f:
            csv.writer(f).writerow([_cell(values.get(c)) for c in header])
    return path


class EmissionsTracking:
    """One tracked run: a context manager and a decorator around codecarbon's offline tracker.

    Use :func:`track_emissions` to create it. After the ``with`` block (or the decorated call)
    :attr:`result` holds the figures (see :data:`RESULT_KEYS`), also written to
    ``out_dir/emissions.json``; codecarbon appends its row to ``out_dir/emissions.csv``.

    Tracking never breaks the tracked work: if codecarbon fails to start or stop, the work still
    runs, the failure is logged and recorded in ``result["error"]`` and the energy figures are
    ``None``. Exceptions raised by the tracked code propagate unchanged (the figures up to the
    failure are still recorded).
    """

    def __init__(
        self,
        out_dir: str | Path,
        task_name: str,
        *,
        country_iso_code: str = "USA",
        region: str | None = None,
        measure_power_secs: float = 15.0,
        tracking_mode: str = "machine",
        write_json: bool = True,
    ) -> None:
        if not isinstance(country_iso_code, str) or not _ISO3.match(country_iso_code):
            raise ConfigError(
                f"country_iso_code must be a 3-letter ISO 3166-1 alpha-3 code (e.g. 'USA', 'DEU'), "
                f"got {country_iso_code!r}"
            )
        if tracking_mode not in ("machine", "process"):
            raise ConfigError(f"tracking_mode must be 'machine' or 'process', got {tracking_mode!r}")
        self.out_dir = Path(out_dir)
        self.task_name = str(task_name)
        self.country_iso_code = country_iso_code.upper()
        self.region = region
        self.measure_power_secs = float(measure_power_secs)
        self.tracking_mode = tracking_mode
        self.write_json = write_json
        self.result: dict[str, Any] | None = None
        self._tracker: Any = None
        self._t0: float | None = None
        self._started_at: str | None = None
        self._start_error: str | None = None
        self._probe = "unavailable"

    # -- lifecycle -------------------------------------------------------------------------
    def start(self) -> EmissionsTracking:
        """Start measuring (called by ``__enter__``)."""
        if self.out_dir.exists() and not self.out_dir.is_dir():
            raise InputError(self.out_dir, "run folder path exists and is not a directory")
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.result = None
        self._start_error = None
        self._probe = "unavailable"
        self._started_at = datetime.now(timezone.utc).isoformat(timespec="seconds")
        self._t0 = time.perf_counter()
        try:
            from codecarbon import OfflineEmissionsTracker

            _quiet_codecarbon()

            kwargs: dict[str, Any] = dict(
                country_iso_code=self.country_iso_code,
                project_name=self.task_name,
                output_dir=str(self.out_dir),
                output_methods=[],  # the CSV is written by append_emissions_csv (no pandas import)
                log_level="error",
                measure_power_secs=self.measure_power_secs,
                tracking_mode=self.tracking_mode,
                allow_multiple_runs=True,
            )
            if self.region:
                kwargs["region"] = self.region
            self._tracker = OfflineEmissionsTracker(**kwargs)
            cached = install_cached_probe(self._tracker)
            if cached:
                _lazy_static_data()
            self._tracker.start()
            self._probe = "cached" if cached else "probed"
            if not cached:
                store_probe(self._tracker)
        except Exception as exc:  # noqa: BLE001 - tracking must never break the run
            log.warning("codecarbon tracking unavailable for %r: %s", self.task_name, exc)
            self._tracker = None
            self._start_error = f"{type(exc).__name__}: {exc}"
        self._t0 = time.perf_counter()
        return self

    def stop(self) -> dict[str, Any]:
        """Stop measuring, build :attr:`result`, write ``emissions.json``; return the result."""
        wall = time.perf_counter() - (self._t0 or time.perf_counter())
        data: dict[str, Any] = {}
        methods: dict[str, str] = {}
        error = self._start_error
        if self._tracker is not None:
            try:
                self._tracker.stop()
                fd = getattr(self._tracker, "final_emissions_data", None)
                data = dict(getattr(fd, "values", None) or (vars(fd) if fd is not None else {}))
                methods = detect_methods(self._tracker)
                if data:
                    append_emissions_csv(self.out_dir / "emissions.csv", data)
            except Exception as exc:  # noqa: BLE001
                log.warning("codecarbon failed to stop for %r: %s", self.task_name, exc)
                error = f"{type(exc).__name__}: {exc}"
            finally:
                self._tracker = None
        self.result = self._build_result(data, methods, wall, error)
        if self.write_json:
            try:
                write_json_atomic(self.out_dir / "emissions.json", self.result)
            except OSError as exc:  # pragma: no cover - disk problems
                log.warning("could not write %s: %s", self.out_dir / "emissions.json", exc)
        return self.result

    def _build_result(
        self, data: dict[str, Any], methods: dict[str, str], wall: float, error: str | None
    ) -> dict[str, Any]:
        emissions_kg = _num(data.get("emissions"))
        energy = _num(data.get("energy_consumed"))
        intensity = None
        if emissions_kg is not None and energy:
            intensity = emissions_kg * 1000.0 / energy
        if methods:
            method = methods.get("cpu") or next(iter(methods.values()))
        else:
            method = "unavailable"
        res: dict[str, Any] = {
            "task_name": self.task_name,
            "energy_kwh": energy,
            "cpu_energy_kwh": _num(data.get("cpu_energy")),
            "gpu_energy_kwh": _num(data.get("gpu_energy")),
            "ram_energy_kwh": _num(data.get("ram_energy")),
            "emissions_kg": emissions_kg,
            "emissions_g": emissions_kg * 1000.0 if emissions_kg is not None else None,
            "duration_s": _num(data.get("duration")) or wall,
            "method": method,
            "methods": methods,
            "country_iso_code": data.get("country_iso_code") or self.country_iso_code,
            "region": data.get("region") or self.region,
            "hardware": _hardware_string(data) if data else None,
            "carbon_intensity_g_per_kwh": intensity,
            "cpu_power_w": _num(data.get("cpu_power")),
            "gpu_power_w": _num(data.get("gpu_power")),
            "ram_power_w": _num(data.get("ram_power")),
            "cpu_model": data.get("cpu_model"),
            "gpu_model": data.get("gpu_model") or None,
            "cpu_count": data.get("cpu_count"),
            "gpu_count": data.get("gpu_count"),
            "codecarbon_version": data.get("codecarbon_version"),
            "started_at": self._started_at,
            "probe": self._probe,
            "error": error,
        }
        return res

    # -- protocols ---------------------------------------------------------------------------
    def __enter__(self) -> EmissionsTracking:
        return self.start()

    def __exit__(self, exc_type, exc, tb) -> bool:
        self.stop()
        return False

    def __call__(self, func: F) -> F:
        """Use as a decorator: each call of ``func`` is tracked; ``wrapper.result`` holds the latest."""

        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            run = EmissionsTracking(
                self.out_dir,
                self.task_name,
                country_iso_code=self.country_iso_code,
                region=self.region,
                measure_power_secs=self.measure_power_secs,
                tracking_mode=self.tracking_mode,
                write_json=self.write_json,
            )
            try:
                with run:
                    return func(*args, **kwargs)
            finally:
                self.result = run.result
                wrapper.result = run.result  # type: ignore[attr-defined]

        wrapper.result = None  # type: ignore[attr-defined]
        wrapper.tracking = self  # type: ignore[attr-defined]
        return wrapper  # type: ignore[return-value]


def track_emissions(
    out_dir: str | Path,
    task_name: str,
    *,
    country_iso_code: str = "USA",
    region: str | None = None,
    measure_power_secs: float = 15.0,
    tracking_mode: str = "machine",
) -> EmissionsTracking:
    """Track energy (CPU, GPU, RAM) and CO2e of a block of code or a function, offline.

    Args:
        out_dir: run folder; receives ``emissions.csv`` (codecarbon, one row per run appended) and
            ``emissions.json`` (the latest :attr:`EmissionsTracking.result`). Created if missing.
        task_name: label of the run (``"train"``, ``"predict"``...), codecarbon's project name.
        country_iso_code: ISO 3166-1 alpha-3 code of the electricity grid (codecarbon offline data).
        region: optional region/state inside the country (e.g. ``"california"`` for USA).
        measure_power_secs: sampling interval of codecarbon's background thread.
        tracking_mode: ``"machine"`` (whole machine, default) or ``"process"`` (this process only).

    Returns:
        An :class:`EmissionsTracking`, usable as ``with track_emissions(...) as t:`` (then
        ``t.result``) or as a decorator ``@track_emissions(...)``.

    ``result`` keys: ``energy_kwh, cpu_energy_kwh, gpu_energy_kwh, ram_energy_kwh, emissions_kg,
    emissions_g, duration_s, method`` (CPU measurement method, e.g. ``"RAPL"`` or ``"estimated from
    CPU load (TDP)"``), ``methods`` (per component), ``country_iso_code, region, hardware``,
    ``carbon_intensity_g_per_kwh``, powers, hardware details, ``error`` (``None`` unless tracking failed).

    Raises:
        ConfigError: ``country_iso_code`` is not a 3-letter code or ``tracking_mode`` is unknown.
    """
    return EmissionsTracking(
        out_dir,
        task_name,
        country_iso_code=country_iso_code,
        region=region,
        measure_power_secs=measure_power_secs,
        tracking_mode=tracking_mode,
    )


def load_emissions(run_dir: str | Path) -> dict[str, Any]:
    """Read ``emissions.json`` from a run folder.

    Raises:
        InputError: the file is missing or not a JSON object.
    """
    import json

    path = Path(run_dir)
    if path.is_dir():
        path = path / "emissions.json"
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise InputError(path, "no emissions record (file not found)") from exc
    except (OSError, ValueError) as exc:
        raise InputError(path, f"unreadable emissions record ({exc})") from exc
    if not isinstance(obj, dict):
        raise InputError(path, "emissions record is not a JSON object")
    return obj


def format_result(result: dict[str, Any] | None) -> str:
    """One-line human summary of a tracking result, for CLI summaries."""
    if not result:
        return "energy/CO2e: not tracked"
    if result.get("energy_kwh") is None:
        return f"energy/CO2e: unavailable ({result.get('error') or 'no data'})"
    parts = [
        f"{result['energy_kwh'] * 1000:.4g} Wh",
        f"{result['emissions_g']:.4g} g CO2e",
        f"{result['duration_s']:.1f} s",
        f"grid {result.get('country_iso_code')}" + (f"/{result['region']}" if result.get("region") else ""),
        f"method: {result.get('method')}",
    ]
    return "energy " + ", ".join(parts)


def _warm_stop_imports() -> None:
    """Import, in a background thread, the modules codecarbon needs first at ``stop()``.

    ``track_command`` only waits for its subprocess, so a command that runs longer than the
    imports (~0.2-0.9 s: geography/requests, emissions) hides their cost entirely.
    """
    import threading

    def _imp() -> None:
        with contextlib.suppress(Exception):
            import codecarbon.core.emissions  # noqa: F401
            import codecarbon.external.geography  # noqa: F401

    threading.Thread(target=_imp, name="terracarbon-warm-imports", daemon=True).start()


class TrackedCommand:
    """Outcome of :func:`track_command`: the command's exit code and the tracking result."""

    def __init__(self, returncode: int, result: dict[str, Any] | None, out_dir: Path) -> None:
        self.returncode = returncode
        self.result = result
        self.out_dir = out_dir

    def __repr__(self) -> str:  # pragma: no cover - cosmetic
        return f"TrackedCommand(returncode={self.returncode}, out_dir={str(self.out_dir)!r})"


def track_command(
    command: list[str],
    out_dir: str | Path,
    *,
    task_name: str | None = None,
    country_iso_code: str = "USA",
    region: str | None = None,
    measure_power_secs: float = 15.0,
) -> TrackedCommand:
    """Run ``command`` as a subprocess while tracking its energy and CO2e.

    The measurement covers the whole machine while the command runs (codecarbon's ``machine``
    mode: a subprocess is not part of this Python process). Output streams are inherited.

    Returns:
        :class:`TrackedCommand` with the command's exit code (127 when the program is not found,
        as shells do) and the tracking result (also in ``out_dir/emissions.json``).

    Raises:
        ConfigError: empty command.
    """
    import shutil
    import subprocess

    if not command:
        raise ConfigError("no command to track: give it after '--', e.g. `-- python train.py`")
    name = task_name or Path(command[0]).name
    run = EmissionsTracking(
        out_dir,
        name,
        country_iso_code=country_iso_code,
        region=region,
        measure_power_secs=measure_power_secs,
        tracking_mode="machine",
    )
    exe = shutil.which(command[0]) or command[0]
    with run:
        try:
            proc = subprocess.Popen([exe, *command[1:]])
        except FileNotFoundError:
            log.error("command not found: %s", command[0])
            returncode = 127
        except PermissionError:
            log.error("command not executable: %s", command[0])
            returncode = 126
        else:
            _warm_stop_imports()  # while the command runs: what codecarbon imports at stop()
            try:
                returncode = proc.wait()
            except KeyboardInterrupt:
                proc.terminate()
                try:
                    returncode = proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    returncode = proc.wait()
    if run.result is not None:
        run.result["command"] = list(command)
        run.result["returncode"] = returncode
        write_json_atomic(Path(out_dir) / "emissions.json", run.result)
    return TrackedCommand(returncode, run.result, Path(out_dir))


class TrackedRun:
    """What :func:`tracked` yields: ``result`` is the tracking result dict (or None) once the block has ended."""

    result: dict[str, Any] | None = None


@contextlib.contextmanager
def tracked(
    out_dir: str | Path, task_name: str, enabled: bool = True, country_iso_code: str = "USA"
) -> Iterator[TrackedRun]:
    """Wrap a block in :func:`track_emissions`; a tracker failure never breaks the tracked work.

    Used by every train / predict / pretrain API of terracarbon::

        with tracked(run_dir, "train", enabled=track) as run:
            ...
        footprint = run.result  # None when tracking was disabled or failed
    """
    holder = TrackedRun()
    tracker = None
    if enabled:
        try:
            tracker = track_emissions(out_dir, task_name, country_iso_code=country_iso_code)
            tracker.__enter__()
        except Exception as exc:  # pragma: no cover - depends on codecarbon / the machine
            logging.getLogger(__name__).warning("emissions tracking unavailable: %s", exc)
            tracker = None
    try:
        yield holder
    finally:
        if tracker is not None:
            try:
                tracker.__exit__(None, None, None)
                holder.result = dict(getattr(tracker, "result", None) or {}) or None
            except Exception as exc:  # pragma: no cover
                logging.getLogger(__name__).warning("emissions tracking failed: %s", exc)
