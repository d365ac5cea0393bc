"""Profile the tiled engine: wall and thread-CPU time of each stage of ``predict_raster``, optionally cProfile.

Wraps the engine's stage functions (window reads, the model call, blend + strip write + resume state, the final COG
copy, the onnxruntime session start) with timers that record, per stage and per thread, the wall time and the
thread's CPU time, then runs one prediction. With a second engine file (an older ``raster/predict.py``) it profiles
that one instead, for a before/after comparison.

Usage::

    python benchmarks/bench_engine_profile.py CKPT STACK onnx [OLD_predict.py] [--cprofile]

``CKPT``/``STACK``: e.g. the checkpoint and raster ``benchmarks/bench_biomass_predict.py`` writes into its ``--out``
folder (``unet_r18_12b.pt``, ``stack_2048.tif``). Output: one line per stage with its share of the wall time.
"""

from __future__ import annotations

import cProfile
import importlib.util
import io
import pstats
import sys
import threading
import time
from collections import defaultdict
from pathlib import Path


def main() -> None:
    import terracarbon.raster.predict as engine
    from terracarbon.raster.checkpoint import predictor_from_checkpoint

    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    ckpt, src, backend = Path(args[0]), Path(args[1]), args[2]
    if len(args) > 3:  # an older engine module
        spec = importlib.util.spec_from_file_location("terracarbon_engine_before", args[3])
        engine = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = engine
        spec.loader.exec_module(engine)
    wall: dict[tuple[str, str], float] = defaultdict(float)
    cpu: dict[tuple[str, str], float] = defaultdict(float)

    def timed(owner, name: str, label: str | None = None) -> None:
        f = getattr(owner, name, None)
        if f is None:
            return

        def g(*a, **k):
            t, c = time.perf_counter(), time.thread_time()
            try:
                return f(*a, **k)
            finally:
                key = (label or name, threading.current_thread().name[:18])
                wall[key] += time.perf_counter() - t
                cpu[key] += time.thread_time() - c

        setattr(owner, name, g)

    for name in ("_read_tiles", "_write_strip", "to_cog", "_create_partial", "_ort_session"):
        timed(engine, name)
    timed(engine._Runner, "__call__", "model")
    timed(engine._State, "save", "state.save")
    if hasattr(engine, "_StripWriter"):
        timed(engine._StripWriter, "_blend", "blend+write+save")

    predictor = predictor_from_checkpoint(ckpt)
    if backend == "onnx" and hasattr(engine, "_onnx_export"):
        engine._onnx_export(predictor)  # the one-off export is not part of a run
    prof = cProfile.Profile() if "--cprofile" in sys.argv else None
    t, c = time.perf_counter(), time.process_time()
    if prof:
        prof.enable()
    engine.predict_raster(
        predictor, src, src.with_name(f"profile_{backend}.tif"), backend=backend, resume=False, progress_bar=False
    )
    if prof:
        prof.disable()
    total, total_cpu = time.perf_counter() - t, time.process_time() - c
    print(f"predict_raster ({backend}, {'before' if len(args) > 3 else 'current'} engine): "
          f"wall {total:.2f} s, process CPU {total_cpu:.2f} s")
    for key, v in sorted(wall.items(), key=lambda kv: -kv[1]):
        print(f"  {key[0]:18s} {key[1]:18s} wall {v:8.2f} s {100 * v / total:5.1f} %   thread CPU {cpu[key]:7.2f} s")
    if prof:
        s = io.StringIO()
        pstats.Stats(prof, stream=s).sort_stats("tottime").print_stats(20)
        print(s.getvalue())


if __name__ == "__main__":
    main()
